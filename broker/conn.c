/*
 * Client connections: reading, validating and dispatching messages, and the
 * queue of replies. Every message is checked whole (size, header, fd count)
 * before any handler runs; a malformed message closes that connection only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evtchn.h"
#include "internal.h"
#include "loop.h"
#include "wire.h"

/* Replies queued for a client that does not read them: past the first
 * limit the broker stops reading its requests (so it cannot make us queue
 * more), past the second it is disconnected. Counted as allocated. */
#define OUT_QUEUE_PAUSE (256u << 10)
#define OUT_QUEUE_MAX	(4u << 20)
/* The fds those replies carry are held open by the broker until they go:
 * bounded per connection and per domain, so that a domain that never reads
 * cannot run the broker out of fds (everyone else's mmap and open). A
 * connection with nothing queued is never paused. */
#define OUT_FDS_PAUSE	     64u
#define OUT_FDS_DOMAIN_PAUSE 512u
#define MSGS_PER_WAKE	     64

static const char *role_name(enum conn_role r)
{
	static const char *const names[] = { "new",   "device", "attached",
					     "admin", "claim",	"control" };
	return names[r];
}

static bool conn_read_one(struct conn *c);
static void uid_release(struct broker *b, uid_t uid);

/* GR_OP_SYNC_FILE: handle everything the file's connection holds, its
 * hang-up included. Any client may ask; it learns nothing by it. */
static int sync_file(struct conn *c, const struct gr_sync_file *req)
{
	/* Draining reuses the receive buffer that holds req. */
	uint64_t id = req->file_id;
	struct file *f;
	list_for_each(f, tmp, &c->b->files, struct file, link)
	{
		if (f->id != id)
			continue;
		struct conn *dc = f->conn;
		if (dc && dc != c) {
			for (int i = 0; i < 1024 && conn_read_one(dc); i++)
				;
		}
		break;
	}
	return 0;
}

static void out_free(struct outmsg *m)
{
	gr_close_fds(m->fds, m->nfds);
	free(m);
}

static struct domain *conn_domain(const struct conn *c)
{
	return c->file ? c->file->dom : NULL;
}

static bool conn_paused(const struct conn *c)
{
	struct domain *d = conn_domain(c);
	return c->out_bytes > OUT_QUEUE_PAUSE || c->out_fds > OUT_FDS_PAUSE ||
	       (c->out_fds > 0 && d && d->queued_fds > OUT_FDS_DOMAIN_PAUSE);
}

/* Takes the first queued reply off the queue and frees it. */
static void out_pop(struct conn *c)
{
	struct outmsg *m = c->out_head;
	struct domain *d = conn_domain(c);
	c->out_head = m->next;
	if (!c->out_head)
		c->out_tail = &c->out_head;
	c->out_bytes -= sizeof(*m) + m->len;
	c->out_fds -= m->nfds;
	if (d)
		d->queued_fds -= m->nfds;
	out_free(m);
}

/* What to wait for: its requests, unless its replies back up. */
static void conn_want(struct conn *c)
{
	uint32_t ev = conn_paused(c) ? 0 : EPOLLIN;
	if (c->out_head)
		ev |= EPOLLOUT;
	loop_modify(c->src, ev);
}

static void out_flush(struct conn *c)
{
	while (c->out_head) {
		struct outmsg *m = c->out_head;
		int r = gr_send(c->fd, m->data, m->len, m->fds, m->nfds);
		if (r == -EAGAIN)
			return;
		if (r < 0) {
			conn_kill(c, "send failed");
			return;
		}
		out_pop(c);
	}
	conn_want(c);
}

static void conn_send(struct conn *c, const struct gr_hdr *hdr, const void *payload, size_t len,
		      const int *fds, unsigned nfds)
{
	if (c->dead)
		return;
	size_t total = sizeof(*hdr) + len;
	char stackbuf[256];
	char *buf = total <= sizeof(stackbuf) ? stackbuf : malloc(total);
	if (!buf) {
		conn_kill(c, "out of memory");
		return;
	}
	memcpy(buf, hdr, sizeof(*hdr));
	if (len)
		memcpy(buf + sizeof(*hdr), payload, len);
	int r = c->out_head ? -EAGAIN : gr_send(c->fd, buf, total, fds, nfds);
	if (r == -EAGAIN) {
		/* The client is not reading right now: queue a copy (with its
		 * own fds), bounded, and wait for EPOLLOUT. */
		struct outmsg *m = malloc(sizeof(*m) + total);
		if (!m || c->out_bytes + sizeof(*m) + total > OUT_QUEUE_MAX) {
			free(m);
			conn_kill(c, "client does not read its replies");
			goto out;
		}
		m->next = NULL;
		m->len = total;
		m->nfds = 0;
		memcpy(m->data, buf, total);
		for (unsigned i = 0; i < nfds; i++) {
			m->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
			if (m->fds[i] < 0) {
				m->nfds = i;
				out_free(m);
				conn_kill(c, "cannot queue fds");
				goto out;
			}
			m->nfds = i + 1;
		}
		*c->out_tail = m;
		c->out_tail = &m->next;
		c->out_bytes += sizeof(*m) + total;
		c->out_fds += m->nfds;
		if (conn_domain(c))
			conn_domain(c)->queued_fds += m->nfds;
		conn_want(c);
	} else if (r < 0) {
		conn_kill(c, "send failed");
	}
out:
	if (buf != stackbuf)
		free(buf);
}

void conn_reply(struct conn *c, const struct gr_hdr *req, int32_t result, const void *payload,
		size_t len, const int *fds, unsigned nfds)
{
	if (req->flags & GR_HDR_NOREPLY) {
		/* The client went on without waiting: it assumed success. */
		if (result < 0)
			conn_kill(c, "an unacknowledged request failed");
		return;
	}
	struct gr_hdr h = { .op = req->op,
			    .size = (uint32_t)(sizeof(h) + len),
			    .seq = req->seq,
			    .result = result };
	conn_send(c, &h, payload, len, fds, nfds);
}

void conn_reply_more(struct conn *c, const struct gr_hdr *req, const void *payload, size_t len,
		     const int *fds, unsigned nfds)
{
	if (req->flags & GR_HDR_NOREPLY)
		return;
	struct gr_hdr h = { .op = req->op,
			    .flags = GR_HDR_MORE,
			    .size = (uint32_t)(sizeof(h) + len),
			    .seq = req->seq };
	conn_send(c, &h, payload, len, fds, nfds);
}

void conn_send_event(struct conn *c, uint16_t op, const void *payload, size_t len, const int *fds,
		     unsigned nfds)
{
	struct gr_hdr h = { .op = op, .size = (uint32_t)(sizeof(h) + len) };
	conn_send(c, &h, payload, len, fds, nfds);
}

int rows_begin(struct row_stream *s, struct conn *c, const struct gr_hdr *h, size_t row_size)
{
	*s = (struct row_stream){ .c = c, .h = h, .row_size = row_size };
	s->per_msg =
		(uint32_t)((GR_MSG_MAX - sizeof(struct gr_hdr) - sizeof(struct gr_list_reply)) /
			   row_size);
	s->buf = calloc(1, GR_MSG_MAX);
	return s->buf ? 0 : -ENOMEM;
}

static size_t rows_len(const struct row_stream *s)
{
	struct gr_list_reply lr = { .n = s->n };
	memcpy(s->buf, &lr, sizeof(lr));
	return sizeof(lr) + s->n * s->row_size;
}

void *rows_next(struct row_stream *s)
{
	if (s->n == s->per_msg) {
		conn_reply_more(s->c, s->h, s->buf, rows_len(s), NULL, 0);
		s->n = 0;
	}
	char *row = s->buf + sizeof(struct gr_list_reply) + s->n++ * s->row_size;
	memset(row, 0, s->row_size);
	return row;
}

int rows_end(struct row_stream *s)
{
	conn_reply(s->c, s->h, 0, s->buf, rows_len(s), NULL, 0);
	free(s->buf);
	return GR_REPLIED;
}

void conn_kill(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	struct broker *b = c->b;
	if (why)
		log_info("connection of pid %d (%s) closed: %s", (int)c->peer.cred.pid,
			 role_name(c->role), why);
	c->dead = true;
	loop_remove(c->src);
	close(c->fd);
	c->fd = -1;
	list_remove(&c->link);
	b->nconns--;
	uid_release(b, c->peer.cred.uid);
	while (c->out_head)
		out_pop(c);
	free(c->pending_refs);
	c->pending_refs = NULL;
	struct file *f = c->file;
	c->file = NULL;
	if (c->role == CONN_DEVICE && f) {
		f->conn = NULL;
		file_put(f);
	} else if (c->role == CONN_ATTACHED) {
		list_remove(&c->file_link);
	} else if (c->role == CONN_CLAIM && c->claim) {
		domain_unclaim(c->claim);
	}
	/* Freed after the dispatch round: a handler up the stack may still
	 * hold it. */
	list_append(&b->dead_conns, &c->link);
}

/* The reply to HELLO and ATTACH: with the evtchn file's shared page, or
 * for gntdev the grant epoch page. */
static int hello_reply(struct conn *c, const struct gr_hdr *h, const struct gr_hello_reply *rep)
{
	struct file *f = c->file;
	if (f && f->kind == GR_KIND_EVTCHN)
		return evtchn_hello_reply(c, h, rep);
	if (f && f->kind == GR_KIND_GNTDEV) {
		conn_reply(c, h, 0, rep, sizeof(*rep), &c->b->epoch_ro_fd, 1);
		return GR_REPLIED;
	}
	conn_reply(c, h, 0, rep, sizeof(*rep), NULL, 0);
	return GR_REPLIED;
}

/* The peer acts as domid from now on, if the policy and the domain's quota
 * of open files allow it. */
static int claim_checked(struct conn *c, uint16_t domid, struct domain **out)
{
	int r = policy_check_domain(c->b, &c->peer, domid);
	if (r == 0)
		r = domain_quota_files(c->b, domid);
	if (r == 0)
		r = domain_claim(c->b, domid, out);
	return r;
}

static int on_hello(struct conn *c, const struct gr_hdr *h, const struct gr_hello *req, int *fds,
		    unsigned nfds)
{
	struct broker *b = c->b;
	int r;
	if (req->version != GR_PROTO_VERSION)
		return -EPROTO;
	switch (req->kind) {
	case GR_KIND_ADMIN:
		if (nfds != 0)
			return -EPROTO;
		r = policy_check_admin(b, &c->peer);
		if (r < 0)
			return r;
		c->role = CONN_ADMIN;
		break;
	case GR_KIND_CONTROL:
		if (nfds != 0)
			return -EPROTO;
		c->role = CONN_CONTROL;
		break;
	case GR_KIND_CLAIM:
		if (nfds != 0)
			return -EPROTO;
		r = claim_checked(c, req->domid, &c->claim);
		if (r < 0)
			return r;
		c->role = CONN_CLAIM;
		break;
	case GR_KIND_GNTALLOC:
	case GR_KIND_GNTDEV:
	case GR_KIND_EVTCHN: {
		/* The client's own end of this socket: what an ATTACH must
		 * later present to act on this file. */
		struct stat st;
		if (nfds != 1 || fstat(fds[0], &st) < 0 || !S_ISSOCK(st.st_mode))
			return -EPROTO;
		struct domain *d;
		r = claim_checked(c, req->domid, &d);
		if (r < 0)
			return r;
		struct file *f;
		r = file_create(b, req->kind, d, &f);
		if (r < 0) {
			domain_unclaim(d);
			return r;
		}
		if (req->kind == GR_KIND_EVTCHN) {
			r = evtchn_file_init(f);
			if (r < 0) {
				file_put(f);
				return r;
			}
		}
		f->conn = c;
		f->client_ino = st.st_ino;
		c->file = f;
		c->role = CONN_DEVICE;
		break;
	}
	default:
		return -EPROTO;
	}
	struct gr_hello_reply rep = { .version = GR_PROTO_VERSION,
				      .kind = req->kind,
				      .domid = req->domid,
				      .file_id = c->file ? c->file->id : 0,
				      .map_limit = b->cfg.gntdev_map_limit };
	log_debug("pid %d connected as %s of domain %u", (int)c->peer.cred.pid, role_name(c->role),
		  req->domid);
	return hello_reply(c, h, &rep);
}

static int on_attach(struct conn *c, const struct gr_hdr *h, const struct gr_attach *req, int *fds,
		     unsigned nfds)
{
	struct stat st;
	if (req->version != GR_PROTO_VERSION || nfds != 1)
		return -EPROTO;
	if (fstat(fds[0], &st) < 0 || !S_ISSOCK(st.st_mode))
		return -ENODEV;
	struct file *f;
	list_for_each(f, tmp, &c->b->files, struct file, link)
	{
		if (f->conn && f->client_ino == st.st_ino) {
			c->role = CONN_ATTACHED;
			c->file = f;
			list_append(&f->attached, &c->file_link);
			struct gr_hello_reply rep = { .version = GR_PROTO_VERSION,
						      .kind = (uint16_t)f->kind,
						      .domid = f->dom->id,
						      .file_id = f->id,
						      .map_limit = c->b->cfg.gntdev_map_limit };
			return hello_reply(c, h, &rep);
		}
	}
	return -ENODEV;
}

static int on_file_request(struct conn *c, const struct gr_hdr *h, const void *p, size_t len,
			   int *fds, unsigned nfds)
{
	struct file *f = c->file;
	if (!f)
		return -EPROTO;
	if (f->kind == GR_KIND_EVTCHN)
		return evtchn_handle(c, f, h, p, len, fds, nfds);
	if (nfds != 0)
		return -EPROTO;
	switch (h->op) {
	case GR_OP_BARRIER:
		return len == 0 ? 0 : -EPROTO;
	case GR_OP_MMAP: {
		const struct gr_mmap *m = p;
		if (len != sizeof(*m))
			return -EPROTO;
		/* The client checks these too; we do not trust it to. */
		if (m->len == 0 || m->len % XEN_PAGE_SIZE || m->offset % XEN_PAGE_SIZE ||
		    m->len / XEN_PAGE_SIZE > UINT32_MAX)
			return -EINVAL;
		return f->kind == GR_KIND_GNTALLOC ? gntalloc_mmap(c, f, h, m)
						   : gntdev_mmap(c, f, h, m);
	}
	case GR_OP_MUNMAP:
		if (len != sizeof(struct gr_munmap))
			return -EPROTO;
		return mapping_munmap(c, f, h, p);
	default:
		if (f->kind == GR_KIND_GNTALLOC)
			return gntalloc_handle(c, f, h, p, len);
		return gntdev_handle(c, f, h, p, len);
	}
}

static void dispatch(struct conn *c, const struct gr_hdr *h, const void *p, size_t len, int *fds,
		     unsigned nfds)
{
	int r;
	switch (c->role) {
	case CONN_NEW:
		if (h->op == GR_OP_HELLO && len == sizeof(struct gr_hello))
			r = on_hello(c, h, p, fds, nfds);
		else if (h->op == GR_OP_ATTACH && len == sizeof(struct gr_attach))
			r = on_attach(c, h, p, fds, nfds);
		else
			r = -EPROTO;
		if (r < 0 && r != -EPROTO) {
			/* A refused hello ends the connection after the answer. */
			conn_reply(c, h, r, NULL, 0, NULL, 0);
			conn_kill(c, NULL);
			return;
		}
		break;
	case CONN_DEVICE:
	case CONN_ATTACHED:
		r = on_file_request(c, h, p, len, fds, nfds);
		break;
	case CONN_ADMIN:
		r = nfds == 0 ? admin_handle(c, h, p, len) : -EPROTO;
		break;
	case CONN_CONTROL:
		if (h->op == GR_OP_SYNC_FILE && len == sizeof(struct gr_sync_file) && nfds == 0)
			r = sync_file(c, p);
		else
			r = -EPROTO;
		break;
	default:
		r = -EPROTO;
		break;
	}
	if (r == -EPROTO) {
		log_warn("pid %d sent a malformed %s message (op %u, %zu bytes, %u fds)",
			 (int)c->peer.cred.pid, role_name(c->role), h->op, len, nfds);
		conn_kill(c, "protocol error");
		return;
	}
	if (r != GR_REPLIED)
		conn_reply(c, h, r, NULL, 0, NULL, 0);
}

/* Reads and handles one message. Returns false when there is nothing more
 * to read now (or the connection is gone). */
static bool conn_read_one(struct conn *c)
{
	static _Alignas(8) char buf[GR_MSG_MAX];
	int fds[GR_MSG_FDS_MAX];
	unsigned nfds = 0;
	ssize_t n = gr_recv(c->fd, buf, sizeof(buf), fds, GR_MSG_FDS_MAX, &nfds, MSG_DONTWAIT);
	if (n == -EAGAIN)
		return false;
	if (n == 0) {
		/* End of stream, or an empty message (SEQPACKET allows them),
		 * which no client sends: either way it ends, and whatever fds
		 * came with it are closed, not kept. */
		gr_close_fds(fds, nfds);
		conn_kill(c, c->role == CONN_DEVICE ? NULL : "closed by the client");
		return false;
	}
	if (n < 0) {
		conn_kill(c, n == -EMSGSIZE ? "oversized message" : "receive failed");
		return false;
	}
	struct gr_hdr h;
	if ((size_t)n < sizeof(h)) {
		gr_close_fds(fds, nfds);
		conn_kill(c, "short message");
		return false;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.size != (size_t)n || h.result != 0 || (h.flags & ~GR_HDR_NOREPLY)) {
		gr_close_fds(fds, nfds);
		conn_kill(c, "bad message header");
		return false;
	}
	dispatch(c, &h, buf + sizeof(h), (size_t)n - sizeof(h), fds, nfds);
	/* Handlers borrow fds; whatever they did not take is closed here. */
	gr_close_fds(fds, nfds);
	return !c->dead;
}

static void conn_event(void *data, uint32_t events)
{
	struct conn *c = data;
	if (events & EPOLLOUT)
		out_flush(c);
	if (c->dead)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (int i = 0; i < MSGS_PER_WAKE && !conn_paused(c); i++)
			if (!conn_read_one(c))
				break;
	}
}

/* Connections per user: the one resource anyone who can reach the socket
 * can spend. Returns the slot, or NULL when the user is at the limit. */
static struct uid_count *uid_take(struct broker *b, uid_t uid)
{
	for (unsigned i = 0; i < b->nuids; i++) {
		if (b->uids[i].uid != uid)
			continue;
		if (b->uids[i].conns >= b->cfg.max_connections)
			return NULL;
		b->uids[i].conns++;
		return &b->uids[i];
	}
	struct uid_count *v = realloc(b->uids, (b->nuids + 1) * sizeof(*v));
	if (!v)
		return NULL;
	b->uids = v;
	b->uids[b->nuids] = (struct uid_count){ .uid = uid, .conns = 1 };
	return &b->uids[b->nuids++];
}

static void uid_release(struct broker *b, uid_t uid)
{
	for (unsigned i = 0; i < b->nuids; i++) {
		if (b->uids[i].uid == uid && --b->uids[i].conns == 0) {
			b->uids[i] = b->uids[--b->nuids];
			return;
		}
	}
}

int broker_add_client(struct broker *b, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	/* A client that stops reading must never block the broker. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r = -errno;
		close(fd);
		free(c);
		return r;
	}
	socklen_t len = sizeof(c->peer.cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->peer.cred, &len) < 0) {
		int r = -errno;
		close(fd);
		free(c);
		return r;
	}
	/* Supplementary groups, for group rules of the policy. */
	gid_t groups[64];
	socklen_t glen = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0 && glen > 0) {
		c->peer.groups = malloc(glen);
		if (c->peer.groups) {
			memcpy(c->peer.groups, groups, glen);
			c->peer.ngroups = glen / sizeof(gid_t);
		}
	}
	if (!uid_take(b, c->peer.cred.uid)) {
		log_warn("refused a connection of pid %d: uid %u has %u connections",
			 (int)c->peer.cred.pid, c->peer.cred.uid, b->cfg.max_connections);
		close(fd);
		free(c->peer.groups);
		free(c);
		return -EMFILE;
	}
	c->b = b;
	c->fd = fd;
	c->out_tail = &c->out_head;
	list_init(&c->file_link);
	c->src = loop_add(b->loop, fd, EPOLLIN, conn_event, c);
	if (!c->src) {
		uid_release(b, c->peer.cred.uid);
		close(fd);
		free(c->peer.groups);
		free(c);
		return -ENOMEM;
	}
	list_append(&b->conns, &c->link);
	b->nconns++;
	return 0;
}
