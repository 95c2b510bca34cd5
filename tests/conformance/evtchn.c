/*
 * /dev/xen/evtchn, check by check: ABI.md §2.5, §5, and what §11-12
 * observed on real Xen.
 */
#include "kabi.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>

/* Linux 6.6's uapi; older headers lack it (ABI.md §5.3, §5.8). */
#ifndef IOCTL_EVTCHN_BIND_STATIC
struct ioctl_evtchn_bind {
	unsigned int port;
};
#define IOCTL_EVTCHN_BIND_STATIC _IOC(_IOC_NONE, 'E', 7, sizeof(struct ioctl_evtchn_bind))
#endif

static int ev_virq(int fd, unsigned virq)
{
	struct ioctl_evtchn_bind_virq op = { .virq = virq };
	return ioctl(fd, IOCTL_EVTCHN_BIND_VIRQ, &op);
}

static int ev_restrict(int fd, unsigned domid)
{
	struct ioctl_evtchn_restrict_domid op = { .domid = (domid_t)domid };
	return ioctl(fd, IOCTL_EVTCHN_RESTRICT_DOMID, &op);
}

static void ev_unmask(int fd, unsigned port)
{
	uint32_t p = port;
	CHECK_EQ(write(fd, &p, 4), 4);
}

static int open_ev_as(unsigned domid)
{
	tap_set_domid(domid);
	return open_evtchn();
}

TEST(unbound_ports_lowest_free_from_1)
{
	int fd = open_ev_as(1);
	CHECK_EQ(ev_unbound(fd, 2), 1);
	CHECK_EQ(ev_unbound(fd, 2), 2);
	CHECK_EQ(ev_unbound(fd, 4000), 3);	 /* no such domain: not checked */
	CHECK_EQ(ev_unbound(fd, DOMID_SELF), 4); /* ourselves */
	CHECK_OK(ev_unbind(fd, 2));
	CHECK_EQ(ev_unbound(fd, 2), 2);
	/* Another file of the same domain shares the port space. */
	int other = open_evtchn();
	CHECK_EQ(ev_unbound(other, 2), 5);
	close(other);
	close(fd);
	fd = open_evtchn();
	CHECK_EQ(ev_unbound(fd, 2), 1); /* closing the file freed them */
	close(fd);
}

TEST(interdomain_errors)
{
	int a = open_ev_as(1);
	int pa = ev_unbound(a, 2);
	int pself = ev_unbound(a, 1);
	CHECK(pa > 0 && pself > 0);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int b = open_evtchn();
		CHECK_ERR(ev_interdomain(b, 9, 1), ESRCH);	/* no such domain */
		CHECK_ERR(ev_interdomain(b, 0x7FF5, 1), ESRCH); /* a reserved id */
		CHECK_ERR(ev_interdomain(b, 1, 77), EINVAL);	/* no such port */
		CHECK_ERR(ev_interdomain(b, 1, 0), EINVAL);	/* port 0 */
		CHECK_ERR(ev_interdomain(b, 1, 5000), EINVAL);	/* beyond the table */
		CHECK_ERR(ev_interdomain(b, 1, pself), EINVAL); /* offered to another */
		int pb = ev_interdomain(b, 1, pa);
		CHECK(pb > 0);
		CHECK_ERR(ev_interdomain(b, 1, pa), EINVAL); /* already connected */
		CHECK_ERR(ioctl(b, IOCTL_EVTCHN_BIND_INTERDOMAIN, (void *)4), EFAULT);
		close(b);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	/* A third domain cannot take a port offered to domain 2. */
	int pa2 = ev_unbound(a, 2);
	pid = tap_fork_domain(3, NULL);
	if (pid == 0) {
		int c = open_evtchn();
		CHECK_ERR(ev_interdomain(c, 1, pa2), EINVAL);
		close(c);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	close(a);
}

TEST(binder_fires_once_at_bind_allocator_gets_nothing)
{
	int a = open_ev_as(1);
	int pa = ev_unbound(a, 2);
	int b = open_ev_as(2);
	int pb = ev_interdomain(b, 1, pa);
	CHECK(pb > 0);
	CHECK_EQ(ev_wait(b, 1000), pb);
	CHECK_EQ(ev_wait(b, 50), 0);
	CHECK_EQ(ev_wait(a, 50), 0);
	close(a);
	close(b);
}

TEST(loopback_channel)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, DOMID_SELF, p1);
	CHECK(p2 > 0);
	CHECK_EQ(ev_wait(fd, 1000), p2); /* the bind event */
	ev_unmask(fd, p2);
	CHECK_OK(ev_notify(fd, p1));
	CHECK_EQ(ev_wait(fd, 1000), p2);
	CHECK_OK(ev_notify(fd, p2));
	CHECK_EQ(ev_wait(fd, 1000), p1);
	close(fd);
}

TEST(unbind_and_notify_errors)
{
	int fd = open_ev_as(1);
	int p = ev_unbound(fd, 2);
	int other = open_evtchn();
	CHECK_ERR(ev_unbind(fd, 100000), EINVAL); /* out of range */
	CHECK_ERR(ev_unbind(fd, 500), ENOTCONN);  /* not bound */
	CHECK_ERR(ev_unbind(other, p), ENOTCONN); /* bound in another file */
	CHECK_ERR(ev_notify(other, p), ENOTCONN);
	CHECK_ERR(ev_notify(fd, 500), ENOTCONN);
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_NOTIFY, (void *)4), EFAULT);
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_UNBIND, (void *)4), EFAULT);
	CHECK_OK(ev_notify(fd, p)); /* unbound: dropped, still 0 */
	CHECK_OK(ev_unbind(fd, p));
	CHECK_ERR(ev_unbind(fd, p), ENOTCONN);
	CHECK_ERR(ev_notify(fd, p), ENOTCONN);
	close(other);
	close(fd);
}

TEST(virqs)
{
	int fd = open_ev_as(2);
	CHECK_ERR(ev_virq(fd, 0), EEXIST);  /* VIRQ_TIMER: the kernel has it */
	CHECK_ERR(ev_virq(fd, 1), EEXIST);  /* VIRQ_DEBUG */
	CHECK_ERR(ev_virq(fd, 24), EINVAL); /* beyond NR_VIRQS */
	CHECK_ERR(ev_virq(fd, 3), EBUSY);   /* global: the hardware domain's */
	CHECK(ev_virq(fd, 7) > 0);	    /* per vcpu, free */
	CHECK_ERR(ev_virq(fd, 7), EEXIST);
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_VIRQ, (void *)4), EFAULT);
	close(fd);
	fd = open_ev_as(0);
	int p = ev_virq(fd, 3); /* VIRQ_DOM_EXC, as xenstored binds it */
	CHECK(p > 0);
	CHECK_ERR(ev_virq(fd, 3), EEXIST);
	CHECK_ERR(ev_virq(fd, 2), EEXIST); /* the console is the kernel's */
	close(fd);
}

TEST(virq_dom_exc_fires_when_a_domain_dies)
{
	int fd = open_ev_as(0);
	int p = ev_virq(fd, 3);
	CHECK(p > 0);
	pid_t pid = tap_fork_domain(7, NULL);
	if (pid == 0) {
		int g = open_gntalloc(); /* domain 7 exists while this is open */
		close(g);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_EQ(ev_wait(fd, 1000), p);
	close(fd);
}

TEST(unknown_ioctls_enosys)
{
	int fd = open_ev_as(1);
	char buf[16] = { 0 };
	CHECK_ERR(ioctl(fd, 0x4711, buf), ENOSYS);
	CHECK_ERR(ioctl(fd, _IOC(_IOC_NONE, 'E', 7, 4), buf), ENOSYS); /* BIND_STATIC: 6.6+ */
	CHECK_ERR(ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, buf), ENOSYS);
	CHECK_ERR(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0), ENODEV);
	close(fd);
}

TEST(restrict_domid)
{
	int fd = open_ev_as(1);
	int early = ev_unbound(fd, 2);
	CHECK_ERR(ev_restrict(fd, 0), EINVAL);
	CHECK_ERR(ev_restrict(fd, 0x7FF0), EINVAL);
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_RESTRICT_DOMID, (void *)4), EFAULT);
	CHECK_OK(ev_restrict(fd, 2));
	CHECK_ERR(ev_restrict(fd, 2), EACCES);
	/* EACCES comes before the argument is even read. */
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_RESTRICT_DOMID, (void *)4), EACCES);
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, (void *)4), EACCES);
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_VIRQ, (void *)4), EACCES);
	CHECK_ERR(ev_unbound(fd, 2), EACCES);
	CHECK_ERR(ev_virq(fd, 7), EACCES);
	/* Only domain 2's ports, and ports already bound stay usable. */
	int b = open_ev_as(2);
	int pb = ev_unbound(b, 1);
	int pc = ev_unbound(b, 3);
	CHECK_ERR(ev_interdomain(fd, 3, pc), EACCES);
	int pa = ev_interdomain(fd, 2, pb);
	CHECK(pa > 0);
	CHECK_OK(ev_notify(fd, pa));
	CHECK_OK(ev_notify(fd, early));
	CHECK_OK(ev_unbind(fd, early));
	close(b);
	close(fd);
}

TEST(read_write_sizes)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1);
	char buf[16];
	CHECK_EQ(read(fd, buf, 3), 0);
	CHECK_EQ(read(fd, buf, 0), 0);
	CHECK_EQ(ev_wait(fd, 1000), p2);
	/* Empty and non-blocking: EAGAIN. */
	int nb = open("/dev/xen/evtchn", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	CHECK_ERR(read(nb, buf, 4), EAGAIN);
	close(nb);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	CHECK_ERR(read(fd, buf, 8), EAGAIN);
	uint32_t ports[2] = { (uint32_t)p2, 9999 };
	CHECK_EQ(write(fd, ports, 6), 4); /* rounded down */
	CHECK_EQ(write(fd, ports, 8), 8); /* unknown ports ignored */
	CHECK_EQ(write(fd, ports, 2), 0);
	CHECK_ERR(write(fd, bad_ptr(4), 4), EFAULT);
	CHECK_ERR(read(fd, bad_ptr(4), 4), EAGAIN); /* nothing to copy: no fault */
	CHECK_OK(ev_notify(fd, p1));
	CHECK_ERR(read(fd, bad_ptr(4), 4), EFAULT);
	/* ...and the port was not consumed by the failed read. */
	uint32_t got;
	CHECK_EQ(read(fd, &got, 4), 4);
	CHECK_EQ(got, p2);
	CHECK_ERR(lseek(fd, 0, SEEK_SET), ESPIPE);
	close(fd);
}

TEST(masking_and_coalescing)
{
	int a = open_ev_as(1);
	int pa = ev_unbound(a, 2);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int b = open_evtchn();
		int pb = ev_interdomain(b, 1, pa);
		CHECK_EQ(ev_wait(b, 1000), pb);
		ev_unmask(b, pb);
		close(b);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	/* the peer is gone: back to unbound, the send is dropped */
	CHECK_OK(ev_notify(a, pa));
	close(a);

	a = open_ev_as(1);
	pa = ev_unbound(a, 1);
	int pb = ev_interdomain(a, 1, pa);
	CHECK_EQ(ev_wait(a, 1000), pb);
	/* pb fired and is masked: these sends coalesce, nothing is delivered */
	CHECK_OK(ev_notify(a, pa));
	CHECK_OK(ev_notify(a, pa));
	CHECK_OK(ev_notify(a, pa));
	CHECK_EQ(ev_wait(a, 50), 0);
	/* unmask: the pending event comes, once */
	ev_unmask(a, pb);
	CHECK_EQ(ev_wait(a, 1000), pb);
	CHECK_EQ(ev_wait(a, 50), 0);
	ev_unmask(a, pb);
	CHECK_EQ(ev_wait(a, 50), 0);
	close(a);
}

TEST(peer_close_turns_unbound_and_rebinds)
{
	int a = open_ev_as(1);
	int pa = ev_unbound(a, 2);
	for (int round = 0; round < 3; round++) {
		pid_t pid = tap_fork_domain(2, NULL);
		if (pid == 0) {
			int b = open_evtchn();
			int pb = ev_interdomain(b, 1, pa);
			CHECK(pb > 0);
			CHECK_EQ(ev_wait(b, 1000), pb);
			ev_unmask(b, pb);
			CHECK_OK(ev_notify(b, pb));
			CHECK_EQ(ev_wait(b, 1000), pb); /* a's reply */
			if (round == 2)
				kill(getpid(), SIGKILL); /* the last one dies */
			close(b);
			tap_child_exit();
		}
		CHECK_EQ(ev_wait(a, 2000), pa);
		ev_unmask(a, pa);
		CHECK_OK(ev_notify(a, pa));
		tap_wait(pid);
		/* No event for the peer's going, and sends are dropped. */
		CHECK_EQ(ev_wait(a, 50), 0);
		CHECK_OK(ev_notify(a, pa));
	}
	close(a);
}

TEST(overflow_efbig_pollerr_until_reset)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1);
	/* Unmask without reading: each send adds an entry to the ring, whose
	 * size is 64 for a single bound port. */
	for (int i = 0; i < 80; i++) {
		ev_unmask(fd, p2);
		CHECK_OK(ev_notify(fd, p1));
	}
	ev_unmask(fd, p2);
	uint32_t buf[4];
	CHECK_ERR(read(fd, buf, 16), EFBIG);
	CHECK_ERR(read(fd, buf, 16), EFBIG);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLERR);
	CHECK_OK(ioctl(fd, IOCTL_EVTCHN_RESET, NULL));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	CHECK_ERR(read(fd, buf, 16), EAGAIN);
	pfd.revents = 0;
	CHECK_EQ(poll(&pfd, 1, 0), 0);
	/* Still masked after reset; writing the port brings it back. */
	ev_unmask(fd, p2);
	CHECK_OK(ev_notify(fd, p1));
	CHECK_EQ(ev_wait(fd, 1000), p2);
	close(fd);
}

TEST(poll_select_epoll)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1);
	CHECK_EQ(ev_wait(fd, 1000), p2);
	ev_unmask(fd, p2);
	struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLOUT };
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLOUT); /* always writable, nothing to read */
	fd_set rs;
	FD_ZERO(&rs);
	FD_SET(fd, &rs);
	struct timeval tv = { 0, 0 };
	CHECK_EQ(select(fd + 1, &rs, NULL, NULL, &tv), 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 42 };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	CHECK_EQ(epoll_wait(ep, &ev, 1, 0), 0);
	CHECK_OK(ev_notify(fd, p1));
	CHECK_EQ(epoll_wait(ep, &ev, 1, 1000), 1);
	CHECK_EQ(ev.data.u32, 42);
	FD_ZERO(&rs);
	FD_SET(fd, &rs);
	tv.tv_sec = 1;
	CHECK_EQ(select(fd + 1, &rs, NULL, NULL, &tv), 1);
	pfd.events = POLLIN;
	CHECK_EQ(poll(&pfd, 1, 1000), 1);
	CHECK_EQ(pfd.revents, POLLIN);
	uint32_t got;
	CHECK_EQ(read(fd, &got, 4), 4);
	CHECK_EQ(got, p2);
	CHECK_EQ(poll(&pfd, 1, 0), 0);
	close(ep);
	close(fd);
}

TEST(blocking_read_wakes_on_notify)
{
	int a = open_ev_as(1);
	int pa = ev_unbound(a, 2);
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int b = open_evtchn();
		int pb = ev_interdomain(b, 1, pa);
		uint32_t got;
		CHECK_EQ(read(b, &got, 4), 4); /* the bind event */
		CHECK_EQ(got, pb);
		ev_unmask(b, pb);
		tap_send(&l, 0);
		CHECK_EQ(read(b, &got, 4), 4); /* blocks until a sends */
		CHECK_EQ(got, pb);
		close(b);
		tap_child_exit();
	}
	tap_recv(&l);
	usleep(50 * 1000);
	CHECK_OK(ev_notify(a, pa));
	tap_wait_ok(pid);
	tap_link_close(&l);
	close(a);
}

TEST(ping_pong_between_two_domains)
{
	enum { ROUNDS = 2000 };
	int a = open_ev_as(1);
	int pa = ev_unbound(a, 2);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		int b = open_evtchn();
		int pb = ev_interdomain(b, 1, pa);
		uint32_t got;
		CHECK_EQ(read(b, &got, 4), 4);
		ev_unmask(b, pb);
		for (int i = 0; i < ROUNDS; i++) {
			CHECK_OK(ev_notify(b, pb));
			CHECK_EQ(read(b, &got, 4), 4);
			CHECK_EQ(got, pb);
			ev_unmask(b, pb);
		}
		close(b);
		tap_child_exit();
	}
	for (int i = 0; i < ROUNDS; i++) {
		uint32_t got;
		CHECK_EQ(read(a, &got, 4), 4);
		CHECK_EQ(got, pa);
		ev_unmask(a, pa);
		CHECK_OK(ev_notify(a, pa));
	}
	tap_wait_ok(pid);
	close(a);
}

TEST(a_thousand_ports_and_the_limit)
{
	int fd = open_ev_as(1);
	int other = open_evtchn();
	for (int i = 1; i <= 1000; i++)
		CHECK_EQ(ev_unbound(fd, 1), i);
	for (int i = 1001; i <= 1023; i++)
		CHECK_EQ(ev_unbound(other, 1), i);
	CHECK_ERR(ev_unbound(fd, 1), ENOSPC);
	/* Loopback on all of them: each one fires. */
	close(other);
	int binder = open_evtchn();
	for (int i = 1; i <= 23; i++)
		CHECK(ev_interdomain(binder, 1, i) > 0);
	int seen = 0;
	fcntl(binder, F_SETFL, O_NONBLOCK);
	uint32_t ports[64];
	ssize_t n;
	while ((n = read(binder, ports, sizeof(ports))) > 0)
		seen += (int)n / 4;
	CHECK_EQ(seen, 23);
	close(binder);
	close(fd);
}

TEST(closing_the_file_unbinds_everything)
{
	int a = open_ev_as(1);
	int pa1 = ev_unbound(a, 2), pa2 = ev_unbound(a, 2);
	int b = open_ev_as(2);
	int pb1 = ev_interdomain(b, 1, pa1), pb2 = ev_interdomain(b, 1, pa2);
	CHECK(pb1 > 0 && pb2 > 0);
	close(b);
	/* a's ports are unbound again, offered to 2, and can be bound anew. */
	b = open_ev_as(2);
	CHECK_EQ(ev_interdomain(b, 1, pa1), 1);
	CHECK_EQ(ev_interdomain(b, 1, pa2), 2);
	close(b);
	close(a);
}

/*
 * Queues n more entries for p2, the loopback partner of p1, in fd's ring:
 * each round writes p2 back (unmask) and sends on p1, so p2 fires again
 * while its earlier entries stay unread. p2 must be masked on entry (it has
 * fired, or is masked after RESET); it is masked again on return.
 */
static void fill_ring(int fd, int p1, int p2, int n)
{
	for (int i = 0; i < n; i++) {
		ev_unmask(fd, p2);
		CHECK_OK(ev_notify(fd, p1));
	}
}

/*
 * With `bound` ports bound in one file, exactly `size` events fit in its
 * ring: `size` entries leave it readable, one more overflows it (ABI.md
 * §5.1: 64 at the first bind, doubled until it holds every bound port).
 */
static void check_ring_size(int bound, int size)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1); /* fires once: the first entry */
	CHECK(p2 > 0);
	for (int i = 2; i < bound; i++)
		CHECK(ev_unbound(fd, 2) > 0);
	fill_ring(fd, p1, p2, size - 1);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLIN); /* full, and nothing lost yet */
	fill_ring(fd, p1, p2, 1);      /* one more has no room */
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLERR);
	uint32_t *buf = calloc(1024, 4);
	CHECK_ERR(read(fd, buf, 4096), EFBIG);
	/* Emptied (p2 stays masked), the ring takes `size` again, and a read
	 * returns every one of them. */
	CHECK_OK(ioctl(fd, IOCTL_EVTCHN_RESET, NULL));
	fill_ring(fd, p1, p2, size);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	CHECK_EQ(read(fd, buf, 4096), size * 4);
	for (int i = 0; i < size; i++)
		CHECK_EQ(buf[i], p2);
	CHECK_ERR(read(fd, buf, 4096), EAGAIN);
	free(buf);
	close(fd);
}

TEST(ring_of_64_holds_64_events_up_to_64_bound_ports)
{
	check_ring_size(2, 64);
	check_ring_size(64, 64); /* ring >= bound ports already: no growth */
}

TEST(ring_doubles_to_128_at_65_bound_ports)
{
	check_ring_size(65, 128);
}

TEST(ring_growth_keeps_queued_entries)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1);
	CHECK_EQ(ev_wait(fd, 1000), p2);
	fill_ring(fd, p1, p2, 3); /* three entries queued in the 64-entry ring */
	for (int i = 2; i < 65; i++)
		CHECK(ev_unbound(fd, 2) > 0); /* the 65th bind doubles the ring */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	uint32_t buf[8];
	CHECK_EQ(read(fd, buf, sizeof(buf)), 12);
	CHECK(buf[0] == (uint32_t)p2 && buf[1] == (uint32_t)p2 && buf[2] == (uint32_t)p2);
	close(fd);
}

TEST(interdomain_copy_in_fault_comes_before_restriction)
{
	int fd = open_ev_as(1);
	CHECK_OK(ev_restrict(fd, 2));
	/* BIND_INTERDOMAIN reads its argument first (its domain is in it):
	 * a bad pointer is EFAULT even on a restricted fd. */
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_INTERDOMAIN, bad_ptr(4)), EFAULT);
	char *edge = edge_buffer(4); /* remote_domain readable, remote_port not */
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_INTERDOMAIN, edge), EFAULT);
	edge_free(edge);
	CHECK_ERR(ev_interdomain(fd, 3, 1), EACCES); /* a good argument: EACCES */
	close(fd);
}

TEST(interdomain_enospc_before_a_bad_remote_port)
{
	int b = open_ev_as(2);
	int pb = ev_unbound(b, 1);
	CHECK(pb > 0);
	int a = open_ev_as(1);
	for (int i = 1; i <= 1023; i++)
		CHECK_EQ(ev_unbound(a, 3), i);
	/* No free local port: ENOSPC, for a good remote port and for bad
	 * ones alike, since Xen takes the local port before it looks at the
	 * remote one. */
	CHECK_ERR(ev_interdomain(a, 2, pb), ENOSPC);
	CHECK_ERR(ev_interdomain(a, 2, 77), ENOSPC);   /* no such port */
	CHECK_ERR(ev_interdomain(a, 2, 0), ENOSPC);    /* port 0 */
	CHECK_ERR(ev_interdomain(a, 2, 5000), ENOSPC); /* beyond the table */
	/* The remote domain is looked up before either (Xen's order). */
	CHECK_ERR(ev_interdomain(a, 9, pb), ESRCH);
	/* One port free again: the bad remote port is EINVAL, the good one
	 * binds on the freed port. */
	CHECK_OK(ev_unbind(a, 500));
	CHECK_ERR(ev_interdomain(a, 2, 77), EINVAL);
	CHECK_EQ(ev_interdomain(a, 2, pb), 500);
	close(a);
	close(b);
}

TEST(unbound_port_copy_in_fault_on_an_unrestricted_fd)
{
	int fd = open_ev_as(1);
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, bad_ptr(4)), EFAULT);
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, NULL), EFAULT);
	/* ...and no port was taken by the failed calls. */
	CHECK_EQ(ev_unbound(fd, 2), 1);
	close(fd);
}

TEST(virq_enospc_when_no_port_is_free)
{
	int fd = open_ev_as(2);
	for (int i = 1; i <= 1023; i++)
		CHECK_EQ(ev_unbound(fd, 1), i);
	CHECK_ERR(ev_virq(fd, 7), ENOSPC); /* a free per-vcpu virq, no port */
	/* Checks that need no port still come first (Xen's order). */
	CHECK_ERR(ev_virq(fd, 24), EINVAL);
	CHECK_ERR(ev_virq(fd, 0), EEXIST);
	CHECK_ERR(ev_virq(fd, 3), EBUSY);
	/* A port freed: the same virq binds, on that port. */
	CHECK_OK(ev_unbind(fd, 321));
	CHECK_EQ(ev_virq(fd, 7), 321);
	close(fd);
}

TEST(unbind_leaves_queued_entries_readable)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1); /* p2 fires at bind */
	CHECK(p2 > 0);
	CHECK_OK(ev_notify(fd, p2)); /* p1 fires */
	/* Both events reached the ring when they were raised (the driver's
	 * interrupt handler); unbinding the ports does not take them back,
	 * even though nothing read or polled the file in between. */
	CHECK_OK(ev_unbind(fd, p2));
	CHECK_OK(ev_unbind(fd, p1));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	uint32_t got[4] = { 0 };
	CHECK_EQ(read(fd, got, sizeof(got)), 8);
	CHECK_EQ(got[0], p2);
	CHECK_EQ(got[1], p1);
	CHECK_ERR(read(fd, got, 4), EAGAIN);
	close(fd);

	/* The same for an event sent by another domain's process. */
	int a = open_ev_as(1);
	int pa = ev_unbound(a, 2);
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int b = open_evtchn();
		int pb = ev_interdomain(b, 1, pa);
		CHECK(pb > 0);
		CHECK_OK(ev_notify(b, pb));
		tap_send(&l, 1);
		CHECK_EQ(tap_recv(&l), 2); /* keep the channel up until a unbound */
		close(b);
		tap_child_exit();
	}
	CHECK_EQ(tap_recv(&l), 1);
	usleep(20 * 1000); /* the sent event has long been delivered */
	CHECK_OK(ev_unbind(a, pa));
	tap_send(&l, 2);
	tap_wait_ok(pid);
	CHECK_EQ(ev_wait(a, 1000), pa);
	tap_link_close(&l);
	close(a);
}

TEST(reset_leaves_delivered_ports_masked)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1);
	CHECK(p2 > 0);
	CHECK_OK(ioctl(fd, IOCTL_EVTCHN_RESET, NULL)); /* drops p2's bind event */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	uint32_t got;
	CHECK_ERR(read(fd, &got, 4), EAGAIN);
	/* p2 was delivered and not written back: still masked, so a send on
	 * it only makes it pending. */
	CHECK_OK(ev_notify(fd, p1));
	CHECK_EQ(ev_wait(fd, 100), 0);
	/* p1 never fired: RESET left it enabled. */
	CHECK_OK(ev_notify(fd, p2));
	CHECK_EQ(ev_wait(fd, 1000), p1);
	/* Unmasking p2 delivers the pending send, once. */
	ev_unmask(fd, p2);
	CHECK_EQ(ev_wait(fd, 1000), p2);
	CHECK_EQ(ev_wait(fd, 50), 0);
	close(fd);
}

TEST(read_rounds_down_and_write_is_capped_at_a_page)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1); /* p2 fires */
	CHECK_OK(ev_notify(fd, p2));	    /* p1 fires */
	CHECK_EQ(poll(&(struct pollfd){ .fd = fd, .events = POLLIN }, 1, 1000), 1);
	uint32_t got[4] = { 0 };
	/* 6 bytes: one whole port, and nothing written past it. */
	CHECK_EQ(read(fd, got, 6), 4);
	CHECK_EQ(got[0], p2);
	CHECK_EQ(got[1], 0);
	CHECK_EQ(read(fd, got, 7), 4);
	CHECK_EQ(got[0], p1);
	/* Both masked now. A write of 8192 bytes handles the first 4096
	 * only: p2 at byte 4096 is not unmasked. */
	uint32_t *big = calloc(2048, 4);
	big[1024] = (uint32_t)p2;
	CHECK_EQ(write(fd, big, 8192), 4096);
	CHECK_EQ(write(fd, big, 8190), 4096);
	CHECK_OK(ev_notify(fd, p1));
	CHECK_EQ(ev_wait(fd, 100), 0);
	/* The last port inside the page is handled. */
	big[1023] = (uint32_t)p2;
	CHECK_EQ(write(fd, big, 8192), 4096);
	CHECK_EQ(ev_wait(fd, 1000), p2);
	free(big);
	close(fd);
}

static volatile sig_atomic_t usr1_seen;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_seen++;
}

/* Returns once pid is asleep (state S), so a signal finds it blocked. */
static void wait_asleep(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 2000; i++) {
		int f = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = f >= 0 ? read(f, buf, sizeof(buf) - 1) : -1;
		if (f >= 0)
			close(f);
		char *rp = n > 0 ? (buf[n] = 0, strrchr(buf, ')')) : NULL;
		if (rp && rp[1] == ' ' && rp[2] == 'S') {
			usleep(20 * 1000); /* and still there: in the read */
			return;
		}
		usleep(1000);
	}
	tap_fail(__FILE__, __LINE__, "process %d never went to sleep", (int)pid);
}

TEST(blocking_read_and_signals_eintr_or_restart)
{
	int a = open_ev_as(1);
	int pa = ev_unbound(a, 2);
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int b = open_evtchn();
		int pb = ev_interdomain(b, 1, pa);
		CHECK_EQ(ev_wait(b, 1000), pb); /* the bind event */
		ev_unmask(b, pb);
		uint32_t got = 0;
		struct sigaction sa = { .sa_handler = on_usr1 };
		sigemptyset(&sa.sa_mask);
		CHECK_OK(sigaction(SIGUSR1, &sa, NULL));
		tap_send(&l, 1);
		/* Without SA_RESTART a signal ends the sleeping read: EINTR. */
		CHECK_ERR(read(b, &got, 4), EINTR);
		CHECK_EQ(usr1_seen, 1);
		sa.sa_flags = SA_RESTART;
		CHECK_OK(sigaction(SIGUSR1, &sa, NULL));
		tap_send(&l, 2);
		/* With SA_RESTART the driver's -ERESTARTSYS restarts the read,
		 * which sleeps on and returns the event sent after the signal. */
		CHECK_EQ(read(b, &got, 4), 4);
		CHECK_EQ(got, pb);
		CHECK_EQ(usr1_seen, 2);
		close(b);
		tap_child_exit();
	}
	CHECK_EQ(tap_recv(&l), 1);
	wait_asleep(pid);
	CHECK_OK(kill(pid, SIGUSR1));
	CHECK_EQ(tap_recv(&l), 2);
	wait_asleep(pid);
	CHECK_OK(kill(pid, SIGUSR1));
	usleep(100 * 1000); /* the restarted read is asleep again by now */
	CHECK_OK(ev_notify(a, pa));
	tap_wait_ok(pid);
	tap_link_close(&l);
	close(a);
}

TEST(writing_a_port_of_another_file_is_ignored)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1);
	CHECK_EQ(ev_wait(fd, 1000), p2); /* p2 is masked now */
	/* Another file of the same domain, in another process, writes p2:
	 * accepted (the count is returned) and ignored. */
	pid_t pid = tap_fork_domain(1, NULL);
	if (pid == 0) {
		int other = open_evtchn();
		CHECK(ev_unbound(other, 2) > 0); /* a port of its own */
		uint32_t port = (uint32_t)p2;
		CHECK_EQ(write(other, &port, 4), 4);
		close(other);
		tap_child_exit();
	}
	tap_wait_ok(pid);
	CHECK_OK(ev_notify(fd, p1));
	CHECK_EQ(ev_wait(fd, 100), 0); /* still masked: nothing delivered */
	ev_unmask(fd, p2);
	CHECK_EQ(ev_wait(fd, 1000), p2);
	close(fd);
}

TEST(poll_reports_rdnorm_and_wrnorm)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1);
	CHECK_EQ(ev_wait(fd, 1000), p2);
	ev_unmask(fd, p2);
	struct pollfd pfd = { .fd = fd, .events = POLLRDNORM | POLLWRNORM };
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLWRNORM); /* always writable */
	pfd.events = POLLRDNORM;
	CHECK_EQ(poll(&pfd, 1, 0), 0);
	CHECK_OK(ev_notify(fd, p1));
	CHECK_EQ(poll(&pfd, 1, 1000), 1);
	CHECK_EQ(pfd.revents, POLLRDNORM);
	pfd.events = POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM;
	CHECK_EQ(poll(&pfd, 1, 0), 1);
	CHECK_EQ(pfd.revents, POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM);
	CHECK_EQ(ev_wait(fd, 0), p2);
	ev_unmask(fd, p2);

	/* A poll asking for POLLRDNORM alone sleeps until another domain's
	 * send makes the ring non-empty. */
	int pa = ev_unbound(fd, 2);
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		int b = open_evtchn();
		int pb = ev_interdomain(b, 1, pa);
		CHECK(pb > 0);
		CHECK_EQ(tap_recv(&l), 1);
		usleep(50 * 1000);
		CHECK_OK(ev_notify(b, pb));
		CHECK_EQ(tap_recv(&l), 2);
		close(b);
		tap_child_exit();
	}
	tap_send(&l, 1);
	pfd.events = POLLRDNORM;
	pfd.revents = 0;
	double t0 = tap_now_ms();
	CHECK_EQ(poll(&pfd, 1, 5000), 1);
	CHECK_EQ(pfd.revents, POLLRDNORM);
	/* Woken by the send (~50 ms), not by the end of the timeout. */
	CHECK(tap_now_ms() - t0 < 2500);
	CHECK_EQ(ev_wait(fd, 0), pa);
	tap_send(&l, 2);
	tap_wait_ok(pid);
	tap_link_close(&l);
	close(fd);
}

/*
 * ARCHITECTURE ("Where granted differs"): ports bound before a fork are
 * delivered to whichever process sharing the file reads first; ports bound
 * later by one of them are that one's.
 */
TEST(fork_ports_bound_before_fork_reach_either_process)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, p1);
	CHECK_EQ(ev_wait(fd, 1000), p2);
	ev_unmask(fd, p2);
	struct tap_link l;
	tap_link_init(&l);
	fflush(stdout);
	pid_t pid = fork(); /* a plain fork: both share the file */
	CHECK(pid >= 0);
	if (pid == 0) {
		tap_link_child(&l);
		tap_send(&l, 1);
		/* The parent's send reaches the child, which is reading. */
		uint32_t got = 0;
		CHECK_EQ(read(fd, &got, 4), 4);
		CHECK_EQ(got, p2);
		ev_unmask(fd, p2); /* the mask is the file's */
		tap_send(&l, 2);
		CHECK_EQ(tap_recv(&l), 3);
		CHECK_OK(ev_notify(fd, p1));
		tap_send(&l, 4);
		CHECK_EQ(tap_recv(&l), 5);
		close(fd);
		tap_child_exit();
	}
	tap_link_parent(&l);
	CHECK_EQ(tap_recv(&l), 1);
	wait_asleep(pid);
	CHECK_OK(ev_notify(fd, p1));
	CHECK_EQ(tap_recv(&l), 2);
	/* The child unmasked p2: the child's send reaches the parent. */
	tap_send(&l, 3);
	CHECK_EQ(tap_recv(&l), 4);
	CHECK_EQ(ev_wait(fd, 1000), p2);
	CHECK_EQ(ev_wait(fd, 50), 0); /* once, to one process */
	tap_send(&l, 5);
	tap_wait_ok(pid);
	/* The parent alone keeps the port working. */
	ev_unmask(fd, p2);
	CHECK_OK(ev_notify(fd, p1));
	CHECK_EQ(ev_wait(fd, 1000), p2);
	tap_link_close(&l);
	close(fd);
}

/*
 * Ports bound after a fork. The driver has one ring per file: whichever
 * process reads it takes the event. granted's ring is per process, filled
 * by the process that looks (read, poll, an ioctl): a port bound by the
 * child is the child's while the parent leaves the file alone, and an event
 * of it that the parent's poll finds is the parent's from then on (it
 * learns the port), never lost and never delivered twice.
 */
TEST(fork_ports_bound_after_fork_go_to_the_process_that_looks)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1); /* the parent has a port of its own */
	CHECK(p1 > 0);
	struct tap_link l;
	tap_link_init(&l);
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		tap_link_child(&l);
		int q1 = ev_unbound(fd, 1);
		int q2 = ev_interdomain(fd, 1, q1);
		CHECK(q2 > 0);
		/* The parent does not look: every event of q2 is the child's. */
		CHECK_EQ(ev_wait(fd, 2000), q2);
		for (int i = 0; i < 20; i++) {
			ev_unmask(fd, q2);
			CHECK_OK(ev_notify(fd, q1));
			CHECK_EQ(ev_wait(fd, 2000), q2);
		}
		ev_unmask(fd, q2);
		tap_send(&l, (uint64_t)q1 | (uint64_t)q2 << 16);
		/* The parent polls and takes the next one: not the child's. */
		CHECK_EQ(tap_recv(&l), 1);
		CHECK_EQ(ev_wait(fd, 200), 0);
		tap_send(&l, 2);
		close(fd);
		tap_child_exit();
	}
	tap_link_parent(&l);
	uint64_t qs = tap_recv(&l);
	int q1 = (int)(qs & 0xffff), q2 = (int)(qs >> 16);
	/* Sending on the child's ports is allowed: they are bound in this file. */
	CHECK_OK(ev_notify(fd, q1));
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	CHECK_EQ(poll(&pfd, 1, 2000), 1);
	CHECK_EQ(pfd.revents, POLLIN);
	uint32_t got;
	CHECK_EQ(read(fd, &got, 4), 4);
	CHECK_EQ(got, (uint32_t)q2);
	tap_send(&l, 1);
	CHECK_EQ(tap_recv(&l), 2);
	tap_wait_ok(pid);
	/* The port is the parent's now: masked until it writes it back. */
	CHECK_OK(ev_notify(fd, q1));
	CHECK_EQ(ev_wait(fd, 100), 0);
	ev_unmask(fd, q2);
	CHECK_EQ(ev_wait(fd, 1000), q2);
	tap_link_close(&l);
	close(fd);
}

/* The new image of evtchn_fd_does_not_survive_exec. */
static int after_exec(int fd, unsigned port, unsigned remote_port)
{
	/* The fd number is still open in the new image... */
	CHECK(fcntl(fd, F_GETFD) >= 0);
	/* ...but it is no event-channel file any more: what is left is the
	 * epoll set, whose ioctl answers ENOTTY (EINVAL since Linux 6.9,
	 * which gave epoll ioctls of its own). */
	errno = 0;
	CHECK_EQ(ev_notify(fd, port), -1);
	CHECK(errno == ENOTTY || errno == EINVAL);
	errno = 0;
	CHECK_EQ(ev_unbound(fd, 1), -1);
	CHECK(errno == ENOTTY || errno == EINVAL);
	/* And the exec released the file: the port it had bound is gone, so
	 * the remote port is unbound again and this domain can bind it anew,
	 * while this image still holds the old fd number. */
	int fresh = open_evtchn();
	int p = -1;
	for (int i = 0; i < 200 && p < 0; i++) {
		p = ev_interdomain(fresh, 1, remote_port);
		if (p < 0)
			usleep(10 * 1000);
	}
	CHECK(p > 0);
	close(fresh);
	close(fd);
	return 0;
}

TEST(evtchn_fd_does_not_survive_exec)
{
	int a = open_ev_as(1);
	int pa = ev_unbound(a, 2);
	pid_t pid = tap_fork_domain(2, NULL);
	if (pid == 0) {
		/* No O_CLOEXEC: the fd number crosses exec. */
		int b = open("/dev/xen/evtchn", O_RDWR);
		CHECK(b >= 0);
		int pb = ev_interdomain(b, 1, pa);
		CHECK(pb > 0);
		CHECK_EQ(ev_wait(b, 1000), pb);
		char env[64];
		snprintf(env, sizeof(env), "%d:%d:%d", b, pb, pa);
		setenv("EVTCHN_AFTER_EXEC", env, 1);
		execl("/proc/self/exe", "evtchn-after-exec", (char *)NULL);
		tap_fail(__FILE__, __LINE__, "exec: %s", strerror(errno));
	}
	tap_wait_ok(pid);
	close(a);
}

TEST(bind_static_is_enosys_as_before_linux_6_6)
{
	/* granted emulates a kernel without BIND_STATIC (ARCHITECTURE,
	 * "Where granted differs"): the command is unknown, so ENOSYS comes
	 * before anything else — a bad pointer is not EFAULT, a port bound
	 * here is not EISCONN, a free port does not return 0. */
	int fd = open_ev_as(1);
	int p = ev_unbound(fd, 2);
	struct ioctl_evtchn_bind op = { .port = (unsigned)p };
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_STATIC, &op), ENOSYS);
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_STATIC, bad_ptr(4)), ENOSYS);
	op.port = 700;
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_STATIC, &op), ENOSYS);
	/* Nothing was bound: 700 is not this file's, p still is. */
	CHECK_ERR(ev_notify(fd, 700), ENOTCONN);
	CHECK_OK(ev_notify(fd, p));
	/* The same on a restricted fd. */
	CHECK_OK(ev_restrict(fd, 2));
	op.port = (unsigned)p;
	CHECK_ERR(ioctl(fd, IOCTL_EVTCHN_BIND_STATIC, &op), ENOSYS);
	CHECK_OK(ev_unbind(fd, p));
	close(fd);
}

int main(int argc, char **argv)
{
	int fd, port, rport;
	const char *after = getenv("EVTCHN_AFTER_EXEC");
	if (after && sscanf(after, "%d:%d:%d", &fd, &port, &rport) == 3)
		return after_exec(fd, (unsigned)port, (unsigned)rport);
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}

static volatile sig_atomic_t sigio_seen;

static void on_sigio(int sig)
{
	(void)sig;
	sigio_seen = 1;
}

/*
 * fasync is not emulated (ARCHITECTURE.md, "Where granted differs"): the
 * driver would send SIGIO when the ring gets an event; granted's fd is an
 * epoll set, which has no fasync, so O_ASYNC is accepted and dropped and
 * no SIGIO comes. Pinned so that a change is noticed.
 */
TEST(fasync_is_accepted_and_dropped)
{
	int fd = open_ev_as(1);
	int p1 = ev_unbound(fd, 1);
	int p2 = ev_interdomain(fd, 1, (unsigned)p1);
	CHECK(p1 > 0 && p2 > 0);
	CHECK_EQ(ev_wait_unmask(fd, 1000), (unsigned)p2); /* the bind event */
	struct sigaction sa = { .sa_handler = on_sigio }, old;
	CHECK_OK(sigaction(SIGIO, &sa, &old));
	sigio_seen = 0;
	CHECK_OK(fcntl(fd, F_SETOWN, getpid()));
	int fl = fcntl(fd, F_GETFL);
	CHECK(fl >= 0);
	CHECK_OK(fcntl(fd, F_SETFL, fl | O_ASYNC));
	CHECK_EQ(fcntl(fd, F_GETFL) & O_ASYNC, 0);
	CHECK_OK(ev_notify(fd, (unsigned)p1));
	usleep(50 * 1000);
	CHECK_EQ(sigio_seen, 0);
	CHECK_EQ(ev_wait_unmask(fd, 1000), (unsigned)p2); /* read works as always */
	CHECK_OK(sigaction(SIGIO, &old, NULL));
	close(fd);
}
