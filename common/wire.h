/*
 * Sending and receiving one protocol message with its file descriptors.
 * Both sides of the protocol use these; neither prints anything.
 */
#ifndef GRANTED_WIRE_H
#define GRANTED_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Sends one message. The fds are duplicated into the message by the kernel;
 * the caller keeps ownership of its own copies. MSG_NOSIGNAL: a dead peer is
 * -EPIPE, never SIGPIPE. Returns 0 or a negative errno.
 */
int gr_send(int sock, const void *msg, size_t len, const int *fds, unsigned nfds);

/*
 * Receives one message into buf. Every received fd is CLOEXEC from birth and
 * is stored in fds[] (the caller owns them); *nfds says how many. A message
 * larger than cap, or with more than max_fds fds, is refused whole: every fd
 * it carried is closed and -EMSGSIZE returned. Returns the message length,
 * 0 at end of stream, or a negative errno (-EAGAIN with MSG_DONTWAIT).
 */
ssize_t gr_recv(int sock, void *buf, size_t cap, int *fds, unsigned max_fds, unsigned *nfds,
		int flags);

/*
 * The same, except that a message whose fds the kernel could not all
 * install here (MSG_CTRUNC: this process is out of fds) is still returned,
 * with the fds that did arrive closed and *lost_fds set: the caller can
 * fail that one request and stay in step with the stream.
 */
ssize_t gr_recv_lossy(int sock, void *buf, size_t cap, int *fds, unsigned max_fds, unsigned *nfds,
		      int flags, bool *lost_fds);

/* Closes fds[0..n) that are >= 0. */
void gr_close_fds(int *fds, unsigned n);

#endif
