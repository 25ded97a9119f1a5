#define _GNU_SOURCE
#include "copytree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util.h"

/* Deeper trees are refused rather than copied in part. */
#define COPY_MAX_DEPTH 64

static int skip_name(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

/* A listing of the folder open as dirfd, which stays open and unmoved. */
static DIR *list_dir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (!d)
		close(fd);
	return d;
}

int dir_is_empty(int dirfd)
{
	DIR *d = list_dir(dirfd);
	if (!d)
		return -1;
	int empty = 1;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!skip_name(e->d_name) && strcmp(e->d_name, "lost+found")) {
			empty = 0;
			break;
		}
	closedir(d);
	return empty;
}

/* Owner, mode (after the owner: chown clears set-id bits) and times of
 * what dst names in dstdir, from st. */
static int copy_meta(int dstdir, const char *name, const struct stat *st)
{
	if (fchownat(dstdir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (!S_ISLNK(st->st_mode) && fchmodat(dstdir, name, st->st_mode & 07777, 0) < 0)
		return -1;
	struct timespec times[2] = {st->st_atim, st->st_mtim};
	return utimensat(dstdir, name, times, AT_SYMLINK_NOFOLLOW);
}

static int copy_file(int srcdir, int dstdir, const char *name, const struct stat *st)
{
	int in = openat(srcdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -1;
	int out = openat(dstdir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return -1;
	}
	char buf[65536];
	ssize_t n;
	int rc = 0;
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write_all(out, buf, (size_t)n) < 0) {
			rc = -1;
			break;
		}
	}
	close(in);
	close(out);
	return rc < 0 ? -1 : copy_meta(dstdir, name, st);
}

static int copy_level(int src, int dst, int depth, char *err, size_t errlen);

static int copy_entry(int src, int dst, const char *name, int depth, char *err, size_t errlen)
{
	struct stat st;
	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		/* An existing folder (a fresh volume's lost+found) is merged into. */
		if (mkdirat(dst, name, 0700) < 0 && errno != EEXIST)
			goto fail;
		int s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int d = s < 0 ? -1 : openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int rc = d < 0 ? -1 : copy_level(s, d, depth + 1, err, errlen);
		int saved = errno;
		if (s >= 0)
			close(s);
		if (d >= 0)
			close(d);
		if (rc < 0) {
			if (!err[0])
				snprintf(err, errlen, "copy %s: %s", name, errstr(saved));
			return -1;
		}
		if (copy_meta(dst, name, &st) < 0)
			goto fail;
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		if (copy_file(src, dst, name, &st) < 0)
			goto fail;
		return 0;
	}
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlinkat(src, name, target, sizeof(target) - 1);
		if (n < 0)
			goto fail;
		target[n] = '\0';
		if (symlinkat(target, dst, name) < 0 || copy_meta(dst, name, &st) < 0)
			goto fail;
		return 0;
	}
	/* Devices, fifos and sockets: the node itself, never its content. */
	if (mknodat(dst, name, st.st_mode, st.st_rdev) < 0 || copy_meta(dst, name, &st) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "copy %s: %s", name, errstr(errno));
	return -1;
}

static int copy_level(int src, int dst, int depth, char *err, size_t errlen)
{
	if (depth > COPY_MAX_DEPTH) {
		snprintf(err, errlen, "folders nested deeper than %d", COPY_MAX_DEPTH);
		return -1;
	}
	DIR *d = list_dir(src);
	if (!d)
		return -1;
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d)))
		if (!skip_name(e->d_name))
			rc = copy_entry(src, dst, e->d_name, depth, err, errlen);
	closedir(d);
	return rc;
}

int copy_tree(int src, int dst, char *err, size_t errlen)
{
	err[0] = '\0';
	if (copy_level(src, dst, 0, err, errlen) < 0) {
		if (!err[0])
			snprintf(err, errlen, "copy: %s", errstr(errno));
		return -1;
	}
	return 0;
}
