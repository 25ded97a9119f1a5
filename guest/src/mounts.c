#define _GNU_SOURCE
#include "mounts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copytree.h"
#include "util.h"

#define NEWROOT "/newroot"
/* ext4's own ioctl, which is in no userspace header. */
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
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
 * is writable, so they are created. /tmp stays the image's own folder, as
 * in Docker: a tmpfs there only when the container asks for one. */
static int container_mounts(char *err, size_t errlen)
{
	const unsigned long nsd = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (do_mount("proc", "/proc", "proc", nsd, NULL, err, errlen) < 0 ||
	    do_mount("sysfs", "/sys", "sysfs", nsd | MS_RDONLY, NULL, err, errlen) < 0 ||
	    do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", err, errlen) < 0 ||
	    do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5", err, errlen) < 0 ||
	    do_mount("shm", "/dev/shm", "tmpfs", nsd, "mode=1777", err, errlen) < 0)
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

/* The root's device and the size its filesystem was last grown to fill,
 * for root_grow after a memory template's root was set up. */
static char root_device[128];
static uint64_t root_filled;

/* A container's disk may be larger than the image's filesystem on it
 * (--storage-opt size=): grow the filesystem, mounted at dir, to fill the
 * disk. The kernel does nothing when they already match, so this costs two
 * ioctls. */
static int grow_root(const char *dev, uint64_t root_size, const char *dir_path, char *err,
		     size_t errlen)
{
	if (!root_size)
		return 0;
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	uint64_t bytes = 0;
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
		snprintf(err, errlen, "size of %s: %s", dev, errstr(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (root_size < bytes)
		bytes = root_size;
	struct statfs st;
	int dir = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0 || fstatfs(dir, &st) < 0 || st.f_bsize <= 0) {
		snprintf(err, errlen, "statfs %s: %s", dir_path, errstr(errno));
		if (dir >= 0)
			close(dir);
		return -1;
	}
	uint64_t blocks = bytes / (uint64_t)st.f_bsize;
	int r = ioctl(dir, EXT4_IOC_RESIZE_FS, &blocks);
	int saved = errno;
	close(dir);
	if (r < 0) {
		snprintf(err, errlen, "grow the root filesystem to %llu blocks: %s",
			 (unsigned long long)blocks, errstr(saved));
		return -1;
	}
	root_filled = bytes;
	return 0;
}

int root_grow(uint64_t root_size, char *err, size_t errlen)
{
	/* A clone's disk has the template's size (the host keys rooted
	 * templates by it): then the filesystem fills it already. */
	if (!root_size || !root_device[0] || root_size == root_filled)
		return 0;
	return grow_root(root_device, root_size, "/", err, errlen);
}

/* A folder the host already prepared (an OCI bundle's root, mounted by the
 * engine), shared over virtio-9p instead of a disk: nothing to grow. */
static int mount_share_root(const char *tag, char *err, size_t errlen)
{
	return do_mount(tag, NEWROOT, "9p", 0, "trans=virtio,version=9p2000.L,msize=262144", err,
			errlen);
}

static int mount_disk_root(const char *root_dev, uint64_t root_size, char *err, size_t errlen)
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
	snprintf(root_device, sizeof(root_device), "%s", dev);
	return grow_root(dev, root_size, NEWROOT, err, errlen);
}

int setup_root(const char *root, uint64_t root_size, char *err, size_t errlen)
{
	int rc = strncmp(root, ROOT_SHARE_PREFIX, strlen(ROOT_SHARE_PREFIX)) == 0
			 ? mount_share_root(root + strlen(ROOT_SHARE_PREFIX), err, errlen)
			 : mount_disk_root(root, root_size, err, errlen);
	if (rc < 0)
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

/* What nearly every process of a container reads from its root before
 * its own code runs: the user database (each spawn resolves the user), the
 * shell (sh -c, entrypoint scripts) and the dynamic loaders and C libraries
 * of musl and glibc images. Paths that are missing cost one lookup. */
static const char *const prefetched[] = {
	"/etc/passwd",
	"/etc/group",
	"/bin/sh",
	"/lib/ld-musl-x86_64.so.1",
	"/lib64/ld-linux-x86-64.so.2",
	"/etc/ld.so.cache",
	"/lib/x86_64-linux-gnu/libc.so.6",
	"/usr/lib/x86_64-linux-gnu/libc.so.6",
};
/* Per file: the image is hostile, and what is read stays in the template's RAM. */
#define PREFETCH_MAX (8u << 20)
/* The folders of the default PATH, which a RUN's program is looked up in
 * one by one (process.c): read whole, each lookup finds its blocks cached. */
static const char *const prefetched_dirs[] = {
	"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
};
#define PREFETCH_ENTRIES 65536 /* per folder */

void root_prefetch(void)
{
	static char chunk[65536];
	for (size_t i = 0; i < sizeof(prefetched) / sizeof(*prefetched); i++) {
		/* Non-blocking: a FIFO there must not hold the agent up. */
		int fd = open(prefetched[i], O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat st;
		size_t total = 0;
		ssize_t r = 0;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			while (total < PREFETCH_MAX && (r = read(fd, chunk, sizeof(chunk))) > 0)
				total += (size_t)r;
		close(fd);
	}
	for (size_t i = 0; i < sizeof(prefetched_dirs) / sizeof(*prefetched_dirs); i++) {
		DIR *d = opendir(prefetched_dirs[i]);
		for (int n = 0; d && n < PREFETCH_ENTRIES && readdir(d); n++)
			;
		if (d)
			closedir(d);
	}
}

/* The container's own mounts, for teardown: innermost last. */
static struct {
	char target[MOUNT_TARGET_MAX + 1];
	int own_sb; /* the first mount of an ext4 volume: its superblock to flush */
} mounted[CONFIG_MAX_MOUNTS];
static size_t nmounted;

/* A file's content without its newline, or "" when it cannot be read. */
static void read_attr(const char *path, char *out, size_t outlen)
{
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, outlen - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

/* The virtio-blk disk whose serial is `serial`: its name in /dev, and
 * whether the host attached it read-only. Disks appear asynchronously. */
static int find_disk(const char *serial, char *name, size_t namelen, int *readonly)
{
	long long deadline = now_ms() + 5000;
	do {
		DIR *d = opendir("/sys/block");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (strncmp(e->d_name, "vd", 2))
				continue;
			char path[300], value[64];
			snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
			read_attr(path, value, sizeof(value));
			if (strcmp(value, serial))
				continue;
			snprintf(name, namelen, "/dev/%s", e->d_name);
			snprintf(path, sizeof(path), "/sys/block/%s/ro", e->d_name);
			read_attr(path, value, sizeof(value));
			*readonly = !strcmp(value, "1");
			closedir(d);
			return wait_for_path(name, 1000);
		}
		if (d)
			closedir(d);
		sleep_ms(5);
	} while (now_ms() < deadline);
	return -1;
}

/* The target of a file bind: a file, made empty if missing. */
static int make_file(const char *path)
{
	char parent[MOUNT_TARGET_MAX + 1];
	snprintf(parent, sizeof(parent), "%s", path);
	*strrchr(parent, '/') = '\0';
	if (parent[0] && mkdir_p(parent, 0755) < 0)
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_NOCTTY | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

#define STAGE "/dev/.cocoon-stage"

/* A file of a 9p share on target: the share is mounted where the container
 * will not see it, the file bound, and the share let go, so nothing else of
 * the host folder is reachable. */
static int mount_share_file(const struct mount_spec *m, unsigned long flags, const char *data,
			    char *err, size_t errlen)
{
	char file[sizeof(STAGE) + sizeof(m->file) + 1];
	snprintf(file, sizeof(file), "%s/%s", STAGE, m->file);
	if (do_mount(m->source, STAGE, "9p", flags, data, err, errlen) < 0)
		return -1;
	struct stat st;
	int rc = -1;
	if (lstat(file, &st) < 0 || !S_ISREG(st.st_mode))
		snprintf(err, errlen, "%s: the shared file is gone", m->target);
	else if (make_file(m->target) < 0)
		snprintf(err, errlen, "make %s: %s", m->target, errstr(errno));
	else if (mount(file, m->target, NULL, MS_BIND, NULL) < 0)
		snprintf(err, errlen, "bind %s: %s", m->target, errstr(errno));
	else
		rc = 0;
	umount2(STAGE, MNT_DETACH);
	rmdir(STAGE);
	return rc;
}

/* Where an earlier MOUNT already mounted the same volume disk, or NULL. */
static const char *mounted_disk(const struct mount_spec *all, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (all[j].kind == MOUNT_EXT4 && !strcmp(all[j].source, all[i].source))
			return all[j].target;
	return NULL;
}

/* Whether the host attached the volume disk of all[i] read-only, which it
 * does when every mount of it is: a VM restored from a memory template
 * cannot tell from sysfs, where the template's writable slot still shows. */
static int disk_attached_readonly(const struct mount_spec *all, size_t n, size_t i)
{
	for (size_t j = 0; j < n; j++)
		if (all[j].kind == MOUNT_EXT4 && !strcmp(all[j].source, all[i].source) &&
		    !(all[j].flags & MOUNT_RDONLY))
			return 0;
	return 1;
}

static int mount_one(const struct mount_spec *all, size_t n, size_t i, char *err, size_t errlen)
{
	const struct mount_spec *m = &all[i];
	unsigned long flags = MS_NOSUID * !!(m->flags & MOUNT_NOSUID) |
			      MS_NODEV * !!(m->flags & MOUNT_NODEV) |
			      MS_NOEXEC * !!(m->flags & MOUNT_NOEXEC);
	int ro = !!(m->flags & MOUNT_RDONLY), own_sb = 0;
	if (m->kind == MOUNT_9P && m->file[0]) {
		const char *data = "trans=virtio,version=9p2000.L,msize=262144";
		if (mount_share_file(m, flags | (ro ? MS_RDONLY : 0), data, err, errlen) < 0)
			return -1;
		goto done;
	}
	if (mkdir_p(m->target, 0755) < 0) {
		snprintf(err, errlen, "mkdir %s: %s", m->target, errstr(errno));
		return -1;
	}
	/* The image's folder, still reachable under the mount for copy-up. */
	int under = -1;
	if (m->flags & MOUNT_COPY_UP &&
	    (under = open(m->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "open %s: %s", m->target, errstr(errno));
		return -1;
	}
	int rc = -1;
	if (m->kind == MOUNT_TMPFS) {
		char data[64];
		if (m->size)
			snprintf(data, sizeof(data), "mode=%o,size=%llu", m->mode,
				 (unsigned long long)m->size);
		else
			snprintf(data, sizeof(data), "mode=%o", m->mode);
		rc = do_mount("tmpfs", m->target, "tmpfs", flags, data, err, errlen);
	} else if (m->kind == MOUNT_9P) {
		rc = do_mount(m->source, m->target, "9p", flags | (ro ? MS_RDONLY : 0),
			      "trans=virtio,version=9p2000.L,msize=262144", err, errlen);
	} else if (mounted_disk(all, i)) {
		/* One superblock per disk: a second mount of it is a bind. */
		rc = do_mount(mounted_disk(all, i), m->target, NULL, MS_BIND, NULL, err, errlen);
	} else {
		char dev[300];
		int disk_ro = 0;
		if (find_disk(m->source, dev, sizeof(dev), &disk_ro) < 0) {
			snprintf(err, errlen, "volume disk %s for %s not found", m->source, m->target);
		} else {
			disk_ro |= disk_attached_readonly(all, n, i);
			/* A read-only disk cannot replay its journal: noload. */
			rc = do_mount(dev, m->target, "ext4", flags | (disk_ro ? MS_RDONLY : 0),
				      disk_ro ? "noload" : NULL, err, errlen);
			own_sb = !disk_ro;
		}
	}
	if (rc == 0 && ro && m->kind == MOUNT_EXT4 &&
	    mount(NULL, m->target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, NULL) < 0) {
		snprintf(err, errlen, "make %s read-only: %s", m->target, errstr(errno));
		rc = -1;
	}
	if (rc == 0 && under >= 0) {
		int top = open(m->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct stat st;
		if (top >= 0 && dir_is_empty(top) == 1 && dir_is_empty(under) == 0 && !ro &&
		    fstat(under, &st) == 0) {
			char why[256];
			if (copy_tree(under, top, why, sizeof(why)) < 0 ||
			    fchown(top, st.st_uid, st.st_gid) < 0 || fchmod(top, st.st_mode & 07777) < 0) {
				snprintf(err, errlen, "copy the image's %s into its volume: %s", m->target,
					 why[0] ? why : errstr(errno));
				rc = -1;
			}
		}
		if (top >= 0)
			close(top);
	}
	if (under >= 0)
		close(under);
	if (rc < 0)
		return -1;
done:
	snprintf(mounted[nmounted].target, sizeof(mounted[nmounted].target), "%s", m->target);
	mounted[nmounted++].own_sb = own_sb;
	return 0;
}

int shm_resize(uint64_t size, char *err, size_t errlen)
{
	if (size == 0)
		return 0;
	char data[48];
	snprintf(data, sizeof(data), "mode=1777,size=%llu", (unsigned long long)size);
	return do_mount("shm", "/dev/shm", "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			data, err, errlen);
}

int user_mounts(const struct mount_spec *m, size_t n, char *err, size_t errlen)
{
	n = n < CONFIG_MAX_MOUNTS ? n : CONFIG_MAX_MOUNTS;
	for (size_t i = 0; i < n; i++)
		if (mount_one(m, n, i, err, errlen) < 0)
			return -1;
	return 0;
}

void unmount_user_mounts(void)
{
	while (nmounted > 0) {
		const char *target = mounted[--nmounted].target;
		/* Read-only writes the journal back and marks the volume clean,
		 * even if processes of the container's namespace still hold it. */
		if (mounted[nmounted].own_sb &&
		    mount(NULL, target, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			logmsg("remount %s read-only: %s", target, errstr(errno));
		umount2(target, MNT_DETACH);
	}
}

void teardown_mounts(int old_root)
{
	static const char *const subs[] = {"/sys/fs/cgroup", "/dev/pts", "/dev/shm", "/dev",
					   "/proc", "/sys"};
	sync();
	unmount_user_mounts();
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
