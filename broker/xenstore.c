/*
 * The broker hosts granted's xenstore (xenstore/xenstore.h) on its loop,
 * on a second socket: identities are the broker's (its policy decides who
 * may be which domain), and domains appear and go with their processes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "loop.h"
#include "xenstore.h"

/* Supplementary groups of a peer we only have the ucred of. */
static unsigned peer_groups(pid_t pid, gid_t *groups, unsigned max)
{
	char path[64], line[1024];
	unsigned n = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp)) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		char *s = line + 7, *end;
		while (n < max) {
			unsigned long g = strtoul(s, &end, 10);
			if (end == s)
				break;
			groups[n++] = (gid_t)g;
			s = end;
		}
		break;
	}
	fclose(fp);
	return n;
}

static int may_claim(void *ctx, const struct ucred *peer, unsigned domid)
{
	struct broker *b = ctx;
	gid_t groups[64];
	struct conn_cred cc = { .cred = *peer, .groups = groups };
	cc.ngroups = peer_groups(peer->pid, groups, 64);
	return policy_check_domain(b, &cc, (uint16_t)domid) == 0 ? 0 : -EACCES;
}

static void on_accept(void *data, uint32_t events)
{
	struct broker *b = data;
	(void)events;
	for (;;) {
		int fd = accept4(b->xs_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE)
				broker_refuse_client(b, b->xs_listen_fd);
			else if (errno != EAGAIN)
				log_warn("xenstore accept: %s", strerror(errno));
			return;
		}
		int r = xs_server_add_client(b->xs, fd);
		if (r < 0)
			log_warn("xenstore: cannot add a client: %s", strerror(-r));
	}
}

int broker_serve_xenstore(struct broker *b, int listen_fd)
{
	const struct xs_hooks hooks = { .may_claim = may_claim };
	int r = xs_server_create(b->loop, NULL, &hooks, b, &b->xs);
	if (r < 0)
		return r;
	b->xs_listen_fd = listen_fd;
	b->xs_src = loop_add(b->loop, listen_fd, EPOLLIN, on_accept, b);
	if (!b->xs_src) {
		r = -errno;
		xs_server_destroy(b->xs);
		b->xs = NULL;
		return r;
	}
	/* Domains that exist already (declared ones). */
	for (uint32_t id = 1; id < DOMID_FIRST_RESERVED; id++)
		if (b->domains[id])
			xs_domain_introduce(b->xs, id);
	return 0;
}

void broker_xenstore_fini(struct broker *b)
{
	loop_remove(b->xs_src);
	b->xs_src = NULL;
	xs_server_destroy(b->xs);
	b->xs = NULL;
}

void xenstore_domain_alive(struct broker *b, uint16_t domid, bool alive)
{
	if (!b->xs)
		return;
	if (alive)
		xs_domain_introduce(b->xs, domid);
	else
		xs_domain_release(b->xs, domid);
}
