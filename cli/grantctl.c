/*
 * grantctl: run a program as a Xen domain, and show the broker's tables.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "granted/granted.h"
#include "show.h"

#ifndef GRANTED_VERSION
#define GRANTED_VERSION "0"
#endif

static void usage(FILE *out)
{
	fprintf(out, "Usage: grantctl run --domid N [--no-start] [--] COMMAND [ARG]...\n"
		     "       grantctl domains [--json]\n"
		     "       grantctl grants [--json]\n"
		     "       grantctl ports [--json]\n"
		     "\n"
		     "  run      run COMMAND as domain N: /dev/xen/gntalloc, gntdev and evtchn\n"
		     "           work in it, served by the granted broker (started if none runs)\n"
		     "  domains  live domains and their use of every limit\n"
		     "  grants   live grants, and who maps them\n"
		     "  ports    live event channels\n");
}

/* A file next to ours (build tree) or its installed path. */
static int find_file(const char *env, const char *rel, const char *installed, char *out, size_t len)
{
	const char *e = getenv(env);
	if (e && *e) {
		snprintf(out, len, "%s", e);
		return access(out, R_OK) == 0 ? 0 : -ENOENT;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		snprintf(out, len, "%s/%s", dirname(self), rel);
		if (access(out, R_OK) == 0)
			return 0;
	}
	snprintf(out, len, "%s", installed);
	return access(out, R_OK) == 0 ? 0 : -ENOENT;
}

/*
 * Starts a broker with the embedded default policy that exits by itself
 * once it has had no client for a while, and waits until it listens.
 */
static int start_broker(void)
{
	char path[PATH_MAX];
	if (find_file("GRANTED_BROKER", "../broker/granted", GRANTED_BROKER_INSTALLED, path,
		      sizeof(path)) < 0) {
		fprintf(stderr, "grantctl: cannot find the granted broker (set GRANTED_BROKER)\n");
		return -1;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* Detach twice so the broker is nobody's child and outlives us. */
		setsid();
		if (fork() != 0)
			_exit(0);
		int null = open("/dev/null", O_RDWR);
		const char *log = getenv("GRANTED_BROKER_LOG");
		int err = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : null;
		dup2(null, 0);
		dup2(null, 1);
		dup2(err >= 0 ? err : null, 2);
		int ready = fcntl(p[1], F_DUPFD, 3);
		char fdarg[16];
		snprintf(fdarg, sizeof(fdarg), "%d", ready);
		const char *idle = getenv("GRANTED_IDLE_EXIT");
		execl(path, "granted", "--idle-exit", idle ? idle : "10", "--ready-fd", fdarg,
		      "--log-level", log ? "info" : "warning", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	waitpid(pid, NULL, 0);
	/* A newline once it listens; end of file if it could not start
	 * (perhaps because another grantctl started one just now). */
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	char c = 0;
	if (poll(&pfd, 1, 10000) == 1 && read(p[0], &c, 1) != 1)
		c = 0;
	close(p[0]);
	return 0;
}

static int parse_domid(const char *s, uint16_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || !*s || *end || v >= 0x7FF0)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "domid", required_argument, NULL, 'd' },
		{ "no-start", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint16_t domid = 0;
	bool have_domid = false, no_start = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+d:nh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (parse_domid(optarg, &domid) < 0) {
				fprintf(stderr, "grantctl: --domid must be 0..32751, not '%s'\n",
					optarg);
				return 2;
			}
			have_domid = true;
			break;
		case 'n':
			no_start = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!have_domid || optind >= argc) {
		fprintf(stderr, "grantctl run: needs --domid N and a command\n");
		return 2;
	}
	char preload[PATH_MAX];
	if (find_file("GRANTED_PRELOAD", "../shim/libgranted-preload.so", GRANTED_PRELOAD_INSTALLED,
		      preload, sizeof(preload)) < 0) {
		fprintf(stderr,
			"grantctl: cannot find libgranted-preload.so (set GRANTED_PRELOAD)\n");
		return 1;
	}
	/* Claiming the domain is also how we learn whether a broker listens. */
	int claim = granted_claim_domain(domid);
	if (claim == -ENOENT && !no_start) {
		if (start_broker() < 0)
			return 1;
		claim = granted_claim_domain(domid);
	}
	if (claim < 0) {
		char path[108] = "";
		granted_socket_path(path, sizeof(path));
		if (claim == -ENOENT)
			fprintf(stderr, "grantctl: no broker listens on %s\n", path);
		else if (claim == -EACCES)
			fprintf(stderr, "grantctl: the broker refuses domain %u to this user\n",
				domid);
		else
			fprintf(stderr, "grantctl: cannot claim domain %u: %s\n", domid,
				strerror(-claim));
		return 1;
	}
	/* The program inherits the claim: the domain lives at least as long as
	 * it does. Out of the way of the fd numbers it expects. */
	int high = fcntl(claim, F_DUPFD, 900);
	if (high >= 0) {
		close(claim);
		claim = high;
	} else {
		fcntl(claim, F_SETFD, 0);
	}
	char buf[PATH_MAX * 2 + 16];
	const char *old = getenv("LD_PRELOAD");
	/* After any preload already there (an ASan runtime must stay first). */
	snprintf(buf, sizeof(buf), "%s%s%s", old && *old ? old : "", old && *old ? ":" : "",
		 preload);
	setenv("LD_PRELOAD", buf, 1);
	snprintf(buf, sizeof(buf), "%u", domid);
	setenv("GRANTED_DOMID", buf, 1);
	snprintf(buf, sizeof(buf), "%d", claim);
	setenv("GRANTED_CLAIM_FD", buf, 1);
	/* Where libxenstore and pyxs find the broker's xenstore. */
	char xs[108];
	if (!getenv("XENSTORED_PATH") && granted_xenstore_path(xs, sizeof(xs)) == 0)
		setenv("XENSTORED_PATH", xs, 1);
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "grantctl: cannot run %s: %s\n", argv[optind], strerror(errno));
	return 127;
}

static int cmd_show(int argc, char **argv, int (*show)(bool json))
{
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else {
			fprintf(stderr, "grantctl %s: unknown option %s\n", argv[0], argv[i]);
			return 2;
		}
	}
	return show(json);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "domains") == 0)
		return cmd_show(argc - 1, argv + 1, show_domains);
	if (strcmp(cmd, "grants") == 0)
		return cmd_show(argc - 1, argv + 1, show_grants);
	if (strcmp(cmd, "ports") == 0)
		return cmd_show(argc - 1, argv + 1, show_ports);
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("grantctl %s\n", GRANTED_VERSION);
		return 0;
	}
	fprintf(stderr, "grantctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
