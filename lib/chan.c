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
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
	forkgen_value++;
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

int gr_connect(int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
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
	struct gr_hdr h = {.op = op, .flags = flags, .size = (uint32_t)(sizeof(h) + len)};
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
	for (;;) {
		int rfds[GR_MSG_FDS_MAX];
		unsigned nr = 0;
		ssize_t n = gr_recv(ch->fd, buf, GR_MSG_MAX, rfds, GR_MSG_FDS_MAX, &nr, 0);
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
		if (fn)
			fr = fn(ctx, &rh, buf + sizeof(rh), (size_t)n - sizeof(rh), rfds, nr);
		gr_close_fds(rfds, nr);
		if (!(rh.flags & GR_HDR_MORE)) {
			gr_debug("op %u -> %d", op, rh.result);
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
	struct chan ch = {.fd = fd, .forkgen = gen};
	struct gr_attach at = {.version = GR_PROTO_VERSION};
	r = chan_call_fd(&ch, dev->buf, GR_OP_ATTACH, &at, sizeof(at), &dev->conn_fd, 1, NULL, NULL);
	if (r < 0) {
		close(fd);
		return r == -ENODEV ? -EIO : r;
	}
	gr_debug("attached to file of domain %u", dev->domid);
	dev->chan = ch;
	return 0;
}

int chan_call(struct granted_dev *dev, uint16_t op, const void *req, size_t len, reply_fn fn,
	      void *ctx)
{
	int r = chan_ensure(dev);
	if (r < 0)
		return r;
	return chan_call_fd(&dev->chan, dev->buf, op, req, len, NULL, 0, fn, ctx);
}

int chan_send(struct granted_dev *dev, uint16_t op, uint16_t flags, const void *req, size_t len,
	      uint32_t *seq)
{
	int r = chan_ensure(dev);
	if (r < 0)
		return r;
	return send_on(&dev->chan, dev->buf, op, flags, req, len, NULL, 0, seq);
}

int chan_wait(struct granted_dev *dev, uint16_t op, uint32_t seq, reply_fn fn, void *ctx)
{
	return wait_on(&dev->chan, dev->buf, op, seq, fn, ctx);
}
