/*
 * vchan-peer: one end of a vchan made with Debian's unmodified libxenvchan,
 * or of a unix socket (to stand behind vchan-socket-proxy). It streams
 * seeded pseudo-random bytes both ways at once and checks every byte that
 * arrives. vchan.sh runs it under `grantctl run --domid N`.
 *
 *   vchan-peer server PEER XSPATH LEFT RIGHT [OPTION]...  libxenvchan_server_init
 *   vchan-peer client SERVER XSPATH [OPTION]...           libxenvchan_client_init
 *   vchan-peer listen PATH [OPTION]...                    unix socket, accepts
 *   vchan-peer connect PATH [OPTION]...                   unix socket
 *   vchan-peer sum SEED BYTES                             a stream's checksum
 *   vchan-peer gen SEED BYTES                             the stream, on stdout
 *
 *   --send N[@SEED]   send N bytes of stream SEED (default: nothing; seed 1)
 *   --recv N[@SEED]   expect N bytes of stream SEED (default: nothing; seed 1)
 *   --hold K          send the last K bytes only once everything expected came
 *   --then close      when done, close at once (default: wait for the peer to)
 *   --peers K         server, listen: serve K peers one after another
 *   --timeout S       give up after S seconds without progress (default 10)
 *
 * Every line printed is the same from run to run:
 *   orders left L right R   the ring sizes libxenvchan chose (log2)
 *   connected               a peer is there
 *   sent N bytes fnv64 H    (H: FNV-1a of what was sent)
 *   received N bytes fnv64 H [mismatch at byte I]
 *   peer closed             it closed after the stream (or the peer died)
 *   peer closed during the stream
 *   closed                  we closed (for a server: xs_path removed)
 * The exit status is 0 only if every stream was complete and intact.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libxenvchan.h>

#define CHUNK	 65536
#define FNV_INIT 0xcbf29ce484222325ull

struct plan {
	size_t send, recv, hold;
	uint64_t send_seed, recv_seed;
	bool close_first;
	unsigned peers;
	int timeout_ms;
};

/* One end: a vchan or a socket. */
struct end {
	struct libxenvchan *vc;
	int fd;
};

/* Byte i of stream seed: splitmix64 of the 8-byte block it is in. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill(uint8_t *buf, uint64_t seed, size_t off, size_t len)
{
	uint64_t block = 0;
	for (size_t i = 0; i < len; i++) {
		size_t at = off + i;
		if (i == 0 || at % 8 == 0)
			block = mix(seed * 0x100000001b3ull + at / 8);
		buf[i] = (uint8_t)(block >> (8 * (at % 8)));
	}
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* > 0 bytes moved, 0 would block, -1 the peer is gone (or an error). */
static int end_write(struct end *e, const uint8_t *buf, size_t len)
{
	if (e->vc)
		return libxenvchan_write(e->vc, buf, len);
	ssize_t n = send(e->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	return (int)n;
}

static int end_read(struct end *e, uint8_t *buf, size_t len)
{
	if (e->vc)
		return libxenvchan_read(e->vc, buf, len);
	ssize_t n = recv(e->fd, buf, len, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	return n == 0 ? -1 : (int)n;
}

/* Waits for a change: 0, or -1 after timeout_ms without one. */
static int end_wait(struct end *e, bool want_write, int timeout_ms)
{
	struct pollfd p = { .events = POLLIN };
	p.fd = e->vc ? libxenvchan_fd_for_select(e->vc) : e->fd;
	if (!e->vc && want_write)
		p.events |= POLLOUT;
	int r;
	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	if (e->vc && libxenvchan_wait(e->vc) < 0)
		return -1;
	return 0;
}

/*
 * The two streams at once, then (unless close_first) everything until the
 * peer closes. 0 if both streams were complete and intact.
 */
static int stream(struct end *e, const struct plan *p)
{
	static uint8_t out[CHUNK], in[CHUNK], want[CHUNK];
	size_t sent = 0, got = 0, extra = 0, bad_at = SIZE_MAX;
	uint64_t h_out = FNV_INIT, h_in = FNV_INIT;
	bool gone = false;
	while (!gone) {
		/* Until everything expected came, the last `hold` bytes wait. */
		size_t limit = p->send;
		if (got < p->recv)
			limit = p->hold < p->send ? p->send - p->hold : 0;
		bool done = sent == p->send && got >= p->recv;
		if (done && p->close_first)
			break;
		bool moved = false;
		if (sent < limit) {
			size_t n = limit - sent < CHUNK ? limit - sent : CHUNK;
			fill(out, p->send_seed, sent, n);
			int r = end_write(e, out, n);
			if (r < 0) {
				gone = true;
				break;
			}
			h_out = fnv(h_out, out, (size_t)r);
			sent += (size_t)r;
			moved = r > 0;
		}
		int r = end_read(e, in, CHUNK);
		if (r < 0) {
			gone = true;
			break;
		}
		if (r > 0) {
			size_t n = (size_t)r, ours = got < p->recv ? p->recv - got : 0;
			if (ours > n)
				ours = n;
			fill(want, p->recv_seed, got, ours);
			for (size_t i = 0; i < ours && bad_at == SIZE_MAX; i++)
				if (in[i] != want[i])
					bad_at = got + i;
			h_in = fnv(h_in, in, ours);
			got += ours;
			extra += n - ours;
			moved = true;
		}
		if (!moved && end_wait(e, sent < limit, p->timeout_ms) < 0) {
			printf("no progress in %d ms\n", p->timeout_ms);
			return -1;
		}
	}
	bool complete = sent == p->send && got == p->recv;
	if (!complete) {
		printf("peer closed during the stream\n");
		fprintf(stderr, "# sent %zu/%zu, received %zu/%zu\n", sent, p->send, got, p->recv);
		return -1;
	}
	if (p->send)
		printf("sent %zu bytes fnv64 %016llx\n", sent, (unsigned long long)h_out);
	if (p->recv)
		printf("received %zu bytes fnv64 %016llx%s", got, (unsigned long long)h_in,
		       bad_at == SIZE_MAX ? "\n" : "");
	if (p->recv && bad_at != SIZE_MAX)
		printf(" mismatch at byte %zu\n", bad_at);
	if (extra)
		printf("%zu bytes more than expected\n", extra);
	if (gone)
		printf("peer closed\n");
	return bad_at == SIZE_MAX && !extra ? 0 : -1;
}

/* Until the state is `want` (1: a client is there); -1 on timeout. */
static int server_wait_state(struct libxenvchan *vc, int want, int timeout_ms)
{
	struct end e = { .vc = vc, .fd = -1 };
	while (libxenvchan_is_open(vc) != want)
		if (end_wait(&e, false, timeout_ms) < 0)
			return -1;
	return 0;
}

static int run_server(int peer, const char *path, size_t left, size_t right, const struct plan *p)
{
	struct libxenvchan *vc = libxenvchan_server_init(NULL, peer, path, left, right);
	if (!vc) {
		printf("libxenvchan_server_init: %s\n", strerror(errno));
		return 1;
	}
	vc->blocking = 0;
	printf("orders left %u right %u\n", vc->ring->left_order, vc->ring->right_order);
	int bad = 0;
	for (unsigned k = 0; k < p->peers; k++) {
		if (server_wait_state(vc, 1, p->timeout_ms) < 0) {
			printf("no client in %d ms\n", p->timeout_ms);
			bad = 1;
			break;
		}
		printf("connected\n");
		struct end e = { .vc = vc, .fd = -1 };
		if (stream(&e, p) < 0)
			bad = 1;
	}
	libxenvchan_close(vc);
	printf("closed\n");
	return bad;
}

static int run_client(int server, const char *path, const struct plan *p)
{
	struct libxenvchan *vc = libxenvchan_client_init(NULL, server, path);
	if (!vc) {
		printf("libxenvchan_client_init: %s\n", strerror(errno));
		return 1;
	}
	vc->blocking = 0;
	printf("orders left %u right %u\n", vc->ring->left_order, vc->ring->right_order);
	printf("connected\n");
	struct end e = { .vc = vc, .fd = -1 };
	int bad = stream(&e, p) < 0;
	libxenvchan_close(vc);
	printf("closed\n");
	return bad;
}

static int unix_socket(const char *path, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa->sun_path)) {
		printf("socket path too long\n");
		return -1;
	}
	strcpy(sa->sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		printf("socket: %s\n", strerror(errno));
	return fd;
}

static int run_listen(const char *path, const struct plan *p)
{
	struct sockaddr_un sa;
	int lfd = unix_socket(path, &sa);
	if (lfd < 0)
		return 1;
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4) < 0) {
		printf("bind %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("listening\n");
	int bad = 0;
	for (unsigned k = 0; k < p->peers && !bad; k++) {
		struct pollfd pf = { .fd = lfd, .events = POLLIN };
		int fd = poll(&pf, 1, p->timeout_ms) == 1 ? accept4(lfd, NULL, NULL, SOCK_CLOEXEC)
							  : -1;
		if (fd < 0) {
			printf("no connection in %d ms\n", p->timeout_ms);
			bad = 1;
			break;
		}
		printf("connected\n");
		struct end e = { .vc = NULL, .fd = fd };
		if (stream(&e, p) < 0)
			bad = 1;
		close(fd);
	}
	close(lfd);
	unlink(path);
	return bad;
}

static int run_connect(const char *path, const struct plan *p)
{
	struct sockaddr_un sa;
	int fd = unix_socket(path, &sa);
	if (fd < 0)
		return 1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		printf("connect %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("connected\n");
	struct end e = { .vc = NULL, .fd = fd };
	int bad = stream(&e, p) < 0;
	close(fd);
	printf("closed\n");
	return bad;
}

static bool parse_size(const char *s, size_t *n, uint64_t *seed)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		return false;
	*n = (size_t)v;
	if (*end == '@' && seed) {
		s = end + 1;
		v = strtoull(s, &end, 0);
		if (errno || end == s)
			return false;
		*seed = v;
	}
	return *end == '\0';
}

static int usage(void)
{
	fprintf(stderr, "usage: vchan-peer server PEER XSPATH LEFT RIGHT [OPTION]...\n"
			"       vchan-peer client SERVER XSPATH [OPTION]...\n"
			"       vchan-peer listen|connect PATH [OPTION]...\n"
			"       vchan-peer sum|gen SEED BYTES\n"
			"options: --send N[@SEED] --recv N[@SEED] --hold K --then close\n"
			"         --peers K --timeout S\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct plan p = { .send_seed = 1, .recv_seed = 1, .peers = 1, .timeout_ms = 10000 };
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 3)
		return usage();
	const char *cmd = argv[1];
	int npos = strcmp(cmd, "server") == 0	? 4
		   : strcmp(cmd, "client") == 0 ? 2
		   : strcmp(cmd, "sum") == 0	? 2
		   : strcmp(cmd, "gen") == 0	? 2
						: 1;
	if (argc < 2 + npos)
		return usage();
	for (int i = 2 + npos; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		size_t n;
		bool ok = v != NULL;
		if (ok && strcmp(o, "--send") == 0) {
			ok = parse_size(v, &p.send, &p.send_seed);
		} else if (ok && strcmp(o, "--recv") == 0) {
			ok = parse_size(v, &p.recv, &p.recv_seed);
		} else if (ok && strcmp(o, "--hold") == 0) {
			ok = parse_size(v, &p.hold, NULL);
		} else if (ok && strcmp(o, "--then") == 0) {
			ok = strcmp(v, "close") == 0 || strcmp(v, "wait") == 0;
			p.close_first = strcmp(v, "close") == 0;
		} else if (ok && strcmp(o, "--peers") == 0) {
			ok = parse_size(v, &n, NULL) && n > 0 && n < 1000;
			p.peers = (unsigned)n;
		} else if (ok && strcmp(o, "--timeout") == 0) {
			ok = parse_size(v, &n, NULL) && n > 0 && n < 3600;
			p.timeout_ms = (int)n * 1000;
		} else {
			ok = false;
		}
		if (!ok)
			return usage();
		i++;
	}
	if (strcmp(cmd, "sum") == 0 || strcmp(cmd, "gen") == 0) {
		static uint8_t buf[CHUNK];
		size_t seed, len;
		if (!parse_size(argv[2], &seed, NULL) || !parse_size(argv[3], &len, NULL))
			return usage();
		uint64_t h = FNV_INIT;
		for (size_t off = 0; off < len; off += CHUNK) {
			size_t n = len - off < CHUNK ? len - off : CHUNK;
			fill(buf, seed, off, n);
			h = fnv(h, buf, n);
			if (cmd[0] == 'g' && fwrite(buf, 1, n, stdout) != n)
				return 1;
		}
		if (cmd[0] == 's')
			printf("%zu bytes fnv64 %016llx\n", len, (unsigned long long)h);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (strcmp(cmd, "server") == 0) {
		size_t left, right;
		if (!parse_size(argv[4], &left, NULL) || !parse_size(argv[5], &right, NULL))
			return usage();
		return run_server(atoi(argv[2]), argv[3], left, right, &p);
	}
	if (strcmp(cmd, "client") == 0)
		return run_client(atoi(argv[2]), argv[3], &p);
	if (strcmp(cmd, "listen") == 0)
		return run_listen(argv[2], &p);
	if (strcmp(cmd, "connect") == 0)
		return run_connect(argv[2], &p);
	return usage();
}
