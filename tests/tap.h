/*
 * A small TAP test harness: every test runs in its own forked process with a
 * timeout, and fails if it leaves an fd open that it did not have at start.
 * Assertions print both values. The harness starts a private broker (unless
 * TAP_NO_BROKER is set) on a socket of its own and stops it at the end, and
 * re-executes the test program with the device shim preloaded when asked
 * (tap_main's `preload`). Nothing here is a project header: the conformance
 * tests use only the kernel's ABI.
 */
#ifndef GRANTED_TAP_H
#define GRANTED_TAP_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

typedef void (*tap_fn)(void);
void tap_register(const char *name, tap_fn fn, unsigned timeout_s);

#define TEST_TIMEOUT(name, secs)                                                                   \
	static void name(void);                                                                    \
	__attribute__((constructor)) static void tap_reg_##name(void)                              \
	{                                                                                          \
		tap_register(#name, name, secs);                                                   \
	}                                                                                          \
	static void name(void)
#define TEST(name) TEST_TIMEOUT(name, 20)

enum tap_flags {
	TAP_PRELOAD = 1, /* run with the device shim (LD_PRELOAD) */
	TAP_BROKER = 2,	 /* start a private broker for the run */
};
int tap_main(int argc, char **argv, int flags);

void tap_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
void tap_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			tap_fail(__FILE__, __LINE__, "%s is false (errno %d %s)", #cond, errno,    \
				 strerror(errno));                                                 \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long tap_a = (long long)(a), tap_b = (long long)(b);                          \
		if (tap_a != tap_b)                                                                \
			tap_fail(__FILE__, __LINE__,                                               \
				 "%s = %lld, expected %s = %lld (errno %d %s)", #a, tap_a, #b,     \
				 tap_b, errno, strerror(errno));                                   \
	} while (0)

/* expr must fail with -1 (or MAP_FAILED) and this errno. */
#define CHECK_ERR(expr, err)                                                                       \
	do {                                                                                       \
		errno = 0;                                                                         \
		long long tap_r = (long long)(intptr_t)(expr);                                     \
		int tap_e = errno;                                                                 \
		if (tap_r != -1 || tap_e != (err))                                                 \
			tap_fail(__FILE__, __LINE__,                                               \
				 "%s = %lld errno %d (%s), expected -1 errno %d (%s)", #expr,      \
				 tap_r, tap_e, strerror(tap_e), (err), strerror(err));             \
	} while (0)

/* expr must succeed (>= 0, or not MAP_FAILED for pointers). */
#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		errno = 0;                                                                         \
		long long tap_r = (long long)(intptr_t)(expr);                                     \
		if (tap_r == -1)                                                                   \
			tap_fail(__FILE__, __LINE__, "%s failed: errno %d (%s)", #expr, errno,     \
				 strerror(errno));                                                 \
	} while (0)

/* ---- several processes -------------------------------------------------- */

struct tap_link;
/*
 * Forks a process that acts as domain `domid` (the shim reads GRANTED_DOMID
 * at open). Another domain is another machine: the child closes every fd
 * it inherited but stdio and its end of `l` (may be NULL), so it shares no
 * device file and no mapping's reference with the parent. Returns the pid
 * in the parent, 0 in the child, which must end with tap_child_exit().
 */
pid_t tap_fork_domain(unsigned domid, struct tap_link *l);
/* Makes the calling process act as `domid` for the devices it opens next. */
void tap_set_domid(unsigned domid);
/* Ends a child: 0 if it got here. */
void tap_child_exit(void) __attribute__((noreturn));
/* Waits for a child and fails the test unless it exited 0. */
void tap_wait_ok(pid_t pid);
/* Waits for a child; returns its raw status. */
int tap_wait(pid_t pid);

/* A two-way line between two processes of a test: small integers. */
struct tap_link {
	int rd, wr; /* this side's ends */
	int other_rd, other_wr;
};
void tap_link_init(struct tap_link *l);
/* Call in each process after fork: keeps its own ends. */
void tap_link_parent(struct tap_link *l);
void tap_link_child(struct tap_link *l);
void tap_send(struct tap_link *l, uint64_t v);
/* Fails the test after 10 s without a value. */
uint64_t tap_recv(struct tap_link *l);
void tap_link_close(struct tap_link *l);

/* Open fds of this process (from /proc/self/fd). */
int tap_count_fds(void);
/* The pid of the broker the harness started (0 if none). */
pid_t tap_broker_pid(void);
/* Open fds of another process, and how many of them are memfds. */
int tap_proc_fds(pid_t pid, int *memfds);
/* Milliseconds since an arbitrary point. */
double tap_now_ms(void);

#endif
