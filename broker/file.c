/*
 * Open device files. A file lives while its device connection is open
 * anywhere (every dup and fork of the client's fd is the same socket) or any
 * mapping made through it exists: the kernel's rule that release comes after
 * the last fd and the last VMA.
 */
#include <errno.h>
#include <stdlib.h>

#include "evtchn.h"
#include "internal.h"

int file_create(struct broker *b, enum gr_kind kind, struct domain *dom, struct file **out)
{
	struct file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->b = b;
	f->id = ++b->next_file_id;
	f->kind = kind;
	f->dom = dom;
	f->refs = 1;
	list_init(&f->attached);
	list_init(&f->mappings);
	list_append(&b->files, &f->link);
	b->nfiles++;
	*out = f;
	return 0;
}

static void file_release(struct file *f)
{
	struct broker *b = f->b;
	log_debug("file %llu (domain %u) released", (unsigned long long)f->id, f->dom->id);
	/* Attach connections only route requests; without the file they are
	 * useless, and their process will see the broker hang up. */
	struct conn *c;
	list_for_each(c, tmp, &f->attached, struct conn, file_link) conn_kill(c, "file released");
	switch (f->kind) {
	case GR_KIND_GNTALLOC:
		gntalloc_release(f);
		break;
	case GR_KIND_GNTDEV:
		gntdev_release(f);
		break;
	case GR_KIND_EVTCHN:
		evtchn_release(f);
		break;
	default:
		break;
	}
	list_remove(&f->link);
	b->nfiles--;
	struct domain *d = f->dom;
	free(f->pages);
	free(f->maps);
	free(f);
	domain_unclaim(d);
}

void file_put(struct file *f)
{
	if (--f->refs == 0)
		file_release(f);
}
