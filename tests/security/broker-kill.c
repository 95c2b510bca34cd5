/*
 * The broker killed with SIGKILL under its clients (a broker of the test's
 * own, not the harness's):
 *  - pages already mapped keep their data and stay usable, both ways;
 *  - every later call that needs the broker fails at once with EIO (open
 *    of a new device: ENOENT, as for a device that does not exist), and
 *    nothing hangs or crashes;
 *  - a new broker starts on the same socket path (the stale socket is
 *    recognised and replaced) and new clients work with it, while the old
 *    files stay dead rather than reaching the new broker.
 */
#include "../conformance/kabi.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "sec.h"

/* Runs expr and gives its errno (0 if it succeeded). */
#define ERRNO_OF(expr) (errno = 0, (expr) == -1 ? errno : 0)

TEST_TIMEOUT(broker_sigkill_then_restart, 60)
{
	struct private_broker pb;
	sec_private_broker(&pb, false, 0);
	pid_t broker = pb.pid;

	/* Domain 1 grants a page and offers a port; domain 2 maps and binds. */
	tap_set_domid(1);
	int ga = open_gntalloc(), ev1 = open_evtchn();
	uint64_t gidx;
	uint32_t ref;
	CHECK_OK(ga_alloc(ga, 2, GNTALLOC_FLAG_WRITABLE, 1, &gidx, &ref));
	char *p = map_pages(ga, gidx, 1, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	strcpy(p, "before");
	int port1 = ev_unbound(ev1, 2);
	CHECK(port1 > 0);
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int gd = open_gntdev(), ev2 = open_evtchn();
		uint64_t idx;
		CHECK_OK(gd_map1(gd, 1, ref, &idx));
		volatile char *q = map_pages(gd, idx, 1, PROT_READ | PROT_WRITE);
		CHECK(q != MAP_FAILED);
		CHECK_EQ(strcmp((char *)q, "before"), 0);
		int port2 = ev_interdomain(ev2, 1, (unsigned)port1);
		CHECK(port2 > 0);
		CHECK_EQ(ev_wait_unmask(ev2, 1000), port2);
		tap_send(&l, 0);

		/* The broker is dead now. */
		CHECK_EQ(tap_recv(&l), 1);
		CHECK_EQ(strcmp((char *)q, "after, from 1"), 0);
		strcpy((char *)q, "after, from 2");
		int e = ERRNO_OF(ev_notify(ev2, (unsigned)port2));
		tap_note("domain 2: evtchn NOTIFY on a channel bound before -> %s",
			 e ? strerror(e) : "0 (delivered peer to peer)");
		tap_send(&l, (uint64_t)e);
		CHECK_EQ(tap_recv(&l), 2);
		uint64_t idx2;
		e = ERRNO_OF(gd_map1(gd, 1, ref, &idx2));
		tap_note("domain 2: MAP_GRANT_REF -> %s", e ? strerror(e) : "0 (not sent yet)");
		CHECK(e == EIO || e == 0);
		if (e == 0)
			CHECK_ERR(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, gd, (off_t)idx2), EIO);
		char buf[8];
		struct gntdev_grant_copy_segment s = { .len = 8, .flags = 1 };
		s.dest.virt = buf;
		s.source.foreign.domid = 1;
		s.source.foreign.ref = ref;
		struct ioctl_gntdev_grant_copy op = { .count = 1, .segments = &s };
		e = ERRNO_OF(ioctl(gd, IOCTL_GNTDEV_GRANT_COPY, &op));
		tap_note("domain 2: GRANT_COPY -> %s (status %d)", e ? strerror(e) : "0", s.status);
		CHECK(e == EIO || (e == 0 && s.status == 0));
		CHECK_ERR(ev_unbound(ev2, 1), EIO);
		CHECK_ERR(ev_unbind(ev2, (unsigned)port2), EIO);
		CHECK_ERR(open("/dev/xen/gntdev", O_RDWR | O_CLOEXEC), ENOENT);
		/* The page is still there, and still ours. */
		CHECK_EQ(strcmp((char *)q, "after, from 2"), 0);
		CHECK_OK(munmap((void *)q, PAGE));
		CHECK_OK(close(gd));
		CHECK_OK(close(ev2));
		tap_send(&l, 0);
		tap_child_exit();
	}
	CHECK_EQ(tap_recv(&l), 0);
	CHECK_EQ(ev_wait_unmask(ev1, 50), 0);

	CHECK_OK(kill(broker, SIGKILL));
	int st = tap_wait(broker);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

	/* The memory outlives the broker. */
	strcpy(p, "after, from 1");
	tap_send(&l, 1);
	int e2 = (int)tap_recv(&l);
	unsigned got = ev_wait_unmask(ev1, 500);
	tap_note("domain 1: the event from domain 2 %s", got ? "arrived" : "did not arrive");
	if (e2 == 0)
		CHECK_EQ(got, port1);
	CHECK_EQ(strcmp(p, "after, from 2"), 0);
	tap_send(&l, 2);
	CHECK_EQ(tap_recv(&l), 0);
	tap_wait_ok(pid);
	tap_link_close(&l);

	/* Every call that needs the broker: EIO. */
	uint64_t idx;
	uint32_t ref2;
	CHECK_ERR(ga_alloc(ga, 2, 1, 1, &idx, &ref2), EIO);
	CHECK_ERR(ga_dealloc(ga, gidx, 1), EIO);
	CHECK_ERR(ga_notify(ga, gidx, UNMAP_NOTIFY_CLEAR_BYTE, 0), EIO);
	CHECK_ERR(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ga, (off_t)gidx), EIO);
	CHECK_ERR(ev_unbound(ev1, 2), EIO);
	CHECK_ERR(open("/dev/xen/gntalloc", O_RDWR | O_CLOEXEC), ENOENT);
	CHECK_ERR(open("/dev/xen/evtchn", O_RDWR | O_CLOEXEC), ENOENT);
	CHECK_EQ(strcmp(p, "after, from 2"), 0);

	/* A new broker on the same path; new files work, old ones stay dead. */
	pid_t broker2 = sec_start_broker(pb.sock, NULL, 0);
	tap_set_domid(1);
	int ga2 = open_gntalloc();
	CHECK_OK(ga_alloc(ga2, 2, GNTALLOC_FLAG_WRITABLE, 1, &idx, &ref2));
	char *p2 = map_pages(ga2, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(p2 != MAP_FAILED);
	strcpy(p2, "new broker");
	pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int gd = open_gntdev();
		uint64_t gi;
		CHECK_OK(gd_map1(gd, 1, ref2, &gi));
		char *q = map_pages(gd, gi, 1, PROT_READ);
		CHECK(q != MAP_FAILED);
		CHECK_EQ(strcmp(q, "new broker"), 0);
		munmap(q, PAGE);
		close(gd);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_ERR(ga_alloc(ga, 2, 1, 1, &idx, &ref2), EIO);
	CHECK_ERR(ev_unbound(ev1, 2), EIO);
	/* A fork child of an old file cannot attach it to the new broker. */
	pid = fork();
	if (pid == 0) {
		CHECK_ERR(ga_alloc(ga, 2, 1, 1, &idx, &ref2), EIO);
		_exit(0);
	}
	tap_wait_ok(pid);
	munmap(p2, PAGE);
	close(ga2);
	CHECK_OK(munmap(p, PAGE));
	CHECK_OK(close(ga));
	CHECK_OK(close(ev1));
	CHECK_EQ(sec_stop_broker(broker2), 0);
	sec_rmdir(pb.dir);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD);
}
