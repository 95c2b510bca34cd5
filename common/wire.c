#include "wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol.h"

int gr_send(int sock, const void *msg, size_t len, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * GR_MSG_FDS_MAX)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > GR_MSG_FDS_MAX)
		return -EINVAL;
	if (nfds > 0) {
		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n >= 0)
			return (size_t)n == len ? 0 : -EMSGSIZE;
		if (errno != EINTR)
			return -errno;
	}
}

void gr_close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
	}
}

ssize_t gr_recv(int sock, void *buf, size_t cap, int *fds, unsigned max_fds, unsigned *nfds,
		int flags)
{
	return gr_recv_lossy(sock, buf, cap, fds, max_fds, nfds, flags, NULL);
}

ssize_t gr_recv_lossy(int sock, void *buf, size_t cap, int *fds, unsigned max_fds, unsigned *nfds,
		      int flags, bool *lost_fds)
{
	/* Room for more fds than we accept, so that an oversized set is seen
	 * (and closed) rather than silently truncated by the kernel. */
	union {
		char buf[CMSG_SPACE(sizeof(int) * 253)];
		struct cmsghdr align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	ssize_t n;
	int err = 0;

	*nfds = 0;
	do
		n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(cm);
		for (unsigned i = 0; i < count; i++) {
			int fd;
			memcpy(&fd, in + i, sizeof(fd));
			if (*nfds < max_fds)
				fds[(*nfds)++] = fd;
			else {
				close(fd);
				err = -EMSGSIZE;
			}
		}
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		err = -EMSGSIZE;
	if (lost_fds) {
		*lost_fds = false;
		if (err && !(mh.msg_flags & MSG_TRUNC)) {
			/* Whole data, lost fds: hand the message over anyway. */
			gr_close_fds(fds, *nfds);
			*nfds = 0;
			*lost_fds = true;
			return n;
		}
	}
	if (err) {
		gr_close_fds(fds, *nfds);
		*nfds = 0;
		return err;
	}
	return n;
}
