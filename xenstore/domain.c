/*
 * Domains: their counters (the quotas), introduction and release.
 *
 * A domain is introduced when the host says its first process appeared
 * (xs_domain_introduce) or when dom0 sends XS_INTRODUCE, and released when
 * its last process is gone (xs_domain_release) or on XS_RELEASE. Release
 * does what xenstored does when a domain dies: its connections go, nodes it
 * owns are removed (orphans), and @releaseDomain fires. Unlike xenstored,
 * permission entries naming it stay in force: a granted domain id is a
 * name the host's policy gives to a user, not a number the hypervisor hands
 * out again, so domain N's next process is the same principal (a vchan
 * client that restarts must still read the ring-ref the server granted it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

#define NBUCKETS (sizeof(((struct xs_server *)0)->domains) / sizeof(struct domain *))

static const struct actor system_actor = { .domid = 0, .priv = true };

struct domain *xs_domain_find(const struct xs_server *s, unsigned domid)
{
	for (struct domain *d = s->domains[domid % NBUCKETS]; d; d = d->next)
		if (d->domid == domid)
			return d;
	return NULL;
}

struct domain *xs_domain_get(struct xs_server *s, unsigned domid)
{
	struct domain *d = xs_domain_find(s, domid);
	if (d)
		return d;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->domid = domid;
	d->next = s->domains[domid % NBUCKETS];
	s->domains[domid % NBUCKETS] = d;
	return d;
}

void xs_domain_free_all(struct xs_server *s)
{
	for (size_t i = 0; i < NBUCKETS; i++) {
		while (s->domains[i]) {
			struct domain *d = s->domains[i];
			s->domains[i] = d->next;
			free(d);
		}
	}
}

static void fire_special(struct xs_server *s, const char *name)
{
	const struct rec *r = xs_store_get(&s->store, name, STORE_HEAD);
	if (r)
		xs_watch_fire(s, name, true, NULL, 0, r);
}

static void set_introduced(struct xs_server *s, struct domain *d, bool on)
{
	if (d->introduced == on)
		return;
	d->introduced = on;
	if (on)
		s->nintroduced++;
	else
		s->nintroduced--;
	fire_special(s, on ? "@introduceDomain" : "@releaseDomain");
}

/* ---- what a toolstack writes -------------------------------------------- */

static int ensure(struct view *v, const char *path, const char *value, const struct xs_perm *p,
		  uint32_t n)
{
	const struct rec *r;
	int e = xs_tree_get(v, path, XS_PERM_READ, &r);
	if (e != -ENOENT)
		return e;
	e = xs_tree_write(v, path, value, (uint32_t)strlen(value));
	return e < 0 ? e : xs_tree_set_perms(v, path, p, n);
}

static int make_home(struct xs_server *s, unsigned domid)
{
	static const char *const owned[] = {
		"data", "device", "drivers", "feature", "attr", "error"
	};
	const struct xs_perm ro[2] = { { 0, XS_PERM_NONE }, { domid, XS_PERM_READ } };
	const struct xs_perm rw[1] = { { domid, XS_PERM_NONE } };
	char home[64], path[96], value[16];
	struct view v;
	int e = xs_view_begin(&v, s, NULL, &system_actor);
	if (e < 0)
		return e;
	snprintf(home, sizeof(home), "/local/domain/%u", domid);
	snprintf(value, sizeof(value), "%u", domid);
	e = ensure(&v, home, "", ro, 2);
	snprintf(path, sizeof(path), "%s/domid", home);
	if (e == 0)
		e = ensure(&v, path, value, ro, 2);
	snprintf(path, sizeof(path), "%s/control", home);
	if (e == 0)
		e = ensure(&v, path, "", ro, 2);
	for (size_t i = 0; e == 0 && i < sizeof(owned) / sizeof(owned[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", home, owned[i]);
		e = ensure(&v, path, "", rw, 1);
	}
	int e2 = xs_view_end(&v, e == 0);
	return e < 0 ? e : e2;
}

/* ---- what a domain's death does ----------------------------------------- */

struct collect {
	unsigned domid;
	char **paths;
	size_t n, cap;
	bool failed;
};

static void collect_add(struct collect *c, const char *path)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		char **p = realloc(c->paths, cap * sizeof(*p));
		if (!p) {
			c->failed = true;
			return;
		}
		c->paths = p;
		c->cap = cap;
	}
	if (!(c->paths[c->n] = strdup(path)))
		c->failed = true;
	else
		c->n++;
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->paths[i]);
	free(c->paths);
}

/* Nodes with a live entry for the domain (not the owner's). */
static void find_entries(void *arg, const char *path, const struct rec *r)
{
	struct collect *c = arg;
	for (uint32_t i = 1; i < r->nperms; i++)
		if (r->perms[i].id == c->domid && !(r->perms[i].perms & XS_PERM_IGNORE)) {
			collect_add(c, path);
			return;
		}
}

/* The topmost nodes the domain owns, walking from / (its subtree goes with
 * each). @-nodes are left alone. */
static void find_orphans(struct xs_server *s, char *buf, struct collect *c)
{
	const struct rec *r = xs_store_get(&s->store, buf, STORE_HEAD);
	if (!r)
		return;
	if (r->perms[0].id == c->domid && strcmp(buf, "/") != 0) {
		collect_add(c, buf);
		return;
	}
	size_t len = strlen(buf);
	for (uint32_t off = 0; off < r->childlen;) {
		const char *name = r->children + off;
		size_t n = strlen(name);
		off += (uint32_t)n + 1;
		if (len + 1 + n >= XS_PATH_BUF)
			continue;
		size_t at = len == 1 ? 0 : len;
		buf[at] = '/';
		memcpy(buf + at + 1, name, n + 1);
		find_orphans(s, buf, c);
		buf[len == 1 ? 1 : len] = '\0';
	}
}

/*
 * What goes with a domain. retire_perms: entries naming it become inert, as
 * xenstored does on XS_RELEASE (the toolstack destroyed the domain; its id
 * may be another's later). The host's release (its last process went) keeps
 * them: the next process of domain N is the same principal.
 */
static void domain_gone(struct xs_server *s, unsigned domid, bool retire_perms)
{
	struct collect c = { .domid = domid };
	struct view v;

	/* Entries naming it become inert: no watch event for that. */
	if (retire_perms)
		xs_store_foreach(&s->store, find_entries, &c);
	if (c.n && xs_view_begin(&v, s, NULL, &system_actor) == 0) {
		int e = 0;
		for (size_t i = 0; e == 0 && i < c.n; i++) {
			const struct rec *r = xs_store_get(&s->store, c.paths[i], STORE_HEAD);
			struct rec *copy = xs_rec_new(r->perms, r->nperms, r->data, r->datalen,
						      r->children, r->childlen);
			if (!copy) {
				e = -ENOMEM;
				break;
			}
			for (uint32_t k = 1; k < copy->nperms; k++)
				if (copy->perms[k].id == domid)
					copy->perms[k].perms |= XS_PERM_IGNORE;
			struct change *ch = xs_changes_add(&v.batch, c.paths[i], r);
			if (!ch) {
				xs_rec_free(copy);
				e = -ENOMEM;
				break;
			}
			xs_change_set(ch, copy);
		}
		if (xs_view_end(&v, e == 0) < 0 || e < 0)
			log_warn("xenstore: cannot retire permissions of domain %u", domid);
	}
	collect_free(&c);

	/* Orphans go, with their watch events. */
	const struct domain *d = xs_domain_find(s, domid);
	if (!d || !d->nodes)
		return;
	c = (struct collect){ .domid = domid };
	char buf[XS_PATH_BUF] = "/";
	find_orphans(s, buf, &c);
	if (c.failed)
		log_warn("xenstore: out of memory looking for orphans of domain %u", domid);
	if (xs_view_begin(&v, s, NULL, &system_actor) == 0) {
		int e = 0;
		for (size_t i = 0; e == 0 && i < c.n; i++)
			e = xs_tree_remove(&v, c.paths[i]);
		if (xs_view_end(&v, e == 0) < 0 || e < 0)
			log_warn("xenstore: cannot remove the nodes of domain %u", domid);
	}
	collect_free(&c);
}

static void kill_conns(struct xs_server *s, unsigned domid)
{
	struct conn *c;
	list_for_each(c, tmp, &s->conns, struct conn, link)
	{
		if (c->domid == domid)
			xs_conn_kill(c, "its domain was released");
	}
}

/* ---- entry points ------------------------------------------------------- */

int xs_domain_introduce(struct xs_server *s, unsigned domid)
{
	if (domid >= XS_DOMID_FIRST_RESERVED)
		return -EINVAL;
	if (domid == 0)
		return 0;
	xs_server_enter(s);
	struct domain *d = xs_domain_get(s, domid);
	int e = d ? make_home(s, domid) : -ENOMEM;
	if (e == 0)
		set_introduced(s, d, true);
	xs_server_leave(s);
	return e;
}

void xs_domain_release(struct xs_server *s, unsigned domid)
{
	if (domid == 0 || domid >= XS_DOMID_FIRST_RESERVED)
		return;
	xs_server_enter(s);
	kill_conns(s, domid);
	struct view v;
	char home[64];
	snprintf(home, sizeof(home), "/local/domain/%u", domid);
	if (xs_view_begin(&v, s, NULL, &system_actor) == 0) {
		int e = xs_tree_rm(&v, home);
		if (xs_view_end(&v, e == 0) < 0 || (e < 0 && e != -ENOENT))
			log_warn("xenstore: cannot remove %s", home);
	}
	domain_gone(s, domid, false);
	struct domain *d = xs_domain_find(s, domid);
	if (d)
		set_introduced(s, d, false);
	xs_server_leave(s);
}

int xs_domain_wire_introduce(struct xs_server *s, unsigned domid)
{
	if (domid >= XS_DOMID_FIRST_RESERVED)
		return -EINVAL;
	struct domain *d = xs_domain_get(s, domid);
	if (!d)
		return -ENOMEM;
	if (domid != 0)
		set_introduced(s, d, true);
	return 0;
}

int xs_domain_wire_release(struct xs_server *s, unsigned domid)
{
	if (domid == 0)
		return -EINVAL;
	struct domain *d = xs_domain_find(s, domid);
	if (!d || !d->introduced)
		return -ENOENT;
	kill_conns(s, domid);
	domain_gone(s, domid, true);
	set_introduced(s, d, false);
	return 0;
}

int xs_domain_wire_set_target(struct xs_server *s, unsigned domid, unsigned target)
{
	struct domain *d = xs_domain_find(s, domid), *t = xs_domain_find(s, target);
	if (!d || !d->introduced || !t || !t->introduced)
		return -ENOENT;
	d->has_target = true;
	d->target = target;
	return 0;
}

void xs_domain_usage(const struct xs_server *s, unsigned domid, struct xs_domain_usage *out)
{
	const struct domain *d = xs_domain_find(s, domid);
	*out = (struct xs_domain_usage){ 0 };
	if (d)
		*out = (struct xs_domain_usage){ .nodes = d->nodes,
						 .watches = d->watches,
						 .transactions = d->txs,
						 .connections = d->conns,
						 .introduced = d->introduced };
}
