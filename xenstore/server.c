/*
 * The server object: configuration, the initial store, the connections, and
 * the enter/leave bracket that defers flushing and freeing until the engine
 * is about to return to the host.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"

static void apply_defaults(struct xs_config *c)
{
	/* xenstored's (4.17) quotas. */
	if (!c->max_nodes_per_domain)
		c->max_nodes_per_domain = 1000;
	if (!c->max_value_size)
		c->max_value_size = 2048;
	if (!c->max_watches_per_domain)
		c->max_watches_per_domain = 128;
	if (!c->max_transactions_per_domain)
		c->max_transactions_per_domain = 10;
	if (!c->max_perms_per_node)
		c->max_perms_per_node = 5;
	if (!c->max_nodes_per_transaction)
		c->max_nodes_per_transaction = 1024;
	if (!c->max_path_length)
		c->max_path_length = XS_REL_PATH_MAX;
	if (!c->max_queued_bytes)
		c->max_queued_bytes = 1u << 20;
	if (!c->max_connections)
		c->max_connections = 1024;
}

/* The nodes xenstored and xen-init-dom0 make: "/", /tool/xenstored, the two
 * special nodes, /local/domain/0/domid; all dom0's with no access for others. */
static int initial_store(struct xs_server *s)
{
	static const char *const manual[] = { "/", "@introduceDomain", "@releaseDomain" };
	static const struct xs_perm n0 = { 0, XS_PERM_NONE };
	static const struct actor dom0 = { .domid = 0, .priv = true };
	struct changes c;
	if (xs_changes_init(&c) < 0)
		return -ENOMEM;
	int e = 0;
	for (size_t i = 0; e == 0 && i < sizeof(manual) / sizeof(manual[0]); i++) {
		struct change *ch = xs_changes_add(&c, manual[i], NULL);
		struct rec *r = xs_rec_new(&n0, 1, NULL, 0, NULL, 0);
		if (ch && r)
			xs_change_set(ch, r);
		else
			e = -ENOMEM;
		if (!ch)
			xs_rec_free(r);
	}
	if (e == 0)
		e = xs_tree_apply(s, &c);
	xs_changes_fini(&c);
	if (e < 0)
		return e;

	struct view v;
	if ((e = xs_view_begin(&v, s, NULL, &dom0)) < 0)
		return e;
	e = xs_tree_write(&v, "/tool/xenstored", "", 0);
	if (e == 0)
		e = xs_tree_write(&v, "/local/domain/0/domid", "0", 1);
	int e2 = xs_view_end(&v, e == 0);
	return e < 0 ? e : e2;
}

int xs_server_create(struct loop *loop, const struct xs_config *cfg, const struct xs_hooks *hooks,
		     void *ctx, struct xs_server **out)
{
	struct xs_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = loop;
	if (cfg)
		s->cfg = *cfg;
	apply_defaults(&s->cfg);
	if (hooks)
		s->hooks = *hooks;
	s->ctx = ctx;
	list_init(&s->conns);
	list_init(&s->zombies);
	list_init(&s->flushq);
	struct domain *d0;
	if (xs_store_init(&s->store) < 0 || !(d0 = xs_domain_get(s, 0)) || initial_store(s) < 0) {
		xs_server_destroy(s);
		return -ENOMEM;
	}
	d0->introduced = true;
	s->nintroduced = 1;
	*out = s;
	return 0;
}

static void reap(struct xs_server *s)
{
	struct conn *c;
	list_for_each(c, tmp, &s->zombies, struct conn, link)
	{
		xs_conn_destroy(c);
	}
}

void xs_server_destroy(struct xs_server *s)
{
	if (!s)
		return;
	struct conn *c;
	list_for_each(c, tmp, &s->conns, struct conn, link)
	{
		xs_conn_kill(c, "server destroyed");
	}
	reap(s);
	xs_store_fini(&s->store);
	xs_domain_free_all(s);
	free(s);
}

int xs_server_add_client(struct xs_server *s, int fd)
{
	xs_server_enter(s);
	int e = xs_conn_create(s, fd);
	xs_server_leave(s);
	return e;
}

void xs_server_enter(struct xs_server *s)
{
	s->depth++;
}

void xs_server_want_flush(struct xs_server *s, struct conn *c)
{
	if (!c->on_flushq && !c->dead) {
		list_append(&s->flushq, &c->flush_link);
		c->on_flushq = true;
	}
}

void xs_server_leave(struct xs_server *s)
{
	if (--s->depth > 0)
		return;
	/* Keep the bracket closed while flushing: flushing may handle input. */
	s->depth++;
	while (!list_empty(&s->flushq)) {
		struct conn *c = list_entry(s->flushq.next, struct conn, flush_link);
		list_remove(&c->flush_link);
		c->on_flushq = false;
		xs_conn_flush(c);
	}
	reap(s);
	s->depth--;
}

void xs_server_stats(const struct xs_server *s, struct xs_stats *out)
{
	*out = (struct xs_stats){ .connections = s->nconns,
				  .nodes = s->store.live,
				  .watches = s->nwatches,
				  .transactions = s->ntxs,
				  .introduced = s->nintroduced,
				  .generation = s->store.seq };
}
