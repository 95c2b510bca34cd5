/*
 * Transactions. A transaction reads the store as of its start (a snapshot:
 * it never sees later changes made outside it) and keeps its own changes in
 * an overlay, together with every path it read. Committing fails with
 * EAGAIN if any of those paths has a version newer than the snapshot, that
 * is, if anything the transaction read or wrote (a node's value, its
 * permissions, its list of children, or its absence) changed since it
 * started; otherwise the overlay is applied whole, which is then the same as
 * running the transaction at commit time. This is xenstored's generation
 * check, against the start rather than the first access, and it is stricter
 * than oxenstored's replay: a conflict is never missed.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "log.h"

struct tx *xs_tx_find(struct conn *c, uint32_t id)
{
	struct tx *t;
	list_for_each(t, tmp, &c->txs, struct tx, link)
	{
		if (t->id == id)
			return t;
	}
	return NULL;
}

int xs_tx_start(struct conn *c, uint32_t *id)
{
	struct xs_server *s = c->s;
	struct actor who = xs_conn_actor(c);
	struct domain *d = xs_domain_get(s, c->domid);
	if (!d)
		return -ENOMEM;
	if (!who.priv && d->txs >= s->cfg.max_transactions_per_domain)
		return -ENOSPC;
	struct tx *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	if (xs_changes_init(&t->overlay) < 0) {
		free(t);
		return -ENOMEM;
	}
	t->conn = c;
	do
		t->id = c->next_txid++;
	while (t->id == 0 || xs_tx_find(c, t->id));
	xs_store_snap_begin(&s->store, &t->snap);
	list_append(&c->txs, &t->link);
	d->txs++;
	s->ntxs++;
	*id = t->id;
	return 0;
}

void xs_tx_free(struct tx *t)
{
	struct xs_server *s = t->conn->s;
	struct domain *d = xs_domain_find(s, t->conn->domid);
	list_remove(&t->link);
	xs_changes_fini(&t->overlay);
	xs_store_snap_end(&s->store, &t->snap);
	if (d && d->txs)
		d->txs--;
	s->ntxs--;
	free(t);
}

int xs_tx_access(struct tx *t, const char *path, const struct actor *who)
{
	struct xs_server *s = t->conn->s;
	if (xs_changes_find(&t->overlay, path))
		return 0;
	if (!who->priv && t->overlay.n >= s->cfg.max_nodes_per_transaction)
		return -ENOSPC;
	const struct rec *base = xs_store_get(&s->store, path, t->snap.seq);
	return xs_changes_add(&t->overlay, path, base) ? 0 : -ENOMEM;
}

int xs_tx_merge(struct tx *t, struct changes *batch, const struct actor *who)
{
	struct xs_server *s = t->conn->s;
	struct change *ch;

	/* Every path needs its overlay entry first, so that moving cannot fail. */
	list_for_each(ch, tmp, &batch->order, struct change, order)
	{
		if (ch->written && !xs_changes_find(&t->overlay, ch->path) &&
		    !xs_changes_add(&t->overlay, ch->path,
				    xs_store_get(&s->store, ch->path, t->snap.seq)))
			return -ENOMEM;
	}

	list_for_each(ch, tmp2, &batch->order, struct change, order)
	{
		if (!ch->written)
			continue;
		struct change *o = xs_changes_find(&t->overlay, ch->path);
		const struct rec *before = o->written
						   ? (o->rec->deleted ? NULL : o->rec)
						   : xs_store_get(&s->store, o->path, t->snap.seq);
		struct rec *now = ch->rec->deleted ? NULL : ch->rec;
		if (before && before->perms[0].id == who->domid)
			t->own_delta--;
		if (now && now->perms[0].id == who->domid)
			t->own_delta++;
		if (!before && now)
			t->created = true;
		/* A generation for XS_DIRECTORY_PART, stable while unchanged. */
		ch->rec->seq = ++s->store.seq;
		xs_change_set(o, ch->rec);
		ch->rec = NULL;
		ch->written = false;
		if (ch->fire) {
			if (!o->fire)
				o->exact = ch->exact;
			else if (!ch->exact)
				o->exact = false;
			o->fire = true;
		}
	}
	return 0;
}

int xs_tx_end(struct tx *t, bool commit)
{
	struct xs_server *s = t->conn->s;
	struct actor who = xs_conn_actor(t->conn);
	int r = 0;

	if (commit) {
		const struct domain *d = xs_domain_find(s, who.domid);
		long nodes = (long)(d ? d->nodes : 0) + t->own_delta;
		if (t->created && !who.priv && nodes > (long)s->cfg.max_nodes_per_domain)
			r = -ENOSPC;
		struct change *ch;
		list_for_each(ch, tmp, &t->overlay.order, struct change, order)
		{
			if (r == 0 && xs_store_head_seq(&s->store, ch->path) > t->snap.seq) {
				log_debug("xenstore: transaction %u conflicts on %s", t->id,
					  ch->path);
				r = -EAGAIN;
			}
		}
		if (r == 0)
			r = xs_tree_apply(s, &t->overlay);
	}
	xs_tx_free(t);
	return r;
}
