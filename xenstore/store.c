/*
 * Node records and the versioned store.
 *
 * Each path keeps its versions newest first. A transaction reads the store
 * as of its snapshot (the change counter when it started), which gives it
 * snapshot isolation for free; at commit it only has to ask, for each path
 * it touched, whether a version newer than its snapshot exists. Versions no
 * open snapshot can see are freed at once when a version is published, and
 * for all paths when a snapshot ends (the `dirty` list holds the paths that
 * may have some). With no transaction open, every path has one version and
 * removed paths vanish.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct rec *xs_rec_new(const struct xs_perm *perms, uint32_t nperms, const void *data,
		       uint32_t datalen, const char *children, uint32_t childlen)
{
	size_t size = sizeof(struct rec) + nperms * sizeof(struct xs_perm) + datalen + childlen;
	struct rec *r = malloc(size);
	if (!r)
		return NULL;
	*r = (struct rec){ .nperms = nperms, .datalen = datalen, .childlen = childlen };
	r->perms = (struct xs_perm *)(r + 1);
	r->data = (char *)(r->perms + nperms);
	r->children = r->data + datalen;
	/* A NULL source leaves that part for the caller to fill. */
	if (nperms && perms)
		memcpy(r->perms, perms, nperms * sizeof(*perms));
	if (datalen && data)
		memcpy(r->data, data, datalen);
	if (childlen && children)
		memcpy(r->children, children, childlen);
	return r;
}

struct rec *xs_rec_tombstone(void)
{
	struct rec *r = xs_rec_new(NULL, 0, NULL, 0, NULL, 0);
	if (r)
		r->deleted = true;
	return r;
}

void xs_rec_free(struct rec *r)
{
	free(r);
}

static void free_chain(struct rec *r)
{
	while (r) {
		struct rec *older = r->older;
		xs_rec_free(r);
		r = older;
	}
}

int xs_store_init(struct store *st)
{
	*st = (struct store){ 0 };
	list_init(&st->snaps);
	list_init(&st->dirty);
	return xs_hmap_init(&st->map) < 0 ? -1 : 0;
}

void xs_store_fini(struct store *st)
{
	if (!st->map.b)
		return;
	for (size_t i = 0; i < st->map.nb; i++) {
		struct hnode *n = st->map.b[i];
		while (n) {
			struct hnode *next = n->next;
			struct store_entry *e = (struct store_entry *)n;
			free_chain(e->top);
			free(e);
			n = next;
		}
	}
	xs_hmap_fini(&st->map);
}

static struct store_entry *find(const struct store *st, const char *path)
{
	return (struct store_entry *)xs_hmap_find(&st->map, path, xs_hmap_hash(path));
}

const struct rec *xs_store_get(const struct store *st, const char *path, uint64_t at)
{
	struct store_entry *e = find(st, path);
	for (struct rec *r = e ? e->top : NULL; r; r = r->older)
		if (r->seq <= at)
			return r->deleted ? NULL : r;
	return NULL;
}

uint64_t xs_store_head_seq(const struct store *st, const char *path)
{
	struct store_entry *e = find(st, path);
	return e && e->top ? e->top->seq : 0;
}

static void set_dirty(struct store *st, struct store_entry *e, bool dirty)
{
	if (dirty && !e->on_dirty)
		list_append(&st->dirty, &e->dirty);
	else if (!dirty && e->on_dirty)
		list_remove(&e->dirty);
	e->on_dirty = dirty;
}

int xs_store_reserve(struct store *st, const char *path)
{
	if (find(st, path))
		return 0;
	size_t len = strlen(path);
	struct store_entry *e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -1;
	memcpy(e->path, path, len + 1);
	e->h = (struct hnode){ .hash = xs_hmap_hash(path), .key = e->path };
	e->top = NULL;
	e->on_dirty = false;
	list_init(&e->dirty);
	xs_hmap_insert(&st->map, &e->h);
	/* Freed by the next collection if never published. */
	set_dirty(st, e, true);
	return 0;
}

/* The oldest open snapshot, if any. */
static bool oldest_snap(const struct store *st, uint64_t *min)
{
	bool any = false;
	struct snap *sn;
	list_for_each(sn, tmp, &st->snaps, struct snap, link)
	{
		if (!any || sn->seq < *min)
			*min = sn->seq;
		any = true;
	}
	return any;
}

/* Frees what no snapshot can see; may free e itself. */
static void prune(struct store *st, struct store_entry *e, bool any, uint64_t min)
{
	struct rec *top = e->top;
	if (top) {
		struct rec *keep = top;
		if (any)
			while (keep->seq > min && keep->older)
				keep = keep->older;
		free_chain(keep->older);
		keep->older = NULL;
	}
	if (!top || (top->deleted && !top->older && (!any || top->seq <= min))) {
		set_dirty(st, e, false);
		xs_hmap_remove(&st->map, &e->h);
		free_chain(top);
		free(e);
		return;
	}
	set_dirty(st, e, top->older || top->deleted);
}

void xs_store_publish(struct store *st, const char *path, struct rec *r)
{
	struct store_entry *e = find(st, path);
	bool was = e->top && !e->top->deleted;
	r->seq = ++st->seq;
	r->older = e->top;
	e->top = r;
	if (was)
		st->live--;
	if (!r->deleted)
		st->live++;
	uint64_t min = 0;
	bool any = oldest_snap(st, &min);
	prune(st, e, any, min);
}

void xs_store_snap_begin(struct store *st, struct snap *sn)
{
	sn->seq = st->seq;
	list_append(&st->snaps, &sn->link);
}

void xs_store_snap_end(struct store *st, struct snap *sn)
{
	list_remove(&sn->link);
	uint64_t min = 0;
	bool any = oldest_snap(st, &min);
	struct store_entry *e;
	list_for_each(e, tmp, &st->dirty, struct store_entry, dirty)
	{
		prune(st, e, any, min);
	}
}

void xs_store_foreach(const struct store *st,
		      void (*fn)(void *arg, const char *path, const struct rec *r), void *arg)
{
	for (size_t i = 0; i < st->map.nb; i++)
		for (struct hnode *n = st->map.b[i]; n; n = n->next) {
			struct store_entry *e = (struct store_entry *)n;
			if (e->top && !e->top->deleted)
				fn(arg, e->path, e->top);
		}
}
