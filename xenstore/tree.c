/*
 * Node operations, with xenstored's rules (4.17):
 *
 * - To read (or list, or get the permissions of) a node a domain needs r on
 *   it; to write, create under, or remove it, w (creating needs w on the
 *   nearest existing ancestor); to set its permissions, it must own it.
 * - A missing or forbidden node answers ENOENT only if the nearest existing
 *   ancestor would have allowed the access, and EACCES otherwise, so that
 *   errors tell nothing about nodes one may not see.
 * - A new node inherits its parent's permissions; a domain other than dom0
 *   becomes the owner of what it creates. Missing ancestors are created too.
 * - Watch events: a write, mkdir (of a new node) or set_perms of P fires
 *   watches on P and its ancestors; rm of P fires them for P and, for each
 *   node of the subtree, the watches on exactly that node (children first).
 *
 * Every operation works on a view and collects its changes in a batch,
 * applied whole at the end (tree_apply) or merged into its transaction: an
 * operation that fails half-way leaves nothing behind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

void xs_path_parent(const char *path, char *buf)
{
	const char *slash = strrchr(path + 1, '/');
	if (!slash || path[0] != '/') {
		strcpy(buf, "/");
		return;
	}
	size_t n = (size_t)(slash - path);
	if (n == 0)
		n = 1;
	memcpy(buf, path, n);
	buf[n] = '\0';
}

bool xs_path_is_child(const char *path, const char *parent)
{
	/* "/" should be "" for this to work, as xenstored says. */
	if (strcmp(parent, "/") == 0)
		return true;
	size_t n = strlen(parent);
	return strncmp(path, parent, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static const char *basename_of(const char *path)
{
	return strrchr(path, '/') + 1;
}

/* ---- records ------------------------------------------------------------ */

static struct rec *with_data(const struct rec *r, const void *data, uint32_t len)
{
	return xs_rec_new(r->perms, r->nperms, data, len, r->children, r->childlen);
}

static struct rec *with_perms(const struct rec *r, const struct xs_perm *p, uint32_t n)
{
	return xs_rec_new(p, n, r->data, r->datalen, r->children, r->childlen);
}

static struct rec *with_child(const struct rec *r, const char *name)
{
	size_t n = strlen(name) + 1;
	struct rec *c = xs_rec_new(r->perms, r->nperms, r->data, r->datalen, NULL,
				   r->childlen + (uint32_t)n);
	if (c) {
		memcpy(c->children, r->children, r->childlen);
		memcpy(c->children + r->childlen, name, n);
	}
	return c;
}

static struct rec *without_child(const struct rec *r, const char *name)
{
	uint32_t off = 0, n = 0;
	while (off < r->childlen) {
		n = (uint32_t)strlen(r->children + off) + 1;
		if (strcmp(r->children + off, name) == 0)
			break;
		off += n;
	}
	if (off >= r->childlen) {
		log_warn("xenstore: %s missing from its parent's children", name);
		return xs_rec_new(r->perms, r->nperms, r->data, r->datalen, r->children,
				  r->childlen);
	}
	struct rec *c = xs_rec_new(r->perms, r->nperms, r->data, r->datalen, NULL, r->childlen - n);
	if (c) {
		memcpy(c->children, r->children, off);
		memcpy(c->children + off, r->children + off + n, r->childlen - off - n);
	}
	return c;
}

/* ---- views -------------------------------------------------------------- */

int xs_view_begin(struct view *v, struct xs_server *s, struct tx *tx, const struct actor *who)
{
	*v = (struct view){ .s = s, .tx = tx, .who = *who };
	return xs_changes_init(&v->batch) < 0 ? -ENOMEM : 0;
}

int xs_view_end(struct view *v, bool commit)
{
	int r = 0;
	if (commit && v->batch.n)
		r = v->tx ? xs_tx_merge(v->tx, &v->batch, &v->who) : xs_tree_apply(v->s, &v->batch);
	xs_changes_fini(&v->batch);
	return r;
}

/* The node before this operation: in the transaction, or at the head. */
static int base_get(struct view *v, const char *path, const struct rec **out)
{
	if (!v->tx) {
		*out = xs_store_get(&v->s->store, path, STORE_HEAD);
		return 0;
	}
	struct change *ch = xs_changes_find(&v->tx->overlay, path);
	if (!ch) {
		int r = xs_tx_access(v->tx, path, &v->who);
		if (r < 0)
			return r;
		ch = xs_changes_find(&v->tx->overlay, path);
	}
	if (ch && ch->written)
		*out = ch->rec->deleted ? NULL : ch->rec;
	else
		*out = xs_store_get(&v->s->store, path, v->tx->snap.seq);
	return 0;
}

int xs_view_get(struct view *v, const char *path, const struct rec **out)
{
	struct change *ch = xs_changes_find(&v->batch, path);
	if (ch && ch->written) {
		*out = ch->rec->deleted ? NULL : ch->rec;
		return 0;
	}
	return base_get(v, path, out);
}

/* Queues r (consumed; NULL means ENOMEM) as the new version of path. */
static int view_put(struct view *v, const char *path, struct rec *r)
{
	if (!r)
		return -ENOMEM;
	struct change *ch = xs_changes_find(&v->batch, path);
	if (!ch) {
		const struct rec *base;
		int e = base_get(v, path, &base);
		if (e == 0 && !(ch = xs_changes_add(&v->batch, path, base)))
			e = -ENOMEM;
		if (e < 0) {
			xs_rec_free(r);
			return e;
		}
	}
	xs_change_set(ch, r);
	return 0;
}

/* A non-exact event replaces an exact one, not the other way round. */
static void view_fire(struct view *v, const char *path, bool exact)
{
	struct change *ch = xs_changes_find(&v->batch, path);
	if (!ch)
		return;
	if (!ch->fire)
		ch->exact = exact;
	else if (!exact)
		ch->exact = false;
	ch->fire = true;
}

/* ---- permission checks -------------------------------------------------- */

static unsigned rec_perm(const struct view *v, const struct rec *r)
{
	return xs_perm_for(&v->who, r->perms, r->nperms);
}

/* What the nearest existing ancestor of path allows. */
static int ask_parents(struct view *v, const char *path, unsigned *perm)
{
	char name[XS_PATH_BUF];
	const struct rec *r = NULL;
	snprintf(name, sizeof(name), "%s", path);
	do {
		char up[XS_PATH_BUF];
		xs_path_parent(name, up);
		strcpy(name, up);
		int e = xs_view_get(v, name, &r);
		if (e < 0)
			return e;
	} while (!r && strcmp(name, "/") != 0);
	*perm = r ? rec_perm(v, r) : XS_PERM_NONE;
	return 0;
}

int xs_tree_get(struct view *v, const char *path, unsigned perm, const struct rec **out)
{
	const struct rec *r;
	int e = xs_view_get(v, path, &r);
	if (e < 0)
		return e;
	if (r && (rec_perm(v, r) & perm) == perm) {
		*out = r;
		return 0;
	}
	/* Tell ENOENT or EACCES only as the parents would. */
	unsigned parent_perm;
	int e2 = ask_parents(v, path, &parent_perm);
	if (e2 < 0)
		return e2;
	e = r ? -EACCES : -ENOENT;
	return (parent_perm & perm) ? e : -EACCES;
}

/* ---- operations --------------------------------------------------------- */

static unsigned own_nodes(const struct view *v)
{
	const struct domain *d = xs_domain_find(v->s, v->who.domid);
	long n = (long)(d ? d->nodes : 0) + (v->tx ? v->tx->own_delta : 0) + (long)v->created;
	return n < 0 ? 0 : (unsigned)n;
}

/* Creates path and its missing ancestors; path is known to be missing. */
static int create(struct view *v, const char *path, const void *data, uint32_t len)
{
	uint16_t ends[XS_PATH_BUF / 2 + 1];
	char buf[XS_PATH_BUF];
	size_t plen = strlen(path);
	unsigned levels = 0;
	const struct rec *parent = NULL;

	/* Walk up to the nearest existing node. */
	strcpy(buf, path);
	ends[levels++] = (uint16_t)plen;
	for (;;) {
		char up[XS_PATH_BUF];
		xs_path_parent(buf, up);
		int e = xs_view_get(v, up, &parent);
		if (e < 0)
			return e;
		strcpy(buf, up);
		if (parent)
			break;
		if (strcmp(up, "/") == 0)
			return -ENOENT;
		ends[levels++] = (uint16_t)strlen(up);
	}

	/* And down again, creating. buf holds the parent's path. */
	while (levels > 0) {
		size_t end = ends[--levels];
		char child[XS_PATH_BUF];
		memcpy(child, path, end);
		child[end] = '\0';

		if (!v->who.priv && own_nodes(v) >= v->s->cfg.max_nodes_per_domain)
			return -ENOSPC;

		/* Inherit the parent's permissions; a domain owns what it makes. */
		struct rec *node =
			levels == 0 ? xs_rec_new(parent->perms, parent->nperms, data, len, NULL, 0)
				    : xs_rec_new(parent->perms, parent->nperms, NULL, 0, NULL, 0);
		if (node && !v->who.priv)
			node->perms[0].id = v->who.domid;
		int e = view_put(v, buf, with_child(parent, basename_of(child)));
		if (e == 0)
			e = view_put(v, child, node);
		else
			xs_rec_free(node);
		if (e < 0)
			return e;
		v->created++;
		if ((e = xs_view_get(v, child, &parent)) < 0)
			return e;
		strcpy(buf, child);
	}
	return 0;
}

int xs_tree_write(struct view *v, const char *path, const void *data, uint32_t len)
{
	const struct rec *r;
	int e = xs_tree_get(v, path, XS_PERM_WRITE, &r);
	if (e < 0 && e != -ENOENT)
		return e;
	if (!v->who.priv && len > v->s->cfg.max_value_size)
		return -ENOSPC;
	e = e == 0 ? view_put(v, path, with_data(r, data, len)) : create(v, path, data, len);
	if (e < 0)
		return e;
	view_fire(v, path, false);
	return 0;
}

int xs_tree_mkdir(struct view *v, const char *path)
{
	const struct rec *r;
	int e = xs_tree_get(v, path, XS_PERM_WRITE, &r);
	if (e != -ENOENT)
		return e; /* existing is fine */
	if ((e = create(v, path, NULL, 0)) < 0)
		return e;
	view_fire(v, path, false);
	return 0;
}

/* Removes the subtree at path (buf), children first. */
static int remove_walk(struct view *v, char *buf, const char *root)
{
	const struct rec *r;
	int e = xs_view_get(v, buf, &r);
	if (e < 0 || !r)
		return e;
	size_t len = strlen(buf);
	for (uint32_t off = 0; off < r->childlen;) {
		const char *name = r->children + off;
		size_t n = strlen(name);
		off += (uint32_t)n + 1;
		if (len + 1 + n >= XS_PATH_BUF)
			continue; /* cannot exist */
		buf[len] = '/';
		memcpy(buf + len + 1, name, n + 1);
		e = remove_walk(v, buf, root);
		buf[len] = '\0';
		if (e < 0)
			return e;
	}
	if ((e = view_put(v, buf, xs_rec_tombstone())) < 0)
		return e;
	view_fire(v, buf, strcmp(buf, root) != 0);
	return 0;
}

int xs_tree_remove(struct view *v, const char *path)
{
	char parent[XS_PATH_BUF], buf[XS_PATH_BUF];
	const struct rec *p;
	xs_path_parent(path, parent);
	int e = xs_view_get(v, parent, &p);
	if (e < 0)
		return e;
	if (!p)
		return -EINVAL;
	snprintf(buf, sizeof(buf), "%s", path);
	if ((e = remove_walk(v, buf, path)) < 0)
		return e;
	if ((e = xs_view_get(v, parent, &p)) < 0)
		return e;
	return view_put(v, parent, without_child(p, basename_of(path)));
}

int xs_tree_rm(struct view *v, const char *path)
{
	const struct rec *r;
	int e = xs_tree_get(v, path, XS_PERM_WRITE, &r);
	if (e == -ENOENT) {
		/* Removing a missing node is fine if its parent exists. */
		char parent[XS_PATH_BUF];
		xs_path_parent(path, parent);
		if ((e = xs_view_get(v, parent, &r)) < 0)
			return e;
		return r ? 0 : -ENOENT;
	}
	if (e < 0)
		return e;
	if (strcmp(path, "/") == 0)
		return -EINVAL;
	return xs_tree_remove(v, path);
}

int xs_tree_set_perms(struct view *v, const char *path, const struct xs_perm *p, uint32_t n)
{
	const struct rec *r;
	int e = xs_tree_get(v, path, XS_PERM_WRITE | XS_PERM_OWNER, &r);
	if (e < 0)
		return e;
	/* Only dom0 may give a node away. */
	if (!v->who.priv && p[0].id != r->perms[0].id)
		return -EPERM;
	if ((e = view_put(v, path, with_perms(r, p, n))) < 0)
		return e;
	view_fire(v, path, false);
	return 0;
}

/* ---- applying ----------------------------------------------------------- */

int xs_tree_apply(struct xs_server *s, struct changes *c)
{
	struct change *ch;

	/* Everything that can fail first. */
	list_for_each(ch, tmp, &c->order, struct change, order)
	{
		if (!ch->written)
			continue;
		if (ch->rec->deleted && !xs_store_get(&s->store, ch->path, STORE_HEAD)) {
			/* Made and removed in one transaction: nothing changes. */
			xs_rec_free(ch->rec);
			ch->rec = NULL;
			ch->written = false;
			continue;
		}
		if (xs_store_reserve(&s->store, ch->path) < 0)
			return -ENOMEM;
		if (!ch->rec->deleted && !xs_domain_get(s, ch->rec->perms[0].id))
			return -ENOMEM;
	}

	list_for_each(ch, tmp2, &c->order, struct change, order)
	{
		if (!ch->written)
			continue;
		const struct rec *old = xs_store_get(&s->store, ch->path, STORE_HEAD);
		struct domain *d;
		if (old && (d = xs_domain_find(s, old->perms[0].id)) && d->nodes)
			d->nodes--;
		if (!ch->rec->deleted)
			xs_domain_find(s, ch->rec->perms[0].id)->nodes++;
		xs_store_publish(&s->store, ch->path, ch->rec);
		ch->rec = NULL;
		ch->written = false;
	}

	list_for_each(ch, tmp3, &c->order, struct change, order)
	{
		if (ch->fire)
			xs_watch_fire(s, ch->path, ch->exact, ch->old_perms, ch->old_nperms, NULL);
	}
	return 0;
}
