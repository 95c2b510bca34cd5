/*
 * /dev/xen/gntdev, check by check: ABI.md §4 and the observations of §11-12
 * (auto-translated model). The parent is domain 1 and grants; the checks
 * run in forked processes acting as domains 2 and 3.
 */
#include "kabi.h"

#include <signal.h>
#include <sys/resource.h>

/* Domain 1 (this process) shares n zeroed pages with `grantee`. */
static int share(unsigned grantee, unsigned n, int writable, uint32_t *refs, char **map)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	CHECK_OK(ga_alloc(fd, grantee, writable ? GNTALLOC_FLAG_WRITABLE : 0, n, &idx, refs));
	if (map) {
		*map = map_pages(fd, idx, n, PROT_READ | PROT_WRITE);
		CHECK(*map != MAP_FAILED);
	}
	return fd;
}

TEST(map_count_checks)
{
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		uint32_t ref = 8;
		CHECK_ERR(gd_map(fd, 1, 0, &ref, &idx), EINVAL);
		struct ioctl_gntdev_map_grant_ref op = { .count = 65537 };
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, &op), EINVAL);
		op.count = UINT32_MAX;
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, &op), EINVAL);
		/* The count is refused before the refs are read. */
		char *edge = edge_buffer(24);
		memcpy(edge, &op, 24);
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, edge), EINVAL);
		op.count = 2; /* a second ref that runs off readable memory */
		memcpy(edge, &op, 24);
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, edge), EFAULT);
		edge_free(edge);
		/* A header shorter than 24 bytes faults even for count 1. */
		edge = edge_buffer(20);
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, edge), EFAULT);
		edge_free(edge);
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, NULL), EFAULT);
		/* 65536 refs in one call is the limit, and accepted. */
		uint32_t *many = calloc(65536, sizeof(*many));
		CHECK_OK(gd_map(fd, 1, 65536, many, &idx));
		CHECK_OK(gd_unmap(fd, idx, 65536));
		free(many);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
}

TEST(map_never_checks_refs_mmap_does)
{
	uint32_t refs[2];
	char *p;
	int ga = share(3, 1, 1, refs, &p); /* granted to domain 3 */
	int ga2 = open_gntalloc();
	uint64_t gi;
	CHECK_OK(ga_alloc(ga2, 2, 1, 1, &gi, refs + 1));
	CHECK_OK(ga_dealloc(ga2, gi, 1)); /* freed */
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		const struct {
			unsigned domid;
			uint32_t ref;
		} bad[] = {
			{ 1, refs[0] },	   /* granted to another domain */
			{ 1, refs[1] },	   /* freed */
			{ 1, 500 },	   /* never used, inside the table */
			{ 1, 1u << 30 },   /* beyond the table */
			{ 9, 8 },	   /* a domain that does not exist */
			{ DOMID_SELF, 8 }, /* DOMID_SELF is not accepted */
			{ 0x7FF4, 8 },	   /* DOMID_INVALID */
		};
		for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			uint64_t idx;
			CHECK_OK(gd_map1(fd, bad[i].domid, bad[i].ref, &idx));
			CHECK_ERR(map_pages(fd, idx, 1, PROT_READ), EINVAL);
			CHECK_OK(gd_unmap(fd, idx, 1));
		}
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
	close(ga2);
}

TEST(index_first_fit_with_the_count_plus_one_rule)
{
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint32_t refs[4] = { 8, 9, 10, 11 };
		uint64_t a, b, c, d, e;
		CHECK_OK(gd_map(fd, 1, 1, refs, &a));
		CHECK_OK(gd_map(fd, 1, 1, refs, &b));
		CHECK_OK(gd_map(fd, 1, 1, refs, &c));
		CHECK_EQ(a, 0);
		CHECK_EQ(b, PAGE);
		CHECK_EQ(c, 2 * PAGE);
		/* maps at [0,1) and [2,3): a one-page hole is not reused */
		CHECK_OK(gd_unmap(fd, b, 1));
		CHECK_OK(gd_map(fd, 1, 1, refs, &d));
		CHECK_EQ(d, 3 * PAGE);
		/* a hole of count + 1 pages is: free [0,1) and the hole is [0,2) */
		CHECK_OK(gd_unmap(fd, a, 1));
		CHECK_OK(gd_map(fd, 1, 1, refs, &e));
		CHECK_EQ(e, 0);
		CHECK_OK(gd_unmap(fd, e, 1));
		/* two pages do not fit a two-page hole */
		CHECK_OK(gd_map(fd, 1, 2, refs, &e));
		CHECK_EQ(e, 4 * PAGE);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
}

TEST(mmap_must_match_a_map_exactly_and_once)
{
	uint32_t refs[2];
	char *p;
	int ga = share(2, 2, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map(fd, 1, 2, refs, &idx));
		CHECK_ERR(map_pages(fd, idx, 1, PROT_READ), EINVAL);	    /* short */
		CHECK_ERR(map_pages(fd, idx, 3, PROT_READ), EINVAL);	    /* long */
		CHECK_ERR(map_pages(fd, idx + PAGE, 1, PROT_READ), EINVAL); /* inside */
		char *q = map_pages(fd, idx, 2, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		CHECK_ERR(map_pages(fd, idx, 2, PROT_READ), EINVAL); /* a second mmap */
		munmap(q, 2 * PAGE);
		CHECK_ERR(map_pages(fd, idx, 2, PROT_READ), EINVAL); /* again after munmap */
		CHECK_OK(gd_unmap(fd, idx, 2));
		/* After UNMAP + MAP it can be mapped again. */
		CHECK_OK(gd_map(fd, 1, 2, refs, &idx));
		q = map_pages(fd, idx, 2, PROT_READ);
		CHECK(q != MAP_FAILED);
		munmap(q, 2 * PAGE);
		CHECK_OK(gd_unmap(fd, idx, 2));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, 2 * PAGE);
	close(ga);
}

TEST(failed_mmap_leaves_the_map_unusable)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 0, refs, &p); /* read-only */
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		CHECK_ERR(map_pages(fd, idx, 1, PROT_READ | PROT_WRITE), EINVAL);
		CHECK_ERR(map_pages(fd, idx, 1, PROT_READ), EINVAL);
		CHECK_OK(gd_unmap(fd, idx, 1));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

TEST(private_mappings)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 1, refs, &p);
	strcpy(p, "shared");
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		CHECK_ERR(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, (off_t)idx),
			  EINVAL);
		/* A read-only private mapping is accepted and sees the page. */
		char *q = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, (off_t)idx);
		CHECK(q != MAP_FAILED);
		CHECK_EQ(strcmp(q, "shared"), 0);
		munmap(q, PAGE);
		CHECK_OK(gd_unmap(fd, idx, 1));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

TEST(read_only_grant_stays_read_only)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 0, refs, &p);
	strcpy(p, "read me");
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		char *q = map_pages(fd, idx, 1, PROT_READ);
		CHECK(q != MAP_FAILED);
		CHECK_EQ(strcmp(q, "read me"), 0);
		/* No route to writing it: mprotect is refused by the kernel. */
		CHECK_ERR(mprotect(q, PAGE, PROT_READ | PROT_WRITE), EACCES);
		munmap(q, PAGE);
		CHECK_OK(gd_unmap(fd, idx, 1));
		/* Nor a writable private copy. */
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		CHECK_ERR(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, (off_t)idx),
			  EINVAL);
		CHECK_OK(gd_unmap(fd, idx, 1));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

TEST(only_the_grantee_can_map)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 1, refs, &p);
	/* The granter itself cannot map a grant it made to another domain. */
	int self = open_gntdev();
	uint64_t idx;
	CHECK_OK(gd_map1(self, 1, refs[0], &idx));
	CHECK_ERR(map_pages(self, idx, 1, PROT_READ), EINVAL);
	close(self);
	/* Nor can a third domain. */
	pid_t pid = tap_fork_domain(3, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		CHECK_ERR(map_pages(fd, idx, 1, PROT_READ), EINVAL);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

TEST(loopback_grant_aliases_both_ways)
{
	uint32_t refs[1];
	char *p;
	int ga = share(1, 1, 1, refs, &p); /* to ourselves */
	int fd = open_gntdev();
	uint64_t idx;
	CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
	char *q = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(q != MAP_FAILED);
	strcpy(p, "one");
	CHECK_EQ(strcmp(q, "one"), 0);
	strcpy(q + 10, "two");
	CHECK_EQ(strcmp(p + 10, "two"), 0);
	munmap(q, PAGE);
	CHECK_OK(gd_unmap(fd, idx, 1));
	close(fd);
	munmap(p, PAGE);
	close(ga);
}

TEST(domid_is_truncated_to_16_bits)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 1, refs, &p);
	strcpy(p, "dom1");
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		/* 65537 reaches the hypervisor as 1. */
		CHECK_OK(gd_map1(fd, 65537, refs[0], &idx));
		char *q = map_pages(fd, idx, 1, PROT_READ);
		CHECK(q != MAP_FAILED);
		CHECK_EQ(strcmp(q, "dom1"), 0);
		munmap(q, PAGE);
		CHECK_OK(gd_unmap(fd, idx, 1));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

TEST(unmap_lookup_rules)
{
	uint32_t refs[2];
	char *p;
	int ga = share(2, 2, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map(fd, 1, 2, refs, &idx));
		CHECK_ERR(gd_unmap(fd, idx + 8 * PAGE, 2), ENOENT); /* bad index */
		CHECK_ERR(gd_unmap(fd, idx, 1), ENOENT);	    /* count mismatch */
		CHECK_ERR(gd_unmap(fd, idx + PAGE, 1), ENOENT);	    /* inside the map */
		CHECK_OK(gd_unmap(fd, idx + 100, 0));		    /* sub-page bits, count 0 */
		CHECK_ERR(gd_unmap(fd, idx, 2), ENOENT);	    /* gone */
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, (void *)8), EFAULT);
		/* UNMAP while mmapped succeeds, and the mapping keeps working. */
		CHECK_OK(gd_map(fd, 1, 2, refs, &idx));
		char *q = map_pages(fd, idx, 2, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		CHECK_OK(gd_unmap(fd, idx, 2));
		strcpy(q + PAGE, "still here");
		munmap(q, 2 * PAGE);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_EQ(strcmp(p + PAGE, "still here"), 0);
	munmap(p, 2 * PAGE);
	close(ga);
}

static int get_offset(int fd, void *vaddr, uint64_t *offset, uint32_t *count)
{
	struct ioctl_gntdev_get_offset_for_vaddr op = { .vaddr = (uintptr_t)vaddr };
	int r = ioctl(fd, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, &op);
	*offset = op.offset;
	*count = op.count;
	return r;
}

TEST(get_offset_for_vaddr)
{
	uint32_t refs[3];
	char *p;
	int ga = share(2, 3, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev(), other = open_gntdev();
		uint64_t i1, i2, off;
		uint32_t cnt;
		CHECK_OK(gd_map(fd, 1, 1, refs, &i1));
		CHECK_OK(gd_map(fd, 1, 3, refs, &i2));
		char *q1 = map_pages(fd, i1, 1, PROT_READ);
		char *q = map_pages(fd, i2, 3, PROT_READ);
		CHECK(q1 != MAP_FAILED && q != MAP_FAILED);
		CHECK_OK(get_offset(fd, q + PAGE + 5, &off, &cnt));
		CHECK_EQ(off, i2);
		CHECK_EQ(cnt, 3);
		/* from another gntdev fd */
		CHECK_OK(get_offset(other, q1, &off, &cnt));
		CHECK_EQ(off, i1);
		CHECK_EQ(cnt, 1);
		/* a split piece still answers for the whole map */
		munmap(q + PAGE, PAGE);
		CHECK_OK(get_offset(fd, q + 2 * PAGE, &off, &cnt));
		CHECK_EQ(off, i2);
		CHECK_EQ(cnt, 3);
		/* and after UNMAP */
		CHECK_OK(gd_unmap(fd, i2, 3));
		CHECK_OK(get_offset(fd, q, &off, &cnt));
		CHECK_EQ(off, i2);
		/* an address that is not a gntdev mapping */
		int local = 0;
		CHECK_ERR(get_offset(fd, &local, &off, &cnt), EINVAL);
		static const char in_data[] = "rodata";
		CHECK_ERR(get_offset(fd, (void *)in_data, &off, &cnt), EINVAL);
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, (void *)8), EFAULT);
		munmap(q, PAGE);
		munmap(q + 2 * PAGE, PAGE);
		munmap(q1, PAGE);
		CHECK_OK(gd_unmap(fd, i1, 1));
		close(fd);
		close(other);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, 3 * PAGE);
	close(ga);
}

TEST(unimplemented_ioctls_enotty)
{
	tap_set_domid(2);
	int fd = open_gntdev();
	struct ioctl_gntdev_set_max_grants smg = { .count = 10 };
	CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_SET_MAX_GRANTS, &smg), ENOTTY);
	char buf[64] = { 0 };
	CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS, buf), ENOTTY);
	CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED, buf), ENOTTY);
	CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_DMABUF_IMP_TO_REFS, buf), ENOTTY);
	CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_DMABUF_IMP_RELEASE, buf), ENOTTY);
	CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, buf), ENOTTY);
	CHECK_ERR(ioctl(fd, 0x4711, buf), ENOTTY);
	CHECK_ERR(read(fd, buf, sizeof(buf)), EINVAL);
	CHECK_ERR(write(fd, buf, sizeof(buf)), EINVAL);
	close(fd);
}

TEST(notify_checks_action_first)
{
	uint32_t refs[2];
	char *p;
	int ga = share(2, 2, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map(fd, 1, 2, refs, &idx));
		CHECK_ERR(gd_notify(fd, idx + 64 * PAGE, 4, 0), EINVAL); /* action before lookup */
		CHECK_ERR(gd_notify(fd, idx + 64 * PAGE, UNMAP_NOTIFY_CLEAR_BYTE, 0), ENOENT);
		CHECK_ERR(gd_notify(fd, idx, UNMAP_NOTIFY_SEND_EVENT, 1),
			  EINVAL); /* unbound port */
		CHECK_OK(gd_notify(fd, idx + PAGE + 7, UNMAP_NOTIFY_CLEAR_BYTE, 0)); /* any byte */
		CHECK_OK(gd_notify(fd, idx, 0, 0));
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_SET_UNMAP_NOTIFY, (void *)8), EFAULT);
		CHECK_OK(gd_unmap(fd, idx, 2));
		/* CLEAR_BYTE on a map known to be read-only. */
		CHECK_OK(gd_map(fd, 1, 2, refs, &idx));
		char *q = map_pages(fd, idx, 2, PROT_READ);
		CHECK(q != MAP_FAILED);
		CHECK_ERR(gd_notify(fd, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0), EINVAL);
		munmap(q, 2 * PAGE);
		CHECK_OK(gd_unmap(fd, idx, 2));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, 2 * PAGE);
	close(ga);
}

TEST(mmap_of_many_refs_from_many_allocations)
{
	enum { N = 40 };
	tap_set_domid(1);
	int ga = open_gntalloc();
	uint32_t refs[N];
	char *pages[N];
	/* One allocation per page: the mapper's VMA is assembled from 40
	 * memfds, more than one message can carry. */
	for (int i = 0; i < N; i++) {
		uint64_t idx;
		CHECK_OK(ga_alloc(ga, 2, 1, 1, &idx, &refs[i]));
		pages[i] = map_pages(ga, idx, 1, PROT_READ | PROT_WRITE);
		CHECK(pages[i] != MAP_FAILED);
		snprintf(pages[i], 16, "page %d", i);
	}
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		/* in reverse order, so that no two neighbours are adjacent */
		uint32_t rev[N];
		for (int i = 0; i < N; i++)
			rev[i] = refs[N - 1 - i];
		CHECK_OK(gd_map(fd, 1, N, rev, &idx));
		char *q = map_pages(fd, idx, N, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		for (int i = 0; i < N; i++) {
			char want[16];
			snprintf(want, sizeof(want), "page %d", N - 1 - i);
			CHECK_EQ(strcmp(q + i * PAGE, want), 0);
		}
		munmap(q, N * PAGE);
		CHECK_OK(gd_unmap(fd, idx, N));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	for (int i = 0; i < N; i++)
		munmap(pages[i], PAGE);
	close(ga);
}

TEST(bad_pointers_never_crash)
{
	tap_set_domid(2);
	int fd = open_gntdev();
	static const unsigned long reqs[] = { IOCTL_GNTDEV_MAP_GRANT_REF,
					      IOCTL_GNTDEV_UNMAP_GRANT_REF,
					      IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR,
					      IOCTL_GNTDEV_SET_UNMAP_NOTIFY };
	for (unsigned i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		CHECK_ERR(ioctl(fd, reqs[i], (void *)1), EFAULT);
		CHECK_ERR(ioctl(fd, reqs[i], (void *)-4096L), EFAULT);
	}
	/* A read-only output buffer: MAP's copy-out faults and the map goes. */
	char *ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ioctl_gntdev_map_grant_ref op = { .count = 1 };
	op.refs[0].domid = 1;
	op.refs[0].ref = 8;
	memcpy(ro, &op, sizeof(op));
	mprotect(ro, PAGE, PROT_READ);
	CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, ro), EFAULT);
	/* So index 0 is free again. */
	uint64_t idx;
	CHECK_OK(gd_map1(fd, 1, 8, &idx));
	CHECK_EQ(idx, 0);
	CHECK_OK(gd_unmap(fd, idx, 1));
	munmap(ro, PAGE);
	close(fd);
}

TEST(get_offset_from_a_hole_below_the_mapping)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx, off;
		uint32_t cnt;
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		/* Place the mapping right above a hole we make ourselves. */
		char *area = mmap(NULL, 3 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *q = mmap(area + 2 * PAGE, PAGE, PROT_READ, MAP_SHARED | MAP_FIXED, fd,
			       (off_t)idx);
		CHECK(q == area + 2 * PAGE); /* MAP_FIXED is allowed (§4.11) */
		munmap(area, 2 * PAGE);
		/* find_vma: the first mapping above the address is ours. */
		CHECK_OK(get_offset(fd, area + 100, &off, &cnt));
		CHECK_EQ(off, idx);
		CHECK_EQ(cnt, 1);
		munmap(q, PAGE);
		CHECK_OK(gd_unmap(fd, idx, 1));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

TEST(failed_notify_drops_its_event_reference)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int ev = open_evtchn(), fd = open_gntdev();
		int port = ev_unbound(ev, 1);
		CHECK(port > 0);
		uint64_t idx;
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		/* SEND_EVENT takes a reference on the port, then the lookup
		 * fails: the reference must go again. */
		CHECK_ERR(gd_notify(fd, idx + 50 * PAGE, UNMAP_NOTIFY_SEND_EVENT, port), ENOENT);
		CHECK_OK(ev_unbind(ev, port));
		/* Nothing holds it: the port is free, the lowest again. */
		CHECK_EQ(ev_unbound(ev, 1), port);
		CHECK_OK(gd_unmap(fd, idx, 1));
		close(fd);
		close(ev);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

TEST(mremap_of_a_grant_mapping)
{
	uint32_t refs[2];
	char *p;
	int ga = share(2, 2, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map(fd, 1, 2, refs, &idx));
		char *q = map_pages(fd, idx, 2, PROT_READ);
		CHECK(q != MAP_FAILED);
		/* VM_DONTEXPAND: it cannot grow. */
		CHECK_ERR(mremap(q, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE), EFAULT);
		/* Shrinking in place is an munmap of the tail. */
		CHECK(mremap(q, 2 * PAGE, PAGE, 0) == q);
		munmap(q, PAGE);
		CHECK_OK(gd_unmap(fd, idx, 2));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, 2 * PAGE);
	close(ga);
}

TEST(mmap_at_the_fd_limit_is_enomem_and_nothing_breaks)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		/* Leave room for one fd only: the mapping's memory and its token
		 * cannot both arrive. */
		struct rlimit rl = { 64, 64 };
		CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
		int fill[64], n = 0;
		while (n < 64 && (fill[n] = open("/dev/null", O_RDONLY)) >= 0)
			n++;
		close(fill[--n]);
		CHECK_ERR(map_pages(fd, idx, 1, PROT_READ), ENOMEM);
		while (n > 0)
			close(fill[--n]);
		/* The map is spent, as after any failed mmap; the file works. */
		CHECK_ERR(map_pages(fd, idx, 1, PROT_READ), EINVAL);
		CHECK_OK(gd_unmap(fd, idx, 1));
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		char *q = map_pages(fd, idx, 1, PROT_READ);
		CHECK(q != MAP_FAILED);
		munmap(q, PAGE);
		CHECK_OK(gd_unmap(fd, idx, 1));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

/* §4.4 step 4: a fault while the refs are read discards the new map, so it
 * holds no index: nothing is listed afterwards and the next map gets 0. */
TEST(map_refs_fault_throws_the_map_away)
{
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		struct ioctl_gntdev_map_grant_ref op = { .count = 3 };
		op.refs[0].domid = 1;
		op.refs[0].ref = 8;
		/* The header and refs[0] are readable, refs[1] is not. */
		char *edge = edge_buffer(sizeof(op));
		memcpy(edge, &op, sizeof(op));
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, edge), EFAULT);
		edge_free(edge);
		/* count 0 matches any map at index 0: there is none. */
		CHECK_ERR(gd_unmap(fd, 0, 0), ENOENT);
		uint64_t idx;
		CHECK_OK(gd_map1(fd, 1, 8, &idx));
		CHECK_EQ(idx, 0);
		/* A kept 3-page map would have pushed this one to page 3 or 4. */
		CHECK_OK(gd_map1(fd, 1, 8, &idx));
		CHECK_EQ(idx, PAGE);
		CHECK_OK(gd_unmap(fd, 0, 1));
		CHECK_OK(gd_unmap(fd, PAGE, 1));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
}

/* §4.4: duplicate refs in one call are fine, and each page of the map is
 * the granted page: the two pages of the mapping alias each other and the
 * granter's page. */
TEST(the_same_ref_twice_maps_one_page_twice)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 1, refs, &p);
	strcpy(p, "granter");
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint32_t twice[2] = { refs[0], refs[0] };
		uint64_t idx;
		CHECK_OK(gd_map(fd, 1, 2, twice, &idx));
		volatile char *q = map_pages(fd, idx, 2, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		CHECK_EQ(strcmp((const char *)q, "granter"), 0);
		CHECK_EQ(strcmp((const char *)q + PAGE, "granter"), 0);
		q[100] = 'a';
		CHECK_EQ(q[PAGE + 100], 'a');
		q[PAGE + 200] = 'b';
		CHECK_EQ(q[200], 'b');
		munmap((void *)q, 2 * PAGE);
		CHECK_OK(gd_unmap(fd, idx, 2));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	/* Both writes reached the one granted page. */
	CHECK_EQ(p[100], 'a');
	CHECK_EQ(p[200], 'b');
	munmap(p, PAGE);
	close(ga);
}

/* §4.5 step 3: UNMAP takes the map off the file's list. Its index can no
 * longer be mmapped (EINVAL: no map there) nor notified (ENOENT), also while
 * an earlier mmap keeps the map itself alive. */
TEST(an_unmapped_map_cannot_be_mmapped_or_notified)
{
	uint32_t refs[2];
	char *p;
	int ga = share(2, 2, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t a, b;
		CHECK_OK(gd_map1(fd, 1, refs[0], &a));
		CHECK_OK(gd_map1(fd, 1, refs[1], &b));
		/* Never mmapped: gone with the UNMAP. */
		CHECK_OK(gd_unmap(fd, a, 1));
		CHECK_ERR(map_pages(fd, a, 1, PROT_READ), EINVAL);
		CHECK_ERR(gd_notify(fd, a, UNMAP_NOTIFY_CLEAR_BYTE, 0), ENOENT);
		/* Mmapped: the mapping keeps the map, but the file no longer
		 * lists it. */
		volatile char *q = map_pages(fd, b, 1, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		CHECK_OK(gd_unmap(fd, b, 1));
		CHECK_ERR(gd_notify(fd, b + 10, UNMAP_NOTIFY_CLEAR_BYTE, 0), ENOENT);
		CHECK_ERR(map_pages(fd, b, 1, PROT_READ), EINVAL);
		q[10] = 'm'; /* the mapping still works */
		munmap((void *)q, PAGE);
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_EQ(p[PAGE + 10], 'm');
	munmap(p, 2 * PAGE);
	close(ga);
}

/* §4.6: the whole struct is written back (EFAULT if it cannot be), and an
 * address with no VMA at or above it is EINVAL. */
TEST(get_offset_write_back_fault_and_nothing_above)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx, off;
		uint32_t cnt;
		CHECK_OK(gd_map1(fd, 1, refs[0], &idx));
		char *q = map_pages(fd, idx, 1, PROT_READ);
		CHECK(q != MAP_FAILED);
		/* A readable but read-only argument naming a good address. */
		struct ioctl_gntdev_get_offset_for_vaddr op = { .vaddr = (uintptr_t)q };
		char *ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
				0);
		CHECK(ro != MAP_FAILED);
		memcpy(ro, &op, sizeof(op));
		CHECK_OK(mprotect(ro, PAGE, PROT_READ));
		CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, ro), EFAULT);
		/* The same request in writable memory is answered. */
		CHECK_OK(ioctl(fd, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, &op));
		CHECK_EQ(op.offset, idx);
		CHECK_EQ(op.count, 1);
		munmap(ro, PAGE);
		/* Above every VMA of the process (the top user page, and the
		 * vsyscall address, which is no VMA): find_vma finds nothing. */
		CHECK_ERR(get_offset(fd, (void *)(uintptr_t)0x7ffffffff000ull, &off, &cnt), EINVAL);
		CHECK_ERR(get_offset(fd, (void *)(uintptr_t)0xffffffffff600000ull, &off, &cnt),
			  EINVAL);
		munmap(q, PAGE);
		CHECK_OK(gd_unmap(fd, idx, 1));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

/* §1.4: the VFS checks an mmap before the driver sees it, so they leave the
 * map unspent (a failed driver mmap would spend it, §4.11 step 7). */
TEST(mmap_vfs_checks_come_before_the_driver)
{
	uint32_t refs[1];
	char *p;
	int ga = share(2, 1, 1, refs, &p);
	strcpy(p, "vfs");
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int rd = open("/dev/xen/gntdev", O_RDONLY | O_CLOEXEC);
		CHECK(rd >= 0);
		uint64_t idx;
		CHECK_OK(gd_map1(rd, 1, refs[0], &idx));
		/* MAP_SHARED + PROT_WRITE needs a writable open. */
		CHECK_ERR(map_pages(rd, idx, 1, PROT_READ | PROT_WRITE), EACCES);
		CHECK_ERR(mmap(NULL, 0, PROT_READ, MAP_SHARED, rd, (off_t)idx), EINVAL);
		CHECK_ERR(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, rd, (off_t)idx + 100), EINVAL);
		/* None of them reached the driver: the map mmaps once now. */
		char *q = map_pages(rd, idx, 1, PROT_READ);
		CHECK(q != MAP_FAILED);
		CHECK_EQ(strcmp(q, "vfs"), 0);
		munmap(q, PAGE);
		CHECK_OK(gd_unmap(rd, idx, 1));
		close(rd);
		/* An fd opened write-only cannot be mmapped at all. */
		int wr = open("/dev/xen/gntdev", O_WRONLY | O_CLOEXEC);
		CHECK(wr >= 0);
		CHECK_OK(gd_map1(wr, 1, refs[0], &idx));
		CHECK_ERR(map_pages(wr, idx, 1, PROT_WRITE), EACCES);
		CHECK_ERR(map_pages(wr, idx, 1, PROT_READ), EACCES);
		CHECK_OK(gd_unmap(wr, idx, 1));
		close(wr);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	munmap(p, PAGE);
	close(ga);
}

/* §4.12 / §12: after a partial munmap the map is still in use: mmapping it
 * again is EINVAL, before and after the rest goes; the rest keeps working. */
TEST(no_second_mmap_after_a_partial_munmap)
{
	uint32_t refs[2];
	char *p;
	int ga = share(2, 2, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map(fd, 1, 2, refs, &idx));
		char *q = map_pages(fd, idx, 2, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		CHECK_OK(munmap(q + PAGE, PAGE));
		CHECK_ERR(map_pages(fd, idx, 2, PROT_READ), EINVAL);
		CHECK_ERR(map_pages(fd, idx, 2, PROT_READ | PROT_WRITE), EINVAL);
		q[3] = 'r'; /* the first page is still the grant */
		CHECK_OK(munmap(q, PAGE));
		CHECK_ERR(map_pages(fd, idx, 2, PROT_READ), EINVAL);
		CHECK_OK(gd_unmap(fd, idx, 2));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_EQ(p[3], 'r');
	munmap(p, 2 * PAGE);
	close(ga);
}

/* Where granted differs on purpose (ARCHITECTURE.md, "Where granted differs
 * from Xen"): a grant mapping is never moved. MREMAP_FIXED is EINVAL (Linux
 * would move it); MREMAP_DONTUNMAP is EINVAL as on Linux (VM_DONTEXPAND).
 * The mapping stays where it was and keeps working. */
TEST(mremap_never_moves_a_grant_mapping)
{
	uint32_t refs[2];
	char *p;
	int ga = share(2, 2, 1, refs, &p);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map(fd, 1, 2, refs, &idx));
		char *q = map_pages(fd, idx, 2, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		char *target = mmap(NULL, 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(target != MAP_FAILED);
		CHECK_ERR(mremap(q, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, target),
			  EINVAL);
		CHECK_ERR(mremap(q, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP), EINVAL);
		/* Still at q, still the granter's pages; the target untouched. */
		q[5] = 'm';
		q[PAGE + 5] = 'n';
		munmap(target, 2 * PAGE);
		munmap(q, 2 * PAGE);
		CHECK_OK(gd_unmap(fd, idx, 2));
		close(fd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_EQ(p[5], 'm');
	CHECK_EQ(p[PAGE + 5], 'n');
	munmap(p, 2 * PAGE);
	close(ga);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
