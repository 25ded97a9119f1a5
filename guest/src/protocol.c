#include "protocol.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int msg_type_known(uint8_t type)
{
	return (type >= MSG_READY && type <= MSG_COUNTERS) || (type >= MSG_RUN && type <= MSG_STATS);
}

const char *msg_type_name(uint8_t type)
{
	static const char *const guest[] = {"READY", "STDOUT", "STDERR", "EXIT",
					    "ERROR", "STARTED", "COUNTERS"};
	static const char *const host[] = {"RUN", "STDIN", "SIGNAL", "RESIZE",
					   "SHUTDOWN", "HOSTS", "STATS"};
	if (type >= MSG_READY && type <= MSG_COUNTERS)
		return guest[type - MSG_READY];
	if (type >= MSG_RUN && type <= MSG_STATS)
		return host[type - MSG_RUN];
	return "unknown";
}

void frame_hdr_encode(uint8_t out[FRAME_HDR_LEN], uint32_t len, uint8_t type, uint32_t proc)
{
	put_be32(out, len);
	out[4] = type;
	put_be32(out + 5, proc);
}

enum frame_status frame_parse(const uint8_t *buf, size_t n, struct frame_hdr *hdr,
			      const uint8_t **payload, size_t *consumed)
{
	if (n < FRAME_HDR_LEN)
		return FRAME_NEED_MORE;
	struct frame_hdr h = {get_be32(buf), buf[4], get_be32(buf + 5)};
	if (h.len > FRAME_MAX_PAYLOAD)
		return FRAME_TOO_LONG;
	if (!msg_type_known(h.type))
		return FRAME_UNKNOWN_TYPE;
	if (n - FRAME_HDR_LEN < h.len)
		return FRAME_NEED_MORE;
	*hdr = h;
	*payload = buf + FRAME_HDR_LEN;
	*consumed = FRAME_HDR_LEN + (size_t)h.len;
	return FRAME_OK;
}

void frame_error(enum frame_status st, const uint8_t *buf, char *err, size_t errlen)
{
	switch (st) {
	case FRAME_TOO_LONG:
		snprintf(err, errlen, "frame length %u exceeds %u", get_be32(buf), FRAME_MAX_PAYLOAD);
		break;
	case FRAME_UNKNOWN_TYPE:
		snprintf(err, errlen, "unknown frame type 0x%02x", buf[4]);
		break;
	default:
		snprintf(err, errlen, "frame error");
		break;
	}
}

/* Appends s (taking ownership) to a NULL-terminated vector. */
static int vec_push(char ***vec, size_t *count, char *s)
{
	char **v = realloc(*vec, (*count + 2) * sizeof(**vec));
	if (!v)
		return -1;
	v[(*count)++] = s;
	v[*count] = NULL;
	*vec = v;
	return 0;
}

static const char *tag_name(uint8_t tag)
{
	static const char *const names[] = {"ARG", "ENV", "CWD", "USER", "TTY", "STDIN"};
	if (tag >= TAG_ARG && tag <= TAG_STDIN)
		return names[tag - TAG_ARG];
	return "unknown";
}

int run_spec_parse(const uint8_t *p, size_t n, struct run_spec *spec, char *err, size_t errlen)
{
	memset(spec, 0, sizeof(*spec));
	size_t off = 0;
	while (off < n) {
		if (n - off < 5) {
			snprintf(err, errlen, "RUN: truncated field header at offset %zu", off);
			goto fail;
		}
		uint8_t tag = p[off];
		uint32_t len = get_be32(p + off + 1);
		off += 5;
		if (len > n - off) {
			snprintf(err, errlen, "RUN: field %s of %u bytes overruns the payload", tag_name(tag), len);
			goto fail;
		}
		const uint8_t *v = p + off;
		off += len;

		char *s = NULL;
		switch (tag) {
		case TAG_ARG:
		case TAG_ENV:
		case TAG_CWD:
		case TAG_USER:
			if (memchr(v, 0, len)) {
				snprintf(err, errlen, "RUN: NUL byte in %s", tag_name(tag));
				goto fail;
			}
			s = malloc((size_t)len + 1);
			if (!s) {
				snprintf(err, errlen, "RUN: out of memory");
				goto fail;
			}
			memcpy(s, v, len);
			s[len] = '\0';
			break;
		case TAG_TTY:
			if (len != 4) {
				snprintf(err, errlen, "RUN: TTY field of %u bytes, expected 4", len);
				goto fail;
			}
			if (spec->tty) {
				snprintf(err, errlen, "RUN: TTY given twice");
				goto fail;
			}
			spec->tty = 1;
			spec->rows = get_be16(v);
			spec->cols = get_be16(v + 2);
			continue;
		case TAG_STDIN:
			if (len != 0) {
				snprintf(err, errlen, "RUN: STDIN field of %u bytes, expected 0", len);
				goto fail;
			}
			if (spec->stdin_open) {
				snprintf(err, errlen, "RUN: STDIN given twice");
				goto fail;
			}
			spec->stdin_open = 1;
			continue;
		default:
			snprintf(err, errlen, "RUN: unknown field tag 0x%02x", tag);
			goto fail;
		}

		int rc = 0;
		if (tag == TAG_ARG) {
			rc = vec_push(&spec->argv, &spec->argc, s);
		} else if (tag == TAG_ENV) {
			rc = vec_push(&spec->envp, &spec->envc, s);
		} else {
			char **slot = tag == TAG_CWD ? &spec->cwd : &spec->user;
			if (*slot) {
				free(s);
				snprintf(err, errlen, "RUN: %s given twice", tag_name(tag));
				goto fail;
			}
			*slot = s;
		}
		if (rc < 0) {
			free(s);
			snprintf(err, errlen, "RUN: out of memory");
			goto fail;
		}
	}
	if (spec->argc == 0) {
		snprintf(err, errlen, "RUN: no ARG field");
		goto fail;
	}
	if (!spec->envp && !(spec->envp = calloc(1, sizeof(*spec->envp)))) {
		snprintf(err, errlen, "RUN: out of memory");
		goto fail;
	}
	return 0;
fail:
	run_spec_free(spec);
	return -1;
}

static void vec_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void run_spec_free(struct run_spec *spec)
{
	vec_free(spec->argv);
	vec_free(spec->envp);
	free(spec->cwd);
	free(spec->user);
	memset(spec, 0, sizeof(*spec));
}

int cmdline_get(const char *cmdline, const char *key, char *out, size_t outlen)
{
	const char *prefix = "cocoon.";
	size_t plen = strlen(prefix), klen = strlen(key);
	int found = 0;
	const char *p = cmdline;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		/* One argument, with the kernel's quoting: spaces inside double
		 * quotes do not end it and the quotes themselves are dropped. */
		char tok[4096];
		size_t t = 0;
		int quoted = 0, overflow = 0;
		for (; *p; p++) {
			if (*p == '"') {
				quoted = !quoted;
				continue;
			}
			if (!quoted && (*p == ' ' || *p == '\t' || *p == '\n'))
				break;
			if (t + 1 < sizeof(tok))
				tok[t++] = *p;
			else
				overflow = 1;
		}
		tok[t] = '\0';
		if (strncmp(tok, prefix, plen) || strncmp(tok + plen, key, klen) || tok[plen + klen] != '=')
			continue;
		const char *val = tok + plen + klen + 1;
		if (overflow || strlen(val) >= outlen) {
			found = -1;
			continue;
		}
		strcpy(out, val);
		found = 1; /* keep looking: the last occurrence wins */
	}
	return found;
}

int parse_ipv4_cidr(const char *s, uint32_t *addr, int *prefix)
{
	const char *slash = strchr(s, '/');
	char host[INET_ADDRSTRLEN];
	if (!slash || (size_t)(slash - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(slash - s));
	host[slash - s] = '\0';
	struct in_addr in;
	if (inet_pton(AF_INET, host, &in) != 1)
		return -1;
	const char *p = slash + 1;
	int n = 0;
	if (!*p || strlen(p) > 2)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (*p - '0');
	}
	if (n > 32)
		return -1;
	*addr = in.s_addr;
	*prefix = n;
	return 0;
}

int resolv_conf_format(const char *dns, char *out, size_t outlen)
{
	size_t used = 0;
	out[0] = '\0';
	while (*dns) {
		const char *end = strchr(dns, ',');
		size_t len = end ? (size_t)(end - dns) : strlen(dns);
		char one[INET_ADDRSTRLEN];
		struct in_addr in;
		if (len == 0 || len >= sizeof(one))
			return -1;
		memcpy(one, dns, len);
		one[len] = '\0';
		if (inet_pton(AF_INET, one, &in) != 1)
			return -1;
		int n = snprintf(out + used, outlen - used, "nameserver %s\n", one);
		if (n < 0 || (size_t)n >= outlen - used)
			return -1;
		used += (size_t)n;
		dns += len + (end ? 1 : 0);
	}
	return 0;
}
