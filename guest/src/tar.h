/*
 * The agent's own tar (POSIX pax/ustar), for `cocoon cp` and `cocoon export`:
 * images need no tar program. Runs as a container process (RUN with a TAR
 * field), inside the container's namespaces and root.
 */
#ifndef COCOON_TAR_H
#define COCOON_TAR_H

#include <stddef.h>
#include <stdint.h>

/*
 * Writes a tar of path (a file or a folder and everything under it) to out.
 * Entries are named from path's last component ("bin/sh" for /bin/sh's
 * folder /bin), or relative to the root when path is "/". With one_fs,
 * folders of other filesystems (/proc, volumes) appear empty. Owners,
 * modes and times are kept. Returns 0, or -1 with a message on stderr.
 */
int tar_create(int out, const char *path, int one_fs);

/*
 * Unpacks the tar read from in at path: into it if it is a folder, else as
 * it (the first component of every entry becomes path's last). Entries
 * with a `..` component are refused; absolute names are taken as relative.
 * With keep_kinds, an entry that would replace a folder by a non-folder or
 * the reverse stops it, with dockerd's message (noOverwriteDirNonDir).
 * Returns 0, or -1 with a message on stderr.
 */
int tar_extract(int in, const char *path, int keep_kinds);

/*
 * Writes a tar of path's own entry alone (a folder without its contents),
 * a symbolic link at path followed: what path is, for COPY's destination.
 * Returns 0, or -1 with a message on stderr (ENOENT: there is nothing).
 */
int tar_entry(int out, const char *path);

/*
 * Writes an overlayfs upper folder as an OCI layer: entries named from
 * inside path, a 0/0 character device as a `.wh.NAME` whiteout, an opaque
 * folder with a `.wh..wh..opq` entry in it, further names of one file as
 * hard links, user.* and security.capability xattrs as SCHILY.xattr pax
 * records (tar_extract and tar_unlayer set those two kinds back). Returns
 * 0, or -1 with a message on stderr.
 */
int tar_layer(int out, const char *path);

/*
 * The reverse: unpacks an OCI layer into the folder path (made if missing)
 * so that it serves as an overlay upper folder. Returns 0, or -1.
 */
int tar_unlayer(int in, const char *path);

/* Parsing helpers, exposed for the unit tests. */
int tar_header_ok(const uint8_t block[512]);
int tar_number(const uint8_t *field, size_t len, uint64_t *out);
/* A name from a tar, made relative and checked: 0, or -1 if it has a `..`
 * component or nothing is left. Works in place. */
int tar_clean_name(char *name);

#endif
