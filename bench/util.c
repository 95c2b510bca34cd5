/*
 * Timing, statistics, placement and the processes of a measurement.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

unsigned scaled(unsigned n, unsigned min)
{
	double v = n * opt.scale;
	return v < min ? min : (unsigned)v;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void samples_add(struct samples *s, double ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		double *v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
}

void samples_free(struct samples *s)
{
	free(s->v);
	*s = (struct samples){ 0 };
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v. */
static double percentile(const double *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p / 100.0 * (double)n);
	return v[k ? k - 1 : 0];
}

struct stat_sum summarize(struct samples *s)
{
	struct stat_sum r = { 0 };
	if (!s->n)
		return r;
	qsort(s->v, s->n, sizeof(double), cmp_double);
	r.n = (uint32_t)s->n;
	r.min = s->v[0];
	r.p99 = percentile(s->v, s->n, 99);
	r.median = s->n % 2 ? s->v[s->n / 2] : (s->v[s->n / 2 - 1] + s->v[s->n / 2]) / 2;
	return r;
}

static int sample_once(struct bench_op *op, bool keep)
{
	uint64_t t0 = now_ns();
	for (unsigned b = 0; b < op->batch; b++) {
		int r = op->fn(op->ctx);
		if (r < 0) {
			op->err = r;
			return r;
		}
	}
	uint64_t t1 = now_ns();
	if (keep)
		samples_add(&op->s, (double)(t1 - t0) / op->batch);
	return 0;
}

unsigned calibrate(struct bench_op *op, double target_ns)
{
	op->batch = 1;
	double best = 1e18;
	for (int i = 0; i < 20 && !op->err; i++) {
		uint64_t t0 = now_ns();
		if (op->fn(op->ctx) < 0)
			break;
		double t = (double)(now_ns() - t0);
		best = t < best ? t : best;
	}
	if (!op->err && best < target_ns)
		op->batch = (unsigned)(target_ns / (best > 1 ? best : 1));
	if (op->batch > 4096)
		op->batch = 4096;
	if (op->batch < 1)
		op->batch = 1;
	return op->batch;
}

void run_interleaved(struct bench_op *ops, unsigned nops, unsigned rounds, unsigned per_round,
		     unsigned warmup)
{
	for (unsigned i = 0; i < nops; i++) {
		if (!ops[i].batch)
			ops[i].batch = 1;
		for (unsigned w = 0; w < warmup && !ops[i].err; w++)
			sample_once(&ops[i], false);
	}
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned k = 0; k < nops; k++) {
			struct bench_op *op = &ops[(r + k) % nops];
			for (unsigned j = 0; j < per_round && !op->err; j++)
				sample_once(op, true);
		}
	}
}

/* ---- placement and processes ---------------------------------------------- */

int pin_self(int cpu)
{
	if (cpu < 0)
		return 0;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		fprintf(stderr, "granted-bench: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
		return -1;
	}
	return 0;
}

int link_init(struct link *l)
{
	int a[2], b[2];
	if (pipe2(a, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(b, O_CLOEXEC) < 0) {
		int e = errno;
		close(a[0]);
		close(a[1]);
		return -e;
	}
	/* this side reads a and writes b; the other reads b and writes a */
	l->rd = a[0];
	l->other_wr = a[1];
	l->other_rd = b[0];
	l->wr = b[1];
	return 0;
}

void link_close(struct link *l)
{
	int *fds[] = { &l->rd, &l->wr, &l->other_rd, &l->other_wr };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int link_send_buf(struct link *l, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t k = write(l->wr, p, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EPIPE;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

int link_recv_buf(struct link *l, void *buf, size_t len)
{
	char *p = buf;
	while (len) {
		struct pollfd pfd = { .fd = l->rd, .events = POLLIN };
		int r = poll(&pfd, 1, 20000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return -ETIMEDOUT;
		ssize_t k = read(l->rd, p, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EPIPE;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

int link_send(struct link *l, uint64_t v)
{
	return link_send_buf(l, &v, sizeof(v));
}

int link_recv(struct link *l, uint64_t *v)
{
	return link_recv_buf(l, v, sizeof(*v));
}

void set_domid(unsigned domid)
{
	char buf[16];
	snprintf(buf, sizeof(buf), "%u", domid);
	setenv("GRANTED_DOMID", buf, 1);
}

static void close_inherited(const int *keep, int nkeep)
{
	int fds[1024], n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	while (d && (de = readdir(d)) && n < 1024) {
		int fd = atoi(de->d_name);
		if (de->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
			continue;
		bool kept = false;
		for (int i = 0; i < nkeep; i++)
			kept |= keep[i] == fd;
		if (!kept)
			fds[n++] = fd;
	}
	if (d)
		closedir(d);
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

pid_t fork_domain(unsigned domid, int cpu, struct link *l, const int *keep, int nkeep)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid != 0) {
		if (pid > 0 && l) {
			close(l->other_rd);
			close(l->other_wr);
			l->other_rd = l->other_wr = -1;
		}
		return pid;
	}
	int all[34];
	int n = 0;
	if (l) {
		close(l->rd);
		close(l->wr);
		l->rd = l->other_rd;
		l->wr = l->other_wr;
		l->other_rd = l->other_wr = -1;
		all[n++] = l->rd;
		all[n++] = l->wr;
	}
	for (int i = 0; i < nkeep && n < 34; i++)
		all[n++] = keep[i];
	close_inherited(all, n);
	/* A measurement's processes go with the one that started them. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	set_domid(domid);
	pin_self(cpu);
	return 0;
}

void kill_wait(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

int wait_ok(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, "granted-bench: process %d killed by signal %d (%s)\n", (int)pid,
			WTERMSIG(status), strsignal(WTERMSIG(status)));
	return -1;
}

int open_dev(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "granted-bench: open %s (domain %s): %s\n", path,
			getenv("GRANTED_DOMID") ? getenv("GRANTED_DOMID") : "?", strerror(errno));
	return fd;
}

/* ---- raw syscalls --------------------------------------------------------- */

void *raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

int raw_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

int raw_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}

ssize_t raw_read(int fd, void *buf, size_t len)
{
	return syscall(SYS_read, fd, buf, len);
}

ssize_t raw_write(int fd, const void *buf, size_t len)
{
	return syscall(SYS_write, fd, buf, len);
}

/* ---- the fd server -------------------------------------------------------- */

#define FD_MSG 32 /* about the size of a broker request or reply */

static void fd_server_loop(int sock)
{
	int memfd = (int)syscall(SYS_memfd_create, "bench-fd-server", MFD_CLOEXEC);
	if (memfd < 0 || syscall(SYS_ftruncate, memfd, (long)PAGE) < 0)
		_exit(1);
	char buf[FD_MSG];
	for (;;) {
		ssize_t k = recv(sock, buf, sizeof(buf), 0);
		if (k <= 0)
			_exit(k == 0 ? 0 : 1);
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} c = { 0 };
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr m = { .msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = c.b,
				    .msg_controllen = sizeof(c.b) };
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &memfd, sizeof(int));
		if (sendmsg(sock, &m, MSG_NOSIGNAL) != sizeof(buf))
			_exit(1);
	}
}

int fd_server_start(struct fd_server *srv)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t pid = fork_domain(0, opt.cpu_broker, NULL, &sv[1], 1);
	if (pid == 0)
		fd_server_loop(sv[1]);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -errno;
	}
	srv->pid = pid;
	srv->sock = sv[0];
	return 0;
}

void fd_server_stop(struct fd_server *srv)
{
	if (srv->sock >= 0)
		close(srv->sock);
	srv->sock = -1;
	if (srv->pid > 0)
		wait_ok(srv->pid);
	srv->pid = 0;
}

int fd_round_trip(void *ctx)
{
	struct fd_server *srv = ctx;
	char buf[FD_MSG] = { 1 };
	if (send(srv->sock, buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf))
		return -errno;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} c;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr m = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.b, .msg_controllen = sizeof(c.b)
	};
	ssize_t k = recvmsg(srv->sock, &m, MSG_CMSG_CLOEXEC);
	if (k != sizeof(buf))
		return k < 0 ? -errno : -EPROTO;
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	if (!h || h->cmsg_type != SCM_RIGHTS || (m.msg_flags & MSG_CTRUNC))
		return -EPROTO;
	int fd;
	memcpy(&fd, CMSG_DATA(h), sizeof(int));
	raw_close(fd);
	return 0;
}
