/*
 * The three drivers' ioctls: copy the argument in (EFAULT first, as
 * copy_from_user would), call libgranted, copy the result out. The order of
 * checks is the driver's (ABI.md §3-5); the broker does the rest.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"
#include "xen_abi.h"

static int gntalloc_alloc(struct shfile *f, void *arg)
{
	struct ioctl_gntalloc_alloc_gref op;
	int r = copy_in(&op, arg, sizeof(op));
	if (r < 0)
		return r;
	/* No configurable limit goes beyond 2^24 pages: anything larger is
	 * refused before we try to allocate the answer. */
	if (op.count > (1u << 24))
		return -ENOSPC;
	uint32_t *refs = NULL;
	if (op.count) {
		refs = malloc(op.count * sizeof(*refs));
		if (!refs)
			return -ENOMEM;
	}
	uint64_t index;
	r = granted_alloc(f->dev, op.domid, op.flags, op.count, &index, refs);
	if (r == 0) {
		/* As the driver: the header first, then the refs; the grants
		 * stay allocated if either copy fails. */
		op.index = index;
		r = copy_out(arg, &op, sizeof(op));
		if (r == 0)
			r = copy_out((char *)arg + offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids),
				     refs, op.count * sizeof(*refs));
	}
	free(refs);
	return r;
}

static int gntalloc_ioctl(struct shfile *f, unsigned long req, void *arg)
{
	int r;
	switch (req) {
	case IOCTL_GNTALLOC_ALLOC_GREF:
		return gntalloc_alloc(f, arg);
	case IOCTL_GNTALLOC_DEALLOC_GREF: {
		struct ioctl_gntalloc_dealloc_gref op;
		if ((r = copy_in(&op, arg, sizeof(op))) < 0)
			return r;
		return granted_dealloc(f->dev, op.index, op.count);
	}
	case IOCTL_GNTALLOC_SET_UNMAP_NOTIFY: {
		struct ioctl_gntalloc_unmap_notify op;
		if ((r = copy_in(&op, arg, sizeof(op))) < 0)
			return r;
		return granted_set_unmap_notify(f->dev, op.index, op.action, op.event_channel_port);
	}
	default:
		return -ENOTTY;
	}
}

static int gntdev_map(struct shfile *f, void *arg)
{
	struct ioctl_gntdev_map_grant_ref op;
	int r = copy_in(&op, arg, sizeof(op));
	if (r < 0)
		return r;
	if (op.count == 0 || op.count > granted_gntdev_map_limit(f->dev))
		return -EINVAL;
	struct granted_grant_ref *refs = malloc((size_t)op.count * sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	r = copy_in(refs, (char *)arg + offsetof(struct ioctl_gntdev_map_grant_ref, refs),
		    (size_t)op.count * sizeof(*refs));
	uint64_t index = 0;
	if (r == 0)
		r = granted_map_refs(f->dev, op.count, refs, &index);
	op.index = index;
	free(refs);
	if (r < 0)
		return r;
	r = copy_out(arg, &op, sizeof(op));
	if (r < 0) {
		/* Modern kernels remove the map again. */
		granted_unmap_refs(f->dev, op.index, op.count);
	}
	return r;
}

static int gntdev_ioctl(struct shfile *f, unsigned long req, void *arg)
{
	int r;
	switch (req) {
	case IOCTL_GNTDEV_MAP_GRANT_REF:
		return gntdev_map(f, arg);
	case IOCTL_GNTDEV_UNMAP_GRANT_REF: {
		struct ioctl_gntdev_unmap_grant_ref op;
		if ((r = copy_in(&op, arg, sizeof(op))) < 0)
			return r;
		return granted_unmap_refs(f->dev, op.index, op.count);
	}
	case IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR: {
		struct ioctl_gntdev_get_offset_for_vaddr op;
		if ((r = copy_in(&op, arg, sizeof(op))) < 0)
			return r;
		uint64_t offset;
		uint32_t count;
		if ((r = granted_offset_for_vaddr(op.vaddr, &offset, &count)) < 0)
			return r;
		op.offset = offset;
		op.count = count;
		return copy_out(arg, &op, sizeof(op));
	}
	case IOCTL_GNTDEV_SET_UNMAP_NOTIFY: {
		struct ioctl_gntdev_unmap_notify op;
		if ((r = copy_in(&op, arg, sizeof(op))) < 0)
			return r;
		return granted_set_unmap_notify(f->dev, op.index, op.action, op.event_channel_port);
	}
	default:
		/* SET_MAX_GRANTS: declared, never implemented since Linux 3.0;
		 * the dma-buf ioctls: a kernel without XEN_GNTDEV_DMABUF. */
		return -ENOTTY;
	}
}

static int evtchn_ioctl(struct shfile *f, unsigned long req, void *arg)
{
	struct granted_dev *dev = f->dev;
	unsigned int v[2];
	int r;
	switch (req) {
	case IOCTL_EVTCHN_BIND_VIRQ:
	case IOCTL_EVTCHN_BIND_UNBOUND_PORT:
		/* A restricted file refuses these before reading the argument. */
		if (granted_evtchn_restricted(dev))
			return -EACCES;
		if ((r = copy_in(v, arg, sizeof(v[0]))) < 0)
			return r;
		return req == IOCTL_EVTCHN_BIND_VIRQ ? granted_evtchn_bind_virq(dev, v[0])
						     : granted_evtchn_bind_unbound(dev, v[0]);
	case IOCTL_EVTCHN_BIND_INTERDOMAIN:
		if ((r = copy_in(v, arg, sizeof(struct ioctl_evtchn_bind_interdomain))) < 0)
			return r;
		return granted_evtchn_bind_interdomain(dev, v[0], v[1]);
	case IOCTL_EVTCHN_UNBIND:
		if ((r = copy_in(v, arg, sizeof(v[0]))) < 0)
			return r;
		return granted_evtchn_unbind(dev, v[0]);
	case IOCTL_EVTCHN_NOTIFY:
		if ((r = copy_in(v, arg, sizeof(v[0]))) < 0)
			return r;
		return granted_evtchn_notify(dev, v[0]);
	case IOCTL_EVTCHN_RESET:
		return granted_evtchn_reset(dev);
	case IOCTL_EVTCHN_RESTRICT_DOMID: {
		struct ioctl_evtchn_restrict_domid op;
		if (granted_evtchn_restricted(dev))
			return -EACCES;
		if ((r = copy_in(&op, arg, sizeof(op))) < 0)
			return r;
		return granted_evtchn_restrict(dev, op.domid);
	}
	default:
		/* The evtchn driver answers unknown commands with ENOSYS. */
		return -ENOSYS;
	}
}

int shim_ioctl(struct shfile *f, unsigned long req, void *arg)
{
	switch (f->kind) {
	case GRANTED_GNTALLOC:
		return gntalloc_ioctl(f, req, arg);
	case GRANTED_GNTDEV:
		return gntdev_ioctl(f, req, arg);
	case GRANTED_EVTCHN:
		return evtchn_ioctl(f, req, arg);
	}
	return -ENOTTY;
}
