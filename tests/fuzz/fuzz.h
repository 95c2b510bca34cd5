/*
 * What the fuzz targets share: the libFuzzer entry points (replay.c calls
 * them in the plain build), failing loudly, reading the fuzzer's bytes, and
 * an in-process broker with raw-protocol clients on socketpairs.
 *
 * A failed check prints what was wrong and aborts: libFuzzer then saves the
 * input as a crash, and the replay test fails.
 */
#ifndef GRANTED_FUZZ_H
#define GRANTED_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct broker;

/* The ops fuzz_connection's made messages pick from by index (the seed
 * generator writes the same indexes). */
#define FZ_OPS_INIT                                                                                \
	{                                                                                          \
		GR_OP_HELLO, GR_OP_ATTACH, GR_OP_BARRIER, GR_OP_ALLOC, GR_OP_DEALLOC,              \
			GR_OP_ALLOC_NOTIFY, GR_OP_MAP, GR_OP_MAP_REFS, GR_OP_UNMAP,                \
			GR_OP_DEV_NOTIFY, GR_OP_COPY_REFS, GR_OP_MMAP, GR_OP_MUNMAP,               \
			GR_OP_EV_BIND_UNBOUND, GR_OP_EV_BIND_INTERDOMAIN, GR_OP_EV_BIND_VIRQ,      \
			GR_OP_EV_UNBIND, GR_OP_EV_RESTRICT, GR_OP_EV_PORT_INFO, GR_OP_SYNC_FILE,   \
			GR_OP_LIST_DOMAINS, GR_OP_LIST_GRANTS, GR_OP_LIST_MAPPINGS,                \
			GR_OP_LIST_PORTS,                                                          \
	}

/* libFuzzer's entry points: every target defines both. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fz_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#define FZ_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fz_fail(__FILE__, __LINE__, "%s is false", #cond);                         \
	} while (0)

#define FZ_CHECK_EQ(a, b)                                                                          \
	do {                                                                                       \
		long long fz_a = (long long)(a), fz_b = (long long)(b);                            \
		if (fz_a != fz_b)                                                                  \
			fz_fail(__FILE__, __LINE__, "%s = %lld, expected %s = %lld", #a, fz_a, #b, \
				fz_b);                                                             \
	} while (0)

/* The fuzzer's bytes, taken from the front; reading past the end gives 0. */
struct fz_in {
	const uint8_t *p;
	size_t n;
};
uint8_t fz_u8(struct fz_in *in);
uint16_t fz_u16(struct fz_in *in);
uint32_t fz_u32(struct fz_in *in);
uint64_t fz_u64(struct fz_in *in);
/* Up to `want` bytes: returns how many there are, *out points at them. */
size_t fz_bytes(struct fz_in *in, size_t want, const uint8_t **out);

/* $GRANTED_FUZZ_TRACE set: the targets say what each step got. */
bool fz_trace(void);

/* Open fds of this process. */
int fz_count_fds(void);
/* Fails, listing every open fd, unless this process has `before` fds. */
void fz_check_fds(int before);

/* ---- the broker in this process ---------------------------------------- */

/*
 * A broker with no listener. `variant` picks small limits (bit 0: grant
 * table, 1: gntalloc pages, 2: ports, 3: refs per map, 4: maptrack) so that
 * the limit paths are reachable. Grants end without delay, so that an idle
 * broker holds nothing. $GRANTED_FUZZ_LOG=debug shows its log.
 */
struct broker *fz_broker_new(unsigned variant);
/* Dispatches until nothing is ready. */
void fz_pump(struct broker *b);
/* A new connection: returns the client's end. */
int fz_connect(struct broker *b);
/* Sends header + payload; the header's size is set. Returns 0 or -errno. */
int fz_send(int sock, uint16_t op, uint16_t flags, uint32_t seq, const void *p, size_t len,
	    const int *fds, unsigned nfds);

/* Fds a client holds on to (mapping tokens, memory, doorbells). */
#define FZ_POOL_MAX 48
struct fz_pool {
	int fds[FZ_POOL_MAX];
	unsigned n;
};
/* Takes fd; closes it if the pool is full. */
void fz_pool_add(struct fz_pool *p, int fd);
void fz_pool_close(struct fz_pool *p, unsigned i);
void fz_pool_clear(struct fz_pool *p);

/* What one drain of a connection saw. */
struct fz_seen {
	unsigned msgs;	  /* messages read */
	bool closed;	  /* the broker hung up */
	bool answered;	  /* a message with the awaited seq came */
	int32_t result;	  /* its result (the last one) */
	char payload[64]; /* its payload's first bytes */
	unsigned nfds;	  /* fds it carried */
};

/*
 * Reads every message waiting on sock, checking each reply's framing (size,
 * flags, fd count). Received fds go to `pool` (NULL: closed). `seq` is the
 * sequence number to look for.
 */
void fz_drain(int sock, uint32_t seq, struct fz_seen *seen, struct fz_pool *pool);

/*
 * Pumps the broker and drains every socket of socks[0..n) (-1: skipped)
 * until neither has anything more. seen[i] accumulates for socks[i].
 */
void fz_settle(struct broker *b, const int *socks, const uint32_t *seqs, struct fz_seen *seen,
	       unsigned n, struct fz_pool *pool);

/* HELLO of `kind` as `domid` (device kinds send the socket itself); the
 * reply's result, and its file id in *file_id (may be NULL). */
int fz_hello(struct broker *b, int sock, uint16_t kind, uint16_t domid, uint64_t *file_id);

/* Fds a fuzzer may pass with a message, besides the ones a target adds. */
enum {
	FZ_FD_OWN_SOCKET, /* a dup of the sending connection's client end */
	FZ_FD_SOCKET,	  /* an unrelated socket */
	FZ_FD_EVENTFD,
	FZ_FD_MEMFD,
	FZ_FD_PIPE_READ,
	FZ_FD_PIPE_WRITE,
	FZ_FD_DEVNULL,
	FZ_FD_KINDS,
};
/* A new fd of that kind (the caller closes it), or -1. */
int fz_make_fd(unsigned kind, int own_sock);

/* Checks that the broker holds nothing: no connection, file, allocation,
 * mapping, grant or domain. */
void fz_check_idle(struct broker *b);

#endif
