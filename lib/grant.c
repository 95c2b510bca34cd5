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
		memcpy(ac->refs + rep.first, (const char *)p + sizeof(rep),
		       rep.n * sizeof(uint32_t));
	return 0;
}

GR_EXPORT int granted_alloc(struct granted_dev *dev, uint16_t grantee, uint16_t flags,
			    uint32_t count, uint64_t *index, uint32_t *refs)
{
	int r = lock_kind(dev, GRANTED_GNTALLOC);
	if (r < 0)
		return r;
	struct gr_alloc req = { .grantee = grantee, .flags = flags, .count = count };
	struct alloc_ctx ac = { .count = count, .refs = refs };
	r = chan_call(dev, GR_OP_ALLOC, &req, sizeof(req), on_alloc, &ac);
	pthread_mutex_unlock(&dev->lock);
	if (r >= 0)
		*index = ac.index;
	return r < 0 ? r : 0;
}

GR_EXPORT int granted_dealloc(struct granted_dev *dev, uint64_t index, uint32_t count)
{
	int r = lock_kind(dev, GRANTED_GNTALLOC);
	if (r < 0)
		return r;
	struct gr_range req = { .index = index, .count = count };
	r = chan_call(dev, GR_OP_DEALLOC, &req, sizeof(req), NULL, NULL);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* Solo mode: where the driver would place a map of count pages (the same
 * first fit, with the count + 1 hole rule, as the broker's). */
static uint32_t lmap_place(const struct granted_dev *dev, uint32_t count, uint64_t *index)
{
	uint64_t candidate = 0;
	uint32_t i;
	for (i = 0; i < dev->nlmaps; i++) {
		if (candidate + count < dev->lmaps[i].index)
			break;
		candidate = dev->lmaps[i].index + dev->lmaps[i].count;
	}
	*index = candidate;
	return i;
}

static int lmap_insert(struct granted_dev *dev, uint32_t pos, struct lmap m)
{
	if (dev->nlmaps == dev->lmaps_cap) {
		uint32_t cap = dev->lmaps_cap ? dev->lmaps_cap * 2 : 16;
		struct lmap *v = realloc(dev->lmaps, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		dev->lmaps = v;
		dev->lmaps_cap = cap;
	}
	memmove(dev->lmaps + pos + 1, dev->lmaps + pos, (dev->nlmaps - pos) * sizeof(m));
	dev->lmaps[pos] = m;
	dev->nlmaps++;
	return 0;
}

static int unmap_solo(struct granted_dev *dev, uint64_t index, uint32_t count)
{
	uint64_t page = index / XEN_PAGE_SIZE;
	uint32_t pos;
	for (pos = 0; pos < dev->nlmaps; pos++)
		if (dev->lmaps[pos].index == page && (count == 0 || dev->lmaps[pos].count == count))
			break;
	if (pos == dev->nlmaps)
		return -ENOENT;
	struct lmap m = dev->lmaps[pos];
	memmove(dev->lmaps + pos, dev->lmaps + pos + 1, (dev->nlmaps - pos - 1) * sizeof(m));
	dev->nlmaps--;
	/* Even a MAP still queued is sent, then this UNMAP: the MAPs queued
	 * after it were placed with it in the list, as the broker must place
	 * them too. */
	struct gr_range req = { .index = index, .count = count };
	/* With a notification armed, it fires at this UNMAP: wait for it. */
	if (dev->notify_armed)
		return chan_call(dev, GR_OP_UNMAP, &req, sizeof(req), NULL, NULL);
	uint32_t seq;
	return chan_send(dev, GR_OP_UNMAP, GR_HDR_NOREPLY, &req, sizeof(req), &seq);
}

GR_EXPORT int granted_unmap_refs(struct granted_dev *dev, uint64_t index, uint32_t count)
{
	int r = lock_kind(dev, GRANTED_GNTDEV);
	if (r < 0)
		return r;
	if (dev->solo) {
		r = unmap_solo(dev, index, count);
	} else {
		struct gr_range req = { .index = index, .count = count };
		r = chan_call(dev, GR_OP_UNMAP, &req, sizeof(req), NULL, NULL);
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
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

enum {
	MAP_REFS_PER_MSG = (GR_MSG_MAX - sizeof(struct gr_hdr) - sizeof(struct gr_map)) /
			   sizeof(struct gr_grant_ref)
};

/* A large map: the refs after the first `sent` follow in messages of their
 * own, in a buffer (msg) big enough for one. */
static int send_more_refs(struct granted_dev *dev, char *msg, const struct granted_grant_ref *refs,
			  uint32_t sent, uint32_t count)
{
	int r = 0;
	while (r == 0 && sent < count) {
		uint32_t seq, n = count - sent < MAP_REFS_PER_MSG ? count - sent : MAP_REFS_PER_MSG;
		struct gr_map_refs more = { .n = n };
		memcpy(msg, &more, sizeof(more));
		memcpy(msg + sizeof(more), refs + sent, (size_t)n * sizeof(*refs));
		r = chan_send(dev, GR_OP_MAP_REFS, GR_HDR_NOREPLY, msg,
			      sizeof(more) + (size_t)n * sizeof(*refs), &seq);
		sent += n;
	}
	return r;
}

GR_EXPORT int granted_map_refs(struct granted_dev *dev, uint32_t count,
			       const struct granted_grant_ref *refs, uint64_t *index)
{
	_Static_assert(sizeof(struct granted_grant_ref) == sizeof(struct gr_grant_ref), "refs");
	int r = lock_kind(dev, GRANTED_GNTDEV);
	if (r < 0)
		return r;
	/* The driver refuses the count before it reads a single ref. */
	if (count == 0 || count > dev->map_limit) {
		pthread_mutex_unlock(&dev->lock);
		return -EINVAL;
	}
	uint32_t n = count < MAP_REFS_PER_MSG ? count : MAP_REFS_PER_MSG;
	size_t len = sizeof(struct gr_map) + (size_t)n * sizeof(struct gr_grant_ref);
	char *msg = malloc(len);
	struct gr_map_reply rep = { 0 };
	uint32_t seq;
	if (!msg) {
		r = -ENOMEM;
		goto out;
	}
	struct gr_map head = { .count = count, .n = n };
	if (dev->solo) {
		/* We know the file's map list exactly: place it ourselves, let
		 * the broker check the prediction, and do not wait. */
		uint32_t pos = lmap_place(dev, count, &rep.index);
		head.index = rep.index * XEN_PAGE_SIZE;
		head.flags = GR_MAP_PREDICTED;
		memcpy(msg, &head, sizeof(head));
		memcpy(msg + sizeof(head), refs, (size_t)n * sizeof(*refs));
		struct lmap m = { .index = rep.index, .count = count };
		if (n == count) {
			r = chan_queue(dev, GR_OP_MAP, GR_HDR_NOREPLY, msg, len);
		} else {
			r = chan_send(dev, GR_OP_MAP, GR_HDR_NOREPLY, msg, len, &seq);
			if (r == 0)
				r = send_more_refs(dev, msg, refs, n, count);
		}
		if (r == 0)
			r = lmap_insert(dev, pos, m);
		rep.index *= XEN_PAGE_SIZE;
		goto out;
	}
	memcpy(msg, &head, sizeof(head));
	memcpy(msg + sizeof(head), refs, (size_t)n * sizeof(*refs));
	r = chan_send(dev, GR_OP_MAP, 0, msg, len, &seq);
	if (r == 0)
		r = send_more_refs(dev, msg, refs, n, count);
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
	struct gr_notify req = { .index = index, .action = action, .port = port };
	uint16_t op = dev->kind == GRANTED_GNTALLOC ? GR_OP_ALLOC_NOTIFY : GR_OP_DEV_NOTIFY;
	int r = chan_call(dev, op, &req, sizeof(req), NULL, NULL);
	/* From now on a last munmap waits for the broker, so that the byte
	 * is cleared and the event sent when munmap returns, as in the kernel. */
	if (r == 0 && action)
		dev->notify_armed = true;
	pthread_mutex_unlock(&dev->lock);
	return r;
}
