/*
 * Requests and replies. One request at a time per handle (the handle's
 * lock), on the channel of the calling process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "paths.h"
#include "wire.h"

static uint64_t forkgen_value;
static pid_t pid_value;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
	forkgen_value++;
	pid_value = 0;
}

GR_EXPORT pid_t granted_getpid(void)
{
	/* getpid() is a real syscall each time; the answer changes only
	 * across fork, which resets this. */
	pid_t p = __atomic_load_n(&pid_value, __ATOMIC_RELAXED);
	if (!p) {
		p = getpid();
		__atomic_store_n(&pid_value, p, __ATOMIC_RELAXED);
	}
	return p;
}

static void init(void)
{
	pthread_atfork(NULL, NULL, on_fork_child);
}

void gr_init_once(void)
{
	pthread_once(&init_once, init);
}

uint64_t gr_forkgen(void)
{
	return __atomic_load_n(&forkgen_value, __ATOMIC_RELAXED);
}

GR_EXPORT int granted_socket_path(char *buf, size_t len)
{
	return gr_socket_path(buf, len);
}

GR_EXPORT int granted_xenstore_path(char *buf, size_t len)
{
	return gr_xenstore_path(buf, len);
}

int gr_connect(int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r = gr_socket_path(sa.sun_path, sizeof(sa.sun_path));
	if (r < 0)
		return r;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		close(fd);
		gr_debug("no broker at %s: %s", sa.sun_path, strerror(-r));
		/* No broker is, for the caller, no device. */
		return r == -ECONNREFUSED || r == -ENOENT || r == -ENOTDIR ? -ENOENT : r;
	}
	*out = fd;
	return 0;
}

static int send_on(struct chan *ch, char *buf, uint16_t op, uint16_t flags, const void *req,
		   size_t len, const int *fds, unsigned nfds, uint32_t *seq)
{
	struct gr_hdr h = { .op = op, .flags = flags, .size = (uint32_t)(sizeof(h) + len) };
	if (++ch->seq == 0)
		ch->seq = 1;
	h.seq = ch->seq;
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), req, len);
	int r = gr_send(ch->fd, buf, sizeof(h) + len, fds, nfds);
	if (r < 0) {
		gr_debug("send op %u: %s", op, strerror(-r));
		return r == -EMSGSIZE ? r : -EIO;
	}
	*seq = h.seq;
	return 0;
}

static int wait_on(struct chan *ch, char *buf, uint16_t op, uint32_t seq, reply_fn fn, void *ctx)
{
	bool lost_any = false;
	for (;;) {
		int rfds[GR_MSG_FDS_MAX];
		unsigned nr = 0;
		bool lost = false;
		ssize_t n =
			gr_recv_lossy(ch->fd, buf, GR_MSG_MAX, rfds, GR_MSG_FDS_MAX, &nr, 0, &lost);
		if (n <= 0) {
			gr_debug("op %u: the broker hung up (%s)", op,
				 n == 0 ? "end of stream" : strerror((int)-n));
			return -EIO;
		}
		struct gr_hdr rh;
		if ((size_t)n < sizeof(rh)) {
			gr_close_fds(rfds, nr);
			return -EIO;
		}
		memcpy(&rh, buf, sizeof(rh));
		if (rh.size != (size_t)n || rh.seq != seq) {
			/* Not ours (an event, or a stale reply): skip it. */
			gr_close_fds(rfds, nr);
			continue;
		}
		int fr = 0;
		/* Out of fds here: the memory (and a mapping's token) never
		 * arrived, and the broker sees the token go. Fail this request,
		 * read the rest of its reply. */
		lost_any |= lost;
		if (fn && !lost_any)
			fr = fn(ctx, &rh, buf + sizeof(rh), (size_t)n - sizeof(rh), rfds, nr);
		gr_close_fds(rfds, nr);
		if (!(rh.flags & GR_HDR_MORE)) {
			gr_debug("op %u -> %d%s", op, rh.result,
				 lost_any ? " (fds lost: ENOMEM)" : "");
			if (lost_any && rh.result >= 0)
				return -ENOMEM;
			return rh.result < 0 ? rh.result : fr < 0 ? fr : rh.result;
		}
		if (fr < 0) {
			/* Keep reading to the end so the channel stays in step. */
			continue;
		}
	}
}

int chan_call_fd(struct chan *ch, char *buf, uint16_t op, const void *req, size_t len,
		 const int *fds, unsigned nfds, reply_fn fn, void *ctx)
{
	uint32_t seq;
	int r = send_on(ch, buf, op, 0, req, len, fds, nfds, &seq);
	if (r < 0)
		return r;
	return wait_on(ch, buf, op, seq, fn, ctx);
}

/* Makes sure this process has its own channel for dev. */
static int chan_ensure(struct granted_dev *dev)
{
	uint64_t gen = gr_forkgen();
	if (dev->chan.fd >= 0 && dev->chan.forkgen == gen)
		return 0;
	/* A fork child: the parent's channel is the parent's. */
	if (dev->chan.fd >= 0 && dev->chan.fd != dev->conn_fd)
		close(dev->chan.fd);
	dev->chan.fd = -1;
	int fd, r = gr_connect(&fd);
	if (r < 0)
		return r == -ENOENT ? -EIO : r;
	struct chan ch = { .fd = fd, .forkgen = gen };
	struct gr_attach at = { .version = GR_PROTO_VERSION };
	r = chan_call_fd(&ch, dev->buf, GR_OP_ATTACH, &at, sizeof(at), &dev->conn_fd, 1, NULL,
			 NULL);
	if (r < 0) {
		close(fd);
		return r == -ENODEV ? -EIO : r;
	}
	gr_debug("attached to file of domain %u", dev->domid);
	dev->chan = ch;
	return 0;
}

int chan_queue(struct granted_dev *dev, uint16_t op, uint16_t flags, const void *req, size_t len)
{
	struct outbox *ob = &dev->ob;
	size_t total = sizeof(struct gr_hdr) + len;
	if (!ob->buf) {
		ob->buf = malloc(GR_MSG_MAX);
		if (!ob->buf)
			return -ENOMEM;
	}
	if (ob->n == OUTBOX_MSGS || ob->used + total > GR_MSG_MAX) {
		int r = chan_flush(dev);
		if (r < 0)
			return r;
	}
	struct gr_hdr h = { .op = op, .flags = flags, .size = (uint32_t)total };
	if (++dev->chan.seq == 0)
		dev->chan.seq = 1;
	h.seq = dev->chan.seq;
	memcpy(ob->buf + ob->used, &h, sizeof(h));
	if (len)
		memcpy(ob->buf + ob->used + sizeof(h), req, len);
	ob->off[ob->n] = (uint32_t)ob->used;
	ob->len[ob->n] = (uint32_t)total;
	ob->n++;
	ob->used += total;
	return 0;
}

/* Sends the outbox and, if given, one more message, in one sendmmsg. */
static int flush_with(struct granted_dev *dev, const char *extra, size_t extra_len)
{
	struct outbox *ob = &dev->ob;
	struct mmsghdr mm[OUTBOX_MSGS + 1];
	struct iovec iov[OUTBOX_MSGS + 1];
	unsigned n = 0;
	for (unsigned i = 0; i < ob->n; i++, n++) {
		iov[n] = (struct iovec){ ob->buf + ob->off[i], ob->len[i] };
		mm[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[n], .msg_iovlen = 1 } };
	}
	if (extra) {
		iov[n] = (struct iovec){ (void *)extra, extra_len };
		mm[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[n], .msg_iovlen = 1 } };
		n++;
	}
	for (unsigned done = 0; done < n;) {
		int r = sendmmsg(dev->chan.fd, mm + done, n - done, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			gr_debug("flush: %s", strerror(errno));
			return -EIO;
		}
		done += (unsigned)r;
	}
	ob->n = 0;
	ob->used = 0;
	return 0;
}

int chan_flush(struct granted_dev *dev)
{
	if (dev->ob.n == 0)
		return 0;
	int r = chan_ensure(dev);
	return r < 0 ? r : flush_with(dev, NULL, 0);
}

int chan_send(struct granted_dev *dev, uint16_t op, uint16_t flags, const void *req, size_t len,
	      uint32_t *seq)
{
	int r = chan_ensure(dev);
	if (r < 0)
		return r;
	if (dev->ob.n == 0)
		return send_on(&dev->chan, dev->buf, op, flags, req, len, NULL, 0, seq);
	/* Whatever is queued goes first, in the same syscall. */
	struct gr_hdr h = { .op = op, .flags = flags, .size = (uint32_t)(sizeof(h) + len) };
	if (++dev->chan.seq == 0)
		dev->chan.seq = 1;
	h.seq = dev->chan.seq;
	memcpy(dev->buf, &h, sizeof(h));
	if (len)
		memcpy(dev->buf + sizeof(h), req, len);
	r = flush_with(dev, dev->buf, sizeof(h) + len);
	if (r == 0)
		*seq = h.seq;
	return r;
}

int chan_call(struct granted_dev *dev, uint16_t op, const void *req, size_t len, reply_fn fn,
	      void *ctx)
{
	uint32_t seq;
	int r = chan_send(dev, op, 0, req, len, &seq);
	if (r < 0)
		return r;
	return wait_on(&dev->chan, dev->buf, op, seq, fn, ctx);
}

int chan_wait(struct granted_dev *dev, uint16_t op, uint32_t seq, reply_fn fn, void *ctx)
{
	return wait_on(&dev->chan, dev->buf, op, seq, fn, ctx);
}
