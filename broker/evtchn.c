/*
 * Event channels: Xen's port table (event_channel.c) and the binding half of
 * Linux's evtchn driver. Delivery, masking and the read ring are the
 * client's (lib/evtchn.c): they need no authority, only the doorbells.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "evtchn.h"
#include "internal.h"

static bool virq_is_global(uint32_t virq)
{
	/* Xen: only these are per vcpu; x86's arch virqs are global. */
	return !(virq == VIRQ_TIMER || virq == VIRQ_DEBUG || virq == 7 /* XENOPROF */ ||
		 virq == 13 /* XENPMU */);
}

static int ports_ensure(struct domain *d)
{
	if (d->ports)
		return 0;
	uint32_t n = d->b->cfg.max_ports + 1;
	d->ports = calloc(n, sizeof(*d->ports));
	if (!d->ports)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		d->ports[i].doorbell = -1;
	d->nports = n;
	return 0;
}

static struct port *port_get(struct domain *d, uint32_t port)
{
	if (!d || !d->ports || port == 0 || port >= d->nports)
		return NULL;
	return &d->ports[port];
}

/* Lowest free port, as Xen's get_free_port; 0 if none. */
static uint32_t port_find_free(struct domain *d)
{
	for (uint32_t p = 1; p < d->nports; p++)
		if (d->ports[p].state == GR_PORT_FREE)
			return p;
	return 0;
}

static int port_open(struct domain *d, uint32_t port, struct evtchn_file *owner,
		     enum gr_port_state state)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -ENOMEM;
	d->ports[port] = (struct port){
		.state = (uint8_t)state,
		.bound = true,
		.refs = 1,
		.doorbell = fd,
		.owner = owner,
	};
	d->ports_used++;
	return 0;
}

static void gen_bump(struct domain *d, uint32_t port)
{
	struct port *p = port_get(d, port);
	if (p && p->owner && port < p->owner->shm->nports)
		p->owner->gen[port]++;
}

static void ring(int doorbell)
{
	uint64_t one = 1;
	/* EAGAIN only if the counter is near 2^64: it is pending anyway. */
	if (write(doorbell, &one, sizeof(one)) < 0)
		return;
}

/* The interdomain peer of a port, if it still points back. */
static struct port *peer_of(struct domain *d, uint32_t port, struct domain **rd_out)
{
	struct port *p = port_get(d, port);
	if (!p || p->state != GR_PORT_INTERDOMAIN)
		return NULL;
	struct domain *rd = domain_get(d->b, p->remote_dom);
	struct port *rp = port_get(rd, p->remote_port);
	if (!rp || rp->state != GR_PORT_INTERDOMAIN || rp->remote_dom != d->id ||
	    rp->remote_port != port)
		return NULL;
	*rd_out = rd;
	return rp;
}

static void port_close(struct domain *d, uint32_t port)
{
	struct port *p = &d->ports[port];
	struct domain *rd;
	struct port *rp = peer_of(d, port, &rd);
	if (rp) {
		/* The peer goes back to unbound, offered to us again, with no
		 * event (ABI.md §2.5, §12). */
		rp->state = GR_PORT_UNBOUND;
		rp->remote_dom = d->id;
		rp->remote_port = 0;
		gen_bump(rd, p->remote_port);
	}
	if (p->state == GR_PORT_VIRQ)
		d->virq_port[p->virq] = 0;
	close(p->doorbell);
	*p = (struct port){ .doorbell = -1 };
	d->ports_used--;
	domain_maybe_free(d);
}

static void port_put(struct domain *d, uint32_t port)
{
	if (--d->ports[port].refs == 0)
		port_close(d, port);
}

static void port_unbind(struct domain *d, uint32_t port)
{
	struct port *p = &d->ports[port];
	p->bound = false;
	p->owner = NULL;
	port_put(d, port);
}

int evtchn_ref_get(struct domain *d, uint32_t port)
{
	struct port *p = port_get(d, port);
	if (!p || p->state == GR_PORT_FREE || !p->bound)
		return -EINVAL;
	p->refs++;
	return 0;
}

void evtchn_ref_put(struct domain *d, uint32_t port)
{
	if (port_get(d, port))
		port_put(d, port);
}

void evtchn_send_from(struct domain *d, uint32_t port)
{
	struct domain *rd;
	struct port *rp = peer_of(d, port, &rd);
	if (rp)
		ring(rp->doorbell);
}

void evtchn_virq_dom_exc(struct broker *b)
{
	struct domain *d0 = domain_get(b, 0);
	if (d0 && d0->virq_port[VIRQ_DOM_EXC])
		ring(d0->ports[d0->virq_port[VIRQ_DOM_EXC]].doorbell);
}

void evtchn_domain_free(struct domain *d)
{
	free(d->ports);
	d->ports = NULL;
}

int evtchn_file_init(struct file *f)
{
	struct evtchn_file *ef = calloc(1, sizeof(*ef));
	if (!ef)
		return -ENOMEM;
	uint32_t n = f->b->cfg.max_ports + 1;
	size_t len = sizeof(struct gr_ev_shared) + n * sizeof(uint32_t) + n;
	len = (len + XEN_PAGE_SIZE - 1) & ~(size_t)(XEN_PAGE_SIZE - 1);
	ef->shm_fd = memfd_sealed("granted-evtchn", len);
	if (ef->shm_fd < 0)
		goto fail;
	ef->shm = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, ef->shm_fd, 0);
	if (ef->shm == MAP_FAILED)
		goto fail;
	ef->shm_len = len;
	ef->shm->restrict_domid = GR_EV_UNRESTRICTED;
	ef->shm->nports = n;
	ef->gen = (uint32_t *)(ef->shm + 1);
	ef->masked = (uint8_t *)(ef->gen + n);
	ef->f = f;
	f->ev = ef;
	return 0;
fail:
	if (ef->shm_fd >= 0)
		close(ef->shm_fd);
	free(ef);
	return -ENOMEM;
}

void evtchn_release(struct file *f)
{
	struct evtchn_file *ef = f->ev;
	struct domain *d = f->dom;
	if (!ef)
		return;
	for (uint32_t port = 1; d->ports && port < d->nports; port++)
		if (d->ports[port].owner == ef && d->ports[port].bound)
			port_unbind(d, port);
	munmap(ef->shm, ef->shm_len);
	close(ef->shm_fd);
	free(ef);
	f->ev = NULL;
}

int evtchn_hello_reply(struct conn *c, const struct gr_hdr *h, const struct gr_hello_reply *rep)
{
	conn_reply(c, h, 0, rep, sizeof(*rep), &c->file->ev->shm_fd, 1);
	return GR_REPLIED;
}

static bool restricted(const struct evtchn_file *ef)
{
	return ef->shm->restrict_domid != GR_EV_UNRESTRICTED;
}

static int reply_port(struct conn *c, const struct gr_hdr *h, struct domain *d, uint32_t port,
		      const int *fds, unsigned nfds)
{
	struct port *p = &d->ports[port];
	struct gr_ev_port rep = {
		.port = port,
		.state = p->state,
		.remote_domain = p->remote_dom,
		.remote_port = p->remote_port,
		.gen = p->owner ? p->owner->gen[port] : 0,
		.bound_here = p->bound && p->owner == c->file->ev,
	};
	conn_reply(c, h, (int32_t)port, &rep, sizeof(rep), fds, nfds);
	return GR_REPLIED;
}

static int op_bind_unbound(struct conn *c, struct file *f, const struct gr_hdr *h,
			   const struct gr_ev_bind *req)
{
	struct domain *d = f->dom;
	if (restricted(f->ev))
		return -EACCES;
	int r = ports_ensure(d);
	if (r < 0)
		return r;
	/* The remote domain is not checked for existence (ABI.md §2.5). */
	uint16_t rdom = (uint16_t)req->remote_domain;
	if (rdom == DOMID_SELF)
		rdom = d->id;
	uint32_t port = port_find_free(d);
	if (!port)
		return -ENOSPC;
	r = port_open(d, port, f->ev, GR_PORT_UNBOUND);
	if (r < 0)
		return r;
	d->ports[port].remote_dom = rdom;
	return reply_port(c, h, d, port, &d->ports[port].doorbell, 1);
}

static int op_bind_interdomain(struct conn *c, struct file *f, const struct gr_hdr *h,
			       const struct gr_ev_bind *req)
{
	struct domain *d = f->dom;
	struct evtchn_file *ef = f->ev;
	if (restricted(ef) && req->remote_domain != ef->shm->restrict_domid)
		return -EACCES;
	uint32_t rdomid = req->remote_domain;
	if (rdomid == DOMID_SELF)
		rdomid = d->id;
	struct domain *rd =
		rdomid < DOMID_FIRST_RESERVED ? domain_get(f->b, (uint16_t)rdomid) : NULL;
	if (!rd)
		return -ESRCH;
	int r = ports_ensure(d);
	if (r < 0)
		return r;
	/* Xen finds the local port before it looks at the remote one. */
	uint32_t port = port_find_free(d);
	if (!port)
		return -ENOSPC;
	uint32_t rport = req->remote_port;
	struct port *rp = port_get(rd, rport);
	if (!rp || rp->state != GR_PORT_UNBOUND || rp->remote_dom != d->id)
		return -EINVAL;
	r = port_open(d, port, ef, GR_PORT_INTERDOMAIN);
	if (r < 0)
		return r;
	struct port *lp = &d->ports[port];
	lp->remote_dom = rd->id;
	lp->remote_port = rport;
	rp->state = GR_PORT_INTERDOMAIN;
	rp->remote_dom = d->id;
	rp->remote_port = port;
	gen_bump(rd, rport);
	/* "May have lost notifications": the binder's port fires once. */
	ring(lp->doorbell);
	int fds[2] = { lp->doorbell, rp->doorbell };
	return reply_port(c, h, d, port, fds, 2);
}

static int op_bind_virq(struct conn *c, struct file *f, const struct gr_hdr *h,
			const struct gr_ev_bind *req)
{
	struct domain *d = f->dom;
	uint32_t virq = req->remote_domain;
	if (restricted(f->ev))
		return -EACCES;
	if (virq >= NR_VIRQS)
		return -EINVAL;
	/* The domain's Linux kernel holds these itself. */
	if (virq == VIRQ_TIMER || virq == VIRQ_DEBUG || (virq == VIRQ_CONSOLE && d->id == 0))
		return -EEXIST;
	/* Global virqs belong to the hardware domain. */
	if (virq_is_global(virq) && d->id != 0)
		return -EBUSY;
	int r = ports_ensure(d);
	if (r < 0)
		return r;
	if (d->virq_port[virq])
		return -EEXIST;
	uint32_t port = port_find_free(d);
	if (!port)
		return -ENOSPC;
	r = port_open(d, port, f->ev, GR_PORT_VIRQ);
	if (r < 0)
		return r;
	d->ports[port].virq = virq;
	d->virq_port[virq] = port;
	return reply_port(c, h, d, port, &d->ports[port].doorbell, 1);
}

static int op_unbind(struct file *f, const struct gr_ev_port_req *req)
{
	struct domain *d = f->dom;
	if (req->port >= f->b->cfg.max_ports + 1)
		return -EINVAL;
	struct port *p = port_get(d, req->port);
	if (!p || !p->bound || p->owner != f->ev)
		return -ENOTCONN;
	port_unbind(d, req->port);
	return 0;
}

static int op_restrict(struct file *f, const struct gr_ev_bind *req)
{
	struct evtchn_file *ef = f->ev;
	if (restricted(ef))
		return -EACCES;
	uint16_t domid = (uint16_t)req->remote_domain;
	if (domid == 0 || domid >= DOMID_FIRST_RESERVED)
		return -EINVAL;
	ef->shm->restrict_domid = domid;
	return 0;
}

static int op_port_info(struct conn *c, struct file *f, const struct gr_hdr *h,
			const struct gr_ev_port_req *req)
{
	struct domain *d = f->dom;
	struct port *p = port_get(d, req->port);
	if (!p) {
		struct gr_ev_port rep = { .port = req->port };
		conn_reply(c, h, 0, &rep, sizeof(rep), NULL, 0);
		return GR_REPLIED;
	}
	struct domain *rd;
	struct port *rp = peer_of(d, req->port, &rd);
	if (!(p->bound && p->owner == f->ev))
		return reply_port(c, h, d, req->port, NULL, 0);
	int fds[2] = { p->doorbell, rp ? rp->doorbell : -1 };
	return reply_port(c, h, d, req->port, fds, rp ? 2 : 1);
}

int evtchn_handle(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p, size_t len,
		  int *fds, unsigned nfds)
{
	(void)fds;
	if (nfds != 0)
		return -EPROTO;
	switch (h->op) {
	case GR_OP_BARRIER:
		return len == 0 ? 0 : -EPROTO;
	case GR_OP_EV_BIND_UNBOUND:
	case GR_OP_EV_BIND_INTERDOMAIN:
	case GR_OP_EV_BIND_VIRQ:
	case GR_OP_EV_RESTRICT:
		if (len != sizeof(struct gr_ev_bind))
			return -EPROTO;
		if (h->op == GR_OP_EV_BIND_UNBOUND)
			return op_bind_unbound(c, f, h, p);
		if (h->op == GR_OP_EV_BIND_INTERDOMAIN)
			return op_bind_interdomain(c, f, h, p);
		if (h->op == GR_OP_EV_BIND_VIRQ)
			return op_bind_virq(c, f, h, p);
		return op_restrict(f, p);
	case GR_OP_EV_UNBIND:
	case GR_OP_EV_PORT_INFO:
		if (len != sizeof(struct gr_ev_port_req))
			return -EPROTO;
		if (h->op == GR_OP_EV_UNBIND)
			return op_unbind(f, p);
		return op_port_info(c, f, h, p);
	default:
		return -EPROTO;
	}
}

int evtchn_list(struct conn *c, const struct gr_hdr *h)
{
	struct row_stream rs;
	struct broker *b = c->b;
	if (rows_begin(&rs, c, h, sizeof(struct gr_port_row)) < 0)
		return -ENOMEM;
	for (uint32_t id = 0; id < DOMID_FIRST_RESERVED; id++) {
		struct domain *d = b->domains[id];
		for (uint32_t port = 1; d && d->ports && port < d->nports; port++) {
			struct port *p = &d->ports[port];
			if (p->state == GR_PORT_FREE)
				continue;
			/* Pending: the doorbell holds an event nobody consumed. */
			struct pollfd pfd = { .fd = p->doorbell, .events = POLLIN };
			struct gr_port_row *row = rows_next(&rs);
			*row = (struct gr_port_row){
				.domid = (uint16_t)id,
				.remote_domid = p->state == GR_PORT_VIRQ ? 0 : p->remote_dom,
				.port = port,
				.remote_port = p->state == GR_PORT_VIRQ ? p->virq : p->remote_port,
				.state = p->state,
				.pending = poll(&pfd, 1, 0) == 1,
				.masked = p->owner ? p->owner->masked[port] : 0,
				.bound = p->bound,
			};
		}
	}
	return rows_end(&rs);
}
