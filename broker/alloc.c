/*
 * Allocations: the memory behind gntalloc grants. One memfd per ALLOC_GREF,
 * sized once and sealed so that nobody holding it can shrink it under
 * another process's mapping (SIGBUS) or grow it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int memfd_sealed(const char *name, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return errno == EMFILE || errno == ENFILE ? -ENOMEM : -errno;
	/* Mode 0400: whoever holds a read-only open of this file cannot
	 * reopen it writable through /proc/<pid>/fd, which checks the inode's
	 * mode (only CAP_DAC_OVERRIDE passes). The broker's own rw open keeps
	 * its access: the mode is checked at open, not at write. */
	if (ftruncate(fd, (off_t)len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
	    fchmod(fd, 0400) < 0) {
		close(fd);
		return -ENOMEM;
	}
	return fd;
}

int memfd_reopen_ro(int fd)
{
	/* A fresh open file description without write access: the kernel
	 * then refuses PROT_WRITE on a shared mapping of it, and mprotect()
	 * cannot add it later. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	return ro < 0 ? -errno : ro;
}

int allocation_create(struct domain *owner, uint32_t npages, uint16_t grantee, bool writable,
		      struct allocation **out)
{
	struct allocation *a = calloc(1, sizeof(*a));
	int r = -ENOMEM;
	if (!a)
		goto fail;
	a->memfd = a->ro_fd = -1;
	a->pages = calloc(npages, sizeof(*a->pages));
	if (!a->pages)
		goto fail;
	char name[32];
	snprintf(name, sizeof(name), "granted-d%u", owner->id);
	a->memfd = memfd_sealed(name, (size_t)npages * XEN_PAGE_SIZE);
	if (a->memfd < 0) {
		r = a->memfd;
		goto fail;
	}
	a->owner = owner;
	a->npages = npages;
	a->grantee = grantee;
	a->writable = writable;
	a->live = npages;
	for (uint32_t i = 0; i < npages; i++)
		a->pages[i] = (struct gntalloc_page){ .alloc = a, .idx = i };
	owner->b->nallocs++;
	*out = a;
	return 0;
fail:
	if (a) {
		if (a->memfd >= 0)
			close(a->memfd);
		free(a->pages);
		free(a);
	}
	return r;
}

int allocation_fd(struct allocation *a, bool writable)
{
	if (writable)
		return a->memfd;
	if (a->ro_fd < 0)
		a->ro_fd = memfd_reopen_ro(a->memfd);
	return a->ro_fd;
}

static void allocation_free(struct allocation *a)
{
	a->owner->b->nallocs--;
	close(a->memfd);
	if (a->ro_fd >= 0)
		close(a->ro_fd);
	free(a->pages);
	free(a);
}

void page_maybe_dead(struct gntalloc_page *p)
{
	if (p->users > 0 || p->granted || p->dead)
		return;
	p->dead = true;
	struct allocation *a = p->alloc;
	if (--a->live == 0)
		allocation_free(a);
}

int page_clear_byte(struct gntalloc_page *p, uint32_t byte)
{
	static const char zero;
	off_t off = (off_t)p->idx * XEN_PAGE_SIZE + byte;
	return pwrite(p->alloc->memfd, &zero, 1, off) == 1 ? 0 : -errno;
}
