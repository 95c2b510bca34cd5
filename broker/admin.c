/*
 * What grantctl shows: the live tables, read-only. Each listing is a stream
 * of fixed-size rows (common/protocol.h).
 */
#include <errno.h>

#include "evtchn.h"
#include "internal.h"

static int list_domains(struct conn *c, const struct gr_hdr *h)
{
	struct broker *b = c->b;
	const struct broker_config *cfg = &b->cfg;
	struct row_stream rs;
	if (rows_begin(&rs, c, h, sizeof(struct gr_domain_row)) < 0)
		return -ENOMEM;
	for (uint32_t id = 0; id < DOMID_FIRST_RESERVED; id++) {
		struct domain *d = b->domains[id];
		if (!d)
			continue;
		struct gr_domain_row *row = rows_next(&rs);
		*row = (struct gr_domain_row){
			.domid = d->id,
			.dying = domain_dying(d),
			.declared = d->declared,
			.connections = d->claims,
			.grants = d->grants_used,
			.grant_limit = cfg->max_grant_entries - GNTTAB_NR_RESERVED_ENTRIES,
			.mappings = d->maptrack,
			.mapping_limit = cfg->max_maptrack,
			.alloc_pages = d->alloc_pages,
			.alloc_limit = cfg->gntalloc_limit,
			.ports = d->ports_used,
			.port_limit = cfg->max_ports,
			.file_limit = cfg->max_files,
			.mmaps = d->mappings,
			.mmap_limit = cfg->max_mappings,
			.map_refs = d->map_refs,
			.map_ref_limit = cfg->max_map_refs,
		};
	}
	return rows_end(&rs);
}

static int list_grants(struct conn *c, const struct gr_hdr *h)
{
	struct broker *b = c->b;
	struct row_stream rs;
	if (rows_begin(&rs, c, h, sizeof(struct gr_grant_row)) < 0)
		return -ENOMEM;
	for (uint32_t id = 0; id < DOMID_FIRST_RESERVED; id++) {
		struct domain *d = b->domains[id];
		for (uint32_t ref = 0; d && ref < d->gt_size && ref < d->gt_next; ref++) {
			struct grant_entry *e = &d->gt[ref];
			if (e->state == GRANT_FREE)
				continue;
			struct gr_grant_row *row = rows_next(&rs);
			*row = (struct gr_grant_row){
				.granter = d->id,
				.grantee = e->grantee,
				.ref = ref,
				.readonly = e->readonly,
				.state = e->state,
				.mapcount = e->mapcount,
			};
		}
	}
	return rows_end(&rs);
}

static void rows_add_map(struct row_stream *rs, struct file *f, struct gntdev_map *map, pid_t pid)
{
	for (uint32_t i = 0; map->mapped && i < map->count; i++) {
		struct mapped_grant *mg = &map->mapped[i];
		if (!mg->dom)
			continue;
		struct gr_mapping_row *row = rows_next(rs);
		*row = (struct gr_mapping_row){
			.granter = mg->dom->id,
			.mapper = f->dom->id,
			.ref = mg->ref,
			.pid = pid,
			.writable = !map->readonly,
		};
	}
}

/* Who maps each grant: every gntdev map whose grants are mapped, with the
 * process that mmapped it while that mapping exists (a map munmapped but
 * not yet UNMAP'd still holds its grants: pid 0). */
static int list_mappings(struct conn *c, const struct gr_hdr *h)
{
	struct row_stream rs;
	if (rows_begin(&rs, c, h, sizeof(struct gr_mapping_row)) < 0)
		return -ENOMEM;
	struct file *f;
	list_for_each(f, ftmp, &c->b->files, struct file, link)
	{
		if (f->kind != GR_KIND_GNTDEV)
			continue;
		/* Listed maps, and maps already UNMAP'd that a mapping keeps. */
		struct mapping *m;
		list_for_each(m, mtmp, &f->mappings, struct mapping, link)
		{
			if (!m->map->listed)
				rows_add_map(&rs, f, m->map, m->pid);
		}
		for (uint32_t i = 0; i < f->nmaps; i++) {
			struct gntdev_map *map = f->maps[i];
			pid_t pid = 0;
			list_for_each(m, mtmp2, &f->mappings, struct mapping, link)
			{
				if (m->map == map)
					pid = m->pid;
			}
			rows_add_map(&rs, f, map, pid);
		}
	}
	return rows_end(&rs);
}

int admin_handle(struct conn *c, const struct gr_hdr *h, const void *p, size_t len)
{
	(void)p;
	if (len != 0)
		return -EPROTO;
	switch (h->op) {
	case GR_OP_LIST_DOMAINS:
		return list_domains(c, h);
	case GR_OP_LIST_GRANTS:
		return list_grants(c, h);
	case GR_OP_LIST_MAPPINGS:
		return list_mappings(c, h);
	case GR_OP_LIST_PORTS:
		return evtchn_list(c, h);
	default:
		return -EPROTO;
	}
}
