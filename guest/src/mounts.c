#define _GNU_SOURCE
#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define NEWROOT "/newroot"
/* <linux/fs.h>, which musl's toolchain lacks. */
#define BLKFLSBUF _IO(0x12, 97)

int device_name_valid(const char *s)
{
	return s[0] && s[0] != '.' && !strchr(s, '/');
}

int wait_for_path(const char *path, long timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	while (access(path, F_OK) < 0) {
		if (now_ms() >= deadline)
			return -1;
		sleep_ms(5);
	}
	return 0;
}

static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags,
		    const char *data, char *err, size_t errlen)
{
	if (mkdir_p(dst, 0755) < 0) {
		snprintf(err, errlen, "mkdir %s: %s", dst, errstr(errno));
		return -1;
	}
	if (mount(src, dst, type, flags, data) < 0) {
		snprintf(err, errlen, "mount %s (%s) on %s: %s", src, type, dst, errstr(errno));
		return -1;
	}
	return 0;
}

void mount_early(void)
{
	char err[256];
	if (do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err, sizeof(err)) < 0)
		logmsg("%s", err);
	if (do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err, sizeof(err)) < 0)
		logmsg("%s", err);
	/* With CONFIG_DEVTMPFS_MOUNT the kernel has done it already. */
	if (do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", err, sizeof(err)) < 0 &&
	    errno != EBUSY)
		logmsg("%s", err);
}

/* Inside the new root. The image may lack the mountpoints; the upper layer
 * is writable, so they are created. */
static int container_mounts(char *err, size_t errlen)
{
	const unsigned long nsd = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (do_mount("proc", "/proc", "proc", nsd, NULL, err, errlen) < 0 ||
	    do_mount("sysfs", "/sys", "sysfs", nsd | MS_RDONLY, NULL, err, errlen) < 0 ||
	    do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", err, errlen) < 0 ||
	    do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5", err, errlen) < 0 ||
	    do_mount("shm", "/dev/shm", "tmpfs", nsd, "mode=1777", err, errlen) < 0 ||
	    do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", err, errlen) < 0)
		return -1;

	/* The ptmx of this devpts instance is the one programs must open. */
	struct stat st;
	if (lstat("/dev/ptmx", &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(5, 2)) {
		unlink("/dev/ptmx");
		if (symlink("pts/ptmx", "/dev/ptmx") < 0)
			logmsg("symlink /dev/ptmx: %s", errstr(errno));
	}
	static const char *const links[][2] = {
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			logmsg("symlink %s: %s", links[i][1], errstr(errno));

	/* Nice to have (systemd, cgroup-aware runtimes), not worth failing for. */
	if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", nsd, NULL) < 0)
		logmsg("mount cgroup2 on /sys/fs/cgroup: %s", errstr(errno));
	return 0;
}

int setup_root(const char *root_dev, char *err, size_t errlen)
{
	char dev[128];
	snprintf(dev, sizeof(dev), "/dev/%s", root_dev);
	if (wait_for_path(dev, 5000) < 0) {
		snprintf(err, errlen, "root disk %s not found", dev);
		return -1;
	}
	/* A VM restored from a memory template read this slot's disk (the
	 * template's blank one) when the kernel scanned it for partitions; what
	 * it cached then is not this container's disk. */
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (ioctl(fd, BLKFLSBUF, 0) < 0)
			logmsg("flush %s: %s", dev, errstr(errno));
		close(fd);
	}
	if (do_mount(dev, NEWROOT, "ext4", 0, NULL, err, errlen) < 0)
		return -1;

	/* Kept so teardown can leave the root and unmount it. */
	int old_root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (old_root < 0) {
		snprintf(err, errlen, "open /: %s", errstr(errno));
		return -1;
	}
	/* switch_root: a moved mount only becomes the root for a process
	 * that chroots into it from inside. */
	if (chdir(NEWROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0) {
		snprintf(err, errlen, "switch to the new root: %s", errstr(errno));
		close(old_root);
		return -1;
	}
	if (container_mounts(err, errlen) < 0) {
		close(old_root);
		return -1;
	}
	return old_root;
}

void teardown_mounts(int old_root)
{
	static const char *const subs[] = {"/sys/fs/cgroup", "/dev/pts", "/dev/shm", "/dev",
					   "/tmp", "/proc", "/sys"};
	sync();
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		umount2(subs[i], MNT_DETACH);
	/* Read-only first: that writes everything back and marks the
	 * filesystem clean even if the detach below cannot finish. */
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		logmsg("remount / read-only: %s", errstr(errno));
	if (old_root < 0)
		return;
	/* Detaching our own root is allowed; it goes away once we leave it. */
	if (umount2("/", MNT_DETACH) < 0)
		logmsg("detach /: %s", errstr(errno));
	if (fchdir(old_root) < 0 || chroot(".") < 0)
		logmsg("back to the initramfs: %s", errstr(errno));
	close(old_root);
	sync();
}
