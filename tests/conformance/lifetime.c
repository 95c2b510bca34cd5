/*
 * The lifetime table of ABI.md §6, row by row, for both devices, with fork,
 * exec, exit and SIGKILL at each stage. What we watch: an armed CLEAR_BYTE
 * (it fires exactly when the kernel tears the gref or the map down), and
 * whether the grantee can still map a grant (EINVAL once it has ended).
 */
#include "kabi.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

/* Waits up to ms for *byte to become 0; returns whether it did. */
static int cleared_within(volatile char *byte, int ms)
{
	double end = tap_now_ms() + ms;
	while (*byte != 0) {
		if (tap_now_ms() > end)
			return 0;
		usleep(200);
	}
	return 1;
}

/* Whether domain `domid` can map (domid 1's) ref right now, tried in a
 * child process of that domain. */
static int can_map(unsigned domid, uint32_t ref)
{
	pid_t pid = tap_fork_domain(domid, NULL);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map1(fd, 1, ref, &idx));
		void *q = map_pages(fd, idx, 1, PROT_READ);
		int ok = q != MAP_FAILED;
		if (ok)
			munmap(q, PAGE);
		close(fd);
		_exit(ok ? 0 : 3);
	}
	int st = tap_wait(pid);
	CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 3));
	return WEXITSTATUS(st) == 0;
}

/* The grantee (domain 2, a child) maps ref and reports what it sees. */
struct grantee {
	pid_t pid;
	struct tap_link link;
};

enum { G_READ_BYTE = 1, G_WRITE, G_UNMAP, G_QUIT };

static void grantee_start(struct grantee *g, uint32_t ref)
{
	tap_link_init(&g->link);
	g->pid = tap_fork_domain(2, &g->link);
	if (g->pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		CHECK_OK(gd_map1(fd, 1, ref, &idx));
		volatile char *q = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		tap_send(&g->link, 0);
		for (;;) {
			uint64_t cmd = tap_recv(&g->link);
			if (cmd == G_READ_BYTE) {
				/* wait up to a second for the byte to clear */
				tap_send(&g->link,
					 cleared_within(q, 1000) ? 0 : (unsigned char)q[0]);
			} else if (cmd == G_WRITE) {
				q[1] = 'w';
				tap_send(&g->link, 0);
			} else if (cmd == G_UNMAP) {
				munmap((void *)q, PAGE);
				CHECK_OK(gd_unmap(fd, idx, 1));
				tap_send(&g->link, 0);
			} else {
				break;
			}
		}
		close(fd);
		tap_child_exit();
	}
	tap_recv(&g->link);
}

static uint64_t grantee_ask(struct grantee *g, uint64_t cmd)
{
	tap_send(&g->link, cmd);
	return tap_recv(&g->link);
}

static void grantee_stop(struct grantee *g)
{
	tap_send(&g->link, G_QUIT);
	tap_wait_ok(g->pid);
	tap_link_close(&g->link);
}

/* Domain 1 allocates one page for domain 2, byte 0 = 'x', CLEAR_BYTE armed
 * on byte 0, and maps it at *p. */
static int armed_page(uint32_t *ref, uint64_t *idx, char **p)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	CHECK_OK(ga_alloc(fd, 2, 1, 1, idx, ref));
	*p = map_pages(fd, *idx, 1, PROT_READ | PROT_WRITE);
	CHECK(*p != MAP_FAILED);
	(*p)[0] = 'x';
	CHECK_OK(ga_notify(fd, *idx, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	return fd;
}

/* ---- gntalloc ----------------------------------------------------------- */

TEST_TIMEOUT(gntalloc_dealloc_while_mapped, 30)
{
	uint32_t ref;
	uint64_t idx;
	char *p;
	int fd = armed_page(&ref, &idx, &p);
	struct grantee g;
	grantee_start(&g, ref);
	CHECK_OK(ga_dealloc(fd, idx, 1));
	/* Dealloc succeeded; the index is gone for us, the page is not. */
	CHECK_ERR(map_pages(fd, idx, 1, PROT_READ), ENOENT);
	CHECK_ERR(ga_notify(fd, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0), ENOENT);
	CHECK_EQ(p[0], 'x');
	CHECK_EQ(grantee_ask(&g, G_WRITE), 0);
	CHECK_EQ(p[1], 'w');
	CHECK(can_map(2, ref));
	/* The last munmap tears it down: the byte goes, the grantee's
	 * mapping stays valid. */
	munmap(p, PAGE);
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 0);
	CHECK_EQ(grantee_ask(&g, G_WRITE), 0);
	/* Still mappable while the grantee maps it (deferred end) ... */
	CHECK(can_map(2, ref));
	CHECK_EQ(grantee_ask(&g, G_UNMAP), 0);
	/* ... and ends about a second after the last unmap. */
	usleep(1500 * 1000);
	CHECK(!can_map(2, ref));
	grantee_stop(&g);
	close(fd);
}

TEST(gntalloc_munmap_without_dealloc_frees_nothing)
{
	uint32_t ref;
	uint64_t idx;
	char *p;
	int fd = armed_page(&ref, &idx, &p);
	struct grantee g;
	grantee_start(&g, ref);
	munmap(p, PAGE);
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 'x');
	CHECK(can_map(2, ref));
	/* It can be mapped again: the file still owns the page. */
	p = map_pages(fd, idx, 1, PROT_READ);
	CHECK(p != MAP_FAILED);
	CHECK_EQ(p[0], 'x');
	munmap(p, PAGE);
	/* Teardown at dealloc. */
	CHECK_OK(ga_dealloc(fd, idx, 1));
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 0);
	grantee_stop(&g);
	close(fd);
}

TEST(gntalloc_close_while_mapped_waits_for_munmap)
{
	uint32_t ref;
	uint64_t idx;
	char *p;
	int fd = armed_page(&ref, &idx, &p);
	struct grantee g;
	grantee_start(&g, ref);
	close(fd);
	/* The release waits for the mapping. */
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 'x');
	p[2] = 'c';
	CHECK(can_map(2, ref));
	munmap(p, PAGE);
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 0);
	grantee_stop(&g);
}

TEST(gntalloc_partial_munmap_releases_nothing)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t refs[3];
	CHECK_OK(ga_alloc(fd, 2, 1, 3, &idx, refs));
	char *p = map_pages(fd, idx, 3, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	p[PAGE] = 'x';
	CHECK_OK(ga_notify(fd, idx + PAGE, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	struct grantee g;
	grantee_start(&g, refs[1]);
	CHECK_OK(ga_dealloc(fd, idx, 3));
	munmap(p + PAGE, PAGE); /* the armed page itself */
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 'x');
	munmap(p, PAGE);
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 'x');
	munmap(p + 2 * PAGE, PAGE); /* the last piece */
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 0);
	grantee_stop(&g);
	close(fd);
}

TEST(gntalloc_fork_shares_the_mapping)
{
	uint32_t ref;
	uint64_t idx;
	char *p;
	int fd = armed_page(&ref, &idx, &p);
	struct grantee g;
	grantee_start(&g, ref);
	CHECK_OK(ga_dealloc(fd, idx, 1));
	struct tap_link l;
	tap_link_init(&l);
	pid_t child = fork();
	if (child == 0) {
		tap_link_child(&l);
		close(fd);
		p[3] = 'f'; /* the same page */
		tap_send(&l, 0);
		tap_recv(&l); /* until told to go */
		munmap(p, PAGE);
		tap_child_exit();
	}
	tap_link_parent(&l);
	tap_recv(&l);
	CHECK_EQ(p[3], 'f');
	/* Our munmap is not the last one: the child still maps it. */
	munmap(p, PAGE);
	close(fd);
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 'x');
	tap_send(&l, 0);
	tap_wait_ok(child);
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 0);
	tap_link_close(&l);
	grantee_stop(&g);
}

TEST(gntalloc_exit_and_exec_release)
{
	char *arg0 = NULL;
	for (int kind = 0; kind < 2; kind++) {
		uint32_t ref;
		struct grantee g;
		struct tap_link l;
		tap_link_init(&l);
		pid_t pid = tap_fork_domain(1, &l);
		if (pid == 0) {
			uint64_t idx;
			char *p;
			armed_page(&ref, &idx, &p);
			tap_send(&l, ref);
			tap_recv(&l);
			if (kind == 0)
				_exit(0); /* exit with everything open */
			/* exec: the CLOEXEC fd and the mapping go, the process stays */
			execl("/bin/sleep", "sleep", "5", arg0);
			_exit(1);
		}
		ref = (uint32_t)tap_recv(&l);
		grantee_start(&g, ref);
		tap_send(&l, 0);
		CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 0);
		kill(pid, SIGKILL);
		tap_wait(pid);
		grantee_stop(&g);
		tap_link_close(&l);
	}
}

/* SIGKILL of the granter at each stage. */
TEST_TIMEOUT(gntalloc_sigkill_at_every_stage, 40)
{
	for (int stage = 0; stage < 4; stage++) {
		struct tap_link l;
		tap_link_init(&l);
		pid_t pid = tap_fork_domain(1, &l);
		if (pid == 0) {
			int fd = open_gntalloc();
			uint64_t idx;
			uint32_t ref;
			CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
			if (stage >= 1) {
				char *p = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
				CHECK(p != MAP_FAILED);
				p[0] = 'x';
				if (stage >= 2)
					CHECK_OK(ga_notify(fd, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0));
				if (stage >= 3)
					CHECK_OK(ga_dealloc(fd, idx, 1));
			}
			tap_send(&l, ref);
			pause();
			_exit(0);
		}
		uint32_t ref = (uint32_t)tap_recv(&l);
		if (stage < 2) {
			/* Not mapped by anyone: the grant ends with the process. */
			kill(pid, SIGKILL);
			tap_wait(pid);
			double end = tap_now_ms() + 1000;
			while (can_map(2, ref) && tap_now_ms() < end)
				usleep(1000);
			CHECK(!can_map(2, ref));
		} else {
			struct grantee g;
			grantee_start(&g, ref);
			kill(pid, SIGKILL);
			tap_wait(pid);
			/* The dying kernel fires the notification; the grantee's
			 * mapping stays valid. */
			CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 0);
			CHECK_EQ(grantee_ask(&g, G_WRITE), 0);
			CHECK(can_map(2, ref));
			CHECK_EQ(grantee_ask(&g, G_UNMAP), 0);
			usleep(1500 * 1000);
			CHECK(!can_map(2, ref));
			grantee_stop(&g);
		}
		tap_link_close(&l);
	}
}

TEST_TIMEOUT(ended_ref_is_not_reused_while_pending, 30)
{
	uint32_t ref;
	uint64_t idx;
	char *p;
	int fd = armed_page(&ref, &idx, &p);
	struct grantee g;
	grantee_start(&g, ref);
	CHECK_OK(ga_dealloc(fd, idx, 1));
	munmap(p, PAGE);
	CHECK_EQ(grantee_ask(&g, G_READ_BYTE), 0);
	uint32_t other;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &other));
	CHECK(other != ref);
	CHECK_EQ(grantee_ask(&g, G_UNMAP), 0);
	usleep(1500 * 1000);
	CHECK_OK(ga_dealloc(fd, idx, 1));
	/* Now both are free; the last freed comes back first. */
	uint32_t again;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &again));
	CHECK_EQ(again, other);
	grantee_stop(&g);
	close(fd);
}

/* ---- gntdev ------------------------------------------------------------- */

/* Domain 2 (a child) maps domain 1's page with CLEAR_BYTE armed on byte 0
 * and then does `steps`; the parent watches the byte in its own mapping. */
enum {
	S_MMAP = 1 << 0,
	S_MUNMAP = 1 << 1,
	S_UNMAP = 1 << 2,
	S_CLOSE = 1 << 3,
	S_ARM_BEFORE_MMAP = 1 << 4,
};

static pid_t mapper(uint32_t ref, int steps, struct tap_link *l)
{
	tap_link_init(l);
	pid_t pid = tap_fork_domain(2, l);
	if (pid == 0) {
		int fd = open_gntdev();
		uint64_t idx;
		char *q = NULL;
		CHECK_OK(gd_map1(fd, 1, ref, &idx));
		if (steps & S_ARM_BEFORE_MMAP)
			CHECK_OK(gd_notify(fd, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0));
		if (steps & S_MMAP) {
			q = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
			CHECK(q != MAP_FAILED);
			if (!(steps & S_ARM_BEFORE_MMAP))
				CHECK_OK(gd_notify(fd, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0));
		}
		tap_send(l, 0);
		/* each step on request, so the parent can look in between */
		if (steps & S_MUNMAP) {
			tap_recv(l);
			munmap(q, PAGE);
			tap_send(l, 0);
		}
		if (steps & S_UNMAP) {
			tap_recv(l);
			CHECK_OK(gd_unmap(fd, idx, 1));
			tap_send(l, 0);
		}
		if (steps & S_CLOSE) {
			tap_recv(l);
			close(fd);
			tap_send(l, 0);
		}
		tap_recv(l);
		tap_child_exit();
	}
	tap_recv(l);
	return pid;
}

static void step(struct tap_link *l)
{
	tap_send(l, 0);
	tap_recv(l);
}

static int granter_page(uint32_t *ref, char **p)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, ref));
	*p = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(*p != MAP_FAILED);
	(*p)[0] = 'x';
	return fd;
}

TEST(gntdev_munmap_then_unmap_fires_at_unmap)
{
	uint32_t ref;
	char *p;
	int fd = granter_page(&ref, &p);
	struct tap_link l;
	pid_t pid = mapper(ref, S_MMAP | S_MUNMAP | S_UNMAP, &l);
	step(&l); /* munmap: the map is still listed */
	CHECK(!cleared_within(p, 100));
	step(&l); /* UNMAP: destroyed now */
	CHECK(cleared_within(p, 1000));
	tap_send(&l, 0);
	tap_wait_ok(pid);
	tap_link_close(&l);
	munmap(p, PAGE);
	close(fd);
}

TEST(gntdev_unmap_while_mapped_then_munmap)
{
	uint32_t ref;
	char *p;
	int fd = granter_page(&ref, &p);
	/* In one process: UNMAP first, the grant stays until munmap. */
	tap_set_domid(2);
	int g = open_gntdev();
	uint64_t idx;
	CHECK_OK(gd_map1(g, 1, ref, &idx));
	char *q = map_pages(g, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(q != MAP_FAILED);
	CHECK_OK(gd_notify(g, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	CHECK_OK(gd_unmap(g, idx, 1));
	q[5] = 'u';
	CHECK_EQ(p[5], 'u');
	CHECK_EQ(p[0], 'x');
	munmap(q, PAGE);
	CHECK_EQ(p[0], 0); /* by the time munmap returns */
	close(g);
	munmap(p, PAGE);
	close(fd);
}

TEST(gntdev_close_while_mapped_waits_for_munmap)
{
	uint32_t ref;
	char *p;
	int fd = granter_page(&ref, &p);
	tap_set_domid(2);
	int g = open_gntdev();
	uint64_t idx;
	CHECK_OK(gd_map1(g, 1, ref, &idx));
	char *q = map_pages(g, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(q != MAP_FAILED);
	CHECK_OK(gd_notify(g, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	close(g);
	CHECK(!cleared_within(p, 100));
	q[6] = 'c';
	CHECK_EQ(p[6], 'c');
	munmap(q, PAGE);
	CHECK(cleared_within(p, 1000));
	munmap(p, PAGE);
	close(fd);
}

TEST(gntdev_never_mmapped_map_does_not_clear)
{
	uint32_t ref;
	char *p;
	int fd = granter_page(&ref, &p);
	struct tap_link l;
	pid_t pid = mapper(ref, S_ARM_BEFORE_MMAP | S_UNMAP, &l);
	step(&l);
	CHECK(!cleared_within(p, 200));
	tap_send(&l, 0);
	tap_wait_ok(pid);
	tap_link_close(&l);
	CHECK_EQ(p[0], 'x');
	munmap(p, PAGE);
	close(fd);
}

TEST(gntdev_partial_munmap_clears_at_the_end)
{
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t refs[2];
	CHECK_OK(ga_alloc(fd, 2, 1, 2, &idx, refs));
	char *p = map_pages(fd, idx, 2, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	p[PAGE] = 'x';
	tap_set_domid(2);
	int g = open_gntdev();
	uint64_t gi;
	CHECK_OK(gd_map(g, 1, 2, refs, &gi));
	char *q = map_pages(g, gi, 2, PROT_READ | PROT_WRITE);
	CHECK(q != MAP_FAILED);
	CHECK_OK(gd_notify(g, gi + PAGE, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	CHECK_OK(gd_unmap(g, gi, 2));
	munmap(q + PAGE, PAGE); /* the byte's own page */
	CHECK_EQ(p[PAGE], 'x');
	q[0] = 'y'; /* the rest still works */
	CHECK_EQ(p[0], 'y');
	munmap(q, PAGE);
	CHECK_EQ(p[PAGE], 0);
	close(g);
	munmap(p, 2 * PAGE);
	close(fd);
}

TEST(gntdev_fork_child_shares_the_mapping)
{
	uint32_t ref;
	char *p;
	int fd = granter_page(&ref, &p);
	tap_set_domid(2);
	int g = open_gntdev();
	uint64_t idx;
	CHECK_OK(gd_map1(g, 1, ref, &idx));
	char *q = map_pages(g, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(q != MAP_FAILED);
	CHECK_OK(gd_notify(g, idx, UNMAP_NOTIFY_CLEAR_BYTE, 0));
	struct tap_link l;
	tap_link_init(&l);
	pid_t child = fork();
	if (child == 0) {
		tap_link_child(&l);
		q[7] = 'k'; /* seen by the granter */
		tap_send(&l, 0);
		tap_recv(&l);
		_exit(0); /* exit with the mapping: the last reference */
	}
	tap_link_parent(&l);
	tap_recv(&l);
	CHECK_EQ(p[7], 'k');
	munmap(q, PAGE);
	CHECK_OK(gd_unmap(g, idx, 1));
	close(g);
	CHECK(!cleared_within(p, 100));
	tap_send(&l, 0);
	tap_wait_ok(child);
	CHECK(cleared_within(p, 1000));
	tap_link_close(&l);
	munmap(p, PAGE);
	close(fd);
}

TEST(gntdev_sigkill_at_every_stage)
{
	static const int stages[] = {
		S_ARM_BEFORE_MMAP, /* mapped by MAP only */
		S_MMAP,		   /* mmapped */
		S_MMAP | S_UNMAP,  /* UNMAP'd, still mmapped */
		S_MMAP | S_MUNMAP, /* munmapped, still listed */
	};
	static const int clears[] = { 0, 1, 1, 1 };
	for (unsigned i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
		uint32_t ref;
		char *p;
		int fd = granter_page(&ref, &p);
		struct tap_link l;
		pid_t pid = mapper(ref, stages[i], &l);
		if (stages[i] & S_UNMAP) {
			step(&l);
			CHECK(!cleared_within(p, 50));
		}
		if (stages[i] & S_MUNMAP) {
			step(&l);
			CHECK(!cleared_within(p, 50));
		}
		kill(pid, SIGKILL);
		tap_wait(pid);
		CHECK_EQ(cleared_within(p, 1000), clears[i]);
		tap_link_close(&l);
		munmap(p, PAGE);
		close(fd);
	}
}

TEST_TIMEOUT(gntdev_dead_granter_mapping_stays_valid, 30)
{
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(1, &l);
	if (pid == 0) {
		int fd = open_gntalloc();
		uint64_t idx;
		uint32_t ref;
		CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
		char *p = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
		strcpy(p, "before death");
		tap_send(&l, ref);
		pause();
		_exit(0);
	}
	uint32_t ref = (uint32_t)tap_recv(&l);
	tap_set_domid(2);
	int g = open_gntdev();
	uint64_t idx;
	CHECK_OK(gd_map1(g, 1, ref, &idx));
	char *q = map_pages(g, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(q != MAP_FAILED);
	kill(pid, SIGKILL);
	tap_wait(pid);
	/* The page keeps its content and stays writable. */
	CHECK_EQ(strcmp(q, "before death"), 0);
	strcpy(q, "after death");
	CHECK_EQ(strcmp(q, "after death"), 0);
	munmap(q, PAGE);
	CHECK_OK(gd_unmap(g, idx, 1));
	/* Then it ends. */
	usleep(1500 * 1000);
	CHECK_OK(gd_map1(g, 1, ref, &idx));
	CHECK_ERR(map_pages(g, idx, 1, PROT_READ), EINVAL);
	CHECK_OK(gd_unmap(g, idx, 1));
	close(g);
	tap_link_close(&l);
}

/* ---- failed mmaps (ABI.md §4.8, §4.11 step 7) --------------------------- */

/*
 * No grant of the map was ever mapped (a writable mmap of a read-only
 * grant fails for its only page): at destruction CLEAR_BYTE does nothing,
 * SEND_EVENT still fires. The granter's page is writable by the granter,
 * so a wrong clear would show.
 */
TEST(gntdev_failed_mmap_never_clears_but_sends_the_event)
{
	tap_set_domid(1);
	int ga = open_gntalloc();
	uint64_t ai;
	uint32_t ref;
	CHECK_OK(ga_alloc(ga, 2, 0, 1, &ai, &ref)); /* read-only for domain 2 */
	volatile char *p = map_pages(ga, ai, 1, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	p[0] = 'x';
	int ev = open_evtchn();
	int wp = ev_unbound(ev, 2);
	CHECK(wp > 0);
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int cev = open_evtchn();
		int mp = ev_interdomain(cev, 1, (unsigned)wp);
		CHECK(mp > 0);
		int fd = open_gntdev();
		uint64_t gi;
		CHECK_OK(gd_map1(fd, 1, ref, &gi));
		CHECK_OK(gd_notify(fd, gi, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
				   (unsigned)mp));
		CHECK_ERR(map_pages(fd, gi, 1, PROT_READ | PROT_WRITE), EINVAL);
		tap_send(&l, 0);
		tap_recv(&l);
		CHECK_OK(gd_unmap(fd, gi, 1)); /* destroys the map */
		tap_send(&l, 0);
		tap_recv(&l);
		close(fd);
		close(cev);
		tap_child_exit();
	}
	tap_recv(&l);
	CHECK_EQ(ev_wait_unmask(ev, 100), 0); /* the failed mmap fires nothing */
	CHECK_EQ(p[0], 'x');
	tap_send(&l, 0);
	tap_recv(&l);
	CHECK_EQ(ev_wait_unmask(ev, 2000), (unsigned)wp);
	CHECK_EQ(p[0], 'x'); /* the event came; the byte was never touched */
	tap_send(&l, 0);
	tap_wait_ok(pid);
	tap_link_close(&l);
	close(ev);
	munmap((void *)p, PAGE);
	close(ga);
}

/*
 * A map of good and bad refs: the mmap fails (EINVAL), but the pages that
 * did map stay mapped until the map is destroyed. Seen from the granter:
 * a page it deallocates meanwhile stays mappable (its end is deferred while
 * mapped) long after the grant-end delay, and ends only after the UNMAP;
 * and CLEAR_BYTE armed on a good page clears it at the UNMAP.
 */
TEST_TIMEOUT(gntdev_partly_failed_mmap_holds_its_good_grants_until_the_map_goes, 40)
{
	tap_set_domid(1);
	int ga = open_gntalloc();
	uint64_t ia, ic;
	uint32_t ra, rc;
	CHECK_OK(ga_alloc(ga, 2, 1, 1, &ia, &ra)); /* A: never mapped by the granter */
	CHECK_OK(ga_alloc(ga, 2, 1, 1, &ic, &rc)); /* C: the byte's page */
	char *pc = map_pages(ga, ic, 1, PROT_READ | PROT_WRITE);
	CHECK(pc != MAP_FAILED);
	pc[0] = 'x';
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int fd = open_gntdev();
		uint32_t refs[3] = { ra, 1u << 30, rc }; /* the middle one is bad */
		uint64_t gi;
		CHECK_OK(gd_map(fd, 1, 3, refs, &gi));
		CHECK_OK(gd_notify(fd, gi + 2 * PAGE, UNMAP_NOTIFY_CLEAR_BYTE, 0));
		CHECK_ERR(map_pages(fd, gi, 3, PROT_READ | PROT_WRITE), EINVAL);
		tap_send(&l, 0);
		tap_recv(&l);
		CHECK_OK(gd_unmap(fd, gi, 3));
		tap_send(&l, 0);
		tap_recv(&l);
		close(fd);
		tap_child_exit();
	}
	tap_recv(&l);
	/* Not mapped by us: without the failed map's hold A would end now. */
	CHECK_OK(ga_dealloc(ga, ia, 1));
	usleep(1500 * 1000);
	CHECK(can_map(2, ra));
	CHECK(!cleared_within(pc, 100));
	step(&l); /* UNMAP: the map is destroyed */
	CHECK(cleared_within(pc, 1000));
	usleep(1500 * 1000);
	CHECK(!can_map(2, ra));
	tap_send(&l, 0);
	tap_wait_ok(pid);
	tap_link_close(&l);
	munmap(pc, PAGE);
	close(ga);
}

/* ---- exec (ARCHITECTURE.md, "Where granted differs from Xen") ---------- */

/*
 * A gntdev or gntalloc fd left open across exec (no O_CLOEXEC) is the same
 * file in the new image, as on Linux, and keeps working there: its maps and
 * allocations are still its own, and it takes new ones. (granted documents
 * this because an evtchn fd, unlike these, does not survive exec.)
 *
 * The new image is this program again, started by the child as
 *   --after-exec <gntdev fd> <map index> <gntalloc fd> <alloc index> <rd> <wr>
 */
static int after_exec(char **argv)
{
	int gd = atoi(argv[2]), ga = atoi(argv[4]);
	uint64_t gi = strtoull(argv[3], NULL, 10), ai = strtoull(argv[5], NULL, 10);
	struct tap_link l = { .rd = atoi(argv[6]), .wr = atoi(argv[7]) };
	/* The first call on the gntdev fd is an ioctl, on the gntalloc fd an
	 * mmap: either must find the file. A new map is placed after the one
	 * made before exec: the file's list came along. */
	uint64_t gi2;
	CHECK_OK(gd_map1(gd, 1, 8, &gi2));
	CHECK_EQ(gi2, gi + PAGE);
	CHECK_OK(gd_unmap(gd, gi2, 1));
	/* The map made before exec is still this file's, never mmapped. */
	char *q = map_pages(gd, gi, 1, PROT_READ | PROT_WRITE);
	CHECK(q != MAP_FAILED);
	CHECK_EQ(strcmp(q, "before exec"), 0);
	strcpy(q + 100, "after exec");
	munmap(q, PAGE);
	CHECK_OK(gd_unmap(gd, gi, 1));
	/* gntalloc: the allocation made before exec, mapped first. */
	char *a = map_pages(ga, ai, 1, PROT_READ | PROT_WRITE);
	CHECK(a != MAP_FAILED);
	strcpy(a, "allocated before exec, written after");
	/* A count-0 ALLOC returns the next index (§3.3.8), after the
	 * allocation made before exec. */
	uint64_t next;
	CHECK_OK(ga_alloc(ga, 1, 1, 0, &next, NULL));
	CHECK_EQ(next, ai + PAGE);
	tap_send(&l, 1);
	tap_recv(&l); /* domain 1 has read it */
	munmap(a, PAGE);
	CHECK_OK(ga_dealloc(ga, ai, 1));
	close(gd);
	close(ga);
	tap_send(&l, 2);
	return 0;
}

TEST(gntdev_and_gntalloc_fds_work_after_exec)
{
	tap_set_domid(1);
	int ga = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(ga, 2, 1, 1, &idx, &ref));
	char *p = map_pages(ga, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	strcpy(p, "before exec");
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int gd = open("/dev/xen/gntdev", O_RDWR); /* no O_CLOEXEC: both survive */
		int gfd = open("/dev/xen/gntalloc", O_RDWR);
		CHECK(gd >= 0 && gfd >= 0);
		uint64_t gi, ai;
		uint32_t aref;
		CHECK_OK(gd_map1(gd, 1, ref, &gi));
		CHECK_OK(ga_alloc(gfd, 1, 1, 1, &ai, &aref));
		tap_send(&l, aref);
		int rd = dup(l.rd), wr = dup(l.wr); /* the link's ends are CLOEXEC */
		char a[6][24];
		snprintf(a[0], sizeof(a[0]), "%d", gd);
		snprintf(a[1], sizeof(a[1]), "%llu", (unsigned long long)gi);
		snprintf(a[2], sizeof(a[2]), "%d", gfd);
		snprintf(a[3], sizeof(a[3]), "%llu", (unsigned long long)ai);
		snprintf(a[4], sizeof(a[4]), "%d", rd);
		snprintf(a[5], sizeof(a[5]), "%d", wr);
		fflush(stdout);
		execl("/proc/self/exe", "conf-lifetime", "--after-exec", a[0], a[1], a[2], a[3],
		      a[4], a[5], (char *)NULL);
		tap_fail(__FILE__, __LINE__, "exec: %s", strerror(errno));
	}
	uint32_t aref = (uint32_t)tap_recv(&l);
	CHECK_EQ(tap_recv(&l), 1);
	CHECK_EQ(strcmp(p + 100, "after exec"), 0);
	/* The new image's page of the old allocation, seen by domain 1. */
	int gd = open_gntdev();
	uint64_t gi;
	CHECK_OK(gd_map1(gd, 2, aref, &gi));
	char *q = map_pages(gd, gi, 1, PROT_READ);
	CHECK(q != MAP_FAILED);
	CHECK_EQ(strcmp(q, "allocated before exec, written after"), 0);
	munmap(q, PAGE);
	CHECK_OK(gd_unmap(gd, gi, 1));
	close(gd);
	tap_send(&l, 0);
	CHECK_EQ(tap_recv(&l), 2);
	tap_wait_ok(pid);
	tap_link_close(&l);
	munmap(p, PAGE);
	close(ga);
}

int main(int argc, char **argv)
{
	if (argc > 7 && strcmp(argv[1], "--after-exec") == 0)
		return after_exec(argv);
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
