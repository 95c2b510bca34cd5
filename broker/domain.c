/*
 * Domains and their grant tables: what Xen keeps per domain.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>

#include "evtchn.h"
#include "internal.h"
#include "loop.h"

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct domain *domain_get(struct broker *b, uint16_t id)
{
	if (id >= DOMID_FIRST_RESERVED)
		return NULL;
	return b->domains[id];
}

int domain_claim(struct broker *b, uint16_t id, struct domain **out)
{
	if (id >= DOMID_FIRST_RESERVED)
		return -EINVAL;
	struct domain *d = b->domains[id];
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		d->b = b;
		d->id = id;
		d->gt_next = GNTTAB_NR_RESERVED_ENTRIES;
		b->domains[id] = d;
		log_info("domain %u created", id);
	}
	if (d->claims++ == 0) {
		epoch_bump(b, id); /* alive again after dying */
		xenstore_domain_alive(b, id, true);
	}
	*out = d;
	return 0;
}

int domain_quota_files(struct broker *b, uint16_t id)
{
	struct domain *d = domain_get(b, id);
	if (d && d->claims >= b->cfg.max_files) {
		log_warn("domain %u has %u open files: refusing another", id, d->claims);
		return -EMFILE;
	}
	return 0;
}

bool domain_dying(const struct domain *d)
{
	return d->claims == 0 && !d->declared;
}

void domain_maybe_free(struct domain *d)
{
	if (!d || d->claims > 0 || d->declared || d->grants_used > 0 || d->ports_used > 0)
		return;
	/* Nothing can point here any more: files hold claims, mappings of
	 * this domain's grants hold used entries, allocations hold granted
	 * entries until their pages are dead. */
	log_info("domain %u destroyed", d->id);
	d->b->domains[d->id] = NULL;
	evtchn_domain_free(d);
	free(d->gt);
	free(d->free_refs);
	free(d);
}

void domain_unclaim(struct domain *d)
{
	if (--d->claims == 0 && !d->declared) {
		struct broker *b = d->b;
		/* Dying: its grants can no longer be copied. */
		epoch_bump(b, d->id);
		if (d->grants_used > 0)
			log_info("domain %u dying: %u grants still mapped elsewhere", d->id,
				 d->grants_used);
		uint16_t id = d->id;
		domain_maybe_free(d);
		xenstore_domain_alive(b, id, false);
		/* As Xen tells the hardware domain that a domain died. */
		evtchn_virq_dom_exc(b);
	}
}

static int table_grow(struct domain *d, uint32_t need)
{
	uint32_t size = d->gt_size ? d->gt_size : GT_FRAME_ENTRIES;
	while (size < need)
		size *= 2;
	if (size > d->b->cfg.max_grant_entries)
		size = d->b->cfg.max_grant_entries;
	if (size < need)
		return -ENOSPC;
	if (size == d->gt_size)
		return 0;
	/* The free list can never hold more than the table, so sizing it
	 * here means freeing a ref never needs memory. */
	uint32_t *free_refs = realloc(d->free_refs, size * sizeof(*free_refs));
	if (!free_refs)
		return -ENOMEM;
	d->free_refs = free_refs;
	d->free_cap = size;
	struct grant_entry *gt = realloc(d->gt, size * sizeof(*gt));
	if (!gt)
		return -ENOMEM;
	memset(gt + d->gt_size, 0, (size - d->gt_size) * sizeof(*gt));
	d->gt = gt;
	d->gt_size = size;
	return 0;
}

int grant_alloc(struct domain *d, struct gntalloc_page *page, uint16_t grantee, bool readonly,
		uint32_t *ref_out)
{
	uint32_t ref;
	if (d->nfree > 0) {
		ref = d->free_refs[--d->nfree];
	} else {
		if (d->gt_next >= d->b->cfg.max_grant_entries)
			return -ENOSPC;
		if (d->gt_next >= d->gt_size) {
			int r = table_grow(d, d->gt_next + 1);
			if (r < 0)
				return r;
		}
		ref = d->gt_next++;
	}
	struct grant_entry *e = &d->gt[ref];
	*e = (struct grant_entry){
		.page = page,
		.grantee = grantee,
		.state = GRANT_ACTIVE,
		.readonly = readonly,
	};
	d->grants_used++;
	*ref_out = ref;
	return 0;
}

/* Returns the ref to the free list; the page no longer has a grant. */
static void grant_free(struct domain *d, uint32_t ref)
{
	struct grant_entry *e = &d->gt[ref];
	struct gntalloc_page *page = e->page;
	d->free_refs[d->nfree++] = ref;
	memset(e, 0, sizeof(*e));
	epoch_bump(d->b, d->id);
	d->grants_used--;
	page->granted = false;
	page_maybe_dead(page);
	domain_maybe_free(d);
}

static void ending_add(struct broker *b, struct domain *d, uint32_t ref)
{
	struct grant_entry *e = &d->gt[ref];
	if (e->queued)
		return;
	if (b->nending == b->ending_cap) {
		uint32_t cap = b->ending_cap ? b->ending_cap * 2 : 16;
		struct ending_grant *q = realloc(b->ending, cap * sizeof(*q));
		if (!q) {
			/* Cannot wait for the delay: end it now rather than never. */
			grant_free(d, ref);
			return;
		}
		b->ending = q;
		b->ending_cap = cap;
	}
	e->queued = 1;
	b->ending[b->nending++] = (struct ending_grant){ .dom = d, .ref = ref };
	broker_arm_timer(b);
}

void grant_end(struct domain *d, uint32_t ref)
{
	struct grant_entry *e = &d->gt[ref];
	if (e->state != GRANT_ACTIVE)
		return;
	if (e->mapcount == 0) {
		grant_free(d, ref);
		return;
	}
	/* The grantee still maps it: like Linux's deferred end, it stays in the
	 * table (and mappable) until a while after the last unmap. */
	e->state = GRANT_ENDING;
	e->end_at_ns = 0;
}

struct grant_entry *grant_lookup(struct domain *d, uint32_t ref)
{
	if (!d || ref >= d->gt_size)
		return NULL;
	struct grant_entry *e = &d->gt[ref];
	return e->state == GRANT_FREE ? NULL : e;
}

void grant_map_get(struct domain *d, uint32_t ref)
{
	d->gt[ref].mapcount++;
}

void grant_map_put(struct domain *d, uint32_t ref)
{
	struct grant_entry *e = &d->gt[ref];
	if (--e->mapcount == 0 && e->state == GRANT_ENDING) {
		e->end_at_ns = now_ns() + (uint64_t)d->b->cfg.grant_end_delay_ms * 1000000u;
		ending_add(d->b, d, ref);
	}
}

void broker_arm_timer(struct broker *b)
{
	uint64_t first = 0;
	for (uint32_t i = 0; i < b->nending; i++) {
		struct grant_entry *e = &b->ending[i].dom->gt[b->ending[i].ref];
		if (e->mapcount == 0 && (!first || e->end_at_ns < first))
			first = e->end_at_ns;
	}
	struct itimerspec its = { 0 };
	if (first) {
		its.it_value.tv_sec = (time_t)(first / 1000000000u);
		its.it_value.tv_nsec = (long)(first % 1000000000u);
	}
	timerfd_settime(b->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

void grants_expire(struct broker *b)
{
	uint64_t now = now_ns();
	for (uint32_t i = 0; i < b->nending;) {
		struct ending_grant eg = b->ending[i];
		struct grant_entry *e = &eg.dom->gt[eg.ref];
		/* An entry mapped again leaves the queue; its next last unmap
		 * queues it again. Each entry is queued at most once, so no
		 * other slot can point at a domain this frees. */
		bool remap = e->mapcount > 0;
		bool due = !remap && e->end_at_ns <= now;
		if (!remap && !due) {
			i++;
			continue;
		}
		b->ending[i] = b->ending[--b->nending];
		e->queued = 0;
		if (due) {
			log_debug("grant %u of domain %u ends", eg.ref, eg.dom->id);
			grant_free(eg.dom, eg.ref);
		}
	}
	broker_arm_timer(b);
}

void grants_expire_all(struct broker *b)
{
	for (uint32_t i = 0; i < b->nending; i++) {
		struct grant_entry *e = &b->ending[i].dom->gt[b->ending[i].ref];
		e->end_at_ns = 0;
	}
	grants_expire(b);
}
