/*
 * Thousands of clients killed with SIGKILL at random points of random mixes
 * of every operation of the three devices, forking as they go, and the
 * promises the broker must keep about the dead:
 *
 *  - every unmap notification a dead process had armed fires exactly once
 *    (its byte cleared, then its event), and none it had not armed;
 *  - nothing of the dead is left: no grant, mapping or port of their
 *    domains (grantctl's tables), no fd or memfd in the broker, and its
 *    memory is back to what it was.
 *
 * The watcher is domain 10: it offers each client slot a few ports (a
 * process of its own reads their events as they come), and grants pages
 * whose bytes the clients' gntdev notifications clear; for gntalloc
 * notifications it maps the client's own page to see the byte. Each client
 * (domains 1-3) runs random operations, sets up one notification towards
 * the watcher at a random point, recording in a shared board how far it
 * got, and carries on until it is killed or ends by itself.
 */
#include "../conformance/kabi.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "sec.h"

#define WATCHER	   10u
#define SLOTS	   6
#define MAX_LIVES  4000
#define NOTE_PAGES 2 /* watcher pages per client domain, for gntdev notifications */
#define PORTS	   8 /* watcher ports per slot, used in turn by its clients */

enum life_state {
	LIFE_NONE,   /* never bound the watcher's port */
	LIFE_BOUND,  /* bound it, not armed */
	LIFE_ARMING, /* the SET_UNMAP_NOTIFY ioctl was under way */
	LIFE_ARMED,  /* it returned 0 */
};

struct life {
	uint32_t state;
	uint8_t kind; /* 0: gntdev notification on the watcher's page; 1: gntalloc, own page */
	uint8_t domid;
	uint16_t slot;
	uint32_t port;	 /* which of the slot's watcher ports */
	uint32_t byte;	 /* gntdev: byte of the watcher's pages of this domain */
	uint32_t ref;	 /* gntalloc: the client's page, granted to the watcher */
	uint32_t offset; /* gntalloc: the byte, after the tag */
	uint32_t tag;	 /* gntalloc: what the page starts with, to know it is this one */
};

#define TAG_BYTES 16

/* What processes tell each other. */
struct board {
	volatile uint32_t refs[3][64];	/* [granter domain - 1][slot] */
	volatile uint32_t ports[3][64]; /* [offered to domain - 1][slot]: port | domain << 16 */
	uint32_t wport[SLOTS][PORTS];	/* the watcher's ports for each slot */
	uint32_t wref[3][NOTE_PAGES];	/* the watcher's pages for each domain */
	struct life lives[MAX_LIVES];
	unsigned fires[SLOTS]; /* events the watcher saw on each slot's ports */
	unsigned extra_fires;  /* on ports that are not a slot's */
	bool stop;
	uint32_t allocs, own_maps, peer_maps, binds, copies, forks;
};

#define TALLY(field) __atomic_add_fetch(&board->field, 1, __ATOMIC_RELAXED)

static struct board *board;

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void set_state(struct life *lf, enum life_state st)
{
	__atomic_store_n(&lf->state, st, __ATOMIC_RELEASE);
}

/*
 * The notification of this life. The fds stay open until the process
 * dies: that is the point. The previous client of the slot may still be
 * being released, so the bind is retried for a while.
 */
static void arm(struct life *lf)
{
	int ev = open("/dev/xen/evtchn", O_RDWR | O_CLOEXEC);
	if (ev < 0)
		return;
	int q = -1;
	for (int i = 0; i < 400 && q < 0; i++) {
		q = ev_interdomain(ev, WATCHER, board->wport[lf->slot][lf->port]);
		if (q < 0)
			usleep(2500);
	}
	if (q < 0)
		return;
	set_state(lf, LIFE_BOUND);
	unsigned action = UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT;
	if (lf->kind == 0) {
		int gd = open("/dev/xen/gntdev", O_RDWR | O_CLOEXEC);
		uint64_t idx;
		if (gd < 0 ||
		    gd_map1(gd, WATCHER, board->wref[lf->domid - 1][lf->byte / PAGE], &idx) < 0)
			return;
		if (map_pages(gd, idx, 1, PROT_READ | PROT_WRITE) == MAP_FAILED)
			return;
		set_state(lf, LIFE_ARMING);
		if (gd_notify(gd, idx + lf->byte % PAGE, action, (unsigned)q) == 0)
			set_state(lf, LIFE_ARMED);
	} else {
		int ga = open("/dev/xen/gntalloc", O_RDWR | O_CLOEXEC);
		uint64_t idx;
		uint32_t ref;
		if (ga < 0 || ga_alloc(ga, WATCHER, GNTALLOC_FLAG_WRITABLE, 1, &idx, &ref) < 0)
			return;
		char *p = map_pages(ga, idx, 1, PROT_READ | PROT_WRITE);
		if (p == MAP_FAILED)
			return;
		memset(p, 0xff, PAGE);
		memcpy(p, &lf->tag, sizeof(lf->tag));
		lf->ref = ref;
		set_state(lf, LIFE_ARMING);
		if (ga_notify(ga, idx + lf->offset, action, (unsigned)q) == 0)
			set_state(lf, LIFE_ARMED);
	}
}

/*
 * A random mix, until killed (or `steps` are done). Unmap notifications
 * here only clear bytes: an event on a port number of the domain could be
 * another client's notification port, and the watcher counts those.
 */
static void client(unsigned domid, uint32_t seed, int steps)
{
	int ga = -1, gd = -1, ev = -1;
	void *maps[8] = { 0 };
	uint64_t ga_idx[8];
	unsigned nga = 0;
	for (int step = 0; step < steps; step++) {
		uint32_t r = rnd(&seed);
		switch (r % 14) {
		case 0:
			if (ga < 0)
				ga = open("/dev/xen/gntalloc", O_RDWR);
			break;
		case 1:
			if (gd < 0)
				gd = open("/dev/xen/gntdev", O_RDWR);
			break;
		case 2:
			if (ev < 0)
				ev = open("/dev/xen/evtchn", O_RDWR | O_NONBLOCK);
			break;
		case 3: { /* grant to another domain, announce it */
			if (ga < 0)
				break;
			uint32_t refs[4];
			unsigned n = 1 + (r >> 8) % 4, to = 1 + (r >> 12) % 3;
			uint64_t idx;
			if (ga_alloc(ga, to, (r >> 16) & 1, n, &idx, refs) == 0) {
				TALLY(allocs);
				ga_idx[nga++ % 8] = idx;
				board->refs[domid - 1][(r >> 20) % 64] = refs[0];
			}
			break;
		}
		case 4: { /* map some of it, maybe clear a byte at the end */
			if (ga < 0 || !nga)
				break;
			unsigned slot = (r >> 8) % 8;
			if (maps[slot])
				break;
			void *p = map_pages(ga, ga_idx[(r >> 12) % (nga < 8 ? nga : 8)], 1,
					    PROT_READ | PROT_WRITE);
			if (p != MAP_FAILED) {
				TALLY(own_maps);
				maps[slot] = p;
				ga_notify(ga, ga_idx[0] + 7, (r >> 16) % 2, 0);
			}
			break;
		}
		case 5:
			if (ga >= 0 && nga)
				ga_dealloc(ga, ga_idx[(r >> 8) % (nga < 8 ? nga : 8)], 1);
			break;
		case 6: { /* map someone's grant */
			if (gd < 0)
				break;
			unsigned from = 1 + (r >> 8) % 3;
			uint32_t ref = board->refs[from - 1][(r >> 12) % 64];
			uint64_t idx;
			if (!ref || gd_map1(gd, from, ref, &idx) < 0)
				break;
			unsigned slot = (r >> 20) % 8;
			int prot = PROT_READ | ((r >> 24) & 1 ? PROT_WRITE : 0);
			void *p = maps[slot] ? MAP_FAILED : map_pages(gd, idx, 1, prot);
			if (p != MAP_FAILED) {
				TALLY(peer_maps);
				maps[slot] = p;
				gd_notify(gd, idx, (r >> 25) % 2, 0);
			}
			if ((r >> 28) & 1)
				gd_unmap(gd, idx, 1);
			break;
		}
		case 7: { /* unmap something */
			unsigned slot = (r >> 8) % 8;
			if (maps[slot]) {
				munmap(maps[slot], PAGE);
				maps[slot] = NULL;
			}
			break;
		}
		case 8: { /* offer a port, or bind to one offered to us */
			if (ev < 0)
				break;
			unsigned to = 1 + (r >> 8) % 3;
			int p = ev_unbound(ev, to);
			if (p > 0)
				board->ports[to - 1][(r >> 12) % 64] = (uint32_t)p | (domid << 16);
			break;
		}
		case 9: {
			if (ev < 0)
				break;
			uint32_t v = board->ports[domid - 1][(r >> 8) % 64];
			if (v && ev_interdomain(ev, v >> 16, v & 0xffff) > 0)
				TALLY(binds);
			break;
		}
		case 10: {
			if (ev < 0)
				break;
			ev_notify(ev, 1 + (r >> 8) % 8);
			uint32_t got[8];
			ssize_t k = read(ev, got, sizeof(got));
			if (k > 0 && write(ev, got, (size_t)k) < 0)
				break;
			break;
		}
		case 11: { /* close one of them */
			int *fds[3] = { &ga, &gd, &ev };
			int *f = fds[(r >> 8) % 3];
			if (*f >= 0) {
				close(*f);
				*f = -1;
				if (f == &ga)
					nga = 0;
			}
			break;
		}
		case 12: /* a copy through a grant */
			if (gd >= 0) {
				char buf[16];
				struct gntdev_grant_copy_segment s = { .len = 16, .flags = 1 };
				s.dest.virt = buf;
				unsigned from = 1 + (r >> 8) % 3;
				s.source.foreign.domid = (domid_t)from;
				s.source.foreign.ref = board->refs[from - 1][(r >> 12) % 64];
				struct ioctl_gntdev_grant_copy op = { .count = 1, .segments = &s };
				if (ioctl(gd, IOCTL_GNTDEV_GRANT_COPY, &op) == 0 && s.status == 0)
					TALLY(copies);
			}
			break;
		case 13: /* a child that shares all of it, and dies at some point */
			if (((r >> 8) % 16) == 0) {
				fflush(stdout);
				pid_t pid = fork();
				TALLY(forks);
				if (pid == 0) {
					client(domid, r | 1, 20);
					_exit(0);
				}
				if (pid > 0 && (r >> 12) & 1)
					waitpid(pid, NULL, 0);
			}
			break;
		}
	}
}

/* ---- the watcher ------------------------------------------------------ */

static char *wpage[3];	      /* the watcher's pages for each domain */
static char *amap[MAX_LIVES]; /* the watcher's view of gntalloc lives' pages */
static int wgd;

/*
 * The watcher's event channel, in a process of its own that reads events as
 * soon as they come: a port's pending bit holds one event, so a second
 * notification on the same port before the first is read would be lost to
 * the count. The clients of a slot use its PORTS ports in turn, so that
 * this cannot happen unless the watcher sleeps through PORTS lives. It
 * offers the ports, then counts until told to stop.
 */
static void watch_events(struct tap_link *l)
{
	int wev = open("/dev/xen/evtchn", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	CHECK_OK(wev);
	for (int s = 0; s < SLOTS; s++) {
		for (int k = 0; k < PORTS; k++) {
			int p = ev_unbound(wev, 1 + s % 3);
			CHECK(p > 0);
			board->wport[s][k] = (uint32_t)p;
		}
	}
	tap_send(l, 0);
	while (!__atomic_load_n(&board->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd pfd = { .fd = wev, .events = POLLIN };
		if (poll(&pfd, 1, 20) != 1)
			continue;
		uint32_t got[64];
		ssize_t n = read(wev, got, sizeof(got));
		if (n <= 0)
			continue;
		for (ssize_t i = 0; i < n / 4; i++) {
			unsigned *count = &board->extra_fires;
			for (int s = 0; s < SLOTS; s++)
				for (int k = 0; k < PORTS; k++)
					if (board->wport[s][k] == got[i])
						count = &board->fires[s];
			__atomic_add_fetch(count, 1, __ATOMIC_RELAXED);
		}
		CHECK_EQ(write(wev, got, (size_t)n), n);
	}
	close(wev);
}

/* Maps the pages of gntalloc lives that have announced them. */
static void map_announced(unsigned nlives)
{
	for (unsigned i = 0; i < nlives; i++) {
		struct life *lf = &board->lives[i];
		if (lf->kind != 1 || amap[i] ||
		    __atomic_load_n(&lf->state, __ATOMIC_ACQUIRE) < LIFE_ARMING)
			continue;
		uint64_t idx;
		if (gd_map1(wgd, lf->domid, lf->ref, &idx) < 0)
			continue;
		char *p = map_pages(wgd, idx, 1, PROT_READ);
		if (p == MAP_FAILED) {
			/* Too late: the client is gone and its grant with it. */
			gd_unmap(wgd, idx, 1);
			amap[i] = MAP_FAILED;
			continue;
		}
		CHECK_OK(gd_unmap(wgd, idx, 1)); /* the mapping keeps it */
		/* The client may be gone and its ref already reused for another
		 * client's page: then this life's page is not to be seen. */
		uint32_t tag;
		memcpy(&tag, p, sizeof(tag));
		if (tag != lf->tag) {
			munmap(p, PAGE);
			p = MAP_FAILED;
		}
		amap[i] = p;
	}
}

/* No grant, mapping, port or domain of domains 1-3 is left: the release
 * of the last clients may still be under way, so within 3 s. */
static void expect_none_of_domains_1_to_3(void)
{
	int grants, maps, ports, doms;
	double end = tap_now_ms() + 3000;
	for (;;) {
		grants = sec_grantctl_count("grants", "granter", 1, 3);
		maps = sec_grantctl_count("grants", "domid", 1, 3); /* mapped by */
		ports = sec_grantctl_count("ports", "domid", 1, 3);
		doms = sec_grantctl_count("domains", "domid", 1, 3);
		if (grants + maps + ports + doms == 0 || tap_now_ms() > end)
			break;
		usleep(50 * 1000);
	}
	CHECK_EQ(grants, 0);
	CHECK_EQ(maps, 0);
	CHECK_EQ(ports, 0);
	CHECK_EQ(doms, 0);
}

TEST_TIMEOUT(thousands_of_kills_notifications_fire_once, 120)
{
	/* SEC_LIVES: fewer, for the run under valgrind, where only the
	 * broker's own errors count: no minimum of work, no memory limits. */
	bool full = !getenv("SEC_LIVES");
	unsigned LIVES = full ? 3000 : (unsigned)atoi(getenv("SEC_LIVES"));
	if (LIVES > MAX_LIVES)
		LIVES = MAX_LIVES;
	const double budget_ms = 38000;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	board = mmap(NULL, sizeof(*board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		     0);
	CHECK(board != MAP_FAILED);
	struct usage u0;
	sec_usage_settled(0, &u0);

	/* The watcher's ports and pages. */
	struct tap_link l;
	tap_link_init(&l);
	pid_t watcher = tap_fork_domain(WATCHER, &l);
	if (watcher == 0) {
		watch_events(&l);
		tap_child_exit();
	}
	CHECK_EQ(tap_recv(&l), 0);
	tap_set_domid(WATCHER);
	int wga = open_gntalloc();
	for (int d = 0; d < 3; d++) {
		uint64_t idx;
		CHECK_OK(ga_alloc(wga, 1 + d, GNTALLOC_FLAG_WRITABLE, NOTE_PAGES, &idx,
				  board->wref[d]));
		wpage[d] = map_pages(wga, idx, NOTE_PAGES, PROT_READ | PROT_WRITE);
		CHECK(wpage[d] != MAP_FAILED);
		memset(wpage[d], 0xff, NOTE_PAGES * PAGE);
	}
	wgd = open_gntdev();
	struct usage u1;
	sec_usage_settled(0, &u1);
	tap_note("broker at start: %d fds, %d memfds, VmRSS %ld kB", u0.fds, u0.memfds, u0.rss_kb);

	uint32_t seed = 0x9e3779b9u ^ (uint32_t)getpid();
	pid_t live[SLOTS] = { 0 };
	bool natural[SLOTS] = { 0 };
	unsigned bytes_used[3] = { 0 };
	int killed = 0, finished = 0;
	unsigned nlives = 0;
	double t0 = tap_now_ms();
	for (; nlives < LIVES && tap_now_ms() - t0 < budget_ms; nlives++) {
		int slot = (int)(nlives % SLOTS);
		map_announced(nlives);
		if (live[slot]) {
			if (!natural[slot])
				kill(-live[slot], SIGKILL);
			int st = tap_wait(live[slot]);
			if (WIFEXITED(st))
				finished++;
			else
				killed++;
			kill(-live[slot], SIGKILL); /* its forked children too */
		}
		unsigned domid = 1 + (unsigned)slot % 3;
		struct life *lf = &board->lives[nlives];
		uint32_t s = rnd(&seed);
		*lf = (struct life){ .kind = (uint8_t)(s & 1),
				     .domid = (uint8_t)domid,
				     .slot = (uint16_t)slot,
				     .port = (nlives / SLOTS) % PORTS,
				     .offset = TAG_BYTES + (s >> 4) % (PAGE - TAG_BYTES),
				     .tag = 0x7a000000u | nlives };
		if (lf->kind == 0) {
			if (bytes_used[domid - 1] == NOTE_PAGES * PAGE)
				lf->kind = 1;
			else
				lf->byte = bytes_used[domid - 1]++;
		}
		pid_t pid = tap_fork_domain(domid, NULL);
		if (pid == 0) {
			setpgid(0, 0);
			/* The notification is armed at a random point; one
			 * life in eight ends by itself, soon, the others run
			 * until they are killed. */
			uint32_t cs = s | 1;
			client(domid, cs, (int)((s >> 8) % 150));
			arm(lf);
			client(domid, cs, s % 8 == 0 ? 20 + (int)(s % 200) : 1 << 30);
			_exit(0);
		}
		setpgid(pid, pid);
		live[slot] = pid;
		natural[slot] = s % 8 == 0;
		usleep(rnd(&seed) % 3000);
	}
	for (int i = 0; i < SLOTS; i++) {
		if (live[i]) {
			kill(-live[i], SIGKILL);
			tap_wait(live[i]);
			killed++;
		}
	}
	double run_ms = tap_now_ms() - t0;

	/* Count what was armed, and wait for the last notifications. */
	unsigned armed[SLOTS] = { 0 }, arming[SLOTS] = { 0 }, total_armed = 0, total_arming = 0;
	unsigned bound = 0, none = 0;
	for (unsigned i = 0; i < nlives; i++) {
		struct life *lf = &board->lives[i];
		armed[lf->slot] += lf->state == LIFE_ARMED;
		arming[lf->slot] += lf->state == LIFE_ARMING;
		bound += lf->state == LIFE_BOUND;
		none += lf->state == LIFE_NONE;
	}
	for (int s = 0; s < SLOTS; s++) {
		total_armed += armed[s];
		total_arming += arming[s];
	}
	unsigned total_fires = 0;
	double end = tap_now_ms() + 3000;
	do {
		usleep(20 * 1000);
		total_fires = 0;
		for (int s = 0; s < SLOTS; s++)
			total_fires += __atomic_load_n(&board->fires[s], __ATOMIC_RELAXED);
	} while (total_fires < total_armed && tap_now_ms() < end);
	usleep(100 * 1000); /* anything late, or twice */
	total_fires = 0;
	for (int s = 0; s < SLOTS; s++)
		total_fires += __atomic_load_n(&board->fires[s], __ATOMIC_RELAXED);
	unsigned *fires = board->fires;
	map_announced(nlives);

	tap_note("%u clients in %.1f s: %d killed by SIGKILL, %d ended by themselves", nlives,
		 run_ms / 1000, killed, finished);
	tap_note("done by them: %u allocations, %u own mmaps, %u mmaps of others' grants, "
		 "%u interdomain binds, %u grant copies, %u forks",
		 board->allocs, board->own_maps, board->peer_maps, board->binds, board->copies,
		 board->forks);
	tap_note("notifications: %u armed, %u killed while arming, %u bound only, %u never bound; "
		 "%u events seen, %u on other ports",
		 total_armed, total_arming, bound, none, total_fires, board->extra_fires);
	/* Enough of everything happened for the run to mean something. */
	CHECK(!full || (unsigned)killed > nlives / 2);
	CHECK(!full || total_armed > nlives / 2);
	CHECK(!full || (board->allocs > nlives && board->peer_maps > nlives / 10 &&
			board->binds > nlives / 10));
	CHECK_EQ(board->extra_fires, 0);
	for (int s = 0; s < SLOTS; s++) {
		if (fires[s] < armed[s] || fires[s] > armed[s] + arming[s])
			tap_fail(__FILE__, __LINE__,
				 "slot %d: %u events for %u armed notifications (+%u arming)", s,
				 fires[s], armed[s], arming[s]);
	}

	/* Each byte: cleared exactly where a notification was armed. */
	unsigned cleared = 0, checked = 0, unseen = 0;
	for (unsigned i = 0; i < nlives; i++) {
		struct life *lf = &board->lives[i];
		volatile char *byte;
		if (lf->kind == 0) {
			byte = wpage[lf->domid - 1] + lf->byte;
		} else if (amap[i] && amap[i] != MAP_FAILED) {
			byte = amap[i] + lf->offset;
		} else {
			unseen += lf->state >= LIFE_ARMING;
			continue;
		}
		checked++;
		cleared += *byte == 0;
		if (lf->state == LIFE_ARMED && *byte != 0)
			tap_fail(__FILE__, __LINE__, "life %u (%s, domain %u): armed, byte %#x", i,
				 lf->kind ? "gntalloc" : "gntdev", lf->domid, (unsigned char)*byte);
		if (lf->state < LIFE_ARMING && *byte == 0)
			tap_fail(__FILE__, __LINE__, "life %u (%s, domain %u): not armed, byte 0",
				 i, lf->kind ? "gntalloc" : "gntdev", lf->domid);
	}
	tap_note("bytes: %u checked, %u cleared (%u gntalloc pages gone before the watcher "
		 "mapped them)",
		 checked, cleared, unseen);

	/* Nothing of the dead domains is left once the watcher lets go. */
	for (unsigned i = 0; i < nlives; i++)
		if (amap[i] && amap[i] != MAP_FAILED)
			munmap(amap[i], PAGE);
	usleep(1300 * 1000); /* grants end about a second after the last unmap */
	expect_none_of_domains_1_to_3();
	/* (grantctl does see what is there: the watcher and its grants) */
	CHECK_EQ(sec_grantctl_count("domains", "domid", WATCHER, WATCHER), 1);
	CHECK_EQ(sec_grantctl_count("grants", "granter", WATCHER, WATCHER), 3 * NOTE_PAGES);
	sec_expect_back(&u1, 3000);
	struct usage u2;
	sec_usage(0, &u2);
	tap_note("broker with the watcher only: %d fds (%d at the same point before), "
		 "%d memfds (%d), VmRSS %ld kB (%ld)",
		 u2.fds, u1.fds, u2.memfds, u1.memfds, u2.rss_kb, u1.rss_kb);

	for (int d = 0; d < 3; d++)
		munmap(wpage[d], NOTE_PAGES * PAGE);
	close(wgd);
	close(wga);
	__atomic_store_n(&board->stop, true, __ATOMIC_RELEASE);
	tap_wait_ok(watcher);
	tap_link_close(&l);
	sec_expect_back(&u0, 3000);
	struct usage u3;
	sec_usage(0, &u3);
	CHECK_EQ(sec_grantctl_count("domains", "domid", 0, 0x7FEF), 0);
	tap_note("broker at the end: %d fds, %d memfds, VmRSS %ld kB (%+ld kB)", u3.fds, u3.memfds,
		 u3.rss_kb, u3.rss_kb - u0.rss_kb);
	/* Allocator slack: what malloc keeps after the first thousands of
	 * clients (a second run in the same broker adds about nothing). */
	CHECK(!full || SEC_ASAN || u3.rss_kb - u0.rss_kb < 2048);
	munmap(board, sizeof(*board));
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
