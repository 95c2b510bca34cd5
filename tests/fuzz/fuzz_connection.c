/*
 * Fuzz target: whole conversations. The input is cut into a sequence of
 * messages and actions for up to three connections (each of its own kind
 * and domain) to one in-process broker, dispatched one by one, so that
 * HELLO, ALLOC, MMAP, MAP and MAP_REFS chunks, UNMAP, event channel binds,
 * COPY_REFS, SYNC_FILE, ATTACH and hang-ups interleave. Fds the broker
 * sends (mapping tokens, memory, doorbells) are held, and dropped or passed
 * back when the input says.
 *
 * Input: byte 0 the limit variant (fz_broker_new); bytes 1..6 kind (% 7,
 * 0: no HELLO) and domain (& 3) of connections 0, 1, 2; then records, each
 * starting with a control byte `ctl`:
 *
 *   ctl & 3 == 0..2: a message on that connection (opened again, with its
 *     HELLO, if the broker closed it). Bit 2: raw, the payload is the whole
 *     message; else a header is made: op from a byte (an index into ops[]),
 *     size and a fresh seq filled in. Bits 3..4: fds to pass, one kind byte
 *     each (fd_for). Bit 5: GR_HDR_NOREPLY. Bit 6: a 2-byte length, else
 *     1 byte. Bit 7: raw, fix the header's size and result; made, do not
 *     dispatch yet (the next message goes in the same batch). Then the
 *     length, the op byte (made), the fd kind bytes, the payload.
 *   ctl & 3 == 3: an action, (ctl >> 2) & 7 (see act()).
 *
 * Checked after each dispatch: every reply is well framed, every request
 * answered or its connection closed (but for those silent by design); at
 * the end, with every client gone, the broker holds nothing, and after
 * broker_destroy this process has exactly the fds it had before.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "fuzz.h"
#include "protocol.h"
#include "wire.h"

#define NCONN 3

static const uint16_t ops[] = FZ_OPS_INIT;
#define NOPS (sizeof(ops) / sizeof(ops[0]))

struct fconn {
	int sock; /* our end; -1 until (re)opened */
	uint16_t kind;
	uint16_t domid;
	uint32_t seq;
	uint64_t file_id;
};

struct state {
	struct broker *b;
	struct fconn c[NCONN];
	struct fz_pool pool;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void conn_open(struct state *s, unsigned k)
{
	struct fconn *c = &s->c[k];
	c->sock = fz_connect(s->b);
	c->seq = 1; /* fz_hello's */
	c->file_id = 0;
	if (c->kind)
		FZ_CHECK_EQ(fz_hello(s->b, c->sock, c->kind, c->domid, &c->file_id), 0);
}

static void conn_close(struct state *s, unsigned k)
{
	if (s->c[k].sock >= 0)
		close(s->c[k].sock);
	s->c[k].sock = -1;
}

/*
 * Pumps the broker and reads every connection until all is quiet. If
 * `k` < NCONN, connection k's request `seq` must have been answered or
 * the connection closed.
 */
static void settle(struct state *s, unsigned k, uint32_t seq, const char *what)
{
	int socks[NCONN];
	uint32_t seqs[NCONN] = { 0 };
	struct fz_seen seen[NCONN] = { 0 };
	for (unsigned i = 0; i < NCONN; i++)
		socks[i] = s->c[i].sock;
	if (k < NCONN)
		seqs[k] = seq;
	fz_settle(s->b, socks, seqs, seen, NCONN, &s->pool);
	if (fz_trace() && k < NCONN)
		fprintf(stderr, "connection %u: %s seq %u -> %s %d%s\n", k, what, seq,
			seen[k].answered ? "result" : "no answer", seen[k].result,
			seen[k].closed ? ", closed" : "");
	if (k < NCONN && socks[k] >= 0 && !seen[k].answered && !seen[k].closed)
		fz_fail(__FILE__, __LINE__, "%s on connection %u: neither answered nor closed",
			what, k);
	for (unsigned i = 0; i < NCONN; i++)
		if (seen[i].closed)
			conn_close(s, i);
}

/* An fd to pass: a generic kind, a connection's client end, or a copy of
 * an fd the broker gave us. */
static int fd_for(struct state *s, uint8_t sel, int own)
{
	unsigned kind = sel % (FZ_FD_KINDS + NCONN + 1);
	int fd;
	if (kind < FZ_FD_KINDS)
		fd = fz_make_fd(kind, own);
	else if (kind < FZ_FD_KINDS + NCONN && s->c[kind - FZ_FD_KINDS].sock >= 0)
		fd = fcntl(s->c[kind - FZ_FD_KINDS].sock, F_DUPFD_CLOEXEC, 0);
	else if (kind == FZ_FD_KINDS + NCONN && s->pool.n > 0)
		fd = fcntl(s->pool.fds[(sel >> 4) % s->pool.n], F_DUPFD_CLOEXEC, 0);
	else
		fd = fz_make_fd(FZ_FD_DEVNULL, own);
	FZ_CHECK(fd >= 0);
	return fd;
}

static void message(struct state *s, unsigned k, uint8_t ctl, struct fz_in *in)
{
	static char buf[GR_MSG_MAX + 4096];
	struct fconn *c = &s->c[k];
	bool raw = ctl & 4, noreply = ctl & 0x20, bit7 = ctl & 0x80;
	unsigned nfds = (ctl >> 3) & 3;
	if (c->sock < 0)
		conn_open(s, k);
	size_t want = (ctl & 0x40) ? fz_u16(in) : fz_u8(in);
	uint16_t op = raw ? 0 : ops[fz_u8(in) % NOPS];
	int fds[3];
	for (unsigned i = 0; i < nfds; i++)
		fds[i] = fd_for(s, fz_u8(in), c->sock);
	const uint8_t *body;
	size_t len = fz_bytes(in, raw ? sizeof(buf) < want ? sizeof(buf) : want : want, &body);
	struct gr_hdr h = { 0 };
	int r;
	if (raw) {
		memcpy(buf, body, len);
		if (len >= sizeof(h)) {
			memcpy(&h, buf, sizeof(h));
			if (bit7) {
				h.size = (uint32_t)len;
				h.result = 0;
				h.flags &= GR_HDR_NOREPLY;
				memcpy(buf, &h, sizeof(h));
			}
		}
		r = gr_send(c->sock, buf, len, fds, nfds);
	} else {
		h = (struct gr_hdr){ .op = op,
				     .flags = noreply ? GR_HDR_NOREPLY : 0,
				     .size = (uint32_t)(sizeof(h) + len),
				     .seq = ++c->seq };
		r = fz_send(c->sock, h.op, h.flags, h.seq, body, len, fds, nfds);
	}
	gr_close_fds(fds, nfds);
	/* Full (batched messages the broker has not read yet) or gone. */
	FZ_CHECK(r == 0 || r == -EAGAIN || r == -EPIPE || r == -ECONNRESET || r == -EMSGSIZE);
	if (!raw && bit7)
		return;
	/* Silent by design: no reply asked for; a MAP whose refs are still
	 * to come (MAP_REFS until the last is answered under the MAP's seq). */
	bool may_be_silent =
		r != 0 || (h.flags & GR_HDR_NOREPLY) || h.op == GR_OP_MAP || h.op == GR_OP_MAP_REFS;
	if (fz_trace())
		fprintf(stderr, "connection %u: op %u seq %u, %zu bytes, %u fds sent (%d)\n", k,
			h.op, h.seq, len, nfds, r);
	settle(s, may_be_silent ? NCONN : k, h.seq, "a message");
}

static void act(struct state *s, uint8_t ctl, struct fz_in *in)
{
	switch ((ctl >> 2) & 7) {
	case 0: /* drop every fd the broker gave us: munmap of everything */
		fz_pool_clear(&s->pool);
		break;
	case 1: /* drop one */
		if (s->pool.n)
			fz_pool_close(&s->pool, fz_u8(in) % s->pool.n);
		break;
	case 2: /* hang up a connection */
		conn_close(s, fz_u8(in) % NCONN);
		break;
	case 3: { /* write into an fd we hold: a doorbell, a token, memory */
		if (!s->pool.n)
			break;
		int fd = s->pool.fds[fz_u8(in) % s->pool.n];
		uint64_t one = 1;
		int fl = fcntl(fd, F_GETFL);
		if (fl >= 0 && !(fl & O_NONBLOCK))
			fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		if (write(fd, &one, sizeof(one)) < 0)
			break;
		break;
	}
	case 4: { /* connection k becomes an ATTACH with connection j's socket */
		unsigned k = fz_u8(in) % NCONN, j = fz_u8(in) % NCONN;
		int dev = s->c[j].sock >= 0 ? fcntl(s->c[j].sock, F_DUPFD_CLOEXEC, 0)
					    : fz_make_fd(FZ_FD_SOCKET, -1);
		FZ_CHECK(dev >= 0);
		conn_close(s, k);
		s->c[k].sock = fz_connect(s->b);
		struct gr_attach at = { .version = GR_PROTO_VERSION };
		uint32_t seq = ++s->c[k].seq;
		FZ_CHECK_EQ(fz_send(s->c[k].sock, GR_OP_ATTACH, 0, seq, &at, sizeof(at), &dev, 1),
			    0);
		close(dev);
		settle(s, k, seq, "an ATTACH");
		break;
	}
	case 5: { /* what close() does: SYNC_FILE from a control connection */
		uint8_t sel = fz_u8(in);
		uint64_t id = sel < 0xF0 ? s->c[sel % NCONN].file_id : sel - 0xF0u;
		int ctl_sock = fz_connect(s->b);
		FZ_CHECK_EQ(fz_hello(s->b, ctl_sock, GR_KIND_CONTROL, 0, NULL), 0);
		struct gr_sync_file req = { .file_id = id };
		const uint32_t seq = 2;
		FZ_CHECK_EQ(fz_send(ctl_sock, GR_OP_SYNC_FILE, 0, seq, &req, sizeof(req), NULL, 0),
			    0);
		struct fz_seen seen = { 0 };
		fz_settle(s->b, &ctl_sock, &seq, &seen, 1, NULL);
		FZ_CHECK(seen.answered && seen.result == 0);
		close(ctl_sock);
		settle(s, NCONN, 0, NULL);
		break;
	}
	case 6: /* dispatch what batched messages are waiting */
		settle(s, NCONN, 0, NULL);
		break;
	case 7: { /* keep only a copy of a connection's socket, as a fork would */
		unsigned k = fz_u8(in) % NCONN;
		if (s->c[k].sock >= 0) {
			int fd = fcntl(s->c[k].sock, F_DUPFD_CLOEXEC, 0);
			FZ_CHECK(fd >= 0);
			fz_pool_add(&s->pool, fd);
			conn_close(s, k);
		}
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	int fds_before = fz_count_fds();
	struct state s = { .b = fz_broker_new(fz_u8(&in)) };
	for (unsigned k = 0; k < NCONN; k++) {
		s.c[k].kind = fz_u8(&in) % 7;
		s.c[k].domid = fz_u8(&in) & 3;
		conn_open(&s, k);
	}
	while (in.n > 0) {
		uint8_t ctl = fz_u8(&in);
		if ((ctl & 3) == 3)
			act(&s, ctl, &in);
		else
			message(&s, ctl & 3, ctl, &in);
	}
	fz_pool_clear(&s.pool);
	for (unsigned k = 0; k < NCONN; k++)
		conn_close(&s, k);
	fz_pump(s.b);
	fz_check_idle(s.b);
	broker_destroy(s.b);
	fz_check_fds(fds_before);
	return 0;
}
