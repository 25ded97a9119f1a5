/* The VM's filesystems: initramfs basics, the container's root, teardown. */
#ifndef COCOON_MOUNTS_H
#define COCOON_MOUNTS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

/* /proc, /sys and /dev in the initramfs, so the console, the command line
 * and the devices can be reached. Failures are logged, not fatal. */
void mount_early(void);

/*
 * Mounts /dev/root_dev, the container's own writable ext4 (a copy-on-write
 * overlay of its image's disk, made by the host), makes it the root, then
 * mounts the container's /proc, /sys, /dev, /dev/pts and /dev/shm.
 * Returns an fd of the initramfs root, kept for teardown, or -1 with a
 * message in err.
 */
/* cocoon.root=9p:TAG: the root is the host folder shared with that tag. */
#define ROOT_SHARE_PREFIX "9p:"
/* root_size: the root disk's bytes, which its filesystem grows to fill (a
 * clone's device shows the template's slot size instead); ROOT_SIZE_DEVICE:
 * the device's own size (a cold boot); 0: not known, the filesystem stays. */
#define ROOT_SIZE_DEVICE UINT64_MAX
int setup_root(const char *root, uint64_t root_size, char *err, size_t errlen);

/* After setup_root, once the root is `/`: grows its filesystem to root_size
 * bytes (never past the device) unless it fills that much already (a
 * clone of a rooted memory template, whose disk is the template's). Returns
 * 0, or -1 with a message in err. */
int root_grow(uint64_t root_size, char *err, size_t errlen);

/* Reads the files of the root that nearly every container process reads
 * first, and the folders of the default PATH, into the page cache: a rooted memory template's clones then find
 * them there instead of reading the disk, each for the first time. */
void root_prefetch(void);

/* Gives the container's /dev/shm (mounted by setup_root) a size in bytes
 * (SHM_SIZE); 0 keeps the kernel's default. Returns 0, or -1 with a message in err. */
int shm_resize(uint64_t size, char *err, size_t errlen);

/*
 * The container's own mounts (CONFIG's MOUNT fields, parents first): volume
 * disks, 9p shares, tmpfs. Made in the new root before the container's
 * namespaces, which inherit them. Returns 0, or -1 with a message in err.
 */
int user_mounts(const struct mount_spec *m, size_t n, char *err, size_t errlen);

/* Unmounts user_mounts' mounts, innermost first; volume disks end clean. */
void unmount_user_mounts(void);

/* Unmounts what can be, so the root disk ends clean; old_root from setup_root (or -1). */
void teardown_mounts(int old_root);

/* A device name from the command line must name something in /dev:
 * not empty, no `/`, not starting with `.`. */
int device_name_valid(const char *s);

/* Waits up to timeout_ms for a path to exist (devices appear asynchronously). */
int wait_for_path(const char *path, long timeout_ms);

#endif
