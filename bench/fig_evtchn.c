/*
 * Figures 3 and 4: an event from one domain to another, and the unmap
 * notification of a granter that is SIGKILLed; beside an eventfd
 * ping-pong and a socket's EOF at its peer's death.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int ev_unbound(int fd, unsigned rdom)
{
	struct ioctl_evtchn_bind_unbound_port op = { .remote_domain = rdom };
	int r = ioctl(fd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &op);
	return r < 0 ? -errno : r;
}

static int ev_interdomain(int fd, unsigned rdom, unsigned rport)
{
	struct ioctl_evtchn_bind_interdomain op = { .remote_domain = rdom, .remote_port = rport };
	int r = ioctl(fd, IOCTL_EVTCHN_BIND_INTERDOMAIN, &op);
	return r < 0 ? -errno : r;
}

static int ev_notify(int fd, unsigned port)
{
	struct ioctl_evtchn_notify op = { .port = port };
	return ioctl(fd, IOCTL_EVTCHN_NOTIFY, &op) < 0 ? -errno : 0;
}

static int ev_unbind(int fd, unsigned port)
{
	struct ioctl_evtchn_unbind op = { .port = port };
	return ioctl(fd, IOCTL_EVTCHN_UNBIND, &op) < 0 ? -errno : 0;
}

static int ev_unmask(int fd, uint32_t port)
{
	return write(fd, &port, sizeof(port)) == sizeof(port) ? 0 : -errno;
}

/* Blocks in read() for the next port and unmasks it; -errno on failure. */
static int ev_take(int fd)
{
	uint32_t port;
	if (read(fd, &port, sizeof(port)) != sizeof(port))
		return -errno;
	int r = ev_unmask(fd, port);
	return r < 0 ? r : (int)port;
}

/* The next port within ms (0: none), still masked. */
static int ev_wait_masked(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint32_t port;
	int r = poll(&pfd, 1, ms);
	if (r < 0)
		return -errno;
	if (r == 0)
		return 0;
	return read(fd, &port, sizeof(port)) == sizeof(port) ? (int)port : -errno;
}

/* The next port within ms (0: none), unmasked again. */
static int ev_wait(int fd, int ms)
{
	int port = ev_wait_masked(fd, ms);
	int r = port > 0 ? ev_unmask(fd, (uint32_t)port) : 0;
	return r < 0 ? r : port;
}

/* ---- figure 3: notify -> wake ------------------------------------------- */

enum pp_mode { PP_STOP, PP_EVTCHN, PP_EVENTFD };

/* Process B, domain 2: answers each event with one, recording when it woke. */
static void ponger(struct link *l, int efd_ab, int efd_ba)
{
	int fd = open_dev("/dev/xen/evtchn");
	int port = fd < 0 ? -ENODEV : ev_unbound(fd, 1);
	if (link_send(l, (uint64_t)(int64_t)port) < 0 || port < 0)
		_exit(1);
	uint64_t *ts = NULL;
	for (;;) {
		uint64_t mode, n, one = 1, v;
		if (link_recv(l, &mode) < 0 || mode == PP_STOP || link_recv(l, &n) < 0)
			_exit(0);
		uint64_t *nts = realloc(ts, n * sizeof(*ts));
		if (!nts)
			_exit(1);
		ts = nts;
		for (uint64_t i = 0; i < n; i++) {
			if (mode == PP_EVTCHN) {
				uint32_t p;
				if (read(fd, &p, sizeof(p)) != sizeof(p))
					_exit(1);
				ts[i] = now_ns();
				if (write(fd, &p, sizeof(p)) != sizeof(p) ||
				    ev_notify(fd, port) < 0)
					_exit(1);
			} else {
				if (raw_read(efd_ab, &v, sizeof(v)) != sizeof(v))
					_exit(1);
				ts[i] = now_ns();
				if (raw_write(efd_ba, &one, sizeof(one)) != sizeof(one))
					_exit(1);
			}
		}
		if (link_send_buf(l, ts, n * sizeof(*ts)) < 0)
			_exit(1);
	}
}

struct pinger {
	struct link *l;
	int fd, port, efd_ab, efd_ba;
	uint64_t *ta, *tb;
};

/* One block of n exchanges; adds round trip / 2 and one-way samples. */
static int ping_block(struct pinger *p, enum pp_mode mode, unsigned n, struct samples *rt,
		      struct samples *ow)
{
	if (link_send(p->l, mode) < 0 || link_send(p->l, n) < 0)
		return -EPIPE;
	alarm(30); /* a lost event ends the figure instead of hanging it */
	int r = 0;
	for (unsigned i = 0; i < n && r == 0; i++) {
		uint64_t one = 1, v;
		uint64_t t0 = now_ns();
		p->ta[i] = t0;
		if (mode == PP_EVTCHN) {
			r = ev_notify(p->fd, (unsigned)p->port);
			if (r == 0 && (r = ev_take(p->fd)) > 0)
				r = 0;
		} else if (raw_write(p->efd_ab, &one, sizeof(one)) != sizeof(one) ||
			   raw_read(p->efd_ba, &v, sizeof(v)) != sizeof(v)) {
			r = -errno;
		}
		if (r == 0 && rt)
			samples_add(rt, (double)(now_ns() - t0) / 2);
	}
	alarm(0);
	if (r < 0)
		return r;
	if (link_recv_buf(p->l, p->tb, n * sizeof(uint64_t)) < 0)
		return -EPIPE;
	for (unsigned i = 0; ow && i < n; i++)
		samples_add(ow, (double)(int64_t)(p->tb[i] - p->ta[i]));
	return 0;
}

int fig_evtchn(void)
{
	struct link l;
	int efd_ab = eventfd(0, EFD_CLOEXEC), efd_ba = eventfd(0, EFD_CLOEXEC);
	if (efd_ab < 0 || efd_ba < 0 || link_init(&l) < 0)
		return 1;
	int keep[2] = { efd_ab, efd_ba };
	pid_t b = fork_domain(2, opt.cpu_b, &l, keep, 2);
	if (b == 0)
		ponger(&l, efd_ab, efd_ba);
	uint64_t v;
	if (b < 0 || link_recv(&l, &v) < 0 || (int64_t)v <= 0) {
		fprintf(stderr, "granted-bench: domain 2 could not offer a port\n");
		kill_wait(b);
		return 1;
	}
	set_domid(1);
	struct bench_op ev_rt = { .name = "evtchn rt/2" }, ev_ow = { .name = "evtchn one way" };
	struct bench_op fd_rt = { .name = "eventfd rt/2" }, fd_ow = { .name = "eventfd one way" };
	unsigned per = scaled(1000, 50), rounds = scaled(20, 2);
	struct pinger p = { .l = &l, .efd_ab = efd_ab, .efd_ba = efd_ba };
	p.ta = calloc(per, sizeof(uint64_t));
	p.tb = calloc(per, sizeof(uint64_t));
	p.fd = open_dev("/dev/xen/evtchn");
	p.port = p.fd < 0 ? -ENODEV : ev_interdomain(p.fd, 2, (unsigned)v);
	if (p.port > 0 && ev_wait(p.fd, 2000) != p.port) /* the bind event */
		result_note("3", "no event at BIND_INTERDOMAIN on the binder's side");
	if (p.port < 0)
		ev_rt.err = ev_ow.err = p.port;
	if (!p.ta || !p.tb)
		return 1;
	for (unsigned r = 0; r <= rounds; r++) {
		/* round 0 warms both up; the order alternates */
		bool warm = r == 0;
		for (int k = 0; k < 2; k++) {
			bool evt = (r + (unsigned)k) % 2 == 0;
			struct bench_op *rt = evt ? &ev_rt : &fd_rt, *ow = evt ? &ev_ow : &fd_ow;
			if (rt->err)
				continue;
			int e = ping_block(&p, evt ? PP_EVTCHN : PP_EVENTFD, per,
					   warm ? NULL : &rt->s, warm ? NULL : &ow->s);
			if (e < 0) {
				rt->err = ow->err = e;
				goto out; /* the ponger is out of step now */
			}
		}
	}
out:
	link_send(&l, PP_STOP);
	struct result_line *row =
		result_row("3", "evtchn NOTIFY -> read() wakes, round trip/2", &ev_rt);
	result_prim(row, "eventfd write -> read() wakes, round trip/2", &fd_rt);
	row = result_row("3", "evtchn NOTIFY -> read() wakes, one way", &ev_ow);
	result_prim(row, "eventfd write -> read() wakes, one way", &fd_ow);
	result_note("3", "round trip/2 includes the unmask write() after each read(); one way: "
			 "from before NOTIFY in A to read() returning in B (CLOCK_MONOTONIC)");
	int ok = 0;
	if (ev_rt.err || fd_rt.err)
		kill_wait(b); /* it may be waiting for an event that never came */
	else
		ok = wait_ok(b);
	if (p.fd >= 0)
		close(p.fd);
	close(efd_ab);
	close(efd_ba);
	link_close(&l);
	free(p.ta);
	free(p.tb);
	samples_free(&ev_rt.s);
	samples_free(&ev_ow.s);
	samples_free(&fd_rt.s);
	samples_free(&fd_ow.s);
	return ok;
}

/* ---- figure 4: SIGKILL -> unmap notification ---------------------------- */

#define NOTIFY_OFF 100
#define MARK	   0x5a

/*
 * Domain 1, the granter, as libxengntshr shares a page with a notification:
 * ALLOC, mmap, SET_UNMAP_NOTIFY (clear a byte, send on the channel bound to
 * the watcher's unbound port), DEALLOC at once; then waits to be killed.
 */
static void victim(struct link *l, unsigned wport)
{
	int ga = open_dev("/dev/xen/gntalloc"), ev = open_dev("/dev/xen/evtchn");
	int lport = ev < 0 ? -ENODEV : ev_interdomain(ev, 2, wport);
	struct ioctl_gntalloc_alloc_gref a = { .domid = 2,
					       .flags = GNTALLOC_FLAG_WRITABLE,
					       .count = 1 };
	if (ga < 0 || lport < 0 || ioctl(ga, IOCTL_GNTALLOC_ALLOC_GREF, &a) < 0)
		_exit(1);
	char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ga, (off_t)a.index);
	if (p == MAP_FAILED)
		_exit(1);
	p[NOTIFY_OFF] = MARK;
	struct ioctl_gntalloc_unmap_notify n = { .index = a.index + NOTIFY_OFF,
						 .action = UNMAP_NOTIFY_CLEAR_BYTE |
							   UNMAP_NOTIFY_SEND_EVENT,
						 .event_channel_port = (uint32_t)lport };
	struct ioctl_gntalloc_dealloc_gref d = { .index = a.index, .count = 1 };
	if (ioctl(ga, IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, &n) < 0 ||
	    ioctl(ga, IOCTL_GNTALLOC_DEALLOC_GREF, &d) < 0)
		_exit(1);
	if (link_send(l, a.gref_ids[0]) < 0)
		_exit(1);
	for (;;)
		pause();
}

struct watcher {
	int gd, ev;
	bool yield;	    /* spin with sched_yield(): we share a CPU with the others */
	unsigned anomalies; /* event before the byte was cleared */
	unsigned lost;
};

/* One kill; adds to byte (spinning on it) or to event (blocked for it). */
static int kill_once(struct watcher *w, struct samples *byte, struct samples *event)
{
	struct link l;
	int wport = ev_unbound(w->ev, 1);
	if (wport < 0)
		return wport;
	if (link_init(&l) < 0)
		return -EMFILE;
	pid_t pid = fork_domain(1, opt.cpu_b, &l, NULL, 0);
	if (pid == 0)
		victim(&l, (unsigned)wport);
	uint64_t ref;
	int r = pid < 0 ? -errno : link_recv(&l, &ref);
	struct ioctl_gntdev_map_grant_ref m = { .count = 1 };
	volatile char *view = MAP_FAILED;
	bool mapped = false;
	if (r == 0) {
		m.refs[0].domid = 1;
		m.refs[0].ref = (uint32_t)ref;
		if (ioctl(w->gd, IOCTL_GNTDEV_MAP_GRANT_REF, &m) < 0)
			r = -errno;
		else
			mapped = true;
	}
	if (r == 0) {
		view = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, w->gd, (off_t)m.index);
		if (view == MAP_FAILED)
			r = -errno;
		else if (view[NOTIFY_OFF] != MARK)
			r = -EILSEQ;
	}
	if (r == 0) {
		uint64_t t0 = now_ns(), t1 = 0;
		kill(pid, SIGKILL);
		if (byte) {
			unsigned spins = 0;
			while (view[NOTIFY_OFF] != 0) {
				/* On the victim's or the broker's CPU, spinning would
				 * keep them off it for a whole time slice. */
				if (w->yield)
					sched_yield();
				if (++spins % 4096 == 0 && now_ns() - t0 > 5000000000u)
					break;
			}
			t1 = now_ns();
			if (view[NOTIFY_OFF] != 0)
				r = -ETIMEDOUT;
			else
				samples_add(byte, (double)(t1 - t0));
			/* The event must follow; not timed. */
			if (ev_wait(w->ev, 5000) != wport)
				w->lost++;
		} else {
			int got = ev_wait_masked(w->ev, 5000);
			t1 = now_ns();
			if (got > 0)
				ev_unmask(w->ev, (uint32_t)got);
			if (got == wport)
				samples_add(event, (double)(t1 - t0));
			else
				w->lost++;
			if (got == wport && view[NOTIFY_OFF] != 0)
				w->anomalies++;
		}
	}
	kill_wait(pid);
	if (view != MAP_FAILED)
		munmap((void *)view, PAGE);
	if (mapped) {
		struct ioctl_gntdev_unmap_grant_ref u = { .index = m.index, .count = 1 };
		ioctl(w->gd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &u);
	}
	ev_unbind(w->ev, (unsigned)wport);
	link_close(&l);
	return r;
}

/* The primitive: SIGKILL -> the peer's blocked read() returns 0 (EOF). */
static int kill_eof_once(struct samples *s)
{
	int sv[2];
	char c = 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t pid = fork_domain(1, opt.cpu_b, NULL, &sv[1], 1);
	if (pid == 0) {
		if (send(sv[1], &c, 1, 0) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(sv[1]);
	int r = 0;
	if (pid < 0 || raw_read(sv[0], &c, 1) != 1) {
		r = -EPIPE;
	} else {
		uint64_t t0 = now_ns();
		kill(pid, SIGKILL);
		ssize_t k = raw_read(sv[0], &c, 1);
		uint64_t t1 = now_ns();
		if (k == 0)
			samples_add(s, (double)(t1 - t0));
		else
			r = -EPROTO;
	}
	kill_wait(pid);
	close(sv[0]);
	return r;
}

int fig_kill(void)
{
	set_domid(2);
	struct watcher w = { .gd = open_dev("/dev/xen/gntdev"), .ev = open_dev("/dev/xen/evtchn") };
	struct bench_op byte = { .name = "byte" }, event = { .name = "event" },
			eof = { .name = "eof" };
	if (w.gd < 0 || w.ev < 0)
		byte.err = event.err = -ENODEV;
	w.yield = opt.cpu_a == opt.cpu_b || opt.cpu_a == opt.cpu_broker || opt.cpu_broker < 0;
	if (w.yield)
		result_note("4", "the watcher shares a CPU with the victim or the broker: it spins "
				 "on the byte with sched_yield()");
	uint64_t start = now_ns();
	unsigned warm = opt.kills / 50 + 2;
	struct samples scratch = { 0 };
	for (unsigned i = 0; i < opt.kills + warm; i++) {
		bool keep = i >= warm;
		int r;
		if (!byte.err && (r = kill_once(&w, keep ? &byte.s : &scratch, NULL)) < 0)
			byte.err = r;
		if (!event.err && (r = kill_once(&w, NULL, keep ? &event.s : &scratch)) < 0)
			event.err = r;
		if (!eof.err && (r = kill_eof_once(keep ? &eof.s : &scratch)) < 0)
			eof.err = r;
	}
	samples_free(&scratch);
	double secs = (double)(now_ns() - start) / 1e9;
	struct result_line *row =
		result_row("4", "SIGKILL granter -> mapper sees byte cleared", &byte);
	result_prim(row, "SIGKILL -> peer's read() sees socket EOF", &eof);
	row = result_row("4", "SIGKILL granter -> mapper's poll+read has event", &event);
	result_prim(row, "SIGKILL -> peer's read() sees socket EOF", &eof);
	if (w.lost || w.anomalies)
		result_verdict("4", V_FAIL,
			       "%u events missing within 5 s; %u events came before the byte "
			       "was cleared",
			       w.lost, w.anomalies);
	result_note("4",
		    "%u kills for each row (+%u warm-up), a fresh granter each, %.1f s in all; "
		    "the watcher spins on the byte (row 1) or sleeps in poll (row 2)",
		    opt.kills, warm, secs);
	if (w.gd >= 0)
		close(w.gd);
	if (w.ev >= 0)
		close(w.ev);
	samples_free(&byte.s);
	samples_free(&event.s);
	samples_free(&eof.s);
	return 0;
}
