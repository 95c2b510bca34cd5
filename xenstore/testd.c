/*
 * granted-xenstored-test: the xenstore engine alone on one unix socket, so
 * that Debian's real clients (XENSTORED_PATH=<socket>) can be run against
 * it. Every connection is dom0 unless it claims a domain, and every claim is
 * allowed. Not installed; for tests.
 *
 *   granted-xenstored-test [-l LEVEL] [-r FD] [-q NAME=N]... [-i DOMID]... SOCKET
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "xenstore.h"

struct daemon {
	struct loop *loop;
	struct xs_server *xs;
	int lfd, sfd;
	int stop;
};

static int allow_all(void *ctx, const struct ucred *peer, unsigned domid)
{
	return 0;
}

static void on_accept(void *data, uint32_t events)
{
	struct daemon *d = data;
	int fd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	int e = xs_server_add_client(d->xs, fd);
	if (e < 0)
		log_warn("cannot add a client: %s", strerror(-e));
}

static void on_signal(void *data, uint32_t events)
{
	struct daemon *d = data;
	struct signalfd_siginfo si;
	if (read(d->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		d->stop = 1;
}

static int set_quota(struct xs_config *cfg, const char *arg)
{
	static const struct {
		const char *name;
		size_t off;
	} names[] = {
		{ "nodes", offsetof(struct xs_config, max_nodes_per_domain) },
		{ "value-size", offsetof(struct xs_config, max_value_size) },
		{ "watches", offsetof(struct xs_config, max_watches_per_domain) },
		{ "transactions", offsetof(struct xs_config, max_transactions_per_domain) },
		{ "perms", offsetof(struct xs_config, max_perms_per_node) },
		{ "transaction-nodes", offsetof(struct xs_config, max_nodes_per_transaction) },
		{ "path-length", offsetof(struct xs_config, max_path_length) },
		{ "queued-bytes", offsetof(struct xs_config, max_queued_bytes) },
		{ "connections", offsetof(struct xs_config, max_connections) },
	};
	const char *eq = strchr(arg, '=');
	for (size_t i = 0; eq && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == (size_t)(eq - arg) &&
		    strncmp(arg, names[i].name, (size_t)(eq - arg)) == 0) {
			*(unsigned *)((char *)cfg + names[i].off) =
				(unsigned)strtoul(eq + 1, NULL, 0);
			return 0;
		}
	}
	return -1;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "socket path too long\n");
		return -1;
	}
	strcpy(sa.sun_path, path);
	/* Only ever unlink a stale socket, never another kind of file. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		perror(path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "log-level", required_argument, NULL, 'l' },
					      { "ready-fd", required_argument, NULL, 'r' },
					      { "quota", required_argument, NULL, 'q' },
					      { "introduce", required_argument, NULL, 'i' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	struct xs_config cfg = { 0 };
	unsigned intro[64];
	int nintro = 0, ready = -1, opt;
	while ((opt = getopt_long(argc, argv, "l:r:q:i:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (log_parse_level(optarg) < 0) {
				fprintf(stderr, "bad log level %s\n", optarg);
				return 2;
			}
			log_set_level(log_parse_level(optarg));
			break;
		case 'r':
			ready = atoi(optarg);
			break;
		case 'q':
			if (set_quota(&cfg, optarg) < 0) {
				fprintf(stderr, "bad quota %s\n", optarg);
				return 2;
			}
			break;
		case 'i':
			if (nintro < 64)
				intro[nintro++] = (unsigned)atoi(optarg);
			break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"usage: %s [-l LEVEL] [-r READY-FD] [-q NAME=N]... [-i DOMID]... "
				"SOCKET\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: %s [OPTION]... SOCKET\n", argv[0]);
		return 2;
	}

	struct daemon d = { .lfd = -1, .sfd = -1 };
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	const struct xs_hooks hooks = { .may_claim = allow_all };
	int rc = 1;
	if (!(d.loop = loop_create()) || xs_server_create(d.loop, &cfg, &hooks, &d, &d.xs) < 0)
		goto out;
	for (int i = 0; i < nintro; i++)
		xs_domain_introduce(d.xs, intro[i]);
	if ((d.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
	    (d.lfd = listen_on(argv[optind])) < 0 ||
	    !loop_add(d.loop, d.sfd, EPOLLIN, on_signal, &d) ||
	    !loop_add(d.loop, d.lfd, EPOLLIN, on_accept, &d))
		goto out;
	if (ready >= 0) {
		if (write(ready, "\n", 1) != 1)
			goto out;
		close(ready);
	}
	while (!d.stop)
		if (loop_dispatch(d.loop, -1) < 0)
			goto out;
	rc = 0;
out:
	if (rc)
		perror("granted-xenstored-test");
	xs_server_destroy(d.xs);
	loop_destroy(d.loop);
	if (d.lfd >= 0) {
		unlink(argv[optind]);
		close(d.lfd);
	}
	if (d.sfd >= 0)
		close(d.sfd);
	return rc;
}
