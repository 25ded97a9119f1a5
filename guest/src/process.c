#define _GNU_SOURCE
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sched.h>
#include <termios.h>
#include <unistd.h>

#include "layers.h"
#include "tar.h"
#include "userdb.h"
#include "util.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* /etc/passwd and /etc/group larger than this are not plausible. */
#define USERDB_MAX (16u << 20)
/* Linux NGROUPS_MAX. */
#define USERDB_MAX_GROUPS 65536

/*
 * The child reports a failure before exec through a close-on-exec pipe:
 * one byte of exit code, then the message. A successful exec closes the
 * pipe with nothing written.
 */
static void __attribute__((noreturn, format(printf, 3, 4)))
child_fail(int errfd, int code, const char *fmt, ...)
{
	char msg[1024];
	msg[0] = (char)code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + 1, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	(void)write_all(errfd, msg, 1 + strlen(msg + 1));
	_exit(code);
}

static const char *env_get(char *const *envp, const char *key)
{
	size_t klen = strlen(key);
	for (; *envp; envp++)
		if (strncmp(*envp, key, klen) == 0 && (*envp)[klen] == '=')
			return *envp + klen + 1;
	return NULL;
}

int path_candidate(const char *dir, size_t dlen, const char *file, char *out, size_t outlen)
{
	/* An empty PATH entry is the current directory, as in POSIX shells. */
	int n = dlen == 0 ? snprintf(out, outlen, "./%s", file)
			  : snprintf(out, outlen, "%.*s/%s", (int)dlen, dir, file);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Like Go's exec.LookPath followed by execve, so errors match Docker's. */
static void __attribute__((noreturn))
exec_path(int errfd, char *const *argv, char *const *envp)
{
	const char *file = argv[0];
	if (file[0] == '\0')
		child_fail(errfd, 127, "exec \"\": executable file not found in $PATH");
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		int e = errno;
		child_fail(errfd, e == ENOENT ? 127 : 126, "exec \"%s\": %s", file, errstr(e));
	}

	const char *path = env_get(envp, "PATH");
	if (!path)
		path = DEFAULT_PATH;
	int denied = 0;
	for (const char *p = path;;) {
		const char *colon = strchr(p, ':');
		size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
		char cand[4096];
		if (path_candidate(p, dlen, file, cand, sizeof(cand)) == 0) {
			struct stat st;
			if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
				execve(cand, argv, envp);
				int e = errno;
				if (e == EACCES) {
					denied = 1;
				} else {
					/* The file is there: ENOENT now means a missing
					 * interpreter or dynamic loader. */
					child_fail(errfd, e == ENOENT ? 127 : 126, "exec \"%s\": %s", cand,
						   errstr(e));
				}
			}
		}
		if (!colon)
			break;
		p = colon + 1;
	}
	if (denied)
		child_fail(errfd, 126, "exec \"%s\": permission denied", file);
	child_fail(errfd, 127, "exec \"%s\": executable file not found in $PATH", file);
}

char **env_with_home(char *const *envp, const char *home)
{
	size_t n = 0;
	while (envp[n])
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	memcpy(env, envp, n * sizeof(*env));
	if (!env_get(envp, "HOME")) {
		size_t len = strlen(home) + 6;
		if (!(env[n] = malloc(len))) {
			free(env);
			return NULL;
		}
		snprintf(env[n], len, "HOME=%s", home);
	}
	return env;
}

int add_groups(const char *list, const char *group, gid_t *groups, size_t *n, char *err,
	       size_t errlen)
{
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		gid_t gid;
		if (group_resolve(p, len, group, &gid, err, errlen) < 0)
			return -1;
		size_t i = 0;
		while (i < *n && groups[i] != gid)
			i++;
		if (i == *n) {
			if (*n == USERDB_MAX_GROUPS) {
				snprintf(err, errlen, "more than %d groups", USERDB_MAX_GROUPS);
				return -1;
			}
			groups[(*n)++] = gid;
		}
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

struct child_fds {
	int errfd;            /* write end of the error pipe */
	int pidfd;            /* write end of the pipe that reports the pid */
	const char *pts;      /* pty slave path, with a TTY */
	int in, out, err;     /* child ends of the pipes, without a TTY */
};

/*
 * The container's own PID and mount namespaces. Every process of the
 * container lives there, so the agent (PID 1 of the VM) is not among the
 * processes its root can see, open (/proc/N/fd, pidfd_getfd) or trace.
 */
static int ns_pid_fd = -1, ns_mnt_fd = -1;
static pid_t ns_init = -1; /* cocoon-init, PID 1 of the container's namespace */

int keep_fds(int *keep, int n)
{
	int base = 3 + n;
	for (int i = 0; i < n; i++)
		if (keep[i] >= base)
			base = keep[i] + 1;
	int tmp[8];
	if (n > (int)(sizeof(tmp) / sizeof(*tmp)))
		return -1;
	/* Above every kept fd first, so moving them down cannot clobber one. */
	for (int i = 0; i < n; i++)
		if (keep[i] >= 0 && (tmp[i] = fcntl(keep[i], F_DUPFD_CLOEXEC, base)) < 0)
			return -1;
	for (int i = 0; i < n; i++) {
		if (keep[i] < 0) {
			close(3 + i);
			continue;
		}
		if (dup3(tmp[i], 3 + i, O_CLOEXEC) < 0)
			return -1;
		keep[i] = 3 + i;
	}
	close_range_from(3 + n);
	for (int fd = 0; fd < 3; fd++)
		close(fd);
	return 0;
}

static void __attribute__((noreturn))
child_main(const struct run_spec *spec, const struct child_fds *fds)
{
	int errfd = fds->errfd;
	/* Only the shim may report the pid: nothing in the container can. */
	close(fds->pidfd);

	/* The agent blocks SIGCHLD for its signalfd and ignores SIGPIPE; both
	 * would be inherited across exec. */
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	umask(022);

	if (setsid() < 0)
		child_fail(errfd, 126, "setsid: %s", errstr(errno));

	if (spec->tty) {
		/* Opening the slave as a session leader without O_NOCTTY makes it
		 * the controlling terminal; TIOCSCTTY makes that explicit. */
		int s = open(fds->pts, O_RDWR);
		if (s < 0)
			child_fail(errfd, 126, "open %s: %s", fds->pts, errstr(errno));
		if (ioctl(s, TIOCSCTTY, 0) < 0)
			child_fail(errfd, 126, "TIOCSCTTY: %s", errstr(errno));
		if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0)
			child_fail(errfd, 126, "dup2: %s", errstr(errno));
		if (s > 2)
			close(s);
	} else {
		int in = fds->in;
		/* 0-2 are closed here: /dev/null may land on 0 itself, so it
		 * must not be close-on-exec. */
		if (in < 0 && (in = open("/dev/null", O_RDONLY)) < 0)
			child_fail(errfd, 126, "open /dev/null: %s", errstr(errno));
		if (dup2(in, 0) < 0 || dup2(fds->out, 1) < 0 || dup2(fds->err, 2) < 0)
			child_fail(errfd, 126, "dup2: %s", errstr(errno));
		if (in > 2)
			close(in);
	}

	char msg[512];
	/* A build step: its root (and so its users) is the step's overlay. */
	if (spec->root && layers_enter(spec, !spec->tar_op, msg, sizeof(msg)) < 0)
		child_fail(errfd, 126, "%s", msg);

	char *passwd = read_file("/etc/passwd", USERDB_MAX);
	char *group = read_file("/etc/group", USERDB_MAX);
	struct exec_user u;
	if (user_resolve(spec->user, passwd, group, &u, msg, sizeof(msg)) < 0)
		child_fail(errfd, 126, "%s", msg);

	const char *cwd = spec->cwd && spec->cwd[0] ? spec->cwd : "/";
	/* Created as root, like Docker does for a WORKDIR the image lacks. */
	if (mkdir_p(cwd, 0755) < 0)
		child_fail(errfd, 126, "mkdir \"%s\": %s", cwd, errstr(errno));

	/* Like initgroups(3): the primary group is among the process's groups,
	 * then every group that lists the user. */
	static gid_t groups[USERDB_MAX_GROUPS];
	size_t ngroups = 0;
	groups[ngroups++] = u.gid;
	for (size_t i = 0; i < u.nsgids && ngroups < sizeof(groups) / sizeof(*groups); i++)
		if (u.sgids[i] != u.gid)
			groups[ngroups++] = u.sgids[i];
	if (spec->groups && add_groups(spec->groups, group, groups, &ngroups, msg, sizeof(msg)) < 0)
		child_fail(errfd, 126, "%s", msg);
	/* As root still: raising a hard limit needs the privilege. */
	for (size_t i = 0; i < spec->nrlimits; i++) {
		const struct run_rlimit *r = &spec->rlimits[i];
		struct rlimit lim = {.rlim_cur = r->soft, .rlim_max = r->hard};
		if (setrlimit(r->resource, &lim) < 0)
			child_fail(errfd, 126, "setrlimit %u: %s", r->resource, errstr(errno));
	}
	if (setgroups(ngroups, groups) < 0)
		child_fail(errfd, 126, "setgroups: %s", errstr(errno));
	if (setgid(u.gid) < 0)
		child_fail(errfd, 126, "setgid %u: %s", (unsigned)u.gid, errstr(errno));
	if (setuid(u.uid) < 0)
		child_fail(errfd, 126, "setuid %u: %s", (unsigned)u.uid, errstr(errno));
	/* After dropping privileges: the user must be able to enter it. */
	if (chdir(cwd) < 0)
		child_fail(errfd, 126, "chdir \"%s\": %s", cwd, errstr(errno));

	if (spec->tar_op) {
		/* The agent's own code, not a program of the image: closing the
		 * error pipe tells the agent it started, as an exec would. */
		close(errfd);
		int rc;
		switch (spec->tar_op) {
		case TAR_CREATE:
			rc = tar_create(1, spec->tar_path, spec->tar_flags & TAR_ONE_FS);
			break;
		case TAR_EXTRACT:
			rc = tar_extract(0, spec->tar_path, spec->tar_flags & TAR_KEEP_KINDS);
			break;
		case TAR_LAYER:
			rc = tar_layer(1, spec->tar_path);
			break;
		case TAR_ENTRY:
			rc = tar_entry(1, spec->tar_path);
			break;
		default:
			rc = tar_unlayer(0, spec->tar_path);
		}
		_exit(rc < 0 ? 1 : 0);
	}
	char **env = env_with_home(spec->envp, u.home);
	if (!env)
		child_fail(errfd, 126, "out of memory");
	exec_path(errfd, spec->argv, env);
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/*
 * The first child of a spawn, still in the agent's namespaces and so out of
 * the container's sight: it drops every descriptor of the agent, enters the
 * container's namespaces and forks the process there. Then it reports the
 * process's pid and exits, and the process, orphaned, becomes the agent's
 * child again (the agent is PID 1 of the shim's namespace), so the agent
 * waits for it, and signals it, directly. No process the container can see
 * ever held the agent's port.
 */
static void __attribute__((noreturn))
shim_main(const struct run_spec *spec, const struct child_fds *fds)
{
	int errfd = fds->errfd;
	if (setns(ns_mnt_fd, CLONE_NEWNS) < 0 || setns(ns_pid_fd, CLONE_NEWPID) < 0)
		child_fail(errfd, 126, "enter the container's namespaces: %s", errstr(errno));
	int keep[] = {fds->errfd, fds->pidfd, fds->in, fds->out, fds->err};
	if (keep_fds(keep, sizeof(keep) / sizeof(*keep)) < 0)
		child_fail(errfd, 126, "close the agent's descriptors: %s", errstr(errno));
	struct child_fds mine = {keep[0], keep[1], fds->pts, keep[2], keep[3], keep[4]};
	pid_t pid = fork();
	if (pid < 0)
		child_fail(mine.errfd, 126, "fork: %s", errstr(errno));
	if (pid == 0)
		child_main(spec, &mine);
	uint8_t b[4];
	put_be32(b, (uint32_t)pid);
	(void)write_all(mine.pidfd, b, sizeof(b));
	_exit(0);
}

static void on_sigchld(int sig)
{
	(void)sig;
}

/*
 * PID 1 of the container's namespace: it only reaps the orphans the
 * container leaves. The container's processes are not its children but
 * the agent's, so their exit status, signals (a PID 1 ignores those it has
 * no handler for, which would break `kill` and Ctrl-C) and `kill -9 $$` all
 * behave as without a namespace; this process holds no descriptor at all.
 */
static void __attribute__((noreturn)) init_main(int readyfd, int readonly_root)
{
	prctl(PR_SET_NAME, "cocoon-init", 0, 0, 0);
	/* A /proc of this PID namespace, in a mount namespace of its own so
	 * the agent keeps the VM-wide one. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    umount2("/proc", MNT_DETACH) < 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		_exit(1);
	/* Read-only for the container only: the flag is this namespace's
	 * mount's, so the agent can still replace /etc/hosts. */
	if (readonly_root && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		_exit(1);
	close(readyfd);

	sigset_t mask;
	sigfillset(&mask);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	signal(SIGCHLD, on_sigchld);
	sigdelset(&mask, SIGCHLD);
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		sigsuspend(&mask);
	}
}

int proc_ns_start(int readonly_root, char *err, size_t errlen)
{
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", errstr(errno));
		return -1;
	}
	pid_t helper = fork();
	if (helper < 0) {
		snprintf(err, errlen, "fork: %s", errstr(errno));
		close(pp[0]);
		close(pp[1]);
		return -1;
	}
	if (helper == 0) {
		int keep[] = {pp[1]};
		if (keep_fds(keep, 1) < 0 || unshare(CLONE_NEWPID | CLONE_NEWNS) < 0)
			_exit(1);
		pid_t init = fork();
		if (init < 0)
			_exit(1);
		if (init == 0)
			init_main(keep[0], readonly_root);
		uint8_t b[4];
		put_be32(b, (uint32_t)init);
		(void)write_all(keep[0], b, sizeof(b));
		_exit(0);
	}
	close(pp[1]);
	uint8_t b[4];
	pid_t init = read_full(pp[0], b, sizeof(b)) == sizeof(b) ? (pid_t)get_be32(b) : -1;
	/* End of file once the init has its /proc (or is gone). */
	uint8_t extra;
	while (read(pp[0], &extra, 1) < 0 && errno == EINTR)
		;
	close(pp[0]);
	while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
		;
	if (init <= 0 || waitpid(init, NULL, WNOHANG) != 0) {
		snprintf(err, errlen, "the container's PID namespace could not be set up");
		return -1;
	}
	ns_init = init;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)init);
	ns_pid_fd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)init);
	ns_mnt_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ns_pid_fd < 0 || ns_mnt_fd < 0) {
		snprintf(err, errlen, "open the container's namespaces: %s", errstr(errno));
		return -1;
	}
	return 0;
}

void proc_ns_close(void)
{
	close_fd(&ns_pid_fd);
	close_fd(&ns_mnt_fd);
}

int proc_ns_restart(int readonly_root, char *err, size_t errlen)
{
	if (ns_init > 0) {
		/* Nothing runs in it yet: its init goes (reaped by the agent's
		 * loop, as any orphan), and the namespaces with it. */
		kill(ns_init, SIGKILL);
		ns_init = -1;
	}
	proc_ns_close();
	return proc_ns_start(readonly_root, err, errlen);
}

struct proc *proc_spawn(uint32_t id, const struct run_spec *spec, char *err, size_t errlen,
			int *code)
{
	struct proc *p = calloc(1, sizeof(*p));
	int ep[2] = {-1, -1}, pp[2] = {-1, -1}, ip[2] = {-1, -1}, op[2] = {-1, -1}, xp[2] = {-1, -1};
	int master = -1;
	char pts[64];
	*code = 126;
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->id = id;
	p->tty = spec->tty;
	p->step = spec->root != NULL;
	p->out_fd = p->err_fd = p->in_fd = -1;

	if (pipe2(ep, O_CLOEXEC) < 0)
		goto syserr;
	if (spec->tty) {
		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
		    ptsname_r(master, pts, sizeof(pts)) != 0)
			goto syserr;
		if (spec->rows && spec->cols) {
			struct winsize ws = {.ws_row = spec->rows, .ws_col = spec->cols};
			ioctl(master, TIOCSWINSZ, &ws);
		}
	} else {
		if (pipe2(op, O_CLOEXEC) < 0 || pipe2(xp, O_CLOEXEC) < 0)
			goto syserr;
		if (spec->stdin_open && pipe2(ip, O_CLOEXEC) < 0)
			goto syserr;
	}

	if (pipe2(pp, O_CLOEXEC) < 0)
		goto syserr;
	pid_t shim = fork();
	if (shim < 0)
		goto syserr;
	if (shim == 0) {
		struct child_fds fds = {ep[1], pp[1], pts, ip[0], op[1], xp[1]};
		shim_main(spec, &fds);
	}

	close_fd(&ep[1]);
	close_fd(&pp[1]);
	close_fd(&ip[0]);
	close_fd(&op[1]);
	close_fd(&xp[1]);

	uint8_t pidbuf[4];
	pid_t pid = read_full(pp[0], pidbuf, sizeof(pidbuf)) == sizeof(pidbuf) ? (pid_t)get_be32(pidbuf) : -1;
	close_fd(&pp[0]);
	while (waitpid(shim, NULL, 0) < 0 && errno == EINTR)
		;
	/* The process had the pipe for a moment before closing it: whatever
	 * came through must at least name a child of the agent. */
	siginfo_t si;
	if (pid > 0 && waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		pid = -1;

	/* The child only runs setup code before exec, so waiting for the exec
	 * here is short, and it guarantees STARTED precedes any output. */
	char msg[1024];
	size_t got = 0;
	for (;;) {
		ssize_t r = read(ep[0], msg + got, sizeof(msg) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == sizeof(msg) - 1)
			break;
	}
	close_fd(&ep[0]);
	if (got > 0 || pid <= 0) {
		msg[got] = '\0';
		/* Only the two codes a start failure has (see child_fail). */
		*code = got > 0 && (unsigned char)msg[0] == 127 ? 127 : 126;
		snprintf(err, errlen, "%s", got > 1 ? msg + 1 : "exec failed");
		while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		goto cleanup;
	}

	p->pid = pid;
	if (spec->tty) {
		p->out_fd = master;
		p->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
		set_nonblock(master);
	} else {
		p->out_fd = op[0];
		p->err_fd = xp[0];
		p->in_fd = ip[1];
		set_nonblock(op[0]);
		set_nonblock(xp[0]);
		if (ip[1] >= 0)
			set_nonblock(ip[1]);
	}
	return p;

syserr:
	snprintf(err, errlen, "cannot start process: %s", errstr(errno));
cleanup:
	close_fd(&ep[0]);
	close_fd(&ep[1]);
	close_fd(&pp[0]);
	close_fd(&pp[1]);
	close_fd(&ip[0]);
	close_fd(&ip[1]);
	close_fd(&op[0]);
	close_fd(&op[1]);
	close_fd(&xp[0]);
	close_fd(&xp[1]);
	close_fd(&master);
	free(p);
	return NULL;
}

void proc_free(struct proc *p)
{
	close_fd(&p->out_fd);
	close_fd(&p->err_fd);
	close_fd(&p->in_fd);
	buf_free(&p->inq);
	free(p);
}

void proc_signal(struct proc *p, int sig)
{
	/* With a TTY the whole job gets it, as Ctrl-C at a terminal would. */
	if (kill(p->tty ? -p->pid : p->pid, sig) < 0 && p->tty)
		kill(p->pid, sig);
}

void proc_resize(struct proc *p, uint16_t rows, uint16_t cols)
{
	if (!p->tty || p->in_fd < 0)
		return;
	struct winsize ws = {.ws_row = rows, .ws_col = cols};
	ioctl(p->in_fd, TIOCSWINSZ, &ws);
}

void proc_flush_stdin(struct proc *p)
{
	while (p->in_fd >= 0 && p->inq.len > 0) {
		ssize_t w = write(p->in_fd, buf_peek(&p->inq), p->inq.len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			/* EPIPE: nobody reads stdin any more; the bytes are moot. */
			buf_consume(&p->inq, p->inq.len);
			if (!p->tty)
				close_fd(&p->in_fd);
			break;
		}
		buf_consume(&p->inq, (size_t)w);
	}
	if (p->inq.len == 0 && p->in_eof) {
		p->in_eof = 0;
		if (p->tty) {
			/* A terminal has no end of file of its own: send its EOF
			 * character, as Docker does. */
			struct termios t;
			char eof = 4;
			if (p->in_fd >= 0 && tcgetattr(p->in_fd, &t) == 0 && t.c_cc[VEOF])
				eof = (char)t.c_cc[VEOF];
			if (p->in_fd >= 0)
				(void)!write(p->in_fd, &eof, 1);
		} else {
			close_fd(&p->in_fd);
		}
	}
}
