#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int msg_type_known(uint8_t type)
{
	return (type >= MSG_READY && type <= MSG_PONG) || (type >= MSG_RUN && type <= MSG_PING);
}

const char *msg_type_name(uint8_t type)
{
	static const char *const guest[] = {"READY", "STDOUT", "STDERR", "EXIT",
					    "ERROR", "STARTED", "COUNTERS", "PONG"};
	static const char *const host[] = {"RUN", "STDIN", "SIGNAL", "RESIZE",
					   "SHUTDOWN", "HOSTS", "STATS", "CONFIG", "PING"};
	if (type >= MSG_READY && type <= MSG_PONG)
		return guest[type - MSG_READY];
	if (type >= MSG_RUN && type <= MSG_PING)
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

int hostname_valid(const char *s, size_t len)
{
	if (len == 0 || len > HOSTNAME_MAX)
		return 0;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && (c != '-' || label == 0))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

static const char *config_tag_name(uint8_t tag)
{
	static const char *const names[] = {"HOSTNAME", "TIME", "ADDRESS", "GATEWAY", "DNS",
					       "MAC", "ENTROPY"};
	if (tag >= CFG_HOSTNAME && tag <= CFG_ENTROPY)
		return names[tag - CFG_HOSTNAME];
	return "unknown";
}

/* The size each fixed-size CONFIG field must have (0 = variable). */
static uint32_t config_field_size(uint8_t tag)
{
	switch (tag) {
	case CFG_TIME:
		return 8;
	case CFG_ADDRESS:
		return 5;
	case CFG_GATEWAY:
	case CFG_DNS:
		return 4;
	case CFG_MAC:
		return 6;
	default:
		return 0;
	}
}

int config_parse(const uint8_t *p, size_t n, struct guest_config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	unsigned seen = 0;
	size_t off = 0;
	while (off < n) {
		if (n - off < 5) {
			snprintf(err, errlen, "CONFIG: truncated field header at offset %zu", off);
			return -1;
		}
		uint8_t tag = p[off];
		uint32_t len = get_be32(p + off + 1);
		off += 5;
		if (len > n - off) {
			snprintf(err, errlen, "CONFIG: field %s of %u bytes overruns the payload",
				 config_tag_name(tag), len);
			return -1;
		}
		const uint8_t *v = p + off;
		off += len;
		if (tag < CFG_HOSTNAME || tag > CFG_ENTROPY) {
			snprintf(err, errlen, "CONFIG: unknown field tag 0x%02x", tag);
			return -1;
		}
		if (tag != CFG_DNS && (seen & 1u << tag)) {
			snprintf(err, errlen, "CONFIG: %s given twice", config_tag_name(tag));
			return -1;
		}
		seen |= 1u << tag;
		uint32_t want = config_field_size(tag);
		if (want && len != want) {
			snprintf(err, errlen, "CONFIG: %s field of %u bytes, expected %u",
				 config_tag_name(tag), len, want);
			return -1;
		}
		switch (tag) {
		case CFG_HOSTNAME:
			/* Never truncated: a name the kernel cannot hold is refused. */
			if (len > HOSTNAME_MAX) {
				snprintf(err, errlen, "CONFIG: hostname of %u bytes exceeds %d", len,
					 HOSTNAME_MAX);
				return -1;
			}
			if (!hostname_valid((const char *)v, len)) {
				snprintf(err, errlen, "CONFIG: invalid hostname (RFC 1123)");
				return -1;
			}
			memcpy(cfg->hostname, v, len);
			cfg->hostname[len] = '\0';
			break;
		case CFG_TIME:
			cfg->time_ns = get_be64(v);
			break;
		case CFG_ADDRESS:
			if (v[4] > 32) {
				snprintf(err, errlen, "CONFIG: prefix length %u exceeds 32", v[4]);
				return -1;
			}
			cfg->has_address = 1;
			memcpy(&cfg->address, v, 4);
			cfg->prefix = v[4];
			break;
		case CFG_GATEWAY:
			cfg->has_gateway = 1;
			memcpy(&cfg->gateway, v, 4);
			break;
		case CFG_DNS:
			if (cfg->ndns == CONFIG_MAX_DNS) {
				snprintf(err, errlen, "CONFIG: more than %d DNS fields", CONFIG_MAX_DNS);
				return -1;
			}
			memcpy(&cfg->dns[cfg->ndns++], v, 4);
			break;
		case CFG_MAC:
			/* A unicast address: the low bit of the first byte marks multicast. */
			if (v[0] & 1) {
				snprintf(err, errlen, "CONFIG: MAC is a multicast address");
				return -1;
			}
			cfg->has_mac = 1;
			memcpy(cfg->mac, v, 6);
			break;
		case CFG_ENTROPY:
			if (len < CONFIG_MIN_ENTROPY || len > CONFIG_MAX_ENTROPY) {
				snprintf(err, errlen, "CONFIG: ENTROPY of %u bytes, expected %d to %d",
					 len, CONFIG_MIN_ENTROPY, CONFIG_MAX_ENTROPY);
				return -1;
			}
			memcpy(cfg->entropy, v, len);
			cfg->nentropy = len;
			break;
		}
	}
	if (cfg->has_gateway && !cfg->has_address) {
		snprintf(err, errlen, "CONFIG: GATEWAY without ADDRESS");
		return -1;
	}
	return 0;
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
