/*
 * The protocol spoken by hand, for attacks: unlike common/wire.c, which
 * refuses what a well-behaved peer never sends, this sends anything (up to
 * the kernel's 253 fds a message, lying sizes, any flags) and reports exactly
 * what came back (MSG_TRUNC, MSG_CTRUNC, hang-ups).
 */
#include "raw.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../tap.h"

int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv("GRANTED_SOCKET");
	if (!path || strlen(path) >= sizeof(sa.sun_path))
		tap_fail(__FILE__, __LINE__, "GRANTED_SOCKET is not usable");
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CHECK_OK(fd);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		tap_fail(__FILE__, __LINE__, "connect %s: %s", path, strerror(errno));
	return fd;
}

static int send_flags(int sock, const void *msg, size_t len, const int *fds, unsigned nfds,
		      int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * RAW_FDS_MAX)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds > RAW_FDS_MAX)
		return -EINVAL;
	if (nfds) {
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

int raw_send_bytes(int sock, const void *msg, size_t len, const int *fds, unsigned nfds)
{
	return send_flags(sock, msg, len, fds, nfds, 0);
}

int raw_send_nowait(int sock, const void *msg, size_t len)
{
	return send_flags(sock, msg, len, NULL, 0, MSG_DONTWAIT);
}

int raw_send(int sock, uint16_t op, uint32_t seq, const void *payload, size_t len, const int *fds,
	     unsigned nfds)
{
	static char buf[2 * GR_MSG_MAX];
	struct gr_hdr h = { .op = op, .size = (uint32_t)(sizeof(h) + len), .seq = seq };
	if (sizeof(h) + len > sizeof(buf))
		return -EMSGSIZE;
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), payload, len);
	return raw_send_bytes(sock, buf, sizeof(h) + len, fds, nfds);
}

long raw_recv(int sock, void *buf, size_t cap, int *fds, unsigned *nfds, int *flags, int ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * RAW_FDS_MAX)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	int r;
	*nfds = 0;
	do
		r = poll(&pfd, 1, ms);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned count = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned i = 0; i < count && *nfds < RAW_FDS_MAX; i++)
			memcpy(&fds[(*nfds)++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	if (flags)
		*flags = mh.msg_flags;
	return (long)n;
}

int raw_call(int sock, uint16_t op, const void *payload, size_t len, const int *fds, unsigned nfds,
	     struct raw_reply *rep)
{
	static uint32_t seq;
	static char buf[GR_MSG_MAX];
	uint32_t my = ++seq;
	rep->nfds = rep->nmsgs = 0;
	rep->len = 0;
	if (raw_send(sock, op, my, payload, len, fds, nfds) < 0)
		return RAW_HUNG_UP;
	for (;;) {
		int got[RAW_FDS_MAX];
		unsigned ngot;
		long n = raw_recv(sock, buf, sizeof(buf), got, &ngot, NULL, 5000);
		if (n == -ETIMEDOUT)
			return RAW_NO_REPLY;
		if (n <= 0)
			return RAW_HUNG_UP;
		for (unsigned i = 0; i < ngot; i++) {
			if (rep->nfds < RAW_FDS_MAX)
				rep->fds[rep->nfds++] = got[i];
			else
				close(got[i]);
		}
		if ((size_t)n < sizeof(rep->h))
			tap_fail(__FILE__, __LINE__, "a %ld-byte message from the broker", n);
		memcpy(&rep->h, buf, sizeof(rep->h));
		if (rep->h.seq != my)
			continue; /* an event, not our reply */
		rep->nmsgs++;
		rep->len = (size_t)n - sizeof(rep->h);
		memcpy(rep->payload, buf + sizeof(rep->h), rep->len);
		if (!(rep->h.flags & GR_HDR_MORE))
			return rep->h.result;
	}
}

int raw_hello(uint16_t kind, uint16_t domid, int *sock)
{
	static struct raw_reply rep;
	int fd = raw_connect();
	struct gr_hello hello = { .version = GR_PROTO_VERSION, .kind = kind, .domid = domid };
	bool device = kind == GR_KIND_GNTALLOC || kind == GR_KIND_GNTDEV || kind == GR_KIND_EVTCHN;
	int r = raw_call(fd, GR_OP_HELLO, &hello, sizeof(hello), &fd, device ? 1 : 0, &rep);
	raw_close_fds(rep.fds, rep.nfds);
	if (r < 0) {
		close(fd);
		fd = -1;
	}
	*sock = fd;
	return r;
}

bool raw_closed(int sock, int ms)
{
	double end = tap_now_ms() + ms;
	char buf[256];
	for (;;) {
		int fds[RAW_FDS_MAX];
		unsigned n;
		int left = (int)(end - tap_now_ms());
		long r = raw_recv(sock, buf, sizeof(buf), fds, &n, NULL, left > 0 ? left : 0);
		raw_close_fds(fds, n);
		if (r == 0 || r == -ECONNRESET)
			return true;
		if (r == -ETIMEDOUT || left <= 0)
			return false;
	}
}

void raw_close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static struct raw_reply map_rep;

int raw_map(int s, uint32_t domid, uint32_t ref, uint64_t *index)
{
	struct {
		struct gr_map m;
		struct gr_grant_ref r;
	} req = { { .count = 1, .n = 1 }, { .domid = domid, .ref = ref } };
	int r = raw_call(s, GR_OP_MAP, &req, sizeof(req), NULL, 0, &map_rep);
	raw_close_fds(map_rep.fds, map_rep.nfds);
	if (r == 0) {
		struct gr_map_reply mr;
		CHECK_EQ(map_rep.len, sizeof(mr));
		memcpy(&mr, map_rep.payload, sizeof(mr));
		*index = mr.index;
	}
	return r;
}

int raw_mmap(int s, uint64_t offset, uint32_t prot, int *token, int *mem, uint64_t *off,
	     bool *writable)
{
	struct gr_mmap req = {
		.offset = offset, .len = 4096u, .prot = prot, .flags = GR_MMAP_SHARED
	};
	int r = raw_call(s, GR_OP_MMAP, &req, sizeof(req), NULL, 0, &map_rep);
	if (r < 0) {
		CHECK_EQ(map_rep.nfds, 0);
		return r;
	}
	struct gr_mmap_reply head;
	struct gr_run run;
	CHECK_EQ(map_rep.nmsgs, 1);
	CHECK_EQ(map_rep.len, sizeof(head) + sizeof(run));
	CHECK_EQ(map_rep.nfds, 2);
	memcpy(&head, map_rep.payload, sizeof(head));
	memcpy(&run, map_rep.payload + sizeof(head), sizeof(run));
	CHECK_EQ(run.fd_index, 1);
	*token = map_rep.fds[0];
	*mem = map_rep.fds[1];
	*off = run.offset;
	*writable = head.writable;
	return 0;
}
