/*
 * Attacks on the broker's protocol (common/protocol.h) by a hostile process
 * that speaks it by hand: forged hellos and domain ids, another user, too
 * many fds, truncated, malformed and oversized messages. Each is refused
 * with the errno the kernel and Xen would give, or ends the connection (a
 * protocol error: no correct client sends it); the broker survives and
 * holds the same fds and memfds as before.
 *
 * Domain 1 grants through the devices (the shim); the attackers are forked
 * processes that never touch the shim's devices.
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef uint16_t domid_t;
typedef uint32_t grant_ref_t;
#include <xen/evtchn.h>

#include "raw.h"
#include "sec.h"

#define PAGE 4096u

#define DOMID_SELF	    0x7FF0u
#define DOMID_IO	    0x7FF1u
#define GNTST_okay	    0
#define GNTST_general_error (-1)
#define GNTST_bad_domain    (-2)
#define GNTST_bad_gntref    (-3)

static struct raw_reply rep;
static struct usage before;

static void begin(void)
{
	sec_usage_settled(0, &before);
}

static void end(void)
{
	sec_expect_back(&before, 3000);
}

/* ---- forged domains --------------------------------------------------- */

/* HELLO with fds of our choosing: the result (RAW_HUNG_UP if dropped). */
static int hello_with(uint16_t kind, uint32_t version, uint16_t domid, const int *fds,
		      unsigned nfds, int *sock)
{
	int s = raw_connect();
	struct gr_hello hello = { .version = version, .kind = kind, .domid = domid };
	int r = raw_call(s, GR_OP_HELLO, &hello, sizeof(hello),
			 nfds == 1 && fds[0] == -2 ? &s : fds, nfds, &rep);
	raw_close_fds(rep.fds, rep.nfds);
	if (sock)
		*sock = s;
	else
		close(s);
	return r;
}

/*
 * HELLOs that claim what they may not: reserved domain ids (EINVAL, then
 * the connection ends), a device connection without its socket, with a
 * pipe instead, with two fds, another version, an unknown kind (dropped).
 */
TEST(forged_hellos)
{
	begin();
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	int self = -2, s;
	const uint16_t reserved[] = { DOMID_SELF, DOMID_IO, 0x7FF2, 0x7FF4, 0xFFFF };
	for (unsigned i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		CHECK_EQ(hello_with(GR_KIND_GNTALLOC, GR_PROTO_VERSION, reserved[i], &self, 1, &s),
			 -EINVAL);
		CHECK(raw_closed(s, 1000));
		close(s);
		CHECK_EQ(hello_with(GR_KIND_CLAIM, GR_PROTO_VERSION, reserved[i], NULL, 0, NULL),
			 -EINVAL);
	}
	CHECK_EQ(hello_with(GR_KIND_GNTDEV, GR_PROTO_VERSION, 1, NULL, 0, NULL), RAW_HUNG_UP);
	CHECK_EQ(hello_with(GR_KIND_GNTDEV, GR_PROTO_VERSION, 1, p, 1, NULL), RAW_HUNG_UP);
	CHECK_EQ(hello_with(GR_KIND_GNTDEV, GR_PROTO_VERSION, 1, p, 2, NULL), RAW_HUNG_UP);
	CHECK_EQ(hello_with(GR_KIND_GNTDEV, GR_PROTO_VERSION + 1, 1, &self, 1, NULL), RAW_HUNG_UP);
	CHECK_EQ(hello_with(GR_KIND_GNTDEV, 0xFFFFFFFFu, 1, &self, 1, NULL), RAW_HUNG_UP);
	CHECK_EQ(hello_with(99, GR_PROTO_VERSION, 1, &self, 1, NULL), RAW_HUNG_UP);
	CHECK_EQ(hello_with(GR_KIND_ADMIN, GR_PROTO_VERSION, 0, p, 1, NULL), RAW_HUNG_UP);
	/* A second HELLO on a device connection. */
	CHECK_EQ(hello_with(GR_KIND_GNTALLOC, GR_PROTO_VERSION, 1, &self, 1, &s), 0);
	struct gr_hello again = { .version = GR_PROTO_VERSION,
				  .kind = GR_KIND_GNTALLOC,
				  .domid = 2 };
	CHECK_EQ(raw_call(s, GR_OP_HELLO, &again, sizeof(again), &s, 1, &rep), RAW_HUNG_UP);
	close(s);
	/* ATTACH must present a device's socket: a socket of ours, a pipe. */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv));
	struct gr_attach at = { .version = GR_PROTO_VERSION };
	s = raw_connect();
	CHECK_EQ(raw_call(s, GR_OP_ATTACH, &at, sizeof(at), sv, 1, &rep), -ENODEV);
	CHECK(raw_closed(s, 1000));
	close(s);
	s = raw_connect();
	CHECK_EQ(raw_call(s, GR_OP_ATTACH, &at, sizeof(at), p, 1, &rep), -ENODEV);
	close(s);
	s = raw_connect();
	CHECK_EQ(raw_call(s, GR_OP_ATTACH, &at, sizeof(at), sv, 2, &rep), RAW_HUNG_UP);
	close(s);
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
	end();
}

/*
 * Another user, speaking the protocol itself: every HELLO that would act
 * as a domain (device, claim) or read the tables (admin) is refused with
 * EACCES and the connection ends; the refusals are logged. (A broker of
 * our own, to read its log.)
 */
TEST(other_user_hellos_eacces)
{
	struct private_broker pb;
	sec_private_broker(&pb, true, 0);
	pid_t b = pb.pid;
	pid_t pid = tap_fork_domain(1, NULL);
	if (pid == 0) {
		CHECK_OK(setgid(65534));
		CHECK_OK(setuid(65534));
		const uint16_t kinds[] = { GR_KIND_GNTALLOC, GR_KIND_GNTDEV, GR_KIND_EVTCHN,
					   GR_KIND_CLAIM, GR_KIND_ADMIN };
		const uint16_t domids[] = { 0, 1, 7, 0x7FEF };
		for (unsigned k = 0; k < 5; k++) {
			for (unsigned d = 0; d < 4; d++) {
				int s;
				if (raw_hello(kinds[k], domids[d], &s) != -EACCES)
					tap_fail(__FILE__, __LINE__,
						 "kind %u domain %u: not EACCES", kinds[k],
						 domids[d]);
				CHECK_EQ(s, -1);
			}
		}
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_EQ(sec_grantctl_count("domains", "domid", 0, 0x7FEF), 0);
	CHECK_EQ(sec_stop_broker(b), 0);
	CHECK(sec_file_contains(pb.log, "(uid 65534) may not act as domain 32751"));
	CHECK(sec_file_contains(pb.log, "(uid 65534) may not use admin commands"));
	sec_rmdir(pb.dir);
}

struct copy_case {
	uint32_t ref;
	uint16_t domid;
	int16_t want, or_want;
};

/* COPY_REFS of these: each status as wanted, and no memory for any. */
static void copy_cases(int s, const struct copy_case *cs, unsigned n)
{
	struct {
		struct gr_copy_refs h;
		struct gr_copy_ref r[16];
	} req = { .h = { .n = n } };
	for (unsigned i = 0; i < n; i++)
		req.r[i] = (struct gr_copy_ref){ .ref = cs[i].ref, .domid = cs[i].domid };
	CHECK_EQ(raw_call(s, GR_OP_COPY_REFS, &req, sizeof(req.h) + n * sizeof(struct gr_copy_ref),
			  NULL, 0, &rep),
		 0);
	CHECK_EQ(rep.nmsgs, 1);
	CHECK_EQ(rep.len, sizeof(struct gr_copy_reply) + n * sizeof(struct gr_copy_row));
	for (unsigned i = 0; i < n; i++) {
		struct gr_copy_row row;
		memcpy(&row, rep.payload + sizeof(struct gr_copy_reply) + i * sizeof(row),
		       sizeof(row));
		if (row.status != cs[i].want && row.status != cs[i].or_want)
			tap_fail(__FILE__, __LINE__, "copy ref %u of domain %#x: status %d, not %d",
				 cs[i].ref, cs[i].domid, row.status, cs[i].want);
	}
	CHECK_EQ(rep.nfds, 0);
	raw_close_fds(rep.fds, rep.nfds);
}

/*
 * A connection HELLOs as one domain and names others in its requests:
 * MAP of grants made to another domain, by their domain id, with the u32
 * domain id's high bits set, and as DOMID_SELF (mmap EINVAL); grant copy
 * of them by every spelling of the granter (-1 general_error, -2
 * bad_domain, -3 bad_gntref, never memory); ports of other domains
 * (EINVAL, ENOTCONN, no doorbell); mappings of other files (nothing
 * happens). The legitimate grantee is unaffected.
 */
TEST(forged_domains_in_requests)
{
	begin();
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(3, &l);
	if (pid == 0) {
		uint32_t ref = (uint32_t)tap_recv(&l), port = (uint32_t)tap_recv(&l);
		int s, token, mem;
		uint64_t idx, off;
		bool w;
		/* Domain 3 maps domain 1's grant to domain 2. */
		CHECK_EQ(raw_hello(GR_KIND_GNTDEV, 3, &s), 0);
		const uint32_t domids[] = { 1, 0x10001, 0xFFFF0001, DOMID_SELF, 2, 3 };
		for (unsigned i = 0; i < sizeof(domids) / sizeof(domids[0]); i++) {
			CHECK_EQ(raw_map(s, domids[i], ref, &idx), 0);
			CHECK_EQ(raw_mmap(s, idx, PROT_READ, &token, &mem, &off, &w), -EINVAL);
		}
		const struct copy_case cs[] = {
			{ ref, 1, GNTST_general_error, GNTST_general_error },
			{ ref, DOMID_SELF, GNTST_bad_gntref, GNTST_general_error },
			{ ref, DOMID_IO, GNTST_bad_domain, GNTST_bad_domain },
			{ ref, 0x7FF2, GNTST_bad_domain, GNTST_bad_domain },
			{ ref, 0xFFFF, GNTST_bad_domain, GNTST_bad_domain },
			{ ref, 2, GNTST_bad_domain, GNTST_bad_gntref },
			{ ref, 9, GNTST_bad_domain, GNTST_bad_domain },
			{ 0xFFFFFFFFu, 1, GNTST_bad_gntref, GNTST_bad_gntref },
			{ ref + 1, 1, GNTST_general_error, GNTST_general_error },
		};
		copy_cases(s, cs, sizeof(cs) / sizeof(cs[0]));
		/* Mapping ids of other files mean nothing here. */
		for (uint64_t id = 0; id < 64; id++) {
			struct gr_munmap mu = { .mapping_id = id };
			CHECK_EQ(raw_call(s, GR_OP_MUNMAP, &mu, sizeof(mu), NULL, 0, &rep), 0);
		}
		struct gr_range un = { .index = 0, .count = 0 };
		for (int i = 0; i < 8; i++)
			raw_call(s, GR_OP_UNMAP, &un, sizeof(un), NULL, 0, &rep);
		close(s);

		/* Domain 3's event channel names domain 1's port offered to 2. */
		CHECK_EQ(raw_hello(GR_KIND_EVTCHN, 3, &s), 0);
		struct gr_ev_bind b = { .remote_domain = 1, .remote_port = port };
		CHECK_EQ(raw_call(s, GR_OP_EV_BIND_INTERDOMAIN, &b, sizeof(b), NULL, 0, &rep),
			 -EINVAL);
		CHECK_EQ(rep.nfds, 0);
		struct gr_ev_port_req pr = { .port = port };
		CHECK_EQ(raw_call(s, GR_OP_EV_UNBIND, &pr, sizeof(pr), NULL, 0, &rep), -ENOTCONN);
		raw_call(s, GR_OP_EV_PORT_INFO, &pr, sizeof(pr), NULL, 0, &rep);
		CHECK_EQ(rep.nfds, 0);
		close(s);
		tap_send(&l, 0);
		tap_child_exit();
	}
	struct grant g;
	grant_make(&g, 2, true, 's');
	int ev = open("/dev/xen/evtchn", O_RDWR | O_CLOEXEC);
	CHECK_OK(ev);
	/* Port 1 of domain 1, offered to domain 2. */
	struct ioctl_evtchn_bind_unbound_port ub = { .remote_domain = 2 };
	int port = ioctl(ev, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &ub);
	CHECK(port > 0);
	tap_send(&l, g.ref);
	tap_send(&l, (uint64_t)port);
	CHECK_EQ(tap_recv(&l), 0);
	tap_wait_ok(pid);

	/* Domain 1 itself, for its own grant to 2, by id and DOMID_SELF. */
	int s;
	CHECK_EQ(raw_hello(GR_KIND_GNTDEV, 1, &s), 0);
	const struct copy_case own[] = {
		{ g.ref, 1, GNTST_general_error, GNTST_general_error },
		{ g.ref, DOMID_SELF, GNTST_general_error, GNTST_general_error },
	};
	copy_cases(s, own, 2);
	close(s);
	/* Domain 2 with DOMID_SELF names its own table, not domain 1's. */
	CHECK_EQ(raw_hello(GR_KIND_GNTDEV, 2, &s), 0);
	const struct copy_case self[] = {
		{ g.ref, DOMID_SELF, GNTST_bad_gntref, GNTST_general_error },
	};
	copy_cases(s, self, 1);
	/* And the grant was good: its grantee gets it. */
	uint64_t idx, off;
	int token, mem;
	bool w;
	CHECK_EQ(raw_map(s, 1, g.ref, &idx), 0);
	CHECK_EQ(raw_mmap(s, idx, PROT_READ | PROT_WRITE, &token, &mem, &off, &w), 0);
	CHECK_EQ(w, 1);
	close(token);
	close(mem);
	close(s);
	/* The port is still offered to domain 2. */
	CHECK_EQ(raw_hello(GR_KIND_EVTCHN, 2, &s), 0);
	struct gr_ev_bind b = { .remote_domain = 1, .remote_port = (uint32_t)port };
	CHECK(raw_call(s, GR_OP_EV_BIND_INTERDOMAIN, &b, sizeof(b), NULL, 0, &rep) > 0);
	raw_close_fds(rep.fds, rep.nfds);
	close(s);
	close(ev);
	grant_intact(&g, 's');
	grant_free(&g);
	tap_link_close(&l);
	end();
}

/* ---- fds, truncation, sizes ------------------------------------------ */

/* Whether every copy of the pipe's write end is gone within ms. */
static bool pipe_eof(int rd, int ms)
{
	struct pollfd pfd = { .fd = rd, .events = POLLIN };
	char c;
	return poll(&pfd, 1, ms) == 1 && read(rd, &c, 1) == 0;
}

/*
 * Sends msg with `nfds` copies of a pipe's write end: the broker must drop
 * the connection and close every copy it received (the read end sees EOF).
 */
static void fds_closed_after(int s, const void *msg, size_t len, unsigned nfds)
{
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	int fds[RAW_FDS_MAX];
	for (unsigned i = 0; i < nfds; i++)
		fds[i] = p[1];
	CHECK_EQ(raw_send_bytes(s, msg, len, fds, nfds), 0);
	close(p[1]);
	CHECK(raw_closed(s, 2000));
	CHECK(pipe_eof(p[0], 2000));
	close(p[0]);
}

static size_t msg_of(char *buf, uint16_t op, uint32_t size, size_t len)
{
	struct gr_hdr h = { .op = op, .size = size, .seq = 1 };
	memset(buf, 0, len);
	memcpy(buf, &h, sizeof(h));
	return len;
}

/*
 * Too many fds: 253 (SCM_MAX_FD, the most the kernel passes), 33 (one
 * above GR_MSG_FDS_MAX), and one fd on messages that take none. The
 * connection is closed, every fd closed.
 */
TEST(too_many_fds_close_the_connection)
{
	begin();
	static char buf[GR_MSG_MAX + 16];
	struct gr_hello hello = { .version = GR_PROTO_VERSION,
				  .kind = GR_KIND_GNTALLOC,
				  .domid = 1 };
	msg_of(buf, GR_OP_HELLO, sizeof(struct gr_hdr) + sizeof(hello),
	       sizeof(struct gr_hdr) + sizeof(hello));
	memcpy(buf + sizeof(struct gr_hdr), &hello, sizeof(hello));
	const unsigned counts[] = { 253, 200, 33 };
	for (unsigned i = 0; i < 3; i++) {
		int s = raw_connect();
		fds_closed_after(s, buf, sizeof(struct gr_hdr) + sizeof(hello), counts[i]);
		close(s);
	}
	/* On a device connection, each kind. */
	const uint16_t kinds[] = { GR_KIND_GNTALLOC, GR_KIND_GNTDEV, GR_KIND_EVTCHN };
	for (unsigned i = 0; i < 3; i++) {
		int s;
		CHECK_EQ(raw_hello(kinds[i], 1, &s), 0);
		size_t n = msg_of(buf, GR_OP_BARRIER, sizeof(struct gr_hdr), sizeof(struct gr_hdr));
		fds_closed_after(s, buf, n, 1);
		close(s);
		CHECK_EQ(raw_hello(kinds[i], 1, &s), 0);
		fds_closed_after(s, buf, n, 253);
		close(s);
	}
	end();
}

/*
 * MSG_TRUNC: a message longer than GR_MSG_MAX, with fds. MSG_CTRUNC: fds
 * the kernel could not install because the broker is at its fd limit
 * (lowered for the test with prlimit). The connection is closed, every fd
 * closed, and the broker carries on.
 */
TEST(truncated_messages_close_the_connection)
{
	/* A broker of our own, to read in its log why it closed each one. */
	struct private_broker pb;
	sec_private_broker(&pb, true, 0);
	pid_t b = pb.pid;
	struct usage u0;
	sec_usage_settled(b, &u0);
	static char buf[4 * GR_MSG_MAX];
	const size_t sizes[] = { GR_MSG_MAX + 1, 2 * GR_MSG_MAX, 3 * GR_MSG_MAX };
	for (unsigned i = 0; i < 3; i++) {
		int s = raw_connect();
		size_t n = msg_of(buf, GR_OP_HELLO, (uint32_t)sizes[i], sizes[i]);
		fds_closed_after(s, buf, n, 8);
		close(s);
		CHECK_EQ(raw_hello(GR_KIND_GNTDEV, 1, &s), 0);
		fds_closed_after(s, buf, n, 1);
		close(s);
	}

	/* MSG_CTRUNC: the fds the kernel could not install because the
	 * broker is at its fd limit (lowered with prlimit): one fd with a
	 * SYNC_FILE, 40 with a BARRIER. */
	struct rlimit old;
	CHECK_OK(prlimit(b, RLIMIT_NOFILE, NULL, &old));
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)b);
	for (int round = 0; round < 2; round++) {
		/* A connection the broker has accepted (a HELLO answered)
		 * before its limit comes down. */
		int s;
		CHECK_EQ(raw_hello(round == 0 ? GR_KIND_CONTROL : GR_KIND_GNTALLOC, 1, &s), 0);
		/* Round 0: the lowest number it does not use, so its table is
		 * full; round 1: the highest it uses, and 3 more. */
		DIR *d = opendir(path);
		struct dirent *de;
		int top = 0, hole = 0;
		while (d && (de = readdir(d)))
			if (atoi(de->d_name) > top)
				top = atoi(de->d_name);
		closedir(d);
		for (;; hole++) {
			char p[96];
			snprintf(p, sizeof(p), "%s/%d", path, hole);
			if (access(p, F_OK) < 0)
				break;
		}
		struct rlimit low = { .rlim_cur = round == 0 ? (rlim_t)hole : (rlim_t)top + 4,
				      .rlim_max = old.rlim_max };
		CHECK_OK(prlimit(b, RLIMIT_NOFILE, &low, NULL));
		int p[2];
		CHECK_OK(pipe2(p, O_CLOEXEC));
		if (round == 0) {
			struct gr_sync_file sf = { .file_id = 1 };
			int fd = p[1];
			CHECK_EQ(raw_send(s, GR_OP_SYNC_FILE, 1, &sf, sizeof(sf), &fd, 1), 0);
		} else {
			int fds[40];
			for (int i = 0; i < 40; i++)
				fds[i] = p[1];
			size_t n = msg_of(buf, GR_OP_BARRIER, sizeof(struct gr_hdr),
					  sizeof(struct gr_hdr));
			CHECK_EQ(raw_send_bytes(s, buf, n, fds, 40), 0);
		}
		close(p[1]);
		bool closed = raw_closed(s, 2000);
		CHECK_OK(prlimit(b, RLIMIT_NOFILE, &old, NULL));
		CHECK(closed);
		CHECK(pipe_eof(p[0], 2000));
		close(p[0]);
		close(s);
	}
	/* Still serving. */
	int s;
	CHECK_EQ(raw_hello(GR_KIND_GNTALLOC, 1, &s), 0);
	close(s);
	struct usage u1;
	sec_usage_settled(b, &u1);
	CHECK_EQ(u1.fds, u0.fds);
	CHECK_EQ(sec_stop_broker(b), 0);
	unsigned oversized = 0;
	char line[512];
	FILE *fp = fopen(pb.log, "re");
	while (fp && fgets(line, sizeof(line), fp))
		oversized += strstr(line, "closed: oversized message") != NULL;
	if (fp)
		fclose(fp);
	tap_note("closed for an oversized message (MSG_TRUNC, MSG_CTRUNC): %u of 8", oversized);
	if (oversized != 8) {
		fp = fopen(pb.log, "re");
		while (fp && fgets(line, sizeof(line), fp))
			if (strstr(line, "closed"))
				tap_note("%s", line);
		if (fp)
			fclose(fp);
	}
	CHECK_EQ(oversized, 8);
	sec_rmdir(pb.dir);
}

struct bad_msg {
	const char *what;
	uint16_t kind; /* the connection's: 0 for a new one */
	uint16_t op;
	uint16_t flags;
	int32_t result;
	uint32_t size; /* 0: the real size */
	size_t len;    /* payload bytes */
	const void *payload;
	int want; /* the reply's result, or RAW_HUNG_UP */
};

static void send_bad(const struct bad_msg *m)
{
	static char buf[GR_MSG_MAX + 64];
	int s;
	if (m->kind)
		CHECK_EQ(raw_hello(m->kind, 1, &s), 0);
	else
		s = raw_connect();
	struct gr_hdr h = { .op = m->op,
			    .flags = m->flags,
			    .size = m->size ? m->size : (uint32_t)(sizeof(h) + m->len),
			    .seq = 7,
			    .result = m->result };
	memset(buf, 0, sizeof(buf));
	memcpy(buf, &h, sizeof(h));
	if (m->payload)
		memcpy(buf + sizeof(h), m->payload, m->len);
	CHECK_EQ(raw_send_bytes(s, buf, sizeof(h) + m->len, NULL, 0), 0);
	int got = RAW_HUNG_UP;
	for (;;) {
		int fds[RAW_FDS_MAX];
		unsigned nfds;
		long n = raw_recv(s, buf, sizeof(buf), fds, &nfds, NULL, 2000);
		raw_close_fds(fds, nfds);
		if (n == -ETIMEDOUT) {
			got = RAW_NO_REPLY;
			break;
		}
		if (n <= 0)
			break;
		struct gr_hdr rh;
		memcpy(&rh, buf, sizeof(rh));
		if (rh.seq == 7 && !(rh.flags & GR_HDR_MORE)) {
			got = rh.result;
			break;
		}
	}
	if (got != m->want)
		tap_fail(__FILE__, __LINE__, "%s: %d, expected %d", m->what, got, m->want);
	if (m->want == RAW_HUNG_UP || got < 0)
		CHECK(m->want != RAW_HUNG_UP || raw_closed(s, 1000));
	close(s);
}

/*
 * Size fields that lie or are huge, payloads of the wrong size, unknown
 * ops and flags: a protocol error ends the connection; a request a correct
 * client could send gets the driver's errno (MAP of 2^32-1 refs EINVAL,
 * ALLOC of 2^32-1 pages ENOSPC, mmap of 2^64-4096 bytes EINVAL, ...).
 */
TEST(huge_and_lying_size_fields)
{
	begin();
	struct gr_map map_huge = { .count = 0xFFFFFFFFu, .n = 0 };
	struct gr_map map_over = { .count = 65537, .n = 0 };
	struct gr_map map_lie = { .count = 1, .n = 0x20000000u };
	struct gr_map_refs refs_huge = { .n = 0xFFFFFFFFu };
	struct gr_copy_refs copy_huge = { .n = 0xFFFFFFFFu };
	struct gr_copy_refs copy_wrap = { .n = 0x20000001u }; /* n * 8 wraps to 8 in 32 bits */
	struct gr_copy_ref one_ref[2] = { { .ref = 8, .domid = 1 } };
	char copy_wrap_msg[sizeof(copy_wrap) + sizeof(one_ref[0])];
	memcpy(copy_wrap_msg, &copy_wrap, sizeof(copy_wrap));
	memcpy(copy_wrap_msg + sizeof(copy_wrap), one_ref, sizeof(one_ref[0]));
	struct gr_alloc alloc_huge = { .grantee = 2, .flags = 1, .count = 0xFFFFFFFFu };
	struct gr_alloc alloc_over = { .grantee = 2, .flags = 1, .count = 1025 };
	struct gr_alloc alloc_any = { .grantee = 0xFFFF, .flags = 0xFFFF, .count = 1 };
	struct gr_range range_huge = { .index = ~0ull, .count = 0xFFFFFFFFu };
	struct gr_notify notify_huge = { .index = ~0ull, .action = 0xFFFFFFFFu, .port = ~0u };
	struct gr_mmap mmap_huge = { .offset = 0, .len = ~0ull & ~0xFFFull, .prot = 3, .flags = 1 };
	struct gr_mmap mmap_pages = {
		.offset = 0, .len = 0xFFFFFFFFull * PAGE, .prot = 1, .flags = 1
	};
	struct gr_mmap mmap_2_32 = {
		.offset = 0, .len = 0x100000000ull * PAGE, .prot = 1, .flags = 1
	};
	struct gr_mmap mmap_off = {
		.offset = ~0ull & ~0xFFFull, .len = PAGE, .prot = 1, .flags = 1
	};
	struct gr_ev_bind ev_huge = { .remote_domain = 0xFFFFFFFFu, .remote_port = 0xFFFFFFFFu };
	struct gr_ev_port_req port_huge = { .port = 0xFFFFFFFFu };
	struct gr_sync_file sync_any = { .file_id = ~0ull };
	struct gr_attach attach_bad = { .version = 0xFFFFFFFFu };
	const struct bad_msg msgs[] = {
		{ "size 2^32-1", GR_KIND_GNTALLOC, GR_OP_BARRIER, 0, 0, 0xFFFFFFFFu, 0, NULL,
		  RAW_HUNG_UP },
		{ "size 2^32-2^16", GR_KIND_GNTALLOC, GR_OP_BARRIER, 0, 0, 0xFFFF0000u, 0, NULL,
		  RAW_HUNG_UP },
		{ "size 8", GR_KIND_GNTALLOC, GR_OP_BARRIER, 0, 0, 8, 0, NULL, RAW_HUNG_UP },
		{ "size one short", GR_KIND_GNTDEV, GR_OP_UNMAP, 0, 0, 16 + 15, 16, &range_huge,
		  RAW_HUNG_UP },
		{ "result set", GR_KIND_GNTALLOC, GR_OP_BARRIER, 0, -1, 0, 0, NULL, RAW_HUNG_UP },
		{ "unknown flag", GR_KIND_GNTALLOC, GR_OP_BARRIER, 0x8000, 0, 0, 0, NULL,
		  RAW_HUNG_UP },
		{ "MORE flag", GR_KIND_GNTALLOC, GR_OP_BARRIER, GR_HDR_MORE, 0, 0, 0, NULL,
		  RAW_HUNG_UP },
		{ "unknown op", GR_KIND_GNTDEV, 0xFFFF, 0, 0, 0, 0, NULL, RAW_HUNG_UP },
		{ "admin op on a device", GR_KIND_GNTDEV, GR_OP_LIST_GRANTS, 0, 0, 0, 0, NULL,
		  RAW_HUNG_UP },
		{ "MAP 2^32-1 refs", GR_KIND_GNTDEV, GR_OP_MAP, 0, 0, 0, sizeof(map_huge),
		  &map_huge, -EINVAL },
		{ "MAP 65537 refs", GR_KIND_GNTDEV, GR_OP_MAP, 0, 0, 0, sizeof(map_over), &map_over,
		  -EINVAL },
		{ "MAP n beyond the body", GR_KIND_GNTDEV, GR_OP_MAP, 0, 0, 0, sizeof(map_lie),
		  &map_lie, RAW_HUNG_UP },
		{ "MAP_REFS without MAP", GR_KIND_GNTDEV, GR_OP_MAP_REFS, 0, 0, 0,
		  sizeof(refs_huge), &refs_huge, RAW_HUNG_UP },
		{ "COPY_REFS 2^32-1", GR_KIND_GNTDEV, GR_OP_COPY_REFS, 0, 0, 0, sizeof(copy_huge),
		  &copy_huge, RAW_HUNG_UP },
		{ "COPY_REFS n*8 wraps", GR_KIND_GNTDEV, GR_OP_COPY_REFS, 0, 0, 0,
		  sizeof(copy_wrap_msg), copy_wrap_msg, RAW_HUNG_UP },
		{ "ALLOC 2^32-1 pages", GR_KIND_GNTALLOC, GR_OP_ALLOC, 0, 0, 0, sizeof(alloc_huge),
		  &alloc_huge, -ENOSPC },
		{ "ALLOC 1025 pages", GR_KIND_GNTALLOC, GR_OP_ALLOC, 0, 0, 0, sizeof(alloc_over),
		  &alloc_over, -ENOSPC },
		{ "ALLOC to domain 0xFFFF, all flags", GR_KIND_GNTALLOC, GR_OP_ALLOC, 0, 0, 0,
		  sizeof(alloc_any), &alloc_any, 0 },
		{ "DEALLOC 2^32-1 at 2^64-1", GR_KIND_GNTALLOC, GR_OP_DEALLOC, 0, 0, 0,
		  sizeof(range_huge), &range_huge, -EINVAL },
		{ "UNMAP 2^32-1 at 2^64-1", GR_KIND_GNTDEV, GR_OP_UNMAP, 0, 0, 0,
		  sizeof(range_huge), &range_huge, -ENOENT },
		{ "gntalloc notify at 2^64-1", GR_KIND_GNTALLOC, GR_OP_ALLOC_NOTIFY, 0, 0, 0,
		  sizeof(notify_huge), &notify_huge, -ENOENT },
		{ "gntdev notify, every action bit", GR_KIND_GNTDEV, GR_OP_DEV_NOTIFY, 0, 0, 0,
		  sizeof(notify_huge), &notify_huge, -EINVAL },
		{ "gntalloc mmap 2^64-4096 bytes", GR_KIND_GNTALLOC, GR_OP_MMAP, 0, 0, 0,
		  sizeof(mmap_huge), &mmap_huge, -EINVAL },
		{ "gntdev mmap 2^64-4096 bytes", GR_KIND_GNTDEV, GR_OP_MMAP, 0, 0, 0,
		  sizeof(mmap_huge), &mmap_huge, -EINVAL },
		{ "gntalloc mmap 2^32-1 pages", GR_KIND_GNTALLOC, GR_OP_MMAP, 0, 0, 0,
		  sizeof(mmap_pages), &mmap_pages, -ENOENT },
		{ "gntdev mmap 2^32-1 pages", GR_KIND_GNTDEV, GR_OP_MMAP, 0, 0, 0,
		  sizeof(mmap_pages), &mmap_pages, -EINVAL },
		{ "gntdev mmap 2^32 pages", GR_KIND_GNTDEV, GR_OP_MMAP, 0, 0, 0, sizeof(mmap_2_32),
		  &mmap_2_32, -EINVAL },
		{ "gntalloc mmap at 2^64-4096", GR_KIND_GNTALLOC, GR_OP_MMAP, 0, 0, 0,
		  sizeof(mmap_off), &mmap_off, -ENOENT },
		{ "gntdev mmap at 2^64-4096", GR_KIND_GNTDEV, GR_OP_MMAP, 0, 0, 0, sizeof(mmap_off),
		  &mmap_off, -EINVAL },
		{ "evtchn bind to domain 2^32-1", GR_KIND_EVTCHN, GR_OP_EV_BIND_INTERDOMAIN, 0, 0,
		  0, sizeof(ev_huge), &ev_huge, -ESRCH },
		{ "evtchn virq 2^32-1", GR_KIND_EVTCHN, GR_OP_EV_BIND_VIRQ, 0, 0, 0,
		  sizeof(ev_huge), &ev_huge, -EINVAL },
		{ "evtchn restrict 2^32-1", GR_KIND_EVTCHN, GR_OP_EV_RESTRICT, 0, 0, 0,
		  sizeof(ev_huge), &ev_huge, -EINVAL },
		{ "evtchn unbind 2^32-1", GR_KIND_EVTCHN, GR_OP_EV_UNBIND, 0, 0, 0,
		  sizeof(port_huge), &port_huge, -EINVAL },
		{ "evtchn port info 2^32-1", GR_KIND_EVTCHN, GR_OP_EV_PORT_INFO, 0, 0, 0,
		  sizeof(port_huge), &port_huge, 0 },
		{ "SYNC_FILE of 2^64-1", GR_KIND_CONTROL, GR_OP_SYNC_FILE, 0, 0, 0,
		  sizeof(sync_any), &sync_any, 0 },
		{ "ATTACH version 2^32-1", 0, GR_OP_ATTACH, 0, 0, 0, sizeof(attach_bad),
		  &attach_bad, RAW_HUNG_UP },
	};
	for (unsigned i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
		send_bad(&msgs[i]);
	/* A MAP whose refs never all come: the connection ends with it. */
	int s;
	CHECK_EQ(raw_hello(GR_KIND_GNTDEV, 1, &s), 0);
	struct gr_map pending = { .count = 65536, .n = 0 };
	CHECK_EQ(raw_send(s, GR_OP_MAP, 1, &pending, sizeof(pending), NULL, 0), 0);
	struct gr_map_refs more = { .n = 2 };
	struct gr_grant_ref r2[3] = { { 1, 8 }, { 1, 9 }, { 1, 10 } };
	char body[sizeof(more) + sizeof(r2)];
	memcpy(body, &more, sizeof(more));
	memcpy(body + sizeof(more), r2, sizeof(r2));
	CHECK_EQ(raw_send(s, GR_OP_MAP_REFS, 2, body, sizeof(body), NULL, 0), 0);
	CHECK(raw_closed(s, 2000)); /* n says 2, the body holds 3 */
	close(s);
	CHECK_EQ(raw_hello(GR_KIND_GNTDEV, 1, &s), 0);
	CHECK_EQ(raw_send(s, GR_OP_MAP, 1, &pending, sizeof(pending), NULL, 0), 0);
	close(s);
	end();
}

/*
 * Payloads one byte too long or short for their op, and the largest
 * message there is (GR_MSG_MAX) where a small one is due: the connection
 * ends (a protocol error), nothing else happens.
 */
TEST(oversized_payloads)
{
	begin();
	static char big[GR_MSG_MAX];
	const struct {
		uint16_t kind, op;
		size_t right;
	} ops[] = {
		{ 0, GR_OP_HELLO, sizeof(struct gr_hello) },
		{ 0, GR_OP_ATTACH, sizeof(struct gr_attach) },
		{ GR_KIND_GNTALLOC, GR_OP_BARRIER, 0 },
		{ GR_KIND_GNTALLOC, GR_OP_ALLOC, sizeof(struct gr_alloc) },
		{ GR_KIND_GNTALLOC, GR_OP_DEALLOC, sizeof(struct gr_range) },
		{ GR_KIND_GNTALLOC, GR_OP_ALLOC_NOTIFY, sizeof(struct gr_notify) },
		{ GR_KIND_GNTALLOC, GR_OP_MMAP, sizeof(struct gr_mmap) },
		{ GR_KIND_GNTALLOC, GR_OP_MUNMAP, sizeof(struct gr_munmap) },
		{ GR_KIND_GNTDEV, GR_OP_MAP, sizeof(struct gr_map) },
		{ GR_KIND_GNTDEV, GR_OP_UNMAP, sizeof(struct gr_range) },
		{ GR_KIND_GNTDEV, GR_OP_DEV_NOTIFY, sizeof(struct gr_notify) },
		{ GR_KIND_GNTDEV, GR_OP_COPY_REFS, sizeof(struct gr_copy_refs) },
		{ GR_KIND_GNTDEV, GR_OP_MMAP, sizeof(struct gr_mmap) },
		{ GR_KIND_EVTCHN, GR_OP_EV_BIND_UNBOUND, sizeof(struct gr_ev_bind) },
		{ GR_KIND_EVTCHN, GR_OP_EV_BIND_INTERDOMAIN, sizeof(struct gr_ev_bind) },
		{ GR_KIND_EVTCHN, GR_OP_EV_BIND_VIRQ, sizeof(struct gr_ev_bind) },
		{ GR_KIND_EVTCHN, GR_OP_EV_UNBIND, sizeof(struct gr_ev_port_req) },
		{ GR_KIND_EVTCHN, GR_OP_EV_RESTRICT, sizeof(struct gr_ev_bind) },
		{ GR_KIND_EVTCHN, GR_OP_EV_PORT_INFO, sizeof(struct gr_ev_port_req) },
		{ GR_KIND_EVTCHN, GR_OP_BARRIER, 0 },
		{ GR_KIND_ADMIN, GR_OP_LIST_DOMAINS, 0 },
		{ GR_KIND_ADMIN, GR_OP_LIST_PORTS, 0 },
		{ GR_KIND_CONTROL, GR_OP_SYNC_FILE, sizeof(struct gr_sync_file) },
	};
	for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		const size_t lens[] = { ops[i].right + 1, ops[i].right ? ops[i].right - 1 : 3,
					GR_MSG_MAX - sizeof(struct gr_hdr) };
		for (unsigned k = 0; k < 3; k++) {
			/* MAP and COPY_REFS carry arrays; their lengths are
			 * checked against their counts (n = 0 here). */
			if ((ops[i].op == GR_OP_MAP || ops[i].op == GR_OP_COPY_REFS) && k == 0)
				continue;
			char what[64];
			snprintf(what, sizeof(what), "op %u with %zu bytes", ops[i].op, lens[k]);
			struct bad_msg m = { what, ops[i].kind, ops[i].op, 0,	       0,
					     0,	   lens[k],	big,	   RAW_HUNG_UP };
			send_bad(&m);
		}
	}
	/* A message of a bare header's size minus one, and an empty one. */
	int s = raw_connect();
	CHECK_EQ(raw_send_bytes(s, big, sizeof(struct gr_hdr) - 1, NULL, 0), 0);
	CHECK(raw_closed(s, 1000));
	close(s);
	s = raw_connect();
	CHECK_EQ(raw_send_bytes(s, big, 0, NULL, 0), 0);
	CHECK(raw_closed(s, 1000));
	close(s);
	end();
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
