/*
 * A string-keyed intrusive hash table with chaining. Inserting never fails:
 * if the bucket array cannot grow, the chains just get longer.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define HMAP_MIN 64

uint32_t xs_hmap_hash(const char *key)
{
	/* FNV-1a */
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

int xs_hmap_init(struct hmap *m)
{
	m->b = calloc(HMAP_MIN, sizeof(*m->b));
	m->nb = HMAP_MIN;
	m->n = 0;
	return m->b ? 0 : -1;
}

void xs_hmap_fini(struct hmap *m)
{
	free(m->b);
	m->b = NULL;
	m->nb = m->n = 0;
}

struct hnode *xs_hmap_find(const struct hmap *m, const char *key, uint32_t hash)
{
	for (struct hnode *n = m->b[hash & (m->nb - 1)]; n; n = n->next)
		if (n->hash == hash && strcmp(n->key, key) == 0)
			return n;
	return NULL;
}

static void grow(struct hmap *m)
{
	size_t nb = m->nb * 2;
	struct hnode **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < m->nb; i++) {
		struct hnode *n = m->b[i];
		while (n) {
			struct hnode *next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
			n = next;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

void xs_hmap_insert(struct hmap *m, struct hnode *n)
{
	if (m->n >= m->nb)
		grow(m);
	struct hnode **head = &m->b[n->hash & (m->nb - 1)];
	n->next = *head;
	*head = n;
	m->n++;
}

void xs_hmap_remove(struct hmap *m, struct hnode *n)
{
	for (struct hnode **p = &m->b[n->hash & (m->nb - 1)]; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			m->n--;
			return;
		}
	}
}
