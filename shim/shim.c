/*
 * The libc entry points a program reaches the devices through. Anything
 * that is not one of our files goes straight to libc; the only cost for
 * other fds is one table lookup (none while no device is open).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shim.h"
#include "xen_abi.h"

#define EXPORT __attribute__((visibility("default")))

/* glibc's fortified and large-file entry points, which its headers do not
 * declare for callers. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);

/* Fails the call the way a syscall does: -1 and errno. */
static int fail(int neg_errno)
{
	errno = -neg_errno;
	return -1;
}

/* A wrapper's result: -1 and errno for a negative errno, else the value
 * with errno as the caller had it. */
static ssize_t result(ssize_t r, int saved_errno)
{
	if (r < 0)
		return fail((int)r);
	errno = saved_errno;
	return r;
}

int shim_domid(uint16_t *out)
{
	const char *s = getenv("GRANTED_DOMID");
	if (!s || !*s) {
		*out = 0;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 0);
	if (errno || *end || v >= DOMID_FIRST_RESERVED)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

/* /dev/xen/privcmd: the hypercall device. Xen's tools open it before they
 * touch grants (xc_interface_open) and probe a few ioctls. We answer as a
 * kernel without those features: /dev/null behind it gives ENOTTY for every
 * ioctl and ENODEV for mmap, so probes fail the way the tools tolerate and
 * no call ever reports ESRCH for a domain that exists. */
#define PRIVCMD ((enum granted_device)100)

static enum granted_device device_of(const char *path)
{
	/* The path is the caller's: read it as the kernel would, without
	 * trusting it to be a valid pointer. Our names are 18 bytes. */
	char buf[20];
	size_t n = sizeof(buf);
	uintptr_t page_end = ((uintptr_t)path | 4095) + 1;
	if ((uintptr_t)path + n > page_end)
		n = page_end - (uintptr_t)path;
	if (!path || copy_in(buf, path, n) < 0)
		return 0;
	if (memchr(buf, '\0', n) == NULL)
		return 0;
	if (strcmp(buf, "/dev/xen/gntalloc") == 0)
		return GRANTED_GNTALLOC;
	if (strcmp(buf, "/dev/xen/gntdev") == 0)
		return GRANTED_GNTDEV;
	if (strcmp(buf, "/dev/xen/evtchn") == 0)
		return GRANTED_EVTCHN;
	if (strcmp(buf, "/dev/xen/privcmd") == 0)
		return PRIVCMD;
	return 0;
}

static int shim_open(enum granted_device kind, int flags)
{
	if (kind == PRIVCMD)
		return real.open("/dev/null", flags & (O_ACCMODE | O_CLOEXEC | O_NONBLOCK));
	uint16_t domid;
	struct shfile *f = NULL;
	int fd = -1, r = shim_domid(&domid);
	if (r < 0)
		return fail(r);
	f = calloc(1, sizeof(*f));
	if (!f)
		return fail(-ENOMEM);
	r = granted_open(kind, domid, flags, &f->dev);
	if (r < 0)
		goto out;
	f->kind = kind;
	/* The program's own fd: the lowest free number, as open() gives. */
	fd = real.fcntl(granted_fd(f->dev), (flags & O_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = fd_attach(fd, f);
out:
	if (r < 0) {
		if (fd >= 0)
			real.close(fd);
		if (f)
			granted_close(f->dev);
		free(f);
		return fail(r);
	}
	return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

EXPORT int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	real_init();
	int saved = errno;
	enum granted_device kind = device_of(path);
	errno = saved;
	if (kind)
		return shim_open(kind, flags);
	return real.open(path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...) __attribute__((alias("open")));

EXPORT int __open_2(const char *path, int flags)
{
	return open(path, flags);
}

EXPORT int __open64_2(const char *path, int flags)
{
	return open(path, flags);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	real_init();
	int saved = errno;
	enum granted_device kind = device_of(path);
	errno = saved;
	if (kind)
		return shim_open(kind, flags);
	return real.openat(dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return openat(dirfd, path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	return openat(dirfd, path, flags);
}

EXPORT int close(int fd)
{
	real_init();
	/* Forget the number first (once closed, another thread may get it),
	 * release the file after: the program's fd is one of its copies. */
	struct shfile *f = fd_detach(fd);
	int r = real.close(fd);
	if (f) {
		int saved = errno;
		fd_release(f);
		errno = saved;
	}
	return r;
}

EXPORT int close_range(unsigned first, unsigned last, int flags)
{
	real_init();
	int r = real.close_range(first, last, flags);
	if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC)) {
		int saved = errno;
		fd_forget_range(first, last);
		errno = saved;
	}
	return r;
}

EXPORT void closefrom(int lowfd)
{
	real_init();
	int saved = errno;
	if (lowfd >= 0)
		fd_forget_range((unsigned)lowfd, INT_MAX);
	errno = saved;
	real.closefrom(lowfd);
}

/* newfd now refers to what oldfd refers to. Without CLOEXEC it may reach
 * an exec'd or spawned program: the file is no longer ours alone. */
static void dup_done(int oldfd, int newfd, bool cloexec)
{
	int saved = errno;
	fd_forget(newfd); /* whatever newfd was, the dup closed it */
	struct shfile *f = fd_lookup(oldfd);
	if (f && fd_attach(newfd, f) < 0) {
		/* Cannot track it: better no fd than an fd we mishandle. */
		real.close(newfd);
		errno = EMFILE;
		return;
	}
	if (f && !cloexec)
		granted_mark_shared(f->dev);
	errno = saved;
}

EXPORT int dup(int fd)
{
	real_init();
	int r = real.dup(fd);
	if (r >= 0 && fd_lookup(fd)) {
		dup_done(fd, r, false);
		if (errno == EMFILE && !fd_lookup(r))
			return -1;
	}
	return r;
}

EXPORT int dup2(int oldfd, int newfd)
{
	real_init();
	int r = real.dup2(oldfd, newfd);
	if (r >= 0 && oldfd != newfd)
		dup_done(oldfd, newfd, false);
	return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	real_init();
	int r = real.dup3(oldfd, newfd, flags);
	if (r >= 0)
		dup_done(oldfd, newfd, flags & O_CLOEXEC);
	return r;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	unsigned long arg = va_arg(ap, unsigned long);
	va_end(ap);
	real_init();
	int r = real.fcntl(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && fd_lookup(fd))
		dup_done(fd, r, cmd == F_DUPFD_CLOEXEC);
	if (r >= 0 && cmd == F_SETFD && !(arg & FD_CLOEXEC)) {
		struct shfile *f = fd_lookup(fd);
		if (f) {
			int saved = errno;
			granted_mark_shared(f->dev);
			errno = saved;
		}
	}
	return r;
}

EXPORT int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

/* A device fd passed over a socket reaches another process. The caller's
 * msghdr is read as the kernel reads it: a bad one is the kernel's EFAULT
 * to give, never our crash. */
static void note_passed_fds(const struct msghdr *user_mh)
{
	if (!fd_any())
		return;
	struct msghdr mh;
	char control[1024];
	int saved = errno;
	if (copy_in(&mh, user_mh, sizeof(mh)) < 0 || !mh.msg_control ||
	    mh.msg_controllen < sizeof(struct cmsghdr))
		goto out;
	if (mh.msg_controllen > sizeof(control))
		mh.msg_controllen = sizeof(control);
	if (copy_in(control, mh.msg_control, mh.msg_controllen) < 0)
		goto out;
	mh.msg_control = control;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			struct shfile *f = fd_lookup(fd);
			if (f)
				granted_mark_shared(f->dev);
		}
	}
out:
	errno = saved;
}

/* glibc declares the address as a transparent union (_GNU_SOURCE). */
EXPORT int connect(int fd, __CONST_SOCKADDR_ARG arg, socklen_t len)
{
	const struct sockaddr *addr = arg.__sockaddr__;
	real_init();
	int r = real.connect(fd, addr, len);
	if (r == 0) {
		int saved = errno;
		int c = xenstore_claim(fd, addr, len);
		if (c < 0)
			return fail(c);
		errno = saved;
	}
	return r;
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *mh, int flags)
{
	real_init();
	note_passed_fds(mh);
	return real.sendmsg(fd, mh, flags);
}

EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	real_init();
	for (unsigned i = 0; v && i < n && fd_any(); i++)
		note_passed_fds(&v[i].msg_hdr);
	return real.sendmmsg(fd, v, n, flags);
}

EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	real_init();
	struct shfile *f = fd_lookup(fd);
	if (!f) {
		int r = real.ioctl(fd, req, arg);
		unsigned type = _IOC_TYPE(req);
		/* A device fd inherited across exec: the new image's table does
		 * not know it yet. Sockets answer ENOTTY to our numbers. */
		if (r < 0 && errno == ENOTTY && (type == 'G' || type == 'E')) {
			f = fd_discover(fd);
			if (!f) {
				errno = ENOTTY;
				return r;
			}
		} else {
			return r;
		}
	}
	int saved = errno;
	return (int)result(shim_ioctl(f, req, arg), saved);
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	real_init();
	int saved = errno;
	struct shfile *f = (flags & MAP_ANONYMOUS) ? NULL : fd_lookup(fd);
	void *p = MAP_FAILED;
	if (!f) {
		p = real.mmap(addr, len, prot, flags, fd, off);
		/* A device fd inherited across exec, not known here yet: a
		 * socket cannot be mapped (ENODEV). */
		if (p == MAP_FAILED && errno == ENODEV && !(flags & MAP_ANONYMOUS)) {
			f = fd_discover(fd);
			if (!f)
				errno = ENODEV;
		}
	}
	if (f) {
		int r = f->kind == GRANTED_EVTCHN
				? -ENODEV
				: granted_mmap(f->dev, addr, len, prot, flags, (uint64_t)off, &p);
		if (r < 0) {
			fail(r);
			return MAP_FAILED;
		}
		errno = saved;
		return p;
	}
	if (p != MAP_FAILED && (flags & MAP_FIXED)) {
		/* Whatever grant mapping was there is gone now. */
		saved = errno;
		granted_unmapped(p, len);
		errno = saved;
	}
	return p;
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

EXPORT int munmap(void *addr, size_t len)
{
	real_init();
	int r = real.munmap(addr, len);
	if (r == 0) {
		int saved = errno;
		granted_unmapped(addr, len);
		errno = saved;
	}
	return r;
}

EXPORT void *mremap(void *old, size_t oldlen, size_t newlen, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	void *new_addr = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
	va_end(ap);
	real_init();
	if (granted_is_mapped(old, oldlen)) {
		/* Grant mappings cannot grow (VM_DONTEXPAND) and we do not
		 * follow them when they move; shrinking in place is a munmap
		 * of the tail. */
		if (newlen > oldlen) {
			errno = EFAULT;
			return MAP_FAILED;
		}
		if (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
			errno = EINVAL;
			return MAP_FAILED;
		}
		void *p = real.mremap(old, oldlen, newlen, 0);
		if (p != MAP_FAILED && newlen < oldlen)
			granted_unmapped((char *)old + newlen, oldlen - newlen);
		return p;
	}
	return real.mremap(old, oldlen, newlen, flags, new_addr);
}

static ssize_t evtchn_read(struct shfile *f, void *buf, size_t n)
{
	uint32_t ports[1024];
	ssize_t r = granted_evtchn_read(f->dev, ports, n < sizeof(ports) ? n : sizeof(ports), 1);
	if (r <= 0)
		return r;
	/* A bad buffer is EFAULT with nothing consumed. */
	if (copy_out(buf, ports, (size_t)r) < 0) {
		granted_evtchn_consume(f->dev, 0);
		return -EFAULT;
	}
	granted_evtchn_consume(f->dev, (size_t)r / 4);
	return r;
}

static ssize_t evtchn_write(struct shfile *f, const void *buf, size_t n)
{
	uint32_t ports[1024];
	n &= ~(size_t)3;
	if (n > sizeof(ports))
		n = sizeof(ports);
	if (copy_in(ports, buf, n) < 0)
		return -EFAULT;
	return granted_evtchn_write(f->dev, ports, n);
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	real_init();
	struct shfile *f = fd_lookup(fd);
	if (!f)
		return real.read(fd, buf, n);
	int saved = errno;
	/* gntalloc and gntdev have no read: the VFS says EINVAL. */
	return result(f->kind == GRANTED_EVTCHN ? evtchn_read(f, buf, n) : -EINVAL, saved);
}

/* Seeking and positioned I/O: evtchn is a stream (ESPIPE); gntalloc and
 * gntdev have no read or write (EINVAL). */
static ssize_t positioned(struct shfile *f)
{
	return fail(f->kind == GRANTED_EVTCHN ? -ESPIPE : -EINVAL);
}

EXPORT off_t lseek(int fd, off_t off, int whence)
{
	real_init();
	struct shfile *f = fd_lookup(fd);
	if (f && f->kind == GRANTED_EVTCHN)
		return fail(-ESPIPE);
	return real.lseek(fd, off, whence);
}

EXPORT off_t lseek64(int fd, off_t off, int whence) __attribute__((alias("lseek")));

EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	real_init();
	struct shfile *f = fd_lookup(fd);
	return f ? positioned(f) : real.pread(fd, buf, n, off);
}

EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off) __attribute__((alias("pread")));

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	real_init();
	struct shfile *f = fd_lookup(fd);
	return f ? positioned(f) : real.pwrite(fd, buf, n, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
	__attribute__((alias("pwrite")));

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		abort(); /* what glibc's fortify check does */
	return read(fd, buf, n);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	real_init();
	struct shfile *f = fd_lookup(fd);
	if (!f)
		return real.write(fd, buf, n);
	int saved = errno;
	return result(f->kind == GRANTED_EVTCHN ? evtchn_write(f, buf, n) : -EINVAL, saved);
}

/*
 * poll: an evtchn fd is always writable and reports POLLERR alone after an
 * overflow, which its epoll set cannot say by itself; everything else is
 * the kernel's answer.
 */
static int poll_fix(struct pollfd *fds, nfds_t n, int (*wait)(struct pollfd *, nfds_t, void *),
		    void *ctx)
{
	bool ours = false, ready_now = false;
	bool rdnorm_only = false; /* an evtchn fd asks for POLLRDNORM, not POLLIN */
	for (nfds_t i = 0; i < n; i++) {
		struct shfile *f = fd_lookup(fds[i].fd);
		if (!f || f->kind != GRANTED_EVTCHN)
			continue;
		ours = true;
		if (granted_evtchn_poll(f->dev) & (fds[i].events | POLLERR))
			ready_now = true;
		if ((fds[i].events & (POLLRDNORM | POLLIN)) == POLLRDNORM)
			rdnorm_only = true;
	}
	if (!ours)
		return wait(fds, n, ctx);
	int r;
	if (ready_now) {
		r = real.poll(fds, n, 0);
	} else if (!rdnorm_only) {
		r = wait(fds, n, ctx);
	} else {
		/* The epoll set wakes its pollers with POLLIN only: a poller
		 * that asked for POLLRDNORM alone would sleep through it. (Rare:
		 * the common POLLIN poll allocates nothing.) */
		bool *added = calloc(n, sizeof(*added));
		for (nfds_t i = 0; added && i < n; i++) {
			struct shfile *f = fd_lookup(fds[i].fd);
			added[i] = f && f->kind == GRANTED_EVTCHN &&
				   (fds[i].events & (POLLRDNORM | POLLIN)) == POLLRDNORM;
			if (added[i])
				fds[i].events |= POLLIN;
		}
		r = wait(fds, n, ctx);
		for (nfds_t i = 0; added && i < n; i++)
			if (added[i])
				fds[i].events &= (short)~POLLIN;
		free(added);
	}
	if (r < 0)
		return r;
	r = 0;
	for (nfds_t i = 0; i < n; i++) {
		struct shfile *f = fd_lookup(fds[i].fd);
		if (f && f->kind == GRANTED_EVTCHN)
			fds[i].revents = (short)(granted_evtchn_poll(f->dev) &
						 (fds[i].events | POLLERR | POLLHUP | POLLNVAL));
		if (fds[i].revents)
			r++;
	}
	return r;
}

static int wait_poll(struct pollfd *fds, nfds_t n, void *ctx)
{
	return real.poll(fds, n, *(int *)ctx);
}

struct ppoll_args {
	const struct timespec *ts;
	const sigset_t *mask;
};

static int wait_ppoll(struct pollfd *fds, nfds_t n, void *ctx)
{
	struct ppoll_args *a = ctx;
	return real.ppoll(fds, n, a->ts, a->mask);
}

EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	real_init();
	return poll_fix(fds, n, wait_poll, &timeout);
}

EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) < n)
		abort();
	return poll(fds, n, timeout);
}

EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	real_init();
	struct ppoll_args a = { ts, mask };
	return poll_fix(fds, n, wait_ppoll, &a);
}
