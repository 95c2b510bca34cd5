/*
 * IOCTL_GNTDEV_GRANT_COPY at memory speed.
 *
 * The broker checks grants and hands over their memory; we keep what it
 * told us (the page, mapped here, and whether it is writable) per (domain,
 * ref), together with the granting domain's grant epoch at the time. The
 * broker moves a domain's epoch whenever one of its grants ends or it dies,
 * and we can read the epochs (a read-only shared page), so an answer we
 * kept is still right exactly while its epoch has not moved: an ioctl whose
 * grants are all known costs no round trip at all, others one.
 *
 * The caller's buffers are copied through process_vm_readv/writev on
 * ourselves: the kernel does the copy, a bad or read-only buffer is EFAULT
 * and never a crash, and a batch of up to 1024 segments is one syscall.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "xen_abi.h"

#define CACHE_MAX_ENTRIES 65536u
#define CACHE_MAX_MAPS	  512u
#define IOV_BATCH	  1024u

struct centry {
	uint64_t key; /* domid << 32 | ref; 0 = empty (ref 0 is never granted) */
	char *page;
	uint32_t epoch;
	bool writable;
};

struct cmap {
	dev_t dev;
	ino_t ino;
	bool writable;
	char *base;
	size_t len;
};

struct copy_cache {
	const uint32_t *epoch; /* the broker's page, read-only */
	size_t epoch_len;
	struct centry *tab; /* open addressing, cap a power of two */
	uint32_t cap, n;
	struct cmap *maps;
	uint32_t nmaps, mcap;
};

_Static_assert(sizeof(struct granted_copy_segment) == sizeof(struct gntdev_grant_copy_segment),
	       "segment layout");
_Static_assert(offsetof(struct granted_copy_segment, status) ==
		       offsetof(struct gntdev_grant_copy_segment, status),
	       "segment status");

int copy_setup(struct granted_dev *dev, int epoch_fd)
{
	struct stat st;
	if (epoch_fd < 0 || fstat(epoch_fd, &st) < 0 || (size_t)st.st_size < GR_EPOCH_SIZE)
		return -EIO;
	struct copy_cache *cc = calloc(1, sizeof(*cc));
	if (!cc)
		return -ENOMEM;
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, epoch_fd, 0);
	if (p == MAP_FAILED) {
		free(cc);
		return -errno;
	}
	cc->epoch = p;
	cc->epoch_len = (size_t)st.st_size;
	dev->copy = cc;
	return 0;
}

static void cache_flush(struct copy_cache *cc)
{
	for (uint32_t i = 0; i < cc->nmaps; i++)
		munmap(cc->maps[i].base, cc->maps[i].len);
	cc->nmaps = 0;
	if (cc->tab)
		memset(cc->tab, 0, cc->cap * sizeof(*cc->tab));
	cc->n = 0;
}

void copy_teardown(struct granted_dev *dev)
{
	struct copy_cache *cc = dev->copy;
	if (!cc)
		return;
	cache_flush(cc);
	munmap((void *)cc->epoch, cc->epoch_len);
	free(cc->tab);
	free(cc->maps);
	free(cc);
	dev->copy = NULL;
}

static uint32_t hash(uint64_t key)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (uint32_t)key;
}

static struct centry *lookup(struct copy_cache *cc, uint64_t key)
{
	if (!cc->tab)
		return NULL;
	for (uint32_t i = hash(key) & (cc->cap - 1);; i = (i + 1) & (cc->cap - 1)) {
		if (cc->tab[i].key == key)
			return &cc->tab[i];
		if (cc->tab[i].key == 0)
			return NULL;
	}
}

static struct centry *insert(struct copy_cache *cc, uint64_t key)
{
	if (cc->n + 1 > cc->cap / 2) {
		if (cc->n >= CACHE_MAX_ENTRIES) {
			cache_flush(cc);
		} else {
			uint32_t cap = cc->cap ? cc->cap * 2 : 256;
			struct centry *old = cc->tab, *tab = calloc(cap, sizeof(*tab));
			if (!tab)
				return NULL;
			uint32_t oldcap = cc->cap;
			cc->tab = tab;
			cc->cap = cap;
			cc->n = 0;
			for (uint32_t i = 0; i < oldcap; i++)
				if (old[i].key)
					*insert(cc, old[i].key) = old[i];
			free(old);
		}
	}
	struct centry *e = lookup(cc, key);
	if (e)
		return e;
	for (uint32_t i = hash(key) & (cc->cap - 1);; i = (i + 1) & (cc->cap - 1)) {
		if (cc->tab[i].key == 0) {
			cc->tab[i].key = key;
			cc->n++;
			return &cc->tab[i];
		}
	}
}

/* The mapping of the memfd `fd` (not consumed), made once. */
static char *map_fd(struct copy_cache *cc, int fd, bool writable)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return NULL;
	for (uint32_t i = 0; i < cc->nmaps; i++)
		if (cc->maps[i].ino == st.st_ino && cc->maps[i].dev == st.st_dev &&
		    (cc->maps[i].writable || !writable))
			return cc->maps[i].base;
	if (cc->nmaps >= CACHE_MAX_MAPS)
		cache_flush(cc);
	if (cc->nmaps == cc->mcap) {
		uint32_t cap = cc->mcap ? cc->mcap * 2 : 16;
		struct cmap *m = realloc(cc->maps, cap * sizeof(*m));
		if (!m)
			return NULL;
		cc->maps = m;
		cc->mcap = cap;
	}
	void *p = mmap(NULL, (size_t)st.st_size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
		       MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	cc->maps[cc->nmaps++] =
		(struct cmap){ st.st_dev, st.st_ino, writable, p, (size_t)st.st_size };
	return p;
}

/* What one side of a segment resolved to for this call. */
struct side {
	int16_t status;
	bool writable;
	char *page;
};

struct miss {
	uint64_t key;
	struct side res;
};

struct fetch_ctx {
	struct copy_cache *cc;
	struct miss *miss;
	uint32_t nmiss;
	int err;
};

static int on_rows(void *ctx, const struct gr_hdr *h, const void *p, size_t len, int *fds,
		   unsigned nfds)
{
	struct fetch_ctx *fc = ctx;
	struct gr_copy_reply rep;
	if (h->result < 0 && !(h->flags & GR_HDR_MORE))
		return 0;
	if (len < sizeof(rep))
		return -EIO;
	memcpy(&rep, p, sizeof(rep));
	if (len != sizeof(rep) + (size_t)rep.n * sizeof(struct gr_copy_row) ||
	    rep.first > fc->nmiss || rep.n > fc->nmiss - rep.first)
		return -EIO;
	const struct gr_copy_row *rows = (const void *)((const char *)p + sizeof(rep));
	for (uint32_t i = 0; i < rep.n; i++) {
		struct gr_copy_row row;
		memcpy(&row, rows + i, sizeof(row));
		struct miss *m = &fc->miss[rep.first + i];
		m->res.status = row.status;
		if (row.status != GNTST_okay)
			continue;
		if (row.fd_index >= nfds)
			return -EIO;
		char *base = map_fd(fc->cc, fds[row.fd_index], row.writable);
		if (!base)
			return -ENOMEM;
		m->res.page = base + (size_t)row.page * XEN_PAGE_SIZE;
		m->res.writable = row.writable;
		/* Keep it for the next copies, tied to the epoch it was
		 * checked under. */
		struct centry *e = insert(fc->cc, m->key);
		if (e) {
			e->page = m->res.page;
			e->writable = row.writable;
			e->epoch = row.epoch;
		}
	}
	return 0;
}

static uint64_t side_key(const struct granted_dev *dev, uint16_t domid, uint32_t ref)
{
	if (domid == DOMID_SELF)
		domid = dev->domid;
	/* +1 keeps key 0 free as the empty marker. */
	return ((uint64_t)domid + 1) << 32 | ref;
}

static bool cached(struct copy_cache *cc, uint64_t key, struct side *out)
{
	struct centry *e = lookup(cc, key);
	uint32_t domid = (uint32_t)(key >> 32) - 1;
	if (!e || domid >= DOMID_FIRST_RESERVED ||
	    __atomic_load_n(&cc->epoch[domid], __ATOMIC_ACQUIRE) != e->epoch)
		return false;
	*out = (struct side){ .status = GNTST_okay, .writable = e->writable, .page = e->page };
	return true;
}

/* Collects the refs that no cached answer covers. */
static int add_miss(struct fetch_ctx *fc, uint32_t *cap, uint64_t key)
{
	for (uint32_t i = 0; i < fc->nmiss; i++)
		if (fc->miss[i].key == key)
			return 0;
	if (fc->nmiss == *cap) {
		uint32_t ncap = *cap ? *cap * 2 : 64;
		struct miss *m = realloc(fc->miss, ncap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		fc->miss = m;
		*cap = ncap;
	}
	fc->miss[fc->nmiss++] =
		(struct miss){ .key = key, .res = { .status = GNTST_general_error } };
	return 0;
}

static int fetch(struct granted_dev *dev, struct fetch_ctx *fc)
{
	size_t len = sizeof(struct gr_copy_refs) + fc->nmiss * sizeof(struct gr_copy_ref);
	enum {
		MAX_REFS = (GR_MSG_MAX - sizeof(struct gr_hdr) - sizeof(struct gr_copy_refs)) /
			   sizeof(struct gr_copy_ref)
	};
	/* More refs than one message holds: ask in several rounds. */
	struct miss *all = fc->miss;
	uint32_t total = fc->nmiss;
	int r = 0;
	char *msg = malloc(len < GR_MSG_MAX ? len : GR_MSG_MAX);
	if (!msg)
		return -ENOMEM;
	for (uint32_t done = 0; done < total && r >= 0;) {
		uint32_t n = total - done < MAX_REFS ? total - done : MAX_REFS;
		struct gr_copy_refs head = { .n = n };
		memcpy(msg, &head, sizeof(head));
		for (uint32_t i = 0; i < n; i++) {
			uint64_t key = all[done + i].key;
			struct gr_copy_ref ref = { .ref = (uint32_t)key,
						   .domid = (uint16_t)((key >> 32) - 1) };
			memcpy(msg + sizeof(head) + i * sizeof(ref), &ref, sizeof(ref));
		}
		fc->miss = all + done;
		fc->nmiss = n;
		r = chan_call(dev, GR_OP_COPY_REFS, msg,
			      sizeof(head) + n * sizeof(struct gr_copy_ref), on_rows, fc);
		done += n;
	}
	fc->miss = all;
	fc->nmiss = total;
	free(msg);
	return r < 0 ? r : 0;
}

/* A run of copies in one direction through the kernel. */
struct batch {
	int kind; /* 0 none, 1 local -> grant, 2 grant -> local */
	struct iovec ours[IOV_BATCH], theirs[IOV_BATCH];
	uint32_t seg[IOV_BATCH];
	uint32_t n;
};

/*
 * Large batches are copied with memcpy, at memory speed, with a fault in
 * the caller's buffer caught as the kernel's exception tables would: a
 * SIGSEGV/SIGBUS handler lives only around the copy, and a fault that is
 * not ours goes to the program's own handler. (The kernel's copy through
 * process_vm_*v runs at ~0.6x memcpy for 4 KiB segments: measured.)
 * Sanitizer builds keep to process_vm_*v: their memcpy checks would see
 * the bad buffers first.
 */
#if defined(__SANITIZE_ADDRESS__)
#define GUARDED_COPY 0
#else
#define GUARDED_COPY 1
#endif
#define GUARDED_MIN_BYTES (32u << 10)

static __thread sigjmp_buf *fault_jmp;
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction saved_segv, saved_bus;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	if (fault_jmp)
		siglongjmp(*fault_jmp, 1);
	/* Not a fault of ours: what the program had installed handles it. */
	struct sigaction *old = sig == SIGSEGV ? &saved_segv : &saved_bus;
	if (old->sa_flags & SA_SIGINFO) {
		old->sa_sigaction(sig, si, uc);
	} else if (old->sa_handler == SIG_DFL) {
		sigaction(sig, old, NULL); /* the instruction faults again, fatally */
	} else if (old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
	}
}

static int guarded_copy(struct batch *b, uint32_t *fault)
{
	volatile uint32_t i = 0;
	volatile int r = 0;
	sigjmp_buf jb;
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO | SA_NODEFER };
	pthread_mutex_lock(&guard_lock);
	sigaction(SIGSEGV, &sa, &saved_segv);
	sigaction(SIGBUS, &sa, &saved_bus);
	/* No mask to save (a syscall): the handler is SA_NODEFER with an
	 * empty sa_mask, so it runs, and jumps back, with the mask of the
	 * fault, which is ours. */
	if (sigsetjmp(jb, 0) == 0) {
		fault_jmp = &jb;
		for (; i < b->n; i++) {
			if (b->kind == 1)
				memcpy(b->ours[i].iov_base, b->theirs[i].iov_base,
				       b->ours[i].iov_len);
			else
				memcpy(b->theirs[i].iov_base, b->ours[i].iov_base,
				       b->ours[i].iov_len);
		}
	} else {
		*fault = b->seg[i];
		r = -EFAULT;
	}
	fault_jmp = NULL;
	sigaction(SIGSEGV, &saved_segv, NULL);
	sigaction(SIGBUS, &saved_bus, NULL);
	pthread_mutex_unlock(&guard_lock);
	return r;
}

/* Runs the batch; on a fault, *fault is the segment that faulted. */
static int batch_run(struct batch *b, uint32_t *fault)
{
	if (b->n == 0)
		return 0;
	ssize_t want = 0, got;
	for (uint32_t i = 0; i < b->n; i++)
		want += (ssize_t)b->ours[i].iov_len;
	if (GUARDED_COPY && want >= (ssize_t)GUARDED_MIN_BYTES) {
		int r = guarded_copy(b, fault);
		b->n = 0;
		b->kind = 0;
		return r;
	}
	pid_t self = gr_getpid();
	if (b->kind == 1)
		got = process_vm_readv(self, b->ours, b->n, b->theirs, b->n, 0);
	else
		got = process_vm_writev(self, b->ours, b->n, b->theirs, b->n, 0);
	int r = 0;
	if (got != want) {
		/* Find the segment whose bytes stopped it. */
		ssize_t pos = got < 0 ? 0 : got;
		uint32_t i = 0;
		while (i < b->n && pos >= (ssize_t)b->ours[i].iov_len) {
			pos -= (ssize_t)b->ours[i].iov_len;
			i++;
		}
		*fault = b->seg[i < b->n ? i : b->n - 1];
		r = -EFAULT;
	}
	b->n = 0;
	b->kind = 0;
	return r;
}

/*
 * Decides one gref side: from a cached answer (epoch read once, here), or
 * as a miss to fetch. *pending is then the miss's index + 1.
 */
static int side_decide(struct granted_dev *dev, struct fetch_ctx *fc, uint32_t *cap, uint16_t domid,
		       uint32_t ref, bool dest, struct side *out, uint32_t *pending)
{
	uint64_t key = side_key(dev, domid, ref);
	*pending = 0;
	if (cached(fc->cc, key, out) && (!dest || out->writable))
		return 0;
	int r = add_miss(fc, cap, key);
	if (r < 0)
		return r;
	for (uint32_t i = 0; i < fc->nmiss; i++)
		if (fc->miss[i].key == key)
			*pending = i + 1;
	return 0;
}

GR_EXPORT int granted_grant_copy(struct granted_dev *dev, struct granted_copy_segment *segs,
				 uint32_t count, uint32_t *fault)
{
	struct fetch_ctx fc = { 0 };
	struct batch *b = NULL;
	struct side *sides = NULL; /* [2 i] source, [2 i + 1] dest */
	uint32_t *pending = NULL;
	uint32_t cap = 0;
	int r = 0;

	if (dev->kind != GRANTED_GNTDEV)
		return -ENOTTY;
	pthread_mutex_lock(&dev->lock);
	if (!dev->copy) {
		r = -EIO;
		goto out;
	}
	fc.cc = dev->copy;
	sides = calloc((size_t)count * 2 + 1, sizeof(*sides));
	pending = calloc((size_t)count * 2 + 1, sizeof(*pending));
	if (!sides || !pending) {
		r = -ENOMEM;
		goto out;
	}
	/* Each side is decided once: a grant of the same domain may end
	 * meanwhile, and must not make an answer we used stale half-way. */
	for (uint32_t i = 0; i < count && r == 0; i++) {
		struct granted_copy_segment *s = &segs[i];
		if (s->len == 0)
			continue;
		if (s->flags & GNTCOPY_source_gref)
			r = side_decide(dev, &fc, &cap, s->source.foreign.domid,
					s->source.foreign.ref, false, &sides[2 * i],
					&pending[2 * i]);
		if ((s->flags & GNTCOPY_dest_gref) && r == 0)
			r = side_decide(dev, &fc, &cap, s->dest.foreign.domid, s->dest.foreign.ref,
					true, &sides[2 * i + 1], &pending[2 * i + 1]);
	}
	/* At most one round trip for all of it (more only past 8000 refs). */
	if (r == 0 && fc.nmiss)
		r = fetch(dev, &fc);
	if (r < 0)
		goto out;
	for (uint32_t k = 0; k < count * 2; k++)
		if (pending[k])
			sides[k] = fc.miss[pending[k] - 1].res;
	b = malloc(sizeof(*b));
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	b->n = 0;
	b->kind = 0;
	for (uint32_t i = 0; i < count; i++) {
		struct granted_copy_segment *s = &segs[i];
		s->status = GNTST_okay;
		if (s->len == 0)
			continue;
		struct side src = { 0 }, dst = { 0 };
		char *from = s->source.virt, *to = s->dest.virt;
		bool src_gref = s->flags & GNTCOPY_source_gref,
		     dst_gref = s->flags & GNTCOPY_dest_gref;
		if (src_gref)
			src = sides[2 * i];
		if (dst_gref) {
			dst = sides[2 * i + 1];
			if (dst.status == GNTST_okay && !dst.writable)
				dst.status = GNTST_general_error; /* a read-only grant */
		}
		/* Xen's order: both domains, then the source, then the dest. */
		if (src.status == GNTST_bad_domain || dst.status == GNTST_bad_domain)
			s->status = GNTST_bad_domain;
		else if (src.status != GNTST_okay)
			s->status = src.status;
		else if (dst.status != GNTST_okay)
			s->status = dst.status;
		if (s->status != GNTST_okay)
			continue;
		/* Both sides are known good from here: their pages exist. */
		if (src_gref)
			from = src.page + s->source.foreign.offset;
		if (dst_gref)
			to = dst.page + s->dest.foreign.offset;
		if (src_gref && dst_gref) {
			r = batch_run(b, fault);
			if (r < 0)
				goto out;
			memmove(to, from, s->len);
			continue;
		}
		int kind = dst_gref ? 1 : 2;
		if (b->kind != kind || b->n == IOV_BATCH) {
			r = batch_run(b, fault);
			if (r < 0)
				goto out;
			b->kind = kind;
		}
		b->ours[b->n] = (struct iovec){ dst_gref ? to : from, s->len };
		b->theirs[b->n] = (struct iovec){ dst_gref ? from : to, s->len };
		b->seg[b->n++] = i;
	}
	r = batch_run(b, fault);
out:
	pthread_mutex_unlock(&dev->lock);
	free(b);
	free(sides);
	free(pending);
	free(fc.miss);
	return r;
}
