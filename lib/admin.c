/* The broker's live tables, for grantctl; and domain claims. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct list_ctx {
	size_t row_size;
	char *rows;
	size_t n;
	int err;
};

static int on_rows(void *ctx, const struct gr_hdr *h, const void *p, size_t len, int *fds,
		   unsigned nfds)
{
	struct list_ctx *lc = ctx;
	struct gr_list_reply lr;
	(void)fds;
	(void)nfds;
	if (h->result < 0 && !(h->flags & GR_HDR_MORE))
		return 0;
	if (len < sizeof(lr))
		return -EIO;
	memcpy(&lr, p, sizeof(lr));
	if (len != sizeof(lr) + lr.n * lc->row_size)
		return -EIO;
	char *rows = realloc(lc->rows, (lc->n + lr.n + 1) * lc->row_size);
	if (!rows)
		return -ENOMEM;
	lc->rows = rows;
	memcpy(rows + lc->n * lc->row_size, (const char *)p + sizeof(lr), lr.n * lc->row_size);
	lc->n += lr.n;
	return 0;
}

/* Fetches one listing as raw rows. */
static ssize_t list_raw(uint16_t op, size_t row_size, char **out)
{
	int fd, r = gr_connect(&fd);
	if (r < 0)
		return r;
	char *buf = malloc(GR_MSG_MAX);
	struct chan ch = { .fd = fd };
	struct list_ctx lc = { .row_size = row_size };
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	struct gr_hello hello = { .version = GR_PROTO_VERSION, .kind = GR_KIND_ADMIN };
	r = chan_call_fd(&ch, buf, GR_OP_HELLO, &hello, sizeof(hello), NULL, 0, NULL, NULL);
	if (r >= 0)
		r = chan_call_fd(&ch, buf, op, NULL, 0, NULL, 0, on_rows, &lc);
	free(buf);
	close(fd);
	if (r < 0) {
		free(lc.rows);
		return r;
	}
	*out = lc.rows;
	return (ssize_t)lc.n;
}

GR_EXPORT ssize_t granted_list_domains(struct granted_domain_info **out)
{
	char *raw;
	ssize_t n = list_raw(GR_OP_LIST_DOMAINS, sizeof(struct gr_domain_row), &raw);
	if (n < 0)
		return n;
	struct granted_domain_info *v = calloc((size_t)n + 1, sizeof(*v));
	for (ssize_t i = 0; v && i < n; i++) {
		struct gr_domain_row row;
		memcpy(&row, raw + i * sizeof(row), sizeof(row));
		v[i] = (struct granted_domain_info){
			.domid = row.domid,
			.dying = row.dying,
			.declared = row.declared,
			.connections = row.connections,
			.grants = row.grants,
			.grant_limit = row.grant_limit,
			.mappings = row.mappings,
			.mapping_limit = row.mapping_limit,
			.alloc_pages = row.alloc_pages,
			.alloc_limit = row.alloc_limit,
			.ports = row.ports,
			.port_limit = row.port_limit,
			.connection_limit = row.file_limit,
			.mmaps = row.mmaps,
			.mmap_limit = row.mmap_limit,
			.map_refs = row.map_refs,
			.map_ref_limit = row.map_ref_limit,
		};
	}
	free(raw);
	if (!v)
		return -ENOMEM;
	*out = v;
	return n;
}

GR_EXPORT ssize_t granted_list_grants(struct granted_grant_info **out)
{
	char *raw;
	ssize_t n = list_raw(GR_OP_LIST_GRANTS, sizeof(struct gr_grant_row), &raw);
	if (n < 0)
		return n;
	struct granted_grant_info *v = calloc((size_t)n + 1, sizeof(*v));
	for (ssize_t i = 0; v && i < n; i++) {
		struct gr_grant_row row;
		memcpy(&row, raw + i * sizeof(row), sizeof(row));
		v[i] = (struct granted_grant_info){
			.granter = row.granter,
			.grantee = row.grantee,
			.ref = row.ref,
			.readonly = row.readonly,
			.ending = row.state == GR_GRANT_ENDING,
			.mapcount = row.mapcount,
		};
	}
	free(raw);
	if (!v)
		return -ENOMEM;
	*out = v;
	return n;
}

GR_EXPORT ssize_t granted_list_mappings(struct granted_mapping_info **out)
{
	char *raw;
	ssize_t n = list_raw(GR_OP_LIST_MAPPINGS, sizeof(struct gr_mapping_row), &raw);
	if (n < 0)
		return n;
	struct granted_mapping_info *v = calloc((size_t)n + 1, sizeof(*v));
	for (ssize_t i = 0; v && i < n; i++) {
		struct gr_mapping_row row;
		memcpy(&row, raw + i * sizeof(row), sizeof(row));
		v[i] = (struct granted_mapping_info){
			.granter = row.granter,
			.mapper = row.mapper,
			.ref = row.ref,
			.pid = row.pid,
			.writable = row.writable,
		};
	}
	free(raw);
	if (!v)
		return -ENOMEM;
	*out = v;
	return n;
}

GR_EXPORT ssize_t granted_list_ports(struct granted_port_info **out)
{
	char *raw;
	ssize_t n = list_raw(GR_OP_LIST_PORTS, sizeof(struct gr_port_row), &raw);
	if (n < 0)
		return n;
	struct granted_port_info *v = calloc((size_t)n + 1, sizeof(*v));
	for (ssize_t i = 0; v && i < n; i++) {
		struct gr_port_row row;
		memcpy(&row, raw + i * sizeof(row), sizeof(row));
		v[i] = (struct granted_port_info){
			.domid = row.domid,
			.port = row.port,
			.state = row.state,
			.remote_domid = row.remote_domid,
			.remote_port = row.remote_port,
			.pending = row.pending,
			.masked = row.masked,
			.bound = row.bound,
		};
	}
	free(raw);
	if (!v)
		return -ENOMEM;
	*out = v;
	return n;
}

GR_EXPORT int granted_claim_domain(uint16_t domid)
{
	int fd, r = gr_connect(&fd);
	if (r < 0)
		return r;
	char *buf = malloc(GR_MSG_MAX);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	struct chan ch = { .fd = fd };
	struct gr_hello hello = { .version = GR_PROTO_VERSION,
				  .kind = GR_KIND_CLAIM,
				  .domid = domid };
	r = chan_call_fd(&ch, buf, GR_OP_HELLO, &hello, sizeof(hello), NULL, 0, NULL, NULL);
	free(buf);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}
