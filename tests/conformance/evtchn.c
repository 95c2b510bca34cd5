/*
 * /dev/xen/evtchn, check by check: ABI.md §2.5, §5, and what §11-12
 * observed on real Xen.
 */
#include "kabi.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>

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

/* The next pending port within ms, or 0. */
static unsigned ev_wait(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, ms) != 1)
		return 0;
	uint32_t port;
	if (read(fd, &port, 4) != 4)
		return 0;
	return port;
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

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
