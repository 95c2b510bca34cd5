/*
 * Connections: reading requests off a stream socket, queueing replies and
 * events, writing them out without ever blocking.
 *
 * A peer that does not read its replies gets its requests left unread once
 * max_queued_bytes are queued for it (and its watch events dropped), so one
 * stuck client costs bounded memory. An oversized request is skipped and
 * answered E2BIG; the stream stays in step.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "loop.h"

#define IN_BUF	       (2 * (sizeof(struct xs_hdr) + XS_PAYLOAD_MAX))
#define READS_PER_WAKE 16
#define IOV_MAX_BATCH  64

static void conn_ready(void *data, uint32_t events);

struct actor xs_conn_actor(const struct conn *c)
{
	struct actor a = { .domid = c->domid, .priv = c->domid == 0 };
	const struct domain *d = xs_domain_find(c->s, c->domid);
	if (d && d->has_target) {
		a.has_target = true;
		a.target = d->target;
	}
	return a;
}

const char *xs_conn_home(const struct conn *c, char *buf, size_t size)
{
	snprintf(buf, size, "/local/domain/%u", c->domid);
	return buf;
}

int xs_conn_create(struct xs_server *s, int fd)
{
	if (s->nconns >= s->cfg.max_connections) {
		close(fd);
		return -EMFILE;
	}
	struct conn *c = calloc(1, sizeof(*c));
	char *in = malloc(IN_BUF);
	struct domain *d0 = xs_domain_get(s, 0);
	int flags = fcntl(fd, F_GETFL);
	if (!c || !in || !d0 || flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		int e = (!c || !in || !d0) ? -ENOMEM : -errno;
		free(c);
		free(in);
		close(fd);
		return e;
	}
	*c = (struct conn){ .s = s,
			    .serial = ++s->next_serial,
			    .fd = fd,
			    .in = in,
			    .fresh = true,
			    .next_txid = 1 };
	c->out_tail = &c->out_head;
	list_init(&c->watches);
	list_init(&c->txs);
	list_init(&c->flush_link);
	socklen_t len = sizeof(c->peer);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->peer, &len) < 0)
		c->peer = (struct ucred){ .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	c->src = loop_add(s->loop, fd, EPOLLIN, conn_ready, c);
	if (!c->src) {
		int e = -errno;
		free(in);
		free(c);
		close(fd);
		return e;
	}
	list_append(&s->conns, &c->link);
	s->nconns++;
	d0->conns++;
	log_debug("xenstore: connection %u from pid %d", c->serial, (int)c->peer.pid);
	return 0;
}

static void set_events(struct conn *c)
{
	uint32_t ev = 0;
	if (!c->paused && !c->closing)
		ev |= EPOLLIN;
	if (c->out_head)
		ev |= EPOLLOUT;
	loop_modify(c->src, ev);
}

void xs_conn_kill(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	struct xs_server *s = c->s;
	log_debug("xenstore: connection %u (domain %u) closed: %s", c->serial, c->domid, why);
	c->dead = true;
	loop_remove(c->src);
	c->src = NULL;
	close(c->fd);
	c->fd = -1;
	xs_watch_remove_all(c);
	struct tx *t;
	list_for_each(t, tmp, &c->txs, struct tx, link)
	{
		xs_tx_free(t);
	}
	struct domain *d = xs_domain_find(s, c->domid);
	if (d && d->conns)
		d->conns--;
	s->nconns--;
	if (c->on_flushq) {
		list_remove(&c->flush_link);
		c->on_flushq = false;
	}
	list_remove(&c->link);
	list_append(&s->zombies, &c->link);
}

void xs_conn_destroy(struct conn *c)
{
	if (!c->dead)
		xs_conn_kill(c, "server destroyed");
	while (c->out_head) {
		struct outmsg *m = c->out_head;
		c->out_head = m->next;
		free(m);
	}
	list_remove(&c->link);
	free(c->in);
	free(c);
}

static void enqueue(struct conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *p1,
		    size_t l1, const void *p2, size_t l2, bool event)
{
	size_t len = l1 + l2;
	struct outmsg *m = malloc(sizeof(*m) + sizeof(struct xs_hdr) + len);
	if (!m) {
		/* The peer would wait for this reply forever. */
		xs_conn_kill(c, "out of memory");
		return;
	}
	struct xs_hdr h = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = (uint32_t)len };
	*m = (struct outmsg){ .len = sizeof(h) + len, .event = event };
	memcpy(m->data, &h, sizeof(h));
	if (l1)
		memcpy(m->data + sizeof(h), p1, l1);
	if (l2)
		memcpy(m->data + sizeof(h) + l1, p2, l2);
	*c->out_tail = m;
	c->out_tail = &m->next;
	c->out_bytes += m->len;
	xs_server_want_flush(c->s, c);
}

void xs_conn_reply(struct conn *c, uint32_t type, const struct xs_hdr *req, const void *p1,
		   size_t l1, const void *p2, size_t l2)
{
	if (c->dead)
		return;
	enqueue(c, type, req->req_id, req->tx_id, p1, l1, p2, l2, false);
}

void xs_conn_event(struct conn *c, const char *path, const char *token)
{
	size_t pl = strlen(path) + 1, tl = strlen(token) + 1;
	if (c->dead || c->closing || pl + tl > XS_PAYLOAD_MAX)
		return;
	if (c->out_bytes > c->s->cfg.max_queued_bytes) {
		if (!c->dropping)
			log_warn("xenstore: connection %u (domain %u) does not read: dropping "
				 "watch events",
				 c->serial, c->domid);
		c->dropping = true;
		return;
	}
	enqueue(c, XS_WATCH_EVENT, 0, 0, path, pl, token, tl, true);
}

static void process_input(struct conn *c);

void xs_conn_flush(struct conn *c)
{
	while (!c->dead && c->out_head) {
		struct iovec iov[IOV_MAX_BATCH];
		int n = 0;
		for (struct outmsg *m = c->out_head; m && n < IOV_MAX_BATCH; m = m->next, n++)
			iov[n] = (struct iovec){ .iov_base = m->data + m->off,
						 .iov_len = m->len - m->off };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t k = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (k < 0) {
			xs_conn_kill(c, strerror(errno));
			return;
		}
		size_t done = (size_t)k;
		while (done && c->out_head) {
			struct outmsg *m = c->out_head;
			size_t left = m->len - m->off;
			if (done < left) {
				m->off += done;
				break;
			}
			done -= left;
			c->out_bytes -= m->len;
			c->out_head = m->next;
			if (!c->out_head)
				c->out_tail = &c->out_head;
			free(m);
		}
	}
	if (!c->out_head)
		c->dropping = false;
	if (c->dead)
		return;
	if (!c->out_head && c->closing) {
		xs_conn_kill(c, "refused");
		return;
	}
	if (c->paused && c->out_bytes <= c->s->cfg.max_queued_bytes / 2) {
		c->paused = false;
		/* Requests read before pausing wait in the buffer. */
		process_input(c);
	}
	if (!c->dead)
		set_events(c);
}

/* Handles the complete requests in the input buffer. */
static void process_input(struct conn *c)
{
	size_t pos = 0;
	while (!c->dead && !c->paused && !c->closing) {
		if (c->discard) {
			size_t k = c->in_len - pos < c->discard ? c->in_len - pos : c->discard;
			pos += k;
			c->discard -= k;
			if (c->discard)
				break;
			continue;
		}
		if (c->in_len - pos < sizeof(struct xs_hdr))
			break;
		struct xs_hdr h;
		memcpy(&h, c->in + pos, sizeof(h));
		if (h.len > XS_PAYLOAD_MAX) {
			log_warn("xenstore: connection %u sent a %u-byte request", c->serial,
				 h.len);
			pos += sizeof(h);
			c->discard = h.len;
			static const char e2big[] = "E2BIG";
			xs_conn_reply(c, XS_ERROR, &h, e2big, sizeof(e2big), NULL, 0);
			continue;
		}
		if (c->in_len - pos < sizeof(h) + h.len)
			break;
		char payload[XS_PAYLOAD_MAX + 1];
		memcpy(payload, c->in + pos + sizeof(h), h.len);
		payload[h.len] = '\0';
		pos += sizeof(h) + h.len;
		xs_proto_handle(c, &h, payload);
		if (!c->dead && c->out_bytes > c->s->cfg.max_queued_bytes)
			c->paused = true;
	}
	if (c->dead)
		return;
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
	set_events(c);
}

static void read_input(struct conn *c)
{
	for (int i = 0;
	     i < READS_PER_WAKE && !c->dead && !c->paused && !c->closing && c->in_len < IN_BUF;
	     i++) {
		ssize_t k = read(c->fd, c->in + c->in_len, IN_BUF - c->in_len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (k <= 0) {
			xs_conn_kill(c, k == 0 ? "end of file" : strerror(errno));
			return;
		}
		c->in_len += (size_t)k;
		process_input(c);
	}
}

static void conn_ready(void *data, uint32_t events)
{
	struct conn *c = data;
	struct xs_server *s = c->s;
	xs_server_enter(s);
	if (events & EPOLLOUT)
		xs_conn_flush(c);
	if (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		if (!c->paused && !c->closing)
			read_input(c);
		else if (events & (EPOLLHUP | EPOLLERR))
			xs_conn_kill(c, "hung up");
	}
	xs_server_leave(s);
}
