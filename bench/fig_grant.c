/*
 * Figures 1 and 2: sharing a page (gntalloc) and mapping one (gntdev),
 * beside a bare memfd mmap cycle and a unix-socket round trip carrying an
 * fd, which is what granted builds them from.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BIG 256u /* pages of the large map cycle */

/* ---- primitives ----------------------------------------------------------- */

/* memfd_create + ftruncate + mmap + touch + munmap + close, `pages` pages. */
static int op_memfd_full(void *ctx)
{
	unsigned pages = *(unsigned *)ctx;
	size_t len = (size_t)pages * PAGE;
	int fd = (int)syscall(SYS_memfd_create, "bench", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (syscall(SYS_ftruncate, fd, (long)len) < 0) {
		r = -errno;
	} else {
		char *p = raw_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			r = -errno;
		} else {
			for (unsigned i = 0; i < pages; i++)
				((volatile char *)p)[(size_t)i * PAGE] = 1;
			raw_munmap(p, len);
		}
	}
	raw_close(fd);
	return r;
}

/* mmap + touch one byte per page + munmap of an existing memfd. */
struct memfd_map {
	int fd;
	unsigned pages;
	int flags; /* MAP_POPULATE, as granted's own mmap does, or 0 */
};

static int memfd_map_init(struct memfd_map *m, unsigned pages)
{
	m->pages = pages;
	m->flags = 0;
	m->fd = (int)syscall(SYS_memfd_create, "bench", MFD_CLOEXEC);
	if (m->fd < 0)
		return -errno;
	if (syscall(SYS_ftruncate, m->fd, (long)pages * PAGE) < 0)
		return -errno;
	return 0;
}

static int op_memfd_map(void *ctx)
{
	struct memfd_map *m = ctx;
	size_t len = (size_t)m->pages * PAGE;
	char *p = raw_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | m->flags, m->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	for (unsigned i = 0; i < m->pages; i++)
		((volatile char *)p)[(size_t)i * PAGE] = (char)i;
	raw_munmap(p, len);
	return 0;
}

static struct stat_sum sum_of(const struct bench_op *a, const struct bench_op *b)
{
	struct stat_sum s = { 0 };
	double x = median_of(a), y = median_of(b);
	if (x > 0 && y > 0) {
		s.median = x + y;
		s.n = 1;
		s.derived = true;
	}
	return s;
}

/* ---- figure 1: gntalloc --------------------------------------------------- */

struct share {
	int fd;
	bool dealloc_first; /* libxengntshr's order: the grant goes at munmap */
};

/* ALLOC_GREF + mmap + touch + munmap + DEALLOC_GREF of one page. */
static int op_share_cycle(void *ctx)
{
	struct share *s = ctx;
	struct ioctl_gntalloc_alloc_gref a = { .domid = 2,
					       .flags = GNTALLOC_FLAG_WRITABLE,
					       .count = 1 };
	if (ioctl(s->fd, IOCTL_GNTALLOC_ALLOC_GREF, &a) < 0)
		return -errno;
	struct ioctl_gntalloc_dealloc_gref d = { .index = a.index, .count = 1 };
	int r = 0;
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, (off_t)a.index);
	if (p == MAP_FAILED) {
		r = -errno;
		ioctl(s->fd, IOCTL_GNTALLOC_DEALLOC_GREF, &d);
		return r;
	}
	if (s->dealloc_first && ioctl(s->fd, IOCTL_GNTALLOC_DEALLOC_GREF, &d) < 0)
		r = -errno;
	*(volatile char *)p = 1;
	munmap(p, PAGE);
	if (!s->dealloc_first && ioctl(s->fd, IOCTL_GNTALLOC_DEALLOC_GREF, &d) < 0)
		r = -errno;
	return r;
}

int fig_gntalloc(void)
{
	struct fd_server srv = { .pid = 0, .sock = -1 };
	int r = fd_server_start(&srv);
	if (r < 0) {
		fprintf(stderr, "granted-bench: fd server: %s\n", strerror(-r));
		return 1;
	}
	set_domid(1);
	struct share plain = { .fd = open_dev("/dev/xen/gntalloc") };
	struct share shr = { .fd = plain.fd, .dealloc_first = true };
	unsigned one = 1;
	struct bench_op ops[] = {
		{ .name = "ours", .fn = op_share_cycle, .ctx = &plain },
		{ .name = "ours, xengntshr order", .fn = op_share_cycle, .ctx = &shr },
		{ .name = "memfd cycle", .fn = op_memfd_full, .ctx = &one },
		{ .name = "fd round trip", .fn = fd_round_trip, .ctx = &srv },
	};
	if (plain.fd < 0)
		ops[0].err = ops[1].err = -ENODEV;
	run_interleaved(ops, 4, scaled(20, 2), scaled(500, 20), scaled(500, 50));

	struct result_line *row =
		result_row("1", "gntalloc alloc+mmap+touch+munmap+dealloc, 1 page", &ops[0]);
	result_prim(row, "memfd_create+ftruncate+mmap+touch+munmap+close", &ops[2]);
	result_prim(row, "unix round trip carrying an fd (SCM_RIGHTS)", &ops[3]);
	result_prim_value(row, "sum of the two", sum_of(&ops[2], &ops[3]));
	row = result_row("1", "  the same, xengntshr order (dealloc, munmap)", &ops[1]);
	result_prim_value(row, "memfd cycle + fd round trip", sum_of(&ops[2], &ops[3]));

	if (plain.fd >= 0)
		close(plain.fd);
	fd_server_stop(&srv);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		samples_free(&ops[i].s);
	return 0;
}

/* ---- figure 2: gntdev ----------------------------------------------------- */

/* Domain 1: grants one page and BIG pages (one allocation), then waits. */
static void granter(struct link *l)
{
	int fd = open_dev("/dev/xen/gntalloc");
	size_t sz = sizeof(struct ioctl_gntalloc_alloc_gref) + (BIG - 1) * sizeof(uint32_t);
	struct ioctl_gntalloc_alloc_gref *big = calloc(1, sz);
	struct ioctl_gntalloc_alloc_gref one = { .domid = 2,
						 .flags = GNTALLOC_FLAG_WRITABLE,
						 .count = 1 };
	uint32_t refs[1 + BIG];
	if (fd < 0 || !big)
		_exit(1);
	big->domid = 2;
	big->flags = GNTALLOC_FLAG_WRITABLE;
	big->count = BIG;
	if (ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, &one) < 0 ||
	    ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, big) < 0) {
		fprintf(stderr, "granted-bench: granter: ALLOC_GREF: %s\n", strerror(errno));
		_exit(1);
	}
	char *p1 = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)one.index);
	char *pb = mmap(NULL, (size_t)BIG * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			(off_t)big->index);
	if (p1 == MAP_FAILED || pb == MAP_FAILED)
		_exit(1);
	p1[100] = 'G';
	for (unsigned i = 0; i < BIG; i++)
		pb[(size_t)i * PAGE + 100] = (char)('a' + i % 26);
	refs[0] = one.gref_ids[0];
	memcpy(refs + 1, big->gref_ids, BIG * sizeof(uint32_t));
	uint64_t done;
	if (link_send_buf(l, refs, sizeof(refs)) < 0 || link_recv(l, &done) < 0)
		_exit(1);
	_exit(0);
}

struct mapper {
	int fd;
	unsigned pages;
	struct ioctl_gntdev_map_grant_ref *op;
};

static int mapper_init(struct mapper *m, int fd, const uint32_t *refs, unsigned pages)
{
	m->fd = fd;
	m->pages = pages;
	m->op = calloc(1, sizeof(*m->op) + (pages - 1) * sizeof(m->op->refs[0]));
	if (!m->op)
		return -ENOMEM;
	m->op->count = pages;
	for (unsigned i = 0; i < pages; i++) {
		m->op->refs[i].domid = 1;
		m->op->refs[i].ref = refs[i];
	}
	return 0;
}

/* MAP_GRANT_REF + mmap + write a byte per page + munmap + UNMAP_GRANT_REF. */
static int op_map_cycle(void *ctx)
{
	struct mapper *m = ctx;
	size_t len = (size_t)m->pages * PAGE;
	if (ioctl(m->fd, IOCTL_GNTDEV_MAP_GRANT_REF, m->op) < 0)
		return -errno;
	struct ioctl_gntdev_unmap_grant_ref u = { .index = m->op->index, .count = m->pages };
	int r = 0;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, (off_t)u.index);
	if (p == MAP_FAILED) {
		r = -errno;
	} else {
		for (unsigned i = 0; i < m->pages; i++)
			((volatile char *)p)[(size_t)i * PAGE] = (char)i;
		munmap(p, len);
	}
	if (ioctl(m->fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &u) < 0 && !r)
		r = -errno;
	return r;
}

/* Maps the grants once and checks the granter's bytes. */
static int check_contents(struct mapper *m)
{
	if (ioctl(m->fd, IOCTL_GNTDEV_MAP_GRANT_REF, m->op) < 0)
		return -errno;
	size_t len = (size_t)m->pages * PAGE;
	struct ioctl_gntdev_unmap_grant_ref u = { .index = m->op->index, .count = m->pages };
	int r = 0;
	char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, m->fd, (off_t)u.index);
	if (p == MAP_FAILED) {
		r = -errno;
	} else {
		for (unsigned i = 0; i < m->pages && !r; i++) {
			char want = m->pages == 1 ? 'G' : (char)('a' + i % 26);
			if (p[(size_t)i * PAGE + 100] != want)
				r = -EILSEQ;
		}
		munmap(p, len);
	}
	ioctl(m->fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &u);
	return r;
}

/* "ours <= factor x base", both sides printed. */
static void verdict_le(const char *what, double ours, double factor, double base)
{
	char a[32], b[32], c[32];
	if (!(ours > 0 && base > 0)) {
		result_verdict("2", V_NA, "%s: no value", what);
		return;
	}
	result_verdict("2", ours <= factor * base ? V_PASS : V_FAIL,
		       "%s: ours %s vs %.1f x %s = %s (at %.2fx)", what,
		       fmt_time(a, sizeof(a), ours), factor, fmt_time(b, sizeof(b), base),
		       fmt_time(c, sizeof(c), factor * base), ours / base);
}

int fig_gntdev(void)
{
	struct link l;
	struct fd_server srv = { .pid = 0, .sock = -1 };
	uint32_t refs[1 + BIG];
	if (link_init(&l) < 0)
		return 1;
	pid_t g = fork_domain(1, opt.cpu_b, &l, NULL, 0);
	if (g == 0)
		granter(&l);
	if (g < 0 || link_recv_buf(&l, refs, sizeof(refs)) < 0) {
		fprintf(stderr, "granted-bench: the granter did not share its pages\n");
		kill_wait(g);
		return 1;
	}
	int r = fd_server_start(&srv);
	if (r < 0) {
		kill_wait(g);
		return 1;
	}
	set_domid(2);
	int fd = open_dev("/dev/xen/gntdev");
	struct mapper m1 = { 0 }, mb = { 0 };
	struct memfd_map f1 = { .fd = -1 }, fb = { .fd = -1 }, f1p, fbp;
	struct bench_op small[] = {
		{ .name = "ours 1", .fn = op_map_cycle, .ctx = &m1 },
		{ .name = "memfd 1", .fn = op_memfd_map, .ctx = &f1 },
		{ .name = "memfd 1 populate", .fn = op_memfd_map, .ctx = &f1p },
		{ .name = "fd round trip", .fn = fd_round_trip, .ctx = &srv },
	};
	struct bench_op big[] = {
		{ .name = "ours big", .fn = op_map_cycle, .ctx = &mb },
		{ .name = "memfd big", .fn = op_memfd_map, .ctx = &fb },
		{ .name = "memfd big populate", .fn = op_memfd_map, .ctx = &fbp },
	};
	if (fd < 0 || mapper_init(&m1, fd, refs, 1) < 0 || mapper_init(&mb, fd, refs + 1, BIG) < 0)
		small[0].err = big[0].err = fd < 0 ? -ENODEV : -ENOMEM;
	if ((r = memfd_map_init(&f1, 1)) < 0 || (r = memfd_map_init(&fb, BIG)) < 0)
		small[1].err = small[2].err = big[1].err = big[2].err = r;
	f1p = f1;
	fbp = fb;
	f1p.flags = fbp.flags = MAP_POPULATE;
	if (!small[0].err && (r = check_contents(&m1)) < 0)
		small[0].err = r;
	if (!big[0].err && (r = check_contents(&mb)) < 0)
		big[0].err = r;
	if (small[0].err == -EILSEQ || big[0].err == -EILSEQ)
		result_note("2", "the mapped pages do not hold what the granter wrote");

	run_interleaved(small, 4, scaled(20, 2), scaled(500, 20), scaled(500, 50));
	run_interleaved(big, 3, scaled(20, 2), scaled(60, 5), scaled(50, 5));

	struct result_line *row =
		result_row("2", "gntdev map+mmap+touch+munmap+unmap, 1 page", &small[0]);
	result_prim(row, "memfd mmap+touch+munmap, 1 page", &small[1]);
	result_prim(row, "  the same with MAP_POPULATE (as granted maps)", &small[2]);
	result_prim(row, "unix round trip carrying an fd (SCM_RIGHTS)", &small[3]);
	result_prim_value(row, "mmap cycle + fd round trip", sum_of(&small[1], &small[3]));
	char name[72];
	snprintf(name, sizeof(name), "gntdev map cycle, %u pages (one allocation)", BIG);
	row = result_row("2", name, &big[0]);
	snprintf(name, sizeof(name), "memfd mmap+touch+munmap, %u pages", BIG);
	result_prim(row, name, &big[1]);
	result_prim(row, "  the same with MAP_POPULATE (as granted maps)", &big[2]);
	result_prim_value(row, "mmap cycle + fd round trip", sum_of(&big[1], &small[3]));

	double o1 = median_of(&small[0]), ob = median_of(&big[0]);
	double p1 = median_of(&small[1]), pb = median_of(&big[1]), rt = median_of(&small[3]);
	verdict_le("bar: 1-page map cycle within 1.5x of (bare mmap cycle + fd round trip)", o1,
		   1.5, p1 > 0 && rt > 0 ? p1 + rt : 0);
	verdict_le("goal: 1-page map cycle within 1.5x of a bare mmap cycle", o1, 1.5, p1);
	snprintf(name, sizeof(name), "goal: %u-page map cycle within 1.5x of a bare mmap cycle",
		 BIG);
	verdict_le(name, ob, 1.5, pb);
	char a[32], b[32];
	if (o1 > 0 && ob > 0)
		result_verdict("2", o1 < 5000 && ob / BIG < 5000 ? V_PASS : V_FAIL,
			       "goal: faster than Xen's userspace gntdev map (~5 us a page on real "
			       "hardware): %s a page (1 page), %s a page (%u pages)",
			       fmt_time(a, sizeof(a), o1), fmt_time(b, sizeof(b), ob / BIG), BIG);
	else
		result_verdict("2", V_NA, "goal: faster than ~5 us a page: no value");

	link_send(&l, 1);
	int ok = wait_ok(g);
	fd_server_stop(&srv);
	free(m1.op);
	free(mb.op);
	if (fd >= 0)
		close(fd);
	link_close(&l);
	for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
		samples_free(&small[i].s);
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
		samples_free(&big[i].s);
	if (f1.fd >= 0)
		raw_close(f1.fd);
	if (fb.fd >= 0)
		raw_close(fb.fd);
	return ok;
}
