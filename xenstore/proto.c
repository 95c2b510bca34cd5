/*
 * One request: validate the payload as xenstored does, run it, reply.
 * Handlers return 0 once they have replied, or a negative errno that goes
 * back as XS_ERROR with the errno's name (xenstored's table; an errno
 * outside it goes as EINVAL). Every reply echoes req_id and tx_id.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

#define F_NOTID 1u /* the transaction id is ignored */
#define F_PRIV	2u /* dom0 only: EACCES for others */

static const struct {
	int err;
	const char *name;
} errors[] = {
	{ EINVAL, "EINVAL" }, { EACCES, "EACCES" },   { EEXIST, "EEXIST" },
	{ EISDIR, "EISDIR" }, { ENOENT, "ENOENT" },   { ENOMEM, "ENOMEM" },
	{ ENOSPC, "ENOSPC" }, { EIO, "EIO" },	      { ENOTEMPTY, "ENOTEMPTY" },
	{ ENOSYS, "ENOSYS" }, { EROFS, "EROFS" },     { EBUSY, "EBUSY" },
	{ EAGAIN, "EAGAIN" }, { EISCONN, "EISCONN" }, { E2BIG, "E2BIG" },
	{ EPERM, "EPERM" },
};

static void send_error(struct conn *c, const struct xs_hdr *h, int err)
{
	const char *name = "EINVAL";
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].err == -err)
			name = errors[i].name;
	log_debug("xenstore: connection %u: %s -> %s", c->serial, xs_proto_type_name(h->type),
		  name);
	xs_conn_reply(c, XS_ERROR, h, name, strlen(name) + 1, NULL, 0);
}

static int reply(struct conn *c, const struct xs_hdr *h, const void *p, size_t len)
{
	if (len > XS_PAYLOAD_MAX)
		return -E2BIG;
	xs_conn_reply(c, h->type, h, p, len, NULL, 0);
	return 0;
}

static int reply_ok(struct conn *c, const struct xs_hdr *h)
{
	return reply(c, h, "OK", 3);
}

/* ---- payloads ----------------------------------------------------------- */

/* Complete (NUL-terminated) strings in the payload. */
static unsigned count_strings(const char *p, uint32_t len)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < len; i++)
		n += p[i] == '\0';
	return n;
}

/* Exactly one string, ending the payload; else NULL. */
static const char *onearg(const char *p, uint32_t len)
{
	return len && strlen(p) + 1 == len ? p : NULL;
}

/* The n-th string (counted from 0); the caller checked there are enough. */
static const char *nth(const char *p, unsigned n)
{
	while (n--)
		p += strlen(p) + 1;
	return p;
}

/* atoi() as xenstored uses it, without the undefined overflow. */
static unsigned num(const char *s)
{
	unsigned long v = strtoul(s, NULL, 10);
	return v > 0xffffffffUL ? 0xffffffffu : (unsigned)v;
}

static bool valid_chars(const char *s)
{
	static const char ok[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/_@";
	return strspn(s, ok) == strlen(s);
}

/* xenstored's canonicalize(): relative paths go below the connection's
 * home; special (@) paths only where allowed. */
static int canon(struct conn *c, const char *arg, bool special, char *out, bool *relative)
{
	if (!arg || !valid_chars(arg) || (arg[0] == '@' && !special))
		return -EINVAL;
	bool rel = arg[0] != '/' && arg[0] != '@';
	if (rel) {
		char home[64];
		snprintf(out, XS_PATH_BUF, "%s/%s", xs_conn_home(c, home, sizeof(home)), arg);
	} else {
		snprintf(out, XS_PATH_BUF, "%s", arg);
	}
	if (relative)
		*relative = rel;
	size_t n = strlen(out);
	if ((n > 1 && out[n - 1] == '/') || strstr(out, "//") || n == 0)
		return -EINVAL;
	unsigned domid;
	int off = 0;
	if (sscanf(out, "/local/domain/%5u/%n", &domid, &off) != 1)
		off = 0;
	if (c->domid != 0 && n - (size_t)off > c->s->cfg.max_path_length)
		return -EINVAL;
	return 0;
}

/* ---- node operations ---------------------------------------------------- */

enum op { OP_WRITE, OP_MKDIR, OP_RM, OP_PERMS };

/* Runs one changing operation in a view of its own and commits it. */
static int change(struct conn *c, struct tx *t, enum op op, const char *path, const void *data,
		  uint32_t len, const struct xs_perm *perms, uint32_t nperms)
{
	struct actor who = xs_conn_actor(c);
	struct view v;
	int e = xs_view_begin(&v, c->s, t, &who);
	if (e < 0)
		return e;
	switch (op) {
	case OP_WRITE:
		e = xs_tree_write(&v, path, data, len);
		break;
	case OP_MKDIR:
		e = xs_tree_mkdir(&v, path);
		break;
	case OP_RM:
		e = xs_tree_rm(&v, path);
		break;
	case OP_PERMS:
		e = xs_tree_set_perms(&v, path, perms, nperms);
		break;
	}
	int e2 = xs_view_end(&v, e == 0);
	return e < 0 ? e : e2;
}

/* Reads path (READ permission) in a view and hands the node to fn. */
static int inspect(struct conn *c, struct tx *t, const char *arg, bool special,
		   int (*fn)(struct conn *, const struct xs_hdr *, const struct rec *,
			     const char *),
		   const struct xs_hdr *h, const char *extra)
{
	char path[XS_PATH_BUF];
	int e = canon(c, arg, special, path, NULL);
	if (e < 0)
		return e;
	struct actor who = xs_conn_actor(c);
	struct view v;
	const struct rec *r;
	if ((e = xs_view_begin(&v, c->s, t, &who)) < 0)
		return e;
	e = xs_tree_get(&v, path, XS_PERM_READ, &r);
	if (e == 0)
		e = fn(c, h, r, extra);
	xs_view_end(&v, false);
	return e;
}

static int send_children(struct conn *c, const struct xs_hdr *h, const struct rec *r,
			 const char *extra)
{
	return reply(c, h, r->children, r->childlen);
}

static int send_data(struct conn *c, const struct xs_hdr *h, const struct rec *r, const char *extra)
{
	return reply(c, h, r->data, r->datalen);
}

static int send_perms(struct conn *c, const struct xs_hdr *h, const struct rec *r,
		      const char *extra)
{
	char buf[XS_PAYLOAD_MAX];
	int n = xs_perms_format(r->perms, r->nperms, buf, sizeof(buf));
	return n < 0 ? n : reply(c, h, buf, (size_t)n);
}

/* Children from offset `extra` on, as many whole names as fit, after the
 * node's generation; a final empty name marks the end of the list. */
static int send_part(struct conn *c, const struct xs_hdr *h, const struct rec *r, const char *extra)
{
	char buf[XS_PAYLOAD_MAX];
	unsigned off = num(extra);
	int glen = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->seq) + 1;
	if (off >= r->childlen) {
		buf[glen] = '\0';
		return reply(c, h, buf, (size_t)glen + 1);
	}
	size_t len = 0, maxlen = XS_PAYLOAD_MAX - (size_t)glen - 1;
	const char *child = r->children + off;
	while (len + strlen(child) < maxlen) {
		len += strlen(child) + 1;
		child += strlen(child) + 1;
		if (off + len >= r->childlen)
			break;
	}
	memcpy(buf + glen, r->children + off, len);
	if (off + len >= r->childlen)
		buf[glen + len++] = '\0';
	return reply(c, h, buf, (size_t)glen + len);
}

/* ---- handlers ----------------------------------------------------------- */

typedef int (*handler)(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t);

static int do_directory(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	return inspect(c, t, onearg(p, h->len), false, send_children, h, NULL);
}

static int do_directory_part(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	if (count_strings(p, h->len) != 2)
		return -EINVAL;
	return inspect(c, t, p, false, send_part, h, nth(p, 1));
}

static int do_read(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	return inspect(c, t, onearg(p, h->len), false, send_data, h, NULL);
}

static int do_get_perms(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	return inspect(c, t, onearg(p, h->len), true, send_perms, h, NULL);
}

static int do_write(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	char path[XS_PATH_BUF];
	if (count_strings(p, h->len) < 1)
		return -EINVAL;
	uint32_t off = (uint32_t)strlen(p) + 1;
	int e = canon(c, p, false, path, NULL);
	if (e == 0)
		e = change(c, t, OP_WRITE, path, p + off, h->len - off, NULL, 0);
	return e < 0 ? e : reply_ok(c, h);
}

static int do_mkdir(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	char path[XS_PATH_BUF];
	int e = canon(c, onearg(p, h->len), false, path, NULL);
	if (e == 0)
		e = change(c, t, OP_MKDIR, path, NULL, 0, NULL, 0);
	return e < 0 ? e : reply_ok(c, h);
}

static int do_rm(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	char path[XS_PATH_BUF];
	int e = canon(c, onearg(p, h->len), false, path, NULL);
	if (e == 0)
		e = change(c, t, OP_RM, path, NULL, 0, NULL, 0);
	return e < 0 ? e : reply_ok(c, h);
}

static int do_set_perms(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	unsigned n = count_strings(p, h->len);
	if (n < 2)
		return -EINVAL;
	n--;
	if (c->domid != 0 && n > c->s->cfg.max_perms_per_node)
		return -ENOSPC;
	struct xs_perm perms[XS_PAYLOAD_MAX / 2];
	char path[XS_PATH_BUF];
	int e = xs_perms_parse(nth(p, 1), n, perms);
	if (e == 0)
		e = canon(c, p, true, path, NULL);
	if (e == 0)
		e = change(c, t, OP_PERMS, path, NULL, 0, perms, n);
	return e < 0 ? e : reply_ok(c, h);
}

static int do_watch(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	char path[XS_PATH_BUF];
	bool relative;
	if (count_strings(p, h->len) != 2)
		return -EINVAL;
	const char *token = nth(p, 1);
	int e = canon(c, p, true, path, &relative);
	if (e == 0)
		e = xs_watch_add(c, path, token, relative);
	if (e < 0)
		return e;
	reply_ok(c, h);
	/* Fired once up front, after the reply. */
	xs_conn_event(c, relative ? p : path, token);
	return 0;
}

static int do_unwatch(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	char path[XS_PATH_BUF];
	if (count_strings(p, h->len) != 2)
		return -EINVAL;
	int e = canon(c, p, true, path, NULL);
	if (e == 0)
		e = xs_watch_remove(c, path, nth(p, 1));
	return e < 0 ? e : reply_ok(c, h);
}

static int do_transaction_start(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	if (t)
		return -EBUSY; /* no nesting */
	uint32_t id;
	int e = xs_tx_start(c, &id);
	if (e < 0)
		return e;
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%u", id) + 1;
	return reply(c, h, buf, (size_t)n);
}

static int do_transaction_end(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	const char *arg = onearg(p, h->len);
	if (!arg || (strcmp(arg, "T") != 0 && strcmp(arg, "F") != 0))
		return -EINVAL;
	if (!t)
		return -ENOENT;
	int e = xs_tx_end(t, arg[0] == 'T');
	return e < 0 ? e : reply_ok(c, h);
}

static int do_get_domain_path(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	const char *arg = onearg(p, h->len);
	if (!arg)
		return -EINVAL;
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "/local/domain/%u", num(arg)) + 1;
	return reply(c, h, buf, (size_t)n);
}

static int do_introduce(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	if (count_strings(p, h->len) < 3)
		return -EINVAL;
	/* The ring's gfn and port mean nothing here; the port must look sane. */
	if ((int)num(nth(p, 2)) <= 0)
		return -EINVAL;
	int e = xs_domain_wire_introduce(c->s, num(p));
	return e < 0 ? e : reply_ok(c, h);
}

static int do_release(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	const char *arg = onearg(p, h->len);
	if (!arg)
		return -EINVAL;
	int e = xs_domain_wire_release(c->s, num(arg));
	return e < 0 ? e : reply_ok(c, h);
}

static int do_resume(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	const char *arg = onearg(p, h->len);
	if (!arg)
		return -EINVAL;
	unsigned domid = num(arg);
	const struct domain *d = xs_domain_find(c->s, domid);
	if (domid == 0)
		return -EINVAL;
	if (!d || !d->introduced)
		return -ENOENT;
	return reply_ok(c, h);
}

static int do_is_domain_introduced(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	const char *arg = onearg(p, h->len);
	if (!arg)
		return -EINVAL;
	unsigned domid = num(arg);
	const struct domain *d = xs_domain_find(c->s, domid);
	bool yes = domid == XS_DOMID_SELF || (d && d->introduced);
	return reply(c, h, yes ? "T" : "F", 2);
}

static int do_set_target(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	if (count_strings(p, h->len) < 2)
		return -EINVAL;
	int e = xs_domain_wire_set_target(c->s, num(p), num(nth(p, 1)));
	return e < 0 ? e : reply_ok(c, h);
}

static int do_reset_watches(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	xs_watch_remove_all(c);
	struct tx *i;
	list_for_each(i, tmp, &c->txs, struct tx, link)
	{
		xs_tx_free(i);
	}
	return reply_ok(c, h);
}

static int do_control(struct conn *c, const struct xs_hdr *h, char *p, struct tx *t)
{
	static const char help[] = "Available commands:\n"
				   "check\n"
				   "print <string>\n"
				   "help\n";
	unsigned n = count_strings(p, h->len);
	if (n < 1)
		return -EINVAL;
	if (strcmp(p, "check") == 0)
		return reply_ok(c, h);
	if (strcmp(p, "print") == 0 && n >= 2) {
		log_info("xenstore: %s", nth(p, 1));
		return reply_ok(c, h);
	}
	if (strcmp(p, "help") == 0)
		return reply(c, h, help, sizeof(help));
	return -EINVAL;
}

static const struct {
	const char *name;
	handler fn;
	unsigned flags;
} ops[XS_TYPE_COUNT] = {
	[XS_CONTROL] = { "CONTROL", do_control, F_PRIV },
	[XS_DIRECTORY] = { "DIRECTORY", do_directory, 0 },
	[XS_READ] = { "READ", do_read, 0 },
	[XS_GET_PERMS] = { "GET_PERMS", do_get_perms, 0 },
	[XS_WATCH] = { "WATCH", do_watch, F_NOTID },
	[XS_UNWATCH] = { "UNWATCH", do_unwatch, F_NOTID },
	[XS_TRANSACTION_START] = { "TRANSACTION_START", do_transaction_start, 0 },
	[XS_TRANSACTION_END] = { "TRANSACTION_END", do_transaction_end, 0 },
	[XS_INTRODUCE] = { "INTRODUCE", do_introduce, F_PRIV },
	[XS_RELEASE] = { "RELEASE", do_release, F_PRIV },
	[XS_GET_DOMAIN_PATH] = { "GET_DOMAIN_PATH", do_get_domain_path, 0 },
	[XS_WRITE] = { "WRITE", do_write, 0 },
	[XS_MKDIR] = { "MKDIR", do_mkdir, 0 },
	[XS_RM] = { "RM", do_rm, 0 },
	[XS_SET_PERMS] = { "SET_PERMS", do_set_perms, 0 },
	[XS_WATCH_EVENT] = { "WATCH_EVENT", NULL, 0 },
	[XS_ERROR] = { "ERROR", NULL, 0 },
	[XS_IS_DOMAIN_INTRODUCED] = { "IS_DOMAIN_INTRODUCED", do_is_domain_introduced, F_PRIV },
	[XS_RESUME] = { "RESUME", do_resume, F_PRIV },
	[XS_SET_TARGET] = { "SET_TARGET", do_set_target, F_PRIV },
	[XS_RESET_WATCHES] = { "RESET_WATCHES", do_reset_watches, 0 },
	[XS_DIRECTORY_PART] = { "DIRECTORY_PART", do_directory_part, 0 },
};

const char *xs_proto_type_name(uint32_t type)
{
	return type < XS_TYPE_COUNT && ops[type].name ? ops[type].name : "UNKNOWN";
}

/* ---- claiming a domain -------------------------------------------------- */

static bool is_claim(const char *p, uint32_t len)
{
	return len >= sizeof(XS_CLAIM_CMD) && memcmp(p, XS_CLAIM_CMD, sizeof(XS_CLAIM_CMD)) == 0;
}

/* "granted-domid\0<N>\0" as the first message binds the connection to N;
 * a refused or malformed claim closes the connection after its error. */
static void claim(struct conn *c, const struct xs_hdr *h, char *p, bool first)
{
	struct xs_server *s = c->s;
	if (!first) {
		send_error(c, h, -EACCES);
		return;
	}
	const char *arg = p + sizeof(XS_CLAIM_CMD);
	size_t alen = strlen(arg);
	int e = 0;
	if (count_strings(p, h->len) != 2 || sizeof(XS_CLAIM_CMD) + alen + 1 != h->len ||
	    alen == 0 || alen > 5 || strspn(arg, "0123456789") != alen ||
	    num(arg) >= XS_DOMID_FIRST_RESERVED)
		e = -EINVAL;
	unsigned domid = e ? 0 : num(arg);
	if (e == 0 && (!s->hooks.may_claim || s->hooks.may_claim(s->ctx, &c->peer, domid) != 0))
		e = -EACCES;
	struct domain *d = e == 0 ? xs_domain_get(s, domid) : NULL;
	if (e == 0 && !d)
		e = -ENOMEM;
	if (e < 0) {
		log_info("xenstore: connection %u (pid %d) may not be domain %s: %s", c->serial,
			 (int)c->peer.pid, arg, strerror(-e));
		send_error(c, h, e);
		c->closing = true;
		return;
	}
	struct domain *d0 = xs_domain_find(s, c->domid);
	if (d0 && d0->conns)
		d0->conns--;
	c->domid = domid;
	d->conns++;
	log_debug("xenstore: connection %u is domain %u", c->serial, domid);
	reply_ok(c, h);
}

void xs_proto_handle(struct conn *c, const struct xs_hdr *h, char *p)
{
	bool first = c->fresh;
	c->fresh = false;
	if (log_get_level() >= LOG_DEBUG)
		log_debug("xenstore: connection %u domain %u: %s req %u tx %u \"%.*s\"", c->serial,
			  c->domid, xs_proto_type_name(h->type), h->req_id, h->tx_id,
			  (int)(h->len > 64 ? 64 : h->len), p);

	if (h->type == XS_CONTROL && is_claim(p, h->len)) {
		claim(c, h, p, first);
		return;
	}
	/* No claim: the connection is domain 0, which sees and changes every
	 * node. The host's policy decides whether this peer may be that. */
	if (first &&
	    (!c->s->hooks.may_claim || c->s->hooks.may_claim(c->s->ctx, &c->peer, 0) != 0)) {
		log_info("xenstore: connection %u (pid %d) may not be domain 0", c->serial,
			 (int)c->peer.pid);
		send_error(c, h, -EACCES);
		c->closing = true;
		return;
	}
	if (h->type >= XS_TYPE_COUNT || !ops[h->type].fn) {
		send_error(c, h, -EINVAL);
		return;
	}
	if ((ops[h->type].flags & F_PRIV) && c->domid != 0) {
		send_error(c, h, -EACCES);
		return;
	}
	struct tx *t = NULL;
	if (!(ops[h->type].flags & F_NOTID) && h->tx_id) {
		t = xs_tx_find(c, h->tx_id);
		if (!t) {
			send_error(c, h, -ENOENT);
			return;
		}
	}
	int e = ops[h->type].fn(c, h, p, t);
	if (e < 0)
		send_error(c, h, e);
}
