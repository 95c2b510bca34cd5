/*
 * granted: the broker daemon. A thin main around broker/broker.h: options,
 * the listening socket (with the stale-socket check), signals, readiness.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "loop.h"
#include "paths.h"

#ifndef GRANTED_VERSION
#define GRANTED_VERSION "0"
#endif

static void usage(FILE *out)
{
	fprintf(out, "Usage: granted [OPTION]...\n"
		     "The granted broker: Xen's grant tables, grant mappings and event channels\n"
		     "for ordinary processes.\n\n"
		     "  -s, --socket PATH      listen on PATH (default: see granted(8))\n"
		     "  -c, --config FILE      read settings from FILE\n"
		     "  -p, --policy FILE      who may act as which domain (see granted(8))\n"
		     "  -o, --set KEY=VALUE    one setting, as in the config file\n"
		     "  -l, --log-level LEVEL  error, warning, info or debug\n"
		     "  -r, --ready-fd FD      write a newline to FD once listening\n"
		     "  -i, --idle-exit SEC    exit after SEC seconds without any client\n"
		     "  -h, --help             show this help\n"
		     "  -V, --version          show the version\n");
}

static int mkdir_parents(const char *path, mode_t mode)
{
	char *copy = strdup(path);
	int r = 0;
	if (!copy)
		return -ENOMEM;
	char *dir = dirname(copy);
	if (strcmp(dir, "/") != 0 && strcmp(dir, ".") != 0) {
		r = mkdir_parents(dir, mode);
		if (r == 0 && mkdir(dir, mode) < 0 && errno != EEXIST)
			r = -errno;
	}
	free(copy);
	return r;
}

/* Binds and listens on path (SOCK_SEQPACKET for clients, SOCK_STREAM for
 * xenstore), after making sure no live server owns it. */
static int listen_on(const char *path, int type)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (mkdir_parents(path, geteuid() == 0 ? 0755 : 0700) < 0) {
		log_err("cannot create the directory of %s: %s", path, strerror(errno));
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_err("%s exists and is not a socket; not touching it", path);
			return -1;
		}
		int probe = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			log_err("another broker is already listening on %s", path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		log_info("removing stale socket %s", path);
		unlink(path);
	}
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
		log_err("cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* Who may do what is the policy's job (SO_PEERCRED), not the mode's. */
	chmod(path, 0666);
	return fd;
}

static void notify_ready(int ready_fd)
{
	if (ready_fd >= 0) {
		if (write(ready_fd, "\n", 1) < 0)
			log_warn("--ready-fd: %s", strerror(errno));
		close(ready_fd);
	}
	const char *ns = getenv("NOTIFY_SOCKET");
	if (ns && (ns[0] == '/' || ns[0] == '@') &&
	    strlen(ns) < sizeof(((struct sockaddr_un *)0)->sun_path)) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		strcpy(sa.sun_path, ns);
		if (sa.sun_path[0] == '@')
			sa.sun_path[0] = '\0';
		int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&sa,
			       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(ns)));
			close(fd);
		}
	}
}

struct sig_ctx {
	struct broker *b;
	int fd;
};

static void on_signal(void *data, uint32_t events)
{
	struct sig_ctx *ctx = data;
	struct signalfd_siginfo si;
	(void)events;
	if (read(ctx->fd, &si, sizeof(si)) == sizeof(si)) {
		log_info("signal %u: shutting down", si.ssi_signo);
		broker_stop(ctx->b);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "policy", required_argument, NULL, 'p' },
		{ "set", required_argument, NULL, 'o' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "idle-exit", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct broker_config cfg;
	const char *socket_opt = NULL, *config = NULL, *xenstore_opt = NULL;
	bool xenstore = true;
	char *sets[64];
	unsigned nsets = 0;
	int ready_fd = -1, c;

	broker_config_defaults(&cfg);
	while ((c = getopt_long(argc, argv, "s:c:p:x:Xo:l:r:i:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_opt = optarg;
			break;
		case 'x':
			xenstore_opt = optarg;
			break;
		case 'X':
			xenstore = false;
			break;
		case 'c':
			config = optarg;
			break;
		case 'p':
		case 'o':
		case 'l':
		case 'i': {
			if (nsets == sizeof(sets) / sizeof(sets[0])) {
				fprintf(stderr, "granted: too many settings\n");
				return 2;
			}
			const char *key = c == 'l'   ? "log-level"
					  : c == 'i' ? "idle-exit-ms"
					  : c == 'p' ? "policy"
						     : NULL;
			char *kv;
			if (key && c == 'i') {
				char *end;
				unsigned long sec = strtoul(optarg, &end, 10);
				if (*end || sec > 4000000) {
					fprintf(stderr, "granted: bad --idle-exit: %s\n", optarg);
					return 2;
				}
				if (asprintf(&kv, "%s=%lu", key, sec * 1000) < 0)
					return 1;
			} else if (key) {
				if (asprintf(&kv, "%s=%s", key, optarg) < 0)
					return 1;
			} else {
				kv = strdup(optarg);
			}
			sets[nsets++] = kv;
			break;
		}
		case 'r': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 1 << 20) {
				fprintf(stderr, "granted: bad --ready-fd: %s\n", optarg);
				return 2;
			}
			ready_fd = (int)v;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("granted %s\n", GRANTED_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "granted: unexpected argument: %s\n", argv[optind]);
		return 2;
	}
	if (config) {
		unsigned line;
		int r = broker_config_load(&cfg, config, &line);
		if (r < 0) {
			if (line)
				fprintf(stderr, "granted: %s:%u: %s\n", config, line,
					r == -ENOENT ? "unknown setting" : "bad value");
			else
				fprintf(stderr, "granted: %s: %s\n", config, strerror(-r));
			return 2;
		}
	}
	for (unsigned i = 0; i < nsets; i++) {
		char *eq = strchr(sets[i], '=');
		int r = eq ? (*eq = '\0', broker_config_set(&cfg, sets[i], eq + 1)) : -EINVAL;
		if (r < 0) {
			fprintf(stderr, "granted: bad setting %s%s%s: %s\n", sets[i], eq ? "=" : "",
				eq ? eq + 1 : "", r == -ENOENT ? "unknown setting" : "bad value");
			return 2;
		}
		free(sets[i]);
	}
	log_set_level(cfg.log_level);
	struct policy *policy = NULL;
	if (cfg.policy_path[0]) {
		unsigned line;
		char err[256];
		if (policy_load(cfg.policy_path, &policy, &line, err, sizeof(err)) < 0) {
			fprintf(stderr, "granted: %s:%u: %s\n", cfg.policy_path, line, err);
			return 2;
		}
		cfg.policy = policy;
	}

	char path[108];
	if (socket_opt) {
		if (strlen(socket_opt) >= sizeof(path)) {
			fprintf(stderr, "granted: socket path too long\n");
			return 2;
		}
		strcpy(path, socket_opt);
	} else if (gr_socket_path(path, sizeof(path)) < 0) {
		fprintf(stderr, "granted: socket path too long\n");
		return 2;
	}

	/* Every domain's memory is open in this process: without this, any
	 * process of our user could reopen it writable through
	 * /proc/<broker>/fd. Only CAP_SYS_PTRACE passes now (and no core
	 * dump holds the domains' pages). */
	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		log_warn("PR_SET_DUMPABLE: %s", strerror(errno));

	signal(SIGPIPE, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	/* The xenstore socket: beside ours unless told otherwise. Its path is
	 * computed before GRANTED_SOCKET could differ from --socket. */
	char xs_path[108] = "";
	if (xenstore) {
		if (xenstore_opt) {
			snprintf(xs_path, sizeof(xs_path), "%s", xenstore_opt);
		} else {
			char *slash = strrchr(path, '/');
			int dir = slash ? (int)(slash - path) + 1 : 0;
			snprintf(xs_path, sizeof(xs_path), "%.*sxenstored.socket", dir, path);
		}
	}
	int lfd = listen_on(path, SOCK_SEQPACKET);
	if (lfd < 0)
		return 1;
	int xfd = xenstore ? listen_on(xs_path, SOCK_STREAM) : -1;
	if (xenstore && xfd < 0)
		return 1;
	struct stat ours, ours_xs;
	stat(path, &ours);
	if (xenstore)
		stat(xs_path, &ours_xs);

	struct broker *b;
	int r = broker_create(&cfg, lfd, &b);
	if (r < 0) {
		log_err("cannot start: %s", strerror(-r));
		return 1;
	}
	if (xenstore) {
		r = broker_serve_xenstore(b, xfd);
		if (r < 0) {
			log_err("cannot serve xenstore: %s", strerror(-r));
			return 1;
		}
		log_info("serving xenstore on %s", xs_path);
	}
	struct sig_ctx sig = { .b = b, .fd = sfd };
	if (sfd < 0 || !loop_add(broker_loop(b), sfd, EPOLLIN, on_signal, &sig)) {
		log_err("signalfd: %s", strerror(errno));
		return 1;
	}
	log_info("listening on %s", path);
	notify_ready(ready_fd);
	r = broker_run(b);
	broker_destroy(b);
	/* Remove the socket only if it is still the one we made. */
	struct stat now;
	if (stat(path, &now) == 0 && now.st_ino == ours.st_ino && now.st_dev == ours.st_dev)
		unlink(path);
	if (xenstore && stat(xs_path, &now) == 0 && now.st_ino == ours_xs.st_ino &&
	    now.st_dev == ours_xs.st_dev)
		unlink(xs_path);
	if (xfd >= 0)
		close(xfd);
	close(lfd);
	close(sfd);
	policy_free(policy);
	if (r < 0) {
		log_err("%s", strerror(-r));
		return 1;
	}
	return 0;
}
