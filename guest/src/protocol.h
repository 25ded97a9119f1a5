/*
 * The guest protocol of docs/guest-protocol.md: frames, RUN and CONFIG
 * fields, boot parameters. Pure functions over buffers, no I/O, so they can be unit
 * tested on the build host.
 */
#ifndef COCOON_PROTOCOL_H
#define COCOON_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 3
#define FRAME_HDR_LEN 9
#define FRAME_MAX_PAYLOAD (4u << 20)

enum msg_type {
	/* guest -> host */
	MSG_READY = 0x01,
	MSG_STDOUT = 0x02,
	MSG_STDERR = 0x03,
	MSG_EXIT = 0x04,
	MSG_ERROR = 0x05,
	MSG_STARTED = 0x06,
	MSG_COUNTERS = 0x07,
	MSG_PONG = 0x08,
	/* host -> guest */
	MSG_RUN = 0x10,
	MSG_STDIN = 0x11,
	MSG_SIGNAL = 0x12,
	MSG_RESIZE = 0x13,
	MSG_SHUTDOWN = 0x14,
	MSG_HOSTS = 0x15,
	MSG_STATS = 0x16,
	MSG_CONFIG = 0x17,
	MSG_PING = 0x18,
};

enum run_tag {
	TAG_ARG = 0x01,
	TAG_ENV = 0x02,
	TAG_CWD = 0x03,
	TAG_USER = 0x04,
	TAG_TTY = 0x05,
	TAG_STDIN = 0x06,
	TAG_TAR = 0x07,
	TAG_RLIMIT = 0x08,
	TAG_GROUPS = 0x09,
	TAG_ROOT = 0x0a, /* build: run in an overlay of the step's folder over lower folders */
};

/* Linux's RLIMIT_* numbers run 0 .. RUN_MAX_RLIMITS-1 (RLIM_NLIMITS). */
#define RUN_MAX_RLIMITS 16
/* An RLIMIT field: resource (1 byte), soft and hard (8 bytes each, big-endian). */
#define RUN_RLIMIT_LEN 17

/* A TAR field: the process is the agent's own tar code, not ARG's program. */
enum tar_op {
	TAR_CREATE = 1,  /* write a tar of path to stdout */
	TAR_EXTRACT = 2, /* unpack the tar on stdin at path */
	TAR_LAYER = 3,   /* write an overlay upper folder at path as an OCI layer tar */
	TAR_UNLAYER = 4, /* unpack the OCI layer tar on stdin as an overlay upper folder */
	TAR_ENTRY = 5,   /* write a tar of path's own entry alone, its link followed */
};
#define TAR_ONE_FS 0x01     /* TAR_CREATE: do not descend into other filesystems */
#define TAR_KEEP_KINDS 0x02 /* TAR_EXTRACT: never replace a folder by a non-folder or the reverse */

enum config_tag {
	CFG_HOSTNAME = 0x01,
	CFG_TIME = 0x02,
	CFG_ADDRESS = 0x03,
	CFG_GATEWAY = 0x04,
	CFG_DNS = 0x05,
	CFG_MAC = 0x06,
	CFG_ENTROPY = 0x07,
	CFG_DNS_SEARCH = 0x08,
	CFG_DNS_OPTION = 0x09,
	CFG_SHM_SIZE = 0x0a,
	CFG_ROOT_SIZE = 0x0b,
	CFG_NIC = 0x0d, /* one more network card: eth1, eth2, ... in order */
	CFG_MOUNT = 0x10,
	CFG_READONLY = 0x11,
	CFG_BUILD = 0x18, /* a build VM: no main process, up until SHUTDOWN */
};

struct frame_hdr {
	uint32_t len;
	uint8_t type;
	uint32_t proc;
};

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Any type of either direction. */
int msg_type_known(uint8_t type);
const char *msg_type_name(uint8_t type);

void frame_hdr_encode(uint8_t out[FRAME_HDR_LEN], uint32_t len, uint8_t type, uint32_t proc);

enum frame_status {
	FRAME_NEED_MORE = 0,  /* no complete frame yet */
	FRAME_OK = 1,         /* *hdr, *payload and *consumed are set */
	FRAME_TOO_LONG = -1,
	FRAME_UNKNOWN_TYPE = -2,
};

/*
 * Looks for one frame at the start of buf. The header is validated as soon
 * as its 9 bytes are there, so a corrupt stream is reported without waiting
 * for a payload that may never come. *payload points into buf.
 */
enum frame_status frame_parse(const uint8_t *buf, size_t n, struct frame_hdr *hdr,
			      const uint8_t **payload, size_t *consumed);

/* A description of a frame_parse error for an ERROR message. */
void frame_error(enum frame_status st, const uint8_t *buf, char *err, size_t errlen);

struct run_spec {
	char **argv; /* NULL-terminated, argc >= 1 */
	size_t argc;
	char **envp; /* NULL-terminated */
	size_t envc;
	char *cwd;   /* NULL = "/" */
	char *user;  /* NULL = "0:0" */
	int tty;     /* TTY field present */
	uint16_t rows, cols;
	int stdin_open; /* STDIN field present */
	uint8_t tar_op;    /* 0 = exec ARG; else enum tar_op */
	uint8_t tar_flags;
	char *tar_path;
	struct run_rlimit {
		uint8_t resource;
		uint64_t soft, hard; /* UINT64_MAX = unlimited */
	} rlimits[RUN_MAX_RLIMITS];
	size_t nrlimits;
	char *groups; /* GROUPS: comma-separated names or numbers; NULL = none */
	/* ROOT: the step's folder, then the lower folders, top first, each
	 * NUL-terminated, nroot in all; NULL = the container's own root. */
	char *root;
	size_t root_len;
	size_t nroot;
};

/*
 * Parses a RUN payload. On error returns -1 with a one-line message in err
 * and *spec left empty (nothing to free). On success the caller frees spec
 * with run_spec_free.
 */
int run_spec_parse(const uint8_t *p, size_t n, struct run_spec *spec, char *err, size_t errlen);
void run_spec_free(struct run_spec *spec);

/* Folders in a ROOT field (the step's and its lowers): overlayfs's own limit. */
#define ROOT_MAX_DIRS 500

/* Linux's limit on a hostname (HOST_NAME_MAX). */
#define HOSTNAME_MAX 64
/* More name servers than this are not used by any resolver. */
#define CONFIG_MAX_DNS 8
/* resolv.conf's search list and options (--dns-search, --dns-option). */
#define CONFIG_MAX_SEARCH 6
#define SEARCH_DOMAIN_MAX 253
#define CONFIG_MAX_DNS_OPTIONS 16
#define DNS_OPTION_MAX 63
/* Host entropy for the guest's RNG: at least a 256-bit seed. */
#define CONFIG_MIN_ENTROPY 32
#define CONFIG_MAX_ENTROPY 256

/* Network cards after eth0: microvm's 8 virtio-mmio slots less the root
 * disk, the agent's port and eth0 leave at most 5; 7 bounds any layout. */
#define CONFIG_MAX_NICS 7

/* Mounts one container may have; more are refused. */
#define CONFIG_MAX_MOUNTS 64
/* A mount's target path, in bytes. */
#define MOUNT_TARGET_MAX 1024

enum mount_kind {
	MOUNT_EXT4 = 1,  /* a volume's virtio-blk disk, found by its serial */
	MOUNT_9P = 2,    /* a host folder shared over virtio-9p, by its tag */
	MOUNT_TMPFS = 3,
};

enum mount_flag {
	MOUNT_RDONLY = 0x01,
	MOUNT_COPY_UP = 0x02, /* an empty volume first gets the image's files at target */
	MOUNT_NOEXEC = 0x04,
	MOUNT_NOSUID = 0x08,
	MOUNT_NODEV = 0x10,
};
#define MOUNT_FLAGS_ALL 0x1f

/* One MOUNT field. Strings are NUL-terminated copies. */
struct mount_spec {
	uint8_t kind;
	uint8_t flags;
	uint16_t mode;     /* tmpfs */
	uint64_t size;     /* tmpfs, bytes; 0 = the kernel's default */
	char source[32];   /* ext4: the disk's serial; 9p: the mount tag; tmpfs: "" */
	char target[MOUNT_TARGET_MAX + 1];
	char file[256];    /* 9p: a file of the share bound on target; "" = the share */
};

/* A CONFIG payload: the per-container settings, applied before READY. */
struct guest_config {
	char hostname[HOSTNAME_MAX + 1]; /* "" = keep the kernel's */
	uint64_t time_ns;                /* wall clock; 0 = not given */
	int has_address;
	uint32_t address;                /* network byte order */
	int prefix;
	int has_gateway;
	uint32_t gateway;                /* network byte order */
	uint32_t dns[CONFIG_MAX_DNS];    /* network byte order */
	size_t ndns;
	int has_mac;
	uint8_t mac[6];
	struct nic_spec {
		uint8_t mac[6];
		uint32_t address; /* network byte order */
		int prefix;
	} nics[CONFIG_MAX_NICS]; /* eth1, eth2, ...: no gateway of their own */
	size_t nnics;
	uint8_t entropy[CONFIG_MAX_ENTROPY];
	size_t nentropy;
	char dns_search[CONFIG_MAX_SEARCH][SEARCH_DOMAIN_MAX + 1];
	size_t nsearch;
	char dns_options[CONFIG_MAX_DNS_OPTIONS][DNS_OPTION_MAX + 1];
	size_t noptions;
	uint64_t shm_size;         /* bytes of /dev/shm; 0 = the kernel's default */
	struct mount_spec *mounts; /* in mount order; free with config_free */
	size_t nmounts;
	int readonly_root;         /* the container sees / read-only */
	uint64_t root_size;        /* the root disk's bytes when its device's size is not; 0 = not given */
	int build;                 /* BUILD: every RUN is an extra process */
};

/*
 * Parses a CONFIG payload. Returns 0, or -1 with a one-line message in err:
 * an invalid field is never applied partly or truncated.
 */
int config_parse(const uint8_t *p, size_t n, struct guest_config *cfg, char *err, size_t errlen);
void config_free(struct guest_config *cfg);

/* A clean absolute path: no empty, `.` or `..` component, no trailing `/`, not `/`. */
int mount_target_valid(const char *s, size_t len);

/* RFC 1123: dot-separated labels of letters, digits and inner hyphens,
 * at most HOSTNAME_MAX bytes in all. */
int hostname_valid(const char *s, size_t len);

/* A resolv.conf option: NAME or NAME:VALUE, letters, digits, `-`, `_`, `.` (the value only). */
int dns_option_valid(const char *s, size_t len);

/*
 * Finds `cocoon.KEY=VALUE` in a kernel command line and copies VALUE (with
 * surrounding double quotes removed) to out. Returns 1 if found, 0 if not,
 * -1 if the value does not fit.
 */
int cmdline_get(const char *cmdline, const char *key, char *out, size_t outlen);

#endif
