/*
 * /dev/xen/gntdev, the broker's half: ABI.md §4 in the auto-translated model
 * (grants are mapped at mmap and unmapped when the map is destroyed).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "evtchn.h"
#include "internal.h"

static struct gntdev_map *map_find(const struct file *f, uint64_t index, uint32_t count,
				   uint32_t *pos)
{
	for (uint32_t i = 0; i < f->nmaps; i++) {
		struct gntdev_map *m = f->maps[i];
		if (m->index == index && (count == 0 || m->count == count)) {
			if (pos)
				*pos = i;
			return m;
		}
		if (m->index > index)
			break;
	}
	return NULL;
}

/* First fit with the driver's quirk: a hole is reused only if it is at
 * least count + 1 pages (ABI.md §4.2). Returns the list position. */
static uint32_t index_place(const struct file *f, uint32_t count, uint64_t *index)
{
	uint64_t candidate = 0;
	uint32_t i;
	for (i = 0; i < f->nmaps; i++) {
		if (candidate + count < f->maps[i]->index)
			break;
		candidate = f->maps[i]->index + f->maps[i]->count;
	}
	*index = candidate;
	return i;
}

static int map_insert(struct file *f, struct gntdev_map *m, uint64_t *index)
{
	if (f->nmaps == f->maps_cap) {
		uint32_t cap = f->maps_cap ? f->maps_cap * 2 : 8;
		struct gntdev_map **maps = realloc(f->maps, cap * sizeof(*maps));
		if (!maps)
			return -ENOMEM;
		f->maps = maps;
		f->maps_cap = cap;
	}
	uint32_t pos = index_place(f, m->count, &m->index);
	memmove(f->maps + pos + 1, f->maps + pos, (f->nmaps - pos) * sizeof(*f->maps));
	f->maps[pos] = m;
	f->nmaps++;
	m->listed = true;
	*index = m->index;
	return 0;
}

static void map_unlist(struct file *f, uint32_t pos)
{
	struct gntdev_map *m = f->maps[pos];
	memmove(f->maps + pos, f->maps + pos + 1, (f->nmaps - pos - 1) * sizeof(*f->maps));
	f->nmaps--;
	m->listed = false;
}

static void map_destroy(struct gntdev_map *m)
{
	struct domain *mapper = m->file->dom;
	/* ABI.md §4.12: the byte (only if some grant was really mapped and the
	 * byte's page is one of them), the grant unmap, then the event. A map
	 * mmapped read-only is mapped GNTMAP_readonly: the kernel's write of the
	 * byte cannot reach the granter's page on Xen (the hypervisor refuses
	 * it), so the byte stays. */
	if ((m->notify_flags & UNMAP_NOTIFY_CLEAR_BYTE) && m->nmapped > 0 && !m->readonly) {
		uint64_t pg = m->notify_offset / XEN_PAGE_SIZE;
		struct mapped_grant *mg = &m->mapped[pg];
		if (mg->dom)
			page_clear_byte(mg->dom->gt[mg->ref].page,
					(uint32_t)(m->notify_offset % XEN_PAGE_SIZE));
	}
	for (uint32_t i = 0; m->mapped && i < m->count; i++) {
		struct mapped_grant *mg = &m->mapped[i];
		if (!mg->dom)
			continue;
		mapper->maptrack--;
		grant_map_put(mg->dom, mg->ref);
	}
	if (m->notify_flags & UNMAP_NOTIFY_SEND_EVENT) {
		evtchn_send_from(mapper, m->notify_port);
		evtchn_ref_put(mapper, m->notify_port);
	}
	if (!m->over_quota)
		mapper->map_refs -= m->count;
	free(m->mapped);
	free(m->refs);
	free(m);
}

void gntdev_map_put(struct gntdev_map *m)
{
	if (--m->users == 0)
		map_destroy(m);
}

/* Completes a MAP_GRANT_REF once all its refs have arrived; the reply (or
 * the error) goes to the MAP message, whatever message completed it. */
static int map_finish(struct conn *c, struct file *f, const struct gr_hdr *h)
{
	struct gr_hdr map_hdr = *h;
	map_hdr.op = GR_OP_MAP;
	map_hdr.seq = c->pending_seq;
	map_hdr.flags = c->pending_noreply ? GR_HDR_NOREPLY : 0;
	struct gntdev_map *m = calloc(1, sizeof(*m));
	uint64_t index;
	int r = -ENOMEM;
	if (!m)
		goto fail;
	m->file = f;
	m->count = c->pending_count;
	m->refs = c->pending_refs;
	m->users = 1;
	c->pending_refs = NULL;
	bool predicted = c->pending_flags & GR_MAP_PREDICTED;
	if ((uint64_t)f->dom->map_refs + m->count > f->b->cfg.max_map_refs) {
		if (!predicted) {
			r = -ENOMEM;
			goto fail;
		}
		/* The client already gave out the index: keep the place, and
		 * let its mmap fail with ENOMEM instead. */
		free(m->refs);
		m->refs = NULL;
		m->over_quota = true;
	} else {
		f->dom->map_refs += m->count;
	}
	r = map_insert(f, m, &index);
	if (r < 0) {
		if (!m->over_quota)
			f->dom->map_refs -= m->count;
		goto fail;
	}
	if (predicted && index != c->pending_index / XEN_PAGE_SIZE) {
		log_warn("domain %u: MAP at page %llu, client predicted %llu", f->dom->id,
			 (unsigned long long)index,
			 (unsigned long long)(c->pending_index / XEN_PAGE_SIZE));
		return -EPROTO;
	}
	struct gr_map_reply rep = { .index = index * XEN_PAGE_SIZE };
	conn_reply(c, &map_hdr, 0, &rep, sizeof(rep), NULL, 0);
	return GR_REPLIED;
fail:
	if (m)
		free(m->refs);
	free(m);
	free(c->pending_refs);
	c->pending_refs = NULL;
	conn_reply(c, &map_hdr, r, NULL, 0, NULL, 0);
	return GR_REPLIED;
}

static int op_map(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p, size_t len)
{
	const struct gr_map *req = p;
	if (len < sizeof(*req) || c->pending_refs)
		return -EPROTO;
	if ((len - sizeof(*req)) / sizeof(struct gr_grant_ref) != req->n ||
	    (len - sizeof(*req)) % sizeof(struct gr_grant_ref) != 0 || req->n > req->count)
		return -EPROTO;
	if (req->count == 0 || req->count > f->b->cfg.gntdev_map_limit)
		return (req->flags & GR_MAP_PREDICTED) ? -EPROTO : -EINVAL;
	c->pending_refs = malloc(req->count * sizeof(struct gr_grant_ref));
	if (!c->pending_refs)
		return -ENOMEM;
	memcpy(c->pending_refs, req + 1, req->n * sizeof(struct gr_grant_ref));
	c->pending_count = req->count;
	c->pending_have = req->n;
	c->pending_index = req->index;
	c->pending_flags = req->flags;
	c->pending_seq = h->seq;
	c->pending_noreply = h->flags & GR_HDR_NOREPLY;
	if (c->pending_have < c->pending_count)
		return GR_REPLIED; /* the rest follows in GR_OP_MAP_REFS */
	return map_finish(c, f, h);
}

static int op_map_refs(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p,
		       size_t len)
{
	const struct gr_map_refs *req = p;
	if (len < sizeof(*req) || !c->pending_refs)
		return -EPROTO;
	size_t body = len - sizeof(*req);
	if (body % sizeof(struct gr_grant_ref) || body / sizeof(struct gr_grant_ref) != req->n ||
	    req->n > c->pending_count - c->pending_have)
		return -EPROTO;
	memcpy(c->pending_refs + c->pending_have, req + 1, body);
	c->pending_have += req->n;
	if (c->pending_have < c->pending_count)
		return GR_REPLIED;
	return map_finish(c, f, h);
}

static int op_unmap(struct file *f, const struct gr_range *req)
{
	uint32_t pos;
	/* Sub-page bits are ignored; count 0 matches any map (ABI.md §4.5). */
	if (!map_find(f, req->index / XEN_PAGE_SIZE, req->count, &pos))
		return -ENOENT;
	struct gntdev_map *m = f->maps[pos];
	map_unlist(f, pos);
	gntdev_map_put(m);
	return 0;
}

static int op_notify(struct file *f, const struct gr_notify *req)
{
	struct domain *d = f->dom;
	bool send = req->action & UNMAP_NOTIFY_SEND_EVENT;
	int r = 0;
	/* gntdev checks the action first (the reverse of gntalloc). */
	if (req->action & ~(uint32_t)(UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT))
		return -EINVAL;
	if (send && evtchn_ref_get(d, req->port) < 0)
		return -EINVAL;
	uint64_t page = req->index / XEN_PAGE_SIZE;
	struct gntdev_map *m = NULL;
	for (uint32_t i = 0; i < f->nmaps; i++) {
		struct gntdev_map *cand = f->maps[i];
		if (page >= cand->index && page < cand->index + cand->count) {
			m = cand;
			break;
		}
	}
	if (!m) {
		r = -ENOENT;
		goto drop_new;
	}
	if ((req->action & UNMAP_NOTIFY_CLEAR_BYTE) && m->in_use && m->readonly) {
		r = -EINVAL;
		goto drop_new;
	}
	if (m->notify_flags & UNMAP_NOTIFY_SEND_EVENT)
		evtchn_ref_put(d, m->notify_port);
	m->notify_flags = (uint8_t)req->action;
	m->notify_offset = req->index - m->index * XEN_PAGE_SIZE;
	m->notify_port = req->port;
	return 0;
drop_new:
	if (send)
		evtchn_ref_put(d, req->port);
	return r;
}

/* Whether the mapping domain may map this grant: the checks of Xen's
 * map_grant_ref that gntdev collapses into EINVAL at mmap. */
static struct domain *grant_check(struct file *f, const struct gr_grant_ref *gr, bool writable)
{
	/* The ABI's u32 domid reaches Xen truncated to 16 bits; DOMID_SELF
	 * is not accepted by map_grant_ref. */
	struct domain *g = domain_get(f->b, (uint16_t)gr->domid);
	struct grant_entry *e = grant_lookup(g, gr->ref);
	if (!e || e->grantee != f->dom->id)
		return NULL;
	if (writable && e->readonly)
		return NULL;
	if (f->dom->maptrack >= f->b->cfg.max_maptrack)
		return NULL;
	return g;
}

int gntdev_mmap(struct conn *c, struct file *f, const struct gr_hdr *h, const struct gr_mmap *req)
{
	bool writable = req->prot & PROT_WRITE;
	struct run_page *runs = NULL;
	struct mapping *mapping = NULL;
	int token = -1, r;

	if (writable && !(req->flags & GR_MMAP_SHARED))
		return -EINVAL;
	struct gntdev_map *m = map_find(f, req->offset / XEN_PAGE_SIZE,
					(uint32_t)(req->len / XEN_PAGE_SIZE), NULL);
	if (!m || (uint64_t)m->count * XEN_PAGE_SIZE != req->len)
		return -EINVAL;
	/* Each map can be mmapped once in its life (Linux >= 6.1). */
	if (m->in_use)
		return -EINVAL;
	if (m->over_quota)
		return -ENOMEM;
	m->mapped = calloc(m->count, sizeof(*m->mapped));
	runs = malloc(m->count * sizeof(*runs));
	if (!m->mapped || !runs) {
		free(m->mapped);
		m->mapped = NULL;
		r = -ENOMEM;
		goto out;
	}
	m->in_use = true;
	m->readonly = !writable;

	bool failed = false;
	for (uint32_t i = 0; i < m->count; i++) {
		struct domain *g = grant_check(f, &m->refs[i], writable);
		if (!g) {
			failed = true;
			continue;
		}
		m->mapped[i] = (struct mapped_grant){ .dom = g, .ref = m->refs[i].ref };
		grant_map_get(g, m->refs[i].ref);
		f->dom->maptrack++;
		m->nmapped++;
		struct gntalloc_page *pg = g->gt[m->refs[i].ref].page;
		runs[i] = (struct run_page){ pg->alloc, pg->idx };
	}
	/* The pages that did map stay mapped until the map is destroyed, and
	 * the map can never be mmapped again (ABI.md §4.11 step 7). */
	if (failed) {
		r = -EINVAL;
		goto out;
	}
	r = mapping_create(f, c, &mapping, &token);
	if (r < 0)
		goto out;
	m->users++;
	mapping->map = m;
	mapping->npages = m->count;
	mapping->writable = writable;
	r = mapping_send(c, h, mapping, token, runs, m->count, writable);
out:
	free(runs);
	return r;
}

void gntdev_release(struct file *f)
{
	while (f->nmaps > 0) {
		struct gntdev_map *m = f->maps[f->nmaps - 1];
		map_unlist(f, f->nmaps - 1);
		gntdev_map_put(m);
	}
}

int gntdev_handle(struct conn *c, struct file *f, const struct gr_hdr *h, const void *p, size_t len)
{
	switch (h->op) {
	case GR_OP_MAP:
		return op_map(c, f, h, p, len);
	case GR_OP_MAP_REFS:
		return op_map_refs(c, f, h, p, len);
	case GR_OP_UNMAP:
		if (len != sizeof(struct gr_range))
			return -EPROTO;
		return op_unmap(f, p);
	case GR_OP_DEV_NOTIFY:
		if (len != sizeof(struct gr_notify))
			return -EPROTO;
		return op_notify(f, p);
	case GR_OP_COPY_REFS:
		return copy_refs(c, f, h, p, len);
	default:
		return -EPROTO;
	}
}
