/*
 * Figure 5: IOCTL_GNTDEV_GRANT_COPY between a local buffer and another
 * domain's grants, both ways, beside memcpy of the same segments.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Xen's grant_table.h, which the uapi header refers to but does not carry. */
#ifndef GNTCOPY_source_gref
#define GNTCOPY_source_gref 1
#endif
#ifndef GNTCOPY_dest_gref
#define GNTCOPY_dest_gref 2
#endif

#define NPAGES 1024u
#define BYTES  ((size_t)NPAGES * PAGE)

enum { CMD_STOP, CMD_SUM };

static uint64_t fnv(const unsigned char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* Domain 1: grants NPAGES pages to domain 2 and answers checksums of them. */
static void granter(struct link *l)
{
	int fd = open_dev("/dev/xen/gntalloc");
	size_t sz = sizeof(struct ioctl_gntalloc_alloc_gref) + (NPAGES - 1) * sizeof(uint32_t);
	struct ioctl_gntalloc_alloc_gref *a = calloc(1, sz);
	if (fd < 0 || !a)
		_exit(1);
	a->domid = 2;
	a->flags = GNTALLOC_FLAG_WRITABLE;
	a->count = NPAGES;
	if (ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, a) < 0) {
		fprintf(stderr, "granted-bench: granter: ALLOC_GREF of %u: %s\n", NPAGES,
			strerror(errno));
		_exit(1);
	}
	unsigned char *p =
		mmap(NULL, BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)a->index);
	if (p == MAP_FAILED)
		_exit(1);
	memset(p, 0xee, BYTES);
	if (link_send_buf(l, a->gref_ids, NPAGES * sizeof(uint32_t)) < 0)
		_exit(1);
	for (;;) {
		uint64_t cmd;
		if (link_recv(l, &cmd) < 0 || cmd == CMD_STOP)
			_exit(0);
		if (link_send(l, fnv(p, BYTES)) < 0)
			_exit(1);
	}
}

struct copy {
	int fd;
	unsigned count;
	struct gntdev_grant_copy_segment *segs;
	unsigned calls, bad; /* calls, and calls where a segment failed */
	int16_t bad_status;  /* the first failure's status */
};

static int copy_init(struct copy *c, int fd, const uint32_t *refs, unsigned count, unsigned len,
		     bool to_grants, unsigned char *local)
{
	c->fd = fd;
	c->count = count;
	c->segs = calloc(count, sizeof(*c->segs));
	if (!c->segs)
		return -ENOMEM;
	for (unsigned i = 0; i < count; i++) {
		struct gntdev_grant_copy_segment *s = &c->segs[i];
		size_t at = (size_t)i * len;
		__typeof__(s->source) foreign = { .foreign = { .ref = refs[at / PAGE],
							       .offset = (uint16_t)(at % PAGE),
							       .domid = 1 } };
		__typeof__(s->source) mine = { .virt = local + at };
		s->len = (uint16_t)len;
		s->source = to_grants ? mine : foreign;
		s->dest = to_grants ? foreign : mine;
		s->flags = to_grants ? GNTCOPY_dest_gref : GNTCOPY_source_gref;
	}
	return 0;
}

/*
 * One GRANT_COPY, and the status check a caller makes after it. Every
 * grant is valid, so a failed segment is a fault of the implementation: it
 * is counted and reported, and the measurement goes on.
 */
static int op_copy(void *ctx)
{
	struct copy *c = ctx;
	struct ioctl_gntdev_grant_copy op = { .count = c->count, .segments = c->segs };
	if (ioctl(c->fd, IOCTL_GNTDEV_GRANT_COPY, &op) < 0)
		return -errno;
	c->calls++;
	for (unsigned i = 0; i < c->count; i++) {
		if (c->segs[i].status != 0) {
			if (!c->bad++)
				c->bad_status = c->segs[i].status;
			return -EREMOTEIO;
		}
	}
	return 0;
}

/* op_copy for the timed loop: a failed segment does not stop it. */
static int op_copy_timed(void *ctx)
{
	int r = op_copy(ctx);
	return r == -EREMOTEIO ? 0 : r;
}

struct mcopy {
	unsigned char *src, *dst;
	unsigned count, len;
};

static int op_memcpy(void *ctx)
{
	struct mcopy *m = ctx;
	for (unsigned i = 0; i < m->count; i++)
		memcpy(m->dst + (size_t)i * m->len, m->src + (size_t)i * m->len, m->len);
	__asm__ volatile("" ::: "memory");
	return 0;
}

/* Copies a pattern in and back out and asks the granter what it holds. */
static const char *verify(int fd, const uint32_t *refs, unsigned char *src, unsigned char *dst,
			  struct link *l)
{
	struct copy in = { 0 }, out = { 0 };
	const char *why = NULL;
	uint64_t sum;
	for (size_t i = 0; i < BYTES; i++)
		src[i] = (unsigned char)(i * 7 + i / PAGE);
	memset(dst, 0, BYTES);
	if (copy_init(&in, fd, refs, NPAGES, PAGE, true, src) < 0 ||
	    copy_init(&out, fd, refs, NPAGES, PAGE, false, dst) < 0)
		why = "out of memory";
	else if (op_copy(&in) < 0)
		why = in.bad ? "a segment of the copy to the grants failed"
			     : "the copy to the grants failed";
	else if (link_send(l, CMD_SUM) < 0 || link_recv(l, &sum) < 0)
		why = "the granter did not answer";
	else if (sum != fnv(src, BYTES))
		why = "the granter's pages do not hold what was copied to them";
	else if (op_copy(&out) < 0)
		why = out.bad ? "a segment of the copy from the grants failed"
			      : "the copy from the grants failed";
	else if (memcmp(src, dst, BYTES) != 0)
		why = "what came back from the grants differs";
	free(in.segs);
	free(out.segs);
	return why;
}

int fig_copy(void)
{
	static const struct {
		unsigned count, len;
	} cases[] = { { 1, 4096 }, { 16, 4096 }, { 1024, 4096 }, { 1024, 512 } };
	enum { NCASES = sizeof(cases) / sizeof(cases[0]) };
	struct link l;
	uint32_t *refs = calloc(NPAGES, sizeof(uint32_t));
	if (!refs || link_init(&l) < 0)
		return 1;
	pid_t g = fork_domain(1, opt.cpu_b, &l, NULL, 0);
	if (g == 0)
		granter(&l);
	if (g < 0 || link_recv_buf(&l, refs, NPAGES * sizeof(uint32_t)) < 0) {
		fprintf(stderr, "granted-bench: the granter did not share its pages\n");
		kill_wait(g);
		return 1;
	}
	set_domid(2);
	int fd = open_dev("/dev/xen/gntdev");
	unsigned char *src = raw_mmap(NULL, BYTES, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	unsigned char *dst = raw_mmap(NULL, BYTES, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (fd < 0 || src == MAP_FAILED || dst == MAP_FAILED)
		return 1;

	/* Is it there at all? */
	int unavailable = 0;
	struct copy probe = { 0 };
	int r = copy_init(&probe, fd, refs, 1, PAGE, false, dst);
	for (int tries = 0; r == 0 && tries < 4; tries++) {
		/* a failed segment may be passing (see op_copy): try again */
		r = op_copy(&probe);
		if (r == -EREMOTEIO && tries < 3)
			r = 0;
		else
			break;
	}
	if (r < 0)
		unavailable = -r;
	int16_t probe_status = probe.bad_status;
	free(probe.segs);
	if (!unavailable) {
		const char *why = verify(fd, refs, src, dst, &l);
		if (why)
			result_verdict("5", V_FAIL, "grant copy: %s", why);
	}

	struct copy to[NCASES] = { 0 }, from[NCASES] = { 0 };
	struct mcopy mc[NCASES];
	struct bench_op ops[NCASES][3];
	memset(ops, 0, sizeof(ops));
	for (unsigned c = 0; c < NCASES; c++) {
		mc[c] = (struct mcopy){ src, dst, cases[c].count, cases[c].len };
		ops[c][0] = (struct bench_op){ .name = "to", .fn = op_copy_timed, .ctx = &to[c] };
		ops[c][1] =
			(struct bench_op){ .name = "from", .fn = op_copy_timed, .ctx = &from[c] };
		ops[c][2] = (struct bench_op){ .name = "memcpy", .fn = op_memcpy, .ctx = &mc[c] };
		if (unavailable ||
		    copy_init(&to[c], fd, refs, cases[c].count, cases[c].len, true, src) < 0 ||
		    copy_init(&from[c], fd, refs, cases[c].count, cases[c].len, false, dst) < 0) {
			ops[c][0].err = ops[c][1].err = -(unavailable ? unavailable : ENOMEM);
		}
		unsigned small = cases[c].count * cases[c].len <= 16 * PAGE;
		for (int k = 0; k < 3; k++) {
			if (!ops[c][k].err)
				calibrate(&ops[c][k], 4000);
		}
		run_interleaved(ops[c], 3, scaled(20, 2), small ? scaled(250, 20) : scaled(25, 5),
				small ? scaled(200, 20) : scaled(10, 2));
	}

	for (unsigned c = 0; c < NCASES; c++) {
		char name[72], sz[16];
		if (cases[c].len % 1024 == 0)
			snprintf(sz, sizeof(sz), "%u KiB", cases[c].len / 1024);
		else
			snprintf(sz, sizeof(sz), "%u B", cases[c].len);
		for (int k = 0; k < 2; k++) {
			snprintf(name, sizeof(name), "grant copy %s, %u x %s",
				 k ? "grants->local" : "local->grants", cases[c].count, sz);
			struct result_line *row = result_row("5", name, &ops[c][k]);
			const struct copy *cp = ops[c][k].ctx;
			if (row && unavailable == ENOTTY)
				snprintf(row->status, sizeof(row->status), "not available");
			else if (row && unavailable == EREMOTEIO)
				snprintf(row->status, sizeof(row->status), "segment status %d",
					 probe_status);
			result_prim(row, "memcpy of the same segments", &ops[c][2]);
			if (cp->bad)
				result_verdict("5", V_FAIL,
					       "%s: %u of %u calls had a segment fail with status "
					       "%d (all grants valid)",
					       name, cp->bad, cp->calls, cp->bad_status);
		}
	}
	unsigned big = 2; /* 1024 x 4 KiB */
	double m = median_of(&ops[big][2]);
	for (int k = 0; k < 2; k++) {
		double o = median_of(&ops[big][k]);
		const char *dir = k ? "grants->local" : "local->grants";
		if (o > 0 && m > 0)
			result_verdict("5", m / o >= 0.8 ? V_PASS : V_FAIL,
				       "goal: grant copy %s 1024 x 4 KiB at >= 0.8x memcpy speed: "
				       "%.2f GB/s vs memcpy %.2f GB/s = %.2fx",
				       dir, BYTES / o, BYTES / m, m / o);
		else
			result_verdict("5", V_NA,
				       "goal: grant copy %s 1024 x 4 KiB >= 0.8x memcpy: %s", dir,
				       unavailable == ENOTTY ? "not available" : "no value");
	}

	link_send(&l, CMD_STOP);
	int ok = wait_ok(g);
	for (unsigned c = 0; c < NCASES; c++) {
		free(to[c].segs);
		free(from[c].segs);
		for (int k = 0; k < 3; k++)
			samples_free(&ops[c][k].s);
	}
	raw_munmap(src, BYTES);
	raw_munmap(dst, BYTES);
	close(fd);
	link_close(&l);
	free(refs);
	return ok;
}
