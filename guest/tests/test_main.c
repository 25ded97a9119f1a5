/* Unit tests of the agent's pure parts: framing, RUN and CONFIG fields
 * (also against the shared vectors of docs/guest-protocol-vectors.txt, whose
 * path is the first argument), boot parameters, user resolution, the byte
 * queue, the helpers of process.c, mounts.c, net.c and util.c, and the agent's tar
 * and copy-up (on a temporary folder). Built with the
 * host's gcc. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "mounts.h"
#include "net.h"
#include "process.h"
#include "copytree.h"
#include "layers.h"
#include "protocol.h"
#include "tar.h"
#include "userdb.h"
#include "util.h"
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

static int passed, failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (cond) {                                                                        \
			passed++;                                                                  \
		} else {                                                                           \
			failed++;                                                                  \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
		}                                                                                  \
	} while (0)

static int str_eq(const char *a, const char *b)
{
	return a && strcmp(a, b) == 0;
}

#define CHECK_STR(a, b) CHECK(str_eq((a), (b)))

/* A RUN payload under construction. */
struct payload {
	uint8_t data[4096];
	size_t len;
};

static void field(struct payload *p, uint8_t tag, const void *v, uint32_t len)
{
	p->data[p->len] = tag;
	put_be32(p->data + p->len + 1, len);
	memcpy(p->data + p->len + 5, v, len);
	p->len += 5 + len;
}

static void sfield(struct payload *p, uint8_t tag, const char *s)
{
	field(p, tag, s, (uint32_t)strlen(s));
}

static void test_frames(void)
{
	uint8_t h[FRAME_HDR_LEN];
	frame_hdr_encode(h, 0x01020304, MSG_STDOUT, 0xa0b0c0d0);
	static const uint8_t want[] = {1, 2, 3, 4, 2, 0xa0, 0xb0, 0xc0, 0xd0};
	CHECK(memcmp(h, want, sizeof(want)) == 0);

	/* Round trip, with the payload following. */
	uint8_t buf[64];
	frame_hdr_encode(buf, 5, MSG_RUN, 7);
	memcpy(buf + FRAME_HDR_LEN, "hello", 5);
	struct frame_hdr fh;
	const uint8_t *pl;
	size_t used;
	CHECK(frame_parse(buf, FRAME_HDR_LEN + 5, &fh, &pl, &used) == FRAME_OK);
	CHECK(fh.len == 5 && fh.type == MSG_RUN && fh.proc == 7);
	CHECK(used == FRAME_HDR_LEN + 5 && pl == buf + FRAME_HDR_LEN);

	/* Truncated header and payload: more is needed, nothing is consumed. */
	for (size_t n = 0; n < FRAME_HDR_LEN + 5; n++)
		CHECK(frame_parse(buf, n, &fh, &pl, &used) == FRAME_NEED_MORE);

	/* Two frames back to back; an empty payload. */
	frame_hdr_encode(buf + 14, 0, MSG_SHUTDOWN, 0);
	CHECK(frame_parse(buf + 14, FRAME_HDR_LEN, &fh, &pl, &used) == FRAME_OK);
	CHECK(fh.len == 0 && fh.type == MSG_SHUTDOWN && used == FRAME_HDR_LEN);

	/* Lengths at and over the maximum. */
	uint8_t *big = calloc(1, FRAME_HDR_LEN + FRAME_MAX_PAYLOAD);
	frame_hdr_encode(big, FRAME_MAX_PAYLOAD, MSG_STDIN, 1);
	CHECK(frame_parse(big, FRAME_HDR_LEN + FRAME_MAX_PAYLOAD, &fh, &pl, &used) == FRAME_OK);
	CHECK(used == FRAME_HDR_LEN + FRAME_MAX_PAYLOAD);
	CHECK(frame_parse(big, FRAME_HDR_LEN + FRAME_MAX_PAYLOAD - 1, &fh, &pl, &used) ==
	      FRAME_NEED_MORE);
	free(big);
	frame_hdr_encode(h, FRAME_MAX_PAYLOAD + 1, MSG_STDIN, 1);
	CHECK(frame_parse(h, FRAME_HDR_LEN, &fh, &pl, &used) == FRAME_TOO_LONG);
	frame_hdr_encode(h, 0xffffffffu, MSG_STDIN, 1);
	CHECK(frame_parse(h, FRAME_HDR_LEN, &fh, &pl, &used) == FRAME_TOO_LONG);
	char err[128];
	frame_error(FRAME_TOO_LONG, h, err, sizeof(err));
	CHECK(strstr(err, "4294967295") != NULL);

	/* Unknown types, reported from the header alone. */
	static const uint8_t unknown[] = {0x00, 0x09, 0x0f, 0x19, 0x20, 0xff};
	for (size_t i = 0; i < sizeof(unknown); i++) {
		frame_hdr_encode(h, 3, unknown[i], 1);
		CHECK(frame_parse(h, FRAME_HDR_LEN, &fh, &pl, &used) == FRAME_UNKNOWN_TYPE);
	}
	frame_hdr_encode(h, 3, 0x19, 1);
	frame_error(FRAME_UNKNOWN_TYPE, h, err, sizeof(err));
	CHECK(strstr(err, "0x19") != NULL);
	for (int t = 0; t < 256; t++)
		CHECK(msg_type_known((uint8_t)t) == ((t >= 1 && t <= 8) || (t >= 0x10 && t <= 0x18)));
	CHECK_STR(msg_type_name(MSG_RESIZE), "RESIZE");
	CHECK_STR(msg_type_name(MSG_STARTED), "STARTED");
	CHECK_STR(msg_type_name(MSG_COUNTERS), "COUNTERS");
	CHECK_STR(msg_type_name(MSG_CONFIG), "CONFIG");
	CHECK_STR(msg_type_name(MSG_STATS), "STATS");
}

static void test_run(void)
{
	struct run_spec s;
	char err[256];
	struct payload p = {.len = 0};

	sfield(&p, TAG_ARG, "sh");
	sfield(&p, TAG_ENV, "PATH=/bin");
	sfield(&p, TAG_ARG, "-c");
	sfield(&p, TAG_ENV, "A=b=c");
	sfield(&p, TAG_ARG, "echo hi");
	sfield(&p, TAG_ARG, "");
	sfield(&p, TAG_CWD, "/work");
	sfield(&p, TAG_USER, "nobody:users");
	field(&p, TAG_TTY, "\x00\x18\x00\x50", 4);
	field(&p, TAG_STDIN, "", 0);
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) == 0);
	CHECK(s.argc == 4 && s.envc == 2);
	CHECK_STR(s.argv[0], "sh");
	CHECK_STR(s.argv[1], "-c");
	CHECK_STR(s.argv[2], "echo hi");
	CHECK_STR(s.argv[3], "");
	CHECK(s.argv[4] == NULL);
	CHECK_STR(s.envp[0], "PATH=/bin");
	CHECK_STR(s.envp[1], "A=b=c");
	CHECK(s.envp[2] == NULL);
	CHECK_STR(s.cwd, "/work");
	CHECK_STR(s.user, "nobody:users");
	CHECK(s.tty && s.rows == 24 && s.cols == 80);
	CHECK(s.stdin_open);
	run_spec_free(&s);

	/* Only ARG: defaults, and an empty (not NULL) environment. */
	p.len = 0;
	sfield(&p, TAG_ARG, "true");
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) == 0);
	CHECK(s.argc == 1 && s.envc == 0 && s.envp && s.envp[0] == NULL);
	CHECK(!s.cwd && !s.user && !s.tty && !s.stdin_open);
	run_spec_free(&s);

	/* Missing ARG, also in an empty payload. */
	CHECK(run_spec_parse(p.data, 0, &s, err, sizeof(err)) < 0);
	CHECK(strstr(err, "ARG") != NULL);
	p.len = 0;
	sfield(&p, TAG_ENV, "A=1");
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	CHECK(strstr(err, "no ARG") != NULL);

	/* Unknown tag, after valid fields (which must be freed: ASan). */
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	sfield(&p, TAG_ENV, "A=1");
	sfield(&p, TAG_CWD, "/");
	sfield(&p, 0x7f, "?");
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	CHECK(strstr(err, "unknown field tag 0x7f") != NULL);
	CHECK(s.argv == NULL && s.cwd == NULL);

	/* A field length overrunning the payload. */
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	sfield(&p, TAG_ARG, "abcdef");
	CHECK(run_spec_parse(p.data, p.len - 1, &s, err, sizeof(err)) < 0);
	CHECK(strstr(err, "overruns") != NULL);
	put_be32(p.data + 1, 0xffffffffu);
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);

	/* A field header cut short. */
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	CHECK(run_spec_parse(p.data, p.len + 3, &s, err, sizeof(err)) < 0);
	CHECK(strstr(err, "truncated") != NULL);

	/* NUL inside strings. */
	static const uint8_t tags[] = {TAG_ARG, TAG_ENV, TAG_CWD, TAG_USER, TAG_GROUPS};
	for (size_t i = 0; i < sizeof(tags); i++) {
		p.len = 0;
		sfield(&p, TAG_ARG, "x");
		field(&p, tags[i], "a\0b", 3);
		CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
		CHECK(strstr(err, "NUL") != NULL);
	}

	/* Fields that may appear once, and fixed sizes. */
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	sfield(&p, TAG_CWD, "/a");
	sfield(&p, TAG_CWD, "/b");
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	sfield(&p, TAG_USER, "a");
	sfield(&p, TAG_USER, "b");
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	field(&p, TAG_TTY, "\0\1\0", 3);
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	field(&p, TAG_TTY, "\0\1\0\1", 4);
	field(&p, TAG_TTY, "\0\1\0\1", 4);
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	field(&p, TAG_STDIN, "y", 1);
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	field(&p, TAG_STDIN, "", 0);
	field(&p, TAG_STDIN, "", 0);
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);

	/* RLIMIT: a known resource, soft <= hard, each resource once; GROUPS once. */
	uint8_t lim[RUN_RLIMIT_LEN] = {7};
	put_be32(lim + 5, 1024);
	put_be32(lim + 13, 4096);
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	field(&p, TAG_RLIMIT, lim, sizeof(lim));
	lim[0] = 4;
	memset(lim + 1, 0xff, 16);
	field(&p, TAG_RLIMIT, lim, sizeof(lim));
	sfield(&p, TAG_GROUPS, "audio,4000");
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) == 0);
	CHECK(s.nrlimits == 2 && s.rlimits[0].resource == 7);
	CHECK(s.rlimits[0].soft == 1024 && s.rlimits[0].hard == 4096);
	CHECK(s.rlimits[1].resource == 4 && s.rlimits[1].soft == UINT64_MAX);
	CHECK_STR(s.groups, "audio,4000");
	run_spec_free(&s);
	field(&p, TAG_RLIMIT, lim, sizeof(lim));
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	CHECK(strstr(err, "RLIMIT 4 given twice") != NULL);
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	sfield(&p, TAG_GROUPS, "a");
	sfield(&p, TAG_GROUPS, "b");
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	field(&p, TAG_RLIMIT, lim, sizeof(lim) - 1);
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	lim[0] = RUN_MAX_RLIMITS;
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	field(&p, TAG_RLIMIT, lim, sizeof(lim));
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	CHECK(strstr(err, "unknown resource 16") != NULL);
	lim[0] = 7;
	lim[16] = 0xfe; /* hard just under soft */
	p.len = 0;
	sfield(&p, TAG_ARG, "x");
	field(&p, TAG_RLIMIT, lim, sizeof(lim));
	CHECK(run_spec_parse(p.data, p.len, &s, err, sizeof(err)) < 0);
	CHECK(strstr(err, "soft limit above the hard limit") != NULL);

	/* Every prefix of a valid payload is either valid or an error, never a crash. */
	p.len = 0;
	sfield(&p, TAG_ARG, "ls");
	sfield(&p, TAG_ENV, "X=1");
	field(&p, TAG_TTY, "\0\1\0\1", 4);
	for (size_t n = 0; n <= p.len; n++) {
		int rc = run_spec_parse(p.data, n, &s, err, sizeof(err));
		if (rc == 0)
			run_spec_free(&s);
		CHECK(rc == 0 || rc == -1);
	}
}

static void test_cmdline(void)
{
	const char *cl = "console=ttyS0 reboot=t cocoon.root=vda cocoon.rootx=no "
			 "cocoon.hostname=\"my host\" cocoon.time=1700000000 xcocoon.rw=no "
			 "\"cocoon.rw=vdb\" cocoon.empty= cocoon.time=1800000000\n";
	/* The agent reads only root and probe now; any key parses the same. */
	char v[64];
	CHECK(cmdline_get(cl, "root", v, sizeof(v)) == 1);
	CHECK_STR(v, "vda");
	CHECK(cmdline_get(cl, "hostname", v, sizeof(v)) == 1);
	CHECK_STR(v, "my host");
	CHECK(cmdline_get(cl, "rw", v, sizeof(v)) == 1);
	CHECK_STR(v, "vdb");
	CHECK(cmdline_get(cl, "time", v, sizeof(v)) == 1);
	CHECK_STR(v, "1800000000");
	CHECK(cmdline_get(cl, "empty", v, sizeof(v)) == 1);
	CHECK_STR(v, "");
	CHECK(cmdline_get(cl, "probe", v, sizeof(v)) == 0);
	CHECK(cmdline_get(cl, "roo", v, sizeof(v)) == 0);
	CHECK(cmdline_get(cl, "hostname", v, 4) == -1);
	CHECK(cmdline_get("", "root", v, sizeof(v)) == 0);
	CHECK(cmdline_get("cocoon.probe=1", "probe", v, sizeof(v)) == 1);
	CHECK_STR(v, "1");
}

static const char passwd[] =
	"root:x:0:0:root:/root:/bin/sh\n"
	"# a comment\n"
	"\n"
	"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
	"broken line\n"
	"bad:x:notanumber:1::/bad:/bin/sh\n"
	"alice:x:1000:1000:Alice:/home/alice:/bin/bash\r\n"
	"nohome:x:1001:1001\n"
	"+nis\n"
	"bob:x:1002:100::/home/bob:/bin/sh";

static const char group[] =
	"root:x:0:\n"
	"wheel:x:10:root, alice\n"
	"users:x:100:bob\n"
	"alice:x:1000:\n"
	"audio:x:29:bob,alice\n"
	"video:x:44:alicex,xalice\n"
	"bad:x:zz:alice\n"
	"last:x:2000:alice";

static uint32_t ip4(const char *s)
{
	struct in_addr in;
	return inet_pton(AF_INET, s, &in) == 1 ? in.s_addr : 0;
}

static void test_net(void)
{
	char out[128];
	uint32_t dns[] = {ip4("192.168.64.1"), ip4("8.8.8.8")};
	CHECK(resolv_conf_format(dns, 1, out, sizeof(out)) == 0);
	CHECK_STR(out, "nameserver 192.168.64.1\n");
	CHECK(resolv_conf_format(dns, 2, out, sizeof(out)) == 0);
	CHECK_STR(out, "nameserver 192.168.64.1\nnameserver 8.8.8.8\n");
	CHECK(resolv_conf_format(dns, 0, out, sizeof(out)) == 0);
	CHECK_STR(out, "");
	CHECK(resolv_conf_format(dns, 2, out, 30) == -1);
	struct guest_config none;
	memset(&none, 0, sizeof(none));
	CHECK(resolv_conf_format(dns, 1, out, sizeof(out)) == 0);
	CHECK(resolv_conf_extra(&none, out, sizeof(out)) == 0);
	CHECK_STR(out, "nameserver 192.168.64.1\n");
	CHECK(dns_option_valid("ndots:2", 7) && dns_option_valid("edns0", 5));
	CHECK(dns_option_valid("timeout:1.5", 11) && !dns_option_valid(":2", 2));
	CHECK(!dns_option_valid("a.b", 3) && !dns_option_valid("", 0));

	CHECK(prefix_netmask(24) == ip4("255.255.255.0"));
	CHECK(prefix_netmask(32) == ip4("255.255.255.255"));
	CHECK(prefix_netmask(1) == ip4("128.0.0.0"));
	CHECK(prefix_netmask(0) == 0);
}

static void test_hostnames(void)
{
	static const char *const good[] = {"a", "web-1", "A.b-c.D9", "0", "x.y.z"};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		CHECK(hostname_valid(good[i], strlen(good[i])));
	static const char *const bad[] = {"", "-a", "a-", "a..b", ".a", "a.", "a b",
					  "a_b", "a\nb", "é", "a.-b", "a-.b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		CHECK(!hostname_valid(bad[i], strlen(bad[i])));
	char label[70];
	memset(label, 'a', sizeof(label));
	CHECK(hostname_valid(label, 63));
	CHECK(!hostname_valid(label, 64)); /* one label over 63 */
	/* A NUL inside is never a valid name. */
	CHECK(!hostname_valid("a\0b", 3));
}

static void test_mounts(void)
{
	CHECK(device_name_valid("vda"));
	CHECK(device_name_valid("nvme0n1p1"));
	CHECK(!device_name_valid(""));
	CHECK(!device_name_valid("../sda"));
	CHECK(!device_name_valid(".hidden"));
	CHECK(!device_name_valid("disk/by-id"));
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static int text_is(const char *path, const char *text)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strcmp(buf, text) == 0;
}

/* A tar the agent writes unpacks as the same tree; copy-up copies it too. */
static void test_tar(void)
{
	char name[] = "ABC";
	CHECK(tar_clean_name(name) == 0 && str_eq(name, "ABC"));
	char abs[] = "//a/./b//c/";
	CHECK(tar_clean_name(abs) == 0 && str_eq(abs, "a/b/c"));
	char up[] = "a/../../etc/passwd", dot[] = "./", dots[] = "..";
	CHECK(tar_clean_name(up) < 0 && tar_clean_name(dot) < 0 && tar_clean_name(dots) < 0);
	uint64_t v;
	CHECK(tar_number((const uint8_t *)"0000644\0", 8, &v) == 0 && v == 0644);
	CHECK(tar_number((const uint8_t *)"00006x4\0", 8, &v) < 0);
	const uint8_t big[12] = {0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
	CHECK(tar_number(big, 12, &v) == 0 && v == 256);

	char tmp[] = "/tmp/cocoon-tar-XXXXXX";
	if (!mkdtemp(tmp)) {
		CHECK(0);
		return;
	}
	char p[512], longname[300];
	memset(longname, 'n', 150);
	longname[150] = '\0';
	snprintf(p, sizeof(p), "%s/src", tmp);
	mkdir(p, 0750);
	snprintf(p, sizeof(p), "%s/src/sub", tmp);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/src/sub/%s", tmp, longname);
	write_text(p, "long\n");
	snprintf(p, sizeof(p), "%s/src/file", tmp);
	write_text(p, "hello\n");
	chmod(p, 0640);
	snprintf(p, sizeof(p), "%s/src/link", tmp);
	CHECK(symlink("../../etc/passwd", p) == 0);

	snprintf(p, sizeof(p), "%s/src.tar", tmp);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	snprintf(p, sizeof(p), "%s/src", tmp);
	CHECK(fd >= 0 && tar_create(fd, p, 0) == 0);
	/* Into an existing folder, then as a new name. */
	snprintf(p, sizeof(p), "%s/out", tmp);
	mkdir(p, 0755);
	lseek(fd, 0, SEEK_SET);
	CHECK(tar_extract(fd, p, 0) == 0);
	snprintf(p, sizeof(p), "%s/renamed", tmp);
	lseek(fd, 0, SEEK_SET);
	CHECK(tar_extract(fd, p, 0) == 0);
	close(fd);
	struct stat st;
	snprintf(p, sizeof(p), "%s/out/src/file", tmp);
	CHECK(text_is(p, "hello\n") && stat(p, &st) == 0 && (st.st_mode & 07777) == 0640);
	snprintf(p, sizeof(p), "%s/out/src", tmp);
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0750);
	snprintf(p, sizeof(p), "%s/renamed/sub/%s", tmp, longname);
	CHECK(text_is(p, "long\n"));
	char link[64] = "";
	snprintf(p, sizeof(p), "%s/renamed/link", tmp);
	CHECK(readlink(p, link, sizeof(link) - 1) > 0 && str_eq(link, "../../etc/passwd"));

	/* TAR_KEEP_KINDS: a folder is not replaced by a file, nor a file by a folder,
	 * and the refusal says so as dockerd does; without it both are replaced. */
	snprintf(p, sizeof(p), "%s/clash", tmp);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/clash/src", tmp);
	write_text(p, "a file\n");
	snprintf(p, sizeof(p), "%s/clash.tar", tmp);
	int clash = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	snprintf(p, sizeof(p), "%s/clash/src", tmp);
	CHECK(clash >= 0 && tar_create(clash, p, 0) == 0);
	lseek(clash, 0, SEEK_SET);
	snprintf(p, sizeof(p), "%s/said", tmp);
	int said = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600), kept = dup(2);
	dup2(said, 2);
	snprintf(p, sizeof(p), "%s/out", tmp);
	CHECK(tar_extract(clash, p, 1) < 0);
	snprintf(p, sizeof(p), "%s/src.tar", tmp);
	fd = open(p, O_RDONLY);
	snprintf(p, sizeof(p), "%s/clash", tmp);
	CHECK(fd >= 0 && tar_extract(fd, p, 1) < 0);
	dup2(kept, 2);
	close(kept);
	close(said);
	char want[1024];
	snprintf(want, sizeof(want),
		 "cannot overwrite directory \"%s/out/src\" with non-directory \"%s/out\"\n"
		 "cannot overwrite non-directory \"%s/clash/src\" with directory \"%s/clash\"\n",
		 tmp, tmp, tmp, tmp);
	snprintf(p, sizeof(p), "%s/said", tmp);
	CHECK(text_is(p, want));
	snprintf(p, sizeof(p), "%s/out/src", tmp);
	CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	snprintf(p, sizeof(p), "%s/clash/src", tmp);
	CHECK(text_is(p, "a file\n"));
	lseek(fd, 0, SEEK_SET);
	snprintf(p, sizeof(p), "%s/clash", tmp);
	CHECK(tar_extract(fd, p, 0) == 0);
	snprintf(p, sizeof(p), "%s/clash/src/file", tmp);
	CHECK(text_is(p, "hello\n"));
	close(fd);
	close(clash);

	/* copy-up: into an empty folder (lost+found aside), owners and modes kept. */
	snprintf(p, sizeof(p), "%s/copy", tmp);
	mkdir(p, 0755);
	int dst = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/copy/lost+found", tmp);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/src", tmp);
	int src = open(p, O_RDONLY | O_DIRECTORY);
	char err[256];
	CHECK(dir_is_empty(dst) == 1 && dir_is_empty(src) == 0);
	CHECK(copy_tree(src, dst, err, sizeof(err)) == 0);
	CHECK(dir_is_empty(dst) == 0);
	close(src);
	close(dst);
	snprintf(p, sizeof(p), "%s/copy/file", tmp);
	CHECK(text_is(p, "hello\n") && stat(p, &st) == 0 && (st.st_mode & 07777) == 0640);

	/* A hostile archive: an entry that climbs out is refused. */
	snprintf(p, sizeof(p), "%s/evil.tar", tmp);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	uint8_t h[1024] = {0};
	snprintf((char *)h, 100, "../escaped");
	memcpy(h + 100, "0000644", 8);
	memcpy(h + 108, "0000000", 8);
	memcpy(h + 116, "0000000", 8);
	memcpy(h + 124, "00000000000", 12);
	memcpy(h + 136, "00000000000", 12);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	CHECK(tar_header_ok(h));
	CHECK(write(fd, h, sizeof(h)) == (ssize_t)sizeof(h));
	lseek(fd, 0, SEEK_SET);
	snprintf(p, sizeof(p), "%s/out", tmp);
	int saved = dup(2), null = open("/dev/null", O_WRONLY);
	dup2(null, 2); /* the refusal is said on stderr */
	CHECK(tar_extract(fd, p, 0) < 0);
	dup2(saved, 2);
	close(saved);
	close(null);
	close(fd);
	snprintf(p, sizeof(p), "%s/escaped", tmp);
	CHECK(access(p, F_OK) < 0);

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	CHECK(system(cmd) == 0);
}

/* An overlay upper folder as an OCI layer and back: whiteouts, opaque
 * folders and hard links survive the round trip. */
static void test_layers(void)
{
	char opts[256];
	const char root[] = "/b/3\0/b/2\0/b/1";
	CHECK(layers_options(root, 3, opts, sizeof(opts)) == 0);
	CHECK_STR(opts, "lowerdir=/b/2/upper:/b/1/upper:/,upperdir=/b/3/upper,workdir=/b/3/work,"
			"redirect_dir=off,index=off,metacopy=off");
	CHECK(layers_options(root, 3, opts, 40) < 0);

	char tmp[] = "/tmp/cocoon-layer-XXXXXX";
	if (!mkdtemp(tmp)) {
		CHECK(0);
		return;
	}
	char p[512], q[512];
	snprintf(p, sizeof(p), "%s/upper", tmp);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/upper/keep", tmp);
	write_text(p, "kept\n");
	int can_user_xattr = setxattr(p, "user.cocoon", "v\0w", 3, 0) == 0;
	CHECK(!can_user_xattr || setxattr(p, "trusted.overlay.origin", "x", 1, 0) == 0);
	snprintf(q, sizeof(q), "%s/upper/keep2", tmp);
	CHECK(link(p, q) == 0);
	snprintf(p, sizeof(p), "%s/upper/gone", tmp);
	int can_mknod = mknod(p, S_IFCHR, makedev(0, 0)) == 0;
	snprintf(p, sizeof(p), "%s/upper/dir", tmp);
	mkdir(p, 0711);
	int can_xattr = setxattr(p, "trusted.overlay.opaque", "y", 1, 0) == 0;
	snprintf(p, sizeof(p), "%s/upper/dir/f", tmp);
	write_text(p, "f\n");

	/* ENTRY: the folder's own entry, through a link to it, nothing inside. */
	snprintf(p, sizeof(p), "%s/entry.tar", tmp);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	snprintf(p, sizeof(p), "%s/to-upper", tmp);
	CHECK(symlink("upper", p) == 0);
	CHECK(fd >= 0 && tar_entry(fd, p) == 0);
	static char entry[4096];
	ssize_t got = pread(fd, entry, sizeof(entry), 0);
	CHECK(got == 3 * 512 && !memcmp(entry, "to-upper/", 10) && entry[156] == '5');
	close(fd);
	snprintf(p, sizeof(p), "%s/missing", tmp);
	int saved_err = dup(2), devnull = open("/dev/null", O_WRONLY);
	dup2(devnull, 2);
	CHECK(tar_entry(fd, p) < 0);
	dup2(saved_err, 2);
	close(saved_err);
	close(devnull);

	snprintf(p, sizeof(p), "%s/layer.tar", tmp);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	snprintf(p, sizeof(p), "%s/upper", tmp);
	CHECK(fd >= 0 && tar_layer(fd, p) == 0);
	static char tar[1 << 16];
	ssize_t n = pread(fd, tar, sizeof(tar), 0);
	CHECK(n > 0 && !memmem(tar, (size_t)n, "upper", 5));
	CHECK(!can_mknod || memmem(tar, (size_t)n, ".wh.gone", 9));
	CHECK(!can_xattr || memmem(tar, (size_t)n, "dir/.wh..wh..opq", 17));

	snprintf(p, sizeof(p), "%s/out/upper", tmp);
	lseek(fd, 0, SEEK_SET);
	CHECK(tar_unlayer(fd, p) == 0);
	close(fd);
	struct stat a, b;
	snprintf(p, sizeof(p), "%s/out/upper/keep", tmp);
	snprintf(q, sizeof(q), "%s/out/upper/keep2", tmp);
	CHECK(text_is(p, "kept\n") && stat(p, &a) == 0 && stat(q, &b) == 0 && a.st_ino == b.st_ino);
	char xv[8] = "";
	CHECK(!can_user_xattr || (getxattr(p, "user.cocoon", xv, sizeof(xv)) == 3 && !memcmp(xv, "v\0w", 3)));
	CHECK(getxattr(p, "trusted.overlay.origin", xv, sizeof(xv)) < 0); /* never carried */
	snprintf(p, sizeof(p), "%s/out/upper/gone", tmp);
	CHECK(!can_mknod || (lstat(p, &a) == 0 && S_ISCHR(a.st_mode) && a.st_rdev == 0));
	snprintf(p, sizeof(p), "%s/out/upper/dir", tmp);
	char v[2] = "";
	CHECK(!can_xattr || getxattr(p, "trusted.overlay.opaque", v, sizeof(v)) == 1);
	CHECK(stat(p, &a) == 0 && (a.st_mode & 07777) == 0711);
	snprintf(p, sizeof(p), "%s/out/upper/dir/f", tmp);
	CHECK(text_is(p, "f\n"));

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	CHECK(system(cmd) == 0);
}

static void test_process_helpers(void)
{
	char out[32];
	CHECK(path_candidate("/usr/bin:/bin", 8, "sh", out, sizeof(out)) == 0);
	CHECK_STR(out, "/usr/bin/sh");
	CHECK(path_candidate("", 0, "sh", out, sizeof(out)) == 0);
	CHECK_STR(out, "./sh");
	CHECK(path_candidate("/a-very-long-directory-name", 27, "prog", out, sizeof(out)) == -1);

	char *with_home[] = {"A=1", "HOME=/mine", NULL};
	char **env = env_with_home(with_home, "/root");
	CHECK(env && str_eq(env[0], "A=1") && str_eq(env[1], "HOME=/mine") && !env[2]);
	free(env);
	char *without[] = {"HOMEX=1", NULL};
	env = env_with_home(without, "/home/alice");
	CHECK(env && str_eq(env[0], "HOMEX=1") && str_eq(env[1], "HOME=/home/alice") && !env[2]);
	if (env)
		free(env[1]);
	free(env);
}

/* rewrite_file: in place, to any length; never through a symlink or into
 * a file with another name (which a write in place would change too). */
static void test_rewrite_file(void)
{
	char tmp[] = "/tmp/cocoon-rewrite-XXXXXX";
	if (!mkdtemp(tmp)) {
		CHECK(0);
		return;
	}
	char file[128], alias[128], other[128], cmd[160];
	snprintf(file, sizeof(file), "%s/hostname", tmp);
	snprintf(alias, sizeof(alias), "%s/alias", tmp);
	snprintf(other, sizeof(other), "%s/other", tmp);
	CHECK(write_file_atomic(file, "cocoon-clone\n", 13) == 0);
	struct stat before, after;
	CHECK(stat(file, &before) == 0);
	CHECK(rewrite_file(file, "0123456789ab\n", 13) == 0);
	char *got = read_file(file, 64);
	CHECK_STR(got, "0123456789ab\n");
	free(got);
	CHECK(rewrite_file(file, "a-longer-name-than-that\n", 24) == 0);
	CHECK(rewrite_file(file, "short\n", 6) == 0);
	got = read_file(file, 64);
	CHECK_STR(got, "short\n");
	free(got);
	CHECK(stat(file, &after) == 0 && after.st_ino == before.st_ino);

	CHECK(symlink(file, alias) == 0 && rewrite_file(alias, "x\n", 2) < 0);
	CHECK(link(file, other) == 0 && rewrite_file(file, "x\n", 2) < 0);
	got = read_file(file, 64);
	CHECK_STR(got, "short\n");
	free(got);
	CHECK(rewrite_file(tmp, "x\n", 2) < 0); /* a folder */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	CHECK(system(cmd) == 0);
}

/* keep_fds in a child: only the kept fds remain, renumbered from 3. */
static void test_keep_fds(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		int a = open("/dev/null", O_RDONLY), b = open("/dev/null", O_RDONLY);
		int c = open("/dev/zero", O_RDONLY | O_CLOEXEC), d = dup2(a, 40);
		int keep[] = {c, -1, d};
		if (b < 0 || keep_fds(keep, 3) < 0 || keep[0] != 3 || keep[1] != -1 || keep[2] != 5)
			_exit(1);
		char z;
		/* 3 is /dev/zero (close-on-exec), 5 is /dev/null, all else closed. */
		if (read(3, &z, 1) != 1 || z != 0 || !(fcntl(3, F_GETFD) & FD_CLOEXEC))
			_exit(2);
		if (read(5, &z, 1) != 0)
			_exit(3);
		for (int fd = 0; fd < 64; fd++)
			if (fd != 3 && fd != 5 && fcntl(fd, F_GETFD) >= 0)
				_exit(4);
		_exit(0);
	}
	int status = -1;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_config(void)
{
	struct guest_config c;
	char err[256];
	CHECK(config_parse(NULL, 0, &c, err, sizeof(err)) == 0);
	CHECK(!c.hostname[0] && !c.time_ns && !c.has_address && !c.ndns);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One vector of the shared file (see there for the format). */
static void check_vector(const char *kind, const char *name, const char *result, const uint8_t *b,
			 size_t n)
{
	int ok_wanted = strcmp(result, "ok") == 0;
	char err[256];
	int before = failed;
	if (strcmp(kind, "frame") == 0) {
		struct frame_hdr h;
		const uint8_t *pl;
		size_t used = 0;
		enum frame_status st = frame_parse(b, n, &h, &pl, &used);
		if (ok_wanted)
			CHECK(st == FRAME_OK && used == n);
		else if (strcmp(result, "need-more") == 0)
			CHECK(st == FRAME_NEED_MORE);
		else if (strcmp(result, "too-long") == 0)
			CHECK(st == FRAME_TOO_LONG);
		else
			CHECK(strcmp(result, "unknown-type") == 0 && st == FRAME_UNKNOWN_TYPE);
	} else if (strcmp(kind, "config") == 0) {
		struct guest_config c;
		CHECK((config_parse(b, n, &c, err, sizeof(err)) == 0) == ok_wanted);
		if (strcmp(name, "basic") == 0) {
			CHECK_STR(c.hostname, "web-1");
			CHECK(c.time_ns == 1700000000123456789ull);
			CHECK(c.has_address && c.address == ip4("192.168.64.2") && c.prefix == 24);
			CHECK(c.has_gateway && c.gateway == ip4("192.168.64.1"));
			CHECK(c.ndns == 2 && c.dns[0] == ip4("192.168.64.1") && c.dns[1] == ip4("1.1.1.1"));
		}
		if (strcmp(name, "mounts") == 0) {
			CHECK(c.nmounts == 3 && c.readonly_root);
			CHECK(!c.has_mac && c.nentropy == 0); /* READONLY is the last field */
			CHECK(c.mounts[0].kind == MOUNT_EXT4 && c.mounts[0].flags == MOUNT_COPY_UP);
			CHECK_STR(c.mounts[0].source, "cocoon-vol0");
			CHECK_STR(c.mounts[0].target, "/data");
			CHECK(c.mounts[1].kind == MOUNT_9P && c.mounts[1].flags == MOUNT_RDONLY);
			CHECK_STR(c.mounts[1].file, "app.conf");
			CHECK(c.mounts[2].kind == MOUNT_TMPFS && c.mounts[2].mode == 01777);
			CHECK(c.mounts[2].size == 65536 && c.mounts[2].flags == MOUNT_NOEXEC);
		}
		if (strcmp(name, "nics") == 0) {
			CHECK(c.nnics == 2 && !c.has_address && !c.has_mac);
			CHECK(c.nics[0].mac[5] == 0x02 && c.nics[0].address == ip4("192.168.65.2"));
			CHECK(c.nics[1].address == ip4("192.168.66.3") && c.nics[1].prefix == 24);
		}
		if (strcmp(name, "dns-search-options-shm") == 0) {
			CHECK(c.nsearch == 2 && c.noptions == 2 && c.shm_size == 64u << 20);
			char conf[256] = "";
			CHECK(resolv_conf_extra(&c, conf, sizeof(conf)) == 0);
			CHECK_STR(conf, "search example.com corp\noptions ndots:2 edns0\n");
			CHECK(resolv_conf_extra(&c, conf, strlen(conf) + 1) == -1);
		}
		config_free(&c);
	} else if (strcmp(kind, "run") == 0) {
		struct run_spec r;
		int rc = run_spec_parse(b, n, &r, err, sizeof(err));
		CHECK((rc == 0) == ok_wanted);
		if (rc == 0 && strcmp(name, "basic") == 0) {
			CHECK(r.argc == 3 && str_eq(r.argv[0], "sh") && str_eq(r.argv[2], "echo hi"));
			CHECK(r.envc == 1 && str_eq(r.envp[0], "PATH=/bin"));
			CHECK_STR(r.cwd, "/tmp");
			CHECK_STR(r.user, "1000:1000");
			CHECK(r.tty && r.rows == 24 && r.cols == 80 && r.stdin_open);
		}
		if (rc == 0 && strcmp(name, "limits") == 0) {
			CHECK(r.nrlimits == 2 && r.rlimits[0].resource == 7);
			CHECK(r.rlimits[0].soft == 1024 && r.rlimits[0].hard == 4096);
			CHECK(r.rlimits[1].resource == 4 && r.rlimits[1].hard == UINT64_MAX);
			CHECK_STR(r.groups, "audio,4000");
		}
		if (rc == 0 && strcmp(name, "root") == 0)
			CHECK(r.nroot == 2 && str_eq(r.root, "/b/2") && str_eq(r.root + 5, "/b/1"));
		if (rc == 0)
			run_spec_free(&r);
	} else {
		CHECK(!"unknown vector kind");
	}
	if (failed != before)
		fprintf(stderr, "  in vector %s/%s\n", kind, name);
}

static void test_vectors(const char *path)
{
	FILE *f = path ? fopen(path, "r") : NULL;
	CHECK(f != NULL);
	if (!f)
		return;
	char line[8192];
	int count = 0;
	while (fgets(line, sizeof(line), f)) {
		char kind[16], name[64], result[16], hex[4096];
		if (line[0] == '#' || line[0] == '\n')
			continue;
		CHECK(sscanf(line, "%15s %63s %15s %4095s", kind, name, result, hex) == 4);
		static uint8_t bytes[2048];
		size_t n = 0;
		int bad_hex = 0;
		if (strcmp(hex, "-") != 0) {
			size_t len = strlen(hex);
			bad_hex = len % 2 != 0;
			for (size_t i = 0; i + 1 < len && n < sizeof(bytes); i += 2) {
				int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
				bad_hex |= hi < 0 || lo < 0;
				bytes[n++] = (uint8_t)(hi << 4 | lo);
			}
		}
		CHECK(!bad_hex);
		check_vector(kind, name, result, bytes, n);
		count++;
	}
	fclose(f);
	CHECK(count > 20);
}

static void test_users(void)
{
	struct exec_user u;
	char err[256];

	CHECK(user_resolve(NULL, passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 0 && u.gid == 0);
	CHECK_STR(u.home, "/root");
	CHECK(u.nsgids == 1 && u.sgids[0] == 10);
	exec_user_free(&u);

	CHECK(user_resolve("0:0", passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 0 && u.gid == 0 && u.nsgids == 0);
	exec_user_free(&u);

	/* A name: uid, primary group, home, supplementary groups by membership. */
	CHECK(user_resolve("alice", passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 1000 && u.gid == 1000);
	CHECK_STR(u.home, "/home/alice");
	CHECK(u.nsgids == 3);
	if (u.nsgids == 3)
		CHECK(u.sgids[0] == 10 && u.sgids[1] == 29 && u.sgids[2] == 2000);
	exec_user_free(&u);

	/* A number that has an entry gets the same. */
	CHECK(user_resolve("1002", passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 1002 && u.gid == 100);
	CHECK_STR(u.home, "/home/bob");
	CHECK(u.nsgids == 2 && u.sgids[0] == 100 && u.sgids[1] == 29);
	exec_user_free(&u);

	/* A number without an entry: gid 0, home /, no groups. */
	CHECK(user_resolve("4242", passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 4242 && u.gid == 0 && u.nsgids == 0);
	CHECK_STR(u.home, "/");
	exec_user_free(&u);

	/* Explicit groups, by name and number: no supplementary groups. */
	CHECK(user_resolve("alice:audio", passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 1000 && u.gid == 29 && u.nsgids == 0);
	exec_user_free(&u);
	CHECK(user_resolve("alice:4000", passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 1000 && u.gid == 4000 && u.nsgids == 0);
	exec_user_free(&u);
	CHECK(user_resolve("77:88", NULL, NULL, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 77 && u.gid == 88 && u.nsgids == 0);
	CHECK_STR(u.home, "/");
	exec_user_free(&u);
	CHECK(user_resolve(":users", passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 0 && u.gid == 100);
	exec_user_free(&u);
	CHECK(user_resolve("bob:", passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 1002 && u.gid == 100 && u.nsgids == 2);
	exec_user_free(&u);

	/* No home field. */
	CHECK(user_resolve("nohome", passwd, group, &u, err, sizeof(err)) == 0);
	CHECK(u.uid == 1001 && u.gid == 1001);
	CHECK_STR(u.home, "/");
	exec_user_free(&u);

	/* Missing names are errors; malformed lines never match. */
	CHECK(user_resolve("mallory", passwd, group, &u, err, sizeof(err)) < 0);
	CHECK(strstr(err, "unable to find user mallory") != NULL);
	CHECK(user_resolve("bad", passwd, group, &u, err, sizeof(err)) < 0);
	CHECK(user_resolve("broken line", passwd, group, &u, err, sizeof(err)) < 0);
	CHECK(user_resolve("+nis", passwd, group, &u, err, sizeof(err)) < 0);
	CHECK(user_resolve("alice:nogroup", passwd, group, &u, err, sizeof(err)) < 0);
	CHECK(strstr(err, "unable to find group nogroup") != NULL);
	CHECK(user_resolve("alice:bad", passwd, group, &u, err, sizeof(err)) < 0);
	CHECK(user_resolve("root", NULL, NULL, &u, err, sizeof(err)) < 0);
	CHECK(user_resolve("0:wheel", passwd, NULL, &u, err, sizeof(err)) < 0);
	/* (id_t)-1 means "unchanged" to the kernel; it is not a user. */
	CHECK(user_resolve("4294967295", passwd, group, &u, err, sizeof(err)) < 0);
	CHECK(user_resolve("99999999999", passwd, group, &u, err, sizeof(err)) < 0);
	CHECK(u.home == NULL && u.sgids == NULL);

	/* GROUPS: names and numbers added once each, after the user's own. */
	gid_t groups[8] = {1000, 10};
	size_t n = 2;
	CHECK(add_groups("audio,10,4000,audio", group, groups, &n, err, sizeof(err)) == 0);
	CHECK(n == 4 && groups[2] == 29 && groups[3] == 4000);
	CHECK(add_groups("video,nogroup", group, groups, &n, err, sizeof(err)) < 0);
	CHECK(strstr(err, "unable to find group nogroup") != NULL);
	CHECK(add_groups("4000,,5", NULL, groups, &n, err, sizeof(err)) < 0);
	CHECK(add_groups("4294967295", NULL, groups, &n, err, sizeof(err)) < 0);
}

static void test_buf(void)
{
	struct buf b = {0};
	CHECK(buf_append(&b, "hello", 5) == 0);
	CHECK(b.len == 5 && memcmp(buf_peek(&b), "hello", 5) == 0);
	buf_consume(&b, 2);
	CHECK(b.len == 3 && memcmp(buf_peek(&b), "llo", 3) == 0);
	static char big[10000];
	memset(big, 'x', sizeof(big));
	CHECK(buf_append(&b, big, sizeof(big)) == 0);
	CHECK(b.len == 3 + sizeof(big) && memcmp(buf_peek(&b), "llox", 4) == 0);
	buf_consume(&b, b.len);
	CHECK(b.len == 0);
	size_t cap = b.cap;
	for (int i = 0; i < 1000; i++) {
		CHECK(buf_append(&b, "abc", 3) == 0);
		buf_consume(&b, 2);
	}
	/* Consumed space is reused, not grown into. */
	CHECK(b.len == 1000 && b.cap == cap);
	buf_free(&b);
	CHECK(b.data == NULL && b.len == 0);
}


/* Deterministic pseudo-random inputs: the parsers must answer, not crash
 * (ASan/UBSan watch the memory accesses). */
static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static void test_fuzz(void)
{
	uint8_t data[512];
	int bad = 0;
	for (int round = 0; round < 20000; round++) {
		size_t n = rng() % sizeof(data);
		for (size_t i = 0; i < n; i++)
			data[i] = (uint8_t)rng();
		/* Bias towards plausible shapes: small lengths and known tags. */
		if (round % 2) {
			for (size_t off = 0; off + 5 <= n;) {
				data[off] = (uint8_t)(1 + rng() % 7);
				uint32_t len = rng() % 16;
				put_be32(data + off + 1, len);
				off += 5 + len;
			}
		}
		struct run_spec s;
		char err[256];
		int rc = run_spec_parse(data, n, &s, err, sizeof(err));
		if (rc == 0) {
			if (s.argc < 1 || !s.argv[0] || s.argv[s.argc] || !s.envp || s.envp[s.envc])
				bad++;
			run_spec_free(&s);
		} else if (rc != -1 || !err[0]) {
			bad++;
		}

		struct frame_hdr h;
		const uint8_t *pl;
		size_t used;
		enum frame_status st = frame_parse(data, n, &h, &pl, &used);
		if (st == FRAME_OK && (used > n || used != FRAME_HDR_LEN + h.len))
			bad++;

		char line[128];
		data[n] = 0;
		cmdline_get((const char *)data, "root", line, sizeof(line));
		struct guest_config c;
		if (config_parse(data, n, &c, err, sizeof(err)) == 0) {
			if (c.ndns > CONFIG_MAX_DNS || (c.hostname[0] && !hostname_valid(c.hostname, strlen(c.hostname))))
				bad++;
			for (size_t i = 0; i < c.nmounts; i++)
				if (!mount_target_valid(c.mounts[i].target, strlen(c.mounts[i].target)))
					bad++;
			config_free(&c);
		} else if (!err[0]) {
			bad++;
		}

		struct exec_user u;
		if (user_resolve((const char *)data + n / 2, (const char *)data, (const char *)data, &u,
				 err, sizeof(err)) == 0)
			exec_user_free(&u);
	}
	CHECK(bad == 0);
}

int main(int argc, char **argv)
{
	test_frames();
	test_run();
	test_cmdline();
	test_config();
	test_vectors(argc > 1 ? argv[1] : NULL);
	test_hostnames();
	test_net();
	test_mounts();
	test_tar();
	test_layers();
	test_process_helpers();
	test_keep_fds();
	test_rewrite_file();
	test_users();
	test_buf();
	test_fuzz();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
