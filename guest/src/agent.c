/*
 * cocoon-agent: PID 1 of a cocoon VM. Sets up the container's root, then
 * serves the guest protocol (docs/guest-protocol.md) on the virtio-serial
 * port until the main process exits, and powers the VM off.
 *
 * One thread, one poll loop: every fd it relays is non-blocking except the
 * port, which is only touched when poll says it is ready.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "mounts.h"
#include "net.h"
#include "process.h"
#include "protocol.h"
#include "util.h"

#define PORT_NAME "cocoon.agent"
#define READ_CHUNK 65536
/* Above this much unsent output, process output is left in its pipes. */
#define OUTQ_HIGH (1u << 20)
/* Above this much unwritten stdin, the port is not read. */
#define STDIN_HIGH (256u << 10)
/* The largest write the virtio console driver takes at once. */
#define PORT_WRITE_MAX 32768
/* Output still readable when a process exits is sent up to this much per
 * stream: a grandchild that keeps writing must not hold up the EXIT. */
#define DRAIN_MAX (4u << 20)
/* How long to wait for the host to close the port before powering off
 * after the main process's EXIT (or an ERROR). cocoon's host closes as soon
 * as it has read the EXIT, and a host that is gone shows as a hangup at
 * once, so this only bounds a host that is alive but slow: one relaying
 * megabytes of output to a log can be seconds behind the guest, and what
 * it has not read yet is lost when the VM powers off. */
#define LINGER_MS 60000
/* <linux/random.h>, which musl's toolchain lacks. */
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#define RNDRESEEDCRNG _IO('R', 0x07)

static int port = -1;
static struct buf outq;
static uint8_t *inbuf;
static size_t inlen;
static int sigfd = -1;
static int old_root = -1;
static int root_ready;
static struct proc *procs;
static int have_main;
static uint32_t main_id;
static int in_fatal;

/*
 * /etc/hostname and /etc/hosts as a rooted template leaves them, for its
 * clones to overwrite in place (rewrite_file) rather than make anew: that
 * skips creating and renaming a file on the root's ext4, ~20 ms of kernel
 * code run for the first time under emulation. The name is as long as
 * cocoon's default (the container id's first 12 digits): the same length
 * needs no truncation either.
 */
static const char placeholder_hostname[] = "cocoon-clone\n";
static const char placeholder_hosts[] = "127.0.0.1\tlocalhost\n";
/* Set in a rooted template: its clone's first writes of those are in place. */
static int in_place;

static void write_etc(const char *path, const void *data, size_t len)
{
	if (in_place && rewrite_file(path, data, len) == 0)
		return;
	if (mkdir_p("/etc", 0755) < 0 || write_file_atomic(path, data, len) < 0)
		logmsg("write %s: %s", path, errstr(errno));
}

static void __attribute__((noreturn)) power_off(void)
{
	sync();
	reboot(RB_AUTOBOOT);
	/* Init exiting panics the kernel, which with panic=-1 also resets. */
	_exit(1);
}

static void flush_outq(long timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	while (port >= 0 && outq.len > 0) {
		long left = (long)(deadline - now_ms());
		if (left <= 0) {
			logmsg("host stopped reading; %zu bytes of output dropped", outq.len);
			return;
		}
		struct pollfd pfd = {port, POLLOUT, 0};
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return;
		if (r > 0 && (pfd.revents & POLLHUP) && !(pfd.revents & POLLOUT)) {
			logmsg("host disconnected; %zu bytes of output dropped", outq.len);
			return;
		}
		if (r <= 0 || !(pfd.revents & POLLOUT))
			continue;
		size_t n = outq.len < PORT_WRITE_MAX ? outq.len : PORT_WRITE_MAX;
		ssize_t w = write(port, buf_peek(&outq), n);
		if (w < 0 && errno != EINTR && errno != EAGAIN) {
			logmsg("write to the host: %s", errstr(errno));
			return;
		}
		if (w > 0) {
			buf_consume(&outq, (size_t)w);
			/* A slow host is fine; only one that stopped reading is not. */
			deadline = now_ms() + timeout_ms;
		}
	}
}

/* Called when poll reported the port writable, so the write does not wait
 * for the host; it returns once QEMU has taken the bytes. */
static void port_write_once(void)
{
	size_t n = outq.len < PORT_WRITE_MAX ? outq.len : PORT_WRITE_MAX;
	ssize_t w = write(port, buf_peek(&outq), n);
	if (w > 0)
		buf_consume(&outq, (size_t)w);
	else if (w < 0 && errno != EINTR && errno != EAGAIN)
		fatal("write to the host: %s", errstr(errno));
}

static void reap_all(long timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);
		if (pid > 0)
			continue;
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0 || now_ms() >= deadline)
			return;
		sleep_ms(5);
	}
}

/*
 * A write to the port returns once the bytes are in the virtqueue, not once
 * the host has them: QEMU holds them while the host's socket is full, and
 * loses them if it exits. Only the host closing its end says it has read
 * what it wanted, so that is awaited, within a grace period.
 */
static void linger(long timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	static uint8_t discard[4096];
	while (port >= 0) {
		long left = (long)(deadline - now_ms());
		if (left <= 0)
			return;
		struct pollfd pfd = {port, POLLIN, 0};
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return;
		if (r <= 0)
			continue;
		if (pfd.revents & POLLHUP)
			return;
		if (read(port, discard, sizeof(discard)) == 0)
			return;
	}
}

/* The one way out: report what is queued, stop everything, leave the disks
 * clean. linger_ms: how long the host may take to read the last frames. */
static void __attribute__((noreturn)) finish(long linger_ms)
{
	flush_outq(5000);
	kill(-1, SIGKILL);
	reap_all(3000);
	proc_ns_close();
	if (root_ready)
		teardown_mounts(old_root);
	linger(linger_ms);
	power_off();
}

static void send_frame(uint8_t type, uint32_t proc, const void *payload, size_t len)
{
	if (port < 0)
		return;
	uint8_t h[FRAME_HDR_LEN];
	frame_hdr_encode(h, (uint32_t)len, type, proc);
	if (buf_append(&outq, h, sizeof(h)) < 0)
		fatal("out of memory");
	if (buf_append(&outq, payload, len) < 0) {
		outq.len -= sizeof(h);
		fatal("out of memory");
	}
}

static void send_error(uint32_t proc, const char *msg)
{
	char line[4096];
	snprintf(line, sizeof(line), "%s", msg);
	/* The protocol promises one line. */
	for (char *c = line; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	send_frame(MSG_ERROR, proc, line, strlen(line));
}

static void send_exit(uint32_t proc, uint8_t how, int32_t code)
{
	uint8_t p[5];
	p[0] = how;
	put_be32(p + 1, (uint32_t)code);
	send_frame(MSG_EXIT, proc, p, sizeof(p));
}

void fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	logmsg("%s", msg);
	if (!in_fatal) {
		in_fatal = 1;
		send_error(0, msg);
	}
	finish(LINGER_MS);
}

static struct proc *find_proc(uint32_t id)
{
	for (struct proc *p = procs; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

/* One read of process output into a frame. Returns bytes read, 0 at the
 * end (fd closed), -1 when nothing is there now. */
static ssize_t relay_output(int *fd, uint8_t type, uint32_t id)
{
	static uint8_t chunk[READ_CHUNK];
	ssize_t r = read(*fd, chunk, sizeof(chunk));
	if (r > 0) {
		send_frame(type, id, chunk, (size_t)r);
		return r;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	/* 0 = end of a pipe; EIO = every pty slave closed. */
	close(*fd);
	*fd = -1;
	return 0;
}

static void drain_output(int *fd, uint8_t type, uint32_t id)
{
	size_t total = 0;
	while (*fd >= 0 && total < DRAIN_MAX) {
		ssize_t r = relay_output(fd, type, id);
		if (r <= 0)
			break;
		total += (size_t)r;
	}
}

/* Reports a process's end; 1 if it was the main one, whose end the caller
 * must follow with finish(). */
static int proc_exited(struct proc *p, int status)
{
	drain_output(&p->out_fd, MSG_STDOUT, p->id);
	drain_output(&p->err_fd, MSG_STDERR, p->id);
	if (WIFSIGNALED(status))
		send_exit(p->id, 1, WTERMSIG(status));
	else
		send_exit(p->id, 0, WEXITSTATUS(status));

	for (struct proc **pp = &procs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	int was_main = p->id == main_id;
	/* As a RUN's container ends with its command: its process group (the
	 * step's session, made by setsid) is killed, so nothing it started
	 * writes to its folder while the host reads it as a layer. */
	if (p->step)
		kill(-p->pid, SIGKILL);
	proc_free(p);
	return was_main;
}

static void reap(void)
{
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof(si)) == sizeof(si))
		;
	/* Every child that has ended is reported before the VM powers off for
	 * the main process's end: an exec that ended alongside it (found later
	 * by waitpid) keeps its exit code rather than being lost with the VM. */
	struct proc *main_proc = NULL;
	int main_status = 0;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			break;
		/* Orphans re-parented to PID 1 are reaped and forgotten. */
		for (struct proc *p = procs; p; p = p->next) {
			if (p->pid != pid)
				continue;
			if (have_main && p->id == main_id) {
				main_proc = p; /* its EXIT goes last: the host may close on it */
				main_status = status;
			} else {
				proc_exited(p, status);
			}
			break;
		}
	}
	if (main_proc && proc_exited(main_proc, main_status))
		finish(LINGER_MS);
}

static void handle_run(uint32_t id, const uint8_t *payload, size_t len)
{
	if (id == 0)
		fatal("RUN with proc 0");
	if (find_proc(id))
		fatal("RUN for proc %u, which is already running", id);
	struct run_spec spec;
	char err[1024];
	if (run_spec_parse(payload, len, &spec, err, sizeof(err)) < 0)
		fatal("%s", err);
	int is_main = !have_main;
	in_place = 0; /* a process of the container may read /etc now */
	if (is_main) {
		have_main = 1;
		main_id = id;
	}
	int code;
	struct proc *p = proc_spawn(id, &spec, err, sizeof(err), &code);
	run_spec_free(&spec);
	if (!p) {
		send_error(id, err);
		send_exit(id, 0, code);
		if (is_main)
			finish(LINGER_MS);
		return;
	}
	p->next = procs;
	procs = p;
	uint8_t pid[4];
	put_be32(pid, (uint32_t)p->pid);
	send_frame(MSG_STARTED, id, pid, sizeof(pid));
}

/* The guest kernel's own counters, read here so that measuring a container
 * needs nothing from its image. */
static void send_counters(uint32_t proc)
{
	static const char *const files[] = {"/proc/stat", "/proc/meminfo"};
	struct buf out = {0};
	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
		char *text = read_file(files[i], FRAME_MAX_PAYLOAD / 2);
		if (text) {
			buf_append(&out, text, strlen(text));
			free(text);
		}
	}
	send_frame(MSG_COUNTERS, proc, buf_peek(&out), out.len);
	buf_free(&out);
}

static void handle_frame(const struct frame_hdr *h, const uint8_t *payload)
{
	struct proc *p;
	switch (h->type) {
	case MSG_RUN:
		handle_run(h->proc, payload, h->len);
		break;
	case MSG_STDIN:
		/* Input for a process that just exited, or that has no stdin, is
		 * dropped: the host cannot know in time. */
		p = find_proc(h->proc);
		if (!p || p->in_fd < 0)
			break;
		if (h->len == 0)
			p->in_eof = 1;
		else if (buf_append(&p->inq, payload, h->len) < 0)
			fatal("out of memory");
		proc_flush_stdin(p);
		break;
	case MSG_SIGNAL:
		if (h->len != 1)
			fatal("SIGNAL payload of %u bytes, expected 1", h->len);
		if ((p = find_proc(h->proc)))
			proc_signal(p, payload[0]);
		break;
	case MSG_RESIZE:
		if (h->len != 4)
			fatal("RESIZE payload of %u bytes, expected 4", h->len);
		if ((p = find_proc(h->proc)))
			proc_resize(p, get_be16(payload), get_be16(payload + 2));
		break;
	case MSG_SHUTDOWN:
		if (h->len != 0)
			fatal("SHUTDOWN payload of %u bytes, expected 0", h->len);
		finish(0); /* the host asked: it expects nothing more */
	case MSG_HOSTS:
		write_etc("/etc/hosts", payload, h->len);
		/* Later ones replace a file processes may be reading. */
		in_place = 0;
		break;
	case MSG_STATS:
		if (h->len != 0)
			fatal("STATS payload of %u bytes, expected 0", h->len);
		send_counters(h->proc);
		break;
	case MSG_PING:
		/* Answered from the poll loop, ahead of queued process output's
		 * reading: the host only wants to know the guest is alive. */
		if (h->len != 0)
			fatal("PING payload of %u bytes, expected 0", h->len);
		send_frame(MSG_PONG, 0, NULL, 0);
		break;
	default:
		fatal("unexpected %s frame from the host", msg_type_name(h->type));
	}
}

/* One read from the port into inbuf; the end of the stream ends the VM. */
static void port_read(void)
{
	size_t room = FRAME_HDR_LEN + FRAME_MAX_PAYLOAD - inlen;
	ssize_t r = read(port, inbuf + inlen, room < READ_CHUNK ? room : READ_CHUNK);
	if (r < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		fatal("read from the host: %s", errstr(errno));
	}
	if (r == 0) {
		if (inlen > 0)
			fatal("stream ended inside a frame (%zu bytes)", inlen);
		/* Whoever drove this VM is gone: nobody can use it any more. */
		logmsg("host closed the channel; shutting down");
		finish(0);
	}
	inlen += (size_t)r;
}

/* The next complete frame in inbuf at *off, or 0; a corrupt one is fatal. */
static int next_frame(size_t *off, struct frame_hdr *h, const uint8_t **payload)
{
	size_t used;
	enum frame_status st = frame_parse(inbuf + *off, inlen - *off, h, payload, &used);
	if (st == FRAME_NEED_MORE)
		return 0;
	if (st != FRAME_OK) {
		char err[128];
		frame_error(st, inbuf + *off, err, sizeof(err));
		fatal("%s", err);
	}
	*off += used;
	return 1;
}

static void handle_frames(void)
{
	size_t off = 0;
	struct frame_hdr h;
	const uint8_t *payload;
	while (next_frame(&off, &h, &payload))
		handle_frame(&h, payload);
	memmove(inbuf, inbuf + off, inlen - off);
	inlen -= off;
}

enum role { ROLE_SIG, ROLE_PORT, ROLE_OUT, ROLE_ERR, ROLE_IN };

static void __attribute__((noreturn)) loop(void)
{
	struct pollfd *pfds = NULL;
	struct {
		enum role role;
		struct proc *p;
	} *roles = NULL;
	size_t cap = 0;

	for (;;) {
		size_t nprocs = 0, queued_in = 0;
		for (struct proc *p = procs; p; p = p->next) {
			nprocs++;
			queued_in += p->inq.len;
		}
		if (cap < 2 + 3 * nprocs) {
			cap = 2 + 3 * nprocs + 8;
			pfds = realloc(pfds, cap * sizeof(*pfds));
			roles = realloc(roles, cap * sizeof(*roles));
			if (!pfds || !roles)
				fatal("out of memory");
		}
		size_t n = 0;
#define ADD(fd_, ev_, role_, p_)                                                                   \
	do {                                                                                       \
		pfds[n] = (struct pollfd){(fd_), (short)(ev_), 0};                                 \
		roles[n].role = (role_);                                                           \
		roles[n].p = (p_);                                                                 \
		n++;                                                                               \
	} while (0)
		ADD(sigfd, POLLIN, ROLE_SIG, NULL);
		ADD(port, (queued_in < STDIN_HIGH ? POLLIN : 0) | (outq.len ? POLLOUT : 0), ROLE_PORT, NULL);
		for (struct proc *p = procs; p; p = p->next) {
			if (outq.len < OUTQ_HIGH) {
				if (p->out_fd >= 0)
					ADD(p->out_fd, POLLIN, ROLE_OUT, p);
				if (p->err_fd >= 0)
					ADD(p->err_fd, POLLIN, ROLE_ERR, p);
			}
			if (p->in_fd >= 0 && (p->inq.len || p->in_eof))
				ADD(p->in_fd, POLLOUT, ROLE_IN, p);
		}
#undef ADD
		if (poll(pfds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatal("poll: %s", errstr(errno));
		}

		/* Process fds first: the handlers below may free processes. */
		for (size_t i = 2; i < n; i++) {
			struct proc *p = roles[i].p;
			if (!pfds[i].revents)
				continue;
			if (roles[i].role == ROLE_OUT && p->out_fd >= 0)
				relay_output(&p->out_fd, MSG_STDOUT, p->id);
			else if (roles[i].role == ROLE_ERR && p->err_fd >= 0)
				relay_output(&p->err_fd, MSG_STDERR, p->id);
			else if (roles[i].role == ROLE_IN)
				proc_flush_stdin(p);
		}

		short prev = pfds[1].revents;
		if (prev & POLLOUT)
			port_write_once();
		if (prev & (POLLIN | POLLERR)) {
			port_read();
			handle_frames();
		} else if (prev & POLLHUP) {
			logmsg("host closed the channel; shutting down");
			finish(0);
		}

		if (pfds[0].revents)
			reap();
	}
}

/* Waits for the port the host named: its name arrives from QEMU
 * asynchronously, possibly after init has started. */
static int open_port(void)
{
	long long deadline = now_ms() + 10000;
	for (;;) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char path[512], name[64] = "";
			snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t r = read(fd, name, sizeof(name) - 1);
			close(fd);
			if (r <= 0)
				continue;
			name[strcspn(name, "\n")] = '\0';
			if (strcmp(name, PORT_NAME) != 0)
				continue;
			snprintf(path, sizeof(path), "/dev/%s", e->d_name);
			closedir(d);
			d = NULL;
			if (wait_for_path(path, (long)(deadline - now_ms())) < 0)
				return -1;
			int port_fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
			/* The container shares this /dev: its processes have no
			 * business with the host channel, so the node goes away
			 * (the open descriptor stays valid). */
			if (port_fd >= 0)
				unlink(path);
			return port_fd;
		}
		if (d)
			closedir(d);
		if (now_ms() >= deadline) {
			errno = ENOENT;
			return -1;
		}
		sleep_ms(5);
	}
}

/* The port reports POLLHUP until QEMU tells the guest the host end is
 * connected; writing before that would block. */
static void wait_host_connected(void)
{
	long long deadline = now_ms() + 10000;
	for (;;) {
		struct pollfd pfd = {port, POLLOUT, 0};
		if (poll(&pfd, 1, 0) > 0 && !(pfd.revents & POLLHUP))
			return;
		if (now_ms() >= deadline) {
			logmsg("host end of the port is not connected");
			return;
		}
		sleep_ms(5);
	}
}

static void open_console(void)
{
	/* Without /dev/console in the initramfs the kernel starts init with
	 * fds 0-2 closed; make them the console (or /dev/null) either way. */
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

/*
 * The host sends CONFIG first, right after it accepts the connection: the
 * container's settings travel in the protocol, never on the kernel command
 * line, where text could smuggle in kernel parameters.
 */
static void read_config(struct guest_config *cfg)
{
	size_t off = 0;
	struct frame_hdr h;
	const uint8_t *payload;
	while (!next_frame(&off, &h, &payload)) {
		struct pollfd pfd = {port, POLLIN, 0};
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			fatal("poll: %s", errstr(errno));
		port_read();
	}
	if (h.type != MSG_CONFIG)
		fatal("expected CONFIG first, got %s", msg_type_name(h.type));
	if (h.proc != 0)
		fatal("CONFIG with proc %u", h.proc);
	char err[256];
	if (config_parse(payload, h.len, cfg, err, sizeof(err)) < 0)
		fatal("%s", err);
	memmove(inbuf, inbuf + off, inlen - off);
	inlen -= off;
}

/*
 * Clones of one memory template wake with the same RNG state: the host's
 * fresh bytes are mixed in and the kernel made to reseed at once, before
 * any process of the container exists, so no two read the same stream.
 */
static void reseed_rng(const struct guest_config *cfg)
{
	if (!cfg->nentropy)
		return;
	struct {
		int entropy_count; /* bits credited */
		int buf_size;
		uint8_t data[CONFIG_MAX_ENTROPY];
	} seed;
	seed.entropy_count = (int)(cfg->nentropy * 8);
	seed.buf_size = (int)cfg->nentropy;
	memcpy(seed.data, cfg->entropy, cfg->nentropy);
	int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fatal("open /dev/urandom: %s", errstr(errno));
	if (ioctl(fd, RNDADDENTROPY, &seed) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0)
		fatal("reseed the RNG: %s", errstr(errno));
	close(fd);
	explicit_bzero(&seed, sizeof(seed));
}

static void apply_config(const struct guest_config *cfg)
{
	reseed_rng(cfg);
	/* The guest has no trusted RTC: the host's clock is the one. */
	if (cfg->time_ns) {
		struct timespec ts = {(time_t)(cfg->time_ns / 1000000000u),
				      (long)(cfg->time_ns % 1000000000u)};
		if (clock_settime(CLOCK_REALTIME, &ts) < 0)
			logmsg("clock_settime: %s", errstr(errno));
	}
	if (cfg->hostname[0] && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
		logmsg("sethostname: %s", errstr(errno));
	/* Docker keeps the hostname in /etc/hostname too; programs read it. */
	char hostname[HOST_NAME_MAX + 2];
	if (gethostname(hostname, HOST_NAME_MAX + 1) == 0) {
		hostname[HOST_NAME_MAX + 1] = '\0';
		size_t n = strlen(hostname);
		hostname[n] = '\n';
		write_etc("/etc/hostname", hostname, n + 1);
	}
	net_setup(cfg);
}

int main(void)
{
	if (getpid() != 1) {
		fprintf(stderr, "cocoon-agent: runs only as init (PID 1) of a cocoon VM\n");
		return 1;
	}
	mount_early();
	open_console();
	/* No core dumps and no ptrace of the agent by anyone without
	 * CAP_SYS_PTRACE; the namespaces keep the container from seeing it. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0)
		fatal("signalfd: %s", errstr(errno));

	char *cmdline = read_file("/proc/cmdline", 1 << 16);
	if (!cmdline)
		fatal("read /proc/cmdline: %s", errstr(errno));
	char val[256], root[64];

	if (cmdline_get(cmdline, "probe", val, sizeof(val)) == 1 && strcmp(val, "1") == 0) {
		(void)write_all(1, "cocoon-probe-ok\n", 16);
		power_off();
	}

	inbuf = malloc(FRAME_HDR_LEN + FRAME_MAX_PAYLOAD);
	if (!inbuf)
		fatal("out of memory");

	/* A memory template is paused at the first read of the port, and each
	 * clone of it gets its own disk behind the root's slot: nothing of the
	 * container may be touched before CONFIG arrives. */
	int template = cmdline_get(cmdline, "template", val, sizeof(val)) == 1 &&
		       strcmp(val, "1") == 0;
	/* Unless the template is rooted (one image's): each of its clones gets
	 * a disk byte for byte the template's, so the root is set up once, here,
	 * and the clones wake with it mounted. */
	int rooted = template && cmdline_get(cmdline, "rooted", val, sizeof(val)) == 1 &&
		     strcmp(val, "1") == 0;
	/* Otherwise the root is mounted while the virtio-serial port is still
	 * being announced (that takes tens of milliseconds under emulation); a
	 * failure is kept and reported once the port is open. */
	char err[512] = "";
	int root_valid = cmdline_get(cmdline, "root", root, sizeof(root)) == 1 &&
			 device_name_valid(root);
	if (!root_valid)
		snprintf(err, sizeof(err), "no valid cocoon.root on the kernel command line");
	else if (!template || rooted)
		old_root = setup_root(root, ROOT_SIZE_DEVICE, err, sizeof(err));
	free(cmdline);
	net_lo_up();
	/* The container's namespaces as a container with neither MOUNTs nor a
	 * read-only root has them: made again after CONFIG for one that has. */
	int ns_ready = 0;
	if (rooted) {
		/* No host to tell yet: the template's build fails on the console's words. */
		if (old_root < 0 || proc_ns_start(0, err, sizeof(err)) < 0)
			fatal("%s", err);
		ns_ready = 1;
		write_etc("/etc/hostname", placeholder_hostname, sizeof(placeholder_hostname) - 1);
		write_etc("/etc/hosts", placeholder_hosts, sizeof(placeholder_hosts) - 1);
		in_place = 1;
		root_prefetch();
		/* What mounting wrote goes to the disk now, once, rather than from
		 * every clone's page cache. */
		sync();
	}

	port = open_port();
	if (port < 0)
		fatal("no usable virtio-serial port named %s: %s", PORT_NAME, errstr(errno));
	wait_host_connected();
	/* The host builds the template once it sees this, and pauses it. */
	if (rooted)
		(void)write_all(1, "cocoon-template-parked-rooted\n", 30);
	else if (template)
		(void)write_all(1, "cocoon-template-parked\n", 23);

	struct guest_config cfg;
	read_config(&cfg);
	if (template && root_valid && !rooted)
		old_root = setup_root(root, cfg.root_size, err, sizeof(err));
	else if (rooted && root_grow(cfg.root_size, err, sizeof(err)) < 0)
		fatal("%s", err);
	if (old_root < 0)
		fatal("%s", err[0] ? err : "setting up the root failed");
	root_ready = 1;
	apply_config(&cfg);
	if (shm_resize(cfg.shm_size, err, sizeof(err)) < 0)
		fatal("%s", err);
	if (user_mounts(cfg.mounts, cfg.nmounts, err, sizeof(err)) < 0)
		fatal("%s", err);
	if (ns_ready && (cfg.readonly_root || cfg.nmounts)) {
		if (proc_ns_restart(cfg.readonly_root, err, sizeof(err)) < 0)
			fatal("%s", err);
	} else if (!ns_ready && proc_ns_start(cfg.readonly_root, err, sizeof(err)) < 0) {
		fatal("%s", err);
	}
	/* A build VM runs one process per step and lives until SHUTDOWN: no
	 * RUN is the main one (proc 0 never names a process). */
	have_main = cfg.build;
	config_free(&cfg);

	uint8_t ready[1 + sizeof(AGENT_VERSION) - 1];
	ready[0] = PROTO_VERSION;
	memcpy(ready + 1, AGENT_VERSION, sizeof(AGENT_VERSION) - 1);
	send_frame(MSG_READY, 0, ready, sizeof(ready));
	/* What came with CONFIG (HOSTS, RUN) is not announced by poll again. */
	handle_frames();
	loop();
}
