/*
 * Fuzz target: one message, any bytes, with or without fds, sent to an
 * in-process broker on a fresh connection after a valid HELLO.
 *
 * Input:
 *   byte 0   kind % 7: 0 no HELLO, else the gr_kind of the HELLO;
 *            bits 3..7: the broker's limit variant (fz_broker_new)
 *   byte 1   the HELLO's domain: bits 0..1
 *   byte 2   bits 0..2: how many fds go with the message;
 *            bit 3: set the header's size to the message's length and clear
 *            its result and reply flags (so that mutations reach handlers)
 *   then     one byte per fd: its kind (FZ_FD_*)
 *   rest     the message, header included
 *
 * Checked: the broker survives; the message is answered or the connection
 * closed (but for the requests that are legitimately silent); the broker
 * still takes new clients; once every client is gone it holds nothing; and
 * after broker_destroy this process has exactly the fds it had before.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "fuzz.h"
#include "protocol.h"
#include "wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char msg[GR_MSG_MAX + 4096];
	struct fz_in in = { data, size };
	int fds_before = fz_count_fds();

	uint8_t sel = fz_u8(&in);
	uint16_t kind = sel % 7;
	uint16_t domid = fz_u8(&in) & 3;
	uint8_t fdsel = fz_u8(&in);
	unsigned nfds = fdsel & 7;
	bool fix = fdsel & 8;
	struct broker *b = fz_broker_new(sel >> 3);
	int sock = fz_connect(b);
	if (kind)
		FZ_CHECK_EQ(fz_hello(b, sock, kind, domid, NULL), 0);

	int fds[8];
	for (unsigned i = 0; i < nfds; i++) {
		fds[i] = fz_make_fd(fz_u8(&in) % FZ_FD_KINDS, sock);
		FZ_CHECK(fds[i] >= 0);
	}
	const uint8_t *body;
	size_t len = fz_bytes(&in, sizeof(msg), &body);
	memcpy(msg, body, len);
	struct gr_hdr h = { 0 };
	if (len >= sizeof(h)) {
		memcpy(&h, msg, sizeof(h));
		if (fix) {
			h.size = (uint32_t)len;
			h.result = 0;
			h.flags &= GR_HDR_NOREPLY;
			memcpy(msg, &h, sizeof(h));
		}
	}
	/* Too big for the socket is the one thing that cannot be sent. */
	int r = gr_send(sock, msg, len, fds, nfds);
	FZ_CHECK(r == 0 || r == -EMSGSIZE);
	gr_close_fds(fds, nfds);

	uint32_t seq = h.seq;
	struct fz_seen seen = { 0 };
	fz_settle(b, &sock, &seq, &seen, 1, NULL);
	/* Silent by design: a request that asked for no reply, and a MAP
	 * whose refs are still to come. */
	bool may_be_silent = r != 0 || (h.flags & GR_HDR_NOREPLY) || h.op == GR_OP_MAP;
	if (!seen.answered && !seen.closed && !may_be_silent)
		fz_fail(__FILE__, __LINE__, "op %u (%zu bytes, %u fds) neither answered nor closed",
			h.op, len, nfds);
	if (!seen.closed) {
		/* Whatever state the message left, the next request is
		 * answered or the connection closed. */
		const uint32_t barrier_seq = 0x7fffffff;
		struct fz_seen after = { 0 };
		FZ_CHECK_EQ(fz_send(sock, GR_OP_BARRIER, 0, barrier_seq, NULL, 0, NULL, 0), 0);
		fz_settle(b, &sock, &barrier_seq, &after, 1, NULL);
		FZ_CHECK(after.answered || after.closed);
	}

	/* The broker still serves others. */
	int other = fz_connect(b);
	FZ_CHECK_EQ(fz_hello(b, other, GR_KIND_CONTROL, 0, NULL), 0);
	close(other);
	close(sock);
	fz_pump(b);
	fz_check_idle(b);
	broker_destroy(b);
	fz_check_fds(fds_before);
	return 0;
}
