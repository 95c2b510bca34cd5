/*
 * Memory the broker hands out, used beyond what it allows: a hostile
 * grantee keeps the memfd the broker sent for a read-only grant and the
 * grant epoch page, and another process of the broker's user looks for
 * the broker's memfds in /proc. The memory must stay read-only where the
 * grant is, and out of reach where no grant is.
 *
 * Domain 1 grants through the devices (the shim); the attackers are forked
 * processes that speak the protocol themselves (common/protocol.h).
 */
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

typedef uint16_t domid_t;
typedef uint32_t grant_ref_t;
#include <xen/gntalloc.h>

#include "raw.h"
#include "sec.h"

#define PAGE 4096u

#define GNTST_okay 0

static struct raw_reply rep;
static struct usage before;

static void begin(void)
{
	sec_usage_settled(0, &before);
}

static void end(void)
{
	sec_expect_back(&before, 3000);
}

/* Attempts that should all be refused: each failure is noted, and the test
 * fails at the end with all of them on record. */
static int refused_wrongly;

#define EXPECT_ERR(expr, err)                                                                      \
	do {                                                                                       \
		errno = 0;                                                                         \
		long long x_r = (long long)(intptr_t)(expr);                                       \
		int x_e = errno;                                                                   \
		if (x_r != -1 || x_e != (err)) {                                                   \
			tap_note("%s:%d: %s = %lld errno %d (%s), expected -1 errno %d (%s)",      \
				 __FILE__, __LINE__, #expr, x_r, x_e, strerror(x_e), (err),        \
				 strerror(err));                                                   \
			refused_wrongly++;                                                         \
		}                                                                                  \
	} while (0)

/* ---- memory the broker sent ------------------------------------------ */

/* Drops every capability: what is left is an ordinary process of the
 * broker's user (uid 0 here is the owner of the broker's memfds). */
static void drop_capabilities(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	CHECK_OK(syscall(SYS_capset, &hdr, data));
}

/*
 * A new open of the same file, by its /proc links, from a process without
 * capabilities: refused by the memfd's mode (EACCES) and, for map_files,
 * by the missing CAP_CHECKPOINT_RESTORE (EPERM). A process with
 * CAP_DAC_OVERRIDE would get through, as root in dom0 maps any guest's
 * memory through privcmd on Xen: documented, not tested.
 */
static void try_reopen(int fd, const char *p, uint64_t off)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		refused_wrongly = 0; /* this child's own count, added by the parent */
		drop_capabilities();
		char path[128];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		int rw;
		EXPECT_ERR(rw = open(path, O_RDWR | O_CLOEXEC), EACCES);
		if (rw >= 0) {
			tap_note("reopened %s read-write: pwrite -> %zd", path,
				 pwrite(rw, "W", 1, (off_t)off + 1));
			close(rw);
		}
		EXPECT_ERR(rw = open(path, O_WRONLY | O_CLOEXEC), EACCES);
		if (rw >= 0)
			close(rw);
		snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
			 (unsigned long)p + PAGE);
		EXPECT_ERR(rw = open(path, O_RDWR | O_CLOEXEC), EPERM);
		if (rw >= 0) {
			tap_note("opened %s read-write: pwrite -> %zd", path,
				 pwrite(rw, "W", 1, (off_t)off + 2));
			close(rw);
		}
		_exit(refused_wrongly > 255 ? 255 : refused_wrongly);
	}
	int st;
	CHECK_EQ(waitpid(pid, &st, 0), pid);
	CHECK(WIFEXITED(st));
	refused_wrongly += WEXITSTATUS(st);
}

/* Everything a process can try with an fd of a read-only grant's memory. */
static void try_writes(int fd, uint64_t off)
{
	CHECK_EQ(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	EXPECT_ERR(pwrite(fd, "W", 1, (off_t)off), EBADF);
	EXPECT_ERR(write(fd, "W", 1), EBADF);
	EXPECT_ERR(ftruncate(fd, 0), EINVAL);
	EXPECT_ERR(ftruncate(fd, 1 << 20), EINVAL);
	EXPECT_ERR(fallocate(fd, 0, 0, 1 << 20), EBADF);
	EXPECT_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, PAGE),
		   EBADF);
	EXPECT_ERR(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), EPERM);
	EXPECT_ERR(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off), EACCES);
	EXPECT_ERR(mmap(NULL, PAGE, PROT_WRITE, MAP_SHARED, fd, (off_t)off), EACCES);
	char *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, (off_t)off);
	CHECK(p != MAP_FAILED);
	EXPECT_ERR(mprotect(p, PAGE, PROT_READ | PROT_WRITE), EACCES);
	/* The access mode of an open file cannot change. */
	fcntl(fd, F_SETFL, O_RDWR);
	EXPECT_ERR(pwrite(fd, "W", 1, (off_t)off), EBADF);
	try_reopen(fd, p, off);
	munmap(p, PAGE);
}

/*
 * A hostile grantee keeps the memfd the broker sent for a read-only grant
 * (mmap and grant copy both send one) and tries to write with it: pwrite,
 * write, fallocate (EBADF), ftruncate (EINVAL), a seal (EPERM), a writable
 * shared mmap or mprotect (EACCES), and a new read-write open of the same
 * file through /proc/self/fd/N (EACCES) or /proc/self/map_files (EPERM). The
 * granter's page never changes.
 */
TEST(readonly_grant_memfd_stays_readonly)
{
	begin();
	struct tap_link l;
	tap_link_init(&l);
	pid_t pid = tap_fork_domain(2, &l);
	if (pid == 0) {
		uint32_t ref = (uint32_t)tap_recv(&l);
		int s, token, mem;
		uint64_t idx, off;
		bool writable;
		CHECK_EQ(raw_hello(GR_KIND_GNTDEV, 2, &s), 0);
		CHECK_EQ(raw_map(s, 1, ref, &idx), 0);
		CHECK_EQ(raw_mmap(s, idx, PROT_READ | PROT_WRITE, &token, &mem, &off, &writable),
			 -EINVAL);
		CHECK_EQ(raw_map(s, 1, ref, &idx), 0);
		CHECK_EQ(raw_mmap(s, idx, PROT_READ, &token, &mem, &off, &writable), 0);
		CHECK_EQ(writable, 0);
		try_writes(mem, off);
		close(mem);
		close(token);

		/* Grant copy's answer: the same memory, read-only. */
		struct {
			struct gr_copy_refs h;
			struct gr_copy_ref r;
		} req = { { .n = 1 }, { .ref = ref, .domid = 1 } };
		CHECK_EQ(raw_call(s, GR_OP_COPY_REFS, &req, sizeof(req), NULL, 0, &rep), 0);
		struct gr_copy_row row;
		CHECK_EQ(rep.len, sizeof(struct gr_copy_reply) + sizeof(row));
		memcpy(&row, rep.payload + sizeof(struct gr_copy_reply), sizeof(row));
		CHECK_EQ(row.status, GNTST_okay);
		CHECK_EQ(row.writable, 0);
		CHECK_EQ(rep.nfds, 1);
		try_writes(rep.fds[row.fd_index], (uint64_t)row.page * PAGE);
		raw_close_fds(rep.fds, rep.nfds);
		close(s);
		tap_send(&l, (uint64_t)refused_wrongly);
		tap_child_exit();
	}
	struct grant g;
	grant_make(&g, 2, false, 'r');
	tap_send(&l, g.ref);
	uint64_t wrong = tap_recv(&l);
	tap_wait_ok(pid);
	usleep(20 * 1000);
	grant_intact(&g, 'r');
	CHECK_EQ(wrong, 0);
	grant_free(&g);
	tap_link_close(&l);
	end();
}

/*
 * The grant epoch page every gntdev client gets with its HELLO reply is
 * shared by all domains: a client that could write it could keep another
 * client's cached grant copy answers alive after the grant ended. It is a
 * read-only open, and must stay one.
 */
TEST(grant_epoch_page_stays_readonly)
{
	begin();
	int s = raw_connect();
	struct gr_hello hello = { .version = GR_PROTO_VERSION, .kind = GR_KIND_GNTDEV, .domid = 5 };
	CHECK_EQ(raw_call(s, GR_OP_HELLO, &hello, sizeof(hello), &s, 1, &rep), 0);
	CHECK_EQ(rep.nfds, 1);
	int epoch = rep.fds[0];
	try_writes(epoch, 0);
	close(epoch);
	close(s);
	CHECK_EQ(refused_wrongly, 0);
	end();
}

/*
 * Another process of the broker's own user (here: a broker and its clients
 * all running as nobody) opens the broker's memfds through
 * /proc/BROKER/fd/N, bypassing every check: it must be refused (EACCES; a
 * broker that holds every domain's memory should not be dumpable).
 */
TEST(broker_memfds_closed_to_its_users_other_processes)
{
	struct private_broker pb;
	sec_private_broker(&pb, false, 65534);
	pid_t broker = pb.pid;
	struct tap_link l;
	tap_link_init(&l);
	pid_t granter = tap_fork_domain(1, &l);
	if (granter == 0) {
		CHECK_OK(setgid(65534));
		CHECK_OK(setuid(65534));
		struct grant g;
		grant_make(&g, 2, true, 's');
		tap_send(&l, 0);
		tap_recv(&l);
		grant_intact(&g, 's');
		grant_free(&g);
		tap_child_exit();
	}
	CHECK_EQ(tap_recv(&l), 0);
	pid_t pid = tap_fork_domain(3, NULL);
	if (pid == 0) {
		CHECK_OK(setgid(65534));
		CHECK_OK(setuid(65534));
		char path[128], target[256];
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)broker);
		DIR *d = opendir(path);
		if (!d) {
			CHECK_EQ(errno, EACCES);
			tap_child_exit();
		}
		struct dirent *de;
		int opened = 0, leaked = 0;
		while ((de = readdir(d))) {
			char link[400];
			snprintf(link, sizeof(link), "%s/%s", path, de->d_name);
			ssize_t n = readlink(link, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			if (strncmp(target, "/memfd:granted-d1", 17) != 0)
				continue;
			int fd = open(link, O_RDWR | O_CLOEXEC);
			if (fd < 0) {
				CHECK_EQ(errno, EACCES);
				continue;
			}
			opened++;
			char c = 0;
			if (pread(fd, &c, 1, 0) == 1 && c == 's')
				leaked++;
			close(fd);
		}
		closedir(d);
		if (opened)
			tap_fail(__FILE__, __LINE__,
				 "domain 3 opened %d of the broker's memfds of domain 1 read-write "
				 "through %s (%d with domain 1's data)",
				 opened, path, leaked);
		tap_child_exit();
	}
	int st = tap_wait(pid);
	tap_send(&l, 0);
	tap_wait_ok(granter);
	tap_link_close(&l);
	CHECK_EQ(sec_stop_broker(broker), 0);
	sec_rmdir(pb.dir);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		tap_fail(__FILE__, __LINE__, "the attacker got in (status %#x)", st);
}

int main(int argc, char **argv)
{
	return tap_main(argc, argv, TAP_PRELOAD | TAP_BROKER);
}
