/*
 * Grant mappings in this process.
 *
 * mmap of a device asks the broker, which checks everything and answers
 * with the memory (memfds) and the mapping's token. The registry remembers,
 * per mapping, which pieces are still mapped; when none is left the token
 * is closed, which is how the broker learns of the last munmap (other
 * processes may still hold copies of the token: fork shares mappings).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "wire.h"
#include "xen_abi.h"

struct piece {
	uintptr_t start, end;
};

struct gmap {
	uintptr_t start, end; /* the whole mapping as made */
	struct piece *pieces; /* what is still mapped */
	unsigned npieces;
	int token;
	struct granted_dev *dev; /* a reference */
	uint64_t mapping_id;
	uint64_t index; /* device offset */
	uint32_t count; /* pages */
	enum granted_device kind;
};

static struct {
	pthread_mutex_t lock;
	struct gmap **v; /* sorted by start */
	size_t n, cap;
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER };

#define PAGE_DOWN(x) ((x) & ~(uintptr_t)(XEN_PAGE_SIZE - 1))
#define PAGE_UP(x)   (((x) + XEN_PAGE_SIZE - 1) & ~(uintptr_t)(XEN_PAGE_SIZE - 1))

struct run {
	uint64_t offset;
	uint32_t npages;
	unsigned fd; /* index into mmap_ctx.fds */
};

struct mmap_ctx {
	struct gr_mmap_reply head;
	int token;
	struct run *runs;
	uint32_t nruns;
	int *fds;
	unsigned nfds;
	bool first_seen;
};

static int on_mmap(void *ctx, const struct gr_hdr *h, const void *p, size_t len, int *fds,
		   unsigned nfds)
{
	struct mmap_ctx *mc = ctx;
	struct gr_mmap_reply rep;
	if (h->result < 0 && !(h->flags & GR_HDR_MORE))
		return 0;
	if (len < sizeof(rep))
		return -EIO;
	memcpy(&rep, p, sizeof(rep));
	if (len != sizeof(rep) + (size_t)rep.n * sizeof(struct gr_run))
		return -EIO;
	unsigned skip = 0;
	if (!mc->first_seen) {
		mc->first_seen = true;
		mc->head = rep;
		if (nfds < 1 || rep.nruns == 0 || rep.nruns > (1u << 24))
			return -EIO;
		mc->token = fds[0];
		fds[0] = -1;
		skip = 1;
		mc->runs = calloc(rep.nruns, sizeof(*mc->runs));
		if (!mc->runs)
			return -ENOMEM;
	}
	if (rep.n > mc->head.nruns - mc->nruns)
		return -EIO;
	unsigned base = mc->nfds;
	int *more = realloc(mc->fds, (mc->nfds + nfds) * sizeof(int));
	if (!more && nfds)
		return -ENOMEM;
	mc->fds = more;
	for (unsigned i = skip; i < nfds; i++) {
		mc->fds[mc->nfds++] = fds[i];
		fds[i] = -1;
	}
	const struct gr_run *runs = (const void *)((const char *)p + sizeof(rep));
	for (uint32_t i = 0; i < rep.n; i++) {
		struct gr_run r;
		memcpy(&r, runs + i, sizeof(r));
		if (r.fd_index < skip || r.fd_index >= nfds || r.npages == 0)
			return -EIO;
		mc->runs[mc->nruns++] =
			(struct run){ r.offset, r.npages, base + r.fd_index - skip };
	}
	return 0;
}

static int reg_insert(struct gmap *gm)
{
	if (reg.n == reg.cap) {
		size_t cap = reg.cap ? reg.cap * 2 : 16;
		struct gmap **v = realloc(reg.v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		reg.v = v;
		reg.cap = cap;
	}
	size_t i = reg.n;
	while (i > 0 && reg.v[i - 1]->start > gm->start) {
		reg.v[i] = reg.v[i - 1];
		i--;
	}
	reg.v[i] = gm;
	__atomic_store_n(&reg.n, reg.n + 1, __ATOMIC_RELEASE);
	return 0;
}

/* Removes the pieces in [s, e) from gm; returns whether any was hit. */
static bool pieces_cut(struct gmap *gm, uintptr_t s, uintptr_t e)
{
	bool hit = false;
	for (unsigned i = 0; i < gm->npieces; i++) {
		struct piece pc = gm->pieces[i];
		if (pc.end <= s || pc.start >= e)
			continue;
		hit = true;
		if (pc.start < s && pc.end > e) {
			/* A hole in the middle: one piece becomes two. */
			struct piece *v = realloc(gm->pieces, (gm->npieces + 1) * sizeof(*v));
			if (!v) {
				/* Keep the piece whole: the token outlives the
				 * mapping a little, never the reverse. */
				continue;
			}
			gm->pieces = v;
			memmove(v + i + 2, v + i + 1, (gm->npieces - i - 1) * sizeof(*v));
			v[i].end = s;
			v[i + 1] = (struct piece){ e, pc.end };
			gm->npieces++;
			i++;
		} else if (pc.start < s) {
			gm->pieces[i].end = s;
		} else if (pc.end > e) {
			gm->pieces[i].start = e;
		} else {
			memmove(gm->pieces + i, gm->pieces + i + 1,
				(gm->npieces - i - 1) * sizeof(*gm->pieces));
			gm->npieces--;
			i--;
		}
	}
	return hit;
}

/* The mapping is gone from this process: drop its token. */
static void gmap_finish(struct gmap *gm)
{
	struct granted_dev *dev = gm->dev;
	close(gm->token);
	if (dev->notify_armed) {
		/* Wait for the broker, so that a notification this munmap
		 * triggers has fired when munmap returns. */
		pthread_mutex_lock(&dev->lock);
		struct gr_munmap req = { .mapping_id = gm->mapping_id };
		chan_call(dev, GR_OP_MUNMAP, &req, sizeof(req), NULL, NULL);
		pthread_mutex_unlock(&dev->lock);
	}
	gr_debug("mapping %llu gone", (unsigned long long)gm->mapping_id);
	dev_put(dev);
	free(gm->pieces);
	free(gm);
}

GR_EXPORT void granted_unmapped(void *addr, size_t len)
{
	if (__atomic_load_n(&reg.n, __ATOMIC_ACQUIRE) == 0 || len == 0)
		return;
	uintptr_t s = PAGE_DOWN((uintptr_t)addr);
	uintptr_t e = PAGE_UP((uintptr_t)addr + len);
	struct gmap *done[16];
	unsigned ndone = 0;
	bool again;
	do {
		again = false;
		pthread_mutex_lock(&reg.lock);
		for (size_t i = 0; i < reg.n; i++) {
			struct gmap *gm = reg.v[i];
			if (gm->start >= e)
				break;
			if (gm->end <= s || !pieces_cut(gm, s, e) || gm->npieces > 0)
				continue;
			memmove(reg.v + i, reg.v + i + 1, (reg.n - i - 1) * sizeof(*reg.v));
			__atomic_store_n(&reg.n, reg.n - 1, __ATOMIC_RELEASE);
			i--;
			done[ndone++] = gm;
			if (ndone == sizeof(done) / sizeof(done[0])) {
				again = true;
				break;
			}
		}
		pthread_mutex_unlock(&reg.lock);
		/* Outside the registry lock: finishing may talk to the broker. */
		for (unsigned i = 0; i < ndone; i++)
			gmap_finish(done[i]);
		ndone = 0;
	} while (again);
}

GR_EXPORT int granted_is_mapped(const void *addr, size_t len)
{
	if (__atomic_load_n(&reg.n, __ATOMIC_ACQUIRE) == 0)
		return 0;
	uintptr_t s = PAGE_DOWN((uintptr_t)addr), e = PAGE_UP((uintptr_t)addr + len);
	int hit = 0;
	pthread_mutex_lock(&reg.lock);
	for (size_t i = 0; i < reg.n && !hit; i++) {
		struct gmap *gm = reg.v[i];
		if (gm->start >= e)
			break;
		for (unsigned j = 0; j < gm->npieces && !hit; j++)
			hit = gm->pieces[j].start < e && gm->pieces[j].end > s;
	}
	pthread_mutex_unlock(&reg.lock);
	return hit;
}

GR_EXPORT int granted_munmap(void *addr, size_t len)
{
	if (munmap(addr, len) < 0)
		return -errno;
	granted_unmapped(addr, len);
	return 0;
}

/* Maps the runs at addr (or anywhere), the way the caller asked. */
static void *map_runs(const struct mmap_ctx *mc, void *addr, size_t total, int prot, int flags)
{
	int fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	/* The driver inserts every page at mmap time: so do we. */
	int mflags = flags | MAP_POPULATE;
	if (mc->nruns == 1)
		return mmap(addr, total, prot, mflags, mc->fds[mc->runs[0].fd],
			    (off_t)mc->runs[0].offset);
	/* Several memfds: reserve the range, then place each run in it. */
	char *base = mmap(addr, total, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | fixed, -1, 0);
	if (base == MAP_FAILED)
		return MAP_FAILED;
	size_t off = 0;
	for (uint32_t i = 0; i < mc->nruns; i++) {
		size_t rlen = (size_t)mc->runs[i].npages * XEN_PAGE_SIZE;
		void *p = mmap(base + off, rlen, prot, (mflags & ~MAP_FIXED_NOREPLACE) | MAP_FIXED,
			       mc->fds[mc->runs[i].fd], (off_t)mc->runs[i].offset);
		if (p == MAP_FAILED) {
			int err = errno;
			munmap(base, total);
			errno = err;
			return MAP_FAILED;
		}
		off += rlen;
	}
	return base;
}

GR_EXPORT int granted_mmap(struct granted_dev *dev, void *addr, size_t len, int prot, int flags,
			   uint64_t offset, void **out)
{
	struct mmap_ctx mc = { .token = -1 };
	struct gmap *gm = NULL;
	int r;

	if (dev->kind == GRANTED_EVTCHN)
		return -ENODEV;
	/* The VFS checks, before the driver sees anything. */
	int type = flags & MAP_TYPE;
	bool shared = type == MAP_SHARED || type == MAP_SHARED_VALIDATE;
	if (len == 0 || offset % XEN_PAGE_SIZE || (!shared && type != MAP_PRIVATE))
		return -EINVAL;
	int acc = dev->flags & O_ACCMODE;
	if (acc == O_WRONLY || (shared && (prot & PROT_WRITE) && acc == O_RDONLY))
		return -EACCES;
	if (len > SIZE_MAX - XEN_PAGE_SIZE)
		return -ENOMEM;
	size_t total = PAGE_UP(len);

	pthread_mutex_lock(&dev->lock);
	struct gr_mmap req = {
		.offset = offset,
		.len = total,
		.prot = (uint32_t)prot,
		.flags = shared ? GR_MMAP_SHARED : 0,
	};
	r = chan_call(dev, GR_OP_MMAP, &req, sizeof(req), on_mmap, &mc);
	pthread_mutex_unlock(&dev->lock);
	if (r >= 0 && (!mc.first_seen || mc.nruns != mc.head.nruns))
		r = -EIO;
	if (r < 0)
		goto fail;

	gm = calloc(1, sizeof(*gm));
	if (gm)
		gm->pieces = malloc(sizeof(*gm->pieces));
	if (!gm || !gm->pieces) {
		r = -ENOMEM;
		goto fail;
	}
	void *p = map_runs(&mc, addr, total, prot, flags);
	if (p == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	/* A MAP_FIXED mapping replaced whatever was there. */
	if (flags & MAP_FIXED)
		granted_unmapped(p, total);
	/* Both drivers mark their VMAs VM_DONTDUMP (ABI.md §3.6, §4.11): a
	 * core dump must not hold another domain's pages. Best effort: the
	 * flag changes nothing else. */
	madvise(p, total, MADV_DONTDUMP);
	*gm = (struct gmap){
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + total,
		.pieces = gm->pieces,
		.npieces = 1,
		.token = mc.token,
		.dev = dev,
		.mapping_id = mc.head.mapping_id,
		.index = offset,
		.count = (uint32_t)(total / XEN_PAGE_SIZE),
		.kind = dev->kind,
	};
	gm->pieces[0] = (struct piece){ gm->start, gm->end };
	dev_get(dev);
	pthread_mutex_lock(&reg.lock);
	r = reg_insert(gm);
	pthread_mutex_unlock(&reg.lock);
	if (r < 0) {
		munmap(p, total);
		dev_put(dev);
		goto fail;
	}
	gr_debug("mapping %llu at %p, %zu pages in %u run(s)", (unsigned long long)gm->mapping_id,
		 p, total / XEN_PAGE_SIZE, mc.nruns);
	gr_close_fds(mc.fds, mc.nfds);
	free(mc.fds);
	free(mc.runs);
	*out = p;
	return 0;
fail:
	/* Closing the token tells the broker the mapping never came to be. */
	if (mc.token >= 0)
		close(mc.token);
	gr_close_fds(mc.fds, mc.nfds);
	free(mc.fds);
	free(mc.runs);
	if (gm)
		free(gm->pieces);
	free(gm);
	return r;
}

/* The start of the first mapping of the process ending above vaddr, from
 * /proc/self/maps: what the kernel's find_vma() would find. */
static int first_vma_above(uintptr_t vaddr, uintptr_t *start)
{
	FILE *fp = fopen("/proc/self/maps", "re");
	char line[512];
	int r = -ENOENT;
	if (!fp)
		return -errno;
	while (fgets(line, sizeof(line), fp)) {
		unsigned long s, e;
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && e > vaddr) {
			*start = s;
			r = 0;
			break;
		}
	}
	fclose(fp);
	return r;
}

GR_EXPORT int granted_offset_for_vaddr(uint64_t vaddr, uint64_t *offset, uint32_t *count)
{
	struct gmap *found = NULL;
	uintptr_t found_start = 0;
	bool inside = false;
	pthread_mutex_lock(&reg.lock);
	for (size_t i = 0; i < reg.n; i++) {
		struct gmap *gm = reg.v[i];
		for (unsigned j = 0; j < gm->npieces; j++) {
			struct piece pc = gm->pieces[j];
			if (pc.end <= vaddr)
				continue;
			if (!found || pc.start < found_start) {
				found = gm;
				found_start = pc.start;
				inside = pc.start <= vaddr;
			}
		}
	}
	uint64_t off = found ? found->index : 0;
	uint32_t cnt = found ? found->count : 0;
	bool gntdev = found && found->kind == GRANTED_GNTDEV;
	pthread_mutex_unlock(&reg.lock);
	if (!gntdev)
		return -EINVAL;
	if (!inside) {
		/* vaddr is in no grant mapping: the kernel looks at the first
		 * mapping above it, which may be someone else's. */
		uintptr_t vma;
		if (first_vma_above((uintptr_t)vaddr, &vma) < 0 || vma != found_start)
			return -EINVAL;
	}
	*offset = off;
	*count = cnt;
	return 0;
}
