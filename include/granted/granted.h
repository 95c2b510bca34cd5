/*
 * libgranted: Xen's grant devices and event channels for ordinary processes.
 *
 * A `struct granted_dev` is one open device file, as an open() of
 * /dev/xen/gntalloc, /dev/xen/gntdev or /dev/xen/evtchn is on Xen, acting
 * as one domain. Every operation does what the Linux driver's ioctl of the
 * same name does, with the same checks in the same order, and fails with
 * the same errno. The granted broker plays the hypervisor.
 *
 * Conventions, the same for every call:
 *  - Calls return 0 (or a non-negative value where stated) on success and a
 *    negative errno on failure. errno is not used. Nothing is printed
 *    (set GRANTED_DEBUG=1 to log every message to stderr).
 *  - Pointers are borrowed for the duration of the call; the library keeps
 *    none of them. Handles are owned by the caller until granted_close().
 *  - -EIO from any call means the broker is gone (it died or was stopped):
 *    mappings already made stay valid; nothing new can be done.
 *  - Threads: any call may be made from any thread; calls on one handle are
 *    serialised.
 *  - fork(): both processes keep the handle, as both keep a kernel fd. Either
 *    may go on using it (the child gets its own connection to the broker on
 *    first use). Mappings are shared, as the drivers share them: the broker
 *    sees the last munmap of a mapping only when every process that
 *    inherited it has unmapped it, exited or exec'd.
 *  - exec(): mappings end. A gntalloc or gntdev fd without CLOEXEC survives
 *    and can be adopted with granted_attach(); an evtchn file does not
 *    survive exec.
 */
#ifndef GRANTED_H
#define GRANTED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct granted_dev;

enum granted_device {
	GRANTED_GNTALLOC = 1,
	GRANTED_GNTDEV = 2,
	GRANTED_EVTCHN = 3,
};

/*
 * Opens a device as domain `domid` (0 .. 0x7FEF). `flags` are open(2)
 * flags: the access mode (O_RDONLY refuses writable shared mappings with
 * EACCES, as the VFS does), O_CLOEXEC and O_NONBLOCK (evtchn reads).
 * The broker's socket is found as granted(8) describes ($GRANTED_SOCKET...).
 * Fails with -ENOENT when no broker listens, -EACCES when the broker's
 * policy refuses this user that domain, -EINVAL for a reserved domid,
 * -ENOMEM or -EMFILE.
 */
int granted_open(enum granted_device device, uint16_t domid, int flags, struct granted_dev **out);

/*
 * Adopts an fd that refers to a gntalloc or gntdev file opened elsewhere
 * (inherited across exec, or received over a socket): the handle acts on
 * that same file. `fd` is duplicated, not consumed. -ENODEV if it is not
 * such a file, -EIO if the broker is gone.
 */
int granted_attach(int fd, struct granted_dev **out);

/*
 * Closes the handle. Like close(2) on the device: mappings made through it
 * stay valid, and the broker releases the file (grants, maps, ports, firing
 * unmap notifications) once no fd refers to it and the last mapping is gone
 * too. NULL is accepted.
 */
void granted_close(struct granted_dev *dev);

/*
 * The fd that stands for the device: the socket for gntalloc and gntdev; for
 * evtchn an fd that poll/select/epoll report readable while events are
 * pending. Owned by the handle (CLOEXEC); a caller that wants an fd of its
 * own, to give a program or keep across exec, dup()s it: the copy keeps the
 * file alive as a dup of a kernel fd does.
 */
int granted_fd(const struct granted_dev *dev);
/*
 * Tells the library that another process may now use this file (its fd
 * was passed over a socket, dup'ed without CLOEXEC for an exec, or handed
 * to a child made without fork()). A gntdev file opened with O_CLOEXEC is
 * otherwise assumed to be this process's alone until fork(), which lets
 * MAP_GRANT_REF and UNMAP_GRANT_REF complete without waiting for the
 * broker. The shim calls this by itself.
 */
void granted_mark_shared(struct granted_dev *dev);

/* The most refs one granted_map_refs() accepts (the driver's `limit`). */
uint32_t granted_gntdev_map_limit(const struct granted_dev *dev);
enum granted_device granted_device_kind(const struct granted_dev *dev);
uint16_t granted_domid(const struct granted_dev *dev);

/* ---- gntalloc (ABI.md §3) --------------------------------------------- */

/*
 * IOCTL_GNTALLOC_ALLOC_GREF: `count` zeroed pages granted to `grantee`,
 * writable by it if flags has GNTALLOC_FLAG_WRITABLE (1). On success *index
 * is the mmap offset of the first page and refs[0..count) the grant refs
 * (refs may be NULL when count is 0). -ENOSPC beyond the domain's page
 * limit or a full grant table, -ENOMEM.
 */
int granted_alloc(struct granted_dev *dev, uint16_t grantee, uint16_t flags, uint32_t count,
		  uint64_t *index, uint32_t *refs);

/* IOCTL_GNTALLOC_DEALLOC_GREF: -EINVAL if the pages are not all there. */
int granted_dealloc(struct granted_dev *dev, uint64_t index, uint32_t count);

/* ---- gntdev (ABI.md §4) ----------------------------------------------- */

struct granted_grant_ref {
	uint32_t domid;
	uint32_t ref;
};

/*
 * IOCTL_GNTDEV_MAP_GRANT_REF: records `count` refs (nothing is checked
 * until mmap, as in the driver) and sets *index. -EINVAL for count 0 or
 * above the per-call limit (65536).
 */
int granted_map_refs(struct granted_dev *dev, uint32_t count, const struct granted_grant_ref *refs,
		     uint64_t *index);

/* IOCTL_GNTDEV_UNMAP_GRANT_REF: count 0 matches any map; -ENOENT. */
int granted_unmap_refs(struct granted_dev *dev, uint64_t index, uint32_t count);

/*
 * IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, for any gntdev mapping of this
 * process: -EINVAL if vaddr is in none.
 */
int granted_offset_for_vaddr(uint64_t vaddr, uint64_t *offset, uint32_t *count);

/*
 * One segment of IOCTL_GNTDEV_GRANT_COPY: the layout of the kernel's
 * struct gntdev_grant_copy_segment (and of libxengnttab's segment type).
 */
struct granted_copy_segment {
	union {
		void *virt;
		struct {
			uint32_t ref;
			uint16_t offset;
			uint16_t domid;
		} foreign;
	} source, dest;
	uint16_t len;
	uint16_t flags; /* GNTCOPY_source_gref 1, GNTCOPY_dest_gref 2 */
	int16_t status; /* out: GNTST_* */
};

/*
 * The copies of IOCTL_GNTDEV_GRANT_COPY, in order, each checked as Xen's
 * GNTTABOP_copy checks it for this domain (status 0; -1 a grant not made to
 * us or a read-only destination; -2 no such domain; -3 a ref beyond the
 * table). The segments must already pass the driver's own argument checks
 * (a gref on at least one side; offset + len <= 4096 on gref sides): those
 * are the caller's. Local buffers are read and written as the kernel would:
 * a fault stops the work with -EFAULT and *fault set to that segment (the
 * segments before it are done). At most one round trip to the broker, none
 * when every grant involved was seen before and has not changed since.
 */
int granted_grant_copy(struct granted_dev *dev, struct granted_copy_segment *segs, uint32_t count,
		       uint32_t *fault);

/* ---- both grant devices ----------------------------------------------- */

/*
 * SET_UNMAP_NOTIFY: `action` is UNMAP_NOTIFY_CLEAR_BYTE (1) and/or
 * UNMAP_NOTIFY_SEND_EVENT (2) with `port` a port of this domain bound
 * through an evtchn file. The two devices check in different orders
 * (ABI.md §3.5, §4.8), and so does this call.
 */
int granted_set_unmap_notify(struct granted_dev *dev, uint64_t index, uint32_t action,
			     uint32_t port);

/*
 * mmap(2) of the device at `offset`: the same arguments, the same rules
 * and errnos as the driver (gntdev: whole maps only, once each; gntalloc:
 * MAP_SHARED only; -EINVAL or -ENOENT as the driver says). On success
 * *out is the mapping. Unmap it with granted_munmap(), or with munmap(2)
 * followed by granted_unmapped().
 */
int granted_mmap(struct granted_dev *dev, void *addr, size_t len, int prot, int flags,
		 uint64_t offset, void **out);

/* munmap(2), and the bookkeeping that tells the broker about it. */
int granted_munmap(void *addr, size_t len);

/*
 * For callers that unmapped [addr, addr+len) themselves (munmap, or a
 * MAP_FIXED mapping on top): updates the bookkeeping of every grant mapping
 * in that range. Does nothing for ranges that hold none.
 */
void granted_unmapped(void *addr, size_t len);

/* Whether [addr, addr+len) overlaps a grant mapping of this process. */
int granted_is_mapped(const void *addr, size_t len);

/* ---- evtchn (ABI.md §5) ----------------------------------------------- */

/* The bind calls return the new local port (> 0) or a negative errno. */
int granted_evtchn_bind_unbound(struct granted_dev *dev, uint32_t remote_domain);
int granted_evtchn_bind_interdomain(struct granted_dev *dev, uint32_t remote_domain,
				    uint32_t remote_port);
int granted_evtchn_bind_virq(struct granted_dev *dev, uint32_t virq);
int granted_evtchn_unbind(struct granted_dev *dev, uint32_t port);
/* Raises the peer of `port`; -ENOTCONN if the port is not bound here. */
int granted_evtchn_notify(struct granted_dev *dev, uint32_t port);
int granted_evtchn_reset(struct granted_dev *dev);
int granted_evtchn_restrict(struct granted_dev *dev, uint32_t domid);
/* Whether the file is restricted (RESTRICT_DOMID's EACCES comes first). */
int granted_evtchn_restricted(struct granted_dev *dev);

/*
 * read(2) of the device: up to len/4 pending ports into buf. Blocks unless
 * the file is non-blocking (-EAGAIN). -EFBIG after an overflow until reset.
 * With `peek` set, the ports stay queued; granted_evtchn_consume() must
 * follow, removing the first n (0 if the caller's copy failed: nothing is
 * lost).
 */
ssize_t granted_evtchn_read(struct granted_dev *dev, uint32_t *buf, size_t len, int peek);
void granted_evtchn_consume(struct granted_dev *dev, size_t nports);
/* write(2): unmasks each listed port bound here; returns len rounded to 4. */
ssize_t granted_evtchn_write(struct granted_dev *dev, const uint32_t *ports, size_t len);
/* poll(2) flags the driver would report now (POLLIN, POLLOUT, POLLERR). */
int granted_evtchn_poll(struct granted_dev *dev);

/* ---- inspection (grantctl) -------------------------------------------- */

struct granted_domain_info {
	uint16_t domid;
	int dying, declared;
	uint32_t connections, connection_limit; /* open device files and claims */
	uint32_t grants, grant_limit;		/* grant-table entries in use */
	uint32_t mappings, mapping_limit;	/* grant pages mapped (maptrack) */
	uint32_t alloc_pages, alloc_limit;	/* gntalloc pages */
	uint32_t ports, port_limit;		/* event channels */
	uint32_t mmaps, mmap_limit;		/* mmaps of the devices */
	uint32_t map_refs, map_ref_limit;	/* refs recorded by MAP_GRANT_REF */
};

struct granted_grant_info {
	uint16_t granter, grantee;
	uint32_t ref;
	int readonly;
	int ending; /* released by its owner, still mapped or about to end */
	uint32_t mapcount;
};

struct granted_mapping_info {
	uint16_t granter, mapper;
	uint32_t ref;
	pid_t pid; /* the process that mmapped it; 0 once unmapped while the map holds it */
	int writable;
};

struct granted_port_info {
	uint16_t domid;
	uint32_t port;
	int state; /* 1 unbound, 2 interdomain, 3 virq */
	uint16_t remote_domid;
	uint32_t remote_port; /* the virq for state 3 */
	int pending, masked, bound;
};

/*
 * Each returns the number of rows and sets *out to a malloc'd array the
 * caller frees. Needs the policy's admin right (-EACCES otherwise).
 */
ssize_t granted_list_domains(struct granted_domain_info **out);
ssize_t granted_list_grants(struct granted_grant_info **out);
ssize_t granted_list_mappings(struct granted_mapping_info **out);
ssize_t granted_list_ports(struct granted_port_info **out);

/*
 * Keeps domain `domid` alive (as a process of it would) until the returned
 * fd is closed. Returns the fd (CLOEXEC) or a negative errno.
 */
int granted_claim_domain(uint16_t domid);

/* getpid(), cached (refreshed in fork children). For the shim's copies. */
pid_t granted_getpid(void);

/* Where the broker listens: $GRANTED_SOCKET or the default (granted(8)). */
int granted_socket_path(char *buf, size_t len);
/* Where the broker serves xenstore: $GRANTED_XENSTORE or the default. */
int granted_xenstore_path(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
