/*
 * Exhausting the broker: a client that asks and never reads its answers,
 * on many connections, and the broker at its fd limit. The broker must
 * keep serving every other domain. Each test runs a broker of its own
 * (GRANTED_BROKER), which it takes down even if it hangs.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

typedef uint16_t domid_t;
typedef uint32_t grant_ref_t;
#include <xen/evtchn.h>
#include <xen/gntalloc.h>

#include "raw.h"
#include "sec.h"

#define PAGE 4096u

static struct raw_reply rep;

/* A process's soft RLIMIT_NOFILE. */
static long fd_limit(pid_t pid)
{
	struct rlimit rl;
	CHECK_OK(prlimit(pid, RLIMIT_NOFILE, NULL, &rl));
	return (long)rl.rlim_cur;
}

/*
 * At its fd limit the broker refuses new clients, but it must keep serving
 * the ones it has: here its limit is lowered to the fds it holds (prlimit),
 * a new client connects, and an existing client asks for a BARRIER, which
 * needs no fd. Then the limit comes back, and everything works as before.
 */
TEST(fd_limit_refuses_newcomers_serves_the_others)
{
	/* A broker of our own: its log goes to a file. */
	struct private_broker pb;
	sec_private_broker(&pb, true, 0);
	pid_t b = pb.pid;
	int s;
	CHECK_EQ(raw_hello(GR_KIND_GNTALLOC, 1, &s), 0);
	/* Settled: whatever the broker opened for the HELLO is closed. */
	CHECK_EQ(raw_call(s, GR_OP_BARRIER, NULL, 0, NULL, 0, &rep), 0);
	struct rlimit old;
	CHECK_OK(prlimit(b, RLIMIT_NOFILE, NULL, &old));
	/* The lowest fd number the broker does not use: below it, all are
	 * taken, so with this limit its table is full. */
	int hole = 0;
	for (;; hole++) {
		char p[80];
		snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)b, hole);
		if (access(p, F_OK) < 0)
			break;
	}
	struct rlimit low = { .rlim_cur = (rlim_t)hole, .rlim_max = old.rlim_max };
	CHECK_OK(prlimit(b, RLIMIT_NOFILE, &low, NULL));
	int newcomer = raw_connect();
	usleep(50 * 1000);
	CHECK_EQ(raw_send(s, GR_OP_BARRIER, 99, NULL, 0, NULL, 0), 0);
	int fds[RAW_FDS_MAX];
	unsigned nfds;
	char buf[64];
	long n = raw_recv(s, buf, sizeof(buf), fds, &nfds, NULL, 500);
	bool refused = raw_closed(newcomer, 500);
	CHECK_OK(prlimit(b, RLIMIT_NOFILE, &old, NULL));
	close(newcomer);
	tap_note("with the broker's table full: BARRIER of an existing client %s; the newcomer %s",
		 n > 0 ? "answered" : "not answered within 500 ms",
		 refused ? "was refused" : "got no answer");
	/* Back to normal. */
	if (n <= 0)
		CHECK(raw_recv(s, buf, sizeof(buf), fds, &nfds, NULL, 2000) > 0);
	CHECK_EQ(raw_call(s, GR_OP_BARRIER, NULL, 0, NULL, 0, &rep), 0);
	close(s);
	CHECK_EQ(raw_hello(GR_KIND_GNTDEV, 1, &s), 0);
	close(s);
	CHECK_EQ(sec_stop_broker(b), 0);
	unsigned lines = 0;
	char line[512];
	FILE *fp = fopen(pb.log, "re");
	while (fp && fgets(line, sizeof(line), fp))
		lines += strstr(line, "out of file descriptors: refused") != NULL;
	if (fp)
		fclose(fp);
	tap_note("the broker logged 'out of file descriptors: refused' %u times", lines);
	sec_rmdir(pb.dir);
	CHECK(n > 0);
	CHECK(refused);
}

/*
 * The broker's answers are queued while a client does not read them, and
 * each queued grant copy answer holds an fd (the memory). The broker stops
 * reading a client whose queue is full, but a domain can open many
 * connections: it must not be able to make the broker run out of fds and
 * so deny every other domain. Here domain 2 floods grant copy requests on
 * 32 connections (SEC_UNREAD_CONNS) and never reads, while domain 5 opens,
 * grants, maps and binds a port in a loop: every call of domain 5 must
 * succeed.
 */
TEST_TIMEOUT(unread_replies_cannot_starve_other_domains, 60)
{
	/* A broker of our own: if it hangs, the harness's is still fine. */
	struct private_broker pb;
	sec_private_broker(&pb, false, 0);
	pid_t b = pb.pid;
	struct usage u0;
	sec_usage_settled(b, &u0);
	int nconns = getenv("SEC_UNREAD_CONNS") ? atoi(getenv("SEC_UNREAD_CONNS")) : 32;
	struct grant g;
	grant_make(&g, 2, true, 's');
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(5, &l);
	if (pid == 0) {
		unsigned rounds = 0, failures = 0;
		int first = 0;
		const char *what = "";
		tap_send(&l, 0);
		struct pollfd pfd = { .fd = l.rd, .events = POLLIN };
		while (poll(&pfd, 1, 0) == 0) {
			rounds++;
			int ga = open("/dev/xen/gntalloc", O_RDWR | O_CLOEXEC);
			int ev = open("/dev/xen/evtchn", O_RDWR | O_CLOEXEC);
			struct ioctl_gntalloc_alloc_gref op = { .domid = 6,
								.flags = 1,
								.count = 1 };
			struct ioctl_evtchn_bind_unbound_port ub = { .remote_domain = 6 };
			void *p = MAP_FAILED;
			const char *step =
				ga < 0						? "open gntalloc"
				: ev < 0					? "open evtchn"
				: ioctl(ga, IOCTL_GNTALLOC_ALLOC_GREF, &op) < 0 ? "ALLOC_GREF"
				: (p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ga,
					    (off_t)op.index)) == MAP_FAILED
					? "mmap"
				: ioctl(ev, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &ub) < 0
					? "BIND_UNBOUND_PORT"
					: NULL;
			if (step && !failures++) {
				first = errno;
				what = step;
			}
			if (p != MAP_FAILED)
				munmap(p, PAGE);
			if (ga >= 0)
				close(ga);
			if (ev >= 0)
				close(ev);
		}
		tap_note("domain 5 meanwhile: %u rounds, %u failed%s%s%s", rounds, failures,
			 failures ? " (first: " : "", what, failures ? ")" : "");
		if (failures)
			tap_note("domain 5's first failure: %s", strerror(first));
		tap_send(&l, failures);
		tap_child_exit();
	}
	CHECK_EQ(tap_recv(&l), 0);
	struct {
		struct gr_hdr h;
		struct gr_copy_refs c;
		struct gr_copy_ref r;
	} req = { { .op = GR_OP_COPY_REFS, .size = sizeof(req) },
		  { .n = 1 },
		  { .ref = g.ref, .domid = 1 } };
	int socks[256];
	int sent = 0, peak = 0;
	for (int k = 0; k < nconns && k < 256; k++) {
		CHECK_EQ(raw_hello(GR_KIND_GNTDEV, 2, &socks[k]), 0);
		/* Until the broker stops reading this one for 100 ms. */
		double idle_since = 0;
		for (int i = 0; i < 100000; i++) {
			req.h.seq = (uint32_t)i + 1;
			int r = raw_send_nowait(socks[k], &req, sizeof(req));
			if (r == -EAGAIN) {
				if (!idle_since)
					idle_since = tap_now_ms();
				else if (tap_now_ms() - idle_since > 100)
					break;
				usleep(1000);
				continue;
			}
			if (r < 0)
				break; /* dropped */
			idle_since = 0;
			sent++;
		}
		struct usage u;
		sec_usage(b, &u);
		if (u.fds > peak)
			peak = u.fds;
	}
	tap_note("%d grant copy requests on %d connections, replies unread: the broker held "
		 "up to %d fds (%d before)",
		 sent, nconns, peak, u0.fds);
	tap_send(&l, 1);
	uint64_t failures = tap_recv(&l);
	tap_wait_ok(pid);
	tap_link_close(&l);
	for (int k = 0; k < nconns && k < 256; k++)
		close(socks[k]);
	grant_free(&g);
	sec_expect_back_of(b, &u0, 3000);
	/* What one domain can make the broker hold stays well away from the
	 * broker's own limit, whose exhaustion would fail everyone. */
	long limit = fd_limit(b);
	tap_note("the broker's fd limit: %ld", limit);
	CHECK_EQ(sec_stop_broker(b), 0);
	sec_rmdir(pb.dir);
	CHECK(peak < limit / 2);
	CHECK_EQ(failures, 0);
}

int main(int argc, char **argv)
{
	/* Each test has a broker of its own. */
	return tap_main(argc, argv, TAP_PRELOAD);
}
