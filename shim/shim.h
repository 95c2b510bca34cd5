/*
 * The device shim: an LD_PRELOAD library that gives unmodified programs
 * /dev/xen/gntalloc, /dev/xen/gntdev and /dev/xen/evtchn with the kernel's
 * ABI, built on libgranted. Every wrapper keeps errno untouched on success,
 * fails with -1 and the driver's errno, and never aborts its host.
 */
#ifndef GRANTED_SHIM_H
#define GRANTED_SHIM_H

#include <poll.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "granted/granted.h"

/* The functions we wrap, as libc defines them (real.c). */
struct real_fns {
	int (*open)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*close)(int);
	int (*close_range)(unsigned, unsigned, int);
	void (*closefrom)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*ioctl)(int, unsigned long, ...);
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	void *(*mremap)(void *, size_t, size_t, int, ...);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*write)(int, const void *, size_t);
	off_t (*lseek)(int, off_t, int);
	ssize_t (*pread)(int, void *, size_t, off_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	int (*poll)(struct pollfd *, nfds_t, int);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
		       const sigset_t *);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned, int);
};
extern struct real_fns real;
void real_init(void);

/* One open device file as this process sees it. */
struct shfile {
	struct granted_dev *dev;
	enum granted_device kind;
	unsigned nfds; /* fd numbers of this process that refer to it */
};

/* fdtab.c: the process's fd numbers that are device files. */
/* Whether any is open (the wrappers' fast path). */
bool fd_any(void);
struct shfile *fd_lookup(int fd);
/* Records fd as one more fd of f. -ENOMEM if the table cannot grow. */
int fd_attach(int fd, struct shfile *f);
/* Forgets fd (after the real close); closes the handle with its last fd. */
void fd_forget(int fd);
/* Forgets fd before the real close: returns the file if that was its last
 * fd, to be given to fd_release() once the fd is really closed. */
struct shfile *fd_detach(int fd);
void fd_release(struct shfile *f);
void fd_forget_range(unsigned first, unsigned last);
/* An fd we do not know that is a broker socket (inherited across exec):
 * adopt it. NULL if it is not one. */
struct shfile *fd_discover(int fd);

/* uaccess.c: user memory, with EFAULT instead of a crash. */
int copy_in(void *dst, const void *user, size_t n);
int copy_out(void *user, const void *src, size_t n);

/* ioctl.c */
int shim_ioctl(struct shfile *f, unsigned long req, void *arg);

/* The domain this process acts as ($GRANTED_DOMID, default 0). */
int shim_domid(uint16_t *out);

/* xenstore.c: claims our domain on a fresh connection to granted's xenstore;
 * 0, or -errno (EACCES when the broker refuses it). */
int xenstore_claim(int fd, const struct sockaddr *addr, socklen_t len);

#endif
