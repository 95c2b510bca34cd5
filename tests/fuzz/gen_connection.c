/* Seeds of fuzz_connection: conversations (see fuzz_connection.c). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "gen_corpus.h"
#include "protocol.h"
#include "xen_abi.h"

static const uint16_t conn_ops[] = FZ_OPS_INIT;

static uint8_t op_index(uint16_t op)
{
	for (size_t i = 0; i < sizeof(conn_ops) / sizeof(conn_ops[0]); i++)
		if (conn_ops[i] == op)
			return (uint8_t)i;
	fprintf(stderr, "op %u not in FZ_OPS_INIT\n", op);
	exit(1);
}

/* Starts a conversation: limit variant, then (kind, domid) of the three
 * connections. */
static void conv(struct buf *b, unsigned variant, unsigned k0, unsigned d0, unsigned k1,
		 unsigned d1, unsigned k2, unsigned d2)
{
	b->n = 0;
	u8(b, (uint8_t)variant);
	u8(b, (uint8_t)k0);
	u8(b, (uint8_t)d0);
	u8(b, (uint8_t)k1);
	u8(b, (uint8_t)d1);
	u8(b, (uint8_t)k2);
	u8(b, (uint8_t)d2);
}

enum { NOREPLY = 0x20, BATCH = 0x80 };

/* A made message on connection k; `extra` is NOREPLY and/or BATCH. */
static void req(struct buf *b, unsigned k, unsigned extra, uint16_t op, const void *p, size_t len)
{
	u8(b, (uint8_t)(k | extra | (len > 255 ? 0x40 : 0)));
	if (len > 255)
		u16(b, (uint16_t)len);
	else
		u8(b, (uint8_t)len);
	u8(b, op_index(op));
	put(b, p, len);
}

/* The same with one fd of kind `fdk` (see fuzz_connection.c fd_for). */
static void req_fd(struct buf *b, unsigned k, uint16_t op, const void *p, size_t len, unsigned fdk)
{
	u8(b, (uint8_t)(k | 1 << 3));
	u8(b, (uint8_t)len);
	u8(b, op_index(op));
	u8(b, (uint8_t)fdk);
	put(b, p, len);
}

static void action(struct buf *b, unsigned what, int arg1, int arg2)
{
	u8(b, (uint8_t)(3 | what << 2));
	if (arg1 >= 0)
		u8(b, (uint8_t)arg1);
	if (arg2 >= 0)
		u8(b, (uint8_t)arg2);
}

enum { A_DROP_ALL, A_DROP_ONE, A_HANGUP, A_WRITE, A_ATTACH, A_SYNC, A_SETTLE, A_KEEP_COPY };
enum { K_NONE, K_ALLOC, K_DEV, K_EV, K_ADMIN, K_CLAIM, K_CONTROL };

static void alloc(struct buf *b, unsigned k, uint16_t grantee, uint32_t count, unsigned extra)
{
	struct gr_alloc a = { .grantee = grantee, .flags = 1, .count = count };
	req(b, k, extra, GR_OP_ALLOC, &a, sizeof(a));
}

/* MAP of refs [first, first + count) of domain `dom`, `n` of them now. */
static void map(struct buf *b, unsigned k, uint16_t dom, uint32_t first, uint32_t count, uint32_t n,
		uint32_t flags, uint64_t index, unsigned extra)
{
	struct buf p = { 0 };
	struct gr_map m = { .count = count, .n = n, .index = index, .flags = flags };
	put(&p, &m, sizeof(m));
	for (uint32_t i = 0; i < n; i++) {
		struct gr_grant_ref r = { dom, first + i };
		put(&p, &r, sizeof(r));
	}
	req(b, k, extra, GR_OP_MAP, p.d, p.n);
}

static void map_refs(struct buf *b, unsigned k, uint16_t dom, uint32_t first, uint32_t n)
{
	struct buf p = { 0 };
	struct gr_map_refs m = { .n = n };
	put(&p, &m, sizeof(m));
	for (uint32_t i = 0; i < n; i++) {
		struct gr_grant_ref r = { dom, first + i };
		put(&p, &r, sizeof(r));
	}
	req(b, k, 0, GR_OP_MAP_REFS, p.d, p.n);
}

static void mmap_req(struct buf *b, unsigned k, uint64_t offset, uint64_t pages, uint32_t prot)
{
	struct gr_mmap m = {
		.offset = offset, .len = pages * 4096, .prot = prot, .flags = GR_MMAP_SHARED
	};
	req(b, k, 0, GR_OP_MMAP, &m, sizeof(m));
}

static void range(struct buf *b, unsigned k, uint16_t op, uint64_t index, uint32_t count)
{
	struct gr_range r = { .index = index, .count = count };
	req(b, k, 0, op, &r, sizeof(r));
}

static void notify(struct buf *b, unsigned k, uint16_t op, uint64_t index, uint32_t action_,
		   uint32_t port)
{
	struct gr_notify n = { .index = index, .action = action_, .port = port };
	req(b, k, 0, op, &n, sizeof(n));
}

static void ev(struct buf *b, unsigned k, uint16_t op, uint32_t a, uint32_t p2)
{
	if (op == GR_OP_EV_UNBIND || op == GR_OP_EV_PORT_INFO) {
		struct gr_ev_port_req r = { .port = a };
		req(b, k, 0, op, &r, sizeof(r));
	} else {
		struct gr_ev_bind r = { .remote_domain = a, .remote_port = p2 };
		req(b, k, 0, op, &r, sizeof(r));
	}
}

void gen_connection(void)
{
	struct buf b;

	/* gntalloc grants, gntdev maps them, mmaps, unmaps, the granter
	 * deallocates while mapped, the mapping goes. */
	conv(&b, 0, K_ALLOC, 1, K_DEV, 2, K_ADMIN, 0);
	alloc(&b, 0, 2, 2, 0);
	map(&b, 1, 1, 8, 2, 2, 0, 0, 0);
	mmap_req(&b, 1, 0, 2, 3);
	req(&b, 2, 0, GR_OP_LIST_MAPPINGS, NULL, 0);
	range(&b, 0, GR_OP_DEALLOC, 0, 2);
	req(&b, 2, 0, GR_OP_LIST_GRANTS, NULL, 0);
	range(&b, 1, GR_OP_UNMAP, 0, 2);
	action(&b, A_DROP_ALL, -1, -1);
	req(&b, 2, 0, GR_OP_LIST_DOMAINS, NULL, 0);
	save("connection", "alloc-map-mmap-dealloc", &b);

	/* MAP in chunks, both notifications, hang-ups in between. */
	conv(&b, 0, K_DEV, 2, K_ALLOC, 1, K_EV, 2);
	alloc(&b, 1, 2, 4, 0);
	map(&b, 0, 1, 8, 4, 1, 0, 0, 0);
	map_refs(&b, 0, 1, 9, 2);
	map_refs(&b, 0, 1, 11, 1);
	ev(&b, 2, GR_OP_EV_BIND_UNBOUND, 1, 0);
	notify(&b, 0, GR_OP_DEV_NOTIFY, 4096 + 3, 3, 1);
	mmap_req(&b, 0, 0, 4, 3);
	action(&b, A_HANGUP, 1, -1);
	action(&b, A_DROP_ONE, 0, -1);
	action(&b, A_HANGUP, 0, -1);
	action(&b, A_DROP_ALL, -1, -1);
	save("connection", "map-chunks-notify", &b);

	/* Event channels across two domains, a notification on a port. */
	conv(&b, 0, K_EV, 1, K_EV, 2, K_ALLOC, 1);
	ev(&b, 0, GR_OP_EV_BIND_UNBOUND, 2, 0);
	ev(&b, 1, GR_OP_EV_BIND_INTERDOMAIN, 1, 1);
	ev(&b, 1, GR_OP_EV_PORT_INFO, 1, 0);
	ev(&b, 0, GR_OP_EV_PORT_INFO, 1, 0);
	action(&b, A_WRITE, 0, -1);
	alloc(&b, 2, 2, 1, 0);
	notify(&b, 2, GR_OP_ALLOC_NOTIFY, 0, 3, 1);
	range(&b, 2, GR_OP_DEALLOC, 0, 1);
	ev(&b, 1, GR_OP_EV_UNBIND, 1, 0);
	ev(&b, 0, GR_OP_EV_RESTRICT, 2, 0);
	ev(&b, 0, GR_OP_EV_BIND_UNBOUND, 2, 0);
	ev(&b, 0, GR_OP_EV_BIND_INTERDOMAIN, 2, 1);
	save("connection", "evtchn-interdomain", &b);

	/* A virq on domain 0, rung when a claimed domain dies. */
	conv(&b, 0, K_EV, 0, K_CLAIM, 3, K_ADMIN, 0);
	ev(&b, 0, GR_OP_EV_BIND_VIRQ, VIRQ_DOM_EXC, 0);
	ev(&b, 0, GR_OP_EV_BIND_VIRQ, VIRQ_DOM_EXC, 0);
	ev(&b, 0, GR_OP_EV_BIND_VIRQ, VIRQ_TIMER, 0);
	action(&b, A_HANGUP, 1, -1);
	req(&b, 2, 0, GR_OP_LIST_PORTS, NULL, 0);
	req(&b, 2, 0, GR_OP_LIST_DOMAINS, NULL, 0);
	save("connection", "virq-claim", &b);

	/* GRANT_COPY's lookups: granted, self, missing, out of range. */
	conv(&b, 0, K_ALLOC, 1, K_DEV, 2, K_ALLOC, 2);
	alloc(&b, 0, 2, 2, 0);
	alloc(&b, 2, 2, 1, 0);
	{
		struct {
			struct gr_copy_refs c;
			struct gr_copy_ref r[5];
		} c = { { .n = 5 },
			{ { 8, 1, 0 },
			  { 9, 1, 0 },
			  { 8, 0x7FF0, 0 },
			  { 10, 1, 0 },
			  { 1u << 30, 1, 0 } } };
		req(&b, 1, 0, GR_OP_COPY_REFS, &c, sizeof(c));
	}
	range(&b, 0, GR_OP_DEALLOC, 0, 1);
	{
		struct {
			struct gr_copy_refs c;
			struct gr_copy_ref r[1];
		} c = { { .n = 1 }, { { 8, 1, 0 } } };
		req(&b, 1, 0, GR_OP_COPY_REFS, &c, sizeof(c));
	}
	save("connection", "copy-refs", &b);

	/* ATTACH with a file's socket, requests through it, SYNC_FILE, the
	 * file released under the attached connection. */
	conv(&b, 0, K_ALLOC, 1, K_DEV, 2, K_NONE, 0);
	alloc(&b, 0, 2, 1, 0);
	action(&b, A_ATTACH, 2, 0);
	alloc(&b, 2, 2, 2, 0);
	mmap_req(&b, 2, 4096, 2, 3);
	action(&b, A_SYNC, 0, -1);
	action(&b, A_KEEP_COPY, 0, -1);
	action(&b, A_SYNC, 0, -1);
	alloc(&b, 2, 2, 1, 0);
	action(&b, A_DROP_ALL, -1, -1);
	action(&b, A_SYNC, 0, -1);
	alloc(&b, 2, 2, 1, 0);
	save("connection", "attach-sync", &b);

	/* Predicted MAPs without replies, then mmap of each. */
	conv(&b, 0, K_DEV, 2, K_ALLOC, 1, K_NONE, 0);
	alloc(&b, 1, 2, 3, 0);
	map(&b, 0, 1, 8, 1, 1, GR_MAP_PREDICTED, 0, NOREPLY);
	map(&b, 0, 1, 9, 2, 2, GR_MAP_PREDICTED, 4096, NOREPLY);
	mmap_req(&b, 0, 4096, 2, 1);
	mmap_req(&b, 0, 0, 1, 3);
	range(&b, 0, GR_OP_UNMAP, 0, 0);
	map(&b, 0, 1, 8, 1, 1, GR_MAP_PREDICTED, 8192, NOREPLY);
	save("connection", "predicted-maps", &b);

	/* A batch read in one wake-up, some without replies. */
	conv(&b, 0, K_ALLOC, 1, K_ALLOC, 2, K_NONE, 0);
	for (int i = 0; i < 6; i++)
		alloc(&b, (unsigned)i & 1, (uint16_t)(2 - (i & 1)), 1,
		      BATCH | (i & 2 ? NOREPLY : 0));
	action(&b, A_SETTLE, -1, -1);
	range(&b, 0, GR_OP_DEALLOC, 4096, 1);
	save("connection", "batch", &b);

	/* mmap, write into the memory fd and the token, MUNMAP. */
	conv(&b, 0, K_ALLOC, 1, K_NONE, 0, K_NONE, 0);
	alloc(&b, 0, 2, 2, 0);
	mmap_req(&b, 0, 0, 2, 3);
	action(&b, A_WRITE, 0, -1);
	action(&b, A_WRITE, 1, -1);
	action(&b, A_DROP_ALL, -1, -1);
	{
		struct gr_munmap m = { .mapping_id = 1 };
		req(&b, 0, 0, GR_OP_MUNMAP, &m, sizeof(m));
	}
	range(&b, 0, GR_OP_DEALLOC, 0, 2);
	save("connection", "mmap-munmap", &b);

	/* HELLO and ATTACH made by the input, with the fds they need. */
	conv(&b, 0, K_NONE, 0, K_NONE, 0, K_DEV, 3);
	{
		struct gr_hello h = { .version = GR_PROTO_VERSION,
				      .kind = GR_KIND_GNTALLOC,
				      .domid = 3 };
		req_fd(&b, 0, GR_OP_HELLO, &h, sizeof(h), FZ_FD_OWN_SOCKET);
		struct gr_attach at = { .version = GR_PROTO_VERSION };
		req_fd(&b, 1, GR_OP_ATTACH, &at, sizeof(at), FZ_FD_KINDS + 0);
		alloc(&b, 1, 3, 1, 0);
		map(&b, 2, 3, 8, 1, 1, 0, 0, 0);
		mmap_req(&b, 2, 0, 1, 3);
		req_fd(&b, 1, GR_OP_ATTACH, &at, sizeof(at), FZ_FD_KINDS + 3);
	}
	save("connection", "made-hello-attach", &b);

	/* Small limits: table, pages, ports, refs per map, maptrack. */
	conv(&b, 31, K_ALLOC, 1, K_DEV, 2, K_EV, 1);
	alloc(&b, 0, 2, 9, 0);
	alloc(&b, 0, 2, 8, 0);
	alloc(&b, 0, 2, 1, 0);
	map(&b, 1, 1, 8, 17, 0, 0, 0, 0);
	map(&b, 1, 1, 8, 8, 8, 0, 0, 0);
	mmap_req(&b, 1, 0, 8, 1);
	for (int i = 0; i < 6; i++)
		ev(&b, 2, GR_OP_EV_BIND_UNBOUND, 2, 0);
	save("connection", "limits", &b);

	/* Found by this target: see message/bug-empty-message-fds-leak. */
	conv(&b, 0, K_ALLOC, 1, K_DEV, 2, K_NONE, 0);
	alloc(&b, 0, 2, 1, 0);
	u8(&b, 0 | 4 | 1 << 3); /* raw, one fd, length 0 */
	u8(&b, 0);
	u8(&b, FZ_FD_EVENTFD);
	alloc(&b, 1, 1, 1, 0);
	save("connection", "bug-empty-message-fds-leak", &b);
}
