/*
 * A hostile client: speaks the broker's protocol (common/protocol.h) by hand,
 * without libgranted, so it can send what no correct client sends and keep
 * what the broker hands it.
 */
#ifndef SECURITY_RAW_H
#define SECURITY_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/protocol.h"

#define RAW_FDS_MAX 253 /* SCM_MAX_FD */

/* Everything a reply brought: the last message's header and payload, and
 * every fd of every message of the reply (the caller closes them). */
struct raw_reply {
	struct gr_hdr h;
	char payload[GR_MSG_MAX];
	size_t len;
	int fds[RAW_FDS_MAX];
	unsigned nfds;
	unsigned nmsgs;
};

/* A new connection to the broker of GRANTED_SOCKET; fails the test if none. */
int raw_connect(void);

/* Sends bytes as one message with fds; returns 0 or -errno. */
int raw_send_bytes(int sock, const void *msg, size_t len, const int *fds, unsigned nfds);
/* The same, never blocking: -EAGAIN when the broker does not read. */
int raw_send_nowait(int sock, const void *msg, size_t len);
/* Sends one well-formed message (header filled in); returns 0 or -errno. */
int raw_send(int sock, uint16_t op, uint32_t seq, const void *payload, size_t len, const int *fds,
	     unsigned nfds);

/*
 * Receives one message within ms: its length, 0 at end of stream, or
 * -errno (-ETIMEDOUT). Keeps up to RAW_FDS_MAX fds; *flags gets msg_flags.
 */
long raw_recv(int sock, void *buf, size_t cap, int *fds, unsigned *nfds, int *flags, int ms);

/*
 * One request and its whole reply: returns the reply's result, or a value
 * below -4095 if the broker hung up (RAW_HUNG_UP) or did not answer.
 */
#define RAW_HUNG_UP  (-10000)
#define RAW_NO_REPLY (-10001)
int raw_call(int sock, uint16_t op, const void *payload, size_t len, const int *fds, unsigned nfds,
	     struct raw_reply *rep);

/*
 * Connects and says HELLO as `kind` of `domid`, with our end of the socket
 * as the device kinds require. Returns the HELLO's result; *sock is the
 * connection (or -1 if the broker refused and hung up). The reply's fds are
 * closed.
 */
int raw_hello(uint16_t kind, uint16_t domid, int *sock);

/* MAP_GRANT_REF of one ref on a gntdev connection: the result; *index the
 * map's offset. */
int raw_map(int s, uint32_t domid, uint32_t ref, uint64_t *index);
/*
 * mmap of one page at offset: the result. On success *token is the
 * mapping's token, *mem the fd of its memory (the caller closes both), *off
 * the page's offset in it, *writable what the reply says.
 */
int raw_mmap(int s, uint64_t offset, uint32_t prot, int *token, int *mem, uint64_t *off,
	     bool *writable);

/* Whether the broker closed this connection within ms. */
bool raw_closed(int sock, int ms);

/* Closes fds[0..n). */
void raw_close_fds(int *fds, unsigned n);

#endif
