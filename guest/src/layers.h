/*
 * Build steps (`cocoon build`): a process whose RUN has a ROOT field runs in
 * an overlay of its step's folder over the folders of earlier steps and the
 * container's own root, in a mount namespace of its own, so the step's
 * changes land in one upper folder the host then reads as a layer.
 */
#ifndef COCOON_LAYERS_H
#define COCOON_LAYERS_H

#include <stddef.h>

#include "protocol.h"

/*
 * Called in the forked child, as root, before anything reads the root:
 * makes STEP/upper, STEP/work and STEP/merged, mounts the overlay on
 * STEP/merged, gives it /proc, /sys and /dev when it has those folders and
 * `system` is set (a command, not the agent's tar), and makes it the root.
 * Returns 0, or -1 with a message in msg.
 */
int layers_enter(const struct run_spec *spec, int system, char *msg, size_t len);

/* The overlay mount options for a ROOT value; exposed for the unit tests.
 * Returns 0, or -1 if they do not fit in out. */
int layers_options(const char *root, size_t nroot, char *out, size_t outlen);

#endif
