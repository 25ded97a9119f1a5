#include "userdb.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct field {
	const char *s;
	size_t len;
};

#define MAX_FIELDS 7

/*
 * Splits the next line of a colon-separated file into fields. Returns the
 * number of fields (0 for a line to skip), or -1 at the end of the text.
 */
static int next_record(const char **text, struct field f[MAX_FIELDS])
{
	const char *p = *text;
	if (!p || !*p)
		return -1;
	const char *end = strchr(p, '\n');
	if (!end)
		end = p + strlen(p);
	*text = *end ? end + 1 : end;
	/* Comments and NIS compat entries (+/-) name no local account. */
	if (p == end || *p == '#' || *p == '+' || *p == '-')
		return 0;
	int n = 0;
	const char *start = p;
	for (;; p++) {
		if (p == end || *p == ':') {
			if (n < MAX_FIELDS)
				f[n++] = (struct field){start, (size_t)(p - start)};
			if (p == end)
				break;
			start = p + 1;
		}
	}
	/* Tolerate a CRLF file. */
	if (f[n - 1].len && f[n - 1].s[f[n - 1].len - 1] == '\r')
		f[n - 1].len--;
	return n;
}

/* A decimal id; ids above 2^32-2 are rejected because (id_t)-1 means "unchanged" to the kernel. */
static int parse_id(const char *s, size_t len, uint32_t *out)
{
	if (len == 0 || len > 10)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v >= UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int field_eq(struct field f, const char *s, size_t len)
{
	return f.len == len && memcmp(f.s, s, len) == 0;
}

static char *field_dup(struct field f)
{
	char *s = malloc(f.len + 1);
	if (s) {
		memcpy(s, f.s, f.len);
		s[f.len] = '\0';
	}
	return s;
}

/* Is name in the comma-separated member list of a group? */
static int list_has(struct field list, const char *name, size_t nlen)
{
	const char *p = list.s, *end = list.s + list.len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *e = comma ? comma : end;
		const char *a = p, *b = e;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if ((size_t)(b - a) == nlen && memcmp(a, name, nlen) == 0)
			return 1;
		p = e + 1;
	}
	return 0;
}

int user_resolve(const char *spec, const char *passwd, const char *group, struct exec_user *out,
		 char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!spec)
		spec = "";
	const char *colon = strchr(spec, ':');
	const char *uname = spec;
	size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
	const char *gname = colon ? colon + 1 : "";
	size_t glen = strlen(gname);

	char *name = NULL; /* the user's login name, for group membership */
	struct field f[MAX_FIELDS];
	int n;
	uint32_t id;

	int numeric_user = 1; /* an empty user part means root */
	if (ulen > 0) {
		if (parse_id(uname, ulen, &id) == 0)
			out->uid = id;
		else
			numeric_user = 0;
	}

	int found = 0;
	const char *t = passwd;
	while ((n = next_record(&t, f)) >= 0) {
		uint32_t uid, gid;
		if (n < 4 || parse_id(f[2].s, f[2].len, &uid) || parse_id(f[3].s, f[3].len, &gid))
			continue;
		if (numeric_user ? uid != out->uid : !field_eq(f[0], uname, ulen))
			continue;
		out->uid = uid;
		out->gid = gid;
		if (n >= 6 && f[5].len)
			out->home = field_dup(f[5]);
		name = field_dup(f[0]);
		if (!name || (n >= 6 && f[5].len && !out->home))
			goto oom;
		found = 1;
		break;
	}
	if (!found && !numeric_user) {
		snprintf(err, errlen, "unable to find user %.*s: no matching entries in passwd file",
			 (int)ulen, uname);
		goto fail;
	}
	if (!out->home && !(out->home = strdup("/")))
		goto oom;

	if (glen > 0) {
		if (group_resolve(gname, glen, group, &out->gid, err, errlen) < 0)
			goto fail;
	} else if (name) {
		size_t nlen = strlen(name);
		t = group;
		while ((n = next_record(&t, f)) >= 0) {
			uint32_t gid;
			if (n < 4 || parse_id(f[2].s, f[2].len, &gid) || !list_has(f[3], name, nlen))
				continue;
			gid_t *g = realloc(out->sgids, (out->nsgids + 1) * sizeof(*g));
			if (!g)
				goto oom;
			out->sgids = g;
			out->sgids[out->nsgids++] = gid;
		}
	}
	free(name);
	return 0;
oom:
	snprintf(err, errlen, "out of memory resolving user %s", spec);
fail:
	free(name);
	exec_user_free(out);
	return -1;
}

int group_resolve(const char *name, size_t len, const char *group, gid_t *out, char *err,
		  size_t errlen)
{
	uint32_t id;
	if (parse_id(name, len, &id) == 0) {
		*out = id;
		return 0;
	}
	struct field f[MAX_FIELDS];
	int n;
	const char *t = group;
	while ((n = next_record(&t, f)) >= 0) {
		if (n >= 3 && field_eq(f[0], name, len) && parse_id(f[2].s, f[2].len, &id) == 0) {
			*out = id;
			return 0;
		}
	}
	snprintf(err, errlen, "unable to find group %.*s: no matching entries in group file", (int)len,
		 name);
	return -1;
}

void exec_user_free(struct exec_user *u)
{
	free(u->sgids);
	free(u->home);
	memset(u, 0, sizeof(*u));
}
