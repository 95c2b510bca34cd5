/*
 * The broker survives any client dying at any point and frees what it held.
 *
 * Processes of three domains run random mixes of every operation of the
 * three devices against each other's grants and ports (announced in a page
 * they all share), fork, and are killed with SIGKILL at random moments. The
 * broker's open fds and memfds must come back to what they were, and its
 * tables must be empty.
 */
#include "../conformance/kabi.h"

#include <signal.h>
#include <sys/wait.h>

/* What processes tell each other: recent refs and unbound ports. */
struct board {
	volatile uint32_t refs[3][64];	/* [granter domain - 1][slot] */
	volatile uint32_t ports[3][64]; /* [offered to domain - 1][slot]: port | domain << 16 */
	/* what really happened, for the record */
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

/* One client: a random mix, forever, until it is killed (or returns). */
static void client(unsigned domid, uint32_t seed, int steps)
{
	int ga = -1, gd = -1, ev = -1;
	void *maps[8] = { 0 };
	size_t lens[8] = { 0 };
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
		case 4: { /* map some of it, maybe arm a notification */
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
				lens[slot] = PAGE;
				ga_notify(ga, ga_idx[0] + 7, (r >> 16) % 4, (r >> 20) % 8);
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
			void *p = maps[slot]
					  ? MAP_FAILED
					  : map_pages(gd, idx, 1,
						      PROT_READ | ((r >> 24) & 1 ? PROT_WRITE : 0));
			if (p != MAP_FAILED) {
				TALLY(peer_maps);
				maps[slot] = p;
				lens[slot] = PAGE;
				gd_notify(gd, idx, (r >> 25) % 4, (r >> 27) % 8);
			}
			if ((r >> 28) & 1)
				gd_unmap(gd, idx, 1);
			break;
		}
		case 7: { /* unmap something */
			unsigned slot = (r >> 8) % 8;
			if (maps[slot]) {
				munmap(maps[slot], lens[slot]);
				maps[slot] = NULL;
			}
			break;
		}
		case 8: { /* offer a port, or bind to one offered to us */
			if (ev < 0)
				break;
			struct ioctl_evtchn_bind_unbound_port u = { .remote_domain =
									    1 + (r >> 8) % 3 };
			int p = ioctl(ev, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &u);
			if (p > 0)
				board->ports[u.remote_domain - 1][(r >> 12) % 64] =
					(uint32_t)p | (domid << 16);
			break;
		}
		case 9: {
			if (ev < 0)
				break;
			uint32_t v = board->ports[domid - 1][(r >> 8) % 64];
			struct ioctl_evtchn_bind_interdomain b = { .remote_domain = v >> 16,
								   .remote_port = v & 0xffff };
			if (v && ioctl(ev, IOCTL_EVTCHN_BIND_INTERDOMAIN, &b) > 0)
				TALLY(binds);
			break;
		}
		case 10: {
			if (ev < 0)
				break;
			struct ioctl_evtchn_notify n = { .port = 1 + (r >> 8) % 8 };
			ioctl(ev, IOCTL_EVTCHN_NOTIFY, &n);
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
				pid_t pid = fork();
				TALLY(forks);
				if (pid == 0) {
					client(domid, r, 20);
					_exit(0);
				}
				if (pid > 0 && (r >> 12) & 1)
					waitpid(pid, NULL, 0);
			}
			break;
		}
	}
}

static void broker_fds(int *fds, int *memfds)
{
	*fds = tap_proc_fds(tap_broker_pid(), memfds);
}

/* Waits until the broker holds what it held at start. */
static void expect_back_to(int fds0, int memfds0)
{
	int fds = -1, memfds = -1;
	double end = tap_now_ms() + 3000;
	do {
		usleep(10 * 1000);
		broker_fds(&fds, &memfds);
	} while ((fds != fds0 || memfds != memfds0) && tap_now_ms() < end);
	CHECK_EQ(fds, fds0);
	CHECK_EQ(memfds, memfds0);
}

TEST_TIMEOUT(kill_clients_at_random_points, 120)
{
	enum { ROUNDS = 300, PARALLEL = 4 };
	board = mmap(NULL, sizeof(*board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		     0);
	/* A settled baseline: the broker closes its --ready-fd just after
	 * saying it is ready. */
	int fds0, memfds0, again, memfds_again;
	broker_fds(&fds0, &memfds0);
	do {
		usleep(20 * 1000);
		again = fds0;
		memfds_again = memfds0;
		broker_fds(&fds0, &memfds0);
	} while (fds0 != again || memfds0 != memfds_again);
	tap_note("broker before: %d fds, %d memfds", fds0, memfds0);
	uint32_t seed = 0x9e3779b9u ^ (uint32_t)getpid();
	pid_t live[PARALLEL] = { 0 };
	int killed = 0, finished = 0;
	for (int round = 0; round < ROUNDS; round++) {
		int slot = round % PARALLEL;
		if (live[slot]) {
			/* Most die by SIGKILL, at a random point of their work. */
			if (rnd(&seed) % 8)
				kill(-live[slot], SIGKILL);
			int st;
			waitpid(live[slot], &st, 0);
			if (WIFEXITED(st))
				finished++;
			else
				killed++;
			kill(-live[slot], SIGKILL); /* its forked children too */
		}
		unsigned domid = 1 + rnd(&seed) % 3;
		uint32_t s = rnd(&seed);
		pid_t pid = tap_fork_domain(domid, NULL);
		if (pid == 0) {
			setpgid(0, 0);
			client(domid, s | 1, 200 + (int)(s % 400));
			_exit(0);
		}
		setpgid(pid, pid);
		live[slot] = pid;
		usleep(rnd(&seed) % 3000);
	}
	for (int i = 0; i < PARALLEL; i++) {
		if (live[i]) {
			kill(-live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
		}
	}
	tap_note("%d clients killed, %d finished on their own", killed, finished);
	tap_note("done by them: %u allocations, %u own mmaps, %u mmaps of others' grants, "
		 "%u interdomain binds, %u grant copies, %u forks",
		 board->allocs, board->own_maps, board->peer_maps, board->binds, board->copies,
		 board->forks);
	CHECK(board->allocs > 100 && board->peer_maps > 10 && board->binds > 10);
	/* Grants still mapped elsewhere end about a second after the last
	 * unmap: wait for that too. */
	usleep(1200 * 1000);
	expect_back_to(fds0, memfds0);
	int fds, memfds;
	broker_fds(&fds, &memfds);
	tap_note("broker after: %d fds, %d memfds", fds, memfds);
	munmap(board, sizeof(*board));
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
