/*
 * xs-domclient: a tiny xenstore client that can act as a domain, for the
 * integration tests. It writes the wire protocol itself (no project
 * header), connects to $XENSTORED_PATH, optionally claims a domain with the
 * "granted-domid" control message, then runs commands separated by ":" and
 * prints one line per command: the reply, or "ERR <NAME>".
 *
 *   xs-domclient [-d DOMID] CMD ARGS... [: CMD ARGS...]...
 *
 * Commands: read P | write P V | mkdir P | rm P | ls P | getperms P |
 * setperms P PERM... | watch P TOKEN | unwatch P TOKEN | events N |
 * txstart | txforget | txend T|F | domainpath N | introduced N | claim N |
 * control ARG... | raw TYPE ARG... (strings, each NUL-terminated)
 * Commands after txstart run in that transaction until txend (or txforget,
 * which leaves it open on the server).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum {
	CONTROL = 0,
	DIRECTORY = 1,
	READ = 2,
	GET_PERMS = 3,
	WATCH = 4,
	UNWATCH = 5,
	TX_START = 6,
	TX_END = 7,
	GET_DOMAIN_PATH = 10,
	WRITE = 11,
	MKDIR = 12,
	RM = 13,
	SET_PERMS = 14,
	WATCH_EVENT = 15,
	ERROR = 16,
	IS_DOMAIN_INTRODUCED = 17,
};

struct hdr {
	uint32_t type, req_id, tx_id, len;
};

static int fd = -1;
static uint32_t next_req = 1, tx;
static char events[256][512];
static int nevents;

static void die(const char *what)
{
	fprintf(stderr, "xs-domclient: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void read_full(void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		ssize_t k = read(fd, p, len);
		if (k <= 0) {
			if (k == 0)
				errno = ECONNRESET;
			die("read");
		}
		p += k;
		len -= (size_t)k;
	}
}

/* Reads one message; watch events are kept for "events". */
static int recv_msg(struct hdr *h, char *buf)
{
	read_full(h, sizeof(*h));
	if (h->len > 4096) {
		errno = EPROTO;
		die("reply too long");
	}
	read_full(buf, h->len);
	buf[h->len] = '\0';
	if (h->type != WATCH_EVENT)
		return 1;
	if (nevents < 256)
		snprintf(events[nevents++], sizeof(events[0]), "event %s %s", buf,
			 buf + strlen(buf) + 1);
	return 0;
}

/* Sends a request; returns its reply in buf (length in *len), or prints
 * the error and returns -1. */
static int call(uint32_t type, const char *payload, uint32_t plen, char *buf, uint32_t *len)
{
	struct hdr h = { type, next_req++, tx, plen };
	char out[sizeof(h) + 4096 + 64];
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), payload, plen);
	if (write(fd, out, sizeof(h) + plen) != (ssize_t)(sizeof(h) + plen))
		die("write");
	struct hdr r;
	while (!recv_msg(&r, buf))
		;
	if (r.req_id != h.req_id || r.tx_id != h.tx_id) {
		fprintf(stderr, "xs-domclient: reply ids %u/%u for %u/%u\n", r.req_id, r.tx_id,
			h.req_id, h.tx_id);
		exit(2);
	}
	if (r.type == ERROR) {
		printf("ERR %s\n", buf);
		return -1;
	}
	if (len)
		*len = r.len;
	return 0;
}

/* Joins args as NUL-terminated strings; the last one without its NUL if
 * raw_last (a WRITE's value). */
static uint32_t pack(char *buf, char **args, int n, int raw_last)
{
	uint32_t len = 0;
	for (int i = 0; i < n; i++) {
		size_t k = strlen(args[i]) + (raw_last && i == n - 1 ? 0 : 1);
		if (len + k > 4096 + 32) {
			fprintf(stderr, "xs-domclient: request too long\n");
			exit(2);
		}
		memcpy(buf + len, args[i], k);
		len += (uint32_t)k;
	}
	return len;
}

/* Prints the reply's strings separated by spaces. */
static void print_strings(const char *buf, uint32_t len)
{
	const char *sep = "";
	for (uint32_t off = 0; off < len; off += (uint32_t)strlen(buf + off) + 1) {
		printf("%s%s", sep, buf + off);
		sep = " ";
	}
	printf("\n");
}

static void wait_events(int n)
{
	while (nevents < n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 5000) != 1) {
			printf("timeout after %d events\n", nevents);
			return;
		}
		struct hdr h;
		char buf[4097];
		if (recv_msg(&h, buf)) {
			fprintf(stderr, "xs-domclient: unexpected reply\n");
			exit(2);
		}
	}
	for (int i = 0; i < n; i++)
		printf("%s\n", events[i]);
	memmove(events, events[n], sizeof(events[0]) * (size_t)(nevents - n));
	nevents -= n;
}

static int run(char **argv, int argc)
{
	char req[4096 + 64], buf[4097];
	uint32_t len, type = 0;
	const char *cmd = argv[0];
	int raw = 0, nargs = -1; /* -1: any number */
	static const struct {
		const char *name;
		uint32_t type;
		int nargs;
		int raw_last;
	} simple[] = { { "read", READ, 1, 0 },
		       { "write", WRITE, 2, 1 },
		       { "mkdir", MKDIR, 1, 0 },
		       { "rm", RM, 1, 0 },
		       { "ls", DIRECTORY, 1, 0 },
		       { "getperms", GET_PERMS, 1, 0 },
		       { "setperms", SET_PERMS, -1, 0 },
		       { "watch", WATCH, 2, 0 },
		       { "unwatch", UNWATCH, 2, 0 },
		       { "domainpath", GET_DOMAIN_PATH, 1, 0 },
		       { "introduced", IS_DOMAIN_INTRODUCED, 1, 0 },
		       { "control", CONTROL, -1, 0 } };

	if (strcmp(cmd, "events") == 0 && argc == 2) {
		wait_events(atoi(argv[1]));
		return 0;
	}
	if (strcmp(cmd, "txstart") == 0) {
		if (call(TX_START, "", 1, buf, &len) == 0) {
			tx = (uint32_t)atoi(buf);
			printf("%s\n", buf);
		}
		return 0;
	}
	if (strcmp(cmd, "txforget") == 0) {
		tx = 0;
		return 0;
	}
	if (strcmp(cmd, "txend") == 0 && argc == 2) {
		int r = call(TX_END, argv[1], (uint32_t)strlen(argv[1]) + 1, buf, &len);
		tx = 0;
		if (r == 0)
			printf("%s\n", buf);
		return 0;
	}
	if (strcmp(cmd, "claim") == 0 && argc == 2) {
		char *a[2] = { "granted-domid", argv[1] };
		if (call(CONTROL, req, pack(req, a, 2, 0), buf, &len) == 0)
			printf("%s\n", buf);
		return 0;
	}
	if (strcmp(cmd, "raw") == 0 && argc >= 2) {
		type = (uint32_t)atoi(argv[1]);
		if (call(type, req, pack(req, argv + 2, argc - 2, 0), buf, &len) == 0)
			print_strings(buf, len);
		return 0;
	}
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strcmp(cmd, simple[i].name) == 0) {
			type = simple[i].type;
			nargs = simple[i].nargs;
			raw = simple[i].raw_last;
			break;
		}
	}
	if (!type && strcmp(cmd, "control") != 0) {
		fprintf(stderr, "xs-domclient: unknown command %s\n", cmd);
		exit(2);
	}
	if (nargs >= 0 && argc - 1 != nargs) {
		fprintf(stderr, "xs-domclient: %s takes %d arguments\n", cmd, nargs);
		exit(2);
	}
	if (call(type, req, pack(req, argv + 1, argc - 1, raw), buf, &len) < 0)
		return 0;
	if (type == READ)
		printf("%.*s\n", (int)len, buf);
	else
		print_strings(buf, len);
	return 0;
}

int main(int argc, char **argv)
{
	int opt, domid = -1;
	while ((opt = getopt(argc, argv, "d:")) != -1) {
		if (opt != 'd') {
			fprintf(stderr, "usage: xs-domclient [-d DOMID] CMD ARGS... [: CMD...]\n");
			return 2;
		}
		domid = atoi(optarg);
	}
	/* Output follows events in time; a closed peer is an error, not a signal. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	const char *path = getenv("XENSTORED_PATH");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!path || strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "xs-domclient: set XENSTORED_PATH\n");
		return 2;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(path);
	if (domid >= 0) {
		char req[64], buf[4097];
		int n = snprintf(req, sizeof(req), "granted-domid%c%d", 0, domid) + 1;
		if (call(CONTROL, req, (uint32_t)n, buf, NULL) < 0)
			return 1;
	}
	for (int i = optind; i < argc;) {
		int j = i;
		while (j < argc && strcmp(argv[j], ":") != 0)
			j++;
		if (j > i)
			run(argv + i, j - i);
		i = j + 1;
	}
	close(fd);
	return 0;
}
