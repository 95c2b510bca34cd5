/*
 * IOCTL_GNTDEV_GRANT_COPY: ABI.md §2.3, §4.9 and what §11-12 observed.
 * Domain 1 grants pages to domain 2 (and 3); the copies run as domain 2.
 */
#include "kabi.h"

#include <signal.h>
#include <stddef.h>

#define GNTCOPY_source_gref 1
#define GNTCOPY_dest_gref   2
#define OKAY		    0
#define GENERAL		    (-1)
#define BAD_DOMAIN	    (-2)
#define BAD_GNTREF	    (-3)

typedef struct gntdev_grant_copy_segment seg_t;

static int gcopy(int fd, seg_t *segs, unsigned n)
{
	struct ioctl_gntdev_grant_copy op = { .count = n, .segments = segs };
	return ioctl(fd, IOCTL_GNTDEV_GRANT_COPY, &op);
}

/* local buffer -> grant */
static seg_t to_grant(void *buf, unsigned domid, uint32_t ref, unsigned off, unsigned len)
{
	seg_t s = { .len = (uint16_t)len, .flags = GNTCOPY_dest_gref, .status = 99 };
	s.source.virt = buf;
	s.dest.foreign.ref = ref;
	s.dest.foreign.domid = (domid_t)domid;
	s.dest.foreign.offset = (uint16_t)off;
	return s;
}

/* grant -> local buffer */
static seg_t from_grant(void *buf, unsigned domid, uint32_t ref, unsigned off, unsigned len)
{
	seg_t s = { .len = (uint16_t)len, .flags = GNTCOPY_source_gref, .status = 99 };
	s.dest.virt = buf;
	s.source.foreign.ref = ref;
	s.source.foreign.domid = (domid_t)domid;
	s.source.foreign.offset = (uint16_t)off;
	return s;
}

struct granter {
	int fd;
	char *p;
	uint32_t refs[4];
};

/* Domain 1 grants 4 pages: refs[0,1] rw to 2, refs[2] ro to 2, refs[3] rw to 3. */
static void granter_open(struct granter *g)
{
	tap_set_domid(1);
	g->fd = open_gntalloc();
	uint64_t i0, i1, i2;
	CHECK_OK(ga_alloc(g->fd, 2, 1, 2, &i0, g->refs));
	CHECK_OK(ga_alloc(g->fd, 2, 0, 1, &i1, g->refs + 2));
	CHECK_OK(ga_alloc(g->fd, 3, 1, 1, &i2, g->refs + 3));
	g->p = map_pages(g->fd, 0, 4, PROT_READ | PROT_WRITE);
	CHECK(g->p != MAP_FAILED);
	for (int i = 0; i < 4; i++)
		snprintf(g->p + i * PAGE, 32, "page %d of domain 1", i);
}

static void granter_close(struct granter *g)
{
	munmap(g->p, 4 * PAGE);
	close(g->fd);
}

TEST(copy_both_ways)
{
	struct granter g;
	granter_open(&g);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		char in[64] = { 0 }, out[] = "written by domain 2";
		seg_t s[2] = { from_grant(in, 1, g.refs[1], 0, 20),
			       to_grant(out, 1, g.refs[0], 100, sizeof(out)) };
		CHECK_OK(gcopy(fd, s, 2));
		CHECK_EQ(s[0].status, OKAY);
		CHECK_EQ(s[1].status, OKAY);
		CHECK_EQ(strcmp(in, "page 1 of domain 1"), 0);
		/* the same again: answered from what was learned */
		memset(in, 0, sizeof(in));
		CHECK_OK(gcopy(fd, s, 2));
		CHECK_EQ(strcmp(in, "page 1 of domain 1"), 0);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_EQ(strcmp(g.p + 100, "written by domain 2"), 0);
	granter_close(&g);
}

TEST(statuses_in_xens_order)
{
	struct granter g;
	granter_open(&g);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		char buf[64];
		seg_t s[] = {
			from_grant(buf, 1, g.refs[0], 0, 8),	 /* okay */
			from_grant(buf, 9, 8, 0, 8),		 /* no such domain */
			from_grant(buf, 1, 1u << 20, 0, 8),	 /* beyond the table */
			from_grant(buf, 1, 300, 0, 8),		 /* in the table, unused */
			from_grant(buf, 1, g.refs[3], 0, 8),	 /* granted to 3 */
			to_grant(buf, 1, g.refs[2], 0, 8),	 /* read-only as dest */
			from_grant(buf, 1, g.refs[2], 0, 8),	 /* read-only as source */
			from_grant(buf, 9, 1u << 20, 0, 0),	 /* len 0: okay whatever */
			from_grant(buf, 1, g.refs[0], 4000, 96), /* up to the page end */
			from_grant(buf, 0x7FF5, 8, 0, 8),	 /* a reserved id */
		};
		const int16_t want[] = { OKAY,	  BAD_DOMAIN, BAD_GNTREF, GENERAL, GENERAL,
					 GENERAL, OKAY,	      OKAY,	  OKAY,	   BAD_DOMAIN };
		unsigned n = sizeof(s) / sizeof(s[0]);
		CHECK_OK(gcopy(fd, s, n));
		for (unsigned i = 0; i < n; i++) {
			if (s[i].status != want[i])
				tap_fail(__FILE__, __LINE__, "segment %u: status %d, expected %d",
					 i, s[i].status, want[i]);
		}
		/* A bad source domain wins over a bad dest ref... */
		seg_t both = { .len = 8, .flags = GNTCOPY_source_gref | GNTCOPY_dest_gref };
		both.source.foreign.domid = 9;
		both.dest.foreign.domid = 1;
		both.dest.foreign.ref = 1u << 20;
		CHECK_OK(gcopy(fd, &both, 1));
		CHECK_EQ(both.status, BAD_DOMAIN);
		/* ...and a bad dest domain over a bad source ref. */
		both.source.foreign.domid = 1;
		both.source.foreign.ref = 1u << 20;
		both.dest.foreign.domid = 9;
		CHECK_OK(gcopy(fd, &both, 1));
		CHECK_EQ(both.status, BAD_DOMAIN);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	granter_close(&g);
}

TEST(only_the_grantee_copies)
{
	struct granter g;
	granter_open(&g);
	/* The granter itself, by its id and by DOMID_SELF. */
	int fd = open_gntdev();
	char buf[16];
	seg_t s[2] = { from_grant(buf, 1, g.refs[0], 0, 8),
		       from_grant(buf, DOMID_SELF, g.refs[0], 0, 8) };
	CHECK_OK(gcopy(fd, s, 2));
	CHECK_EQ(s[0].status, GENERAL);
	CHECK_EQ(s[1].status, GENERAL);
	close(fd);
	granter_close(&g);
}

TEST(own_grants_and_third_party_pairs)
{
	/* Domain 3 copies between a grant of domain 1 and one of domain 2,
	 * both made to it; and from a grant it made to itself. */
	struct tap_link l;
	tap_link_init(&l);
	tap_set_domid(1);
	int a = open_gntalloc();
	uint64_t ia;
	uint32_t ra;
	CHECK_OK(ga_alloc(a, 3, 1, 1, &ia, &ra));
	char *pa = map_pages(a, ia, 1, PROT_READ | PROT_WRITE);
	strcpy(pa, "from domain 1");
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int b = open_gntalloc();
		uint64_t ib;
		uint32_t rb;
		CHECK_OK(ga_alloc(b, 3, 1, 1, &ib, &rb));
		char *pb = map_pages(b, ib, 1, PROT_READ | PROT_WRITE);
		tap_send(&l, rb);
		tap_recv(&l);
		CHECK_EQ(strcmp(pb + 8, "from domain 1"), 0);
		munmap(pb, PAGE);
		close(b);
		tap_child_exit();
	}
	uint32_t rb = (uint32_t)tap_recv(&l);
	pid_t third = tap_fork_domain(3, NULL);
	if (third == 0) {
		int self = open_gntalloc();
		uint64_t is;
		uint32_t rs;
		CHECK_OK(ga_alloc(self, 3, 1, 1, &is, &rs));
		char *ps = map_pages(self, is, 1, PROT_READ | PROT_WRITE);
		strcpy(ps, "mine");
		int fd = open_gntdev();
		seg_t s = { .len = 14, .flags = GNTCOPY_source_gref | GNTCOPY_dest_gref };
		s.source.foreign.domid = 1;
		s.source.foreign.ref = ra;
		s.dest.foreign.domid = 2;
		s.dest.foreign.ref = rb;
		s.dest.foreign.offset = 8;
		char mine[8] = { 0 };
		seg_t t[2] = { s, from_grant(mine, DOMID_SELF, rs, 0, 5) };
		CHECK_OK(gcopy(fd, t, 2));
		CHECK_EQ(t[0].status, OKAY);
		CHECK_EQ(t[1].status, OKAY);
		CHECK_EQ(strcmp(mine, "mine"), 0);
		munmap(ps, PAGE);
		close(self);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(third);
	tap_send(&l, 0);
	tap_wait_ok(pid);
	tap_link_close(&l);
	munmap(pa, PAGE);
	close(a);
}

TEST(driver_argument_checks_einval)
{
	struct granter g;
	granter_open(&g);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		char buf[64] = "x", other[64];
		seg_t local = { .len = 8, .flags = 0, .status = 99 };
		local.source.virt = buf;
		local.dest.virt = other;
		seg_t s[3] = { to_grant(buf, 1, g.refs[0], 0, 8), local,
			       to_grant(buf, 1, g.refs[0], 0, 8) };
		CHECK_ERR(gcopy(fd, s, 3), EINVAL);
		CHECK_EQ(s[0].status, OKAY);			/* earlier statuses read 0 */
		CHECK_EQ(s[1].status, 99);			/* the bad one was never written */
		s[1] = from_grant(buf, 1, g.refs[0], 4000, 97); /* crosses the page */
		CHECK_ERR(gcopy(fd, s + 1, 1), EINVAL);
		s[1] = to_grant(buf, 1, g.refs[0], 4095, 2);
		CHECK_ERR(gcopy(fd, s + 1, 1), EINVAL);
		/* even with a bad ref: the argument check comes first */
		s[1] = to_grant(buf, 1, 1u << 20, 4095, 2);
		CHECK_ERR(gcopy(fd, s + 1, 1), EINVAL);
		CHECK_OK(gcopy(fd, s, 0));
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_GRANT_COPY, bad_ptr(8)), EFAULT);
		struct ioctl_gntdev_grant_copy op = { .count = 3, .segments = bad_ptr(64) };
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_GRANT_COPY, &op), EFAULT);
		op.count = UINT32_MAX; /* no limit on the count: it faults on the way */
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_GRANT_COPY, &op), EFAULT);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	granter_close(&g);
}

TEST(bad_local_buffers_efault)
{
	struct granter g;
	granter_open(&g);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		char buf[64] = "ok";
		seg_t s[2] = { to_grant(buf, 1, g.refs[0], 0, 8),
			       to_grant(bad_ptr(16), 1, g.refs[0], 0, 8) };
		CHECK_ERR(gcopy(fd, s, 2), EFAULT);
		CHECK_EQ(s[1].status, OKAY); /* already written when the pin failed */
		/* A read-only local destination. */
		char *ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		s[0] = from_grant(ro, 1, g.refs[0], 0, 8);
		CHECK_ERR(gcopy(fd, s, 1), EFAULT);
		munmap(ro, PAGE);
		/* A local buffer that crosses pages is fine. */
		char *two = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		s[0] = from_grant(two + PAGE - 5, 1, g.refs[1], 0, 18);
		CHECK_OK(gcopy(fd, s, 1));
		CHECK_EQ(s[0].status, OKAY);
		CHECK_EQ(memcmp(two + PAGE - 5, "page 1 of domain", 16), 0);
		munmap(two, 2 * PAGE);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	granter_close(&g);
}

static volatile int own_handler_ran;
static void own_handler(int sig)
{
	(void)sig;
	own_handler_ran = 1;
	_exit(42);
}

TEST(bad_buffers_in_large_copies_efault)
{
	struct granter g;
	granter_open(&g);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		/* 64 segments of 4 KiB: one copy of 256 KiB, the 40th from a
		 * buffer that is not mapped. */
		enum { N = 64 };
		char *bufs = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		memset(bufs, 'b', N * PAGE);
		munmap(bufs + 39 * PAGE, PAGE);
		seg_t s[N];
		for (int i = 0; i < N; i++)
			s[i] = to_grant(bufs + i * PAGE, 1, g.refs[i % 2], 0, PAGE);
		CHECK_ERR(gcopy(fd, s, N), EFAULT);
		CHECK_EQ(s[39].status, OKAY);
		/* Grants to a read-only local destination, as large. */
		CHECK(mmap(bufs + 39 * PAGE, PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED);
		for (int i = 0; i < N; i++)
			s[i] = from_grant(bufs + i * PAGE, 1, g.refs[i % 2], 0, PAGE);
		/* (the grants hold 'b' now, from the segments before the fault) */
		memset(bufs, 'z', N * PAGE);
		mprotect(bufs + 50 * PAGE, PAGE, PROT_READ);
		CHECK_ERR(gcopy(fd, s, N), EFAULT);
		CHECK_EQ(bufs[49 * PAGE], 'b'); /* before it: done */
		CHECK_EQ(bufs[51 * PAGE], 'z'); /* after it: not */
		/* The program's own fault handler is its own again afterwards. */
		signal(SIGSEGV, own_handler);
		*(volatile char *)(bufs + 50 * PAGE) = 1;
		tap_fail(__FILE__, __LINE__, "no fault");
	}
	int st = tap_wait(pid);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 42);
	granter_close(&g);
}

TEST(many_segments_only_the_bad_one_fails)
{
	struct granter g;
	granter_open(&g);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		enum { N = 20 };
		char bufs[N][16];
		seg_t s[N];
		for (int i = 0; i < N; i++)
			s[i] = from_grant(bufs[i], 1, i == 17 ? 1u << 20 : g.refs[i % 2], 0, 16);
		CHECK_OK(gcopy(fd, s, N));
		for (int i = 0; i < N; i++)
			CHECK_EQ(s[i].status, i == 17 ? BAD_GNTREF : OKAY);
		CHECK_EQ(memcmp(bufs[19], "page 1 of domai", 15), 0);
		/* No limit on the count. */
		enum { BIG = 100000 };
		seg_t *big = calloc(BIG, sizeof(*big));
		char *dst = calloc(BIG, 8);
		for (int i = 0; i < BIG; i++)
			big[i] = from_grant(dst + 8 * i, 1, g.refs[0], 0, 8);
		CHECK_OK(gcopy(fd, big, BIG));
		CHECK_EQ(big[BIG - 1].status, OKAY);
		CHECK_EQ(memcmp(dst + 8 * (BIG - 1), "page 0 o", 8), 0);
		free(big);
		free(dst);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	granter_close(&g);
}

TEST_TIMEOUT(copy_after_the_grant_ended, 30)
{
	struct tap_link l;
	tap_link_init(&l);
	tap_set_domid(1);
	int ga = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(ga, 2, 1, 1, &idx, &ref));
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int fd = open_gntdev();
		char buf[8];
		seg_t s = from_grant(buf, 1, ref, 0, 8);
		CHECK_OK(gcopy(fd, &s, 1));
		CHECK_EQ(s.status, OKAY);
		tap_send(&l, 0);
		tap_recv(&l); /* the grant ends */
		CHECK_OK(gcopy(fd, &s, 1));
		CHECK_EQ(s.status, GENERAL);
		tap_send(&l, 0);
		tap_recv(&l); /* domain 1 is gone */
		CHECK_OK(gcopy(fd, &s, 1));
		CHECK_EQ(s.status, BAD_DOMAIN);
		close(fd);
		tap_child_exit();
	}
	tap_recv(&l);
	CHECK_OK(ga_dealloc(ga, idx, 1)); /* not mapped: ends now */
	tap_send(&l, 0);
	tap_recv(&l);
	close(ga); /* domain 1's last file */
	tap_send(&l, 0);
	tap_wait_ok(pid);
	tap_link_close(&l);
}

TEST_TIMEOUT(dying_domain_cannot_be_copied_but_stays_mapped, 30)
{
	struct tap_link l;
	tap_link_init(&l);
	pid_t granter = tap_fork_domain(1, &l);
	if (granter == 0) {
		int ga = open_gntalloc();
		uint64_t idx;
		uint32_t ref;
		CHECK_OK(ga_alloc(ga, 2, 1, 1, &idx, &ref));
		char *p = map_pages(ga, idx, 1, PROT_READ | PROT_WRITE);
		strcpy(p, "alive");
		tap_send(&l, ref);
		pause();
		_exit(0);
	}
	uint32_t ref = (uint32_t)tap_recv(&l);
	tap_set_domid(2);
	int fd = open_gntdev();
	uint64_t gi;
	CHECK_OK(gd_map1(fd, 1, ref, &gi));
	char *q = map_pages(fd, gi, 1, PROT_READ);
	CHECK(q != MAP_FAILED);
	kill(granter, SIGKILL);
	tap_wait(granter);
	usleep(100 * 1000);
	/* Domain 1 lingers while its page is mapped here: copies -2. */
	char buf[8];
	seg_t s = from_grant(buf, 1, ref, 0, 6);
	CHECK_OK(gcopy(fd, &s, 1));
	CHECK_EQ(s.status, BAD_DOMAIN);
	CHECK_EQ(strcmp(q, "alive"), 0);
	munmap(q, PAGE);
	CHECK_OK(gd_unmap(fd, gi, 1));
	close(fd);
	tap_link_close(&l);
}

TEST(copies_stay_right_while_other_grants_end)
{
	/* Another process of domain 1 keeps ending grants, which moves the
	 * domain's grant epoch under the copies of a grant that stays. */
	struct granter g;
	granter_open(&g);
	pid_t churn = fork();
	if (churn == 0) {
		int fd = open_gntalloc();
		for (;;) {
			uint64_t idx;
			uint32_t ref;
			if (ga_alloc(fd, 2, 1, 1, &idx, &ref) == 0)
				ga_dealloc(fd, idx, 1);
		}
	}
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		char buf[4096];
		for (int i = 0; i < 20000; i++) {
			seg_t s[2] = { from_grant(buf, 1, g.refs[0], 0, 4096),
				       to_grant(buf, 1, g.refs[1], 0, 4096) };
			CHECK_OK(gcopy(fd, s, 2));
			if (s[0].status != OKAY || s[1].status != OKAY)
				tap_fail(__FILE__, __LINE__, "iteration %d: statuses %d %d", i,
					 s[0].status, s[1].status);
		}
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	kill(churn, SIGKILL);
	tap_wait(churn);
	granter_close(&g);
}

/* §4.9 step 2b: only the two gref bits of flags are read; any other bit is
 * ignored, in a copy that works and in a local->local one that does not. */
TEST(other_flag_bits_are_ignored)
{
	struct granter g;
	granter_open(&g);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		char in[32] = { 0 }, out[] = "extra bits";
		seg_t s[2] = { from_grant(in, 1, g.refs[1], 0, 19),
			       to_grant(out, 1, g.refs[0], 200, sizeof(out)) };
		s[0].flags |= 0x4 | 0x100 | 0x8000;
		s[1].flags |= 0xfff0;
		CHECK_OK(gcopy(fd, s, 2));
		CHECK_EQ(s[0].status, OKAY);
		CHECK_EQ(s[1].status, OKAY);
		CHECK_EQ(strcmp(in, "page 1 of domain 1"), 0);
		/* Extra bits do not make a local->local copy foreign. */
		char a[8] = "a", b[8];
		seg_t local = { .len = 2, .flags = 0xfffc, .status = 99 };
		local.source.virt = a;
		local.dest.virt = b;
		CHECK_ERR(gcopy(fd, &local, 1), EINVAL);
		CHECK_EQ(local.status, 99);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_EQ(strcmp(g.p + 200, "extra bits"), 0);
	granter_close(&g);
}

/*
 * §4.9 step 2d: the driver writes GNTST_okay into each segment's status
 * (put_user of the 2-byte field) before it does the work; if that write
 * faults the ioctl is EFAULT there, later segments are never looked at, and
 * the queued ops of earlier ones (fewer than a batch of 16) are dropped.
 * Only the status is written: a segment whose other fields lie in read-only
 * memory, but whose status is writable, is fine.
 */
TEST(status_write_fault_efault)
{
	struct granter g;
	granter_open(&g);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		char *area = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(area != MAP_FAILED);
		char bufs[4][32];
		memset(bufs, 'z', sizeof(bufs));
		/* Segments 0-1 at the end of the writable page, 2-3 in the
		 * read-only page after it. */
		seg_t *s = (seg_t *)(area + PAGE - 2 * sizeof(seg_t));
		for (int i = 0; i < 3; i++)
			s[i] = from_grant(bufs[i], 1, g.refs[i % 2], 0, 16);
		char out[] = "never written";
		s[3] = to_grant(out, 1, g.refs[0], 300, sizeof(out));
		CHECK_OK(mprotect(area + PAGE, PAGE, PROT_READ));
		CHECK_ERR(gcopy(fd, s, 4), EFAULT);
		CHECK_EQ(s[0].status, OKAY);
		CHECK_EQ(s[1].status, OKAY);
		CHECK_EQ(s[2].status, 99);
		CHECK_EQ(s[3].status, 99);
		/* Nothing was copied: the ops of 0 and 1 were still queued. */
		for (int i = 0; i < 4; i++)
			CHECK_EQ(bufs[i][0], 'z');
		CHECK_OK(munmap(area, 2 * PAGE));

		/* Now the other way round: a read-only page, then a writable
		 * one, and one segment across them with only its status
		 * (bytes 20-21) on the writable side. */
		area = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
			    0);
		CHECK(area != MAP_FAILED);
		/* (Only 4-byte aligned: the driver does not care; C does, so
		 * it is reached through memcpy.) */
		char *x = area + PAGE - offsetof(seg_t, status);
		seg_t one = from_grant(bufs[0], 1, g.refs[1], 0, 19);
		memcpy(x, &one, sizeof(one));
		CHECK_OK(mprotect(area, PAGE, PROT_READ));
		struct ioctl_gntdev_grant_copy op = { .count = 1, .segments = (void *)x };
		CHECK_OK(ioctl(fd, IOCTL_GNTDEV_GRANT_COPY, &op));
		int16_t st;
		memcpy(&st, x + offsetof(seg_t, status), sizeof(st));
		CHECK_EQ(st, OKAY);
		CHECK_EQ(strcmp(bufs[0], "page 1 of domain 1"), 0);
		CHECK_OK(munmap(area, 2 * PAGE));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK(strcmp(g.p + 300, "never written") != 0);
	granter_close(&g);
}

/*
 * §4.9 step 2f, as far as it can be seen: a segment whose local buffer
 * spans two pages is two ops, here the 16th and 17th, so they go to Xen in
 * two batches. Every op of one segment names the same grant and gets the
 * same status, so "the first failure wins" cannot show a different value;
 * what can be seen is one status per segment, whichever batch its ops went
 * in, and all of its bytes copied when it is good.
 */
TEST(a_segment_split_across_two_batches)
{
	struct granter g;
	granter_open(&g);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		enum { N = 17 };
		char *two = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(two != MAP_FAILED);
		char small[N][8];
		seg_t s[N];
		for (int bad = 0; bad < 2; bad++) {
			memset(two, 'z', 2 * PAGE);
			for (int i = 0; i < N - 2; i++)
				s[i] = from_grant(small[i], 1, g.refs[0], 0, 8); /* ops 1-15 */
			/* ops 16 and 17: the last 8 bytes of one page, the first
			 * 11 of the next */
			s[N - 2] = from_grant(two + PAGE - 8, 1, bad ? 1u << 20 : g.refs[1], 0, 19);
			s[N - 1] = from_grant(small[N - 1], 1, g.refs[0], 0, 8);
			CHECK_OK(gcopy(fd, s, N));
			for (int i = 0; i < N; i++)
				CHECK_EQ(s[i].status, (bad && i == N - 2) ? BAD_GNTREF : OKAY);
			if (!bad)
				CHECK_EQ(memcmp(two + PAGE - 8, "page 1 of domain 1", 19), 0);
			else
				CHECK_EQ(two[PAGE - 8], 'z');
		}
		munmap(two, 2 * PAGE);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	granter_close(&g);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
