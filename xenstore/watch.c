/*
 * Watches. A watch on P fires for changes of P and of nodes below it, and
 * once right after it is registered. Its events carry the changed path as
 * the watch was given: relative to the connection's home if it was
 * registered relative. A watcher only hears of a node it may read, or whose
 * parent it may read, now or (for a removal or a permission change) before.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

int xs_watch_add(struct conn *c, const char *path, const char *token, bool relative)
{
	struct xs_server *s = c->s;
	struct watch *w;
	list_for_each(w, tmp, &c->watches, struct watch, link)
	{
		if (strcmp(w->path, path) == 0 && strcmp(w->token, token) == 0)
			return -EEXIST;
	}
	struct actor who = xs_conn_actor(c);
	struct domain *d = xs_domain_get(s, c->domid);
	if (!d)
		return -ENOMEM;
	if (!who.priv && d->watches >= s->cfg.max_watches_per_domain)
		return -E2BIG;
	size_t plen = strlen(path), tlen = strlen(token);
	w = malloc(sizeof(*w) + plen + 1 + tlen + 1);
	if (!w)
		return -ENOMEM;
	memcpy(w->path, path, plen + 1);
	w->token = w->path + plen + 1;
	memcpy(w->token, token, tlen + 1);
	char home[64];
	w->prefix_len = relative ? strlen(xs_conn_home(c, home, sizeof(home))) + 1 : 0;
	list_append(&c->watches, &w->link);
	d->watches++;
	s->nwatches++;
	return 0;
}

static void watch_free(struct conn *c, struct watch *w)
{
	struct domain *d = xs_domain_find(c->s, c->domid);
	list_remove(&w->link);
	if (d && d->watches)
		d->watches--;
	c->s->nwatches--;
	free(w);
}

int xs_watch_remove(struct conn *c, const char *path, const char *token)
{
	struct watch *w;
	list_for_each(w, tmp, &c->watches, struct watch, link)
	{
		if (strcmp(w->path, path) == 0 && strcmp(w->token, token) == 0) {
			watch_free(c, w);
			return 0;
		}
	}
	return -ENOENT;
}

void xs_watch_remove_all(struct conn *c)
{
	struct watch *w;
	list_for_each(w, tmp, &c->watches, struct watch, link)
	{
		watch_free(c, w);
	}
}

struct fire {
	struct xs_server *s;
	const char *path;
	const struct xs_perm *old;
	uint32_t nold;
	const struct rec *now;
	bool now_read;
	const struct rec *parent;
	bool parent_read;
};

static bool readable(const struct actor *a, const struct rec *r)
{
	return r && (xs_perm_for(a, r->perms, r->nperms) & XS_PERM_READ);
}

/* xenstored's watch_permitted(). */
static bool permitted(struct fire *f, struct conn *c)
{
	struct actor a = xs_conn_actor(c);
	if (f->old && (xs_perm_for(&a, f->old, f->nold) & XS_PERM_READ))
		return true;
	if (!f->now_read) {
		f->now = xs_store_get(&f->s->store, f->path, STORE_HEAD);
		f->now_read = true;
	}
	if (!f->now)
		return false;
	if (readable(&a, f->now))
		return true;
	if (!f->parent_read) {
		char up[XS_PATH_BUF];
		xs_path_parent(f->path, up);
		f->parent = xs_store_get(&f->s->store, up, STORE_HEAD);
		f->parent_read = true;
	}
	return readable(&a, f->parent);
}

void xs_watch_fire(struct xs_server *s, const char *path, bool exact, const struct xs_perm *old,
		   uint32_t nold, const struct rec *now)
{
	struct fire f = {
		.s = s, .path = path, .old = old, .nold = nold, .now = now, .now_read = now != NULL
	};
	struct conn *c;
	list_for_each(c, tmp, &s->conns, struct conn, link)
	{
		int allowed = -1;
		struct watch *w;
		list_for_each(w, tmp2, &c->watches, struct watch, link)
		{
			bool match = exact ? strcmp(path, w->path) == 0
					   : xs_path_is_child(path, w->path);
			if (!match)
				continue;
			if (allowed < 0)
				allowed = permitted(&f, c);
			if (!allowed)
				break;
			xs_conn_event(c, path + w->prefix_len, w->token);
			if (c->dead)
				break;
		}
	}
}
