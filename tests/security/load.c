/*
 * Load: 64 client processes (domains 1-8) map and unmap grants, grant
 * copy, and allocate and free their own grants, as fast as they can for a
 * fixed time. Every call must succeed and every page hold what it should;
 * the broker's memory must stay flat while they run and come back when
 * they are gone (VmRSS sampled from /proc).
 */
#include "../conformance/kabi.h"

#include <signal.h>
#include <sys/wait.h>

#include "sec.h"

#define CLIENTS 64
#define DOMAINS 8
#define PAGES	16
#define GRANTER 100u

struct board {
	uint32_t refs[DOMAINS][PAGES]; /* the granter's pages for each domain */
	uint64_t maps, copies, allocs;
	char error[256];
};

static struct board *board;

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

#define FAIL_IF(cond, ...)                                                                         \
	do {                                                                                       \
		if (cond) {                                                                        \
			snprintf(board->error, sizeof(board->error), __VA_ARGS__);                 \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)

static void page_header(char *buf, unsigned domid, unsigned page)
{
	snprintf(buf, 32, "domain %u page %u", domid, page);
}

static void client(unsigned i, double deadline)
{
	unsigned domid = 1 + i % DOMAINS;
	unsigned me = i / DOMAINS; /* my byte in the shared pages of my domain */
	uint32_t seed = 0x12345u * (i + 1);
	int gd = open("/dev/xen/gntdev", O_RDWR | O_CLOEXEC);
	int ga = open("/dev/xen/gntalloc", O_RDWR | O_CLOEXEC);
	FAIL_IF(gd < 0 || ga < 0, "client %u: open: %s", i, strerror(errno));
	uint64_t maps = 0, copies = 0, allocs = 0;
	char want[32];
	for (unsigned n = 0; tap_now_ms() < deadline; n++) {
		uint32_t r = rnd(&seed);
		/* Map 1-4 consecutive pages of my domain's grants. */
		unsigned count = 1 + r % 4, first = (r >> 4) % (PAGES - count + 1);
		uint64_t idx;
		FAIL_IF(gd_map(gd, GRANTER, count, board->refs[domid - 1] + first, &idx) < 0,
			"client %u: MAP_GRANT_REF: %s", i, strerror(errno));
		char *p = map_pages(gd, idx, count, PROT_READ | PROT_WRITE);
		FAIL_IF(p == MAP_FAILED, "client %u: mmap of %u grants: %s", i, count,
			strerror(errno));
		for (unsigned k = 0; k < count; k++) {
			page_header(want, domid, first + k);
			FAIL_IF(strcmp(p + k * PAGE, want) != 0, "client %u: page %u holds '%.31s'",
				i, first + k, p + k * PAGE);
			char *mine = p + k * PAGE + 2048 + me;
			*mine = (char)n;
			FAIL_IF(*mine != (char)n, "client %u: wrote %d, read %d", i, (char)n,
				*mine);
		}
		FAIL_IF(munmap(p, (size_t)count * PAGE) < 0, "client %u: munmap: %s", i,
			strerror(errno));
		FAIL_IF(gd_unmap(gd, idx, count) < 0, "client %u: UNMAP_GRANT_REF: %s", i,
			strerror(errno));
		maps++;

		/* A grant copy out of one of them. */
		char buf[32] = { 0 };
		unsigned pg = (r >> 8) % PAGES;
		struct gntdev_grant_copy_segment s = { .len = sizeof(buf), .flags = 1 };
		s.dest.virt = buf;
		s.source.foreign.domid = GRANTER;
		s.source.foreign.ref = board->refs[domid - 1][pg];
		struct ioctl_gntdev_grant_copy op = { .count = 1, .segments = &s };
		FAIL_IF(ioctl(gd, IOCTL_GNTDEV_GRANT_COPY, &op) < 0 || s.status != 0,
			"client %u: grant copy: %s, status %d", i, strerror(errno), s.status);
		page_header(want, domid, pg);
		FAIL_IF(strcmp(buf, want) != 0, "client %u: copied '%.31s'", i, buf);
		copies++;

		/* Now and then, a grant of my own, used and freed. */
		if (n % 8 == 0) {
			uint32_t refs[4];
			unsigned k = 1 + (r >> 12) % 4;
			FAIL_IF(ga_alloc(ga, domid, GNTALLOC_FLAG_WRITABLE, k, &idx, refs) < 0,
				"client %u: ALLOC_GREF: %s", i, strerror(errno));
			char *q = map_pages(ga, idx, k, PROT_READ | PROT_WRITE);
			FAIL_IF(q == MAP_FAILED, "client %u: gntalloc mmap: %s", i,
				strerror(errno));
			memset(q, (int)n, (size_t)k * PAGE);
			FAIL_IF(munmap(q, (size_t)k * PAGE) < 0 || ga_dealloc(ga, idx, k) < 0,
				"client %u: gntalloc munmap/DEALLOC: %s", i, strerror(errno));
			allocs++;
		}
	}
	close(gd);
	close(ga);
	__atomic_add_fetch(&board->maps, maps, __ATOMIC_RELAXED);
	__atomic_add_fetch(&board->copies, copies, __ATOMIC_RELAXED);
	__atomic_add_fetch(&board->allocs, allocs, __ATOMIC_RELAXED);
}

TEST_TIMEOUT(sixty_four_clients_map_and_unmap, 60)
{
	const double run_ms = 10000;
	board = mmap(NULL, sizeof(*board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		     0);
	CHECK(board != MAP_FAILED);
	struct usage u0;
	sec_usage_settled(0, &u0);
	tap_set_domid(GRANTER);
	int ga = open_gntalloc();
	char *pages[DOMAINS];
	for (unsigned d = 0; d < DOMAINS; d++) {
		uint64_t idx;
		CHECK_OK(ga_alloc(ga, 1 + d, GNTALLOC_FLAG_WRITABLE, PAGES, &idx, board->refs[d]));
		pages[d] = map_pages(ga, idx, PAGES, PROT_READ | PROT_WRITE);
		CHECK(pages[d] != MAP_FAILED);
		for (unsigned k = 0; k < PAGES; k++)
			page_header(pages[d] + k * PAGE, 1 + d, k);
	}
	struct usage u1;
	sec_usage(0, &u1);

	double deadline = tap_now_ms() + run_ms;
	pid_t pids[CLIENTS];
	for (unsigned i = 0; i < CLIENTS; i++) {
		pids[i] = tap_fork_domain(1 + i % DOMAINS, NULL);
		if (pids[i] == 0) {
			client(i, deadline);
			tap_child_exit();
		}
	}
	/* The broker's memory while they run: after a second of warm-up,
	 * then every half second. */
	usleep(1000 * 1000);
	long warm = sec_rss_kb(tap_broker_pid()), lo = warm, hi = warm;
	while (tap_now_ms() < deadline) {
		usleep(500 * 1000);
		long kb = sec_rss_kb(tap_broker_pid());
		lo = kb < lo ? kb : lo;
		hi = kb > hi ? kb : hi;
	}
	long last = sec_rss_kb(tap_broker_pid());
	int failed = 0;
	for (unsigned i = 0; i < CLIENTS; i++) {
		int st = tap_wait(pids[i]);
		failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	if (failed)
		tap_fail(__FILE__, __LINE__, "%d clients failed; one said: %s", failed,
			 board->error);
	tap_note("%u clients for %.0f s: %llu maps+mmaps+munmaps+unmaps, %llu grant copies, "
		 "%llu gntalloc cycles",
		 CLIENTS, run_ms / 1000, (unsigned long long)board->maps,
		 (unsigned long long)board->copies, (unsigned long long)board->allocs);
	tap_note("broker VmRSS: %ld kB before, %ld kB after 1 s, %ld-%ld kB while running, "
		 "%ld kB at the end of the run",
		 u1.rss_kb, warm, lo, hi, last);
	CHECK(board->maps > 10000);
	/* Flat: whatever the broker needs for 64 clients it has after the
	 * first second. */
	CHECK(SEC_ASAN || hi - warm < 1024);
	for (unsigned d = 0; d < DOMAINS; d++)
		for (unsigned k = 0; k < PAGES; k++) {
			char want[32];
			page_header(want, 1 + d, k);
			CHECK_EQ(strcmp(pages[d] + k * PAGE, want), 0);
		}
	for (unsigned d = 0; d < DOMAINS; d++)
		munmap(pages[d], PAGES * PAGE);
	close(ga);
	sec_expect_back(&u0, 3000);
	struct usage u2;
	sec_usage(0, &u2);
	tap_note("broker at the end: %d fds, %d memfds, VmRSS %ld kB (%+ld kB since the start)",
		 u2.fds, u2.memfds, u2.rss_kb, u2.rss_kb - u0.rss_kb);
	CHECK(SEC_ASAN || u2.rss_kb - u0.rss_kb < 2048);
	munmap(board, sizeof(*board));
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
