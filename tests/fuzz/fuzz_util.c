/* The fuzz targets' shared helpers (fuzz.h). */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "protocol.h"
#include "wire.h"

void fz_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fuzz check failed at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

uint8_t fz_u8(struct fz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

uint16_t fz_u16(struct fz_in *in)
{
	uint16_t lo = fz_u8(in);
	return (uint16_t)(lo | fz_u8(in) << 8);
}

uint32_t fz_u32(struct fz_in *in)
{
	uint32_t lo = fz_u16(in);
	return lo | (uint32_t)fz_u16(in) << 16;
}

uint64_t fz_u64(struct fz_in *in)
{
	uint64_t lo = fz_u32(in);
	return lo | (uint64_t)fz_u32(in) << 32;
}

size_t fz_bytes(struct fz_in *in, size_t want, const uint8_t **out)
{
	size_t n = want < in->n ? want : in->n;
	*out = in->p;
	in->p += n;
	in->n -= n;
	return n;
}

bool fz_trace(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("GRANTED_FUZZ_TRACE") != NULL;
	return on;
}

int fz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	FZ_CHECK(d != NULL);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
			continue;
		n++;
	}
	closedir(d);
	return n;
}

void fz_check_fds(int before)
{
	int now = fz_count_fds();
	if (now == before)
		return;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char path[300], target[256];
		if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		target[n < 0 ? 0 : n] = '\0';
		fprintf(stderr, "  fd %s -> %s\n", de->d_name, target);
	}
	if (d)
		closedir(d);
	fz_fail(__FILE__, __LINE__, "fd leak: %d fds before, %d after", before, now);
}

struct broker *fz_broker_new(unsigned variant)
{
	struct broker_config cfg;
	broker_config_defaults(&cfg);
	const char *lvl = getenv("GRANTED_FUZZ_LOG");
	cfg.log_level = lvl ? log_parse_level(lvl) : LOG_CRIT;
	cfg.grant_end_delay_ms = 0;
	if (variant & 1)
		cfg.max_grant_entries = 24; /* 16 usable refs */
	if (variant & 2)
		cfg.gntalloc_limit = 8;
	if (variant & 4)
		cfg.max_ports = 5;
	if (variant & 8)
		cfg.gntdev_map_limit = 16;
	if (variant & 16)
		cfg.max_maptrack = 4;
	struct broker *b;
	FZ_CHECK_EQ(broker_create(&cfg, -1, &b), 0);
	return b;
}

void fz_pump(struct broker *b)
{
	int r;
	while ((r = broker_dispatch(b, 0)) > 0)
		;
	FZ_CHECK(r == 0);
}

int fz_connect(struct broker *b)
{
	int sv[2];
	FZ_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	FZ_CHECK_EQ(broker_add_client(b, sv[1]), 0);
	return sv[0];
}

int fz_send(int sock, uint16_t op, uint16_t flags, uint32_t seq, const void *p, size_t len,
	    const int *fds, unsigned nfds)
{
	static char buf[GR_MSG_MAX];
	struct gr_hdr h = {
		.op = op, .flags = flags, .size = (uint32_t)(sizeof(h) + len), .seq = seq
	};
	if (len > sizeof(buf) - sizeof(h))
		return -EMSGSIZE;
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), p, len);
	return gr_send(sock, buf, sizeof(h) + len, fds, nfds);
}

void fz_pool_add(struct fz_pool *p, int fd)
{
	if (p->n < FZ_POOL_MAX)
		p->fds[p->n++] = fd;
	else
		close(fd);
}

void fz_pool_close(struct fz_pool *p, unsigned i)
{
	if (i >= p->n)
		return;
	close(p->fds[i]);
	p->fds[i] = p->fds[--p->n];
}

void fz_pool_clear(struct fz_pool *p)
{
	while (p->n > 0)
		close(p->fds[--p->n]);
}

void fz_drain(int sock, uint32_t seq, struct fz_seen *seen, struct fz_pool *pool)
{
	static _Alignas(8) char buf[GR_MSG_MAX];
	for (;;) {
		int fds[GR_MSG_FDS_MAX];
		unsigned nfds = 0;
		ssize_t n =
			gr_recv(sock, buf, sizeof(buf), fds, GR_MSG_FDS_MAX, &nfds, MSG_DONTWAIT);
		if (n == -EAGAIN)
			return;
		if (n == 0 || n == -ECONNRESET) {
			seen->closed = true;
			return;
		}
		/* The broker never sends more than fits (GR_MSG_MAX, 32 fds). */
		if (n < 0)
			fz_fail(__FILE__, __LINE__, "receiving a reply: %s", strerror((int)-n));
		struct gr_hdr h;
		if ((size_t)n < sizeof(h))
			fz_fail(__FILE__, __LINE__, "a %zd-byte reply", n);
		memcpy(&h, buf, sizeof(h));
		if (h.size != (size_t)n)
			fz_fail(__FILE__, __LINE__, "reply to op %u says %u bytes, has %zd", h.op,
				h.size, n);
		if (h.flags & ~GR_HDR_MORE)
			fz_fail(__FILE__, __LINE__, "reply to op %u has flags %#x", h.op, h.flags);
		seen->msgs++;
		if (h.seq == seq) {
			seen->answered = true;
			seen->result = h.result;
			seen->nfds = nfds;
			size_t len = (size_t)n - sizeof(h);
			memset(seen->payload, 0, sizeof(seen->payload));
			memcpy(seen->payload, buf + sizeof(h),
			       len < sizeof(seen->payload) ? len : sizeof(seen->payload));
		}
		for (unsigned i = 0; i < nfds; i++) {
			if (pool)
				fz_pool_add(pool, fds[i]);
			else
				close(fds[i]);
		}
	}
}

void fz_settle(struct broker *b, const int *socks, const uint32_t *seqs, struct fz_seen *seen,
	       unsigned n, struct fz_pool *pool)
{
	/* A reply stream larger than the socket buffer waits in the broker's
	 * queue until we read: go round until a pump brings nothing. */
	for (unsigned round = 0;; round++) {
		FZ_CHECK(round < 100000);
		fz_pump(b);
		unsigned got = 0;
		for (unsigned i = 0; i < n; i++) {
			if (socks[i] < 0 || seen[i].closed)
				continue;
			unsigned before = seen[i].msgs;
			fz_drain(socks[i], seqs[i], &seen[i], pool);
			got += seen[i].msgs - before + seen[i].closed;
		}
		if (got == 0)
			return;
	}
}

int fz_hello(struct broker *b, int sock, uint16_t kind, uint16_t domid, uint64_t *file_id)
{
	struct gr_hello hello = { .version = GR_PROTO_VERSION, .kind = kind, .domid = domid };
	bool device = kind == GR_KIND_GNTALLOC || kind == GR_KIND_GNTDEV || kind == GR_KIND_EVTCHN;
	const uint32_t seq = 1;
	int r = fz_send(sock, GR_OP_HELLO, 0, seq, &hello, sizeof(hello), &sock, device);
	FZ_CHECK_EQ(r, 0);
	struct fz_seen seen = { 0 };
	fz_settle(b, &sock, &seq, &seen, 1, NULL);
	/* A HELLO is always answered; a refused one then closes. */
	FZ_CHECK(seen.answered);
	if (file_id) {
		struct gr_hello_reply rep;
		memcpy(&rep, seen.payload, sizeof(rep));
		*file_id = rep.file_id;
	}
	return seen.result;
}

int fz_make_fd(unsigned kind, int own_sock)
{
	int fd = -1, p[2], sv[2];
	switch (kind) {
	case FZ_FD_OWN_SOCKET:
		fd = fcntl(own_sock, F_DUPFD_CLOEXEC, 0);
		break;
	case FZ_FD_SOCKET:
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
			close(sv[1]);
			fd = sv[0];
		}
		break;
	case FZ_FD_EVENTFD:
		fd = eventfd(0, EFD_CLOEXEC);
		break;
	case FZ_FD_MEMFD:
		fd = memfd_create("fuzz", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, 4096) < 0) {
			close(fd);
			fd = -1;
		}
		break;
	case FZ_FD_PIPE_READ:
	case FZ_FD_PIPE_WRITE:
		if (pipe2(p, O_CLOEXEC) == 0) {
			fd = p[kind == FZ_FD_PIPE_WRITE];
			close(p[kind != FZ_FD_PIPE_WRITE]);
		}
		break;
	case FZ_FD_DEVNULL:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	default:
		break;
	}
	return fd;
}

void fz_check_idle(struct broker *b)
{
	struct broker_stats st;
	broker_get_stats(b, &st);
	if (st.connections || st.files || st.allocations || st.mappings || st.grants || st.domains)
		fz_fail(__FILE__, __LINE__,
			"idle broker holds %u connections, %u files, %u allocations, %u mappings, "
			"%u grants, %u domains",
			st.connections, st.files, st.allocations, st.mappings, st.grants,
			st.domains);
}
