/*
 * Attacks through the device ABI only (kernel uapi headers, open, ioctl,
 * mmap): what a hostile domain can try with the devices themselves, and the
 * answer Xen and Linux give (ABI.md §2, §11, §12). Domain 1 (the parent)
 * grants; the attackers are separate processes, forked before anything is
 * granted, acting as the domain the test names. After each attack the
 * broker must hold exactly the fds and memfds it held before.
 */
#include "../conformance/kabi.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "sec.h"

#define GNTCOPY_source_gref 1
#define GNTCOPY_dest_gref   2
#define GNTST_okay	    0
#define GNTST_general_error (-1)
#define GNTST_bad_gntref    (-3)

typedef struct gntdev_grant_copy_segment seg_t;

static int gcopy(int fd, seg_t *segs, unsigned n)
{
	struct ioctl_gntdev_grant_copy op = { .count = n, .segments = segs };
	return ioctl(fd, IOCTL_GNTDEV_GRANT_COPY, &op);
}

static seg_t from_grant(void *buf, unsigned domid, uint32_t ref, unsigned len)
{
	seg_t s = { .len = (uint16_t)len, .flags = GNTCOPY_source_gref, .status = 99 };
	s.dest.virt = buf;
	s.source.foreign.ref = ref;
	s.source.foreign.domid = (domid_t)domid;
	return s;
}

static seg_t to_grant(void *buf, unsigned domid, uint32_t ref, unsigned len)
{
	seg_t s = { .len = (uint16_t)len, .flags = GNTCOPY_dest_gref, .status = 99 };
	s.source.virt = buf;
	s.dest.foreign.ref = ref;
	s.dest.foreign.domid = (domid_t)domid;
	return s;
}

/* Domain 1 (this process) grants n pages to `grantee`, filled with `fill`. */
struct share {
	int fd;
	uint64_t idx;
	uint32_t refs[16];
	char *p;
	unsigned n;
};

static void share_make(struct share *g, unsigned grantee, bool writable, unsigned n, char fill)
{
	tap_set_domid(1);
	g->fd = open_gntalloc();
	g->n = n;
	CHECK_OK(ga_alloc(g->fd, grantee, writable ? GNTALLOC_FLAG_WRITABLE : 0, n, &g->idx,
			  g->refs));
	g->p = map_pages(g->fd, g->idx, n, PROT_READ | PROT_WRITE);
	CHECK(g->p != MAP_FAILED);
	memset(g->p, fill, (size_t)n * PAGE);
}

static void share_free(struct share *g)
{
	munmap(g->p, (size_t)g->n * PAGE);
	close(g->fd);
}

/* Every byte of the grant still holds fill. */
static void share_intact(const struct share *g, char fill)
{
	for (size_t i = 0; i < (size_t)g->n * PAGE; i++)
		if (g->p[i] != fill)
			tap_fail(__FILE__, __LINE__, "byte %zu of domain 1's grant is %#x, not %#x",
				 i, (unsigned char)g->p[i], (unsigned char)fill);
}

/* mmap of a fresh MAP of (domid, ref): the errno, or 0 if it mapped. */
static int try_map(int fd, unsigned domid, uint32_t ref, int prot, int flags)
{
	uint64_t idx;
	CHECK_OK(gd_map1(fd, domid, ref, &idx));
	errno = 0;
	void *p = mmap(NULL, PAGE, prot, flags, fd, (off_t)idx);
	int err = p == MAP_FAILED ? errno : 0;
	if (p != MAP_FAILED)
		munmap(p, PAGE);
	CHECK_OK(gd_unmap(fd, idx, 1));
	return err;
}

static struct usage before;

static void begin(void)
{
	sec_usage_settled(0, &before);
}

static void end(void)
{
	sec_expect_back(&before, 3000);
}

/*
 * A domain maps or copies a grant made to another domain: MAP_GRANT_REF
 * accepts any ref, mmap fails with EINVAL, grant copy gives
 * GNTST_general_error (-1) both ways, and nothing reaches the buffers.
 */
TEST(foreign_grant_mmap_einval_copy_general_error)
{
	begin();
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(3, &l);
	if (pid == 0) {
		uint32_t ref = (uint32_t)tap_recv(&l);
		int fd = open_gntdev();
		CHECK_EQ(try_map(fd, 1, ref, PROT_READ, MAP_SHARED), EINVAL);
		CHECK_EQ(try_map(fd, 1, ref, PROT_READ | PROT_WRITE, MAP_SHARED), EINVAL);
		CHECK_EQ(try_map(fd, 1, ref, PROT_READ, MAP_PRIVATE), EINVAL);
		/* The domain id as the u32 of the ABI, truncated to 16 bits. */
		CHECK_EQ(try_map(fd, 0x10001, ref, PROT_READ, MAP_SHARED), EINVAL);
		char buf[64];
		memset(buf, 0x5a, sizeof(buf));
		seg_t s[3] = { from_grant(buf, 1, ref, 64), to_grant(buf, 1, ref, 64),
			       from_grant(buf, DOMID_SELF, ref, 64) };
		CHECK_OK(gcopy(fd, s, 3));
		CHECK_EQ(s[0].status, GNTST_general_error);
		CHECK_EQ(s[1].status, GNTST_general_error);
		/* DOMID_SELF is domain 3's own table, where the ref is free. */
		CHECK(s[2].status == GNTST_general_error || s[2].status == GNTST_bad_gntref);
		for (size_t i = 0; i < sizeof(buf); i++)
			CHECK_EQ(buf[i], 0x5a);
		close(fd);
		tap_send(&l, 0);
		tap_child_exit();
	}
	struct share g;
	share_make(&g, 2, true, 1, 's');
	tap_send(&l, g.refs[0]);
	CHECK_EQ(tap_recv(&l), 0);
	tap_wait_ok(pid);
	/* The granter itself: only the grantee may use a grant (ABI.md §12). */
	int fd = open_gntdev();
	CHECK_EQ(try_map(fd, 1, g.refs[0], PROT_READ, MAP_SHARED), EINVAL);
	char buf[8];
	seg_t s[2] = { from_grant(buf, 1, g.refs[0], 8),
		       from_grant(buf, DOMID_SELF, g.refs[0], 8) };
	CHECK_OK(gcopy(fd, s, 2));
	CHECK_EQ(s[0].status, GNTST_general_error);
	CHECK_EQ(s[1].status, GNTST_general_error);
	close(fd);
	share_intact(&g, 's');
	/* The grant was good all along: its grantee maps it. */
	tap_set_domid(2);
	fd = open_gntdev();
	CHECK_EQ(try_map(fd, 1, g.refs[0], PROT_READ | PROT_WRITE, MAP_SHARED), 0);
	close(fd);
	share_free(&g);
	tap_link_close(&l);
	end();
}

/* What a write attempt left: 0 if refused, else whether the write faulted. */
enum { REFUSED, FAULTED, WROTE };

/* Writes 'W' at p in a child: a fault kills the child, not the test. */
static int write_in_child(char *p)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		*(volatile char *)p = 'W';
		_exit(0);
	}
	int st = tap_wait(pid);
	return WIFSIGNALED(st) ? FAULTED : WROTE;
}

/*
 * Writes to a read-only grant, by every route of the ABI: mmap with
 * PROT_WRITE (EINVAL), mprotect after a PROT_READ mmap (EACCES: the memory
 * is a read-only open; on Xen PV it succeeds and the write faults), a
 * writable MAP_PRIVATE (EINVAL), mprotect of a read-only MAP_PRIVATE (the
 * write may only reach a private copy), grant copy into it (status -1), and
 * an unmap notification's CLEAR_BYTE (EINVAL once mapped read-only). The
 * granter's page never changes.
 */
TEST(readonly_grant_every_write_refused)
{
	begin();
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		uint32_t ref = (uint32_t)tap_recv(&l);
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_EQ(try_map(fd, 1, ref, PROT_READ | PROT_WRITE, MAP_SHARED), EINVAL);
		CHECK_EQ(try_map(fd, 1, ref, PROT_WRITE, MAP_SHARED), EINVAL);
		CHECK_EQ(try_map(fd, 1, ref, PROT_READ | PROT_WRITE, MAP_PRIVATE), EINVAL);

		CHECK_OK(gd_map1(fd, 1, ref, &idx));
		char *p = map_pages(fd, idx, 1, PROT_READ);
		CHECK(p != MAP_FAILED);
		CHECK_EQ(p[100], 'r');
		errno = 0;
		int r = mprotect(p, PAGE, PROT_READ | PROT_WRITE);
		tap_note("mprotect(PROT_WRITE) of a read-only grant's shared mapping: %s",
			 r == 0 ? "0, then the write faults?" : strerror(errno));
		if (r == 0)
			CHECK_EQ(write_in_child(p + 100), FAULTED);
		else
			CHECK_EQ(errno, EACCES);
		/* The notification cannot clear a byte of it either. */
		CHECK_ERR(gd_notify(fd, idx + 5, UNMAP_NOTIFY_CLEAR_BYTE, 0), EINVAL);
		munmap(p, PAGE);
		CHECK_OK(gd_unmap(fd, idx, 1));

		/* Read-only MAP_PRIVATE is accepted; a write, if mprotect lets
		 * it happen, lands in a private copy. */
		CHECK_OK(gd_map1(fd, 1, ref, &idx));
		p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, (off_t)idx);
		CHECK(p != MAP_FAILED);
		r = mprotect(p, PAGE, PROT_READ | PROT_WRITE);
		tap_note("mprotect(PROT_WRITE) of its read-only MAP_PRIVATE mapping: %s%s",
			 r == 0 ? "0" : strerror(errno),
			 r == 0 ? (write_in_child(p + 200) == WROTE ? ", a private copy written"
								    : ", the write faults")
				: "");
		munmap(p, PAGE);
		CHECK_OK(gd_unmap(fd, idx, 1));

		char buf[64];
		memset(buf, 'W', sizeof(buf));
		seg_t s = to_grant(buf, 1, ref, 64);
		CHECK_OK(gcopy(fd, &s, 1));
		CHECK_EQ(s.status, GNTST_general_error);
		close(fd);
		tap_send(&l, 0);
		tap_child_exit();
	}
	struct share g;
	share_make(&g, 2, false, 1, 'r');
	tap_send(&l, g.refs[0]);
	CHECK_EQ(tap_recv(&l), 0);
	tap_wait_ok(pid);
	share_intact(&g, 'r');
	share_free(&g);
	tap_link_close(&l);
	end();
}

/*
 * The same through the unmap notification armed before the mmap: gntdev
 * accepts CLEAR_BYTE on a map that is not mmapped yet, then a read-only
 * mmap. On Xen the grantee's kernel cannot write through a read-only grant
 * mapping, so the byte of the read-only grant must stay as it is when the
 * map goes.
 */
TEST(readonly_grant_clear_byte_armed_before_mmap)
{
	begin();
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		uint32_t ref = (uint32_t)tap_recv(&l);
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map1(fd, 1, ref, &idx));
		CHECK_OK(gd_notify(fd, idx + 7, UNMAP_NOTIFY_CLEAR_BYTE, 0));
		char *p = map_pages(fd, idx, 1, PROT_READ);
		if (p != MAP_FAILED) {
			CHECK_EQ(p[7], 'r');
			munmap(p, PAGE);
		}
		CHECK_OK(gd_unmap(fd, idx, 1));
		close(fd);
		tap_send(&l, 0);
		tap_child_exit();
	}
	struct share g;
	share_make(&g, 2, false, 1, 'r');
	tap_send(&l, g.refs[0]);
	CHECK_EQ(tap_recv(&l), 0);
	tap_wait_ok(pid);
	usleep(50 * 1000);
	CHECK_EQ(g.p[7], 'r');
	share_intact(&g, 'r');
	share_free(&g);
	tap_link_close(&l);
	end();
}

/*
 * A third domain guesses refs: every ref 0..70000 of domain 1, which has
 * granted pages to domain 2. Every mmap fails with EINVAL; every grant copy
 * segment, either way, gives -1 (inside the table) or -3 (beyond it), and no
 * byte moves in either direction.
 */
TEST_TIMEOUT(ref_sweep_by_a_third_domain, 60)
{
	enum { LAST = 70000, BATCH = 1000 };
	begin();
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(3, &l);
	if (pid == 0) {
		tap_recv(&l);
		int fd = open_gntdev();
		unsigned mapped = 0, einval = 0, general = 0, bad_ref = 0;
		double t0 = tap_now_ms();
		for (uint32_t ref = 0; ref <= LAST; ref++) {
			int e = try_map(fd, 1, ref, PROT_READ, MAP_SHARED);
			if (e == 0)
				tap_fail(__FILE__, __LINE__, "ref %u of domain 1 mapped", ref);
			if (e != EINVAL)
				tap_fail(__FILE__, __LINE__, "ref %u: mmap errno %d", ref, e);
			einval++;
		}
		tap_note("mmap of refs 0..%u: %u EINVAL, %u mapped, in %.0f ms", LAST, einval,
			 mapped, tap_now_ms() - t0);
		t0 = tap_now_ms();
		static seg_t s[BATCH];
		static char bufs[BATCH][16];
		for (uint32_t first = 0; first <= LAST; first += BATCH) {
			for (int dir = 0; dir < 2; dir++) {
				memset(bufs, 0x5a, sizeof(bufs));
				unsigned n = 0;
				for (uint32_t ref = first; ref <= LAST && n < BATCH; ref++, n++)
					s[n] = dir ? to_grant(bufs[n], 1, ref, 16)
						   : from_grant(bufs[n], 1, ref, 16);
				CHECK_OK(gcopy(fd, s, n));
				for (unsigned i = 0; i < n; i++) {
					if (s[i].status == GNTST_general_error)
						general++;
					else if (s[i].status == GNTST_bad_gntref)
						bad_ref++;
					else
						tap_fail(__FILE__, __LINE__,
							 "copy %s ref %u: status %d",
							 dir ? "to" : "from", first + i,
							 s[i].status);
					for (int k = 0; k < 16; k++)
						CHECK_EQ(bufs[i][k], 0x5a);
				}
			}
		}
		tap_note("grant copy both ways: %u general_error (-1), %u bad_gntref (-3), in %.0f "
			 "ms",
			 general, bad_ref, tap_now_ms() - t0);
		CHECK_EQ(general + bad_ref, 2 * (LAST + 1));
		close(fd);
		tap_send(&l, 0);
		tap_child_exit();
	}
	struct share rw, ro;
	share_make(&rw, 2, true, 16, 'g');
	share_make(&ro, 2, false, 4, 'o');
	tap_send(&l, 0);
	CHECK_EQ(tap_recv(&l), 0);
	tap_wait_ok(pid);
	share_intact(&rw, 'g');
	share_intact(&ro, 'o');
	share_free(&rw);
	share_free(&ro);
	tap_link_close(&l);
	end();
}

/*
 * Event channels of other domains: a third domain (and another file of the
 * owner's domain) can neither unbind nor notify a port not bound in its
 * file (ENOTCONN), nor bind a port offered to another domain or already
 * connected (EINVAL). The channel keeps working for its owners.
 */
TEST(evtchn_ports_of_other_domains)
{
	begin();
	struct tap_link a, c;
	tap_link_init(&a);
	tap_link_init(&c);
	/* Domain 2: binds to the port domain 1 offers, then serves. */
	pid_t pa = tap_fork_domain(2, &a);
	if (pa == 0) {
		int fd = open_evtchn();
		unsigned p1 = (unsigned)tap_recv(&a);
		int q = ev_interdomain(fd, 1, p1);
		CHECK(q > 0);
		CHECK_EQ(ev_wait_unmask(fd, 1000), q); /* the binder's own event */
		tap_send(&a, (unsigned)q);
		CHECK_EQ(tap_recv(&a), 1); /* the attack is over */
		CHECK_OK(ev_notify(fd, (unsigned)q));
		CHECK_EQ(ev_wait_unmask(fd, 2000), q); /* domain 1 answers */
		unsigned p2 = (unsigned)tap_recv(&a);
		CHECK(ev_interdomain(fd, 1, p2) > 0); /* still offered to us */
		close(fd);
		tap_send(&a, 0);
		tap_child_exit();
	}
	/* Domain 3: the attacker. */
	pid_t pc = tap_fork_domain(3, &c);
	if (pc == 0) {
		int fd = open_evtchn();
		unsigned p1 = (unsigned)tap_recv(&c), q = (unsigned)tap_recv(&c);
		unsigned p2 = (unsigned)tap_recv(&c);
		CHECK_ERR(ev_unbind(fd, p1), ENOTCONN);
		CHECK_ERR(ev_notify(fd, p1), ENOTCONN);
		CHECK_ERR(ev_unbind(fd, q), ENOTCONN);
		CHECK_ERR(ev_notify(fd, q), ENOTCONN);
		CHECK_ERR(ev_interdomain(fd, 1, p1), EINVAL); /* connected to domain 2 */
		CHECK_ERR(ev_interdomain(fd, 1, p2), EINVAL); /* offered to domain 2 */
		CHECK_ERR(ev_interdomain(fd, 2, q), EINVAL);
		CHECK_EQ(ev_wait_unmask(fd, 50), 0);
		close(fd);
		tap_send(&c, 0);
		tap_child_exit();
	}
	tap_set_domid(1);
	int fd = open_evtchn();
	int p1 = ev_unbound(fd, 2);
	int p2 = ev_unbound(fd, 2);
	CHECK(p1 > 0 && p2 > 0);
	tap_send(&a, (unsigned)p1);
	unsigned q = (unsigned)tap_recv(&a);
	/* Another file of domain 1 did not bind them either. */
	int other = open_evtchn();
	CHECK_ERR(ev_unbind(other, (unsigned)p1), ENOTCONN);
	CHECK_ERR(ev_notify(other, (unsigned)p1), ENOTCONN);
	close(other);
	tap_send(&c, (unsigned)p1);
	tap_send(&c, q);
	tap_send(&c, (unsigned)p2);
	CHECK_EQ(tap_recv(&c), 0);
	tap_wait_ok(pc);
	/* Still bound, both ways. */
	tap_send(&a, 1);
	CHECK_EQ(ev_wait_unmask(fd, 2000), p1);
	CHECK_OK(ev_notify(fd, (unsigned)p1));
	tap_send(&a, (unsigned)p2);
	CHECK_EQ(tap_recv(&a), 0);
	tap_wait_ok(pa);
	close(fd);
	tap_link_close(&a);
	tap_link_close(&c);
	end();
}

/*
 * Another user claims a domain: the embedded default policy lets only the
 * broker's own user act as a domain. A process of uid nobody opening any
 * device gets EACCES, and the broker logs the refusal. (A broker of our
 * own, to read its log.)
 */
TEST(other_user_cannot_claim_a_domain_eacces)
{
	struct private_broker pb;
	sec_private_broker(&pb, true, 0);
	pid_t broker = pb.pid;
	pid_t pid = tap_fork_domain(1, NULL);
	if (pid == 0) {
		CHECK_OK(setgid(65534));
		CHECK_OK(setuid(65534));
		const char *devs[] = { "/dev/xen/gntalloc", "/dev/xen/gntdev", "/dev/xen/evtchn" };
		for (int i = 0; i < 3; i++) {
			tap_set_domid((unsigned)i);
			CHECK_ERR(open(devs[i], O_RDWR | O_CLOEXEC), EACCES);
		}
		tap_child_exit();
	}
	tap_wait_ok(pid);
	/* The broker's own user is still welcome. */
	tap_set_domid(1);
	int fd = open_gntalloc();
	close(fd);
	CHECK_EQ(sec_stop_broker(broker), 0);
	CHECK(sec_file_contains(pb.log, "(uid 65534) may not act as domain 0"));
	CHECK(sec_file_contains(pb.log, "(uid 65534) may not act as domain 1"));
	CHECK(sec_file_contains(pb.log, "(uid 65534) may not act as domain 2"));
	sec_rmdir(pb.dir);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
