/* A doubly linked intrusive list, as in libwayland's wl_list. */
#ifndef GRANTED_LIST_H
#define GRANTED_LIST_H

#include <stddef.h>

struct list {
	struct list *prev, *next;
};

static inline void list_init(struct list *l)
{
	l->prev = l->next = l;
}

static inline int list_empty(const struct list *l)
{
	return l->next == l;
}

/* Inserts elm after pos. */
static inline void list_insert(struct list *pos, struct list *elm)
{
	elm->prev = pos;
	elm->next = pos->next;
	pos->next->prev = elm;
	pos->next = elm;
}

static inline void list_append(struct list *head, struct list *elm)
{
	list_insert(head->prev, elm);
}

/* Removes elm and leaves it initialised, so that removing twice is harmless. */
static inline void list_remove(struct list *elm)
{
	elm->prev->next = elm->next;
	elm->next->prev = elm->prev;
	list_init(elm);
}

#define list_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Safe against removal of the current element. */
#define list_for_each(pos, tmp, head, type, member)                                                \
	for (struct list *pos##_l = (head)->next, *tmp = pos##_l->next;                            \
	     pos##_l != (head) && ((pos = list_entry(pos##_l, type, member)), 1);                  \
	     pos##_l = tmp, tmp = pos##_l->next)

#endif
