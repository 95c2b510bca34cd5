/*
 * What the security tests share: watching the broker from outside (its fds,
 * memfds and memory in /proc, its tables through grantctl) and starting a
 * broker of their own when a test must kill it, run it as another user or
 * read its log; and a grant made through the devices to attack.
 */
#ifndef SECURITY_SEC_H
#define SECURITY_SEC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../tap.h"

/* Whether this build runs under AddressSanitizer, which keeps freed memory
 * in quarantine: memory figures then say nothing about leaks. */
#if defined(__SANITIZE_ADDRESS__)
#define SEC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEC_ASAN 1
#endif
#endif
#ifndef SEC_ASAN
#define SEC_ASAN 0
#endif

struct usage {
	int fds, memfds;
	long rss_kb;
};

/* The broker's open fds, memfds and VmRSS (pid 0: the harness's broker). */
void sec_usage(pid_t pid, struct usage *u);
/* The same once two samples 10 ms apart agree (a client that just went
 * may still be being released). */
void sec_usage_settled(pid_t pid, struct usage *u);
/* VmRSS of a process in KiB, -1 if it is gone. */
long sec_rss_kb(pid_t pid);
/*
 * Waits up to `ms` for the broker's fds and memfds to come back to u0 (its
 * release after a client's death is asynchronous), then fails the test if
 * they did not.
 */
void sec_expect_back(const struct usage *u0, int ms);
/* The same for another broker. */
void sec_expect_back_of(pid_t pid, const struct usage *u0, int ms);

/*
 * Runs `grantctl WHAT --json` (GRANTED_GRANTCTL) against the broker of
 * GRANTED_SOCKET and counts the occurrences of "key": N with lo <= N <= hi.
 * Fails the test if grantctl fails.
 */
int sec_grantctl_count(const char *what, const char *key, unsigned lo, unsigned hi);

/*
 * A broker of the test's own: listens on `sock` (its directory is made
 * 0755 so that other users can reach it), logs to `log` at info level (may
 * be NULL: /dev/null, warning level), runs as `uid` if uid != 0. Returns its
 * pid once it listens; fails the test otherwise.
 */
pid_t sec_start_broker(const char *sock, const char *log, uid_t uid);
/* SIGTERM, then the exit status; -1 if it was still there 5 s later (it is
 * then killed). */
int sec_stop_broker(pid_t pid);

/* A fresh directory under /tmp for a socket and logs (removed by sec_rmdir). */
void sec_tmpdir(char *buf, size_t len);
void sec_rmdir(const char *dir);

/* A broker of the test's own in a fresh directory (owned by uid), its log in
 * `log` if with_log, which this process's clients then use (GRANTED_SOCKET):
 * its log can be read, and if it hangs the harness's broker is fine. */
struct private_broker {
	char dir[64], sock[128], log[128];
	pid_t pid;
};
void sec_private_broker(struct private_broker *pb, bool with_log, uid_t uid);

/* One page granted by domain 1 (this process, through the gntalloc device)
 * to `grantee`, mapped and filled with `fill`. */
struct grant {
	int fd;
	uint64_t idx;
	uint32_t ref;
	char *p;
};
void grant_make(struct grant *g, unsigned grantee, bool writable, char fill);
void grant_free(struct grant *g);
/* Fails the test unless every byte of the page is still `fill`. */
void grant_intact(const struct grant *g, char fill);

/* Whether `file` contains `needle`. */
bool sec_file_contains(const char *file, const char *needle);

#endif
