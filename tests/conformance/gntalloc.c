/*
 * /dev/xen/gntalloc, check by check: ABI.md §3 and the observations of §11.
 * Domain 1 grants; domain 2 (another process) is the grantee.
 */
#include "kabi.h"

#include <signal.h>

TEST(alloc_refs_from_8_and_indexes_per_file)
{
	tap_set_domid(1);
	int a = open_gntalloc(), b = open_gntalloc();
	uint64_t ia, ib;
	uint32_t refs[3];
	CHECK_OK(ga_alloc(a, 2, 1, 2, &ia, refs));
	CHECK_EQ(ia, 0);
	CHECK_EQ(refs[0], 8);
	CHECK_EQ(refs[1], 9);
	/* Offsets are per file; refs are per domain. */
	CHECK_OK(ga_alloc(b, 2, 1, 1, &ib, refs));
	CHECK_EQ(ib, 0);
	CHECK_EQ(refs[0], 10);
	CHECK_OK(ga_alloc(a, 2, 1, 3, &ia, refs));
	CHECK_EQ(ia, 2 * PAGE);
	CHECK_OK(ga_alloc(a, 2, 1, 1, &ia, refs));
	CHECK_EQ(ia, 5 * PAGE);
	close(a);
	close(b);
}

TEST(alloc_count_zero_returns_the_next_index)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx = 77;
	CHECK_OK(ga_alloc(fd, 2, 1, 0, &idx, NULL));
	CHECK_EQ(idx, 0);
	uint32_t ref;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
	CHECK_EQ(idx, 0);
	CHECK_OK(ga_alloc(fd, 2, 1, 0, &idx, NULL));
	CHECK_EQ(idx, PAGE);
	close(fd);
}

TEST(alloc_index_never_reused_refs_reused_lifo)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t i1, i2, i3;
	uint32_t r1[2], r2, r3;
	CHECK_OK(ga_alloc(fd, 2, 1, 2, &i1, r1));
	CHECK_OK(ga_dealloc(fd, i1, 2));
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &i2, &r2));
	/* The index space only grows; freed refs come back last-in first-out. */
	CHECK_EQ(i2, 2 * PAGE);
	CHECK_EQ(r2, r1[1]);
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &i3, &r3));
	CHECK_EQ(i3, 3 * PAGE);
	CHECK_EQ(r3, r1[0]);
	close(fd);
}

TEST(alloc_limit_is_per_domain_enospc)
{
	tap_set_domid(1);
	int a = open_gntalloc(), b = open_gntalloc();
	uint64_t idx;
	/* Refused whole, before anything is allocated. */
	CHECK_ERR(ga_alloc(a, 2, 1, 1025, &idx, NULL), ENOSPC);
	uint32_t *refs = malloc(1024 * sizeof(*refs));
	CHECK_OK(ga_alloc(a, 2, 1, 1000, &idx, refs));
	CHECK_OK(ga_alloc(b, 2, 1, 24, &idx, refs));
	CHECK_ERR(ga_alloc(b, 2, 1, 1, &idx, refs), ENOSPC);
	/* Another process of the same domain shares the limit. */
	pid_t pid = tap_fork_domain(1, NULL);
	if (pid == 0) {
		int c = open_gntalloc();
		CHECK_ERR(ga_alloc(c, 2, 1, 1, &idx, refs), ENOSPC);
		close(c);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	/* ...and another domain does not. */
	pid = tap_fork_domain(3, NULL);
	if (pid == 0) {
		int c = open_gntalloc();
		CHECK_OK(ga_alloc(c, 2, 1, 1024, &idx, refs));
		close(c);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_OK(ga_dealloc(b, 0, 24));
	CHECK_OK(ga_alloc(a, 2, 1, 24, &idx, refs));
	free(refs);
	close(a);
	close(b);
}

TEST(alloc_flags_and_grantees_are_not_checked)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(fd, 2, 0xfffe, 1, &idx, &ref)); /* unknown flag bits */
	CHECK_OK(ga_alloc(fd, 4000, 1, 1, &idx, &ref));	  /* no such domain */
	CHECK_OK(ga_alloc(fd, 1, 1, 1, &idx, &ref));	  /* ourselves */
	CHECK_OK(ga_alloc(fd, 0x7FF5, 1, 1, &idx, &ref)); /* a reserved id */
	close(fd);
}

TEST(alloc_bad_pointers_efault)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, NULL), EFAULT);
	CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, (void *)16), EFAULT);
	/* A header that runs off the end of readable memory. */
	char *edge = edge_buffer(20);
	CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, edge), EFAULT);
	edge_free(edge);
	CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_DEALLOC_GREF, (void *)8), EFAULT);
	CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, (void *)8), EFAULT);
	close(fd);
}

TEST(alloc_copy_out_efault_keeps_the_grants)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t *refs = malloc(1024 * 4);
	/* Two pages first, so that the index the driver writes back (2·PAGE)
	 * differs from both 0 and the garbage we put in. */
	CHECK_OK(ga_alloc(fd, 2, 1, 2, &idx, refs));
	CHECK_EQ(idx, 0);
	/* The header fits, the third ref does not: the driver copies the
	 * header back, fails on the refs, and keeps the pages. */
	char *edge = edge_buffer(24);
	struct ioctl_gntalloc_alloc_gref op = {
		.domid = 2, .flags = 1, .count = 3, .index = 0x5a5a5a5a
	};
	memcpy(edge, &op, sizeof(op));
	CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, edge), EFAULT);
	memcpy(&op, edge, sizeof(op));
	CHECK_EQ(op.index, 2 * PAGE);
	CHECK_EQ(op.count, 3);
	edge_free(edge);
	/* The header itself cannot be written back (a read-only argument):
	 * EFAULT, and that page stays allocated too. */
	char *ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro != MAP_FAILED);
	op = (struct ioctl_gntalloc_alloc_gref){ .domid = 2, .flags = 1, .count = 1 };
	memcpy(ro, &op, sizeof(op));
	CHECK_OK(mprotect(ro, PAGE, PROT_READ));
	CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, ro), EFAULT);
	munmap(ro, PAGE);
	/* 2 + 3 + 1 pages are still counted, and the faulted ones mappable
	 * at their indexes. */
	CHECK_ERR(ga_alloc(fd, 2, 1, 1019, &idx, refs), ENOSPC);
	CHECK_OK(ga_alloc(fd, 2, 1, 1018, &idx, refs));
	CHECK_EQ(idx, 6 * PAGE);
	void *p = map_pages(fd, 2 * PAGE, 4, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	munmap(p, 4 * PAGE);
	/* Owned by the file: its release frees them all (another file of
	 * the domain can then take the whole limit). */
	close(fd);
	fd = open_gntalloc();
	CHECK_OK(ga_alloc(fd, 2, 1, 1024, &idx, refs));
	CHECK_EQ(idx, 0);
	free(refs);
	close(fd);
}

TEST(mmap_needs_map_shared)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
	CHECK_ERR(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), EINVAL);
	CHECK_ERR(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0), EINVAL);
	close(fd);
}

TEST(mmap_lookup_errors_enoent)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t refs[3];
	CHECK_OK(ga_alloc(fd, 2, 1, 3, &idx, refs));
	CHECK_ERR(map_pages(fd, 5 * PAGE, 1, PROT_READ), ENOENT); /* never allocated */
	CHECK_ERR(map_pages(fd, 2 * PAGE, 2, PROT_READ), ENOENT); /* past the end */
	CHECK_OK(ga_dealloc(fd, PAGE, 1));
	CHECK_ERR(map_pages(fd, 0, 3, PROT_READ), ENOENT);    /* a hole */
	CHECK_ERR(map_pages(fd, PAGE, 1, PROT_READ), ENOENT); /* deallocated */
	/* Another file's pages are not ours. */
	int other = open_gntalloc();
	CHECK_ERR(map_pages(other, 0, 1, PROT_READ), ENOENT);
	close(other);
	close(fd);
}

TEST(mmap_vfs_checks)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
	CHECK_ERR(mmap(NULL, 0, PROT_READ, MAP_SHARED, fd, 0), EINVAL);
	CHECK_ERR(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 100), EINVAL);
	close(fd);
	/* Opened read-only: no writable shared mapping. */
	int ro = open("/dev/xen/gntalloc", O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0);
	CHECK_OK(ga_alloc(ro, 2, 1, 1, &idx, &ref));
	CHECK_ERR(map_pages(ro, idx, 1, PROT_READ | PROT_WRITE), EACCES);
	void *p = map_pages(ro, idx, 1, PROT_READ);
	CHECK(p != MAP_FAILED);
	munmap(p, PAGE);
	close(ro);
}

TEST(mmap_subranges_spans_and_aliases)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t i1, i2;
	uint32_t refs[4];
	CHECK_OK(ga_alloc(fd, 2, 0, 3, &i1, refs)); /* read-only for the grantee */
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &i2, refs + 3));
	/* The owner writes whatever the grant says. */
	char *all = map_pages(fd, 0, 4, PROT_READ | PROT_WRITE);
	CHECK(all != MAP_FAILED);
	char *mid = map_pages(fd, PAGE, 1, PROT_READ | PROT_WRITE);
	char *span = map_pages(fd, 2 * PAGE, 2, PROT_READ | PROT_WRITE); /* two allocations */
	char *again = map_pages(fd, 0, 4, PROT_READ);
	CHECK(mid != MAP_FAILED && span != MAP_FAILED && again != MAP_FAILED);
	/* Fresh pages are zero; every mapping aliases the same pages. */
	CHECK_EQ(all[0] | all[PAGE] | all[3 * PAGE + 100], 0);
	strcpy(mid, "middle");
	strcpy(span + PAGE + 10, "last");
	CHECK_EQ(strcmp(all + PAGE, "middle"), 0);
	CHECK_EQ(strcmp(again + 3 * PAGE + 10, "last"), 0);
	munmap(all, 4 * PAGE);
	munmap(mid, PAGE);
	munmap(span, 2 * PAGE);
	munmap(again, 4 * PAGE);
	close(fd);
}

TEST(dealloc_errors_einval)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t refs[4];
	CHECK_OK(ga_alloc(fd, 2, 1, 3, &idx, refs));
	CHECK_ERR(ga_dealloc(fd, 9 * PAGE, 1), EINVAL); /* bad index */
	CHECK_ERR(ga_dealloc(fd, 0, 0), EINVAL);	/* count 0 */
	CHECK_ERR(ga_dealloc(fd, PAGE, 3), EINVAL);	/* past the end */
	CHECK_ERR(ga_dealloc(fd, 100, 1), EINVAL);	/* not a page start */
	CHECK_OK(ga_dealloc(fd, PAGE, 1));		/* a sub-range */
	CHECK_ERR(ga_dealloc(fd, PAGE, 1), EINVAL);	/* twice */
	CHECK_ERR(ga_dealloc(fd, 0, 3), EINVAL);	/* across a hole */
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, refs + 3));
	CHECK_OK(ga_dealloc(fd, 2 * PAGE, 2)); /* across two allocations */
	CHECK_OK(ga_dealloc(fd, 0, 1));
	close(fd);
}

TEST(notify_lookup_before_action)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
	CHECK_ERR(ga_notify(fd, 4 * PAGE, UNMAP_NOTIFY_CLEAR_BYTE, 0), ENOENT);
	CHECK_ERR(ga_notify(fd, 4 * PAGE, 8, 0), ENOENT); /* bad index wins over bad action */
	CHECK_ERR(ga_notify(fd, 10, 8, 0), EINVAL);
	CHECK_ERR(ga_notify(fd, 10, UNMAP_NOTIFY_SEND_EVENT, 1), EINVAL); /* port not bound */
	CHECK_OK(ga_notify(fd, 10, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	CHECK_OK(ga_notify(fd, 10, 0, 0)); /* action 0 clears it */
	CHECK_OK(ga_dealloc(fd, 0, 1));
	CHECK_ERR(ga_notify(fd, 10, UNMAP_NOTIFY_CLEAR_BYTE, 0), ENOENT);
	close(fd);
}

TEST(unknown_ioctls_and_read_write)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	char buf[8] = { 0 };
	CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, buf), ENOTTY);
	CHECK_ERR(ioctl(fd, _IOC(_IOC_NONE, 'G', 5, 20), buf), ENOTTY); /* the 32-bit number */
	CHECK_ERR(ioctl(fd, 0x1234, buf), ENOTTY);
	CHECK_ERR(read(fd, buf, sizeof(buf)), EINVAL);
	CHECK_ERR(write(fd, buf, sizeof(buf)), EINVAL);
	close(fd);
}

TEST(grantee_sees_data_both_ways)
{
	struct tap_link l;
	tap_link_init(&l);
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(fd, 2, GNTALLOC_FLAG_WRITABLE, 1, &idx, &ref));
	char *p = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	strcpy(p, "from dom1");
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int g = open_gntdev();
		uint64_t gi;
		CHECK_OK(gd_map1(g, 1, ref, &gi));
		char *q = map_pages(g, gi, 1, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		CHECK_EQ(strcmp(q, "from dom1"), 0);
		strcpy(q + 100, "from dom2");
		tap_send(&l, 1);
		tap_recv(&l);
		munmap(q, PAGE);
		CHECK_OK(gd_unmap(g, gi, 1));
		close(g);
		tap_child_exit();
	}
	tap_recv(&l);
	CHECK_EQ(strcmp(p + 100, "from dom2"), 0);
	tap_send(&l, 1);
	tap_wait_ok(pid);
	tap_link_close(&l);
	munmap(p, PAGE);
	close(fd);
}

TEST(a_page_still_mapped_by_the_grantee_leaves_the_limit_at_once)
{
	/* Since Linux 5.17 (XSA-396): a gref whose owner let go leaves the
	 * 1024-page accounting at once, even while the grantee maps it. */
	struct tap_link l;
	tap_link_init(&l);
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t *refs = malloc(1024 * 4);
	CHECK_OK(ga_alloc(fd, 2, 1, 1024, &idx, refs));
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int g = open_gntdev();
		uint64_t gi;
		CHECK_OK(gd_map1(g, 1, refs[0], &gi));
		char *q = map_pages(g, gi, 1, PROT_READ);
		CHECK(q != MAP_FAILED);
		tap_send(&l, 0);
		tap_recv(&l);
		munmap(q, PAGE);
		close(g);
		tap_child_exit();
	}
	tap_recv(&l);
	CHECK_ERR(ga_alloc(fd, 2, 1, 1, &idx, refs), ENOSPC);
	CHECK_OK(ga_dealloc(fd, 0, 1)); /* still mapped by domain 2 */
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, refs));
	tap_send(&l, 0);
	tap_wait_ok(pid);
	tap_link_close(&l);
	free(refs);
	close(fd);
}

TEST(alloc_only_flag_bit_0_decides_writability)
{
	/* ABI.md §3.3: the driver looks at bit 0 alone. Every other bit set
	 * (0xfffe) must still give the grantee a read-only grant, and 0xffff a
	 * writable one. The grantee is another process of domain 2. */
	struct tap_link l;
	tap_link_init(&l);
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t i_ro, i_rw;
	uint32_t r_ro, r_rw;
	CHECK_OK(ga_alloc(fd, 2, 0xfffe, 1, &i_ro, &r_ro));
	CHECK_OK(ga_alloc(fd, 2, 0xffff, 1, &i_rw, &r_rw));
	char *ro = map_pages(fd, i_ro, 1, PROT_READ | PROT_WRITE);
	char *rw = map_pages(fd, i_rw, 1, PROT_READ | PROT_WRITE);
	CHECK(ro != MAP_FAILED && rw != MAP_FAILED);
	strcpy(ro, "granter");
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int g = open_gntdev();
		uint64_t a, b;
		CHECK_OK(gd_map1(g, 1, r_ro, &a));
		CHECK_ERR(map_pages(g, a, 1, PROT_READ | PROT_WRITE), EINVAL);
		/* A failed mmap leaves the map unusable: map the ref again. */
		CHECK_OK(gd_unmap(g, a, 1));
		CHECK_OK(gd_map1(g, 1, r_ro, &a));
		char *q = map_pages(g, a, 1, PROT_READ);
		CHECK(q != MAP_FAILED);
		CHECK_EQ(strcmp(q, "granter"), 0);
		CHECK_OK(gd_map1(g, 1, r_rw, &b));
		char *w = map_pages(g, b, 1, PROT_READ | PROT_WRITE);
		CHECK(w != MAP_FAILED);
		strcpy(w, "grantee");
		tap_send(&l, 1);
		tap_recv(&l);
		munmap(q, PAGE);
		munmap(w, PAGE);
		close(g);
		tap_child_exit();
	}
	tap_recv(&l);
	CHECK_EQ(strcmp(rw, "grantee"), 0);
	tap_send(&l, 1);
	tap_wait_ok(pid);
	tap_link_close(&l);
	munmap(ro, PAGE);
	munmap(rw, PAGE);
	close(fd);
}

TEST(alloc_huge_counts_enospc_before_anything)
{
	/* ABI.md §11: current kernels compare the count with the limit before
	 * they allocate anything, so even UINT32_MAX is ENOSPC (not ENOMEM,
	 * not an overflow that lets it through). Only the 24-byte header is
	 * readable: the refs array is never touched. */
	tap_set_domid(1);
	int fd = open_gntalloc();
	static const uint32_t counts[] = { UINT32_MAX,	   0x80000000u, 0xfffffc00u,
					   (1u << 24) + 1, 1u << 24,	1025 };
	char *edge = edge_buffer(sizeof(struct ioctl_gntalloc_alloc_gref));
	for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct ioctl_gntalloc_alloc_gref op = {
			.domid = 2, .flags = 1, .count = counts[i], .index = 0x5a5a
		};
		memcpy(edge, &op, sizeof(op));
		CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, edge), ENOSPC);
		memcpy(&op, edge, sizeof(op));
		CHECK_EQ(op.index, 0x5a5a); /* nothing written back */
	}
	edge_free(edge);
	/* Nothing allocated, no index used: the whole limit is still there,
	 * from index 0. */
	uint64_t idx;
	CHECK_OK(ga_alloc(fd, 2, 1, 0, &idx, NULL));
	CHECK_EQ(idx, 0);
	uint32_t *refs = malloc(1024 * 4);
	CHECK_OK(ga_alloc(fd, 2, 1, 1024, &idx, refs));
	CHECK_EQ(idx, 0);
	free(refs);
	close(fd);
}

TEST_TIMEOUT(grant_table_full_enospc_uses_up_the_index_and_gives_the_pages_back, 60)
{
	/*
	 * ABI.md §3.3 step 5: when granting fails part-way (the domain's grant
	 * table is full: 32768 entries, refs 8..32767), the call is ENOSPC,
	 * the pages it had granted are released, the page count is restored
	 * and the index range stays used up. To fill the table past the
	 * 1024-page limit, domain 2 keeps every page mapped while domain 1
	 * deallocates it: the grant's end is deferred (the ref stays taken)
	 * but the page leaves the limit at once (§3.8).
	 */
	enum { ROUNDS = 31, N = 1024, USABLE = 32768 - 8 };
	/* Grants that earlier tests' grantees mapped end about a second after
	 * those processes went: let them, so the whole table is free. */
	usleep(1500 * 1000);
	tap_set_domid(1);
	int fd = open_gntalloc();
	tap_set_domid(2);
	int g = open_gntdev();
	uint32_t *refs = malloc(N * 4);
	void *views[ROUNDS];
	uint64_t gidx[ROUNDS], idx;
	for (int i = 0; i < ROUNDS; i++) {
		CHECK_OK(ga_alloc(fd, 2, 0, N, &idx, refs));
		CHECK_EQ(idx, (uint64_t)i * N * PAGE);
		CHECK_OK(gd_map(g, 1, N, refs, &gidx[i]));
		views[i] = map_pages(g, gidx[i], N, PROT_READ);
		CHECK(views[i] != MAP_FAILED);
		CHECK_OK(ga_dealloc(fd, idx, N));
	}
	/* USABLE - 31·1024 = 1016 refs are left: a call of 1024 fails. */
	CHECK_ERR(ga_alloc(fd, 2, 0, N, &idx, refs), ENOSPC);
	/* Its index range is used up... */
	CHECK_OK(ga_alloc(fd, 2, 0, 0, &idx, NULL));
	CHECK_EQ(idx, (uint64_t)(ROUNDS + 1) * N * PAGE);
	/* ...its refs came back (all 1016 can be taken) and its pages are not
	 * counted (1016 more pages fit the limit). */
	const uint32_t left = USABLE - ROUNDS * N;
	CHECK_OK(ga_alloc(fd, 2, 0, left, &idx, refs));
	CHECK_EQ(idx, (uint64_t)(ROUNDS + 1) * N * PAGE);
	/* The table is now really full; 1017 pages would still fit the
	 * limit, so this ENOSPC is the table's. */
	CHECK_ERR(ga_alloc(fd, 2, 0, 1, &idx, refs), ENOSPC);
	/* The grantee lets go; about a second later the deferred ends free
	 * the refs, and the whole limit must be there again. */
	for (int i = 0; i < ROUNDS; i++) {
		munmap(views[i], (size_t)N * PAGE);
		CHECK_OK(gd_unmap(g, gidx[i], N));
	}
	CHECK_OK(ga_dealloc(fd, (uint64_t)(ROUNDS + 1) * N * PAGE, left));
	double t0 = tap_now_ms();
	int r;
	while ((r = ga_alloc(fd, 2, 0, N, &idx, refs)) < 0 && errno == ENOSPC &&
	       tap_now_ms() - t0 < 10000)
		usleep(50 * 1000);
	CHECK_OK(r);
	free(refs);
	close(g);
	close(fd);
}

TEST(another_files_index_dealloc_einval_notify_enoent)
{
	/* ABI.md §3.4/§3.5: DEALLOC and SET_UNMAP_NOTIFY look in the calling
	 * file's own list only. An index that exists only in another file is
	 * EINVAL for DEALLOC and ENOENT for the notify, whether that file is in
	 * this process or another process of the same domain. */
	tap_set_domid(1);
	int a = open_gntalloc(), b = open_gntalloc();
	uint64_t idx;
	uint32_t refs[3];
	CHECK_OK(ga_alloc(a, 2, 1, 3, &idx, refs)); /* a: [0, 3·PAGE) */
	CHECK_OK(ga_alloc(b, 2, 1, 1, &idx, refs)); /* b: [0, PAGE) */
	CHECK_ERR(ga_dealloc(b, PAGE, 1), EINVAL);
	CHECK_ERR(ga_dealloc(b, 0, 2), EINVAL); /* a's second page does not count */
	CHECK_ERR(ga_notify(b, PAGE + 10, UNMAP_NOTIFY_CLEAR_BYTE, 0), ENOENT);
	CHECK_ERR(ga_notify(b, 2 * PAGE, 0, 0), ENOENT);
	pid_t pid = tap_fork_domain(1, NULL);
	if (pid == 0) {
		int c = open_gntalloc();
		CHECK_ERR(ga_dealloc(c, 0, 1), EINVAL);
		CHECK_ERR(ga_dealloc(c, 2 * PAGE, 1), EINVAL);
		CHECK_ERR(ga_notify(c, 10, UNMAP_NOTIFY_CLEAR_BYTE, 0), ENOENT);
		close(c);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	/* Nothing was taken from a: all three pages are still there. */
	CHECK_OK(ga_notify(a, PAGE + 10, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	CHECK_OK(ga_dealloc(a, 0, 3));
	CHECK_OK(ga_dealloc(b, 0, 1));
	close(a);
	close(b);
}

TEST(notify_looks_up_the_page_before_the_event_reference)
{
	/* ABI.md §3.5: lookup (step 2) comes before the event reference
	 * (step 4). A bad index with an unusable port is ENOENT; the same
	 * port on a good index is EINVAL. (gntdev does it the other way
	 * round: notify.c.) */
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
	static const unsigned bad_ports[] = { 0, 1000, 100000, UINT32_MAX };
	for (unsigned i = 0; i < 4; i++) {
		CHECK_ERR(ga_notify(fd, 7 * PAGE, UNMAP_NOTIFY_SEND_EVENT, bad_ports[i]), ENOENT);
		CHECK_ERR(ga_notify(fd, 7 * PAGE + 3,
				    UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
				    bad_ports[i]),
			  ENOENT);
		CHECK_ERR(ga_notify(fd, 3, UNMAP_NOTIFY_SEND_EVENT, bad_ports[i]), EINVAL);
	}
	/* The bad action is still checked before the port. */
	CHECK_ERR(ga_notify(fd, 3, 8 | UNMAP_NOTIFY_SEND_EVENT, 1000), EINVAL);
	CHECK_OK(ga_dealloc(fd, 0, 1));
	close(fd);
}

/* The VmFlags of the VMA containing p, from /proc/self/smaps. */
static int vma_flags(const void *p, char *out, size_t n)
{
	FILE *fp = fopen("/proc/self/smaps", "re");
	char line[512];
	int in = 0, found = -1;
	CHECK(fp != NULL);
	while (fgets(line, sizeof(line), fp)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) { /* a VMA's header line */
			in = (uintptr_t)p >= s && (uintptr_t)p < e;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, n, "%s", line + 8);
			found = 0;
			break;
		}
	}
	fclose(fp);
	return found;
}

static int has_vm_flag(const void *p, const char *flag)
{
	char flags[512], *save = NULL;
	CHECK_OK(vma_flags(p, flags, sizeof(flags)));
	for (char *t = strtok_r(flags, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
		if (strcmp(t, flag) == 0)
			return 1;
	return 0;
}

TEST(mappings_are_dontexpand_and_dontdump)
{
	/* ABI.md §3.6/§4.11: both drivers mark their VMAs DONTEXPAND (mremap
	 * cannot grow them: EFAULT) and DONTDUMP (no core dump holds another
	 * domain's pages: "dd" in smaps), and gntalloc not DONTCOPY. */
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t refs[2];
	CHECK_OK(ga_alloc(fd, 2, 1, 2, &idx, refs));
	char *p = map_pages(fd, idx, 2, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	CHECK(has_vm_flag(p, "dd"));
	CHECK(has_vm_flag(p + PAGE, "dd"));
	CHECK(!has_vm_flag(p, "dc"));
	CHECK_ERR(mremap(p, 2 * PAGE, 3 * PAGE, 0), EFAULT);
	CHECK_ERR(mremap(p, 2 * PAGE, 3 * PAGE, MREMAP_MAYMOVE), EFAULT);
	/* Still whole and working. */
	p[PAGE] = 'a';
	CHECK_EQ(p[PAGE], 'a');
	/* The grantee's gntdev mapping, read-only and writable. */
	tap_set_domid(2);
	int g = open_gntdev();
	uint64_t gi, gj;
	CHECK_OK(gd_map(g, 1, 2, refs, &gi));
	char *q = map_pages(g, gi, 2, PROT_READ);
	CHECK(q != MAP_FAILED);
	CHECK(has_vm_flag(q, "dd"));
	CHECK_EQ(q[PAGE], 'a');
	CHECK_OK(gd_map1(g, 1, refs[0], &gj));
	char *w = map_pages(g, gj, 1, PROT_READ | PROT_WRITE);
	CHECK(w != MAP_FAILED);
	CHECK(has_vm_flag(w, "dd"));
	CHECK_ERR(mremap(w, PAGE, 2 * PAGE, MREMAP_MAYMOVE), EFAULT);
	munmap(w, PAGE);
	munmap(q, 2 * PAGE);
	CHECK_OK(gd_unmap(g, gi, 2));
	CHECK_OK(gd_unmap(g, gj, 1));
	close(g);
	/* An ordinary mapping is not marked: the check can fail. */
	char *anon = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(anon != MAP_FAILED);
	CHECK(!has_vm_flag(anon, "dd"));
	munmap(anon, PAGE);
	munmap(p, 2 * PAGE);
	close(fd);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
