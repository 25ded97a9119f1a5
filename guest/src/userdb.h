/*
 * USER resolution against the container's /etc/passwd and /etc/group, with
 * the semantics of Docker/runc. Pure: the file contents are passed in.
 */
#ifndef COCOON_USERDB_H
#define COCOON_USERDB_H

#include <stddef.h>
#include <sys/types.h>

struct exec_user {
	uid_t uid;
	gid_t gid;
	gid_t *sgids; /* supplementary groups */
	size_t nsgids;
	char *home;   /* "/" when the user has no passwd entry */
};

/*
 * spec is `user[:group]`, each a name or a number (NULL or "" = root).
 * passwd and group are the NUL-terminated file contents, NULL if missing.
 * A named user or group that is not found is an error; a number need not
 * exist. Supplementary groups are those listing the user by name, and only
 * when no group is given explicitly.
 * Returns 0, or -1 with a one-line message in err.
 */
int user_resolve(const char *spec, const char *passwd, const char *group, struct exec_user *out,
		 char *err, size_t errlen);
void exec_user_free(struct exec_user *u);

/*
 * A group, name[0..len), as a number or a name of /etc/group (group is the
 * NUL-terminated file content, NULL if missing): a number need not exist, a
 * name must. Returns 0, or -1 with a one-line message in err.
 */
int group_resolve(const char *name, size_t len, const char *group, gid_t *out, char *err,
		  size_t errlen);

#endif
