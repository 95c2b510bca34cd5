/*
 * A process of domain N talks to xenstore as domain N: right after its
 * connect() to granted's xenstore socket, and before libxenstore or pyxs
 * sends anything, the shim sends XS_CONTROL "granted-domid\0N\0" and reads
 * the answer. The broker's policy decides; a refusal fails connect() with
 * EACCES. Connections to any other socket are left alone.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "paths.h"
#include "shim.h"

#define XS_CONTROL 0u
#define XS_ERROR   16u

struct xs_hdr {
	uint32_t type, req_id, tx_id, len;
};

static bool is_xenstore(const struct sockaddr *addr, socklen_t len)
{
	struct sockaddr_un sa;
	char want[sizeof(sa.sun_path)];
	if (!addr || len <= offsetof(struct sockaddr_un, sun_path) || len > sizeof(sa))
		return false;
	if (copy_in(&sa, addr, len) < 0 || sa.sun_family != AF_UNIX)
		return false;
	size_t plen = len - offsetof(struct sockaddr_un, sun_path);
	const char *env = getenv("XENSTORED_PATH");
	if (env && *env)
		snprintf(want, sizeof(want), "%s", env);
	else if (gr_xenstore_path(want, sizeof(want)) < 0)
		return false;
	return strnlen(sa.sun_path, plen) == strlen(want) && strncmp(sa.sun_path, want, plen) == 0;
}

/* All of buf, waiting on a non-blocking socket: 0 or -errno. */
static int io_all(int fd, char *buf, size_t len, bool out)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = out ? send(fd, buf + done, len - done, MSG_NOSIGNAL)
				: recv(fd, buf + done, len - done, 0);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		struct pollfd pfd = { .fd = fd, .events = out ? POLLOUT : POLLIN };
		if (poll(&pfd, 1, 10000) != 1)
			return -ETIMEDOUT;
	}
	return 0;
}

int xenstore_claim(int fd, const struct sockaddr *addr, socklen_t len)
{
	const char *domid = getenv("GRANTED_DOMID");
	if (!domid || !*domid || !is_xenstore(addr, len))
		return 0;
	uint16_t id;
	int r = shim_domid(&id);
	if (r < 0)
		return r;
	char msg[64];
	int plen = snprintf(msg + sizeof(struct xs_hdr), sizeof(msg) - sizeof(struct xs_hdr),
			    "granted-domid%c%u", '\0', id) +
		   1;
	struct xs_hdr h = { .type = XS_CONTROL, .len = (uint32_t)plen };
	memcpy(msg, &h, sizeof(h));
	r = io_all(fd, msg, sizeof(h) + (size_t)plen, true);
	if (r < 0)
		return r;
	struct xs_hdr rh;
	r = io_all(fd, (char *)&rh, sizeof(rh), false);
	if (r < 0)
		return r;
	char body[64];
	if (rh.len >= sizeof(body))
		return -EPROTO;
	r = io_all(fd, body, rh.len, false);
	if (r < 0)
		return r;
	if (rh.type == XS_ERROR)
		return -EACCES;
	return rh.type == XS_CONTROL ? 0 : -EPROTO;
}
