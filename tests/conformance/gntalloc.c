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
	/* The header fits, the third ref does not: the driver copies the
	 * header back, fails on the refs, and keeps the pages. */
	char *edge = edge_buffer(24);
	struct ioctl_gntalloc_alloc_gref op = { .domid = 2, .flags = 1, .count = 3 };
	memcpy(edge, &op, sizeof(op));
	CHECK_ERR(ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, edge), EFAULT);
	memcpy(&op, edge, sizeof(op));
	CHECK_EQ(op.index, 0);
	edge_free(edge);
	uint64_t idx;
	uint32_t *refs = malloc(1024 * 4);
	/* 3 pages are still counted, and mappable at index 0. */
	CHECK_ERR(ga_alloc(fd, 2, 1, 1022, &idx, refs), ENOSPC);
	CHECK_OK(ga_alloc(fd, 2, 1, 1021, &idx, refs));
	CHECK_EQ(idx, 3 * PAGE);
	void *p = map_pages(fd, 0, 3, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	munmap(p, 3 * PAGE);
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

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
