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
	static const char *const names[] = {"ARG",   "ENV", "CWD",    "USER",  "TTY",
					    "STDIN", "TAR", "RLIMIT", "GROUPS"};
	if (tag >= TAG_ARG && tag <= TAG_GROUPS)
		return names[tag - TAG_ARG];
	return tag == TAG_ROOT ? "ROOT" : "unknown";
}

/*
 * A ROOT value: absolute folders, each ended by a NUL, at least the step's
 * and at most ROOT_MAX_DIRS. They become overlayfs mount options, so the
 * characters those give a meaning (`,` `:` `\\`) are refused, as are `.`
 * and `..` components.
 */
static int root_parse(const uint8_t *v, size_t len, struct run_spec *spec)
{
	if (len == 0 || v[len - 1] != '\0')
		return -1;
	size_t count = 0;
	for (size_t i = 0; i < len; count++) {
		const char *dir = (const char *)v + i;
		size_t n = strlen(dir);
		if (!mount_target_valid(dir, n) || strpbrk(dir, ",:\\"))
			return -1;
		i += n + 1;
	}
	if (count > ROOT_MAX_DIRS || !(spec->root = malloc(len)))
		return -1;
	memcpy(spec->root, v, len);
	spec->root_len = len;
	spec->nroot = count;
	return 0;
}

/* One RLIMIT field into spec: a known resource, soft <= hard, each resource once. */
static int run_rlimit_parse(const uint8_t *v, uint32_t len, struct run_spec *spec, char *err,
			    size_t errlen)
{
	if (len != RUN_RLIMIT_LEN) {
		snprintf(err, errlen, "RUN: RLIMIT field of %u bytes, expected %d", len, RUN_RLIMIT_LEN);
		return -1;
	}
	struct run_rlimit r = {v[0], get_be64(v + 1), get_be64(v + 9)};
	if (r.resource >= RUN_MAX_RLIMITS) {
		snprintf(err, errlen, "RUN: RLIMIT of unknown resource %u", r.resource);
		return -1;
	}
	if (r.soft > r.hard) {
		snprintf(err, errlen, "RUN: RLIMIT %u: soft limit above the hard limit", r.resource);
		return -1;
	}
	for (size_t i = 0; i < spec->nrlimits; i++) {
		if (spec->rlimits[i].resource == r.resource) {
			snprintf(err, errlen, "RUN: RLIMIT %u given twice", r.resource);
			return -1;
		}
	}
	spec->rlimits[spec->nrlimits++] = r;
	return 0;
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
		case TAG_GROUPS:
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
		case TAG_TAR:
			if (spec->tar_op) {
				snprintf(err, errlen, "RUN: TAR given twice");
				goto fail;
			}
			if (len < 3 || v[0] < TAR_CREATE || v[0] > TAR_ENTRY ||
			    v[1] & ~(v[0] == TAR_CREATE ? TAR_ONE_FS : v[0] == TAR_EXTRACT ? TAR_KEEP_KINDS : 0) ||
			    v[2] != '/' || memchr(v + 2, 0, len - 2)) {
				snprintf(err, errlen, "RUN: invalid TAR field");
				goto fail;
			}
			if (!(spec->tar_path = malloc((size_t)len - 1))) {
				snprintf(err, errlen, "RUN: out of memory");
				goto fail;
			}
			memcpy(spec->tar_path, v + 2, len - 2);
			spec->tar_path[len - 2] = '\0';
			spec->tar_op = v[0];
			spec->tar_flags = v[1];
			continue;
		case TAG_RLIMIT:
			if (run_rlimit_parse(v, len, spec, err, errlen) < 0)
				goto fail;
			continue;
		case TAG_ROOT:
			if (spec->root) {
				snprintf(err, errlen, "RUN: ROOT given twice");
				goto fail;
			}
			if (root_parse(v, len, spec) < 0) {
				snprintf(err, errlen, "RUN: invalid ROOT field");
				goto fail;
			}
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
			char **slot = tag == TAG_CWD	? &spec->cwd
				      : tag == TAG_USER ? &spec->user
							: &spec->groups;
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
	free(spec->groups);
	free(spec->tar_path);
	free(spec->root);
	memset(spec, 0, sizeof(*spec));
}

/* Dot-separated labels of letters, digits and inner hyphens (RFC 1123). */
static int domain_valid(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
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

int hostname_valid(const char *s, size_t len)
{
	return domain_valid(s, len, HOSTNAME_MAX);
}

int dns_option_valid(const char *s, size_t len)
{
	if (len == 0 || len > DNS_OPTION_MAX)
		return 0;
	int in_value = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == ':' && !in_value && i > 0) {
			in_value = 1;
			continue;
		}
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			 c == '-' || c == '_' || (in_value && c == '.');
		if (!ok)
			return 0;
	}
	return s[len - 1] != ':';
}

static const char *config_tag_name(uint8_t tag)
{
	static const char *const names[] = {"HOSTNAME", "TIME", "ADDRESS", "GATEWAY", "DNS",
					       "MAC", "ENTROPY"};
	if (tag >= CFG_HOSTNAME && tag <= CFG_ENTROPY)
		return names[tag - CFG_HOSTNAME];
	if (tag == CFG_DNS_SEARCH)
		return "DNS_SEARCH";
	if (tag == CFG_DNS_OPTION)
		return "DNS_OPTION";
	if (tag == CFG_SHM_SIZE)
		return "SHM_SIZE";
	if (tag == CFG_MOUNT)
		return "MOUNT";
	if (tag == CFG_READONLY)
		return "READONLY";
	if (tag == CFG_ROOT_SIZE)
		return "ROOT_SIZE";
	if (tag == CFG_NIC)
		return "NIC";
	if (tag == CFG_BUILD)
		return "BUILD";
	return "unknown";
}

static int config_tag_known(uint8_t tag)
{
	return (tag >= CFG_HOSTNAME && tag <= CFG_ENTROPY) ||
	       (tag >= CFG_DNS_SEARCH && tag <= CFG_ROOT_SIZE) || tag == CFG_NIC ||
	       tag == CFG_MOUNT || tag == CFG_READONLY || tag == CFG_BUILD;
}

int mount_target_valid(const char *s, size_t len)
{
	if (len < 2 || len > MOUNT_TARGET_MAX || s[0] != '/' || s[len - 1] == '/')
		return 0;
	for (size_t i = 0; i < len;) {
		size_t j = i + 1;
		while (j < len && s[j] != '/')
			j++;
		size_t n = j - i - 1; /* the component after s[i] == '/' */
		if (n == 0 || (n == 1 && s[i + 1] == '.') ||
		    (n == 2 && s[i + 1] == '.' && s[i + 2] == '.'))
			return 0;
		i = j;
	}
	return 1;
}

/* A disk serial or 9p tag: what QEMU and the guest's sysfs carry unchanged. */
static int mount_source_valid(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

/* kind, flags, mode (2), size (8), then "source\0target\0file". */
#define MOUNT_FIXED 12

static int mount_parse(const uint8_t *v, uint32_t len, struct mount_spec *m, char *err,
		       size_t errlen)
{
	memset(m, 0, sizeof(*m));
	if (len < MOUNT_FIXED) {
		snprintf(err, errlen, "CONFIG: MOUNT field of %u bytes is too short", len);
		return -1;
	}
	m->kind = v[0];
	m->flags = v[1];
	m->mode = get_be16(v + 2);
	m->size = get_be64(v + 4);
	const char *s = (const char *)v + MOUNT_FIXED;
	size_t n = len - MOUNT_FIXED;
	const char *nul1 = memchr(s, 0, n);
	const char *nul2 = nul1 ? memchr(nul1 + 1, 0, n - (size_t)(nul1 + 1 - s)) : NULL;
	if (!nul2 || memchr(nul2 + 1, 0, n - (size_t)(nul2 + 1 - s))) {
		snprintf(err, errlen, "CONFIG: MOUNT needs exactly source, target and file");
		return -1;
	}
	size_t slen = (size_t)(nul1 - s), tlen = (size_t)(nul2 - nul1 - 1);
	size_t flen = n - (size_t)(nul2 + 1 - s);
	const char *t = nul1 + 1, *f = nul2 + 1;
	if (m->kind < MOUNT_EXT4 || m->kind > MOUNT_TMPFS) {
		snprintf(err, errlen, "CONFIG: MOUNT of unknown kind %u", m->kind);
		return -1;
	}
	if (m->flags & ~MOUNT_FLAGS_ALL || m->mode > 07777) {
		snprintf(err, errlen, "CONFIG: MOUNT with unknown flags or a bad mode");
		return -1;
	}
	if (!mount_target_valid(t, tlen)) {
		snprintf(err, errlen, "CONFIG: MOUNT target is not a clean absolute path");
		return -1;
	}
	int source_ok = m->kind == MOUNT_TMPFS
				? slen == 0
				: mount_source_valid(s, slen, m->kind == MOUNT_EXT4 ? 20 : 31);
	if (!source_ok) {
		snprintf(err, errlen, "CONFIG: MOUNT with an invalid source");
		return -1;
	}
	int file_ok = flen == 0 || (m->kind == MOUNT_9P && flen < sizeof(m->file) &&
				    !memchr(f, '/', flen) && !(flen == 1 && f[0] == '.') &&
				    !(flen == 2 && f[0] == '.' && f[1] == '.'));
	if (!file_ok) {
		snprintf(err, errlen, "CONFIG: MOUNT with an invalid file name");
		return -1;
	}
	if (m->kind != MOUNT_TMPFS && (m->mode || m->size)) {
		snprintf(err, errlen, "CONFIG: MOUNT mode and size apply to tmpfs only");
		return -1;
	}
	memcpy(m->source, s, slen);
	memcpy(m->target, t, tlen);
	memcpy(m->file, f, flen);
	return 0;
}

void config_free(struct guest_config *cfg)
{
	free(cfg->mounts);
	cfg->mounts = NULL;
	cfg->nmounts = 0;
}

/* The size each fixed-size CONFIG field must have (0 = variable). */
static uint32_t config_field_size(uint8_t tag)
{
	switch (tag) {
	case CFG_TIME:
	case CFG_ROOT_SIZE:
		return 8;
	case CFG_ADDRESS:
		return 5;
	case CFG_GATEWAY:
	case CFG_DNS:
		return 4;
	case CFG_READONLY:
	case CFG_BUILD:
		return 0; /* and must be empty: checked where parsed */
	case CFG_MAC:
		return 6;
	case CFG_NIC:
		return 11;
	case CFG_SHM_SIZE:
		return 8;
	default:
		return 0;
	}
}

int config_parse(const uint8_t *p, size_t n, struct guest_config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	unsigned seen = 0;
	int rc = -1;
	size_t off = 0;
	while (off < n) {
		if (n - off < 5) {
			snprintf(err, errlen, "CONFIG: truncated field header at offset %zu", off);
			goto out;
		}
		uint8_t tag = p[off];
		uint32_t len = get_be32(p + off + 1);
		off += 5;
		if (len > n - off) {
			snprintf(err, errlen, "CONFIG: field %s of %u bytes overruns the payload",
				 config_tag_name(tag), len);
			goto out;
		}
		const uint8_t *v = p + off;
		off += len;
		if (!config_tag_known(tag)) {
			snprintf(err, errlen, "CONFIG: unknown field tag 0x%02x", tag);
			goto out;
		}
		int repeats = tag == CFG_DNS || tag == CFG_MOUNT || tag == CFG_DNS_SEARCH ||
			      tag == CFG_DNS_OPTION || tag == CFG_NIC;
		if (!repeats && (seen & 1u << tag)) {
			snprintf(err, errlen, "CONFIG: %s given twice", config_tag_name(tag));
			goto out;
		}
		seen |= 1u << tag;
		uint32_t want = config_field_size(tag);
		if (want && len != want) {
			snprintf(err, errlen, "CONFIG: %s field of %u bytes, expected %u",
				 config_tag_name(tag), len, want);
			goto out;
		}
		switch (tag) {
		case CFG_HOSTNAME:
			/* Never truncated: a name the kernel cannot hold is refused. */
			if (len > HOSTNAME_MAX) {
				snprintf(err, errlen, "CONFIG: hostname of %u bytes exceeds %d", len,
					 HOSTNAME_MAX);
				goto out;
			}
			if (!hostname_valid((const char *)v, len)) {
				snprintf(err, errlen, "CONFIG: invalid hostname (RFC 1123)");
				goto out;
			}
			memcpy(cfg->hostname, v, len);
			cfg->hostname[len] = '\0';
			break;
		case CFG_TIME:
			cfg->time_ns = get_be64(v);
			break;
		case CFG_ROOT_SIZE:
			cfg->root_size = get_be64(v);
			break;
		case CFG_ADDRESS:
			if (v[4] > 32) {
				snprintf(err, errlen, "CONFIG: prefix length %u exceeds 32", v[4]);
				goto out;
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
				goto out;
			}
			memcpy(&cfg->dns[cfg->ndns++], v, 4);
			break;
		case CFG_MOUNT:
			if (cfg->nmounts == CONFIG_MAX_MOUNTS) {
				snprintf(err, errlen, "CONFIG: more than %d MOUNT fields",
					 CONFIG_MAX_MOUNTS);
				goto out;
			}
			if (!cfg->mounts &&
			    !(cfg->mounts = calloc(CONFIG_MAX_MOUNTS, sizeof(*cfg->mounts)))) {
				snprintf(err, errlen, "CONFIG: out of memory");
				goto out;
			}
			if (mount_parse(v, len, &cfg->mounts[cfg->nmounts], err, errlen) < 0)
				goto out;
			for (size_t i = 0; i < cfg->nmounts; i++)
				if (!strcmp(cfg->mounts[i].target, cfg->mounts[cfg->nmounts].target)) {
					snprintf(err, errlen, "CONFIG: two MOUNTs on one target");
					goto out;
				}
			cfg->nmounts++;
			break;
		case CFG_READONLY:
			if (len != 0) {
				snprintf(err, errlen, "CONFIG: READONLY field of %u bytes, expected 0",
					 len);
				goto out;
			}
			cfg->readonly_root = 1;
			break;
		case CFG_BUILD:
			if (len != 0) {
				snprintf(err, errlen, "CONFIG: BUILD field of %u bytes, expected 0", len);
				goto out;
			}
			cfg->build = 1;
			break;
		case CFG_MAC:
			/* A unicast address: the low bit of the first byte marks multicast. */
			if (v[0] & 1) {
				snprintf(err, errlen, "CONFIG: MAC is a multicast address");
				goto out;
			}
			cfg->has_mac = 1;
			memcpy(cfg->mac, v, 6);
			break;
		case CFG_NIC:
			if (cfg->nnics == CONFIG_MAX_NICS) {
				snprintf(err, errlen, "CONFIG: more than %d NIC fields",
					 CONFIG_MAX_NICS);
				goto out;
			}
			if (v[0] & 1 || v[10] > 32) {
				snprintf(err, errlen, "CONFIG: NIC with a multicast MAC or a prefix over 32");
				goto out;
			}
			memcpy(cfg->nics[cfg->nnics].mac, v, 6);
			memcpy(&cfg->nics[cfg->nnics].address, v + 6, 4);
			cfg->nics[cfg->nnics++].prefix = v[10];
			break;
		case CFG_DNS_SEARCH:
			if (cfg->nsearch == CONFIG_MAX_SEARCH) {
				snprintf(err, errlen, "CONFIG: more than %d DNS_SEARCH fields",
					 CONFIG_MAX_SEARCH);
				goto out;
			}
			if (!domain_valid((const char *)v, len, SEARCH_DOMAIN_MAX)) {
				snprintf(err, errlen, "CONFIG: invalid DNS search domain");
				goto out;
			}
			memcpy(cfg->dns_search[cfg->nsearch], v, len);
			cfg->dns_search[cfg->nsearch++][len] = '\0';
			break;
		case CFG_DNS_OPTION:
			if (cfg->noptions == CONFIG_MAX_DNS_OPTIONS) {
				snprintf(err, errlen, "CONFIG: more than %d DNS_OPTION fields",
					 CONFIG_MAX_DNS_OPTIONS);
				goto out;
			}
			if (!dns_option_valid((const char *)v, len)) {
				snprintf(err, errlen, "CONFIG: invalid DNS option");
				goto out;
			}
			memcpy(cfg->dns_options[cfg->noptions], v, len);
			cfg->dns_options[cfg->noptions++][len] = '\0';
			break;
		case CFG_SHM_SIZE:
			/* tmpfs reads size=0 as unlimited: never what was asked for. */
			cfg->shm_size = get_be64(v);
			if (cfg->shm_size == 0) {
				snprintf(err, errlen, "CONFIG: SHM_SIZE of 0 bytes");
				goto out;
			}
			break;
		case CFG_ENTROPY:
			if (len < CONFIG_MIN_ENTROPY || len > CONFIG_MAX_ENTROPY) {
				snprintf(err, errlen, "CONFIG: ENTROPY of %u bytes, expected %d to %d",
					 len, CONFIG_MIN_ENTROPY, CONFIG_MAX_ENTROPY);
				goto out;
			}
			memcpy(cfg->entropy, v, len);
			cfg->nentropy = len;
			break;
		}
	}
	if (cfg->has_gateway && !cfg->has_address) {
		snprintf(err, errlen, "CONFIG: GATEWAY without ADDRESS");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		config_free(cfg);
	return rc;
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
