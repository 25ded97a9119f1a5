/* Small helpers shared by the agent's files. */
#ifndef COCOON_UTIL_H
#define COCOON_UTIL_H

#include <stddef.h>
#include <sys/types.h>

#define AGENT_VERSION "0.1.0"

/* Diagnostics on the console (fd 2), prefixed `cocoon-agent: `. */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports to the host if it can, then cleans up and powers off (agent.c). */
void fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Writes everything, retrying on EINTR and short writes. */
int write_all(int fd, const void *p, size_t n);
/* Reads until n bytes or end of file; returns the bytes read, -1 on error. */
ssize_t read_full(int fd, void *p, size_t n);

/* Closes every descriptor from fd up. */
void close_range_from(int fd);

int write_file_atomic(const char *path, const void *data, size_t len);

/* Overwrites path, a regular file with no other link, in place: no new
 * file and rename, for a file no process can be reading (before the
 * container's first process). Returns 0, or -1 when path is no such file
 * or a write failed (its content then undefined). */
int rewrite_file(const char *path, const void *data, size_t len);

/* The whole file, NUL-terminated, or NULL (errno set). Larger than max = EFBIG. */
char *read_file(const char *path, size_t max);

/* mkdir -p; existing directories are fine. */
int mkdir_p(const char *path, mode_t mode);

/* strerror, lower-cased like Go's errors so messages read like Docker's. */
const char *errstr(int err);

void sleep_ms(long ms);

/* Milliseconds of CLOCK_MONOTONIC. */
long long now_ms(void);

#endif
