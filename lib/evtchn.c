/*
 * /dev/xen/evtchn on the client side: delivery without the broker.
 *
 * Each port bound here has its own doorbell (an eventfd) in the file's
 * epoll set, armed with EPOLLONESHOT: when it fires, epoll disarms it, which
 * is the port masking itself; writing the port back re-arms it, and a send
 * that came while masked is still counted, so it is delivered right away,
 * as Xen's pending bit is. NOTIFY writes the peer's doorbell directly.
 *
 * The driver's ring is materialised lazily: every operation first moves
 * what epoll has ready into the ring ("harvest"), which is exactly what the
 * driver's interrupt handler would have done by then. A sentinel eventfd in
 * the set keeps the fd readable while the ring holds ports, so poll, select
 * and epoll on it agree with read().
 *
 * The doorbell's counter stands for Xen's pending bit: sends while the port
 * is masked are folded into one when it is bound or unmasked, so a count
 * above 1 at harvest means sends after the one that fired the port. The
 * interrupt had taken that one by then, so the later ones are pending again
 * and come after the unmask, as on Xen, however late this process looks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "xen_abi.h"

#define EV_READ_MAX 4096u /* bytes per read or write, as the driver caps them */
#define SENTINEL    0u	  /* port 0 is reserved: epoll data of the sentinel */

struct lport {
	int own;  /* this port's doorbell; -1 if not bound through this process */
	int peer; /* the peer's doorbell, or -1 */
	uint32_t peer_gen;
	bool masked;
};

struct evtchn_state {
	struct granted_dev *dev;
	int epfd;
	int sentinel;
	bool sentinel_on;
	struct gr_ev_shared *shm;
	size_t shm_len;
	uint32_t *gen;
	uint8_t *masked;
	uint32_t nports;
	struct lport *ports;
	uint32_t nbound;
	uint32_t *ring; /* ring_size entries, a power of two */
	uint32_t ring_size, cons, prod;
	bool overflow;
};

int evtchn_setup(struct granted_dev *dev, int shm_fd)
{
	struct evtchn_state *st = calloc(1, sizeof(*st));
	struct stat sb;
	int r = -ENOMEM;
	if (!st)
		return -ENOMEM;
	st->epfd = st->sentinel = -1;
	st->dev = dev;
	if (shm_fd < 0 || fstat(shm_fd, &sb) < 0 || (size_t)sb.st_size < sizeof(*st->shm)) {
		r = -EIO;
		goto fail;
	}
	st->shm_len = (size_t)sb.st_size;
	st->shm = mmap(NULL, st->shm_len, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
	if (st->shm == MAP_FAILED) {
		st->shm = NULL;
		goto fail;
	}
	st->nports = st->shm->nports;
	if (sizeof(*st->shm) + (size_t)st->nports * 5 > st->shm_len) {
		r = -EIO;
		goto fail;
	}
	st->gen = (uint32_t *)(st->shm + 1);
	st->masked = (uint8_t *)(st->gen + st->nports);
	st->ports = calloc(st->nports, sizeof(*st->ports));
	if (!st->ports)
		goto fail;
	for (uint32_t i = 0; i < st->nports; i++)
		st->ports[i] = (struct lport){ .own = -1, .peer = -1 };
	st->epfd = epoll_create1(EPOLL_CLOEXEC);
	st->sentinel = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (st->epfd < 0 || st->sentinel < 0) {
		r = -errno;
		goto fail;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = SENTINEL };
	if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, st->sentinel, &ev) < 0) {
		r = -errno;
		goto fail;
	}
	if (dev->flags & O_NONBLOCK)
		fcntl(st->epfd, F_SETFL, O_NONBLOCK);
	dev->ev = st;
	return 0;
fail:
	if (st->epfd >= 0)
		close(st->epfd);
	if (st->sentinel >= 0)
		close(st->sentinel);
	if (st->shm)
		munmap(st->shm, st->shm_len);
	free(st->ports);
	free(st);
	return r;
}

/* Forgets what this process knows of port. unbound: the port is gone from
 * the file, so its doorbell leaves the epoll set too; otherwise (this
 * process closes the file) the set may be shared with a process that still
 * uses the port, and the doorbell stays in it. */
static void lport_clear(struct evtchn_state *st, uint32_t port, bool unbound)
{
	struct lport *lp = &st->ports[port];
	if (lp->own >= 0) {
		if (unbound)
			epoll_ctl(st->epfd, EPOLL_CTL_DEL, lp->own, NULL);
		close(lp->own);
		st->nbound--;
	}
	if (lp->peer >= 0)
		close(lp->peer);
	*lp = (struct lport){ .own = -1, .peer = -1 };
}

void evtchn_teardown(struct granted_dev *dev)
{
	struct evtchn_state *st = dev->ev;
	for (uint32_t p = 0; p < st->nports; p++)
		if (st->ports[p].own >= 0 || st->ports[p].peer >= 0)
			lport_clear(st, p, false);
	close(st->sentinel);
	close(st->epfd);
	munmap(st->shm, st->shm_len);
	free(st->ports);
	free(st->ring);
	free(st);
	dev->ev = NULL;
}

int evtchn_fd(const struct granted_dev *dev)
{
	return dev->ev->epfd;
}

/* Keeps the fd readable exactly while read() would return something. */
static void sentinel_sync(struct evtchn_state *st)
{
	bool want = st->prod != st->cons || st->overflow;
	uint64_t v = 1;
	if (want == st->sentinel_on)
		return;
	if (want) {
		if (write(st->sentinel, &v, sizeof(v)) != sizeof(v))
			return;
	} else if (read(st->sentinel, &v, sizeof(v)) != sizeof(v)) {
		return;
	}
	st->sentinel_on = want;
}

/* Makes a port pending (EAGAIN only near 2^64: it is pending anyway). */
static void pend(int doorbell)
{
	uint64_t one = 1;
	if (write(doorbell, &one, sizeof(one)) < 0)
		return;
}

/* Sends that came while the port could not fire are one pending event. */
static void fold_pending(int doorbell)
{
	uint64_t cnt;
	if (read(doorbell, &cnt, sizeof(cnt)) == sizeof(cnt))
		pend(doorbell);
}

static int port_refresh(struct granted_dev *dev, uint32_t port, bool adopt);

/* Takes n events epoll reported: each port fired and is now disarmed. */
static void deliver(struct evtchn_state *st, const struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++) {
		uint32_t port = evs[i].data.u32;
		if (port == SENTINEL || port >= st->nports)
			continue;
		if (st->ports[port].own < 0 && port_refresh(st->dev, port, true) < 0)
			continue; /* unbound meanwhile */
		struct lport *lp = &st->ports[port];
		uint64_t cnt;
		ssize_t got = read(lp->own, &cnt, sizeof(cnt));
		if (got < 0 && errno == EAGAIN)
			continue; /* consumed by a process sharing this file */
		/* Sends after the one that fired: pending again (see the top). */
		if (got == sizeof(cnt) && cnt > 1)
			pend(lp->own);
		/* Fired: the port is masked until written back. */
		lp->masked = true;
		st->masked[port] = 1;
		if (st->prod - st->cons == st->ring_size)
			st->overflow = true; /* the event is lost */
		else
			st->ring[st->prod++ & (st->ring_size - 1)] = port;
	}
}

/* What the driver's interrupt handler would have done by now. */
static void harvest(struct evtchn_state *st)
{
	struct epoll_event evs[64];
	int n;
	do {
		n = epoll_wait(st->epfd, evs, 64, 0);
		if (n > 0)
			deliver(st, evs, n);
	} while (n == 64);
}

/* The driver's ring: 64 entries on the first bind, doubled to fit. */
static int ring_fit(struct evtchn_state *st, uint32_t bound)
{
	if (st->ring_size >= bound && st->ring_size)
		return 0;
	uint32_t size = st->ring_size ? st->ring_size : 64;
	while (size < bound)
		size *= 2;
	uint32_t *ring = malloc(size * sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	uint32_t n = 0;
	for (uint32_t i = st->cons; i != st->prod; i++)
		ring[n++] = st->ring[i & (st->ring_size - 1)];
	free(st->ring);
	st->ring = ring;
	st->ring_size = size;
	st->cons = 0;
	st->prod = n;
	return 0;
}

struct port_ctx {
	struct gr_ev_port rep;
	int fds[2];
	unsigned nfds;
};

static int on_port(void *ctx, const struct gr_hdr *h, const void *p, size_t len, int *fds,
		   unsigned nfds)
{
	struct port_ctx *pc = ctx;
	if (h->result < 0)
		return 0;
	if (len != sizeof(pc->rep) || nfds > 2)
		return -EIO;
	memcpy(&pc->rep, p, sizeof(pc->rep));
	for (unsigned i = 0; i < nfds; i++) {
		pc->fds[i] = fds[i];
		fds[i] = -1;
	}
	pc->nfds = nfds;
	return 0;
}

static int lock_evtchn(struct granted_dev *dev)
{
	if (dev->kind != GRANTED_EVTCHN)
		return -ENOTTY;
	pthread_mutex_lock(&dev->lock);
	return 0;
}

static int bind_common(struct granted_dev *dev, uint16_t op, uint32_t a, uint32_t b)
{
	int r = lock_evtchn(dev);
	if (r < 0)
		return r;
	struct evtchn_state *st = dev->ev;
	struct port_ctx pc = { .fds = { -1, -1 } };
	r = ring_fit(st, st->nbound + 1);
	if (r < 0)
		goto out;
	struct gr_ev_bind req = { .remote_domain = a, .remote_port = b };
	r = chan_call(dev, op, &req, sizeof(req), on_port, &pc);
	if (r < 0)
		goto out;
	uint32_t port = pc.rep.port;
	if (port == 0 || port >= st->nports || pc.nfds < 1) {
		r = -EIO;
		goto out;
	}
	lport_clear(st, port, true);
	struct lport *lp = &st->ports[port];
	lp->own = pc.fds[0];
	lp->peer = pc.fds[1];
	lp->peer_gen = pc.rep.gen;
	pc.fds[0] = pc.fds[1] = -1;
	st->nbound++;
	st->masked[port] = 0;
	fold_pending(lp->own);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.u32 = port };
	if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, lp->own, &ev) < 0) {
		r = -errno;
		lport_clear(st, port, true);
		struct gr_ev_port_req un = { .port = port };
		chan_call(dev, GR_OP_EV_UNBIND, &un, sizeof(un), NULL, NULL);
		goto out;
	}
	r = (int)port;
out:
	for (unsigned i = 0; i < 2; i++)
		if (pc.fds[i] >= 0)
			close(pc.fds[i]);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

GR_EXPORT int granted_evtchn_bind_unbound(struct granted_dev *dev, uint32_t remote_domain)
{
	return bind_common(dev, GR_OP_EV_BIND_UNBOUND, remote_domain, 0);
}

GR_EXPORT int granted_evtchn_bind_interdomain(struct granted_dev *dev, uint32_t remote_domain,
					      uint32_t remote_port)
{
	return bind_common(dev, GR_OP_EV_BIND_INTERDOMAIN, remote_domain, remote_port);
}

GR_EXPORT int granted_evtchn_bind_virq(struct granted_dev *dev, uint32_t virq)
{
	return bind_common(dev, GR_OP_EV_BIND_VIRQ, virq, 0);
}

GR_EXPORT int granted_evtchn_unbind(struct granted_dev *dev, uint32_t port)
{
	int r = lock_evtchn(dev);
	if (r < 0)
		return r;
	struct gr_ev_port_req req = { .port = port };
	/* Events that fired before the unbind reach the ring first, and
	 * entries of the port already in the ring stay there. */
	harvest(dev->ev);
	r = chan_call(dev, GR_OP_EV_UNBIND, &req, sizeof(req), NULL, NULL);
	if (r == 0 && port < dev->ev->nports)
		lport_clear(dev->ev, port, true);
	sentinel_sync(dev->ev);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* Refreshes what we know of port from the broker: -ENOTCONN if it is not
 * bound through this file at all. adopt: a process sharing the file bound
 * it after we forked, and it fired in our epoll set; as in the driver,
 * whoever reads the file's ring gets it, so this process takes the port's
 * doorbell too (registered disarmed: the port fired and is masked until
 * written back). */
static int port_refresh(struct granted_dev *dev, uint32_t port, bool adopt)
{
	struct evtchn_state *st = dev->ev;
	struct port_ctx pc = { .fds = { -1, -1 } };
	struct gr_ev_port_req req = { .port = port };
	int r = chan_call(dev, GR_OP_EV_PORT_INFO, &req, sizeof(req), on_port, &pc);
	if (r < 0)
		return r;
	if (!pc.rep.bound_here) {
		r = -ENOTCONN;
		goto out;
	}
	struct lport *lp = &st->ports[port];
	if (pc.nfds < 1) {
		r = -EIO;
		goto out;
	}
	if (lp->peer >= 0)
		close(lp->peer);
	lp->peer = pc.nfds > 1 ? pc.fds[1] : -1;
	lp->peer_gen = pc.rep.gen;
	pc.fds[1] = -1;
	if (adopt && lp->own < 0) {
		r = ring_fit(st, st->nbound + 1);
		if (r < 0)
			goto out;
		struct epoll_event ev = { .events = EPOLLONESHOT, .data.u32 = port };
		if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, pc.fds[0], &ev) < 0) {
			r = -errno;
			goto out;
		}
		lp->own = pc.fds[0];
		pc.fds[0] = -1;
		st->nbound++;
	}
	r = 0;
out:
	for (unsigned i = 0; i < pc.nfds; i++)
		if (pc.fds[i] >= 0)
			close(pc.fds[i]);
	return r;
}

GR_EXPORT int granted_evtchn_notify(struct granted_dev *dev, uint32_t port)
{
	int r = lock_evtchn(dev);
	if (r < 0)
		return r;
	struct evtchn_state *st = dev->ev;
	if (port == 0 || port >= st->nports) {
		r = -ENOTCONN;
		goto out;
	}
	struct lport *lp = &st->ports[port];
	uint32_t gen = __atomic_load_n(&st->gen[port], __ATOMIC_ACQUIRE);
	/* Not bound by this process (a sibling sharing the file may have
	 * bound it), or the peer changed since we looked: ask. */
	if (lp->own < 0 || gen != lp->peer_gen) {
		r = port_refresh(dev, port, false);
		if (r < 0)
			goto out;
	}
	if (lp->peer >= 0) {
		uint64_t one = 1;
		/* EAGAIN: the counter is saturated, the event is pending anyway. */
		if (write(lp->peer, &one, sizeof(one)) < 0 && errno != EAGAIN) {
			r = -errno;
			goto out;
		}
	}
	/* Unbound (the peer closed): dropped, and still 0 (ABI.md §2.5). */
	r = 0;
out:
	pthread_mutex_unlock(&dev->lock);
	return r;
}

GR_EXPORT int granted_evtchn_reset(struct granted_dev *dev)
{
	int r = lock_evtchn(dev);
	if (r < 0)
		return r;
	struct evtchn_state *st = dev->ev;
	harvest(st);
	/* Ports delivered and not yet unmasked stay masked. */
	st->cons = st->prod;
	st->overflow = false;
	sentinel_sync(st);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

GR_EXPORT int granted_evtchn_restricted(struct granted_dev *dev)
{
	if (dev->kind != GRANTED_EVTCHN)
		return 0;
	return __atomic_load_n(&dev->ev->shm->restrict_domid, __ATOMIC_ACQUIRE) !=
	       GR_EV_UNRESTRICTED;
}

GR_EXPORT int granted_evtchn_restrict(struct granted_dev *dev, uint32_t domid)
{
	int r = lock_evtchn(dev);
	if (r < 0)
		return r;
	struct gr_ev_bind req = { .remote_domain = domid };
	r = chan_call(dev, GR_OP_EV_RESTRICT, &req, sizeof(req), NULL, NULL);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/*
 * The driver's blocking read returns -ERESTARTSYS: the kernel restarts it
 * after a handler installed with SA_RESTART, and fails it with EINTR
 * otherwise. epoll_wait() is never restarted and does not say which signal
 * came: restart if every handler installed now has SA_RESTART (exact unless
 * a program mixes handlers with and without it).
 */
static bool signals_restart(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		/* Faults are raised by an instruction: they never end a
		 * sleeping syscall, whatever their handlers (sanitizers',
		 * the shim's guarded copy) say. */
		switch (sig) {
		case SIGKILL:
		case SIGSTOP:
		case SIGSEGV:
		case SIGBUS:
		case SIGFPE:
		case SIGILL:
		case SIGTRAP:
		case SIGSYS:
			continue;
		}
		if (sigaction(sig, NULL, &sa) < 0)
			continue;
		bool handled = (sa.sa_flags & SA_SIGINFO) ||
			       (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
		if (handled && !(sa.sa_flags & SA_RESTART))
			return false;
	}
	return true;
}

GR_EXPORT ssize_t granted_evtchn_read(struct granted_dev *dev, uint32_t *buf, size_t len, int peek)
{
	int r = lock_evtchn(dev);
	if (r < 0)
		return r;
	struct evtchn_state *st = dev->ev;
	ssize_t ret;
	len &= ~(size_t)3;
	if (len > EV_READ_MAX)
		len = EV_READ_MAX;
	if (len == 0) {
		ret = 0;
		goto out;
	}
	for (;;) {
		harvest(st);
		if (st->overflow) {
			ret = -EFBIG;
			goto out;
		}
		if (st->prod != st->cons)
			break;
		int fl = fcntl(st->epfd, F_GETFL);
		if (fl >= 0 && (fl & O_NONBLOCK)) {
			ret = -EAGAIN;
			goto out;
		}
		/* Sleep in epoll itself, without the lock: other threads may
		 * notify, unmask or bind meanwhile. What it returns is already
		 * disarmed, so it is ours to deliver once we hold the lock again.
		 * A signal ends the read with EINTR, unless it restarts. */
		sentinel_sync(st);
		int epfd = st->epfd;
		struct epoll_event evs[64];
		pthread_mutex_unlock(&dev->lock);
		int n = epoll_wait(epfd, evs, 64, -1);
		int err = errno;
		pthread_mutex_lock(&dev->lock);
		if (n > 0)
			deliver(st, evs, n);
		if (n < 0 && err == EINTR && !signals_restart()) {
			ret = -EINTR;
			goto out;
		}
	}
	uint32_t avail = st->prod - st->cons;
	uint32_t n = (uint32_t)(len / 4) < avail ? (uint32_t)(len / 4) : avail;
	for (uint32_t i = 0; i < n; i++)
		buf[i] = st->ring[(st->cons + i) & (st->ring_size - 1)];
	ret = (ssize_t)n * 4;
	if (peek) {
		/* granted_evtchn_consume() follows, and keeps the sentinel. */
		pthread_mutex_unlock(&dev->lock);
		return ret;
	}
	st->cons += n;
out:
	sentinel_sync(st);
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

GR_EXPORT void granted_evtchn_consume(struct granted_dev *dev, size_t nports)
{
	if (lock_evtchn(dev) < 0)
		return;
	struct evtchn_state *st = dev->ev;
	uint32_t avail = st->prod - st->cons;
	st->cons += nports < avail ? (uint32_t)nports : avail;
	sentinel_sync(st);
	pthread_mutex_unlock(&dev->lock);
}

GR_EXPORT ssize_t granted_evtchn_write(struct granted_dev *dev, const uint32_t *ports, size_t len)
{
	int r = lock_evtchn(dev);
	if (r < 0)
		return r;
	struct evtchn_state *st = dev->ev;
	len &= ~(size_t)3;
	if (len > EV_READ_MAX)
		len = EV_READ_MAX;
	/* Events that came before the unmask are in the ring first. */
	harvest(st);
	for (size_t i = 0; i < len / 4; i++) {
		uint32_t port = ports[i];
		if (port == 0 || port >= st->nports)
			continue;
		struct lport *lp = &st->ports[port];
		if (lp->own < 0 || !lp->masked)
			continue; /* unknown or enabled ports are ignored */
		lp->masked = false;
		st->masked[port] = 0;
		fold_pending(lp->own);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.u32 = port };
		epoll_ctl(st->epfd, EPOLL_CTL_MOD, lp->own, &ev);
	}
	sentinel_sync(st);
	pthread_mutex_unlock(&dev->lock);
	return (ssize_t)len;
}

GR_EXPORT int granted_evtchn_poll(struct granted_dev *dev)
{
	if (lock_evtchn(dev) < 0)
		return POLLNVAL;
	struct evtchn_state *st = dev->ev;
	harvest(st);
	int mask = POLLOUT | POLLWRNORM;
	if (st->overflow)
		mask = POLLERR;
	else if (st->prod != st->cons)
		mask |= POLLIN | POLLRDNORM;
	sentinel_sync(st);
	pthread_mutex_unlock(&dev->lock);
	return mask;
}
