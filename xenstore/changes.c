/*
 * A set of paths an operation or a transaction touched, in first-touch
 * order, each with the version it wants to publish and what is needed to
 * fire its watch event afterwards (the permissions the node had before).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int xs_changes_init(struct changes *c)
{
	list_init(&c->order);
	c->n = 0;
	return xs_hmap_init(&c->map) < 0 ? -1 : 0;
}

void xs_changes_fini(struct changes *c)
{
	struct change *ch;
	list_for_each(ch, tmp, &c->order, struct change, order)
	{
		xs_rec_free(ch->rec);
		free(ch);
	}
	list_init(&c->order);
	c->n = 0;
	xs_hmap_fini(&c->map);
}

struct change *xs_changes_find(const struct changes *c, const char *path)
{
	return (struct change *)xs_hmap_find(&c->map, path, xs_hmap_hash(path));
}

struct change *xs_changes_add(struct changes *c, const char *path, const struct rec *base)
{
	size_t len = strlen(path);
	uint32_t np = base ? base->nperms : 0;
	/* One allocation: the change, its path, then its old perms, aligned. */
	size_t align = _Alignof(struct xs_perm);
	size_t off = (sizeof(struct change) + len + 1 + align - 1) / align * align;
	struct change *ch = malloc(off + np * sizeof(struct xs_perm));
	if (!ch)
		return NULL;
	*ch = (struct change){ .existed = base != NULL, .old_nperms = np };
	memcpy(ch->path, path, len + 1);
	ch->old_perms = np ? (struct xs_perm *)((char *)ch + off) : NULL;
	if (np)
		memcpy(ch->old_perms, base->perms, np * sizeof(struct xs_perm));
	ch->h = (struct hnode){ .hash = xs_hmap_hash(path), .key = ch->path };
	xs_hmap_insert(&c->map, &ch->h);
	list_append(&c->order, &ch->order);
	c->n++;
	return ch;
}

void xs_change_set(struct change *ch, struct rec *r)
{
	xs_rec_free(ch->rec);
	ch->rec = r;
	ch->written = true;
}
