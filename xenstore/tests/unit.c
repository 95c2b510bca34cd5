/*
 * Unit tests of the xenstore engine: the server runs in this process on its
 * own loop; clients speak the raw wire protocol on socketpairs, as domain 0
 * or as a domain they claim. Covers the tree, permissions, transactions
 * (isolation and conflicts), watches, quotas, domains and the store's
 * version collection.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "loop.h"
#include "tap.h"
#include "xenstore.h"

/* ---- a server and raw clients ------------------------------------------- */

struct srv {
	struct loop *loop;
	struct xs_server *xs;
	int refuse; /* may_claim refuses */
};

struct cl {
	struct srv *srv;
	int fd;
	uint32_t req;
	char events[64][2][256]; /* queued watch events: path, token */
	int nev;
};

static int may_claim(void *ctx, const struct ucred *peer, unsigned domid)
{
	struct srv *s = ctx;
	CHECK(peer->pid == getpid());
	return s->refuse ? -EACCES : 0;
}

static struct srv *srv_new(const struct xs_config *cfg)
{
	static struct srv s;
	static const struct xs_hooks hooks = { .may_claim = may_claim };
	log_set_level(LOG_CRIT);
	s = (struct srv){ 0 };
	CHECK(s.loop = loop_create());
	CHECK_EQ(xs_server_create(s.loop, cfg, &hooks, &s, &s.xs), 0);
	return &s;
}

static void srv_free(struct srv *s)
{
	xs_server_destroy(s->xs);
	loop_destroy(s->loop);
}

static void pump(struct srv *s)
{
	while (loop_dispatch(s->loop, 0) > 0)
		;
}

static const struct {
	const char *name;
	int err;
} names[] = { { "EINVAL", EINVAL }, { "EACCES", EACCES }, { "EEXIST", EEXIST },
	      { "ENOENT", ENOENT }, { "ENOMEM", ENOMEM }, { "ENOSPC", ENOSPC },
	      { "EIO", EIO },	    { "EBUSY", EBUSY },	  { "EAGAIN", EAGAIN },
	      { "E2BIG", E2BIG },   { "EPERM", EPERM },	  { "ENOSYS", ENOSYS } };

static int err_of(const char *name)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i].name, name) == 0)
			return names[i].err;
	tap_fail(__FILE__, __LINE__, "unknown error name %s", name);
}

static void send_raw(struct cl *c, uint32_t type, uint32_t req, uint32_t tx, const void *p,
		     size_t len)
{
	struct xs_hdr h = { type, req, tx, (uint32_t)len };
	char buf[sizeof(h) + XS_PAYLOAD_MAX + 64];
	CHECK(len <= XS_PAYLOAD_MAX + 64);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), p, len);
	CHECK_EQ(write(c->fd, buf, sizeof(h) + len), (ssize_t)(sizeof(h) + len));
}

/* Pumps the server until a message is readable; 0 if the peer closed. */
static int recv_raw(struct cl *c, struct xs_hdr *h, char *p)
{
	for (int i = 0; i < 1000; i++) {
		pump(c->srv);
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		if (poll(&pfd, 1, i < 10 ? 0 : 1) == 1) {
			ssize_t k = read(c->fd, h, sizeof(*h));
			if (k == 0)
				return 0;
			CHECK_EQ(k, (ssize_t)sizeof(*h));
			CHECK(h->len <= XS_PAYLOAD_MAX);
			if (h->len)
				CHECK_EQ(read(c->fd, p, h->len), (ssize_t)h->len);
			p[h->len] = '\0';
			return 1;
		}
	}
	tap_fail(__FILE__, __LINE__, "no reply from the server");
}

static void queue_event(struct cl *c, const char *p, uint32_t len)
{
	CHECK(c->nev < 64);
	CHECK_EQ(p[len - 1], '\0');
	snprintf(c->events[c->nev][0], 256, "%s", p);
	snprintf(c->events[c->nev][1], 256, "%s", p + strlen(p) + 1);
	c->nev++;
}

/* One request; returns 0 (reply in out) or -errno from the error reply. */
static int call(struct cl *c, uint32_t type, uint32_t tx, const void *p, size_t len, char *out,
		uint32_t *outlen)
{
	uint32_t req = ++c->req;
	send_raw(c, type, req, tx, p, len);
	for (;;) {
		struct xs_hdr h;
		char buf[XS_PAYLOAD_MAX + 1];
		CHECK_EQ(recv_raw(c, &h, buf), 1);
		if (h.type == XS_WATCH_EVENT) {
			CHECK_EQ(h.req_id, 0);
			queue_event(c, buf, h.len);
			continue;
		}
		CHECK_EQ(h.req_id, req);
		CHECK_EQ(h.tx_id, tx);
		if (h.type == XS_ERROR)
			return -err_of(buf);
		CHECK_EQ(h.type, type);
		if (out)
			memcpy(out, buf, h.len + 1);
		if (outlen)
			*outlen = h.len;
		return 0;
	}
}

/* bufsize: 0 for the default socket buffers, else that size each way. */
static struct cl *cl_new_buf(struct srv *s, int domid, int bufsize)
{
	struct cl *c = calloc(1, sizeof(*c));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	for (int i = 0; bufsize && i < 2; i++) {
		CHECK_OK(setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize)));
		CHECK_OK(setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize)));
	}
	CHECK_EQ(xs_server_add_client(s->xs, sv[1]), 0);
	*c = (struct cl){ .srv = s, .fd = sv[0] };
	if (domid >= 0) {
		char claim[32];
		int n = snprintf(claim, sizeof(claim), "granted-domid%c%d", 0, domid) + 1;
		CHECK_EQ(call(c, XS_CONTROL, 0, claim, (size_t)n, NULL, NULL), 0);
	}
	return c;
}

static struct cl *cl_new(struct srv *s, int domid)
{
	return cl_new_buf(s, domid, 0);
}

static void cl_free(struct cl *c)
{
	close(c->fd);
	pump(c->srv);
	free(c);
}

/* ---- helpers, tx 0 or a transaction ------------------------------------- */

static size_t join(char *buf, const char *a, const char *b, size_t blen)
{
	size_t n = strlen(a) + 1;
	memcpy(buf, a, n);
	memcpy(buf + n, b, blen);
	return n + blen;
}

static int xwrite(struct cl *c, uint32_t tx, const char *path, const char *val)
{
	char buf[XS_PAYLOAD_MAX + 64];
	return call(c, XS_WRITE, tx, buf, join(buf, path, val, strlen(val)), NULL, NULL);
}

/* Returns the value's length, or -errno; value in out. */
static int xread(struct cl *c, uint32_t tx, const char *path, char *out)
{
	uint32_t len;
	char buf[XS_PAYLOAD_MAX + 1];
	int e = call(c, XS_READ, tx, path, strlen(path) + 1, buf, &len);
	if (e < 0)
		return e;
	if (out)
		memcpy(out, buf, len + 1);
	return (int)len;
}

static int xone(struct cl *c, uint32_t type, uint32_t tx, const char *arg)
{
	return call(c, type, tx, arg, strlen(arg) + 1, NULL, NULL);
}

/* Children joined with ',' (or a string of perms). */
static int xlist(struct cl *c, uint32_t type, uint32_t tx, const char *path, char *out)
{
	uint32_t len;
	char buf[XS_PAYLOAD_MAX + 1];
	int e = call(c, type, tx, path, strlen(path) + 1, buf, &len);
	if (e < 0)
		return e;
	out[0] = '\0';
	for (uint32_t off = 0; off < len; off += (uint32_t)strlen(buf + off) + 1) {
		if (out[0])
			strcat(out, ",");
		strcat(out, buf + off);
	}
	return 0;
}

/* perms as "n1 r2" */
static int xsetperms(struct cl *c, uint32_t tx, const char *path, const char *perms)
{
	char buf[512];
	size_t n = strlen(path) + 1;
	memcpy(buf, path, n);
	for (const char *p = perms; *p;) {
		size_t k = strcspn(p, " ");
		memcpy(buf + n, p, k);
		buf[n + k] = '\0';
		n += k + 1;
		p += k;
		p += *p == ' ';
	}
	return call(c, XS_SET_PERMS, tx, buf, n, NULL, NULL);
}

static int xwatch(struct cl *c, uint32_t type, const char *path, const char *token)
{
	char buf[512];
	return call(c, type, 0, buf, join(buf, path, token, strlen(token) + 1), NULL, NULL);
}

static uint32_t xtx_start(struct cl *c)
{
	char buf[32];
	CHECK_EQ(call(c, XS_TRANSACTION_START, 0, "", 1, buf, NULL), 0);
	uint32_t id = (uint32_t)atoi(buf);
	CHECK(id != 0);
	return id;
}

static int xtx_end(struct cl *c, uint32_t tx, bool commit)
{
	return call(c, XS_TRANSACTION_END, tx, commit ? "T" : "F", 2, NULL, NULL);
}

/* Pumps, then takes the next event: 1 if there was one. */
static int next_event(struct cl *c, char *path, char *token)
{
	for (int i = 0; i < 3 && !c->nev; i++) {
		pump(c->srv);
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		while (poll(&pfd, 1, 0) == 1) {
			struct xs_hdr h;
			char buf[XS_PAYLOAD_MAX + 1];
			CHECK_EQ(recv_raw(c, &h, buf), 1);
			CHECK_EQ(h.type, XS_WATCH_EVENT);
			queue_event(c, buf, h.len);
		}
	}
	if (!c->nev)
		return 0;
	strcpy(path, c->events[0][0]);
	strcpy(token, c->events[0][1]);
	memmove(c->events[0], c->events[1], sizeof(c->events[0]) * (size_t)(--c->nev));
	return 1;
}

#define CHECK_EVENT(c, epath, etoken)                                                              \
	do {                                                                                       \
		char p_[256], t_[256];                                                             \
		if (!next_event(c, p_, t_))                                                        \
			tap_fail(__FILE__, __LINE__, "no event, expected %s", epath);              \
		if (strcmp(p_, epath) || strcmp(t_, etoken))                                       \
			tap_fail(__FILE__, __LINE__, "event %s %s, expected %s %s", p_, t_, epath, \
				 etoken);                                                          \
	} while (0)

#define CHECK_NO_EVENT(c)                                                                          \
	do {                                                                                       \
		char p_[256], t_[256];                                                             \
		if (next_event(c, p_, t_))                                                         \
			tap_fail(__FILE__, __LINE__, "unexpected event %s %s", p_, t_);            \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		if (strcmp((a), (b)))                                                              \
			tap_fail(__FILE__, __LINE__, "%s = \"%s\", expected \"%s\"", #a, (a),      \
				 (b));                                                             \
	} while (0)

/* ---- the tree ------------------------------------------------------------ */

TEST(initial_tree)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1);
	char buf[4200];
	CHECK_EQ(xlist(c, XS_DIRECTORY, 0, "/", buf), 0);
	CHECK_STR(buf, "tool,local");
	CHECK_EQ(xread(c, 0, "/local/domain/0/domid", buf), 1);
	CHECK_STR(buf, "0");
	CHECK_EQ(xread(c, 0, "domid", buf), 1); /* relative: /local/domain/0 */
	CHECK_EQ(xlist(c, XS_GET_PERMS, 0, "@releaseDomain", buf), 0);
	CHECK_STR(buf, "n0");
	CHECK_EQ(xlist(c, XS_GET_PERMS, 0, "/tool/xenstored", buf), 0);
	CHECK_STR(buf, "n0");
	struct xs_stats st;
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.nodes, 9);
	CHECK_EQ(st.connections, 1);
	CHECK_EQ(st.introduced, 1);
	cl_free(c);
	srv_free(s);
}

TEST(write_read_mkdir_rm)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1);
	char buf[4200];
	CHECK_EQ(xwrite(c, 0, "/a/b/c", "hello"), 0);
	CHECK_EQ(xread(c, 0, "/a/b/c", buf), 5);
	CHECK_STR(buf, "hello");
	CHECK_EQ(xread(c, 0, "/a/b", buf), 0); /* created on the way, empty */
	CHECK_EQ(xwrite(c, 0, "/a/b/d", ""), 0);
	CHECK_EQ(xwrite(c, 0, "/a/b/0", "x"), 0);
	CHECK_EQ(xlist(c, XS_DIRECTORY, 0, "/a/b", buf), 0);
	CHECK_STR(buf, "c,d,0"); /* creation order */
	/* A value may hold any bytes, NULs included. */
	char bin[8] = { '/', 'z', 0, 1, 0, 2, 0, 3 };
	CHECK_EQ(call(c, XS_WRITE, 0, bin, sizeof(bin), NULL, NULL), 0);
	uint32_t len;
	CHECK_EQ(call(c, XS_READ, 0, "/z", 3, buf, &len), 0);
	CHECK_EQ(len, 5);
	CHECK(memcmp(buf, bin + 3, 5) == 0);
	CHECK_EQ(xone(c, XS_MKDIR, 0, "/a/b"), 0); /* existing: fine */
	CHECK_EQ(xone(c, XS_MKDIR, 0, "/m/n"), 0);
	CHECK_EQ(xlist(c, XS_DIRECTORY, 0, "/m", buf), 0);
	CHECK_STR(buf, "n");
	CHECK_EQ(xread(c, 0, "/nope", buf), -ENOENT);
	CHECK_EQ(xlist(c, XS_DIRECTORY, 0, "/nope", buf), -ENOENT);
	CHECK_EQ(xone(c, XS_RM, 0, "/a/b"), 0);
	CHECK_EQ(xread(c, 0, "/a/b/c", buf), -ENOENT);
	CHECK_EQ(xlist(c, XS_DIRECTORY, 0, "/a", buf), 0);
	CHECK_STR(buf, "");
	CHECK_EQ(xone(c, XS_RM, 0, "/a/b"), 0);	      /* missing, parent exists */
	CHECK_EQ(xone(c, XS_RM, 0, "/q/r"), -ENOENT); /* missing parent too */
	CHECK_EQ(xone(c, XS_RM, 0, "/"), -EINVAL);
	/* Relative paths live below /local/domain/0 for dom0. */
	CHECK_EQ(xwrite(c, 0, "rel/x", "1"), 0);
	CHECK_EQ(xread(c, 0, "/local/domain/0/rel/x", buf), 1);
	CHECK_EQ(call(c, XS_GET_DOMAIN_PATH, 0, "7", 2, buf, NULL), 0);
	CHECK_STR(buf, "/local/domain/7");
	cl_free(c);
	srv_free(s);
}

TEST(invalid_requests)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1);
	char buf[8192];
	CHECK_EQ(xread(c, 0, "/a//b", buf), -EINVAL);
	CHECK_EQ(xread(c, 0, "/a/", buf), -EINVAL);
	CHECK_EQ(xread(c, 0, "/a b", buf), -EINVAL);
	CHECK_EQ(xread(c, 0, "@releaseDomain", buf), -EINVAL); /* special only where allowed */
	CHECK_EQ(xread(c, 0, "", buf), -EINVAL);
	CHECK_EQ(call(c, XS_READ, 0, "/a\0/b", 6, NULL, NULL), -EINVAL); /* two strings */
	CHECK_EQ(call(c, XS_WRITE, 0, "/a", 2, NULL, NULL), -EINVAL);	 /* no NUL */
	CHECK_EQ(call(c, 99, 0, "", 0, NULL, NULL), -EINVAL);
	CHECK_EQ(call(c, XS_WATCH_EVENT, 0, "", 0, NULL, NULL), -EINVAL);
	CHECK_EQ(call(c, XS_ERROR, 0, "", 0, NULL, NULL), -EINVAL);
	CHECK_EQ(call(c, XS_WATCH, 0, "/a", 3, NULL, NULL), -EINVAL);
	CHECK_EQ(call(c, XS_TRANSACTION_END, 0, "T", 2, NULL, NULL), -ENOENT);
	CHECK_EQ(call(c, XS_READ, 42, "/a", 3, NULL, NULL), -ENOENT); /* no such transaction */
	CHECK_EQ(xone(c, XS_CONTROL, 0, "nonsense"), -EINVAL);
	CHECK_EQ(xone(c, XS_CONTROL, 0, "check"), 0);
	/* Too big: answered E2BIG, the stream stays in step. */
	memset(buf, 'a', sizeof(buf));
	buf[0] = '/';
	send_raw(c, XS_WRITE, 77, 0, buf, XS_PAYLOAD_MAX + 10);
	struct xs_hdr h;
	CHECK_EQ(recv_raw(c, &h, buf), 1);
	CHECK_EQ(h.type, XS_ERROR);
	CHECK_EQ(h.req_id, 77);
	CHECK_STR(buf, "E2BIG");
	CHECK_EQ(xwrite(c, 0, "/still", "ok"), 0);
	/* The largest message is fine. */
	memset(buf, 'v', sizeof(buf));
	memcpy(buf, "/big", 5);
	CHECK_EQ(call(c, XS_WRITE, 0, buf, XS_PAYLOAD_MAX, NULL, NULL), 0);
	CHECK_EQ(xread(c, 0, "/big", buf), XS_PAYLOAD_MAX - 5);
	cl_free(c);
	srv_free(s);
}

TEST(directory_part)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1);
	char name[128], buf[4200];
	/* 60 children of 99 chars: over one message. */
	for (int i = 0; i < 60; i++) {
		snprintf(name, sizeof(name), "/d/%02d%097d", i, 0);
		CHECK_EQ(xwrite(c, 0, name, ""), 0);
	}
	CHECK_EQ(xlist(c, XS_DIRECTORY, 0, "/d", buf), -E2BIG);
	int seen = 0;
	unsigned off = 0;
	char gen0[32] = "";
	for (;;) {
		char req[64];
		uint32_t len;
		int n = snprintf(req, sizeof(req), "/d%c%u", 0, off) + 1;
		CHECK_EQ(call(c, XS_DIRECTORY_PART, 0, req, (size_t)n, buf, &len), 0);
		if (!gen0[0])
			strcpy(gen0, buf);
		CHECK_STR(buf, gen0); /* the generation stays while unchanged */
		uint32_t p = (uint32_t)strlen(buf) + 1;
		if (buf[p] == '\0')
			break;
		while (p < len && buf[p]) {
			CHECK_EQ(strlen(buf + p), 99);
			seen++;
			off += (unsigned)strlen(buf + p) + 1;
			p += (uint32_t)strlen(buf + p) + 1;
		}
	}
	CHECK_EQ(seen, 60);
	cl_free(c);
	srv_free(s);
}

/* ---- permissions --------------------------------------------------------- */

TEST(permissions)
{
	struct srv *s = srv_new(NULL);
	CHECK_EQ(xs_domain_introduce(s->xs, 1), 0);
	CHECK_EQ(xs_domain_introduce(s->xs, 2), 0);
	struct cl *d0 = cl_new(s, -1), *d1 = cl_new(s, 1), *d2 = cl_new(s, 2);
	char buf[4200];

	/* What the toolstack part made. */
	CHECK_EQ(xlist(d0, XS_GET_PERMS, 0, "/local/domain/1", buf), 0);
	CHECK_STR(buf, "n0,r1");
	CHECK_EQ(xlist(d0, XS_GET_PERMS, 0, "/local/domain/1/data", buf), 0);
	CHECK_STR(buf, "n1");
	CHECK_EQ(xread(d1, 0, "domid", buf), 1); /* relative: its own home */
	CHECK_STR(buf, "1");
	CHECK_EQ(xread(d2, 0, "domid", buf), 1);
	CHECK_STR(buf, "2");

	/* Others' nodes: not even their existence is told. */
	CHECK_EQ(xlist(d1, XS_DIRECTORY, 0, "/", buf), -EACCES);
	CHECK_EQ(xread(d1, 0, "/tool/xenstored", buf), -EACCES);
	CHECK_EQ(xread(d1, 0, "/tool/nope", buf), -EACCES);
	CHECK_EQ(xread(d1, 0, "/local/domain/2/domid", buf), -EACCES);
	CHECK_EQ(xread(d1, 0, "nope", buf), -ENOENT); /* its home is readable */
	CHECK_EQ(xwrite(d1, 0, "/x", "1"), -EACCES);
	CHECK_EQ(xwrite(d1, 0, "domid", "5"), -EACCES);	  /* read-only for it */
	CHECK_EQ(xwrite(d1, 0, "newnode", "5"), -EACCES); /* home is n0 r1 */

	/* What it creates it owns; children inherit the rest. */
	CHECK_EQ(xwrite(d1, 0, "data/vchan/ring-ref", "8"), 0);
	CHECK_EQ(xlist(d0, XS_GET_PERMS, 0, "/local/domain/1/data/vchan", buf), 0);
	CHECK_STR(buf, "n1");
	CHECK_EQ(xread(d2, 0, "/local/domain/1/data/vchan/ring-ref", buf), -EACCES);
	CHECK_EQ(xsetperms(d1, 0, "data/vchan/ring-ref", "n1 r2"), 0);
	CHECK_EQ(xlist(d1, XS_GET_PERMS, 0, "data/vchan/ring-ref", buf), 0);
	CHECK_STR(buf, "n1,r2");
	CHECK_EQ(xread(d2, 0, "/local/domain/1/data/vchan/ring-ref", buf), 1);
	CHECK_EQ(xwrite(d2, 0, "/local/domain/1/data/vchan/ring-ref", "9"), -EACCES);
	CHECK_EQ(xsetperms(d2, 0, "/local/domain/1/data/vchan/ring-ref", "n2"), -EACCES);
	/* Missing under a readable parent: ENOENT; else EACCES. */
	CHECK_EQ(xread(d2, 0, "/local/domain/1/data/vchan/ring-ref/x", buf), -ENOENT);
	CHECK_EQ(xread(d2, 0, "/local/domain/1/data/vchan/nope", buf), -EACCES);
	/* Giving a node away is for dom0 only. */
	CHECK_EQ(xsetperms(d1, 0, "data/vchan/ring-ref", "n2"), -EPERM);
	CHECK_EQ(xsetperms(d0, 0, "/local/domain/1/data/vchan/ring-ref", "n2 r1"), 0);
	CHECK_EQ(xwrite(d2, 0, "/local/domain/1/data/vchan/ring-ref", "9"), 0);
	CHECK_EQ(xwrite(d1, 0, "data/vchan/ring-ref", "9"), -EACCES);
	CHECK_EQ(xread(d1, 0, "data/vchan/ring-ref", buf), 1);
	/* b = read and write; the default entry applies to unlisted domains. */
	CHECK_EQ(xwrite(d0, 0, "/shared/x", "1"), 0);
	CHECK_EQ(xsetperms(d0, 0, "/shared", "r0 b2"), 0);
	CHECK_EQ(xlist(d1, XS_DIRECTORY, 0, "/shared", buf), 0);
	CHECK_EQ(xwrite(d1, 0, "/shared/y", "1"), -EACCES);
	CHECK_EQ(xwrite(d2, 0, "/shared/y", "1"), 0);
	CHECK_EQ(xlist(d0, XS_GET_PERMS, 0, "/shared/y", buf), 0);
	CHECK_STR(buf, "r2,b2"); /* inherited, owner replaced */
	CHECK_EQ(xone(d2, XS_RM, 0, "/shared/y"), 0);
	CHECK_EQ(xone(d1, XS_RM, 0, "/shared/x"), -EACCES);
	/* Malformed permissions. */
	CHECK_EQ(xsetperms(d0, 0, "/shared", "x1"), -EINVAL);
	CHECK_EQ(xsetperms(d0, 0, "/shared", "r"), -EINVAL);
	CHECK_EQ(xsetperms(d0, 0, "/shared", "r1x"), -EINVAL);
	CHECK_EQ(call(d0, XS_SET_PERMS, 0, "/shared", 8, NULL, NULL), -EINVAL);
	/* Privileged requests. */
	CHECK_EQ(xone(d1, XS_IS_DOMAIN_INTRODUCED, 0, "2"), -EACCES);
	CHECK_EQ(call(d1, XS_INTRODUCE, 0,
		      "3\0"
		      "0\0"
		      "1",
		      6, NULL, NULL),
		 -EACCES);
	CHECK_EQ(xone(d1, XS_RELEASE, 0, "2"), -EACCES);
	CHECK_EQ(xone(d1, XS_CONTROL, 0, "check"), -EACCES);
	CHECK_EQ(call(d1, XS_GET_DOMAIN_PATH, 0, "1", 2, buf, NULL), 0);
	cl_free(d0);
	cl_free(d1);
	cl_free(d2);
	srv_free(s);
}

TEST(claims)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, 3);
	char buf[64];
	/* Only as the first message. */
	CHECK_EQ(call(c, XS_CONTROL, 0,
		      "granted-domid\0"
		      "4",
		      16, NULL, NULL),
		 -EACCES);
	CHECK_EQ(call(c, XS_GET_DOMAIN_PATH, 0, "3", 2, buf, NULL), 0);
	CHECK_EQ(xread(c, 0, "/local/domain/0/domid", buf), -EACCES); /* still domain 3 */
	struct xs_domain_usage u;
	xs_domain_usage(s->xs, 3, &u);
	CHECK_EQ(u.connections, 1);
	CHECK_EQ(u.introduced, 0);
	cl_free(c);
	c = cl_new(s, -1);
	CHECK_EQ(xread(c, 0, "domid", buf), 1);
	CHECK_EQ(call(c, XS_CONTROL, 0,
		      "granted-domid\0"
		      "4",
		      16, NULL, NULL),
		 -EACCES);
	cl_free(c);

	/* Refused, or malformed: an error, then the connection is closed. */
	static const char *const bad[] = { "granted-domid\0"
					   "4",
					   "granted-domid\0"
					   "x",
					   "granted-domid\0"
					   "32752",
					   "granted-domid\0" };
	static const size_t badlen[] = { 16, 16, 20, 14 };
	for (int i = 0; i < 4; i++) {
		s->refuse = i == 0;
		c = cl_new(s, -1);
		CHECK_EQ(call(c, XS_CONTROL, 0, bad[i], badlen[i], NULL, NULL),
			 i == 0 ? -EACCES : -EINVAL);
		struct xs_hdr h;
		CHECK_EQ(recv_raw(c, &h, buf), 0);
		cl_free(c);
	}
	struct xs_stats st;
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.connections, 0);
	srv_free(s);
}

/* ---- transactions -------------------------------------------------------- */

TEST(transaction_isolation)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1), *o = cl_new(s, -1);
	char buf[4200];
	CHECK_EQ(xwrite(c, 0, "/t/a", "a"), 0);
	uint32_t t = xtx_start(c);
	CHECK_EQ(xread(c, t, "/t/a", buf), 1);
	/* Later changes outside are not seen inside: a snapshot. */
	CHECK_EQ(xwrite(o, 0, "/t/a", "b"), 0);
	CHECK_EQ(xwrite(o, 0, "/t/new", "n"), 0);
	CHECK_EQ(xread(c, t, "/t/a", buf), 1);
	CHECK_STR(buf, "a");
	CHECK_EQ(xread(c, t, "/t/new", buf), -ENOENT);
	CHECK_EQ(xlist(c, XS_DIRECTORY, t, "/t", buf), 0);
	CHECK_STR(buf, "a");
	/* Its own changes are seen inside only. */
	CHECK_EQ(xwrite(c, t, "/t/a", "c"), 0);
	CHECK_EQ(xwrite(c, t, "/t/mine/x", "m"), 0);
	CHECK_EQ(xread(c, t, "/t/a", buf), 1);
	CHECK_STR(buf, "c");
	CHECK_EQ(xlist(c, XS_DIRECTORY, t, "/t", buf), 0);
	CHECK_STR(buf, "a,mine");
	CHECK_EQ(xread(o, 0, "/t/a", buf), 1);
	CHECK_STR(buf, "b");
	CHECK_EQ(xread(o, 0, "/t/mine/x", buf), -ENOENT);
	/* It read /t/a, which changed: EAGAIN, and nothing of it lands. */
	CHECK_EQ(xtx_end(c, t, true), -EAGAIN);
	CHECK_EQ(xread(o, 0, "/t/a", buf), 1);
	CHECK_STR(buf, "b");
	CHECK_EQ(xread(o, 0, "/t/mine", buf), -ENOENT);
	CHECK_EQ(xtx_end(c, t, true), -ENOENT); /* it is gone */
	struct xs_stats st;
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.transactions, 0);
	cl_free(c);
	cl_free(o);
	srv_free(s);
}

TEST(transaction_commit)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1), *o = cl_new(s, -1);
	char buf[4200];
	CHECK_EQ(xwrite(c, 0, "/t/a", "a"), 0);
	CHECK_EQ(xwrite(c, 0, "/t/u/b", "b"), 0);
	uint32_t t = xtx_start(c);
	CHECK_EQ(xread(c, t, "/t/a", buf), 1);
	CHECK_EQ(xwrite(c, t, "/t/a", "A"), 0);
	CHECK_EQ(xwrite(c, t, "/t/new/deep", "D"), 0);
	CHECK_EQ(xone(c, XS_RM, t, "/t/u"), 0);
	/* Changes elsewhere do not conflict. */
	CHECK_EQ(xwrite(o, 0, "/other", "o"), 0);
	CHECK_EQ(xtx_end(c, t, true), 0);
	CHECK_EQ(xread(o, 0, "/t/a", buf), 1);
	CHECK_STR(buf, "A");
	CHECK_EQ(xread(o, 0, "/t/new/deep", buf), 1);
	CHECK_EQ(xread(o, 0, "/t/u/b", buf), -ENOENT);
	CHECK_EQ(xlist(o, XS_DIRECTORY, 0, "/", buf), 0);
	CHECK_STR(buf, "tool,local,t,other");
	/* Abort drops everything. */
	t = xtx_start(c);
	CHECK_EQ(xwrite(c, t, "/t/a", "lost"), 0);
	CHECK_EQ(xtx_end(c, t, false), 0);
	CHECK_EQ(xread(o, 0, "/t/a", buf), 1);
	CHECK_STR(buf, "A");
	/* Two creating the same node: the second to commit loses. */
	uint32_t t1 = xtx_start(c), t2 = xtx_start(o);
	CHECK_EQ(xwrite(c, t1, "/same", "1"), 0);
	CHECK_EQ(xwrite(o, t2, "/same", "2"), 0);
	CHECK_EQ(xtx_end(o, t2, true), 0);
	CHECK_EQ(xtx_end(c, t1, true), -EAGAIN);
	CHECK_EQ(xread(c, 0, "/same", buf), 1);
	CHECK_STR(buf, "2");
	/* A removal under something read conflicts; a sibling's change too
	 * (the parent's list of children is part of what was read). */
	t1 = xtx_start(c);
	CHECK_EQ(xlist(c, XS_DIRECTORY, t1, "/t", buf), 0);
	CHECK_EQ(xone(o, XS_RM, 0, "/t/new"), 0);
	CHECK_EQ(xwrite(c, t1, "/x", "1"), 0);
	CHECK_EQ(xtx_end(c, t1, true), -EAGAIN);
	/* Made and removed inside a transaction: the node never appears, but
	 * its parent was rewritten, as in xenstored: a reader of it retries. */
	t1 = xtx_start(c);
	t2 = xtx_start(o);
	CHECK_EQ(xread(c, t1, "/t/ghost", buf), -ENOENT);
	CHECK_EQ(xwrite(o, t2, "/t/ghost", "1"), 0);
	CHECK_EQ(xone(o, XS_RM, t2, "/t/ghost"), 0);
	CHECK_EQ(xtx_end(o, t2, true), 0);
	CHECK_EQ(xs_store_head_seq(&s->xs->store, "/t/ghost"), 0);
	CHECK_EQ(xtx_end(c, t1, true), -EAGAIN);
	/* Read-only, nothing changed: commits. */
	t1 = xtx_start(c);
	CHECK_EQ(xread(c, t1, "/t/a", buf), 1);
	CHECK_EQ(xtx_end(c, t1, true), 0);
	/* No nesting; unknown id; bad end argument. */
	t1 = xtx_start(c);
	CHECK_EQ(call(c, XS_TRANSACTION_START, t1, "", 1, NULL, NULL), -EBUSY);
	CHECK_EQ(call(c, XS_TRANSACTION_END, t1, "X", 2, NULL, NULL), -EINVAL);
	CHECK_EQ(call(c, XS_TRANSACTION_END, t1 + 100, "T", 2, NULL, NULL), -ENOENT);
	/* Transactions are per connection. */
	CHECK_EQ(call(o, XS_READ, t1, "/t/a", 5, NULL, NULL), -ENOENT);
	CHECK_EQ(xtx_end(c, t1, true), 0);
	cl_free(c);
	cl_free(o);
	srv_free(s);
}

TEST(transaction_watch_events_at_commit)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1), *w = cl_new(s, -1);
	CHECK_EQ(xwrite(c, 0, "/w/x", "1"), 0);
	CHECK_EQ(xwatch(w, XS_WATCH, "/w", "tok"), 0);
	CHECK_EVENT(w, "/w", "tok");
	uint32_t t = xtx_start(c);
	CHECK_EQ(xwrite(c, t, "/w/x", "2"), 0);
	CHECK_EQ(xwrite(c, t, "/w/y", "2"), 0);
	CHECK_EQ(xone(c, XS_RM, t, "/w/x"), 0);
	CHECK_NO_EVENT(w);
	CHECK_EQ(xtx_end(c, t, true), 0);
	CHECK_EVENT(w, "/w/x", "tok");
	CHECK_EVENT(w, "/w/y", "tok");
	CHECK_NO_EVENT(w);
	/* Aborted or failed: no events. */
	t = xtx_start(c);
	CHECK_EQ(xwrite(c, t, "/w/z", "2"), 0);
	CHECK_EQ(xtx_end(c, t, false), 0);
	CHECK_NO_EVENT(w);
	cl_free(c);
	cl_free(w);
	srv_free(s);
}

/* ---- watches ------------------------------------------------------------- */

TEST(watches)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1), *w = cl_new(s, -1);
	CHECK_EQ(xwatch(w, XS_WATCH, "/a", "A"), 0);
	CHECK_EVENT(w, "/a", "A"); /* fires once on registration */
	CHECK_EQ(xwatch(w, XS_WATCH, "/a/b/c", "C"), 0);
	CHECK_EVENT(w, "/a/b/c", "C");
	CHECK_EQ(xwatch(w, XS_WATCH, "rel", "R"), 0);
	CHECK_EVENT(w, "rel", "R"); /* relative as registered */
	CHECK_EQ(xwatch(w, XS_WATCH, "/a", "A"), -EEXIST);
	CHECK_EQ(xwatch(w, XS_WATCH, "/a", "A2"), 0); /* another token is another watch */
	CHECK_EVENT(w, "/a", "A2");
	CHECK_EQ(xwatch(w, XS_UNWATCH, "/a", "A2"), 0);
	CHECK_EQ(xwatch(w, XS_UNWATCH, "/a", "A2"), -ENOENT);

	CHECK_EQ(xwrite(c, 0, "/a/b", "1"), 0); /* ancestors' watches fire */
	CHECK_EVENT(w, "/a/b", "A");
	CHECK_NO_EVENT(w);
	CHECK_EQ(xwrite(c, 0, "/a/b/c/d", "1"), 0);
	CHECK_EVENT(w, "/a/b/c/d", "A");
	CHECK_EVENT(w, "/a/b/c/d", "C");
	CHECK_EQ(xwrite(c, 0, "/ab", "1"), 0); /* not below /a */
	CHECK_NO_EVENT(w);
	CHECK_EQ(xwrite(c, 0, "/local/domain/0/rel/x", "1"), 0);
	CHECK_EVENT(w, "rel/x", "R");
	/* rm fires for the node, and for each removed node's own watches. */
	CHECK_EQ(xone(c, XS_RM, 0, "/a/b"), 0);
	CHECK_EVENT(w, "/a/b/c", "C");
	CHECK_EVENT(w, "/a/b", "A");
	CHECK_NO_EVENT(w);
	CHECK_EQ(xone(c, XS_MKDIR, 0, "/a/m"), 0);
	CHECK_EVENT(w, "/a/m", "A");
	CHECK_EQ(xone(c, XS_MKDIR, 0, "/a/m"), 0); /* existing: no event */
	CHECK_NO_EVENT(w);
	CHECK_EQ(xsetperms(c, 0, "/a/m", "n0 r1"), 0);
	CHECK_EVENT(w, "/a/m", "A");
	/* Watches go with their connection, or with RESET_WATCHES. */
	struct xs_stats st;
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.watches, 3);
	CHECK_EQ(call(w, XS_RESET_WATCHES, 0, "", 0, NULL, NULL), 0);
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.watches, 0);
	CHECK_EQ(xwrite(c, 0, "/a/n", "1"), 0);
	CHECK_NO_EVENT(w);
	CHECK_EQ(xwatch(w, XS_WATCH, "/a", "A"), 0);
	cl_free(w);
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.watches, 0);
	cl_free(c);
	srv_free(s);
}

TEST(watch_permissions_and_special)
{
	struct srv *s = srv_new(NULL);
	CHECK_EQ(xs_domain_introduce(s->xs, 1), 0);
	struct cl *d0 = cl_new(s, -1), *d1 = cl_new(s, 1), *w0 = cl_new(s, -1);
	CHECK_EQ(xwatch(d1, XS_WATCH, "/", "root"), 0);
	CHECK_EVENT(d1, "/", "root");
	CHECK_EQ(xwatch(d1, XS_WATCH, "@releaseDomain", "rel"), 0);
	CHECK_EVENT(d1, "@releaseDomain", "rel");
	CHECK_EQ(xwatch(w0, XS_WATCH, "@introduceDomain", "intro"), 0);
	CHECK_EVENT(w0, "@introduceDomain", "intro");
	CHECK_EQ(xwatch(w0, XS_WATCH, "@releaseDomain", "rel"), 0);
	CHECK_EVENT(w0, "@releaseDomain", "rel");
	/* d1 may not read /secret nor /: no event for it. */
	CHECK_EQ(xwrite(d0, 0, "/secret", "1"), 0);
	CHECK_NO_EVENT(d1);
	/* It may read /pub: event. */
	CHECK_EQ(xwrite(d0, 0, "/pub", "1"), 0);
	CHECK_NO_EVENT(d1);
	CHECK_EQ(xsetperms(d0, 0, "/pub", "n0 r1"), 0);
	CHECK_EVENT(d1, "/pub", "root");
	/* Losing access to a node still tells about that change. */
	CHECK_EQ(xsetperms(d0, 0, "/pub", "n0"), 0);
	CHECK_EVENT(d1, "/pub", "root");
	CHECK_EQ(xwrite(d1, 0, "data/x", "1"), 0);
	CHECK_EVENT(d1, "/local/domain/1/data/x", "root");
	/* Domains come and go: dom0 hears of it; d1 may not read the nodes. */
	CHECK_EQ(xs_domain_introduce(s->xs, 5), 0);
	CHECK_EVENT(w0, "@introduceDomain", "intro");
	CHECK_EQ(xs_domain_introduce(s->xs, 5), 0); /* already: nothing */
	CHECK_NO_EVENT(w0);
	xs_domain_release(s->xs, 5);
	CHECK_EVENT(w0, "@releaseDomain", "rel");
	CHECK_NO_EVENT(w0);
	CHECK_NO_EVENT(d1);
	cl_free(d0);
	cl_free(d1);
	cl_free(w0);
	srv_free(s);
}

/* ---- quotas -------------------------------------------------------------- */

TEST(quotas)
{
	struct xs_config cfg = { .max_nodes_per_domain = 10,
				 .max_value_size = 100,
				 .max_watches_per_domain = 3,
				 .max_transactions_per_domain = 2,
				 .max_perms_per_node = 3,
				 .max_nodes_per_transaction = 20,
				 .max_path_length = 64 };
	struct srv *s = srv_new(&cfg);
	CHECK_EQ(xs_domain_introduce(s->xs, 1), 0);
	struct cl *d0 = cl_new(s, -1), *d1 = cl_new(s, 1), *d1b = cl_new(s, 1);
	char buf[4200], path[256];
	struct xs_domain_usage u;
	xs_domain_usage(s->xs, 1, &u);
	CHECK_EQ(u.nodes, 6); /* data, device, drivers, feature, attr, error */
	CHECK_EQ(u.connections, 2);
	/* Nodes: ENOSPC past 10, counted across the domain. */
	CHECK_EQ(xwrite(d1, 0, "data/a", "1"), 0);
	CHECK_EQ(xwrite(d1b, 0, "data/b/c", "1"), 0);
	CHECK_EQ(xwrite(d1, 0, "data/d/e", "1"), -ENOSPC); /* would make 11 */
	CHECK_EQ(xread(d1, 0, "data/d", buf), -ENOENT);	   /* nothing half-made */
	CHECK_EQ(xwrite(d1, 0, "data/d", "1"), 0);
	CHECK_EQ(xwrite(d1, 0, "data/f", "1"), -ENOSPC);
	CHECK_EQ(xwrite(d1, 0, "data/d", "overwrite is fine"), 0);
	xs_domain_usage(s->xs, 1, &u);
	CHECK_EQ(u.nodes, 10);
	CHECK_EQ(xone(d1, XS_RM, 0, "data/b"), 0);
	xs_domain_usage(s->xs, 1, &u);
	CHECK_EQ(u.nodes, 8);
	/* In a transaction: checked as it goes and at commit. */
	uint32_t t = xtx_start(d1);
	CHECK_EQ(xwrite(d1, t, "data/t1", "1"), 0);
	CHECK_EQ(xwrite(d1, t, "data/t2", "1"), 0);
	CHECK_EQ(xwrite(d1, t, "data/t3", "1"), -ENOSPC);
	CHECK_EQ(xwrite(d1, 0, "data/outside", "1"), 0); /* 9 now */
	CHECK_EQ(xtx_end(d1, t, true), -ENOSPC);
	/* dom0 is not bound. */
	for (int i = 0; i < 12; i++) {
		snprintf(path, sizeof(path), "/local/domain/1/data/z%d", i);
		CHECK_EQ(xwrite(d0, 0, path, "1"), 0);
	}
	/* Value size. */
	memset(buf, 'x', 101);
	buf[101] = '\0';
	CHECK_EQ(xwrite(d1, 0, "data/a", buf), -ENOSPC);
	buf[100] = '\0';
	CHECK_EQ(xwrite(d1, 0, "data/a", buf), 0);
	memset(buf, 'x', 3000);
	buf[3000] = '\0';
	CHECK_EQ(xwrite(d0, 0, "/big", buf), 0);
	/* Permissions per node. */
	CHECK_EQ(xsetperms(d1, 0, "data/a", "n1 r2 r3 r4"), -ENOSPC);
	CHECK_EQ(xsetperms(d1, 0, "data/a", "n1 r2 r3"), 0);
	CHECK_EQ(xsetperms(d0, 0, "/big", "n0 r2 r3 r4 r5 r6 r7"), 0);
	/* Path length below the home. */
	memset(path, 'p', 65);
	path[65] = '\0';
	CHECK_EQ(xread(d1, 0, path, buf), -EINVAL);
	path[64] = '\0';
	CHECK_EQ(xread(d1, 0, path, buf), -ENOENT);
	/* Watches: E2BIG. */
	CHECK_EQ(xwatch(d1, XS_WATCH, "data/w1", "t"), 0);
	CHECK_EQ(xwatch(d1, XS_WATCH, "data/w2", "t"), 0);
	CHECK_EQ(xwatch(d1b, XS_WATCH, "data/w3", "t"), 0);
	CHECK_EQ(xwatch(d1b, XS_WATCH, "data/w4", "t"), -E2BIG);
	CHECK_EQ(xwatch(d1b, XS_WATCH, "data/w3", "t"), -EEXIST); /* checked first */
	for (int i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "/w%d", i);
		CHECK_EQ(xwatch(d0, XS_WATCH, path, "t"), 0);
	}
	/* Transactions: ENOSPC. */
	uint32_t t1 = xtx_start(d1), t2 = xtx_start(d1b);
	CHECK_EQ(call(d1, XS_TRANSACTION_START, 0, "", 1, NULL, NULL), -ENOSPC);
	CHECK_EQ(xtx_end(d1, t1, false), 0);
	t1 = xtx_start(d1);
	/* Nodes one transaction touches. */
	int e = 0;
	for (int i = 0; i < 30 && e == 0; i++) {
		snprintf(path, sizeof(path), "data/r%d", i);
		e = xread(d1, t1, path, buf);
		if (e == -ENOENT)
			e = 0;
	}
	CHECK_EQ(e, -ENOSPC);
	CHECK_EQ(xtx_end(d1, t1, false), 0);
	CHECK_EQ(xtx_end(d1b, t2, false), 0);
	xs_domain_usage(s->xs, 1, &u);
	CHECK_EQ(u.watches, 3);
	CHECK_EQ(u.transactions, 0);
	cl_free(d0);
	cl_free(d1);
	cl_free(d1b);
	srv_free(s);
}

/* ---- domains ------------------------------------------------------------- */

TEST(domain_lifecycle)
{
	struct srv *s = srv_new(NULL);
	struct cl *d0 = cl_new(s, -1);
	char buf[4200];
	CHECK_EQ(xone(d0, XS_IS_DOMAIN_INTRODUCED, 0, "4"), 0);
	CHECK_EQ(call(d0, XS_IS_DOMAIN_INTRODUCED, 0, "4", 2, buf, NULL), 0);
	CHECK_STR(buf, "F");
	/* A toolstack may prepare the home before the domain appears. */
	CHECK_EQ(xwrite(d0, 0, "/local/domain/4/name", "four"), 0);
	CHECK_EQ(xs_domain_introduce(s->xs, 4), 0);
	CHECK_EQ(call(d0, XS_IS_DOMAIN_INTRODUCED, 0, "4", 2, buf, NULL), 0);
	CHECK_STR(buf, "T");
	CHECK_EQ(xread(d0, 0, "/local/domain/4/name", buf), 4);
	CHECK_EQ(xread(d0, 0, "/local/domain/4/domid", buf), 1);
	CHECK_STR(buf, "4");
	CHECK_EQ(xlist(d0, XS_DIRECTORY, 0, "/local/domain/4", buf), 0);
	CHECK_STR(buf, "name,domid,control,data,device,drivers,feature,attr,error");

	struct cl *d4 = cl_new(s, 4), *d5 = cl_new(s, 5);
	CHECK_EQ(xwrite(d4, 0, "data/mine", "1"), 0);
	CHECK_EQ(xsetperms(d4, 0, "data/mine", "n4 r5"), 0);
	CHECK_EQ(xread(d5, 0, "/local/domain/4/data/mine", buf), 1);
	/* Something of domain 4's outside its home, and a grant to 4. */
	CHECK_EQ(xwrite(d0, 0, "/elsewhere/x", "1"), 0);
	CHECK_EQ(xsetperms(d0, 0, "/elsewhere/x", "n4"), 0);
	CHECK_EQ(xwrite(d0, 0, "/granted", "1"), 0);
	CHECK_EQ(xsetperms(d0, 0, "/granted", "n0 r4"), 0);
	CHECK_EQ(xread(d4, 0, "/granted", buf), 1);
	CHECK_EQ(xwatch(d4, XS_WATCH, "data", "t"), 0);

	xs_domain_release(s->xs, 4);
	struct xs_hdr h;
	while (recv_raw(d4, &h, buf) == 1) /* closed, after what was queued */
		;
	CHECK_EQ(xread(d0, 0, "/local/domain/4", buf), -ENOENT);
	CHECK_EQ(xread(d0, 0, "/elsewhere/x", buf), -ENOENT); /* orphans go */
	CHECK_EQ(xread(d0, 0, "/elsewhere", buf), 0);
	CHECK_EQ(xlist(d0, XS_GET_PERMS, 0, "/granted", buf), 0);
	CHECK_STR(buf, "n0,r4"); /* kept, and in force for domain 4's next process */
	struct xs_domain_usage u;
	xs_domain_usage(s->xs, 4, &u);
	CHECK_EQ(u.nodes, 0);
	CHECK_EQ(u.connections, 0);
	CHECK_EQ(u.watches, 0);
	CHECK_EQ(u.introduced, 0);
	cl_free(d4);
	CHECK_EQ(xs_domain_introduce(s->xs, 4), 0);
	d4 = cl_new(s, 4);
	CHECK_EQ(xread(d4, 0, "/granted", buf), 1); /* the same principal */

	/* The wire's INTRODUCE and RELEASE, as a toolstack sends them. */
	CHECK_EQ(xwatch(d0, XS_WATCH, "@introduceDomain", "i"), 0);
	CHECK_EVENT(d0, "@introduceDomain", "i");
	CHECK_EQ(xwatch(d0, XS_WATCH, "@releaseDomain", "r"), 0);
	CHECK_EVENT(d0, "@releaseDomain", "r");
	CHECK_EQ(call(d0, XS_INTRODUCE, 0,
		      "9\0"
		      "123\0"
		      "0",
		      8, NULL, NULL),
		 -EINVAL);
	CHECK_EQ(call(d0, XS_INTRODUCE, 0,
		      "9\0"
		      "123\0"
		      "4",
		      8, NULL, NULL),
		 0);
	CHECK_EVENT(d0, "@introduceDomain", "i");
	CHECK_EQ(call(d0, XS_IS_DOMAIN_INTRODUCED, 0, "9", 2, buf, NULL), 0);
	CHECK_STR(buf, "T");
	CHECK_EQ(xone(d0, XS_RESUME, 0, "9"), 0);
	CHECK_EQ(xone(d0, XS_RESUME, 0, "8"), -ENOENT);
	CHECK_EQ(xone(d0, XS_RELEASE, 0, "9"), 0);
	CHECK_EVENT(d0, "@releaseDomain", "r");
	CHECK_EQ(xone(d0, XS_RELEASE, 0, "9"), -ENOENT);
	CHECK_EQ(xone(d0, XS_RELEASE, 0, "0"), -EINVAL);
	CHECK_EQ(call(d0, XS_IS_DOMAIN_INTRODUCED, 0, "32752", 6, buf, NULL), 0);
	CHECK_STR(buf, "T"); /* DOMID_SELF */
	/* SET_TARGET: 5 acts for 4 (a device model for its guest). */
	CHECK_EQ(xs_domain_introduce(s->xs, 5), 0);
	CHECK_EQ(xread(d5, 0, "/local/domain/4/domid", buf), -EACCES);
	CHECK_EQ(call(d0, XS_SET_TARGET, 0,
		      "5\0"
		      "4",
		      4, NULL, NULL),
		 0);
	CHECK_EQ(xread(d5, 0, "/local/domain/4/domid", buf), 1);
	CHECK_EQ(xwrite(d5, 0, "/local/domain/4/data/dm", "1"), 0);
	CHECK_EQ(call(d0, XS_SET_TARGET, 0,
		      "5\0"
		      "77",
		      5, NULL, NULL),
		 -ENOENT);
	cl_free(d0);
	cl_free(d4);
	cl_free(d5);
	srv_free(s);
}

/* ---- connections --------------------------------------------------------- */

TEST(connection_teardown)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1), *o = cl_new(s, -1);
	CHECK_EQ(xwrite(c, 0, "/k", "1"), 0);
	uint32_t t = xtx_start(c);
	CHECK_EQ(xwrite(c, t, "/k", "2"), 0);
	CHECK_EQ(xwatch(c, XS_WATCH, "/k", "t"), 0);
	struct xs_stats st;
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.transactions, 1);
	CHECK_EQ(st.watches, 1);
	CHECK_EQ(st.connections, 2);
	cl_free(c);
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.transactions, 0);
	CHECK_EQ(st.watches, 0);
	CHECK_EQ(st.connections, 1);
	char buf[16];
	CHECK_EQ(xread(o, 0, "/k", buf), 1);
	CHECK_STR(buf, "1");
	/* A client closing with requests in flight. */
	c = cl_new(s, -1);
	for (int i = 0; i < 50; i++)
		send_raw(c, XS_WRITE, (uint32_t)i, 0, "/flood\0x", 8);
	close(c->fd);
	pump(s);
	free(c);
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.connections, 1);
	cl_free(o);
	srv_free(s);
}

TEST(slow_reader)
{
	struct xs_config cfg = { .max_queued_bytes = 4096 };
	struct srv *s = srv_new(&cfg);
	struct cl *w = cl_new_buf(s, -1, 4096), *c = cl_new(s, -1);
	CHECK_EQ(xwatch(w, XS_WATCH, "/s", "t"), 0);
	CHECK_EVENT(w, "/s", "t");
	/* The watcher reads nothing while 2000 events are due. */
	for (int i = 0; i < 2000; i++)
		CHECK_EQ(xwrite(c, 0, "/s/x", "1"), 0);
	/* Requests it sends meanwhile wait; it gets everything it asked for, in
	 * order. It sends while it can, and reads when it cannot. */
	int sent = 0, replies = 0, events = 0, idle = 0;
	while (idle < 20) {
		struct xs_hdr h = { XS_READ, (uint32_t)(1000 + sent), 0, 5 };
		char req[sizeof(h) + 5];
		memcpy(req, &h, sizeof(h));
		memcpy(req + sizeof(h), "/s/x", 5);
		if (sent < 300) {
			/* Small enough to go whole or not at all. */
			ssize_t k = send(w->fd, req, sizeof(req), MSG_DONTWAIT);
			CHECK(k == (ssize_t)sizeof(req) || (k < 0 && errno == EAGAIN));
			if (k > 0) {
				sent++;
				continue;
			}
		}
		char buf[XS_PAYLOAD_MAX + 1];
		struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
		pump(s);
		if (poll(&pfd, 1, 10) != 1) {
			idle++;
			continue;
		}
		idle = 0;
		CHECK_EQ(recv_raw(w, &h, buf), 1);
		if (h.type == XS_WATCH_EVENT)
			events++;
		else
			CHECK_EQ(h.req_id, (uint32_t)(1000 + replies++));
	}
	CHECK_EQ(replies, 300);
	CHECK(events > 10 && events < 2000); /* some dropped */
	cl_free(w);
	cl_free(c);
	srv_free(s);
}

/* ---- robustness ----------------------------------------------------------- */

/* Deterministic noise: requests built from likely and unlikely pieces,
 * from dom0 and from a domain. Every request gets exactly one reply with
 * its id; the server survives; its counters add up at the end. */
TEST_TIMEOUT(random_requests, 60)
{
	static const char *const words[] = { "/a",
					     "/a/b",
					     "/a/b/c",
					     "data/x",
					     "data",
					     "domid",
					     "/local/domain/1/data/y",
					     "@releaseDomain",
					     "@introduceDomain",
					     "@x",
					     "",
					     "/",
					     "//",
					     "/a/",
					     "a b",
					     "T",
					     "F",
					     "granted-domid",
					     "1",
					     "2",
					     "0",
					     "n0",
					     "r1",
					     "b2",
					     "w1",
					     "n1",
					     "x9",
					     "tok",
					     "99999",
					     "check",
					     "print",
					     "help",
					     "32752",
					     "-1",
					     "0x10" };
	struct xs_config cfg = { .max_nodes_per_domain = 50, .max_transactions_per_domain = 3 };
	struct srv *s = srv_new(&cfg);
	CHECK_EQ(xs_domain_introduce(s->xs, 1), 0);
	struct cl *cl[3] = { cl_new(s, -1), cl_new(s, 1), cl_new(s, -1) };
	uint32_t seed = 12345, txs[3][4] = { { 0 } };
	int succeeded = 0;
	for (int i = 0; i < 20000; i++) {
		seed = seed * 1103515245u + 12345u;
		int who = (int)((seed >> 8) % 3);
		struct cl *c = cl[who];
		uint32_t r = seed >> 4;
		uint32_t type = r % 24;
		if (type == XS_RELEASE || type == XS_CONTROL)
			type = XS_READ; /* these close connections: below */
		char p[XS_PAYLOAD_MAX];
		size_t len = 0;
		int nw = (int)((r >> 5) % 4);
		for (int k = 0; k < nw; k++) {
			seed = seed * 1103515245u + 12345u;
			const char *w = words[(seed >> 9) % (sizeof(words) / sizeof(words[0]))];
			size_t wl = strlen(w) + ((seed >> 3) % 7 != 0); /* mostly with its NUL */
			memcpy(p + len, w, wl);
			len += wl;
		}
		uint32_t tx = ((r >> 9) % 3 == 0) ? txs[who][(r >> 11) % 4] : 0;
		uint32_t req = ++c->req;
		send_raw(c, type, req, tx, p, len);
		for (;;) {
			struct xs_hdr h;
			char buf[XS_PAYLOAD_MAX + 1];
			CHECK_EQ(recv_raw(c, &h, buf), 1);
			if (h.type == XS_WATCH_EVENT)
				continue;
			CHECK_EQ(h.req_id, req);
			CHECK(h.type == type || h.type == XS_ERROR);
			succeeded += h.type == type;
			if (type == XS_TRANSACTION_START && h.type == type)
				txs[who][(r >> 13) % 4] = (uint32_t)atoi(buf);
			break;
		}
	}
	tap_note("%d of 20000 succeeded", succeeded);
	CHECK(succeeded > 2000);
	/* A claim now is refused but keeps the connection; RELEASE works. */
	CHECK_EQ(call(cl[0], XS_CONTROL, 0,
		      "granted-domid\0"
		      "1",
		      16, NULL, NULL),
		 -EACCES);
	CHECK_EQ(xone(cl[0], XS_RELEASE, 0, "1"), 0);
	struct xs_hdr h;
	char buf[XS_PAYLOAD_MAX + 1];
	while (recv_raw(cl[1], &h, buf) == 1)
		;
	for (int i = 0; i < 3; i++)
		cl_free(cl[i]);
	struct xs_stats st;
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.connections, 0);
	CHECK_EQ(st.watches, 0);
	CHECK_EQ(st.transactions, 0);
	CHECK_EQ(s->xs->store.map.n, st.nodes); /* one version each, nothing stale */
	srv_free(s);
}

/* ---- the store ----------------------------------------------------------- */

TEST(store_versions)
{
	struct store st;
	struct xs_perm n0 = { 0, 0 };
	CHECK_EQ(xs_store_init(&st), 0);
	CHECK_EQ(xs_store_reserve(&st, "/a"), 0);
	xs_store_publish(&st, "/a", xs_rec_new(&n0, 1, "1", 1, NULL, 0));
	struct snap s1, s2;
	xs_store_snap_begin(&st, &s1);
	xs_store_publish(&st, "/a", xs_rec_new(&n0, 1, "2", 1, NULL, 0));
	xs_store_snap_begin(&st, &s2);
	xs_store_publish(&st, "/a", xs_rec_tombstone());
	CHECK_EQ(xs_store_get(&st, "/a", s1.seq)->data[0], '1');
	CHECK_EQ(xs_store_get(&st, "/a", s2.seq)->data[0], '2');
	CHECK(xs_store_get(&st, "/a", STORE_HEAD) == NULL);
	CHECK_EQ(xs_store_head_seq(&st, "/a"), 3);
	CHECK_EQ(st.live, 0);
	xs_store_snap_end(&st, &s1);
	CHECK(xs_store_get(&st, "/a", s1.seq) == NULL); /* collected: nobody needs it */
	CHECK_EQ(xs_store_get(&st, "/a", s2.seq)->data[0], '2');
	xs_store_snap_end(&st, &s2);
	CHECK_EQ(st.map.n, 0); /* the tombstone went too */
	CHECK_EQ(xs_store_head_seq(&st, "/a"), 0);
	/* A reserved path never published is dropped at the next collection. */
	CHECK_EQ(xs_store_reserve(&st, "/b"), 0);
	xs_store_snap_begin(&st, &s1);
	xs_store_snap_end(&st, &s1);
	CHECK_EQ(st.map.n, 0);
	xs_store_fini(&st);
}

TEST(versions_freed_after_transactions)
{
	struct srv *s = srv_new(NULL);
	struct cl *c = cl_new(s, -1);
	struct xs_stats st0, st;
	xs_server_stats(s->xs, &st0);
	uint32_t t = xtx_start(c);
	char path[32];
	for (int i = 0; i < 100; i++) {
		snprintf(path, sizeof(path), "/v/%d", i);
		CHECK_EQ(xwrite(c, 0, path, "1"), 0);
		CHECK_EQ(xone(c, XS_RM, 0, path), 0);
	}
	CHECK(s->xs->store.map.n > 100); /* kept for the snapshot */
	CHECK_EQ(xtx_end(c, t, false), 0);
	xs_server_stats(s->xs, &st);
	CHECK_EQ(st.nodes, st0.nodes + 1); /* /v */
	CHECK_EQ(s->xs->store.map.n, st.nodes);
	cl_free(c);
	srv_free(s);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, 0);
}
