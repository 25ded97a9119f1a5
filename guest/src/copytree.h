/* Copy a folder's content into another, owners, modes and times kept: Docker's
 * copy-up of an image's files into an empty volume. */
#ifndef COCOON_COPYTREE_H
#define COCOON_COPYTREE_H

#include <stddef.h>

/* 1 if the folder holds nothing but lost+found (a fresh ext4's), 0 if it
 * holds more, -1 on error. */
int dir_is_empty(int dirfd);

/*
 * Copies everything under src into dst (both open folder fds): folders,
 * files, symlinks (never followed), devices, fifos. Hard links become
 * copies. Depth is bounded, so a hostile image cannot exhaust descriptors.
 * Returns 0, or -1 with a message in err.
 */
int copy_tree(int src, int dst, char *err, size_t errlen);

#endif
