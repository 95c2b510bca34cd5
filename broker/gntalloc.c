/*
 * /dev/xen/gntalloc, the broker's half: ABI.md §3. Every check in the
 * driver's order, with its errno. The client's half (lib/) only copies the
 * arguments in and out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evtchn.h"
#include "internal.h"

/* Position of the page with this file index in f->pages, or -1. */
static int64_t page_find(const struct file *f, uint64_t index)
{
	uint32_t lo = 0, hi = f->npages;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint64_t v = f->pages[mid]->file_index;
		if (v == index)
			return mid;
		if (v < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* The pages [pos, pos + count) of the file list have consecutive indexes. */
static bool pages_contiguous(const struct file *f, int64_t pos, uint64_t count)
{
	if (pos < 0 || count == 0 || (uint64_t)pos + count > f->npages)
		return false;
	uint64_t first = f->pages[pos]->file_index;
	for (uint64_t i = 1; i < count; i++)
		if (f->pages[pos + i]->file_index != first + i * XEN_PAGE_SIZE)
			return false;
	return true;
}

static void notify_fire(struct gntalloc_page *p)
{
	struct domain *d = p->alloc->owner;
	/* ABI.md §3.7: the byte first, then the event on the notifier's own
	 * port, then the event reference goes. */
	if (p->notify_flags & UNMAP_NOTIFY_CLEAR_BYTE)
		page_clear_byte(p, p->notify_byte);
	if (p->notify_flags & UNMAP_NOTIFY_SEND_EVENT) {
		evtchn_send_from(d, p->notify_port);
		evtchn_ref_put(d, p->notify_port);
	}
	p->notify_flags = 0;
}

void gntalloc_page_put(struct gntalloc_page *p)
{
	if (--p->users > 0)
		return;
	struct domain *d = p->alloc->owner;
	notify_fire(p);
	d->alloc_pages--;
	/* Freed now, or deferred while the grantee still maps it; either way
	 * the page dies when its grant entry is freed. */
	grant_end(d, p->ref);
}

static int pages_reserve(struct file *f, uint32_t more)
{
	if (f->npages + more <= f->pages_cap)
		return 0;
	uint32_t cap = f->pages_cap ? f->pages_cap : 16;
	while (cap < f->npages + more)
		cap *= 2;
	struct gntalloc_page **pages = realloc(f->pages, cap * sizeof(*pages));
	if (!pages)
		return -ENOMEM;
	f->pages = pages;
	f->pages_cap = cap;
	return 0;
}

static int reply_refs(struct conn *c, const struct gr_hdr *h, uint64_t index,
		      const struct allocation *a, uint32_t count)
{
	enum { PER_MSG = (GR_MSG_MAX - sizeof(struct gr_hdr) - sizeof(struct gr_alloc_reply)) / 4 };
	static char buf[GR_MSG_MAX];
	uint32_t first = 0;
	do {
		uint32_t n = count - first < PER_MSG ? count - first : PER_MSG;
		struct gr_alloc_reply *rep = (void *)buf;
		*rep = (struct gr_alloc_reply){
			.index = index, .count = count, .first = first, .n = n
		};
		uint32_t *refs = (uint32_t *)(rep + 1);
		for (uint32_t i = 0; i < n; i++)
			refs[i] = a->pages[first + i].ref;
		size_t len = sizeof(*rep) + n * sizeof(uint32_t);
		if (first + n < count)
			conn_reply_more(c, h, buf, len, NULL, 0);
		else
			conn_reply(c, h, 0, buf, len, NULL, 0);
		first += n;
	} while (first < count);
	return GR_REPLIED;
}

static int op_alloc(struct conn *c, struct file *f, const struct gr_hdr *h,
		    const struct gr_alloc *req)
{
	struct domain *d = f->dom;
	uint32_t count = req->count;
	bool writable = req->flags & GNTALLOC_FLAG_WRITABLE;
	struct allocation *a = NULL;
	uint32_t granted = 0;
	int r;

	if (count == 0) {
		struct gr_alloc_reply rep = { .index = f->next_index };
		conn_reply(c, h, 0, &rep, sizeof(rep), NULL, 0);
		return GR_REPLIED;
	}
	/* The limit covers the whole domain and is checked before anything
	 * is allocated (ABI.md §11: count 1025 -> ENOSPC). */
	if ((uint64_t)d->alloc_pages + count > d->b->cfg.gntalloc_limit)
		return -ENOSPC;
	uint64_t index = f->next_index;
	/* Consumed even if the allocation fails below, as in the driver. */
	f->next_index += (uint64_t)count * XEN_PAGE_SIZE;

	r = pages_reserve(f, count);
	if (r < 0)
		goto fail;
	r = allocation_create(d, count, req->grantee, writable, &a);
	if (r < 0)
		goto fail;
	for (; granted < count; granted++) {
		struct gntalloc_page *p = &a->pages[granted];
		r = grant_alloc(d, p, req->grantee, !writable, &p->ref);
		if (r < 0)
			goto fail;
		p->granted = true;
	}
	d->alloc_pages += count;
	for (uint32_t i = 0; i < count; i++) {
		struct gntalloc_page *p = &a->pages[i];
		p->file_index = index + (uint64_t)i * XEN_PAGE_SIZE;
		p->users = 1;
		p->in_file = true;
		f->pages[f->npages++] = p;
	}
	log_debug("domain %u granted %u page(s) to %u at index %#llx, first ref %u", d->id, count,
		  req->grantee, (unsigned long long)index, a->pages[0].ref);
	return reply_refs(c, h, index, a, count);

fail:
	if (a) {
		/* Never mapped, so every end is immediate and frees the page. */
		for (uint32_t i = 0; i < count; i++) {
			if (i < granted)
				grant_end(d, a->pages[i].ref);
			else
				page_maybe_dead(&a->pages[i]);
		}
	}
	return r;
}

static int op_dealloc(struct file *f, const struct gr_range *req)
{
	int64_t pos = page_find(f, req->index);
	/* Not found, not contiguous and count 0 are all EINVAL (ABI.md §3.4). */
	if (!pages_contiguous(f, pos, req->count))
		return -EINVAL;
	uint32_t count = req->count;
	struct gntalloc_page **gone = malloc(count * sizeof(*gone));
	if (!gone)
		return -ENOMEM;
	memcpy(gone, f->pages + pos, count * sizeof(*gone));
	memmove(f->pages + pos, f->pages + pos + count,
		(f->npages - (uint32_t)pos - count) * sizeof(*gone));
	f->npages -= count;
	for (uint32_t i = 0; i < count; i++) {
		gone[i]->in_file = false;
		gntalloc_page_put(gone[i]);
	}
	free(gone);
	return 0;
}

static int op_notify(struct file *f, const struct gr_notify *req)
{
	uint64_t page_index = req->index & ~(uint64_t)(XEN_PAGE_SIZE - 1);
	int64_t pos = page_find(f, page_index);
	/* gntalloc looks the page up before it checks the action. */
	if (pos < 0)
		return -ENOENT;
	if (req->action & ~(uint32_t)(UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT))
		return -EINVAL;
	struct gntalloc_page *p = f->pages[pos];
	struct domain *d = f->dom;
	if (req->action & UNMAP_NOTIFY_SEND_EVENT) {
		int r = evtchn_ref_get(d, req->port);
		if (r < 0)
			return -EINVAL;
	}
	if (p->notify_flags & UNMAP_NOTIFY_SEND_EVENT)
		evtchn_ref_put(d, p->notify_port);
	p->notify_flags = (uint8_t)req->action;
	p->notify_byte = (uint16_t)(req->index & (XEN_PAGE_SIZE - 1));
	p->notify_port = req->port;
	return 0;
}

int gntalloc_mmap(struct conn *c, struct file *f, const struct gr_hdr *h, const struct gr_mmap *m)
{
	/* Any private mapping, read-only too (ABI.md §11). */
	if (!(m->flags & GR_MMAP_SHARED))
		return -EINVAL;
	uint64_t npages = m->len / XEN_PAGE_SIZE;
	int64_t pos = page_find(f, m->offset);
	if (!pages_contiguous(f, pos, npages))
		return -ENOENT;

	struct run_page *runs = malloc(npages * sizeof(*runs));
	struct gntalloc_page **pages = malloc(npages * sizeof(*pages));
	struct mapping *map = NULL;
	int token = -1, r = -ENOMEM;
	if (!runs || !pages)
		goto out;
	r = mapping_create(f, c, &map, &token);
	if (r < 0)
		goto out;
	for (uint64_t i = 0; i < npages; i++) {
		pages[i] = f->pages[pos + i];
		pages[i]->users++;
		runs[i] = (struct run_page){ pages[i]->alloc, pages[i]->idx };
	}
	map->pages = pages;
	map->npages = (uint32_t)npages;
	map->writable = true;
	pages = NULL;
	r = mapping_send(c, h, map, token, runs, (uint32_t)npages, true);
out:
	free(runs);
	free(pages);
	return r;
}

void gntalloc_release(struct file *f)
{
	/* Take the list first: a put may fire a notification, never touch it. */
	struct gntalloc_page **pages = f->pages;
	uint32_t n = f->npages;
	f->pages = NULL;
	f->npages = f->pages_cap = 0;
	for (uint32_t i = 0; i < n; i++) {
		pages[i]->in_file = false;
		gntalloc_page_put(pages[i]);
	}
	free(pages);
}

int gntalloc_handle(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p,
		    size_t len)
{
	switch (h->op) {
	case GR_OP_ALLOC:
		if (len != sizeof(struct gr_alloc))
			return -EPROTO;
		return op_alloc(c, f, h, p);
	case GR_OP_DEALLOC:
		if (len != sizeof(struct gr_range))
			return -EPROTO;
		return op_dealloc(f, p);
	case GR_OP_ALLOC_NOTIFY:
		if (len != sizeof(struct gr_notify))
			return -EPROTO;
		return op_notify(f, p);
	default:
		return -EPROTO;
	}
}
