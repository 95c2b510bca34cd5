/*
 * granted-bench: what each figure costs through granted, beside the raw
 * kernel primitive it is built from, measured in the same run with the same
 * CPU placement.
 *
 * Like the conformance tests, the figures use nothing of granted but the
 * kernel's uapi headers and plain syscalls, so the same program could run
 * on real Xen. Primitives call the kernel through syscall() directly: the
 * preloaded shim wraps mmap, munmap, close, read and write, and a primitive
 * must not pay for that.
 */
#ifndef GRANTED_BENCH_H
#define GRANTED_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef uint16_t domid_t;
typedef uint32_t grant_ref_t;
#include <xen/evtchn.h>
#include <xen/gntalloc.h>
#include <xen/gntdev.h>

#define PAGE 4096u

/* ---- options --------------------------------------------------------------- */

struct bench_opts {
	int cpu_a;	/* process A: the one that times (mapper, pinger, watcher) */
	int cpu_b;	/* process B: the peer (granter, ponger, victim) */
	int cpu_broker; /* the broker and the fd server; -1: not pinned */
	double scale;	/* iteration counts are multiplied by this */
	unsigned kills; /* figure 4: kills per measurement */
	bool json;
	bool verbose;
};
extern struct bench_opts opt;

/* n scaled by opt.scale, at least min. */
unsigned scaled(unsigned n, unsigned min);

/* ---- time and statistics ------------------------------------------------- */

uint64_t now_ns(void);

struct samples {
	double *v; /* ns per operation */
	size_t n, cap;
};
void samples_add(struct samples *s, double ns);
void samples_free(struct samples *s);

struct stat_sum {
	double median, p99, min; /* ns */
	uint32_t n;		 /* 0: no value */
	bool derived;		 /* a sum of medians: no p99 */
};
struct stat_sum summarize(struct samples *s);

/*
 * One operation under test, timed `batch` calls per sample. fn returns 0 or
 * a negative errno; the first failure stops that operation and is kept.
 */
struct bench_op {
	const char *name;
	int (*fn)(void *ctx);
	void *ctx;
	unsigned batch;
	struct samples s;
	int err;
};
/* A batch size that makes one sample last about target_ns. */
unsigned calibrate(struct bench_op *op, double target_ns);
/*
 * Warms each operation up, then runs `rounds` rounds of `per_round` samples
 * of every operation in turn (starting with a different one each round), so
 * that drifts of the machine reach all of them alike.
 */
void run_interleaved(struct bench_op *ops, unsigned nops, unsigned rounds, unsigned per_round,
		     unsigned warmup);

/* ---- placement, processes, links ------------------------------------------ */

/* Pins the calling process (all its threads to come) to cpu; -1: no-op. */
int pin_self(int cpu);

/* Two pipes between two processes: small integers and arrays. */
struct link {
	int rd, wr;
	int other_rd, other_wr;
};
int link_init(struct link *l);
void link_close(struct link *l);
int link_send(struct link *l, uint64_t v);
/* Fails (-ETIMEDOUT, -EPIPE) after 20 s without a value or at EOF. */
int link_recv(struct link *l, uint64_t *v);
int link_send_buf(struct link *l, const void *buf, size_t len);
int link_recv_buf(struct link *l, void *buf, size_t len);

/*
 * Forks a process acting as domain `domid` (GRANTED_DOMID) pinned to cpu.
 * The child keeps stdio, its ends of `l` (may be NULL) and the fds in
 * keep[0..nkeep); it closes everything else it inherited, as another
 * machine would not share them. Returns the pid in the parent, 0 in the
 * child, -1 on failure.
 */
pid_t fork_domain(unsigned domid, int cpu, struct link *l, const int *keep, int nkeep);
/* Makes the devices this process opens next belong to domid. */
void set_domid(unsigned domid);
/* SIGKILLs and reaps a child. */
void kill_wait(pid_t pid);
/* Waits for a child: 0 if it exited 0. */
int wait_ok(pid_t pid);

/* Opens a device O_RDWR|O_CLOEXEC; prints why on failure. */
int open_dev(const char *path);

/* ---- primitives shared by several figures ---------------------------------- */

/*
 * An fd server in its own process, on the broker's CPU (it plays the
 * broker's part in the primitive): each request on
 * a SOCK_SEQPACKET socket is answered with a small message carrying an
 * fd (a memfd it keeps), as the broker answers an mmap.
 */
struct fd_server {
	pid_t pid;
	int sock;
};
int fd_server_start(struct fd_server *srv);
void fd_server_stop(struct fd_server *srv);
/* One round trip; closes the fd received. For struct bench_op. */
int fd_round_trip(void *srv);

/* Raw syscalls, past the shim. */
void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int raw_munmap(void *addr, size_t len);
int raw_close(int fd);
ssize_t raw_read(int fd, void *buf, size_t len);
ssize_t raw_write(int fd, const void *buf, size_t len);

/* ---- results --------------------------------------------------------------- */

#define MAX_PRIMS 4

enum line_kind { LINE_ROW, LINE_VERDICT, LINE_NOTE };
enum verdict { V_FAIL, V_PASS, V_NA };

struct result_line {
	enum line_kind kind;
	char fig[4];
	char name[72];
	struct stat_sum ours;
	char status[64]; /* when ours has no value: why */
	unsigned nprims;
	struct {
		char name[72];
		struct stat_sum s;
		char status[64];
	} prim[MAX_PRIMS];
	enum verdict verdict;
	char text[240]; /* verdicts and notes */
};

/* Lines of results, in memory the figure processes share with main. */
struct result_line *result_row(const char *fig, const char *name, const struct bench_op *ours);
void result_prim(struct result_line *row, const char *name, const struct bench_op *prim);
void result_prim_value(struct result_line *row, const char *name, struct stat_sum s);
void result_verdict(const char *fig, enum verdict v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void result_note(const char *fig, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Formats ns as "812 ns" or "12.34 us" into buf. */
const char *fmt_time(char *buf, size_t len, double ns);
/* A median of a bench_op (0 if none). */
double median_of(const struct bench_op *op);

/* ---- the figures (each runs in a process of its own, on cpu_a) ------------- */

int fig_gntalloc(void);
int fig_gntdev(void);
int fig_evtchn(void);
int fig_kill(void);
int fig_copy(void);
/* libxenvchan when found at build time; "not available" otherwise. */
int fig_vchan(void);

#endif
