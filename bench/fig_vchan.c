/*
 * Figure 6: a vchan stream (Debian's unmodified libxenvchan, 64 KiB ring)
 * from domain 1 to domain 2, beside a pipe (64 KiB of buffer by default)
 * and a unix stream socket between the same two processes on the same CPUs.
 *
 * Process B (domain 1) is the vchan server and the sender; process A
 * (domain 2) the client, the receiver and the one that times: ns per MiB
 * received, one sample a MiB, blocks of each stream interleaved in rounds.
 * libxenvchan needs xenstore: the broker's, beside its socket.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef HAVE_XENVCHAN

int fig_vchan(void)
{
	result_verdict("6", V_NA, "vchan stream: not available (built without libxenvchan)");
	return 0;
}

#else

#include <libxenvchan.h>

#define RING	(64u * 1024)
#define CHUNK	RING
#define MIB	(1024u * 1024)
#define XS_PATH "/local/domain/1/data/bench-vchan"

enum mode { M_STOP, M_VCHAN, M_PIPE, M_SOCKET };

/* libxenstore looks here; the broker serves xenstore beside its socket. */
static void xenstore_env(void)
{
	const char *sock = getenv("GRANTED_SOCKET");
	const char *slash = sock ? strrchr(sock, '/') : NULL;
	char path[4096];
	if (!slash)
		return;
	snprintf(path, sizeof(path), "%.*s/xenstored.socket", (int)(slash - sock), sock);
	setenv("XENSTORED_PATH", path, 1);
}

/* Process B, domain 1: serves the vchan, then sends what A asks for. */
static void sender(struct link *l, int pipe_wr, int sock)
{
	static char buf[CHUNK];
	memset(buf, 0x5a, sizeof(buf));
	xenstore_env();
	/* The left ring (A to B) is unused: in the shared page; the right one
	 * holds 64 KiB in pages of its own. */
	struct libxenvchan *vc = libxenvchan_server_init(NULL, 2, XS_PATH, 0, RING);
	int e = vc ? 0 : -(errno ? errno : EIO);
	if (link_send(l, (uint64_t)(int64_t)e) < 0 || !vc)
		_exit(1);
	vc->blocking = -1; /* a signed 1-bit field: -1 is true */
	for (;;) {
		uint64_t mode, bytes;
		if (link_recv(l, &mode) < 0 || mode == M_STOP || link_recv(l, &bytes) < 0)
			break;
		for (uint64_t sent = 0; sent < bytes;) {
			size_t n = bytes - sent < CHUNK ? (size_t)(bytes - sent) : CHUNK;
			ssize_t k = mode == M_VCHAN  ? libxenvchan_write(vc, buf, n)
				    : mode == M_PIPE ? raw_write(pipe_wr, buf, n)
						     : raw_write(sock, buf, n);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				_exit(1);
			sent += (uint64_t)k;
		}
	}
	libxenvchan_close(vc);
	_exit(0);
}

struct receiver {
	struct link *l;
	struct libxenvchan *vc;
	int pipe_rd, sock;
	char *buf;
};

/*
 * One block of `bytes` from B by `mode`: adds ns per MiB, one sample a MiB
 * (the first, which includes B's start, is dropped).
 */
static int receive(struct receiver *r, enum mode mode, uint64_t bytes, struct samples *s)
{
	if (link_send(r->l, mode) < 0 || link_send(r->l, bytes) < 0)
		return -EPIPE;
	alarm(60); /* a lost wakeup ends the figure instead of hanging it */
	uint64_t got = 0, block = 0, t0 = now_ns();
	bool first = true;
	int err = 0;
	while (got < bytes && !err) {
		ssize_t k = mode == M_VCHAN  ? libxenvchan_read(r->vc, r->buf, CHUNK)
			    : mode == M_PIPE ? raw_read(r->pipe_rd, r->buf, CHUNK)
					     : raw_read(r->sock, r->buf, CHUNK);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			err = k == 0 ? -EPIPE : -(errno ? errno : EIO);
			break;
		}
		got += (uint64_t)k;
		block += (uint64_t)k;
		if (block >= MIB) {
			uint64_t t1 = now_ns();
			if (!first && s)
				samples_add(s, (double)(t1 - t0) * MIB / (double)block);
			first = false;
			block = 0;
			t0 = t1;
		}
	}
	alarm(0);
	return err;
}

/* MB/s (10^6 bytes) of a median time per MiB. */
static double mbps(double ns_per_mib)
{
	return ns_per_mib > 0 ? MIB / ns_per_mib * 1000.0 : 0;
}

int fig_vchan(void)
{
	struct link l;
	int pp[2], sv[2];
	if (link_init(&l) < 0 || pipe2(pp, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 1;
	int keep[2] = { pp[1], sv[1] };
	pid_t b = fork_domain(1, opt.cpu_b, &l, keep, 2);
	if (b == 0)
		sender(&l, pp[1], sv[1]);
	close(pp[1]);
	close(sv[1]);
	set_domid(2);
	xenstore_env();
	struct bench_op vc = { .name = "vchan" }, pipe_op = { .name = "pipe" },
			sock_op = { .name = "socket" };
	struct receiver r = { .l = &l, .pipe_rd = pp[0], .sock = sv[0], .buf = malloc(CHUNK) };
	uint64_t v;
	if (b < 0 || link_recv(&l, &v) < 0 || (int64_t)v < 0) {
		vc.err = b < 0 ? -errno : (int)(int64_t)v;
		result_note("6", "domain 1 could not serve a vchan: %s", strerror(-vc.err));
	} else if (!(r.vc = libxenvchan_client_init(NULL, 1, XS_PATH))) {
		vc.err = -(errno ? errno : EIO);
		result_note("6", "domain 2 could not connect: %s", strerror(-vc.err));
	} else {
		r.vc->blocking = -1;
	}
	if (!r.buf)
		return 1;

	/* Rounds of one block of each, in a different order each round. */
	uint64_t per = (uint64_t)scaled(32, 8) * MIB;
	unsigned rounds = scaled(8, 2);
	struct bench_op *ops[] = { &vc, &pipe_op, &sock_op };
	enum mode modes[] = { M_VCHAN, M_PIPE, M_SOCKET };
	for (unsigned k = 0; k < 3 && !ops[k]->err; k++) /* warm-up */
		ops[k]->err = receive(&r, modes[k], 4 * MIB, NULL);
	for (unsigned round = 0; round < rounds; round++) {
		for (unsigned j = 0; j < 3; j++) {
			unsigned k = (round + j) % 3;
			if (ops[k]->err)
				continue;
			ops[k]->err = receive(&r, modes[k], per, &ops[k]->s);
			if (ops[k]->err)
				goto out; /* B is out of step now */
		}
	}
out:
	link_send(&l, M_STOP);
	char name[72];
	snprintf(name, sizeof(name), "vchan stream, %u KiB ring, per MiB",
		 r.vc ? (1u << r.vc->ring->right_order) / 1024 : RING / 1024);
	struct result_line *row = result_row("6", name, &vc);
	result_prim(row, "pipe (64 KiB buffer), per MiB", &pipe_op);
	result_prim(row, "unix stream socket, per MiB", &sock_op);
	double mv = median_of(&vc), mp = median_of(&pipe_op), ms = median_of(&sock_op);
	if (mv > 0 && mp > 0 && ms > 0)
		result_note(
			"6",
			"throughput, domain 1 -> 2 (medians, MB/s = 10^6 B/s): vchan %.0f, pipe "
			"%.0f, unix socket %.0f; vchan/pipe %.2fx, vchan/socket %.2fx",
			mbps(mv), mbps(mp), mbps(ms), mp / mv, ms / mv);
	result_note("6",
		    "%u rounds of %u MiB each, 64 KiB reads and writes; libxenvchan "
		    "blocking on both ends; no data check in the timed loop",
		    rounds, (unsigned)(per / MIB));
	int bad = vc.err || pipe_op.err || sock_op.err;
	if (bad)
		kill_wait(b);
	else
		bad = wait_ok(b) < 0;
	if (r.vc)
		libxenvchan_close(r.vc);
	free(r.buf);
	close(pp[0]);
	close(sv[0]);
	link_close(&l);
	samples_free(&vc.s);
	samples_free(&pipe_op.s);
	samples_free(&sock_op.s);
	return bad ? 1 : 0;
}

#endif
