/*
 * Unit tests of the broker: its tables and its validation of every message,
 * with the broker running in this process and clients on socketpairs
 * speaking the raw protocol.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "internal.h"
#include "log.h"
#include "protocol.h"
#include "tap.h"
#include "wire.h"
#include "xen_abi.h"

struct client {
	struct broker *b;
	int fd;
	uint32_t seq;
};

static struct broker *new_broker(const char *setting)
{
	struct broker_config cfg;
	broker_config_defaults(&cfg);
	cfg.log_level = LOG_CRIT;
	if (setting) {
		char key[64];
		const char *eq = strchr(setting, '=');
		snprintf(key, sizeof(key), "%.*s", (int)(eq - setting), setting);
		CHECK_EQ(broker_config_set(&cfg, key, eq + 1), 0);
	}
	struct broker *b;
	CHECK_EQ(broker_create(&cfg, -1, &b), 0);
	return b;
}

static void pump(struct broker *b)
{
	while (broker_dispatch(b, 0) > 0)
		;
}

static struct client connect_raw(struct broker *b)
{
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv));
	CHECK_EQ(broker_add_client(b, sv[1]), 0);
	return (struct client){ .b = b, .fd = sv[0] };
}

/* Sends op with payload; returns the reply's result (payload into out). */
static int call(struct client *c, uint16_t op, const void *p, size_t len, const int *fds,
		unsigned nfds, void *out, size_t outlen, int *rfds, unsigned *nrfds)
{
	char buf[GR_MSG_MAX];
	struct gr_hdr h = { .op = op, .size = (uint32_t)(sizeof(h) + len), .seq = ++c->seq };
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), p, len);
	CHECK_EQ(gr_send(c->fd, buf, sizeof(h) + len, fds, nfds), 0);
	pump(c->b);
	int tmp[GR_MSG_FDS_MAX];
	unsigned ntmp = 0;
	ssize_t n = gr_recv(c->fd, buf, sizeof(buf), rfds ? rfds : tmp, GR_MSG_FDS_MAX,
			    nrfds ? nrfds : &ntmp, MSG_DONTWAIT);
	if (!rfds)
		gr_close_fds(tmp, ntmp);
	if (n <= 0)
		return n == 0 ? -EPIPE : (int)n; /* the broker hung up */
	struct gr_hdr rh;
	memcpy(&rh, buf, sizeof(rh));
	CHECK_EQ(rh.seq, h.seq);
	if (out)
		memcpy(out, buf + sizeof(rh), outlen < n - sizeof(rh) ? outlen : n - sizeof(rh));
	return rh.result;
}

static struct client open_dev(struct broker *b, enum gr_kind kind, uint16_t domid)
{
	struct client c = connect_raw(b);
	struct gr_hello hello = { .version = GR_PROTO_VERSION, .kind = kind, .domid = domid };
	int r = call(&c, GR_OP_HELLO, &hello, sizeof(hello), &c.fd, 1, NULL, 0, NULL, NULL);
	CHECK_EQ(r, 0);
	return c;
}

/* Whether the broker has closed its end of c. */
static bool hung_up(struct client *c)
{
	pump(c->b);
	char buf[64];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	return n == 0;
}

static int alloc(struct client *c, uint16_t grantee, uint32_t count, uint32_t *refs)
{
	struct gr_alloc req = { .grantee = grantee, .flags = 1, .count = count };
	char out[sizeof(struct gr_alloc_reply) + 64 * 4];
	int r = call(c, GR_OP_ALLOC, &req, sizeof(req), NULL, 0, out, sizeof(out), NULL, NULL);
	for (uint32_t i = 0; r == 0 && refs && i < count && i < 64; i++)
		memcpy(&refs[i], out + sizeof(struct gr_alloc_reply) + 4 * i, 4);
	return r;
}

TEST(grant_refs_from_8_lifo_and_table_limit)
{
	struct broker *b = new_broker("max-grant-entries=16");
	struct client c = open_dev(b, GR_KIND_GNTALLOC, 1);
	uint32_t refs[8];
	CHECK_EQ(alloc(&c, 2, 3, refs), 0);
	CHECK_EQ(refs[0], 8);
	CHECK_EQ(refs[2], 10);
	struct gr_range d = { .index = XEN_PAGE_SIZE, .count = 1 };
	CHECK_EQ(call(&c, GR_OP_DEALLOC, &d, sizeof(d), NULL, 0, NULL, 0, NULL, NULL), 0);
	CHECK_EQ(alloc(&c, 2, 1, refs), 0);
	CHECK_EQ(refs[0], 9);
	/* 16 entries, 8 reserved: 5 left, and a 6th does not fit. The failed
	 * call gave back 11..15 in order, so 15 comes first (Linux's undo). */
	CHECK_EQ(alloc(&c, 2, 6, refs), -ENOSPC);
	CHECK_EQ(alloc(&c, 2, 5, refs), 0);
	CHECK_EQ(refs[0], 15);
	CHECK_EQ(refs[4], 11);
	CHECK_EQ(alloc(&c, 2, 1, refs), -ENOSPC);
	struct broker_stats st;
	broker_get_stats(b, &st);
	CHECK_EQ(st.grants, 8);
	close(c.fd);
	pump(b);
	broker_get_stats(b, &st);
	CHECK_EQ(st.grants, 0);
	CHECK_EQ(st.allocations, 0);
	CHECK_EQ(st.domains, 0);
	broker_destroy(b);
}

TEST(gntalloc_limit_per_domain)
{
	struct broker *b = new_broker("gntalloc-limit=10");
	struct client c1 = open_dev(b, GR_KIND_GNTALLOC, 1);
	struct client c2 = open_dev(b, GR_KIND_GNTALLOC, 1);
	struct client c3 = open_dev(b, GR_KIND_GNTALLOC, 2);
	CHECK_EQ(alloc(&c1, 2, 11, NULL), -ENOSPC);
	CHECK_EQ(alloc(&c1, 2, 6, NULL), 0);
	CHECK_EQ(alloc(&c2, 2, 5, NULL), -ENOSPC);
	CHECK_EQ(alloc(&c2, 2, 4, NULL), 0);
	CHECK_EQ(alloc(&c3, 2, 10, NULL), 0);
	close(c1.fd);
	pump(b);
	CHECK_EQ(alloc(&c2, 2, 6, NULL), 0);
	close(c2.fd);
	close(c3.fd);
	broker_destroy(b);
}

static int map(struct client *c, uint32_t count, uint64_t *index)
{
	char buf[sizeof(struct gr_map) + 16 * sizeof(struct gr_grant_ref)] = { 0 };
	struct gr_map m = { .count = count, .n = count };
	memcpy(buf, &m, sizeof(m));
	struct gr_map_reply rep = { 0 };
	int r = call(c, GR_OP_MAP, buf, sizeof(m) + count * sizeof(struct gr_grant_ref), NULL, 0,
		     &rep, sizeof(rep), NULL, NULL);
	*index = rep.index / XEN_PAGE_SIZE;
	return r;
}

static int unmap(struct client *c, uint64_t index, uint32_t count)
{
	struct gr_range u = { .index = index * XEN_PAGE_SIZE, .count = count };
	return call(c, GR_OP_UNMAP, &u, sizeof(u), NULL, 0, NULL, 0, NULL, NULL);
}

TEST(gntdev_index_placement)
{
	struct broker *b = new_broker(NULL);
	struct client c = open_dev(b, GR_KIND_GNTDEV, 2);
	uint64_t i[6];
	CHECK_EQ(map(&c, 2, &i[0]), 0); /* [0,2) */
	CHECK_EQ(map(&c, 1, &i[1]), 0); /* [2,3) */
	CHECK_EQ(map(&c, 3, &i[2]), 0); /* [3,6) */
	CHECK_EQ(i[0], 0);
	CHECK_EQ(i[1], 2);
	CHECK_EQ(i[2], 3);
	CHECK_EQ(unmap(&c, 0, 2), 0);
	CHECK_EQ(map(&c, 2, &i[3]), 0); /* hole of 2 is not enough for 2 */
	CHECK_EQ(i[3], 6);
	CHECK_EQ(map(&c, 1, &i[4]), 0); /* but is for 1 */
	CHECK_EQ(i[4], 0);
	CHECK_EQ(unmap(&c, 3, 0), 0);	/* count 0 matches any */
	CHECK_EQ(map(&c, 2, &i[5]), 0); /* [3,6) is free: 3 + 2 < 6 */
	CHECK_EQ(i[5], 3);
	CHECK_EQ(unmap(&c, 99, 1), -ENOENT);
	CHECK_EQ(map(&c, 0, &i[0]), -EINVAL);
	close(c.fd);
	broker_destroy(b);
}

TEST(map_refs_arrive_in_several_messages)
{
	struct broker *b = new_broker(NULL);
	struct client c = open_dev(b, GR_KIND_GNTDEV, 2);
	char buf[sizeof(struct gr_map) + 4 * sizeof(struct gr_grant_ref)] = { 0 };
	struct gr_map m = { .count = 10, .n = 4 };
	memcpy(buf, &m, sizeof(m));
	struct gr_hdr h = { .op = GR_OP_MAP, .size = sizeof(h) + sizeof(buf), .seq = 7 };
	char msg[256];
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), buf, sizeof(buf));
	CHECK_EQ(gr_send(c.fd, msg, h.size, NULL, 0), 0);
	struct gr_map_refs more = { .n = 6 };
	h = (struct gr_hdr){ .op = GR_OP_MAP_REFS,
			     .flags = GR_HDR_NOREPLY,
			     .size = sizeof(h) + sizeof(more) + 6 * 8,
			     .seq = 8 };
	memset(msg, 0, sizeof(msg));
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), &more, sizeof(more));
	CHECK_EQ(gr_send(c.fd, msg, h.size, NULL, 0), 0);
	pump(b);
	struct gr_hdr rh;
	struct gr_map_reply rep;
	char in[64];
	CHECK_EQ(recv(c.fd, in, sizeof(in), MSG_DONTWAIT), sizeof(rh) + sizeof(rep));
	memcpy(&rh, in, sizeof(rh));
	CHECK_EQ(rh.seq, 7); /* the reply belongs to the MAP */
	CHECK_EQ(rh.result, 0);
	close(c.fd);
	broker_destroy(b);
}

/* ---- validation: every malformed message ends that connection only ---- */

static void send_raw(struct client *c, const void *msg, size_t len, const int *fds, unsigned n)
{
	CHECK_EQ(gr_send(c->fd, msg, len, fds, n), 0);
}

TEST(malformed_messages_close_only_their_connection)
{
	struct broker *b = new_broker(NULL);
	struct client bystander = open_dev(b, GR_KIND_GNTALLOC, 5);
	CHECK_EQ(alloc(&bystander, 6, 1, NULL), 0);
	struct gr_hdr h = { .op = GR_OP_BARRIER, .size = sizeof(h), .seq = 1 };

	/* 1: shorter than a header */
	struct client c = open_dev(b, GR_KIND_GNTALLOC, 1);
	send_raw(&c, "abc", 3, NULL, 0);
	CHECK(hung_up(&c));
	close(c.fd);
	/* 2: size field disagrees with the datagram */
	c = open_dev(b, GR_KIND_GNTALLOC, 1);
	h.size = 100;
	send_raw(&c, &h, sizeof(h), NULL, 0);
	CHECK(hung_up(&c));
	close(c.fd);
	/* 3: unknown op */
	c = open_dev(b, GR_KIND_GNTALLOC, 1);
	h = (struct gr_hdr){ .op = 999, .size = sizeof(h), .seq = 1 };
	send_raw(&c, &h, sizeof(h), NULL, 0);
	CHECK(hung_up(&c));
	close(c.fd);
	/* 4: an op of the other device */
	c = open_dev(b, GR_KIND_GNTALLOC, 1);
	struct {
		struct gr_hdr h;
		struct gr_range r;
	} um = { { .op = GR_OP_UNMAP, .size = sizeof(um), .seq = 1 }, { 0 } };
	send_raw(&c, &um, sizeof(um), NULL, 0);
	CHECK(hung_up(&c));
	close(c.fd);
	/* 5: a payload of the wrong size */
	c = open_dev(b, GR_KIND_GNTALLOC, 1);
	char bad[sizeof(struct gr_hdr) + 7] = { 0 };
	h = (struct gr_hdr){ .op = GR_OP_ALLOC, .size = sizeof(bad), .seq = 1 };
	memcpy(bad, &h, sizeof(h));
	send_raw(&c, bad, sizeof(bad), NULL, 0);
	CHECK(hung_up(&c));
	close(c.fd);
	/* 6: an fd on a message that takes none; it is closed, not kept */
	c = open_dev(b, GR_KIND_GNTALLOC, 1);
	int p[2];
	CHECK_OK(pipe(p));
	h = (struct gr_hdr){ .op = GR_OP_BARRIER, .size = sizeof(h), .seq = 1 };
	send_raw(&c, &h, sizeof(h), &p[1], 1);
	close(p[1]);
	CHECK(hung_up(&c));
	char x;
	CHECK_EQ(read(p[0], &x, 1), 0); /* every copy of the write end is gone */
	close(p[0]);
	close(c.fd);
	/* 7: requests before the hello, a second hello */
	c = connect_raw(b);
	send_raw(&c, &h, sizeof(h), NULL, 0);
	CHECK(hung_up(&c));
	close(c.fd);
	c = open_dev(b, GR_KIND_GNTDEV, 1);
	struct {
		struct gr_hdr h;
		struct gr_hello hello;
	} hi = { { .op = GR_OP_HELLO, .size = sizeof(hi), .seq = 2 },
		 { .version = GR_PROTO_VERSION, .kind = GR_KIND_GNTDEV } };
	send_raw(&c, &hi, sizeof(hi), &c.fd, 1);
	CHECK(hung_up(&c));
	close(c.fd);
	/* 8: a hello of a reserved domain, an unknown kind, a wrong version */
	c = connect_raw(b);
	struct gr_hello hello = { .version = GR_PROTO_VERSION,
				  .kind = GR_KIND_GNTDEV,
				  .domid = 0x7FF0 };
	CHECK_EQ(call(&c, GR_OP_HELLO, &hello, sizeof(hello), &c.fd, 1, NULL, 0, NULL, NULL),
		 -EINVAL);
	CHECK(hung_up(&c));
	close(c.fd);
	c = connect_raw(b);
	hello = (struct gr_hello){ .version = GR_PROTO_VERSION, .kind = 77 };
	send_raw(&c, &(struct {
		struct gr_hdr h;
		struct gr_hello x;
	}){ { .op = GR_OP_HELLO, .size = sizeof(struct gr_hdr) + sizeof(hello), .seq = 1 }, hello },
		 sizeof(struct gr_hdr) + sizeof(hello), NULL, 0);
	CHECK(hung_up(&c));
	close(c.fd);
	c = connect_raw(b);
	hello = (struct gr_hello){ .version = 99, .kind = GR_KIND_GNTDEV };
	CHECK_EQ(call(&c, GR_OP_HELLO, &hello, sizeof(hello), &c.fd, 1, NULL, 0, NULL, NULL),
		 -EPIPE);
	close(c.fd);
	/* 9: an attach with something that is not a device socket */
	c = connect_raw(b);
	struct gr_attach at = { .version = GR_PROTO_VERSION };
	int null = open("/dev/null", O_RDONLY);
	CHECK_EQ(call(&c, GR_OP_ATTACH, &at, sizeof(at), &null, 1, NULL, 0, NULL, NULL), -ENODEV);
	close(null);
	close(c.fd);
	/* 10: a message with more fds than any message may carry */
	c = open_dev(b, GR_KIND_GNTALLOC, 1);
	int many[GR_MSG_FDS_MAX];
	for (unsigned i = 0; i < GR_MSG_FDS_MAX; i++)
		many[i] = c.fd;
	send_raw(&c, &h, sizeof(h), many, GR_MSG_FDS_MAX);
	CHECK(hung_up(&c));
	close(c.fd);
	/* 11: a reply flag on a request */
	c = open_dev(b, GR_KIND_GNTALLOC, 1);
	h = (struct gr_hdr){
		.op = GR_OP_BARRIER, .flags = GR_HDR_MORE, .size = sizeof(h), .seq = 1
	};
	send_raw(&c, &h, sizeof(h), NULL, 0);
	CHECK(hung_up(&c));
	close(c.fd);

	/* The bystander noticed nothing; nothing else is left. */
	CHECK_EQ(alloc(&bystander, 6, 1, NULL), 0);
	struct broker_stats st;
	broker_get_stats(b, &st);
	CHECK_EQ(st.connections, 1);
	CHECK_EQ(st.files, 1);
	close(bystander.fd);
	pump(b);
	broker_get_stats(b, &st);
	CHECK_EQ(st.connections, 0);
	CHECK_EQ(st.files, 0);
	CHECK_EQ(st.allocations, 0);
	broker_destroy(b);
}

TEST(mmap_reply_carries_the_memory_and_a_token)
{
	struct broker *b = new_broker(NULL);
	struct client c = open_dev(b, GR_KIND_GNTALLOC, 1);
	CHECK_EQ(alloc(&c, 2, 2, NULL), 0);
	struct gr_mmap m = { .offset = 0,
			     .len = 2 * XEN_PAGE_SIZE,
			     .prot = PROT_READ | PROT_WRITE,
			     .flags = GR_MMAP_SHARED };
	char out[sizeof(struct gr_mmap_reply) + sizeof(struct gr_run)];
	int fds[GR_MSG_FDS_MAX];
	unsigned nfds = 0;
	CHECK_EQ(call(&c, GR_OP_MMAP, &m, sizeof(m), NULL, 0, out, sizeof(out), fds, &nfds), 0);
	CHECK_EQ(nfds, 2); /* the token, the memfd */
	struct gr_mmap_reply rep;
	struct gr_run run;
	memcpy(&rep, out, sizeof(rep));
	memcpy(&run, out + sizeof(rep), sizeof(run));
	CHECK_EQ(rep.nruns, 1);
	CHECK_EQ(run.npages, 2);
	CHECK_EQ(run.fd_index, 1);
	struct stat st;
	CHECK_OK(fstat(fds[1], &st));
	CHECK_EQ(st.st_size, 2 * XEN_PAGE_SIZE);
	/* Sealed: nobody can shrink it under another mapping. */
	CHECK_ERR(ftruncate(fds[1], 0), EPERM);
	struct broker_stats bs;
	broker_get_stats(b, &bs);
	CHECK_EQ(bs.mappings, 1);
	close(fds[0]); /* the token: the last munmap */
	pump(b);
	broker_get_stats(b, &bs);
	CHECK_EQ(bs.mappings, 0);
	close(fds[1]);
	close(c.fd);
	broker_destroy(b);
}

TEST(config_file_and_settings)
{
	struct broker_config cfg;
	broker_config_defaults(&cfg);
	CHECK_EQ(cfg.max_grant_entries, 32768);
	CHECK_EQ(cfg.max_maptrack, 262144);
	CHECK_EQ(cfg.gntalloc_limit, 1024);
	CHECK_EQ(cfg.max_ports, 1023);
	char path[] = "/tmp/granted-conf-XXXXXX";
	int fd = mkstemp(path);
	const char text[] = "# a comment\n gntalloc-limit = 2048 \nmax-ports=100\n\n"
			    "declare-domain = 5\nlog-level=debug\n";
	CHECK_EQ(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	unsigned line;
	CHECK_EQ(broker_config_load(&cfg, path, &line), 0);
	CHECK_EQ(cfg.gntalloc_limit, 2048);
	CHECK_EQ(cfg.max_ports, 100);
	CHECK_EQ(cfg.ndeclared, 1);
	CHECK_EQ(cfg.declared[0], 5);
	fd = open(path, O_WRONLY | O_TRUNC);
	const char bad[] = "max-ports = 10\nmax-prots = 3\n";
	CHECK_EQ(write(fd, bad, sizeof(bad) - 1), (ssize_t)sizeof(bad) - 1);
	close(fd);
	CHECK_EQ(broker_config_load(&cfg, path, &line), -ENOENT);
	CHECK_EQ(line, 2);
	unlink(path);
	CHECK_EQ(broker_config_set(&cfg, "max-ports", "0"), -EINVAL);
	CHECK_EQ(broker_config_set(&cfg, "max-ports", "-1"), -EINVAL);
	CHECK_EQ(broker_config_set(&cfg, "max-ports", "12x"), -EINVAL);
	CHECK_EQ(broker_config_set(&cfg, "declare-domain", "32752"), -EINVAL);
	CHECK_EQ(broker_config_set(&cfg, "log-level", "loud"), -EINVAL);
}

TEST(declared_domain_exists_without_processes)
{
	struct broker *b = new_broker("declare-domain=9");
	struct broker_stats st;
	broker_get_stats(b, &st);
	CHECK_EQ(st.domains, 1);
	/* binding to it works although nothing of it runs */
	struct client e = open_dev(b, GR_KIND_EVTCHN, 1);
	struct gr_ev_bind bind = { .remote_domain = 9, .remote_port = 1 };
	CHECK_EQ(call(&e, GR_OP_EV_BIND_INTERDOMAIN, &bind, sizeof(bind), NULL, 0, NULL, 0, NULL,
		      NULL),
		 -EINVAL); /* exists (not ESRCH), has no such port */
	bind.remote_domain = 10;
	CHECK_EQ(call(&e, GR_OP_EV_BIND_INTERDOMAIN, &bind, sizeof(bind), NULL, 0, NULL, 0, NULL,
		      NULL),
		 -ESRCH);
	close(e.fd);
	broker_destroy(b);
}

/* Admin listings over every state a domain can be in. */
static int list(struct broker *b, uint16_t op, size_t row, uint32_t *rows)
{
	struct client a = connect_raw(b);
	struct gr_hello hello = { .version = GR_PROTO_VERSION, .kind = GR_KIND_ADMIN };
	CHECK_EQ(call(&a, GR_OP_HELLO, &hello, sizeof(hello), NULL, 0, NULL, 0, NULL, NULL), 0);
	struct gr_list_reply lr = { 0 };
	int r = call(&a, op, NULL, 0, NULL, 0, &lr, sizeof(lr), NULL, NULL);
	*rows = lr.n;
	(void)row;
	close(a.fd);
	pump(b);
	return r;
}

TEST(listings_cover_every_domain_state)
{
	struct broker *b = new_broker(NULL);
	/* a domain with grants, one with none, one with ports only, one
	 * with a mapping */
	struct client ga = open_dev(b, GR_KIND_GNTALLOC, 1);
	struct client gd = open_dev(b, GR_KIND_GNTDEV, 2);
	struct client ev = open_dev(b, GR_KIND_EVTCHN, 3);
	CHECK_EQ(alloc(&ga, 2, 2, NULL), 0);
	struct gr_ev_bind bind = { .remote_domain = 1 };
	CHECK(call(&ev, GR_OP_EV_BIND_UNBOUND, &bind, sizeof(bind), NULL, 0, NULL, 0, NULL, NULL) >
	      0);
	uint32_t n;
	CHECK_EQ(list(b, GR_OP_LIST_DOMAINS, sizeof(struct gr_domain_row), &n), 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(list(b, GR_OP_LIST_GRANTS, sizeof(struct gr_grant_row), &n), 0);
	CHECK_EQ(n, 2);
	CHECK_EQ(list(b, GR_OP_LIST_MAPPINGS, sizeof(struct gr_mapping_row), &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(list(b, GR_OP_LIST_PORTS, sizeof(struct gr_port_row), &n), 0);
	CHECK_EQ(n, 1);
	close(ga.fd);
	close(gd.fd);
	close(ev.fd);
	broker_destroy(b);
}

TEST(connections_per_user_are_limited)
{
	struct broker *b = new_broker("max-connections=3");
	struct client c[3];
	for (int i = 0; i < 3; i++)
		c[i] = open_dev(b, GR_KIND_GNTALLOC, 1);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv));
	CHECK_EQ(broker_add_client(b, sv[1]), -EMFILE);
	char x;
	CHECK_EQ(recv(sv[0], &x, 1, MSG_DONTWAIT), 0); /* refused: closed */
	close(sv[0]);
	close(c[0].fd);
	pump(b);
	struct client again = open_dev(b, GR_KIND_GNTALLOC, 1); /* room again */
	close(again.fd);
	close(c[1].fd);
	close(c[2].fd);
	broker_destroy(b);
}

static int mmap_req(struct client *c, uint64_t offset, uint64_t len)
{
	struct gr_mmap m = {
		.offset = offset, .len = len, .prot = PROT_READ, .flags = GR_MMAP_SHARED
	};
	int fds[GR_MSG_FDS_MAX];
	unsigned nfds = 0;
	int r = call(c, GR_OP_MMAP, &m, sizeof(m), NULL, 0, NULL, 0, fds, &nfds);
	gr_close_fds(fds, nfds); /* the token too: the mapping is gone at once */
	return r;
}

TEST(quota_mappings_per_domain)
{
	struct broker *b = new_broker("max-mappings=2");
	struct client c = open_dev(b, GR_KIND_GNTALLOC, 1);
	CHECK_EQ(alloc(&c, 2, 1, NULL), 0);
	struct gr_mmap m = {
		.offset = 0, .len = XEN_PAGE_SIZE, .prot = PROT_READ, .flags = GR_MMAP_SHARED
	};
	int fds[2][GR_MSG_FDS_MAX];
	unsigned n[2];
	for (int i = 0; i < 2; i++)
		CHECK_EQ(call(&c, GR_OP_MMAP, &m, sizeof(m), NULL, 0, NULL, 0, fds[i], &n[i]), 0);
	/* a third mmap by the same domain is refused; another domain is not */
	CHECK_EQ(mmap_req(&c, 0, XEN_PAGE_SIZE), -ENOMEM);
	struct client other = open_dev(b, GR_KIND_GNTALLOC, 2);
	CHECK_EQ(alloc(&other, 1, 1, NULL), 0);
	CHECK_EQ(mmap_req(&other, 0, XEN_PAGE_SIZE), 0);
	gr_close_fds(fds[0], n[0]);
	pump(b);
	CHECK_EQ(mmap_req(&c, 0, XEN_PAGE_SIZE), 0);
	gr_close_fds(fds[1], n[1]);
	close(c.fd);
	close(other.fd);
	broker_destroy(b);
}

TEST(quota_map_refs_per_domain)
{
	struct broker *b = new_broker("max-map-refs=5");
	struct client c = open_dev(b, GR_KIND_GNTDEV, 2);
	uint64_t i;
	CHECK_EQ(map(&c, 3, &i), 0);
	CHECK_EQ(map(&c, 3, &i), -ENOMEM);
	CHECK_EQ(map(&c, 2, &i), 0);
	/* A predicted MAP beyond the quota keeps its place; its mmap fails. */
	char buf[sizeof(struct gr_map) + 8] = { 0 };
	struct gr_map pm = {
		.count = 1, .n = 1, .index = 5 * XEN_PAGE_SIZE, .flags = GR_MAP_PREDICTED
	};
	memcpy(buf, &pm, sizeof(pm));
	struct gr_hdr h = {
		.op = GR_OP_MAP, .flags = GR_HDR_NOREPLY, .size = sizeof(h) + sizeof(buf), .seq = 99
	};
	char msg[64];
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), buf, sizeof(buf));
	CHECK_EQ(gr_send(c.fd, msg, h.size, NULL, 0), 0);
	pump(b);
	CHECK_EQ(mmap_req(&c, 5 * XEN_PAGE_SIZE, XEN_PAGE_SIZE), -ENOMEM);
	CHECK_EQ(unmap(&c, 5, 1), 0);
	CHECK_EQ(unmap(&c, 0, 3), 0);
	CHECK_EQ(map(&c, 3, &i), 0); /* room again */
	close(c.fd);
	broker_destroy(b);
}

TEST(quota_files_per_domain)
{
	struct broker *b = new_broker("max-files=2");
	struct client a = open_dev(b, GR_KIND_GNTDEV, 3);
	struct client e = open_dev(b, GR_KIND_EVTCHN, 3);
	struct client c = connect_raw(b);
	struct gr_hello hello = { .version = GR_PROTO_VERSION,
				  .kind = GR_KIND_GNTALLOC,
				  .domid = 3 };
	CHECK_EQ(call(&c, GR_OP_HELLO, &hello, sizeof(hello), &c.fd, 1, NULL, 0, NULL, NULL),
		 -EMFILE);
	close(c.fd);
	struct client d4 = open_dev(b, GR_KIND_GNTALLOC, 4); /* other domains: fine */
	close(d4.fd);
	close(a.fd);
	close(e.fd);
	broker_destroy(b);
}

TEST(policy_file_rules)
{
	char path[] = "/tmp/granted-policy-XXXXXX";
	int fd = mkstemp(path);
	const char text[] = "# rules\n"
			    "uid 1234 domains 1-3,7\n"
			    "gid 500 domains any\n"
			    "uid 1234 admin\n";
	CHECK_EQ(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	struct policy *pol;
	unsigned line;
	char err[128];
	CHECK_EQ(policy_load(path, &pol, &line, err, sizeof(err)), 0);
	struct broker_config cfg;
	broker_config_defaults(&cfg);
	cfg.log_level = LOG_CRIT;
	cfg.policy = pol;
	struct broker *b;
	CHECK_EQ(broker_create(&cfg, -1, &b), 0);
	gid_t groups[] = { 500 };
	struct conn_cred alice = { .cred = { .pid = 1, .uid = 1234, .gid = 1234 } };
	struct conn_cred bob = { .cred = { .pid = 2, .uid = 999, .gid = 999 } };
	struct conn_cred carol = { .cred = { .pid = 3, .uid = 998, .gid = 998 },
				   .groups = groups,
				   .ngroups = 1 };
	struct conn_cred me = { .cred = { .pid = 4, .uid = geteuid(), .gid = getegid() } };
	CHECK_EQ(policy_check_domain(b, &alice, 2), 0);
	CHECK_EQ(policy_check_domain(b, &alice, 7), 0);
	CHECK_EQ(policy_check_domain(b, &alice, 4), -EACCES);
	CHECK_EQ(policy_check_domain(b, &bob, 1), -EACCES);
	CHECK_EQ(policy_check_domain(b, &carol, 30000), 0); /* by a supplementary group */
	CHECK_EQ(policy_check_domain(b, &me, 12345), 0);    /* the broker's own user */
	CHECK_EQ(policy_check_domain(b, &me, 0x7FF0), -EINVAL);
	CHECK_EQ(policy_check_admin(b, &alice), 0);
	CHECK_EQ(policy_check_admin(b, &carol), -EACCES);
	CHECK_EQ(policy_check_admin(b, &me), 0);
	broker_destroy(b);
	policy_free(pol);

	/* Errors name the line. */
	static const struct {
		const char *text;
		unsigned line;
	} bad[] = {
		{ "uid 1 domains 1\nuser no-such-user-here domains 1\n", 2 },
		{ "uid 1 domains 5-2\n", 1 },
		{ "uid 1 domains 40000\n", 1 },
		{ "pid 1 domains 1\n", 1 },
		{ "uid 1 admin extra\n", 1 },
		{ "uid x domains 1\n", 1 },
		{ "\n\nuid 1 domains\n", 3 },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fd = open(path, O_WRONLY | O_TRUNC);
		CHECK_EQ(write(fd, bad[i].text, strlen(bad[i].text)), (ssize_t)strlen(bad[i].text));
		close(fd);
		CHECK(policy_load(path, &pol, &line, err, sizeof(err)) < 0);
		CHECK_EQ(line, bad[i].line);
		CHECK(err[0] != '\0');
	}
	unlink(path);
}

TEST(maptrack_limit_fails_the_mmap)
{
	/* Xen's maptrack: grant pages one domain may map (GNTST_no_space per
	 * op, EINVAL from gntdev's mmap). */
	struct broker *b = new_broker("max-maptrack=3");
	struct client ga = open_dev(b, GR_KIND_GNTALLOC, 1);
	uint32_t refs[4];
	CHECK_EQ(alloc(&ga, 2, 4, refs), 0);
	struct client gd = open_dev(b, GR_KIND_GNTDEV, 2);
	char buf[sizeof(struct gr_map) + 4 * sizeof(struct gr_grant_ref)] = { 0 };
	struct gr_map m = { .count = 4, .n = 4 };
	memcpy(buf, &m, sizeof(m));
	for (int i = 0; i < 4; i++) {
		struct gr_grant_ref r = { .domid = 1, .ref = refs[i] };
		memcpy(buf + sizeof(m) + i * sizeof(r), &r, sizeof(r));
	}
	struct gr_map_reply rep;
	CHECK_EQ(call(&gd, GR_OP_MAP, buf, sizeof(buf), NULL, 0, &rep, sizeof(rep), NULL, NULL), 0);
	CHECK_EQ(mmap_req(&gd, rep.index, 4 * XEN_PAGE_SIZE), -EINVAL);
	/* The three that did map are held until the map goes: they count
	 * against domain 2's maptrack, and when domain 1 deallocates all four
	 * only the unmapped one ends; the others' end waits for the map. */
	CHECK_EQ(b->domains[2]->maptrack, 3);
	struct gr_range d = { .index = 0, .count = 4 };
	CHECK_EQ(call(&ga, GR_OP_DEALLOC, &d, sizeof(d), NULL, 0, NULL, 0, NULL, NULL), 0);
	struct broker_stats st;
	broker_get_stats(b, &st);
	CHECK_EQ(st.grants, 3);
	CHECK_EQ(unmap(&gd, rep.index / XEN_PAGE_SIZE, 4), 0);
	CHECK_EQ(b->domains[2]->maptrack, 0);
	/* Unmapped now, they end after the grant-end delay; until then the
	 * entries are still in use. */
	broker_get_stats(b, &st);
	CHECK_EQ(st.grants, 3);
	close(gd.fd);
	close(ga.fd);
	broker_destroy(b);
}

TEST(a_client_that_never_reads_does_not_stall_the_broker)
{
	struct broker *b = new_broker(NULL);
	struct client lazy = open_dev(b, GR_KIND_GNTALLOC, 1);
	struct client other = open_dev(b, GR_KIND_GNTALLOC, 2);
	/* Requests whose replies lazy never reads: its socket buffer fills,
	 * the broker queues, then gives up on it; the other client is served
	 * all along. */
	struct gr_alloc req = { .grantee = 2, .count = 0 };
	char msg[sizeof(struct gr_hdr) + sizeof(req)];
	bool pushed_back = false;
	for (int i = 0; i < 200000 && !pushed_back; i++) {
		struct gr_hdr h = { .op = GR_OP_ALLOC,
				    .size = sizeof(msg),
				    .seq = (uint32_t)i + 1 };
		memcpy(msg, &h, sizeof(h));
		memcpy(msg + sizeof(h), &req, sizeof(req));
		/* Once the broker stops reading it, lazy's own sends block. */
		if (send(lazy.fd, msg, sizeof(msg), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			pushed_back = errno == EAGAIN;
		if (i % 64 == 0) {
			pump(b);
			CHECK_EQ(call(&other, GR_OP_BARRIER, NULL, 0, NULL, 0, NULL, 0, NULL, NULL),
				 0);
		}
	}
	CHECK(pushed_back);
	pump(b);
	CHECK_EQ(call(&other, GR_OP_BARRIER, NULL, 0, NULL, 0, NULL, 0, NULL, NULL), 0);
	/* Reading its replies again, lazy is served again. */
	char in[64];
	int got = 0;
	while (recv(lazy.fd, in, sizeof(in), MSG_DONTWAIT) > 0 || (pump(b), got++ < 2000))
		;
	struct broker_stats st;
	broker_get_stats(b, &st);
	CHECK_EQ(st.connections, 2);
	close(lazy.fd);
	close(other.fd);
	broker_destroy(b);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, 0);
}
