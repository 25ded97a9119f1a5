/* Container processes: spawning one from a RUN spec, and its relay state. */
#ifndef COCOON_PROCESS_H
#define COCOON_PROCESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "protocol.h"

struct proc {
	struct proc *next;
	uint32_t id; /* chosen by the host */
	pid_t pid;
	int tty;
	int step;    /* a build step (ROOT): what it leaves running goes with it */
	int out_fd;  /* stdout pipe or pty master; -1 once at end of file */
	int err_fd;  /* stderr pipe; -1 with a TTY or once at end of file */
	int in_fd;   /* stdin pipe or a dup of the pty master; -1 if none */
	struct buf inq;  /* STDIN bytes not yet written to in_fd */
	int in_eof;      /* the host closed stdin: act on it once inq drains */
};

/*
 * Forks and execs spec. Returns the process once the exec succeeded (its
 * fds non-blocking), or NULL with a one-line message in err and the exit
 * code to report in *code (127 = not found, 126 = anything else).
 */
struct proc *proc_spawn(uint32_t id, const struct run_spec *spec, char *err, size_t errlen,
			int *code);

/*
 * Creates the container's PID namespace (with its init) and mount namespace
 * (with a /proc of that PID namespace); every process spawned afterwards
 * lives there. Returns 0, or -1 with a message in err.
 */
int proc_ns_start(int readonly_root, char *err, size_t errlen);

/* proc_ns_start again, for namespaces that must differ from those made
 * earlier (before CONFIG, in a rooted memory template): those go first. */
int proc_ns_restart(int readonly_root, char *err, size_t errlen);

/* Drops the agent's handles on those namespaces, so they end with their
 * processes (before the root is unmounted). */
void proc_ns_close(void);

/*
 * Keeps only the descriptors keep[0..n) (negative ones are skipped), moved
 * to 3, 4, ... in order and close-on-exec, and updates keep; closes all
 * others, 0-2 included. For anything forked for the container:
 * close-on-exec alone leaves the agent's port open until exec, and in a
 * process that never execs. At most 8 fds. Returns 0, or -1.
 */
int keep_fds(int *keep, int n);

/* Environment entries envp, plus HOME=home when envp has no HOME; the
 * strings are shared with envp, only the vector (and HOME) is new. */
char **env_with_home(char *const *envp, const char *home);

/* dir[0..dlen)/file, or ./file for an empty PATH entry, into out.
 * Returns 0, or -1 if it does not fit. */
int path_candidate(const char *dir, size_t dlen, const char *file, char *out, size_t outlen);

/*
 * Adds the groups of list (GROUPS: comma-separated names or numbers, looked
 * up in group, the content of /etc/group or NULL) to groups[0..*n), each
 * once, at most 65536 in all. Returns 0, or -1 with a one-line message in err.
 */
int add_groups(const char *list, const char *group, gid_t *groups, size_t *n, char *err,
	       size_t errlen);

/* Closes the fds and frees the process (it must already be reaped). */
void proc_free(struct proc *p);

void proc_signal(struct proc *p, int sig);
void proc_resize(struct proc *p, uint16_t rows, uint16_t cols);

/*
 * Writes queued stdin without blocking; performs a pending close (or, with a
 * TTY, sends the terminal's EOF character). Drops the queue if the process
 * stopped reading (EPIPE).
 */
void proc_flush_stdin(struct proc *p);

#endif
