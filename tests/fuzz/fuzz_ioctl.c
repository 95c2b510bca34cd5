/*
 * Fuzz target: the shim's ioctl decoding (shim/ioctl.c, built into this
 * program) on devices opened through libgranted, against a real broker in
 * a forked child. Arguments are placed so that they end where an unmapped
 * page begins: reading past them must be EFAULT, never a crash. Pointers
 * inside arguments (GRANT_COPY's segments, local buffers) can be made to
 * point into that area or into the unmapped page; any other pointer is made
 * one that faults (tame()).
 *
 * Devices (slots, opened on first use): 0 gntalloc of domain 1, 1 gntdev
 * of 2, 2 evtchn of 1, 3 evtchn of 2, 4 gntdev of 1, 5 gntalloc of 2.
 *
 * Input: byte 0: bit 0 opens with O_CLOEXEC (a solo gntdev file), bit 1
 * opens read-only. Then records, each starting with a control byte `ctl`:
 *   bits 0..2  slot 0..5: an ioctl on that device; 6: an mmap; 7: an
 *              action on a mapping
 *   ioctl:  bit 3: the request is 4 raw bytes, else a byte indexing reqs[];
 *           bit 4: the argument is a raw 8-byte pointer (nothing else
 *           follows), else: the length (bit 7: 2 bytes, else 1), the
 *           bytes, then (bits 5..6) that many fixups of 4 bytes: an
 *           offset in the argument and a target in the area, whose
 *           address is written there
 *   mmap:   slot, page offset, pages - 1 (& 7), prot (bits 0..1) and
 *           MAP_SHARED (bit 2) bytes
 *   action: mapping, what (& 3: munmap, read each page, write each page,
 *           munmap the first page)
 *
 * Checked: no crash; results are 0, a port from a bind, or an errno, and
 * never EIO (the broker closed on us); an unknown request is ENOTTY (ENOSYS
 * for evtchn); after closing everything this process has the fds it had,
 * and the broker has no domain left.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "fuzz.h"
#include "log.h"
#include "shim.h"
#include "xen_abi.h"

#define AREA_SIZE (4 * 4096u)
#define NSLOTS	  6
#define NMAPS	  16

static const struct {
	enum granted_device kind;
	uint16_t domid;
} slots[NSLOTS] = {
	{ GRANTED_GNTALLOC, 1 }, { GRANTED_GNTDEV, 2 }, { GRANTED_EVTCHN, 1 },
	{ GRANTED_EVTCHN, 2 },	 { GRANTED_GNTDEV, 1 }, { GRANTED_GNTALLOC, 2 },
};

static const unsigned long reqs[] = {
	IOCTL_GNTALLOC_ALLOC_GREF,
	IOCTL_GNTALLOC_DEALLOC_GREF,
	IOCTL_GNTALLOC_SET_UNMAP_NOTIFY,
	IOCTL_GNTDEV_MAP_GRANT_REF,
	IOCTL_GNTDEV_UNMAP_GRANT_REF,
	IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR,
	IOCTL_GNTDEV_SET_MAX_GRANTS,
	IOCTL_GNTDEV_GRANT_COPY,
	IOCTL_EVTCHN_BIND_VIRQ,
	IOCTL_EVTCHN_BIND_INTERDOMAIN,
	IOCTL_EVTCHN_BIND_UNBOUND_PORT,
	IOCTL_EVTCHN_UNBIND,
	IOCTL_EVTCHN_NOTIFY,
	IOCTL_EVTCHN_RESET,
	IOCTL_EVTCHN_RESTRICT_DOMID,
};
#define NREQS (sizeof(reqs) / sizeof(reqs[0]))

static pid_t broker_pid;
static char sock_dir[64], sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char *area; /* AREA_SIZE bytes, then an unmapped page */

static void stop_broker(void)
{
	if (broker_pid > 0) {
		kill(broker_pid, SIGKILL);
		waitpid(broker_pid, NULL, 0);
		broker_pid = 0;
	}
	unlink(sock_path);
	rmdir(sock_dir);
}

static void check_broker_alive(void)
{
	int status;
	pid_t r = waitpid(broker_pid, &status, WNOHANG);
	if (r == broker_pid) {
		broker_pid = 0;
		fz_fail(__FILE__, __LINE__, "the broker died (status %#x)", status);
	}
}

static void run_broker(int lfd)
{
	struct broker_config cfg;
	struct broker *b;
	broker_config_defaults(&cfg);
	const char *lvl = getenv("GRANTED_FUZZ_LOG");
	cfg.log_level = lvl ? log_parse_level(lvl) : LOG_CRIT;
	cfg.grant_end_delay_ms = 0;
	cfg.gntalloc_limit = 64;
	cfg.max_ports = 63;
	cfg.gntdev_map_limit = 4096;
	if (broker_create(&cfg, lfd, &b) < 0)
		_exit(1);
	broker_run(b);
	broker_destroy(b);
	_exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/granted-fuzz-XXXXXX");
	FZ_CHECK(mkdtemp(sock_dir) != NULL);
	snprintf(sock_path, sizeof(sock_path), "%s/socket", sock_dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	FZ_CHECK(lfd >= 0);
	FZ_CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FZ_CHECK(listen(lfd, 128) == 0);
	pid_t parent = getpid();
	broker_pid = fork();
	FZ_CHECK(broker_pid >= 0);
	if (broker_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		run_broker(lfd);
	}
	close(lfd);
	atexit(stop_broker);
	FZ_CHECK(setenv("GRANTED_SOCKET", sock_path, 1) == 0);
	area = mmap(NULL, AREA_SIZE + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		    0);
	FZ_CHECK(area != MAP_FAILED);
	FZ_CHECK(mprotect(area + AREA_SIZE, 4096, PROT_NONE) == 0);
	return 0;
}

struct fmap {
	char *addr;
	size_t len;
	int prot;
};

struct run {
	int open_flags;
	struct granted_dev *devs[NSLOTS];
	struct fmap maps[NMAPS];
	unsigned nmaps;
};

static struct granted_dev *dev_of(struct run *rn, unsigned slot)
{
	if (!rn->devs[slot]) {
		int r = granted_open(slots[slot].kind, slots[slot].domid, rn->open_flags,
				     &rn->devs[slot]);
		if (r < 0) {
			check_broker_alive();
			fz_fail(__FILE__, __LINE__, "granted_open of slot %u: %s", slot,
				strerror(-r));
		}
	}
	return rn->devs[slot];
}

static bool known(enum granted_device kind, unsigned long req)
{
	switch (req) {
	case IOCTL_GNTALLOC_ALLOC_GREF:
	case IOCTL_GNTALLOC_DEALLOC_GREF:
		return kind == GRANTED_GNTALLOC;
	case IOCTL_GNTALLOC_SET_UNMAP_NOTIFY: /* == IOCTL_GNTDEV_SET_UNMAP_NOTIFY */
		return kind != GRANTED_EVTCHN;
	case IOCTL_GNTDEV_MAP_GRANT_REF:
	case IOCTL_GNTDEV_UNMAP_GRANT_REF:
	case IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR:
	case IOCTL_GNTDEV_GRANT_COPY:
		return kind == GRANTED_GNTDEV;
	case IOCTL_EVTCHN_BIND_VIRQ:
	case IOCTL_EVTCHN_BIND_INTERDOMAIN:
	case IOCTL_EVTCHN_BIND_UNBOUND_PORT:
	case IOCTL_EVTCHN_UNBIND:
	case IOCTL_EVTCHN_NOTIFY:
	case IOCTL_EVTCHN_RESET:
	case IOCTL_EVTCHN_RESTRICT_DOMID:
		return kind == GRANTED_EVTCHN;
	default:
		return false;
	}
}

/*
 * A pointer from the input that does not point into the area becomes one
 * that faults for sure (the null page, or a non-canonical address): the
 * fuzzer learns real addresses from comparisons, and the shim writing into
 * this program's own heap would be a crash of ours, not of the shim.
 */
static uint64_t tame(uint64_t v)
{
	uintptr_t lo = (uintptr_t)area, hi = lo + AREA_SIZE + 4096;
	if (v < 65536 || (v >= lo && v < hi))
		return v;
	return v | 1ull << 63;
}

/* GRANT_COPY's pointers: the segment array and each local buffer. */
static void tame_copy(char *arg, size_t len)
{
	struct ioctl_gntdev_grant_copy op;
	if (len < sizeof(op))
		return;
	memcpy(&op, arg, sizeof(op));
	op.segments = (void *)(uintptr_t)tame((uintptr_t)op.segments);
	memcpy(arg, &op, sizeof(op));
	char *segs = (char *)op.segments;
	if ((uintptr_t)segs < (uintptr_t)area || (uintptr_t)segs >= (uintptr_t)area + AREA_SIZE)
		return;
	size_t n = (size_t)(area + AREA_SIZE - segs) / sizeof(struct gntdev_grant_copy_segment);
	for (size_t i = 0; i < n && i < op.count; i++) {
		struct gntdev_grant_copy_segment sg;
		memcpy(&sg, segs + i * sizeof(sg), sizeof(sg));
		if (!(sg.flags & GNTCOPY_source_gref))
			sg.source.virt = (void *)(uintptr_t)tame((uintptr_t)sg.source.virt);
		if (!(sg.flags & GNTCOPY_dest_gref))
			sg.dest.virt = (void *)(uintptr_t)tame((uintptr_t)sg.dest.virt);
		memcpy(segs + i * sizeof(sg), &sg, sizeof(sg));
	}
}

static void do_ioctl(struct run *rn, uint8_t ctl, struct fz_in *in)
{
	unsigned slot = ctl & 7;
	unsigned long req = (ctl & 8) ? fz_u32(in) : reqs[fz_u8(in) % NREQS];
	void *arg;
	if (ctl & 16) {
		arg = (void *)(uintptr_t)tame(fz_u64(in));
	} else {
		size_t want = (ctl & 0x80) ? fz_u16(in) : fz_u8(in);
		const uint8_t *bytes;
		size_t len = fz_bytes(in, want < AREA_SIZE ? want : AREA_SIZE, &bytes);
		char *a = area + AREA_SIZE - len;
		memcpy(a, bytes, len);
		for (unsigned i = 0; i < ((ctl >> 5) & 3u); i++) {
			uint16_t off = fz_u16(in), target = fz_u16(in);
			uint64_t v = (uintptr_t)area + target % (AREA_SIZE + 4096);
			if (len >= sizeof(v))
				memcpy(a + off % (len - sizeof(v) + 1), &v, sizeof(v));
		}
		if (req == IOCTL_GNTDEV_GRANT_COPY)
			tame_copy(a, len);
		arg = a;
	}
	struct shfile f = { .dev = dev_of(rn, slot), .kind = slots[slot].kind, .nfds = 1 };
	int r = shim_ioctl(&f, req, arg);
	if (fz_trace())
		fprintf(stderr, "slot %u: ioctl %#lx -> %d\n", slot, req, r);
	if (r == -EIO)
		check_broker_alive();
	if (r > 0 && !(f.kind == GRANTED_EVTCHN &&
		       (req == IOCTL_EVTCHN_BIND_VIRQ || req == IOCTL_EVTCHN_BIND_INTERDOMAIN ||
			req == IOCTL_EVTCHN_BIND_UNBOUND_PORT)))
		fz_fail(__FILE__, __LINE__, "ioctl %#lx on slot %u returned %d", req, slot, r);
	if (r < -4095 || r == -EIO)
		fz_fail(__FILE__, __LINE__, "ioctl %#lx on slot %u failed with %d", req, slot, r);
	if (!known(f.kind, req))
		FZ_CHECK_EQ(r, f.kind == GRANTED_EVTCHN ? -ENOSYS : -ENOTTY);
}

static void do_mmap(struct run *rn, struct fz_in *in)
{
	unsigned slot = fz_u8(in) % NSLOTS;
	uint64_t offset = (uint64_t)fz_u8(in) * XEN_PAGE_SIZE;
	size_t len = (size_t)(fz_u8(in) % 8 + 1) * XEN_PAGE_SIZE;
	uint8_t how = fz_u8(in);
	int prot = how & 3, flags = (how & 4) ? MAP_SHARED : MAP_PRIVATE;
	if (rn->nmaps == NMAPS)
		return;
	void *addr;
	int r = granted_mmap(dev_of(rn, slot), NULL, len, prot, flags, offset, &addr);
	if (fz_trace())
		fprintf(stderr, "slot %u: mmap of %zu bytes at %#llx, prot %d flags %d -> %d\n",
			slot, len, (unsigned long long)offset, prot, flags, r);
	if (r == -EIO)
		check_broker_alive();
	if (r > 0 || r == -EIO)
		fz_fail(__FILE__, __LINE__, "granted_mmap of slot %u at page %llu: %d", slot,
			(unsigned long long)(offset / XEN_PAGE_SIZE), r);
	if (r == 0)
		rn->maps[rn->nmaps++] = (struct fmap){ addr, len, prot };
}

static void do_map_action(struct run *rn, struct fz_in *in)
{
	uint8_t which = fz_u8(in), what = fz_u8(in) & 3;
	if (rn->nmaps == 0)
		return;
	unsigned i = which % rn->nmaps;
	char *p = rn->maps[i].addr;
	size_t len = rn->maps[i].len;
	switch (what) {
	case 0:
		FZ_CHECK_EQ(granted_munmap(p, len), 0);
		rn->maps[i] = rn->maps[--rn->nmaps];
		break;
	case 1:
	case 2:
		/* Every page of a mapping is there: no SIGBUS, no SIGSEGV. */
		for (size_t off = 0; off < len; off += XEN_PAGE_SIZE) {
			if ((rn->maps[i].prot & PROT_READ) && what == 1)
				(void)*(volatile char *)(p + off);
			if ((rn->maps[i].prot & PROT_WRITE) && what == 2)
				*(volatile char *)(p + off) = 1;
		}
		break;
	case 3:
		FZ_CHECK_EQ(granted_munmap(p, XEN_PAGE_SIZE), 0);
		rn->maps[i].addr += XEN_PAGE_SIZE;
		rn->maps[i].len -= XEN_PAGE_SIZE;
		if (rn->maps[i].len == 0)
			rn->maps[i] = rn->maps[--rn->nmaps];
		break;
	}
}

/* The broker releases what a closed file held before close returns; a
 * grant still mapped ends on the broker's next timer tick. */
static void check_broker_idle(void)
{
	ssize_t n = 0;
	for (int tries = 0; tries < 200; tries++) {
		struct granted_domain_info *rows = NULL;
		n = granted_list_domains(&rows);
		free(rows);
		if (n == 0)
			return;
		if (n < 0)
			check_broker_alive();
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	fz_fail(__FILE__, __LINE__, "the broker still has %zd domains after everything closed", n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	check_broker_alive();
	int fds_before = fz_count_fds();
	memset(area, 0, AREA_SIZE);
	uint8_t opts = fz_u8(&in);
	struct run rn = { .open_flags =
				  ((opts & 1) ? O_CLOEXEC : 0) | ((opts & 2) ? O_RDONLY : O_RDWR) };
	while (in.n > 0) {
		uint8_t ctl = fz_u8(&in);
		if ((ctl & 7) < NSLOTS)
			do_ioctl(&rn, ctl, &in);
		else if ((ctl & 7) == 6)
			do_mmap(&rn, &in);
		else
			do_map_action(&rn, &in);
	}
	while (rn.nmaps > 0) {
		rn.nmaps--;
		FZ_CHECK_EQ(granted_munmap(rn.maps[rn.nmaps].addr, rn.maps[rn.nmaps].len), 0);
	}
	for (unsigned i = 0; i < NSLOTS; i++)
		granted_close(rn.devs[i]);
	fz_check_fds(fds_before);
	check_broker_idle();
	return 0;
}
