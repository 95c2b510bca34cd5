/*
 * Writes the seed corpora of the fuzz targets: valid conversations with
 * each device, and a few malformed ones, in each target's input format
 * (see the comment at the top of each target).
 *
 *   build/tests/fuzz/fuzz-gen-corpus tests/fuzz/corpus
 *
 * Files it does not write (inputs a fuzzer found) are left alone. This file
 * has the helpers and fuzz_message's seeds; gen_connection.c and
 * gen_ioctl.c the others'.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "gen_corpus.h"
#include "protocol.h"
#include "xen_abi.h"

static const char *out_dir;

void put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > sizeof(b->d)) {
		fprintf(stderr, "seed too large\n");
		exit(1);
	}
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

void u8(struct buf *b, uint8_t v)
{
	put(b, &v, 1);
}

void u16(struct buf *b, uint16_t v)
{
	put(b, &v, 2); /* little-endian, as the targets read */
}

void u32(struct buf *b, uint32_t v)
{
	put(b, &v, 4);
}

void u64(struct buf *b, uint64_t v)
{
	put(b, &v, 8);
}

void save(const char *target, const char *name, const struct buf *b)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	if (mkdir(path, 0777) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b->d, 1, b->n, f) != b->n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* ---- fuzz_message ------------------------------------------------------- */

static void hdr(struct buf *b, uint16_t op, uint16_t flags, uint32_t seq, size_t len)
{
	struct gr_hdr h = {
		.op = op, .flags = flags, .size = (uint32_t)(sizeof(h) + len), .seq = seq
	};
	put(b, &h, sizeof(h));
}

/* kind, domid, the fds' kinds (up to 7, terminated by -1), the message. */
static void message(const char *name, unsigned kind, unsigned domid, const int *fdk, uint16_t op,
		    uint16_t flags, const void *p, size_t len)
{
	struct buf b = { 0 };
	unsigned nfds = 0;
	while (fdk && fdk[nfds] >= 0)
		nfds++;
	u8(&b, (uint8_t)kind);
	u8(&b, (uint8_t)domid);
	u8(&b, (uint8_t)nfds);
	for (unsigned i = 0; i < nfds; i++)
		u8(&b, (uint8_t)fdk[i]);
	hdr(&b, op, flags, 7, len);
	put(&b, p, len);
	save("message", name, &b);
}

void gen_message(void)
{
	static const int own[] = { FZ_FD_OWN_SOCKET, -1 };
	static const int two[] = { FZ_FD_EVENTFD, FZ_FD_MEMFD, -1 };
	struct gr_hello hello = { .version = GR_PROTO_VERSION,
				  .kind = GR_KIND_GNTALLOC,
				  .domid = 1 };
	message("hello-gntalloc", 0, 0, own, GR_OP_HELLO, 0, &hello, sizeof(hello));
	hello.kind = GR_KIND_EVTCHN;
	message("hello-evtchn", 0, 0, own, GR_OP_HELLO, 0, &hello, sizeof(hello));
	hello.kind = GR_KIND_ADMIN;
	message("hello-admin", 0, 0, NULL, GR_OP_HELLO, 0, &hello, sizeof(hello));
	hello.kind = GR_KIND_GNTDEV;
	hello.domid = 0x7FF0;
	message("hello-reserved", 0, 0, own, GR_OP_HELLO, 0, &hello, sizeof(hello));
	hello.version = 99;
	message("hello-version", 0, 0, own, GR_OP_HELLO, 0, &hello, sizeof(hello));
	struct gr_attach at = { .version = GR_PROTO_VERSION };
	message("attach-not-a-device", 0, 0, own, GR_OP_ATTACH, 0, &at, sizeof(at));

	struct gr_alloc al = { .grantee = 2, .flags = 1, .count = 3 };
	message("gntalloc-alloc", 1, 1, NULL, GR_OP_ALLOC, 0, &al, sizeof(al));
	message("gntalloc-alloc-noreply", 1, 1, NULL, GR_OP_ALLOC, GR_HDR_NOREPLY, &al, sizeof(al));
	message("gntalloc-alloc-fds", 1, 1, two, GR_OP_ALLOC, 0, &al, sizeof(al));
	al.count = 0;
	message("gntalloc-alloc-0", 1, 1, NULL, GR_OP_ALLOC, 0, &al, sizeof(al));
	al.count = 2000;
	message("gntalloc-alloc-limit", 1 | 2 << 3, 1, NULL, GR_OP_ALLOC, 0, &al, sizeof(al));
	struct gr_range rg = { .index = 0, .count = 1 };
	message("gntalloc-dealloc", 1, 1, NULL, GR_OP_DEALLOC, 0, &rg, sizeof(rg));
	struct gr_notify nt = { .index = 5, .action = 3, .port = 1 };
	message("gntalloc-notify", 1, 1, NULL, GR_OP_ALLOC_NOTIFY, 0, &nt, sizeof(nt));
	struct gr_mmap mm = { .offset = 0, .len = 4096, .prot = 3, .flags = GR_MMAP_SHARED };
	message("gntalloc-mmap", 1, 1, NULL, GR_OP_MMAP, 0, &mm, sizeof(mm));
	struct gr_munmap mu = { .mapping_id = 1 };
	message("gntalloc-munmap", 1, 1, NULL, GR_OP_MUNMAP, 0, &mu, sizeof(mu));
	message("gntalloc-barrier", 1, 1, NULL, GR_OP_BARRIER, 0, NULL, 0);

	struct {
		struct gr_map m;
		struct gr_grant_ref refs[2];
	} map = { { .count = 2, .n = 2 }, { { 1, 8 }, { 1, 9 } } };
	message("gntdev-map", 2, 2, NULL, GR_OP_MAP, 0, &map, sizeof(map));
	map.m.count = 4;
	message("gntdev-map-partial", 2, 2, NULL, GR_OP_MAP, 0, &map, sizeof(map));
	map.m.count = 2;
	map.m.flags = GR_MAP_PREDICTED;
	map.m.index = 4096;
	message("gntdev-map-mispredicted", 2, 2, NULL, GR_OP_MAP, GR_HDR_NOREPLY, &map,
		sizeof(map));
	struct {
		struct gr_map_refs m;
		struct gr_grant_ref refs[1];
	} more = { { .n = 1 }, { { 1, 10 } } };
	message("gntdev-map-refs-alone", 2, 2, NULL, GR_OP_MAP_REFS, 0, &more, sizeof(more));
	message("gntdev-unmap", 2, 2, NULL, GR_OP_UNMAP, 0, &rg, sizeof(rg));
	nt = (struct gr_notify){ .index = 0, .action = 1 };
	message("gntdev-notify", 2, 2, NULL, GR_OP_DEV_NOTIFY, 0, &nt, sizeof(nt));
	struct {
		struct gr_copy_refs c;
		struct gr_copy_ref refs[3];
	} copy = { { .n = 3 }, { { 8, 1, 0 }, { 8, 0x7FF0, 0 }, { 100000, 2, 0 } } };
	message("gntdev-copy-refs", 2, 2, NULL, GR_OP_COPY_REFS, 0, &copy, sizeof(copy));
	mm.prot = 1;
	message("gntdev-mmap", 2, 2, NULL, GR_OP_MMAP, 0, &mm, sizeof(mm));

	struct gr_ev_bind eb = { .remote_domain = 2 };
	message("evtchn-bind-unbound", 3, 1, NULL, GR_OP_EV_BIND_UNBOUND, 0, &eb, sizeof(eb));
	eb = (struct gr_ev_bind){ .remote_domain = 0x7FF0, .remote_port = 1 };
	message("evtchn-bind-interdomain", 3, 1, NULL, GR_OP_EV_BIND_INTERDOMAIN, 0, &eb,
		sizeof(eb));
	eb = (struct gr_ev_bind){ .remote_domain = VIRQ_DOM_EXC };
	message("evtchn-bind-virq", 3, 0, NULL, GR_OP_EV_BIND_VIRQ, 0, &eb, sizeof(eb));
	eb = (struct gr_ev_bind){ .remote_domain = 2 };
	message("evtchn-restrict", 3, 1, NULL, GR_OP_EV_RESTRICT, 0, &eb, sizeof(eb));
	struct gr_ev_port_req pr = { .port = 1 };
	message("evtchn-unbind", 3, 1, NULL, GR_OP_EV_UNBIND, 0, &pr, sizeof(pr));
	message("evtchn-port-info", 3, 1, NULL, GR_OP_EV_PORT_INFO, 0, &pr, sizeof(pr));

	message("admin-domains", 4, 0, NULL, GR_OP_LIST_DOMAINS, 0, NULL, 0);
	message("admin-grants", 4, 0, NULL, GR_OP_LIST_GRANTS, 0, NULL, 0);
	message("admin-mappings", 4, 0, NULL, GR_OP_LIST_MAPPINGS, 0, NULL, 0);
	message("admin-ports", 4, 0, NULL, GR_OP_LIST_PORTS, 0, NULL, 0);
	message("claim-barrier", 5, 3, NULL, GR_OP_BARRIER, 0, NULL, 0);
	struct gr_sync_file sf = { .file_id = 1 };
	message("control-sync-file", 6, 0, NULL, GR_OP_SYNC_FILE, 0, &sf, sizeof(sf));

	/* Malformed framing. */
	struct buf b = { 0 };
	u8(&b, 1);
	u8(&b, 1);
	u8(&b, 0);
	u32(&b, 0x0010000a);
	u32(&b, 8);
	save("message", "short", &b);
	b.n = 0;
	u8(&b, 1);
	u8(&b, 1);
	u8(&b, 0);
	struct gr_hdr h = { .op = GR_OP_ALLOC, .size = 999, .seq = 1 };
	put(&b, &h, sizeof(h));
	put(&b, &al, sizeof(al));
	save("message", "bad-size", &b);
	b.d[2] = 8; /* the target fixes the size */
	save("message", "fixed-size", &b);

	/*
	 * Found by fuzz_connection: an empty message that carries fds. The
	 * broker reads it as end of stream (n == 0) and never closes the
	 * fds gr_recv received with it: a leak any client can repeat.
	 */
	b.n = 0;
	u8(&b, 1);
	u8(&b, 1);
	u8(&b, 2);
	u8(&b, FZ_FD_OWN_SOCKET);
	u8(&b, FZ_FD_EVENTFD);
	save("message", "bug-empty-message-fds-leak", &b);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	if (mkdir(out_dir, 0777) < 0 && errno != EEXIST) {
		perror(out_dir);
		return 1;
	}
	gen_message();
	gen_connection();
	gen_ioctl();
	return 0;
}
