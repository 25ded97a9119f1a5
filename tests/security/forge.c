/*
 * Run as root inside a cocoon container, tries to speak in the guest
 * agent's name: every descriptor it can reach in another process, through
 * pidfd_getfd(pidfd_open(pid), fd) and through /proc/PID/fd/N, gets a forged
 * EXIT(42) frame of proc 1. Its own descriptors are skipped: bytes written
 * there are only its output. Prints "forge-done" and exits 7; stderr says
 * what it reached.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* length 5, type EXIT, proc 1; exited, code 42 */
static const unsigned char exit42[] = {0, 0, 0, 5, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 42};
static int reached, written;

static void forge(int fd)
{
	reached++;
	if (write(fd, exit42, sizeof(exit42)) == (ssize_t)sizeof(exit42))
		written++;
	close(fd);
}

static void by_pidfd(int pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return;
	for (int fd = 0; fd <= 64; fd++) {
		int got = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
		if (got >= 0)
			forge(got);
	}
	close(pidfd);
}

static void by_proc(const char *pid)
{
	char path[512];
	snprintf(path, sizeof(path), "/proc/%s/fd", pid);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd/%s", pid, e->d_name);
		int fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY);
		if (fd >= 0)
			forge(fd);
	}
	if (d)
		closedir(d);
}

int main(void)
{
	int self = getpid();
	by_pidfd(1);
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int pid = atoi(e->d_name);
		if (pid <= 0 || pid == self)
			continue;
		by_pidfd(pid);
		by_proc(e->d_name);
	}
	if (d)
		closedir(d);
	fprintf(stderr, "forge: reached %d descriptors, wrote to %d\n", reached, written);
	printf("forge-done\n");
	return 7;
}
