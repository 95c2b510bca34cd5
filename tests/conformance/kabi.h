/*
 * What the conformance tests may use: the kernel's uapi headers and plain
 * syscalls, so that they could run unchanged against the real drivers. The
 * only granted-specific thing is the GRANTED_DOMID variable (tap.h), which
 * chooses the domain of each process and means nothing on Xen.
 */
#ifndef CONFORMANCE_KABI_H
#define CONFORMANCE_KABI_H

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

typedef uint16_t domid_t;
typedef uint32_t grant_ref_t;
#include <xen/evtchn.h>
#include <xen/gntalloc.h>
#include <xen/gntdev.h>

#include "../tap.h"

#define PAGE 4096u

/* A pointer the compiler cannot see through: for EFAULT checks. */
static inline void *bad_ptr(uintptr_t v)
{
	void *volatile p = (void *)v;
	return p;
}
#define DOMID_SELF 0x7FF0u

/* gntalloc: one call, refs into refs[] (count entries). */
static inline int ga_alloc(int fd, unsigned domid, unsigned flags, unsigned count, uint64_t *index,
			   uint32_t *refs)
{
	size_t sz = sizeof(struct ioctl_gntalloc_alloc_gref) + (count ? count - 1 : 0) * 4;
	struct ioctl_gntalloc_alloc_gref *op = calloc(1, sz);
	if (index)
		*index = ~0ull;
	for (unsigned i = 0; refs && i < count; i++)
		refs[i] = 0;
	op->domid = (uint16_t)domid;
	op->flags = (uint16_t)flags;
	op->count = count;
	int r = ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, op);
	int e = errno;
	if (r == 0) {
		if (index)
			*index = op->index;
		for (unsigned i = 0; refs && i < count; i++)
			refs[i] = op->gref_ids[i];
	}
	free(op);
	errno = e;
	return r;
}

static inline int ga_dealloc(int fd, uint64_t index, unsigned count)
{
	struct ioctl_gntalloc_dealloc_gref op = { .index = index, .count = count };
	return ioctl(fd, IOCTL_GNTALLOC_DEALLOC_GREF, &op);
}

static inline int ga_notify(int fd, uint64_t index, unsigned action, unsigned port)
{
	struct ioctl_gntalloc_unmap_notify op = { .index = index,
						  .action = action,
						  .event_channel_port = port };
	return ioctl(fd, IOCTL_GNTALLOC_SET_UNMAP_NOTIFY, &op);
}

/* gntdev: map `count` refs of one domain. */
static inline int gd_map(int fd, unsigned domid, unsigned count, const uint32_t *refs,
			 uint64_t *index)
{
	size_t sz = sizeof(struct ioctl_gntdev_map_grant_ref) +
		    (count ? count - 1 : 0) * sizeof(struct ioctl_gntdev_grant_ref);
	struct ioctl_gntdev_map_grant_ref *op = calloc(1, sz);
	if (index)
		*index = ~0ull;
	op->count = count;
	for (unsigned i = 0; i < count; i++) {
		op->refs[i].domid = domid;
		op->refs[i].ref = refs[i];
	}
	int r = ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, op);
	int e = errno;
	if (r == 0 && index)
		*index = op->index;
	free(op);
	errno = e;
	return r;
}

static inline int gd_map1(int fd, unsigned domid, uint32_t ref, uint64_t *index)
{
	return gd_map(fd, domid, 1, &ref, index);
}

static inline int gd_unmap(int fd, uint64_t index, unsigned count)
{
	struct ioctl_gntdev_unmap_grant_ref op = { .index = index, .count = count };
	return ioctl(fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &op);
}

static inline int gd_notify(int fd, uint64_t index, unsigned action, unsigned port)
{
	struct ioctl_gntdev_unmap_notify op = { .index = index,
						.action = action,
						.event_channel_port = port };
	return ioctl(fd, IOCTL_GNTDEV_SET_UNMAP_NOTIFY, &op);
}

/* evtchn */
static inline int ev_unbound(int fd, unsigned rdom)
{
	struct ioctl_evtchn_bind_unbound_port op = { .remote_domain = rdom };
	return ioctl(fd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &op);
}

static inline int ev_interdomain(int fd, unsigned rdom, unsigned rport)
{
	struct ioctl_evtchn_bind_interdomain op = { .remote_domain = rdom, .remote_port = rport };
	return ioctl(fd, IOCTL_EVTCHN_BIND_INTERDOMAIN, &op);
}

static inline int ev_notify(int fd, unsigned port)
{
	struct ioctl_evtchn_notify op = { .port = port };
	return ioctl(fd, IOCTL_EVTCHN_NOTIFY, &op);
}

/* The next pending port within ms, or 0; it stays masked. */
static inline unsigned ev_wait(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, ms) != 1)
		return 0;
	uint32_t port;
	if (read(fd, &port, 4) != 4)
		return 0;
	return port;
}

/* The same, unmasked again. */
static inline unsigned ev_wait_unmask(int fd, int ms)
{
	unsigned port = ev_wait(fd, ms);
	uint32_t p = port;
	if (port)
		CHECK_EQ(write(fd, &p, 4), 4);
	return port;
}

static inline int ev_unbind(int fd, unsigned port)
{
	struct ioctl_evtchn_unbind op = { .port = port };
	return ioctl(fd, IOCTL_EVTCHN_UNBIND, &op);
}

static inline void *map_pages(int fd, uint64_t index, unsigned npages, int prot)
{
	return mmap(NULL, (size_t)npages * PAGE, prot, MAP_SHARED, fd, (off_t)index);
}

static inline int open_dev(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		tap_fail(__FILE__, __LINE__, "open %s: %s", path, strerror(errno));
	return fd;
}
#define open_gntalloc() open_dev("/dev/xen/gntalloc")
#define open_gntdev()	open_dev("/dev/xen/gntdev")
#define open_evtchn()	open_dev("/dev/xen/evtchn")

/* `ok` accessible bytes followed by a page that is not: arguments that run
 * past them fault. */
static inline char *edge_buffer(size_t ok)
{
	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(p + PAGE, PAGE, PROT_NONE);
	return p + PAGE - ok;
}

static inline void edge_free(char *p)
{
	munmap((void *)((uintptr_t)p & ~(uintptr_t)(PAGE - 1)), 2 * PAGE);
}

#endif
