#define _GNU_SOURCE
#include "layers.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define OPTIONS_MAX 65536 /* overlayfs takes one page of options; more never mounts */

int layers_options(const char *root, size_t nroot, char *out, size_t outlen)
{
	const char *step = root;
	size_t used = 0;
	int n = snprintf(out, outlen, "lowerdir=");
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	used = (size_t)n;
	/* The lowers, top first, then the container's own root at the bottom. */
	const char *dir = step + strlen(step) + 1;
	for (size_t i = 1; i < nroot; i++, dir += strlen(dir) + 1) {
		n = snprintf(out + used, outlen - used, "%s/upper:", dir);
		if (n < 0 || (size_t)n >= outlen - used)
			return -1;
		used += (size_t)n;
	}
	/* Renamed folders are copied rather than redirected, and nothing but
	 * plain whiteouts marks a removal: the upper folder reads as a layer. */
	n = snprintf(out + used, outlen - used,
		     "/,upperdir=%s/upper,workdir=%s/work,redirect_dir=off,index=off,metacopy=off",
		     step, step);
	return n < 0 || (size_t)n >= outlen - used ? -1 : 0;
}

static int is_dir(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Binds the container's `from` (not what is mounted below it) on merged/from. */
static int bind_in(const char *merged, const char *from, char *msg, size_t len)
{
	char to[4096];
	snprintf(to, sizeof(to), "%s%s", merged, from);
	if (!is_dir(from) || !is_dir(to))
		return 0;
	if (mount(from, to, NULL, MS_BIND, NULL) < 0) {
		snprintf(msg, len, "bind %s in the build step: %s", from, errstr(errno));
		return -1;
	}
	return 0;
}

int layers_enter(const struct run_spec *spec, int system, char *msg, size_t len)
{
	static char options[OPTIONS_MAX];
	const char *step = spec->root;
	char upper[4096], work[4096], merged[3900];
	snprintf(upper, sizeof(upper), "%s/upper", step);
	snprintf(work, sizeof(work), "%s/work", step);
	snprintf(merged, sizeof(merged), "%s/merged", step);
	if (layers_options(spec->root, spec->nroot, options, sizeof(options)) < 0) {
		snprintf(msg, len, "ROOT: too many folders for one overlay");
		return -1;
	}
	/* Its own mount namespace: the overlay and its /proc go when the step's
	 * processes do, and never show in the container's. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(msg, len, "a mount namespace for the build step: %s", errstr(errno));
		return -1;
	}
	const char *dirs[] = {step, upper, work, merged};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(*dirs); i++)
		if (mkdir(dirs[i], 0755) < 0 && errno != EEXIST) {
			snprintf(msg, len, "mkdir %s: %s", dirs[i], errstr(errno));
			return -1;
		}
	if (mount("overlay", merged, "overlay", 0, options) < 0) {
		snprintf(msg, len, "mount the build step's overlay: %s", errstr(errno));
		return -1;
	}
	if (system) {
		char proc[4096];
		snprintf(proc, sizeof(proc), "%s/proc", merged);
		if (is_dir(proc) &&
		    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			snprintf(msg, len, "mount /proc in the build step: %s", errstr(errno));
			return -1;
		}
		/* One by one, not recursively: the scratch disk of the steps is
		 * mounted under /dev and stays out of their sight. */
		const char *binds[] = {"/sys", "/dev", "/dev/pts", "/dev/shm"};
		for (size_t i = 0; i < sizeof(binds) / sizeof(*binds); i++)
			if (bind_in(merged, binds[i], msg, len) < 0)
				return -1;
	}
	if (chdir(merged) < 0 || chroot(".") < 0 || chdir("/") < 0) {
		snprintf(msg, len, "enter the build step's root: %s", errstr(errno));
		return -1;
	}
	return 0;
}
