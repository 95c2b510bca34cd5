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
			r = copy_out((char *)arg +
					     offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids),
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

/* Local pages a segment's local side spans: the driver makes one op of
 * each (it splits local buffers at page boundaries). */
static unsigned seg_ops(const struct gntdev_grant_copy_segment *s)
{
	if (s->len == 0)
		return 0;
	if ((s->flags & (GNTCOPY_source_gref | GNTCOPY_dest_gref)) ==
	    (GNTCOPY_source_gref | GNTCOPY_dest_gref))
		return 1;
	uintptr_t v = (uintptr_t)((s->flags & GNTCOPY_source_gref) ? s->dest.virt : s->source.virt);
	return (unsigned)(((v + s->len - 1) >> XEN_PAGE_SHIFT) - (v >> XEN_PAGE_SHIFT) + 1);
}

/* The driver's own checks of one segment (ABI.md §4.9 b, c). */
static int seg_check(const struct gntdev_grant_copy_segment *s)
{
	if (!(s->flags & (GNTCOPY_source_gref | GNTCOPY_dest_gref)))
		return -EINVAL; /* local to local */
	if ((s->flags & GNTCOPY_source_gref) &&
	    s->source.foreign.offset + (unsigned)s->len > XEN_PAGE_SIZE)
		return -EINVAL;
	if ((s->flags & GNTCOPY_dest_gref) &&
	    s->dest.foreign.offset + (unsigned)s->len > XEN_PAGE_SIZE)
		return -EINVAL;
	return 0;
}

#define COPY_CHUNK 16384u
#define COPY_BATCH 16u /* GNTDEV_COPY_BATCH: ops per hypercall */

/*
 * IOCTL_GNTDEV_GRANT_COPY in the driver's order: each segment is read,
 * checked, its status set to okay, its local pages pinned, and its ops
 * queued; every 16 ops go to Xen. A failure at segment i ends the ioctl:
 * what was already submitted happened, the rest of the batch is dropped.
 * We read and check everything first, work out where the driver would
 * have stopped, then copy what it would have copied, in one go.
 */
static int gntdev_copy(struct shfile *f, void *arg)
{
	struct ioctl_gntdev_grant_copy op;
	int r = copy_in(&op, arg, sizeof(op));
	if (r < 0)
		return r;
	/* Addresses of the caller's, kept as numbers: NULL is as good as any
	 * other bad address, and is the kernel's EFAULT to give. */
	uintptr_t user = (uintptr_t)op.segments;
	struct gntdev_grant_copy_segment *segs = NULL;
	unsigned ops_before = 0; /* ops queued by earlier chunks */
	for (uint32_t base = 0; base < op.count; base += COPY_CHUNK) {
		uint32_t n = op.count - base < COPY_CHUNK ? op.count - base : COPY_CHUNK;
		uintptr_t u = user + (size_t)base * sizeof(*segs);
		free(segs);
		segs = malloc((size_t)n * sizeof(*segs));
		if (!segs)
			return -ENOMEM;
		/* Read: one syscall, or one per segment to find a fault. */
		uint32_t stop = n;
		int err = 0;
		if (copy_in(segs, (void *)u, (size_t)n * sizeof(*segs)) < 0) {
			for (stop = 0; stop < n; stop++)
				if (copy_in(&segs[stop], (void *)(u + stop * sizeof(*segs)),
					    sizeof(*segs)) < 0)
					break;
			err = -EFAULT;
		}
		for (uint32_t i = 0; i < stop; i++) {
			int c = seg_check(&segs[i]);
			if (c < 0) {
				stop = i;
				err = c;
				break;
			}
		}
		/* The driver writes each status (okay) before it copies. In one
		 * go if the whole array is writable (its other bytes get back
		 * what they held); otherwise status by status, as the driver's
		 * put_user does: only the 2 bytes of the status must be
		 * writable, the rest of a segment may be read-only. */
		for (uint32_t i = 0; i < stop; i++)
			segs[i].status = GNTST_okay;
		if (copy_out((void *)u, segs, (size_t)stop * sizeof(*segs)) < 0) {
			uint32_t i;
			for (i = 0; i < stop; i++)
				if (copy_out((void *)(u + i * sizeof(*segs) +
						      offsetof(struct gntdev_grant_copy_segment,
							       status)),
					     &segs[i].status, sizeof(segs[i].status)) < 0)
					break;
			if (i < stop) {
				stop = i;
				err = -EFAULT;
			}
		}
		/* On a failure only whole batches of 16 ops were submitted. */
		uint32_t todo = stop;
		if (err) {
			unsigned ops = ops_before, submitted;
			for (uint32_t i = 0; i < stop; i++)
				ops += seg_ops(&segs[i]);
			submitted = ops / COPY_BATCH * COPY_BATCH;
			ops = ops_before;
			for (todo = 0; todo < stop; todo++) {
				ops += seg_ops(&segs[todo]);
				if (ops > submitted)
					break;
			}
		}
		for (uint32_t i = 0; i < stop; i++)
			ops_before += seg_ops(&segs[i]);
		uint32_t fault = 0;
		r = granted_grant_copy(f->dev, (struct granted_copy_segment *)segs, todo, &fault);
		if (r == -EFAULT) {
			/* A local buffer the driver could not pin. */
			todo = fault;
			err = -EFAULT;
		} else if (r < 0) {
			free(segs);
			return r;
		}
		/* The failures Xen reported overwrite their okay. */
		for (uint32_t i = 0; i < todo; i++)
			if (segs[i].status != GNTST_okay &&
			    copy_out((void *)(u + i * sizeof(*segs) +
					      offsetof(struct gntdev_grant_copy_segment, status)),
				     &segs[i].status, sizeof(segs[i].status)) < 0) {
				err = -EFAULT;
				break;
			}
		if (err) {
			free(segs);
			return err;
		}
	}
	free(segs);
	return 0;
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
	case IOCTL_GNTDEV_GRANT_COPY:
		return gntdev_copy(f, arg);
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
