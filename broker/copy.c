/*
 * IOCTL_GNTDEV_GRANT_COPY, the broker's half: Xen's GNTTABOP_copy checks
 * (ABI.md §2.3) for a batch of grants, answered with their memory. The
 * bytes never pass through here; the client copies them.
 *
 * The grant epoch: one counter per domain in a memfd that every gntdev
 * client maps read-only. It moves whenever a grant of that domain ends or
 * the domain dies, so a client's cached answer is good exactly while the
 * counter it was given with is still there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

int epoch_init(struct broker *b)
{
	size_t len = (GR_EPOCH_SIZE + XEN_PAGE_SIZE - 1) & ~(size_t)(XEN_PAGE_SIZE - 1);
	b->epoch_fd = memfd_sealed("granted-epoch", len);
	if (b->epoch_fd < 0)
		return b->epoch_fd;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, b->epoch_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	b->epoch = p;
	b->epoch_len = len;
	/* Clients get a read-only open of it: they cannot move anyone's epoch. */
	b->epoch_ro_fd = memfd_reopen_ro(b->epoch_fd);
	return b->epoch_ro_fd < 0 ? b->epoch_ro_fd : 0;
}

void epoch_fini(struct broker *b)
{
	if (b->epoch)
		munmap(b->epoch, b->epoch_len);
	if (b->epoch_fd >= 0)
		close(b->epoch_fd);
	if (b->epoch_ro_fd >= 0)
		close(b->epoch_ro_fd);
}

void epoch_bump(struct broker *b, uint16_t domid)
{
	if (b->epoch && domid < DOMID_FIRST_RESERVED)
		__atomic_add_fetch(&b->epoch[domid], 1, __ATOMIC_RELEASE);
}

/* Xen's checks for one side of a copy, for the caller `me`. */
static int16_t check(struct broker *b, struct domain *me, const struct gr_copy_ref *r,
		     struct grant_entry **out, struct domain **dom)
{
	uint16_t domid = r->domid == DOMID_SELF ? me->id : r->domid;
	struct domain *d = domain_get(b, domid);
	/* A dying domain cannot be looked up for a copy (ABI.md §12). */
	if (!d || domain_dying(d))
		return GNTST_bad_domain;
	if (r->ref >= d->gt_size)
		return GNTST_bad_gntref;
	struct grant_entry *e = &d->gt[r->ref];
	if (e->state == GRANT_FREE || e->grantee != me->id)
		return GNTST_general_error;
	*out = e;
	*dom = d;
	return GNTST_okay;
}

int copy_refs(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p, size_t len)
{
	const struct gr_copy_refs *req = p;
	if (len < sizeof(*req) || (len - sizeof(*req)) % sizeof(struct gr_copy_ref) ||
	    (len - sizeof(*req)) / sizeof(struct gr_copy_ref) != req->n)
		return -EPROTO;
	enum {
		ROWS = (GR_MSG_MAX - sizeof(struct gr_hdr) - sizeof(struct gr_copy_reply)) /
		       sizeof(struct gr_copy_row)
	};
	static char buf[GR_MSG_MAX];
	const struct gr_copy_ref *refs = (const void *)(req + 1);
	struct gr_copy_reply *rep = (void *)buf;
	struct gr_copy_row *rows = (void *)(rep + 1);
	struct allocation *fd_alloc[GR_MSG_FDS_MAX];
	bool fd_rw[GR_MSG_FDS_MAX];
	int fds[GR_MSG_FDS_MAX];
	unsigned nfds = 0;
	uint32_t n = 0, first = 0;

	for (uint32_t i = 0; i < req->n; i++) {
		struct gr_copy_ref r;
		memcpy(&r, refs + i, sizeof(r));
		struct grant_entry *e = NULL;
		struct domain *d = NULL;
		int16_t st = check(c->b, f->dom, &r, &e, &d);
		struct gr_copy_row row = { .status = st,
					   .domid = r.domid == DOMID_SELF ? f->dom->id : r.domid };
		if (row.domid < DOMID_FIRST_RESERVED)
			row.epoch = c->b->epoch[row.domid];
		if (st == GNTST_okay) {
			struct allocation *a = e->page->alloc;
			bool rw = !e->readonly;
			unsigned slot;
			for (slot = 0; slot < nfds; slot++)
				if (fd_alloc[slot] == a && fd_rw[slot] == rw)
					break;
			if (slot == nfds && nfds == GR_MSG_FDS_MAX) {
				/* Out of fd room: send what we have, carry on. */
				*rep = (struct gr_copy_reply){ .first = first, .n = n };
				conn_reply_more(c, h, buf, sizeof(*rep) + n * sizeof(*rows), fds,
						nfds);
				first += n;
				n = 0;
				nfds = 0;
				slot = 0;
			}
			if (slot == nfds) {
				int fd = allocation_fd(a, rw);
				if (fd < 0)
					return -ENOMEM;
				fd_alloc[nfds] = a;
				fd_rw[nfds] = rw;
				fds[nfds++] = fd;
			}
			row.fd_index = (uint16_t)slot;
			row.page = e->page->idx;
			row.writable = rw;
		}
		rows[n++] = row;
		if (n == ROWS) {
			*rep = (struct gr_copy_reply){ .first = first, .n = n };
			conn_reply_more(c, h, buf, sizeof(*rep) + n * sizeof(*rows), fds, nfds);
			first += n;
			n = 0;
			nfds = 0;
		}
	}
	*rep = (struct gr_copy_reply){ .first = first, .n = n };
	conn_reply(c, h, 0, buf, sizeof(*rep) + n * sizeof(*rows), fds, nfds);
	return GR_REPLIED;
}
