/*
 * Unmap notifications with events (ABI.md §3.5, §3.7, §3.9, §4.8, §4.12,
 * §6, §12): the byte is cleared, then the event sent, on every trigger, for
 * both devices; the event reference keeps the port open after the evtchn
 * file that bound it is closed.
 *
 * Domain 1 grants, domain 2 maps. The side that arms the notification has a
 * channel to the other side, whose end (the watcher) waits for the event.
 */
#include "kabi.h"

#include <poll.h>
#include <signal.h>

/*
 * A channel between the notifier (this process, as domain `mine`) and a
 * watcher file of domain `peer` (also opened here: delivery goes to the
 * watcher's fd wherever it lives). Returns the notifier's local port.
 */
struct chan {
	int mine_fd, watch_fd;
	unsigned mine_port, watch_port;
};

static void chan_open(struct chan *c, unsigned mine, unsigned peer)
{
	tap_set_domid(peer);
	c->watch_fd = open_evtchn();
	int wp = ev_unbound(c->watch_fd, mine);
	CHECK(wp > 0);
	tap_set_domid(mine);
	c->mine_fd = open_evtchn();
	int mp = ev_interdomain(c->mine_fd, peer, wp);
	CHECK(mp > 0);
	c->mine_port = mp;
	c->watch_port = wp;
	CHECK_EQ(ev_wait_unmask(c->mine_fd, 1000), mp); /* the bind event */
}

static void chan_close(struct chan *c)
{
	if (c->mine_fd >= 0)
		close(c->mine_fd);
	close(c->watch_fd);
}

/* The event arrived, and by then the byte was already 0. */
static void expect_clear_then_event(struct chan *c, volatile char *byte)
{
	CHECK_EQ(ev_wait_unmask(c->watch_fd, 2000), c->watch_port);
	CHECK_EQ(*byte, 0);
}

static void expect_nothing(struct chan *c, volatile char *byte, char was)
{
	CHECK_EQ(ev_wait_unmask(c->watch_fd, 100), 0);
	CHECK_EQ(*byte, was);
}

/* ---- gntalloc: the granter arms, the grantee watches ------------------- */

struct gpage {
	int fd;
	uint64_t idx;
	uint32_t ref;
	char *p;
	int gfd; /* domain 2's gntdev, keeping its own view of the page */
	char *view;
	uint64_t gidx;
};

static void gpage_open(struct gpage *g)
{
	tap_set_domid(1);
	g->fd = open_gntalloc();
	CHECK_OK(ga_alloc(g->fd, 2, 1, 1, &g->idx, &g->ref));
	g->p = map_pages(g->fd, g->idx, 1, PROT_READ | PROT_WRITE);
	CHECK(g->p != MAP_FAILED);
	g->p[10] = 'x';
	tap_set_domid(2);
	g->gfd = open_gntdev();
	CHECK_OK(gd_map1(g->gfd, 1, g->ref, &g->gidx));
	g->view = map_pages(g->gfd, g->gidx, 1, PROT_READ);
	CHECK(g->view != MAP_FAILED);
}

static void gpage_close(struct gpage *g)
{
	munmap(g->view, PAGE);
	gd_unmap(g->gfd, g->gidx, 1);
	close(g->gfd);
	if (g->fd >= 0)
		close(g->fd);
}

TEST(gntalloc_event_at_dealloc_of_an_unmapped_page)
{
	struct chan c;
	struct gpage g;
	chan_open(&c, 1, 2);
	gpage_open(&g);
	CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	munmap(g.p, PAGE);
	expect_nothing(&c, g.view + 10, 'x');
	CHECK_OK(ga_dealloc(g.fd, g.idx, 1));
	expect_clear_then_event(&c, g.view + 10);
	gpage_close(&g);
	chan_close(&c);
}

TEST(gntalloc_event_at_last_munmap_after_dealloc)
{
	struct chan c;
	struct gpage g;
	chan_open(&c, 1, 2);
	gpage_open(&g);
	CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	CHECK_OK(ga_dealloc(g.fd, g.idx, 1)); /* libxengntshr does this at once */
	expect_nothing(&c, g.view + 10, 'x');
	munmap(g.p, PAGE);
	/* by the time munmap returns */
	CHECK_EQ(g.view[10], 0);
	expect_clear_then_event(&c, g.view + 10);
	gpage_close(&g);
	chan_close(&c);
}

TEST(gntalloc_event_at_close)
{
	struct chan c;
	struct gpage g;
	chan_open(&c, 1, 2);
	gpage_open(&g);
	CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_SEND_EVENT, c.mine_port));
	munmap(g.p, PAGE);
	close(g.fd);
	g.fd = -1;
	/* SEND_EVENT alone: the byte stays. */
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 2000), c.watch_port);
	CHECK_EQ(g.view[10], 'x');
	gpage_close(&g);
	chan_close(&c);
}

TEST(event_reference_keeps_the_port_open)
{
	struct chan c;
	struct gpage g;
	chan_open(&c, 1, 2);
	gpage_open(&g);
	CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	CHECK_OK(ga_dealloc(g.fd, g.idx, 1));
	/* The notifier's evtchn fd goes away; the notification still holds
	 * the port, so the channel is still connected... */
	close(c.mine_fd);
	c.mine_fd = -1;
	expect_nothing(&c, g.view + 10, 'x');
	/* ...and the event still gets through when it fires. */
	munmap(g.p, PAGE);
	expect_clear_then_event(&c, g.view + 10);
	gpage_close(&g);
	chan_close(&c);
}

TEST(overwrite_and_clear)
{
	struct chan c;
	struct gpage g;
	chan_open(&c, 1, 2);
	gpage_open(&g);
	CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_SEND_EVENT, c.mine_port));
	CHECK_OK(ga_notify(g.fd, g.idx + 11, UNMAP_NOTIFY_CLEAR_BYTE, 0)); /* replaces it */
	g.p[11] = 'y';
	CHECK_OK(ga_dealloc(g.fd, g.idx, 1));
	munmap(g.p, PAGE);
	CHECK_EQ(g.view[11], 0);
	CHECK_EQ(g.view[10], 'x');
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 100), 0); /* the event was replaced */
	gpage_close(&g);

	gpage_open(&g);
	CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	CHECK_OK(ga_notify(g.fd, g.idx + 10, 0, 0)); /* cleared */
	CHECK_OK(ga_dealloc(g.fd, g.idx, 1));
	munmap(g.p, PAGE);
	expect_nothing(&c, g.view + 10, 'x');
	gpage_close(&g);
	chan_close(&c);
}

TEST(gntalloc_event_on_exit_exec_and_sigkill)
{
	for (int how = 0; how < 3; how++) {
		struct chan c;
		chan_open(&c, 1, 2);
		struct tap_link l;
		tap_link_init(&l);
		unsigned port = c.mine_port;
		int keep = c.mine_fd;
		/* The notifier's process holds the evtchn fd, the page, the
		 * notification; then it goes. */
		pid_t pid = fork();
		if (pid == 0) {
			tap_link_child(&l);
			tap_set_domid(1);
			int fd = open_gntalloc();
			uint64_t idx;
			uint32_t ref;
			CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
			char *p = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
			p[10] = 'x';
			CHECK_OK(ga_notify(fd, idx + 10,
					   UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
					   port));
			CHECK_OK(ga_dealloc(fd, idx, 1));
			tap_send(&l, ref);
			tap_recv(&l);
			if (how == 0)
				_exit(0);
			if (how == 1)
				execl("/bin/sleep", "sleep", "3", (char *)NULL);
			pause();
			_exit(1);
		}
		tap_link_parent(&l);
		close(keep); /* only the child holds the notifier's evtchn now */
		c.mine_fd = -1;
		uint32_t ref = (uint32_t)tap_recv(&l);
		tap_set_domid(2);
		int gfd = open_gntdev();
		uint64_t gidx;
		CHECK_OK(gd_map1(gfd, 1, ref, &gidx));
		volatile char *view = map_pages(gfd, gidx, 1, PROT_READ);
		CHECK(view != MAP_FAILED);
		CHECK_EQ(view[10], 'x');
		tap_send(&l, 0);
		if (how == 2)
			kill(pid, SIGKILL);
		expect_clear_then_event(&c, view + 10);
		/* The rest of the page is intact, the mapping still valid. */
		CHECK_EQ(view[11], 0);
		kill(pid, SIGKILL);
		tap_wait(pid);
		munmap((void *)view, PAGE);
		CHECK_OK(gd_unmap(gfd, gidx, 1));
		close(gfd);
		tap_link_close(&l);
		chan_close(&c);
	}
}

/* ---- gntdev: the mapper arms, the granter watches ---------------------- */

struct mpage {
	int gafd;
	uint32_t ref;
	char *p; /* the granter's view */
	int fd;
	uint64_t idx;
	char *q;
};

static void mpage_open(struct mpage *m, int do_mmap)
{
	tap_set_domid(1);
	m->gafd = open_gntalloc();
	uint64_t gi;
	CHECK_OK(ga_alloc(m->gafd, 2, 1, 1, &gi, &m->ref));
	m->p = map_pages(m->gafd, gi, 1, PROT_READ | PROT_WRITE);
	CHECK(m->p != MAP_FAILED);
	m->p[20] = 'x';
	tap_set_domid(2);
	m->fd = open_gntdev();
	CHECK_OK(gd_map1(m->fd, 1, m->ref, &m->idx));
	m->q = NULL;
	if (do_mmap) {
		m->q = map_pages(m->fd, m->idx, 1, PROT_READ | PROT_WRITE);
		CHECK(m->q != MAP_FAILED);
	}
}

static void mpage_close(struct mpage *m)
{
	if (m->fd >= 0)
		close(m->fd);
	munmap(m->p, PAGE);
	close(m->gafd);
}

TEST(gntdev_clear_unmap_event_at_unmap_after_munmap)
{
	struct chan c;
	struct mpage m;
	chan_open(&c, 2, 1);
	mpage_open(&m, 1);
	CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	munmap(m.q, PAGE);
	expect_nothing(&c, m.p + 20, 'x');
	CHECK_OK(gd_unmap(m.fd, m.idx, 1));
	CHECK_EQ(m.p[20], 0); /* when UNMAP returns */
	expect_clear_then_event(&c, m.p + 20);
	mpage_close(&m);
	chan_close(&c);
}

TEST(gntdev_event_at_munmap_after_unmap)
{
	struct chan c;
	struct mpage m;
	chan_open(&c, 2, 1);
	mpage_open(&m, 1);
	CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	CHECK_OK(gd_unmap(m.fd, m.idx, 1));
	expect_nothing(&c, m.p + 20, 'x');
	munmap(m.q, PAGE);
	expect_clear_then_event(&c, m.p + 20);
	mpage_close(&m);
	chan_close(&c);
}

TEST(gntdev_never_mmapped_sends_the_event_only)
{
	struct chan c;
	struct mpage m;
	chan_open(&c, 2, 1);
	mpage_open(&m, 0);
	CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	CHECK_OK(gd_unmap(m.fd, m.idx, 1));
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 2000), c.watch_port);
	CHECK_EQ(m.p[20], 'x');
	mpage_close(&m);
	chan_close(&c);
}

TEST(gntdev_event_at_close)
{
	struct chan c;
	struct mpage m;
	chan_open(&c, 2, 1);
	mpage_open(&m, 1);
	CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	munmap(m.q, PAGE);
	close(m.fd); /* no UNMAP: the release does it */
	m.fd = -1;
	expect_clear_then_event(&c, m.p + 20);
	mpage_close(&m);
	chan_close(&c);
}

TEST(gntdev_event_on_exit_exec_and_sigkill)
{
	for (int how = 0; how < 3; how++) {
		struct chan c;
		chan_open(&c, 2, 1);
		tap_set_domid(1);
		int gafd = open_gntalloc();
		uint64_t gi;
		uint32_t ref;
		CHECK_OK(ga_alloc(gafd, 2, 1, 1, &gi, &ref));
		volatile char *p = map_pages(gafd, gi, 1, PROT_READ | PROT_WRITE);
		p[20] = 'x';
		struct tap_link l;
		tap_link_init(&l);
		unsigned port = c.mine_port;
		pid_t pid = fork();
		if (pid == 0) {
			tap_link_child(&l);
			tap_set_domid(2);
			int fd = open_gntdev();
			uint64_t idx;
			CHECK_OK(gd_map1(fd, 1, ref, &idx));
			char *q = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
			CHECK(q != MAP_FAILED);
			CHECK_OK(gd_notify(fd, idx + 20,
					   UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
					   port));
			tap_send(&l, 0);
			tap_recv(&l);
			if (how == 0)
				_exit(0);
			if (how == 1)
				execl("/bin/sleep", "sleep", "3", (char *)NULL);
			pause();
			_exit(1);
		}
		tap_link_parent(&l);
		close(c.mine_fd);
		c.mine_fd = -1;
		tap_recv(&l);
		tap_send(&l, 0);
		if (how == 2)
			kill(pid, SIGKILL);
		expect_clear_then_event(&c, p + 20);
		kill(pid, SIGKILL);
		tap_wait(pid);
		munmap((void *)p, PAGE);
		close(gafd);
		tap_link_close(&l);
		chan_close(&c);
	}
}

TEST(send_to_a_closed_peer_is_dropped)
{
	struct chan c;
	struct gpage g;
	chan_open(&c, 1, 2);
	gpage_open(&g);
	CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	close(c.watch_fd); /* the peer goes: our port turns unbound */
	tap_set_domid(2);
	c.watch_fd = open_evtchn();
	CHECK_OK(ga_dealloc(g.fd, g.idx, 1));
	munmap(g.p, PAGE);
	CHECK_EQ(g.view[10], 0); /* the byte still goes */
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 100), 0);
	gpage_close(&g);
	chan_close(&c);
}

/* ---- event references, port lifetime, at most once -------------------- */

/*
 * Domain `mine` binds a new port to the watcher's port and drops it again.
 * That works only while the watcher's port is unbound, i.e. once the
 * notifier's old port (c->mine_port) is really closed (ABI.md §2.5: closing
 * one end turns the peer back to unbound, offered to the closer). While a
 * notification's event reference keeps the old port open the watcher's port
 * is still connected, and the bind is EINVAL. Returns the new port or -errno.
 */
static int rebind(struct chan *c, unsigned mine, unsigned peer)
{
	tap_set_domid(mine);
	int fd = open_evtchn();
	errno = 0;
	int p = ev_interdomain(fd, peer, c->watch_port);
	int e = errno;
	if (p > 0)
		CHECK_EQ(ev_wait_unmask(fd, 1000), p); /* the binder's event */
	close(fd);
	return p > 0 ? p : -e;
}

/* The notifier's port is closed: the watcher's port can be bound again,
 * and the old port number is free (ports are handed out lowest first). */
static void expect_port_closed(struct chan *c, unsigned mine, unsigned peer)
{
	int p = rebind(c, mine, peer);
	CHECK(p > 0);
	CHECK(p <= (int)c->mine_port);
}

TEST(replaced_or_cleared_send_event_releases_the_port)
{
	/* ABI.md §3.5 step 5, §4.8 step 6: overwriting a SEND_EVENT
	 * notification (with another action, or action 0) drops its event
	 * reference. Closing the notifier's evtchn fd must then really close
	 * the port, on both devices. */
	for (int how = 0; how < 2; how++) {
		unsigned again = how == 0 ? UNMAP_NOTIFY_CLEAR_BYTE : 0;
		/* gntalloc */
		struct chan c;
		struct gpage g;
		chan_open(&c, 1, 2);
		gpage_open(&g);
		CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_SEND_EVENT, c.mine_port));
		close(c.mine_fd);
		c.mine_fd = -1;
		/* Still armed: the reference holds the port, still connected. */
		CHECK_EQ(rebind(&c, 1, 2), -EINVAL);
		CHECK_OK(ga_notify(g.fd, g.idx + 10, again, 0));
		expect_port_closed(&c, 1, 2);
		munmap(g.p, PAGE);
		gpage_close(&g);
		chan_close(&c);

		/* gntdev */
		struct mpage m;
		chan_open(&c, 2, 1);
		mpage_open(&m, 1);
		CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_SEND_EVENT, c.mine_port));
		close(c.mine_fd);
		c.mine_fd = -1;
		CHECK_EQ(rebind(&c, 2, 1), -EINVAL);
		CHECK_OK(gd_notify(m.fd, m.idx + 20, again, 0));
		expect_port_closed(&c, 2, 1);
		munmap(m.q, PAGE);
		mpage_close(&m);
		chan_close(&c);
	}
}

TEST(gntalloc_pages_of_one_allocation_notify_separately)
{
	/* ABI.md §3.5: one notification per page, not per allocation. Two
	 * pages of one ALLOC, each armed on its own channel: deallocating one
	 * fires that one only; the other fires at its own DEALLOC. */
	struct chan c0, c1;
	chan_open(&c0, 1, 2);
	chan_open(&c1, 1, 2);
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t refs[2];
	CHECK_OK(ga_alloc(fd, 2, 1, 2, &idx, refs));
	char *p = map_pages(fd, idx, 2, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	p[10] = 'x';
	p[PAGE + 20] = 'y';
	tap_set_domid(2);
	int g = open_gntdev();
	uint64_t gi;
	CHECK_OK(gd_map(g, 1, 2, refs, &gi));
	volatile char *view = map_pages(g, gi, 2, PROT_READ);
	CHECK(view != MAP_FAILED);
	CHECK_OK(ga_notify(fd, idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c0.mine_port));
	CHECK_OK(ga_notify(fd, idx + PAGE + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c1.mine_port));
	munmap(p, 2 * PAGE);
	CHECK_OK(ga_dealloc(fd, idx + PAGE, 1));
	expect_clear_then_event(&c1, view + PAGE + 20);
	expect_nothing(&c0, view + 10, 'x');
	CHECK_OK(ga_dealloc(fd, idx, 1));
	expect_clear_then_event(&c0, view + 10);
	expect_nothing(&c1, view + PAGE + 20, 0);
	munmap((void *)view, 2 * PAGE);
	CHECK_OK(gd_unmap(g, gi, 2));
	close(g);
	close(fd);
	chan_close(&c0);
	chan_close(&c1);
}

TEST(gntalloc_never_mmapped_page_fires_at_dealloc)
{
	/* ABI.md §3.5 step 7: the notification is armed whether or not the
	 * page is mmapped, and a page its owner never mapped is torn down at
	 * DEALLOC: byte, then event. The grantee wrote the byte. */
	struct chan c;
	chan_open(&c, 1, 2);
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
	tap_set_domid(2);
	int g = open_gntdev();
	uint64_t gi;
	CHECK_OK(gd_map1(g, 1, ref, &gi));
	volatile char *view = map_pages(g, gi, 1, PROT_READ | PROT_WRITE);
	CHECK(view != MAP_FAILED);
	view[10] = 'x';
	view[11] = 'y';
	CHECK_OK(ga_notify(fd, idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	expect_nothing(&c, view + 10, 'x');
	CHECK_OK(ga_dealloc(fd, idx, 1));
	CHECK_EQ(view[10], 0); /* when DEALLOC returns */
	expect_clear_then_event(&c, view + 10);
	CHECK_EQ(view[11], 'y');
	munmap((void *)view, PAGE);
	CHECK_OK(gd_unmap(g, gi, 1));
	close(g);
	close(fd);
	chan_close(&c);
}

TEST(port_closes_once_the_notification_fired)
{
	/* ABI.md §3.7 step 2, §3.9, §4.12: the notification's event reference
	 * keeps the port open after the notifier's evtchn fd is closed; after
	 * the event is sent on a normal path (gntalloc: last munmap after
	 * DEALLOC; gntdev: UNMAP after munmap) the last reference goes and
	 * the port really closes. */
	struct chan c;
	struct gpage g;
	chan_open(&c, 1, 2);
	gpage_open(&g);
	CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	CHECK_OK(ga_dealloc(g.fd, g.idx, 1));
	close(c.mine_fd);
	c.mine_fd = -1;
	CHECK_EQ(rebind(&c, 1, 2), -EINVAL);
	munmap(g.p, PAGE);
	expect_clear_then_event(&c, g.view + 10);
	expect_port_closed(&c, 1, 2);
	gpage_close(&g);
	chan_close(&c);

	/* gntdev: the mapper's evtchn fd goes first; the event still gets
	 * through at UNMAP, and then the port closes. */
	struct mpage m;
	chan_open(&c, 2, 1);
	mpage_open(&m, 1);
	CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	close(c.mine_fd);
	c.mine_fd = -1;
	CHECK_EQ(rebind(&c, 2, 1), -EINVAL);
	munmap(m.q, PAGE);
	expect_nothing(&c, m.p + 20, 'x');
	CHECK_OK(gd_unmap(m.fd, m.idx, 1));
	expect_clear_then_event(&c, m.p + 20);
	expect_port_closed(&c, 2, 1);
	mpage_close(&m);
	chan_close(&c);
}

TEST(port_held_by_a_notification_survives_unbind)
{
	/* ABI.md §3.9: UNBIND drops only the evtchn file's reference, as
	 * close() does. The port leaves the file (NOTIFY through it is
	 * ENOTCONN) but stays connected and delivers the notification's
	 * event; then it closes. Both devices. */
	for (int dev = 0; dev < 2; dev++) {
		unsigned mine = dev == 0 ? 1 : 2, peer = dev == 0 ? 2 : 1;
		struct chan c;
		struct gpage g;
		struct mpage m;
		chan_open(&c, mine, peer);
		volatile char *byte;
		if (dev == 0) {
			gpage_open(&g);
			CHECK_OK(ga_notify(g.fd, g.idx + 10,
					   UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
					   c.mine_port));
			byte = g.view + 10;
		} else {
			mpage_open(&m, 1);
			CHECK_OK(gd_notify(m.fd, m.idx + 20,
					   UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
					   c.mine_port));
			byte = m.p + 20;
		}
		CHECK_OK(ev_unbind(c.mine_fd, c.mine_port));
		CHECK_ERR(ev_notify(c.mine_fd, c.mine_port), ENOTCONN);
		CHECK_ERR(ev_unbind(c.mine_fd, c.mine_port), ENOTCONN);
		CHECK_EQ(rebind(&c, mine, peer), -EINVAL);
		expect_nothing(&c, byte, 'x');
		if (dev == 0) {
			CHECK_OK(ga_dealloc(g.fd, g.idx, 1));
			munmap(g.p, PAGE);
		} else {
			munmap(m.q, PAGE);
			CHECK_OK(gd_unmap(m.fd, m.idx, 1));
		}
		expect_clear_then_event(&c, byte);
		expect_port_closed(&c, mine, peer);
		if (dev == 0)
			gpage_close(&g);
		else
			mpage_close(&m);
		chan_close(&c);
	}
}

TEST(gntdev_notify_takes_the_event_reference_before_the_lookup)
{
	/* ABI.md §4.8: action (step 2), event reference (step 3), then the
	 * lookup (step 4) -- the reverse of gntalloc. An unusable port with a
	 * bad index is EINVAL; a usable port with a bad index is ENOENT, and
	 * the reference it took is dropped again (the port closes with its
	 * evtchn fd). */
	struct chan c;
	struct mpage m;
	chan_open(&c, 2, 1);
	mpage_open(&m, 1);
	static const unsigned bad_ports[] = { 0, 1000, 100000, UINT32_MAX };
	for (unsigned i = 0; i < 4; i++) {
		CHECK_ERR(gd_notify(m.fd, 50 * PAGE, UNMAP_NOTIFY_SEND_EVENT, bad_ports[i]),
			  EINVAL);
		CHECK_ERR(gd_notify(m.fd, 50 * PAGE + 3,
				    UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
				    bad_ports[i]),
			  EINVAL);
	}
	CHECK_ERR(gd_notify(m.fd, 50 * PAGE, UNMAP_NOTIFY_SEND_EVENT, c.mine_port), ENOENT);
	CHECK_ERR(gd_notify(m.fd, 50 * PAGE, UNMAP_NOTIFY_CLEAR_BYTE, 1000), ENOENT);
	close(c.mine_fd);
	c.mine_fd = -1;
	expect_port_closed(&c, 2, 1);
	munmap(m.q, PAGE);
	CHECK_OK(gd_unmap(m.fd, m.idx, 1));
	mpage_close(&m);
	chan_close(&c);
}

TEST(gntdev_replaced_or_cleared_notification_does_not_fire)
{
	/* ABI.md §4.8 step 6: one notification per map; a later call replaces
	 * it, action 0 clears it. The replaced event is not sent, the
	 * replaced byte not cleared. */
	struct chan c;
	struct mpage m;
	chan_open(&c, 2, 1);
	mpage_open(&m, 1);
	CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	CHECK_OK(gd_notify(m.fd, m.idx + 21, UNMAP_NOTIFY_CLEAR_BYTE, 0)); /* replaces it */
	m.p[21] = 'y';
	munmap(m.q, PAGE);
	CHECK_OK(gd_unmap(m.fd, m.idx, 1));
	CHECK_EQ(m.p[21], 0);
	expect_nothing(&c, m.p + 20, 'x');
	mpage_close(&m);

	mpage_open(&m, 1);
	CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	CHECK_OK(gd_notify(m.fd, m.idx + 20, 0, 0)); /* cleared */
	munmap(m.q, PAGE);
	CHECK_OK(gd_unmap(m.fd, m.idx, 1));
	expect_nothing(&c, m.p + 20, 'x');
	/* The channel itself still works: the check could have seen an event. */
	CHECK_OK(ev_notify(c.mine_fd, c.mine_port));
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 2000), c.watch_port);
	mpage_close(&m);
	chan_close(&c);
}

TEST(gntdev_send_to_a_closed_peer_is_dropped)
{
	/* ABI.md §6, §12: the watcher's port goes (its fd is closed); the
	 * mapper's port turns unbound. The notification still clears the
	 * byte, and the event is dropped without error. */
	struct chan c;
	struct mpage m;
	chan_open(&c, 2, 1);
	mpage_open(&m, 1);
	CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	close(c.watch_fd);
	tap_set_domid(1);
	c.watch_fd = open_evtchn();
	munmap(m.q, PAGE);
	CHECK_OK(gd_unmap(m.fd, m.idx, 1));
	CHECK_EQ(m.p[20], 0); /* the byte still goes, when UNMAP returns */
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 100), 0);
	/* The mapper's port is still its own, unbound: NOTIFY on it is a
	 * silent drop, not an error. */
	CHECK_OK(ev_notify(c.mine_fd, c.mine_port));
	mpage_close(&m);
	chan_close(&c);
}

TEST(gntalloc_clear_then_event_at_close)
{
	/* ABI.md §3.2/§3.7, trigger T.A7: closing the file releases its pages
	 * (the owner's mapping is gone): CLEAR_BYTE then SEND_EVENT, done when
	 * close() returns. */
	struct chan c;
	struct gpage g;
	chan_open(&c, 1, 2);
	gpage_open(&g);
	g.p[11] = 'y';
	CHECK_OK(ga_notify(g.fd, g.idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	munmap(g.p, PAGE);
	expect_nothing(&c, g.view + 10, 'x');
	close(g.fd);
	g.fd = -1;
	CHECK_EQ(g.view[10], 0); /* when close returns */
	expect_clear_then_event(&c, g.view + 10);
	CHECK_EQ(g.view[11], 'y');
	gpage_close(&g);
	chan_close(&c);
}

TEST(notifications_fire_at_most_once_on_normal_teardown)
{
	/* ABI.md §3.7 step 3, §4.8: the flags are cleared when the
	 * notification fires, so later teardown steps of the same page or
	 * map do nothing: no second event, no second clear (the peer writes
	 * the byte again to see one). */
	struct chan c;
	chan_open(&c, 1, 2);
	/* gntalloc: fires at the last munmap after DEALLOC; then close. */
	tap_set_domid(1);
	int fd = open_gntalloc();
	uint64_t idx;
	uint32_t ref;
	CHECK_OK(ga_alloc(fd, 2, 1, 1, &idx, &ref));
	char *p = map_pages(fd, idx, 1, PROT_READ | PROT_WRITE);
	CHECK(p != MAP_FAILED);
	p[10] = 'x';
	tap_set_domid(2);
	int g = open_gntdev();
	uint64_t gi;
	CHECK_OK(gd_map1(g, 1, ref, &gi));
	volatile char *view = map_pages(g, gi, 1, PROT_READ | PROT_WRITE);
	CHECK(view != MAP_FAILED);
	CHECK_OK(ga_notify(fd, idx + 10, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	CHECK_OK(ga_dealloc(fd, idx, 1));
	munmap(p, PAGE);
	expect_clear_then_event(&c, view + 10);
	view[10] = 'z';
	close(fd);
	expect_nothing(&c, view + 10, 'z');
	munmap((void *)view, PAGE);
	CHECK_OK(gd_unmap(g, gi, 1));
	close(g);
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 100), 0);
	chan_close(&c);

	/* gntdev: fires at UNMAP after munmap; then close. */
	struct mpage m;
	chan_open(&c, 2, 1);
	mpage_open(&m, 1);
	CHECK_OK(gd_notify(m.fd, m.idx + 20, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT,
			   c.mine_port));
	munmap(m.q, PAGE);
	CHECK_OK(gd_unmap(m.fd, m.idx, 1));
	expect_clear_then_event(&c, m.p + 20);
	m.p[20] = 'z';
	close(m.fd);
	m.fd = -1;
	expect_nothing(&c, m.p + 20, 'z');
	mpage_close(&m);
	chan_close(&c);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}

/*
 * §3.9: the event reference is the domain's, not the file's: a port bound
 * by another process of the same domain, through an evtchn file this
 * process never had, arms SEND_EVENT; a port number bound only in another
 * domain does not (EINVAL), on both devices.
 */
TEST(event_reference_is_any_port_of_the_domain)
{
	struct chan c;
	chan_open(&c, 1, 2);
	/* A port of domain 3 whose number domain 1 has not bound. */
	tap_set_domid(3);
	int other = open_evtchn();
	int q;
	do
		q = ev_unbound(other, 4);
	while (q > 0 && (unsigned)q == c.mine_port);
	CHECK(q > 0);
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(1, &l); /* closes every inherited fd */
	if (pid == 0) {
		int ga = open_gntalloc();
		uint64_t idx;
		uint32_t ref;
		CHECK_OK(ga_alloc(ga, 2, 1, 1, &idx, &ref));
		CHECK_ERR(ga_notify(ga, idx, UNMAP_NOTIFY_SEND_EVENT, (unsigned)q), EINVAL);
		CHECK_OK(ga_notify(ga, idx, UNMAP_NOTIFY_SEND_EVENT, c.mine_port));
		int gd = open_gntdev();
		uint64_t gidx;
		CHECK_OK(gd_map1(gd, 1, ref, &gidx));
		CHECK_ERR(gd_notify(gd, gidx, UNMAP_NOTIFY_SEND_EVENT, (unsigned)q), EINVAL);
		CHECK_OK(gd_notify(gd, gidx, UNMAP_NOTIFY_SEND_EVENT, c.mine_port));
		tap_send(&l, 1);
		CHECK_EQ(tap_recv(&l), 2);
		CHECK_OK(ga_dealloc(ga, idx, 1)); /* gntalloc's fires */
		tap_send(&l, 3);
		CHECK_EQ(tap_recv(&l), 4);
		CHECK_OK(gd_unmap(gd, gidx, 1)); /* gntdev's fires */
		tap_send(&l, 5);
		tap_child_exit();
	}
	CHECK_EQ(tap_recv(&l), 1);
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 100), 0); /* armed, not fired */
	tap_send(&l, 2);
	CHECK_EQ(tap_recv(&l), 3);
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 2000), c.watch_port);
	tap_send(&l, 4);
	CHECK_EQ(tap_recv(&l), 5);
	CHECK_EQ(ev_wait_unmask(c.watch_fd, 2000), c.watch_port);
	tap_wait_ok(pid);
	tap_link_close(&l);
	close(other);
	chan_close(&c);
}
