/*
 * The ioctls of /dev/xen/gntalloc and /dev/xen/gntdev. The broker does
 * every check; these only carry the arguments.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "xen_abi.h"

static int lock_kind(struct granted_dev *dev, enum granted_device kind)
{
	if (dev->kind != kind)
		return -ENOTTY;
	pthread_mutex_lock(&dev->lock);
	return 0;
}

struct alloc_ctx {
	uint64_t index;
	uint32_t count;
	uint32_t *refs;
};

static int on_alloc(void *ctx, const struct gr_hdr *h, const void *p, size_t len, int *fds,
		    unsigned nfds)
{
	struct alloc_ctx *ac = ctx;
	struct gr_alloc_reply rep;
	(void)fds;
	(void)nfds;
	if (h->result < 0)
		return 0;
	if (len < sizeof(rep))
		return -EIO;
	memcpy(&rep, p, sizeof(rep));
	if (rep.count != ac->count || rep.first > ac->count || rep.n > ac->count - rep.first ||
	    len != sizeof(rep) + (size_t)rep.n * sizeof(uint32_t))
		return -EIO;
	ac->index = rep.index;
	if (rep.n)
		memcpy(ac->refs + rep.first, (const char *)p + sizeof(rep), rep.n * sizeof(uint32_t));
	return 0;
}

GR_EXPORT int granted_alloc(struct granted_dev *dev, uint16_t grantee, uint16_t flags,
			    uint32_t count, uint64_t *index, uint32_t *refs)
{
	int r = lock_kind(dev, GRANTED_GNTALLOC);
	if (r < 0)
		return r;
	struct gr_alloc req = {.grantee = grantee, .flags = flags, .count = count};
	struct alloc_ctx ac = {.count = count, .refs = refs};
	r = chan_call(dev, GR_OP_ALLOC, &req, sizeof(req), on_alloc, &ac);
	pthread_mutex_unlock(&dev->lock);
	if (r >= 0)
		*index = ac.index;
	return r < 0 ? r : 0;
}

static int range_op(struct granted_dev *dev, enum granted_device kind, uint16_t op, uint64_t index,
		    uint32_t count)
{
	int r = lock_kind(dev, kind);
	if (r < 0)
		return r;
	struct gr_range req = {.index = index, .count = count};
	r = chan_call(dev, op, &req, sizeof(req), NULL, NULL);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

GR_EXPORT int granted_dealloc(struct granted_dev *dev, uint64_t index, uint32_t count)
{
	return range_op(dev, GRANTED_GNTALLOC, GR_OP_DEALLOC, index, count);
}

GR_EXPORT int granted_unmap_refs(struct granted_dev *dev, uint64_t index, uint32_t count)
{
	return range_op(dev, GRANTED_GNTDEV, GR_OP_UNMAP, index, count);
}

static int on_map(void *ctx, const struct gr_hdr *h, const void *p, size_t len, int *fds,
		  unsigned nfds)
{
	(void)fds;
	(void)nfds;
	if (h->result < 0)
		return 0;
	if (len != sizeof(struct gr_map_reply))
		return -EIO;
	memcpy(ctx, p, sizeof(struct gr_map_reply));
	return 0;
}

GR_EXPORT int granted_map_refs(struct granted_dev *dev, uint32_t count,
			       const struct granted_grant_ref *refs, uint64_t *index)
{
	enum { PER_MSG = (GR_MSG_MAX - sizeof(struct gr_hdr) - sizeof(struct gr_map)) /
			 sizeof(struct gr_grant_ref) };
	_Static_assert(sizeof(struct granted_grant_ref) == sizeof(struct gr_grant_ref), "refs");
	int r = lock_kind(dev, GRANTED_GNTDEV);
	if (r < 0)
		return r;
	/* The driver refuses the count before it reads a single ref. */
	if (count == 0 || count > dev->map_limit) {
		pthread_mutex_unlock(&dev->lock);
		return -EINVAL;
	}
	uint32_t n = count < PER_MSG ? count : PER_MSG;
	size_t len = sizeof(struct gr_map) + (size_t)n * sizeof(struct gr_grant_ref);
	char *msg = malloc(len);
	struct gr_map_reply rep = {0};
	uint32_t seq;
	if (!msg) {
		r = -ENOMEM;
		goto out;
	}
	struct gr_map head = {.count = count, .n = n};
	memcpy(msg, &head, sizeof(head));
	memcpy(msg + sizeof(head), refs, (size_t)n * sizeof(*refs));
	r = chan_send(dev, GR_OP_MAP, 0, msg, len, &seq);
	/* Large maps: the rest of the refs follow in their own messages. */
	for (uint32_t sent = n; r == 0 && sent < count; sent += n) {
		uint32_t seq2;
		n = count - sent < PER_MSG ? count - sent : PER_MSG;
		struct gr_map_refs more = {.n = n};
		memcpy(msg, &more, sizeof(more));
		memcpy(msg + sizeof(more), refs + sent, (size_t)n * sizeof(*refs));
		r = chan_send(dev, GR_OP_MAP_REFS, GR_HDR_NOREPLY, msg,
			      sizeof(more) + (size_t)n * sizeof(*refs), &seq2);
	}
	if (r == 0)
		r = chan_wait(dev, GR_OP_MAP, seq, on_map, &rep);
out:
	pthread_mutex_unlock(&dev->lock);
	free(msg);
	if (r >= 0)
		*index = rep.index;
	return r < 0 ? r : 0;
}

GR_EXPORT int granted_set_unmap_notify(struct granted_dev *dev, uint64_t index, uint32_t action,
				       uint32_t port)
{
	if (dev->kind != GRANTED_GNTALLOC && dev->kind != GRANTED_GNTDEV)
		return -ENOTTY;
	pthread_mutex_lock(&dev->lock);
	struct gr_notify req = {.index = index, .action = action, .port = port};
	uint16_t op = dev->kind == GRANTED_GNTALLOC ? GR_OP_ALLOC_NOTIFY : GR_OP_DEV_NOTIFY;
	int r = chan_call(dev, op, &req, sizeof(req), NULL, NULL);
	/* From now on a last munmap waits for the broker, so that the byte
	 * is cleared and the event sent when munmap returns, as in the kernel. */
	if (r == 0 && action)
		dev->notify_armed = true;
	pthread_mutex_unlock(&dev->lock);
	return r;
}
