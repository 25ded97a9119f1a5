#define _GNU_SOURCE
#include "tar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util.h"

#define BLOCK 512
#define NAME_MAX_LEN 4095   /* PATH_MAX less the NUL */
#define PAX_MAX (64 << 10)  /* an extended header larger than this is refused */
#define DEPTH_MAX 128       /* folders nested deeper are refused, not half-copied */
#define WHITEOUT ".wh."     /* OCI: a removed name, in a layer */
#define OPAQUE ".wh..wh..opq" /* OCI: a folder whose lower contents are hidden */
#define OVL_OPAQUE "trusted.overlay.opaque"
#define PAX_XATTR "SCHILY.xattr."
#define XATTRS_MAX 4096 /* of one entry's kept xattrs, records included */

static void say(const char *fmt, const char *what, int err)
{
	dprintf(2, fmt, what, errstr(err));
	dprintf(2, "\n");
}

/* ---- numbers and headers ---------------------------------------------- */

int tar_number(const uint8_t *field, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (field[0] & 0x80) { /* base-256, GNU's form for large values */
		for (size_t i = 1; i < len; i++) {
			if (v >> 56)
				return -1;
			v = v << 8 | field[i];
		}
		*out = v;
		return 0;
	}
	size_t i = 0;
	while (i < len && field[i] == ' ')
		i++;
	for (; i < len && field[i] >= '0' && field[i] <= '7'; i++) {
		if (v >> 61)
			return -1;
		v = v << 3 | (uint64_t)(field[i] - '0');
	}
	if (i < len && field[i] != ' ' && field[i] != '\0')
		return -1;
	*out = v;
	return 0;
}

static unsigned checksum(const uint8_t b[BLOCK])
{
	unsigned sum = 0;
	for (int i = 0; i < BLOCK; i++)
		sum += (i >= 148 && i < 156) ? ' ' : b[i];
	return sum;
}

int tar_header_ok(const uint8_t block[BLOCK])
{
	uint64_t sum;
	return tar_number(block + 148, 8, &sum) == 0 && sum == checksum(block);
}

/* An octal field, or 0 if the value does not fit (a pax record then says it). */
static int put_octal(uint8_t *field, size_t len, uint64_t v)
{
	if (len < 2 || v >> (3 * (len - 1)))
		return -1;
	snprintf((char *)field, len, "%0*llo", (int)len - 1, (unsigned long long)v);
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

struct link_seen {
	dev_t dev;
	ino_t ino;
	char *name;
};

struct writer {
	int out;
	int one_fs;
	int layer; /* an overlay upper folder, written as an OCI layer */
	int entry; /* only the path's own entry, its link followed: what it is */
	dev_t dev;
	char path[NAME_MAX_LEN + 1]; /* the entry's name */
	struct link_seen *links;     /* layer: files of several names, first name each */
	size_t nlinks;
	char xattrs[XATTRS_MAX]; /* layer: the next entry's xattrs, as pax records */
	size_t nxattrs;
};

static int emit(struct writer *w, const void *p, size_t n)
{
	if (write_all(w->out, p, n) < 0) {
		say("write %s: %s", "the archive", errno);
		return -1;
	}
	return 0;
}

static int pad(struct writer *w, uint64_t size)
{
	static const uint8_t zero[BLOCK];
	size_t rest = (size_t)(size % BLOCK);
	return rest ? emit(w, zero, BLOCK - rest) : 0;
}

/* One "LEN key=value\n" pax record, LEN counting itself. */
static size_t pax_record(char *buf, size_t room, const char *key, const char *value)
{
	size_t body = strlen(key) + strlen(value) + 3; /* ' ', '=', '\n' */
	size_t len = body + 1;
	while (snprintf(NULL, 0, "%zu", len) + body > len)
		len++;
	if (len > room)
		return 0;
	snprintf(buf, room, "%zu %s=%s\n", len, key, value);
	return len;
}

/* The same, with a value of any bytes (an xattr's); 0 if it does not fit. */
static size_t pax_binary(char *buf, size_t room, const char *key, const char *value, size_t vlen)
{
	size_t body = strlen(key) + vlen + 3;
	size_t len = body + 1;
	while (snprintf(NULL, 0, "%zu", len) + body > len)
		len++;
	if (len > room)
		return 0;
	int n = snprintf(buf, room, "%zu %s=", len, key);
	memcpy(buf + n, value, vlen);
	buf[len - 1] = '\n';
	return len;
}

/* The xattrs an image may carry: the user's own and file capabilities;
 * never overlayfs's (trusted.*) or a security module's labels. */
static int xattr_kept(const char *name)
{
	return !strncmp(name, "user.", 5) || !strcmp(name, "security.capability");
}

static void header_init(uint8_t h[BLOCK], const char *name, char type)
{
	memset(h, 0, BLOCK);
	snprintf((char *)h, 100, "%s", name);
	h[156] = (uint8_t)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
}

static int header_emit(struct writer *w, uint8_t h[BLOCK])
{
	snprintf((char *)h + 148, 8, "%06o", checksum(h));
	h[155] = ' ';
	return emit(w, h, BLOCK);
}

static int write_header(struct writer *w, const struct stat *st, char type, uint64_t size,
			const char *link)
{
	static char pax[3 * (NAME_MAX_LEN + 64)];
	size_t paxlen = 0;
	uint8_t h[BLOCK];
	const char *name = w->path;
	header_init(h, name, type);
	if (strlen(name) >= 100)
		paxlen += pax_record(pax + paxlen, sizeof(pax) - paxlen, "path", name);
	if (link) {
		snprintf((char *)h + 157, 100, "%s", link);
		if (strlen(link) >= 100)
			paxlen += pax_record(pax + paxlen, sizeof(pax) - paxlen, "linkpath", link);
	}
	char num[32];
	const struct {
		size_t off, len;
		uint64_t v;
		const char *key;
	} nums[] = {
		{100, 8, st->st_mode & 07777, NULL},
		{108, 8, st->st_uid, "uid"},
		{116, 8, st->st_gid, "gid"},
		{124, 12, size, "size"},
		{136, 12, st->st_mtim.tv_sec > 0 ? (uint64_t)st->st_mtim.tv_sec : 0, "mtime"},
		{329, 8, major(st->st_rdev), NULL},
		{337, 8, minor(st->st_rdev), NULL},
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(*nums); i++)
		if (put_octal(h + nums[i].off, nums[i].len, nums[i].v) < 0) {
			if (!nums[i].key) {
				say("%s: %s", name, EOVERFLOW);
				return -1;
			}
			snprintf(num, sizeof(num), "%llu", (unsigned long long)nums[i].v);
			paxlen += pax_record(pax + paxlen, sizeof(pax) - paxlen, nums[i].key, num);
		}
	if (w->nxattrs && paxlen + w->nxattrs <= sizeof(pax)) {
		memcpy(pax + paxlen, w->xattrs, w->nxattrs);
		paxlen += w->nxattrs;
	}
	w->nxattrs = 0;
	if (paxlen) {
		uint8_t x[BLOCK];
		struct stat none = {0};
		none.st_mode = 0644;
		header_init(x, "././@PaxHeader", 'x');
		put_octal(x + 100, 8, none.st_mode);
		put_octal(x + 108, 8, 0);
		put_octal(x + 116, 8, 0);
		put_octal(x + 124, 12, paxlen);
		put_octal(x + 136, 12, 0);
		if (header_emit(w, x) < 0 || emit(w, pax, paxlen) < 0 || pad(w, paxlen) < 0)
			return -1;
	}
	return header_emit(w, h);
}

static int write_file(struct writer *w, int dirfd, const char *name, const struct stat *st)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		say("open %s: %s", w->path, errno);
		return -1;
	}
	uint64_t size = (uint64_t)st->st_size, done = 0;
	int rc = write_header(w, st, '0', size, NULL);
	char buf[65536];
	while (rc == 0 && done < size) {
		size_t want = size - done < sizeof(buf) ? (size_t)(size - done) : sizeof(buf);
		ssize_t n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) { /* shrank while read: the promised size is kept */
			memset(buf, 0, want);
			n = (ssize_t)want;
		}
		rc = emit(w, buf, (size_t)n);
		done += (uint64_t)n;
	}
	close(fd);
	return rc < 0 ? -1 : pad(w, size);
}

static int write_tree(struct writer *w, int dirfd, const char *name, int depth);

/* An empty file entry named w->path's first `keep` bytes, then sep and
 * marker, then what followed in w->path: a whiteout or an opaque mark. */
static int write_marker(struct writer *w, size_t keep, const char *sep, const char *marker)
{
	static char saved[NAME_MAX_LEN + 1];
	snprintf(saved, sizeof(saved), "%s", w->path);
	int n = snprintf(w->path + keep, sizeof(w->path) - keep, "%s%s%s", sep, marker,
			 saved + keep);
	int rc;
	if (n < 0 || (size_t)n >= sizeof(w->path) - keep) {
		say("%s: %s", saved, ENAMETOOLONG);
		rc = -1;
	} else {
		struct stat none = {0};
		rc = write_header(w, &none, '0', 0, NULL);
	}
	memcpy(w->path, saved, sizeof(saved));
	return rc;
}

/* The entry's kept xattrs as pax records for its header; what does not fit is left out. */
static void layer_xattrs(struct writer *w, int dirfd, const char *name)
{
	char path[NAME_MAX_LEN + 64], names[XATTRS_MAX], value[1024], key[300];
	if (dirfd == AT_FDCWD)
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	w->nxattrs = 0;
	ssize_t n = llistxattr(path, names, sizeof(names));
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		const char *x = names + i;
		if (!xattr_kept(x))
			continue;
		ssize_t vlen = lgetxattr(path, x, value, sizeof(value));
		if (vlen < 0 || snprintf(key, sizeof(key), "%s%s", PAX_XATTR, x) >= (int)sizeof(key))
			continue;
		w->nxattrs += pax_binary(w->xattrs + w->nxattrs, sizeof(w->xattrs) - w->nxattrs,
					 key, value, (size_t)vlen);
	}
}

/* overlayfs marks a folder that hides the lower ones' contents so. */
static int opaque(int dirfd, const char *name)
{
	char value[2];
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = fgetxattr(fd, OVL_OPAQUE, value, sizeof(value));
	close(fd);
	return n == 1 && value[0] == 'y';
}

/*
 * What an overlay upper folder's entry becomes in an OCI layer: 0 when
 * written here (a whiteout, a further name of a file), 1 when it is to be
 * written as it is, -1 on an error.
 */
static int layer_entry(struct writer *w, const struct stat *st)
{
	if (S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0)) {
		const char *slash = strrchr(w->path, '/');
		size_t keep = slash ? (size_t)(slash - w->path) + 1 : 0;
		return write_marker(w, keep, "", WHITEOUT);
	}
	if (!S_ISREG(st->st_mode) || st->st_nlink < 2)
		return 1;
	for (size_t i = 0; i < w->nlinks; i++)
		if (w->links[i].dev == st->st_dev && w->links[i].ino == st->st_ino)
			return write_header(w, st, '1', 0, w->links[i].name);
	struct link_seen *more = realloc(w->links, (w->nlinks + 1) * sizeof(*more));
	if (more)
		w->links = more;
	char *name = more ? strdup(w->path) : NULL;
	if (!name) {
		say("%s: %s", w->path, ENOMEM);
		return -1;
	}
	w->links[w->nlinks++] = (struct link_seen){st->st_dev, st->st_ino, name};
	return 1;
}

static int write_dir(struct writer *w, int fd, int depth)
{
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup < 0 ? NULL : fdopendir(dup);
	if (!d) {
		if (dup >= 0)
			close(dup);
		say("read %s: %s", w->path, errno);
		return -1;
	}
	size_t len = strlen(w->path);
	int rc = 0;
	struct dirent *e;
	while (rc == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int n = snprintf(w->path + len, sizeof(w->path) - len, "%s%s",
				 len && w->path[len - 1] != '/' ? "/" : "", e->d_name);
		if (n < 0 || (size_t)n >= sizeof(w->path) - len) {
			w->path[len] = '\0';
			say("%s: %s", w->path, ENAMETOOLONG);
			rc = -1;
			break;
		}
		rc = write_tree(w, fd, e->d_name, depth + 1);
		w->path[len] = '\0';
	}
	closedir(d);
	return rc;
}

static int write_tree(struct writer *w, int dirfd, const char *name, int depth)
{
	struct stat st;
	int follow = w->entry && depth == 0;
	if (fstatat(dirfd, name, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) < 0) {
		say("stat %s: %s", w->path, errno);
		return -1;
	}
	if (w->layer) {
		int rc = layer_entry(w, &st);
		if (rc <= 0)
			return rc;
		layer_xattrs(w, dirfd, name);
	}
	if (S_ISREG(st.st_mode))
		return write_file(w, dirfd, name, &st);
	if (S_ISLNK(st.st_mode)) {
		char link[NAME_MAX_LEN + 1];
		ssize_t n = readlinkat(dirfd, name, link, sizeof(link) - 1);
		if (n < 0) {
			say("readlink %s: %s", w->path, errno);
			return -1;
		}
		link[n] = '\0';
		return write_header(w, &st, '2', 0, link);
	}
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode))
		return write_header(w, &st, S_ISCHR(st.st_mode) ? '3' : S_ISBLK(st.st_mode) ? '4' : '6',
				    0, NULL);
	if (!S_ISDIR(st.st_mode))
		return 0; /* a socket means nothing in an archive */
	if (depth > DEPTH_MAX) {
		say("%s: %s", w->path, ELOOP);
		return -1;
	}
	size_t len = strlen(w->path);
	if (len) { /* a folder's name ends with '/' */
		if (len + 1 >= sizeof(w->path)) {
			say("%s: %s", w->path, ENAMETOOLONG);
			return -1;
		}
		strcpy(w->path + len, "/");
		int rc = write_header(w, &st, '5', 0, NULL);
		w->path[len] = '\0';
		if (rc < 0)
			return -1;
	}
	if (w->layer && len && opaque(dirfd, name) && write_marker(w, len, "/", OPAQUE) < 0)
		return -1;
	if (w->entry || (w->one_fs && st.st_dev != w->dev))
		return 0;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		say("open %s: %s", w->path, errno);
		return -1;
	}
	int rc = write_dir(w, fd, depth);
	close(fd);
	return rc;
}

static int write_archive(int out, const char *path, int one_fs, int layer, int entry)
{
	static struct writer w;
	memset(&w, 0, sizeof(w));
	w.out = out;
	w.one_fs = one_fs;
	w.layer = layer;
	w.entry = entry;
	struct stat st;
	if (lstat(path, &st) < 0) {
		say("%s: %s", path, errno);
		return -1;
	}
	w.dev = st.st_dev;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	/* A layer's entries are named from inside the folder, which is not one. */
	snprintf(w.path, sizeof(w.path), "%s", layer ? "" : base);
	int rc = write_tree(&w, AT_FDCWD, path, 0);
	for (size_t i = 0; i < w.nlinks; i++)
		free(w.links[i].name);
	free(w.links);
	static const uint8_t end[2 * BLOCK];
	return rc < 0 ? -1 : emit(&w, end, sizeof(end));
}

int tar_create(int out, const char *path, int one_fs)
{
	return write_archive(out, path, one_fs, 0, 0);
}

int tar_entry(int out, const char *path)
{
	return write_archive(out, path, 0, 0, 1);
}

int tar_layer(int out, const char *path)
{
	return write_archive(out, path, 0, 1, 0);
}

/* ---- reading ------------------------------------------------------------ */

int tar_clean_name(char *name)
{
	char *r = name, *o = name;
	while (*r) {
		while (*r == '/')
			r++;
		char *end = strchrnul(r, '/');
		size_t n = (size_t)(end - r);
		if (n == 2 && r[0] == '.' && r[1] == '.')
			return -1;
		if (n && !(n == 1 && r[0] == '.')) {
			if (o != name)
				*o++ = '/';
			memmove(o, r, n);
			o += n;
		}
		r = end;
	}
	*o = '\0';
	return name[0] ? 0 : -1;
}

struct entry {
	char name[NAME_MAX_LEN + 1];
	char link[NAME_MAX_LEN + 1];
	char type;
	uint64_t size, mode, uid, gid, mtime, major, minor;
	int have_path, have_link, have_size, have_uid, have_gid, have_mtime;
	char xattrs[XATTRS_MAX]; /* kept ones: name, NUL, 2-byte length, value; ... */
	size_t nxattrs;
};

static int read_block(int in, uint8_t b[BLOCK])
{
	ssize_t n = read_full(in, b, BLOCK);
	if (n == BLOCK)
		return 1;
	if (n == 0)
		return 0;
	say("read %s: %s", "the archive", n < 0 ? errno : EPROTO);
	return -1;
}

static int skip(int in, uint64_t size)
{
	uint8_t b[BLOCK];
	for (uint64_t left = (size + BLOCK - 1) / BLOCK; left; left--)
		if (read_block(in, b) != 1)
			return -1;
	return 0;
}

static void keep_xattr(struct entry *e, const char *name, const char *value, size_t vlen)
{
	size_t nlen = strlen(name) + 1;
	if (!xattr_kept(name) || vlen > 0xffff || e->nxattrs + nlen + 2 + vlen > sizeof(e->xattrs))
		return;
	memcpy(e->xattrs + e->nxattrs, name, nlen);
	e->xattrs[e->nxattrs + nlen] = (char)(vlen >> 8);
	e->xattrs[e->nxattrs + nlen + 1] = (char)vlen;
	memcpy(e->xattrs + e->nxattrs + nlen + 2, value, vlen);
	e->nxattrs += nlen + 2 + vlen;
}

/* An extended header's records, over what the next header says. */
static int read_pax(int in, uint64_t size, struct entry *e)
{
	if (size > PAX_MAX) {
		say("%s: %s", "extended header", E2BIG);
		return -1;
	}
	static char buf[PAX_MAX + BLOCK + 1];
	uint64_t padded = (size + BLOCK - 1) / BLOCK * BLOCK;
	if (read_full(in, buf, (size_t)padded) != (ssize_t)padded) {
		say("read %s: %s", "the archive", EPROTO);
		return -1;
	}
	buf[padded] = '\0'; /* strtoul below stops there at the latest */
	char *p = buf, *end = buf + size;
	while (p < end) {
		char *sp = memchr(p, ' ', (size_t)(end - p));
		unsigned long len = strtoul(p, NULL, 10);
		if (!sp || len == 0 || len > (unsigned long)(end - p) || sp + 1 >= p + len ||
		    p[len - 1] != '\n')
			break;
		char *key = sp + 1, *eq = memchr(key, '=', (size_t)(p + len - key));
		if (eq) {
			*eq = '\0';
			char *value = eq + 1;
			size_t vlen = (size_t)(p + len - 1 - value);
			if (!strcmp(key, "path") || !strcmp(key, "linkpath")) {
				char *to = key[0] == 'p' ? e->name : e->link;
				if (vlen > NAME_MAX_LEN) {
					say("%s: %s", "a name in the archive", ENAMETOOLONG);
					return -1;
				}
				memcpy(to, value, vlen);
				to[vlen] = '\0';
				*(key[0] == 'p' ? &e->have_path : &e->have_link) = 1;
			} else if (!strncmp(key, PAX_XATTR, strlen(PAX_XATTR))) {
				keep_xattr(e, key + strlen(PAX_XATTR), value, vlen);
			} else {
				uint64_t v = strtoull(value, NULL, 10);
				if (!strcmp(key, "size"))
					e->size = v, e->have_size = 1;
				else if (!strcmp(key, "uid"))
					e->uid = v, e->have_uid = 1;
				else if (!strcmp(key, "gid"))
					e->gid = v, e->have_gid = 1;
				else if (!strcmp(key, "mtime"))
					e->mtime = v, e->have_mtime = 1;
			}
		}
		p += len;
	}
	return 0;
}

/* A GNU long name ('L') or link ('K'): the next entry's. */
static int read_long(int in, uint64_t size, char *to, int *have)
{
	if (size > NAME_MAX_LEN) { /* to[size] must fit too */
		say("%s: %s", "a name in the archive", ENAMETOOLONG);
		return -1;
	}
	uint8_t b[BLOCK];
	size_t got = 0;
	for (uint64_t left = (size + BLOCK - 1) / BLOCK; left; left--) {
		if (read_block(in, b) != 1)
			return -1;
		size_t n = size - got < BLOCK ? (size_t)(size - got) : BLOCK;
		memcpy(to + got, b, n);
		got += n;
	}
	to[got] = '\0';
	*have = 1;
	return 0;
}

/* The next real entry, or 0 at the end of the archive. */
static int next_entry(int in, struct entry *e)
{
	memset(e, 0, sizeof(*e));
	for (;;) {
		uint8_t h[BLOCK];
		int r = read_block(in, h);
		if (r <= 0)
			return r;
		static const uint8_t zero[BLOCK];
		if (!memcmp(h, zero, BLOCK))
			return 0;
		if (!tar_header_ok(h)) {
			say("%s: %s", "the archive", EILSEQ);
			return -1;
		}
		uint64_t size;
		if (tar_number(h + 124, 12, &size) < 0) {
			say("%s: %s", "an entry's size", EINVAL);
			return -1;
		}
		char type = (char)h[156];
		if (type == 'x') {
			if (read_pax(in, size, e) < 0)
				return -1;
			continue;
		}
		if (type == 'g') {
			if (skip(in, size) < 0)
				return -1;
			continue;
		}
		if (type == 'L' || type == 'K') {
			if (read_long(in, size, type == 'L' ? e->name : e->link,
				      type == 'L' ? &e->have_path : &e->have_link) < 0)
				return -1;
			continue;
		}
		e->type = type ? type : '0';
		if (!e->have_size)
			e->size = size;
		if (!e->have_path) {
			char prefix[156] = "", name[101] = "";
			memcpy(name, h, 100);
			if (!memcmp(h + 257, "ustar", 5))
				memcpy(prefix, h + 345, 155);
			snprintf(e->name, sizeof(e->name), "%s%s%s", prefix, prefix[0] ? "/" : "",
				 name);
		}
		if (!e->have_link) {
			memcpy(e->link, h + 157, 100);
			e->link[100] = '\0';
		}
		uint64_t v;
		e->mode = tar_number(h + 100, 8, &v) == 0 ? v & 07777 : 0644;
		if (!e->have_uid)
			e->uid = tar_number(h + 108, 8, &v) == 0 ? v : 0;
		if (!e->have_gid)
			e->gid = tar_number(h + 116, 8, &v) == 0 ? v : 0;
		if (!e->have_mtime)
			e->mtime = tar_number(h + 136, 12, &v) == 0 ? v : 0;
		e->major = tar_number(h + 329, 8, &v) == 0 ? v : 0;
		e->minor = tar_number(h + 337, 8, &v) == 0 ? v : 0;
		return 1;
	}
}

static int read_archive(int in, const char *path, int overlay, int keep_kinds);

struct reader {
	int in;
	int dest;           /* the folder entries land in */
	const char *where;  /* its path, for messages */
	const char *rename; /* replaces every entry's first component; NULL = keep */
	int overlay;        /* an OCI layer becoming an overlay upper folder */
	int keep_kinds;     /* TAR_KEEP_KINDS: a folder stays one, a non-folder too */
};

/* The entry's name under dest, renamed as asked; NULL if refused. */
static const char *place(const struct reader *r, char *name, char *buf, size_t len)
{
	if (tar_clean_name(name) < 0)
		return NULL;
	if (!r->rename)
		return name;
	const char *rest = strchrnul(name, '/');
	int n = snprintf(buf, len, "%s%s", r->rename, rest);
	return n < 0 || (size_t)n >= len ? NULL : buf;
}

/* Missing parent folders of name, made as root with mode 0755. */
static void make_parents(int dest, const char *name)
{
	char path[NAME_MAX_LEN + 1];
	snprintf(path, sizeof(path), "%s", name);
	for (char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		mkdirat(dest, path, 0755);
		*p = '/';
	}
}

/* The entry's xattrs on a file or folder it made (a symlink has none to keep). */
static int set_xattrs(int dest, const char *name, const struct entry *e)
{
	if (!e->nxattrs || (e->type != '0' && e->type != '7' && e->type != '5'))
		return 0;
	int fd = openat(dest, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < e->nxattrs;) {
		const char *x = e->xattrs + i;
		size_t nlen = strlen(x) + 1;
		const uint8_t *len = (const uint8_t *)e->xattrs + i + nlen;
		size_t vlen = (size_t)len[0] << 8 | len[1];
		rc = fsetxattr(fd, x, len + 2, vlen, 0);
		i += nlen + 2 + vlen;
	}
	close(fd);
	return rc;
}

static int set_meta(int dest, const char *name, const struct entry *e)
{
	if (fchownat(dest, name, (uid_t)e->uid, (gid_t)e->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (e->type != '2' && fchmodat(dest, name, (mode_t)e->mode, 0) < 0)
		return -1;
	/* After chown, which drops file capabilities. */
	if (set_xattrs(dest, name, e) < 0)
		return -1;
	struct timespec t[2] = {{(time_t)e->mtime, 0}, {(time_t)e->mtime, 0}};
	return utimensat(dest, name, t, AT_SYMLINK_NOFOLLOW);
}

static int extract_file(const struct reader *r, const char *name, const struct entry *e)
{
	int fd = openat(r->dest, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	uint8_t b[BLOCK];
	int rc = 0;
	for (uint64_t left = e->size; left;) {
		if (read_block(r->in, b) != 1) {
			close(fd);
			errno = EPROTO;
			return -2; /* the stream is broken: stop */
		}
		size_t n = left < BLOCK ? (size_t)left : BLOCK;
		if (rc == 0 && write_all(fd, b, n) < 0)
			rc = -1;
		left -= n;
	}
	close(fd);
	return rc;
}

/*
 * An OCI whiteout or opaque mark, made as overlayfs keeps them in an upper
 * folder: a 0/0 character device, a trusted.overlay.opaque folder. 0 when
 * name was one (handled), 1 for an ordinary entry, -1 on an error.
 */
static int overlay_marker(const struct reader *r, const char *name)
{
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	if (strncmp(base, WHITEOUT, strlen(WHITEOUT)))
		return 1;
	char dir[NAME_MAX_LEN + 1];
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - name) : 1, slash ? name : ".");
	if (!strcmp(base, OPAQUE)) {
		if (mkdirat(r->dest, dir, 0755) < 0 && errno != EEXIST)
			goto fail;
		int fd = openat(r->dest, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			goto fail;
		int rc = fsetxattr(fd, OVL_OPAQUE, "y", 1, 0);
		close(fd);
		if (rc < 0)
			goto fail;
		return 0;
	}
	if (!strncmp(base, WHITEOUT WHITEOUT, 2 * strlen(WHITEOUT)))
		return 0; /* another tool's own bookkeeping, not a name */
	char target[2 * (NAME_MAX_LEN + 1)];
	snprintf(target, sizeof(target), "%s%s%s", slash ? dir : "", slash ? "/" : "",
		 base + strlen(WHITEOUT));
	if (tar_clean_name(target) < 0)
		return -1;
	struct stat st;
	if (fstatat(r->dest, target, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    unlinkat(r->dest, target, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
		goto fail;
	if (mknodat(r->dest, target, S_IFCHR, makedev(0, 0)) < 0)
		goto fail;
	return 0;
fail:
	say("whiteout %s: %s", name, errno);
	return -1;
}

static int extract_one(const struct reader *r, struct entry *e)
{
	char buf[NAME_MAX_LEN + 1], lbuf[NAME_MAX_LEN + 1];
	const char *name = place(r, e->name, buf, sizeof(buf));
	if (!name) {
		dprintf(2, "refused: an entry named outside the destination\n");
		return -1;
	}
	make_parents(r->dest, name);
	if (r->overlay) {
		int rc = overlay_marker(r, name);
		if (rc <= 0)
			return rc < 0 ? -1 : skip(r->in, e->size);
	}
	struct stat st;
	int exists = fstatat(r->dest, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (exists && r->keep_kinds && (e->type == '5') != !!S_ISDIR(st.st_mode)) {
		const char *sep = strcmp(r->where, "/") ? "/" : "";
		dprintf(2, S_ISDIR(st.st_mode) ? "cannot overwrite directory \"%s%s%s\" with non-directory \"%s\"\n"
					       : "cannot overwrite non-directory \"%s%s%s\" with directory \"%s\"\n",
			r->where, sep, name, r->where);
		return -1;
	}
	/* What is there is replaced, but a folder is merged into. */
	if (exists && !(e->type == '5' && S_ISDIR(st.st_mode)) &&
	    unlinkat(r->dest, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0) {
		say("replace %s: %s", name, errno);
		return -1;
	}
	int rc = 0;
	switch (e->type) {
	case '0':
	case '7':
		rc = extract_file(r, name, e);
		if (rc == -2) {
			say("read %s: %s", "the archive", EPROTO);
			return -1;
		}
		break;
	case '5':
		rc = mkdirat(r->dest, name, 0700) < 0 && errno != EEXIST ? -1 : 0;
		break;
	case '2':
		rc = symlinkat(e->link, r->dest, name);
		break;
	case '1': {
		const char *target = place(r, e->link, lbuf, sizeof(lbuf));
		if (!target) {
			dprintf(2, "refused: a hard link to outside the destination\n");
			return -1;
		}
		if (linkat(r->dest, target, r->dest, name, 0) < 0) {
			say("link %s: %s", name, errno);
			return -1;
		}
		return skip(r->in, e->size);
	}
	case '3':
	case '4':
	case '6': {
		mode_t kind = e->type == '3' ? S_IFCHR : e->type == '4' ? S_IFBLK : S_IFIFO;
		rc = mknodat(r->dest, name, kind | 0600,
			     makedev((unsigned)e->major, (unsigned)e->minor));
		break;
	}
	default: /* nothing this system can make: skipped, its data too */
		return skip(r->in, e->size);
	}
	if (rc < 0 || set_meta(r->dest, name, e) < 0) {
		say("extract %s: %s", name, errno);
		return -1;
	}
	/* Only files carry data; any other entry's is skipped, never parsed. */
	return e->type == '0' || e->type == '7' ? 0 : skip(r->in, e->size);
}

int tar_unlayer(int in, const char *path)
{
	if (mkdir_p(path, 0755) < 0) {
		say("%s: %s", path, errno);
		return -1;
	}
	return read_archive(in, path, 1, 0);
}

int tar_extract(int in, const char *path, int keep_kinds)
{
	return read_archive(in, path, 0, keep_kinds);
}

static int read_archive(int in, const char *path, int overlay, int keep_kinds)
{
	struct reader r = {in, -1, path, NULL, overlay, keep_kinds};
	struct stat st;
	char parent[NAME_MAX_LEN + 1];
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		r.dest = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* Named without the "/." that asks for a folder only. */
		snprintf(parent, sizeof(parent), "%s", path);
		size_t n = strlen(parent);
		while (n > 1 && (parent[n - 1] == '/' || (parent[n - 1] == '.' && parent[n - 2] == '/')))
			parent[--n] = '\0';
		r.where = parent;
	} else {
		snprintf(parent, sizeof(parent), "%s", path);
		char *slash = strrchr(parent, '/');
		r.rename = slash && slash[1] ? path + (slash - parent) + 1 : NULL;
		if (!r.rename) {
			say("%s: %s", path, EINVAL);
			return -1;
		}
		*slash = '\0';
		r.where = parent[0] ? parent : "/";
		r.dest = open(r.where, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (r.dest < 0) {
		say("%s: %s", path, errno);
		return -1;
	}
	static struct entry e;
	int got, rc = 0;
	while ((got = next_entry(in, &e)) > 0)
		if (extract_one(&r, &e) < 0) {
			rc = -1;
			break;
		}
	close(r.dest);
	return got < 0 ? -1 : rc;
}
