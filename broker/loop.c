#include "loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

struct loop_source {
	struct loop *loop;
	int fd;
	loop_fn fn;
	void *data;
	bool dead;
	struct loop_source *prev, *next; /* all live sources */
	struct loop_source *next_dead;
};

struct loop {
	int epfd;
	struct loop_source *live;
	struct loop_source *dead; /* removed during dispatch, freed after it */
	bool dispatching;
};

struct loop *loop_create(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		free(loop);
		return NULL;
	}
	return loop;
}

static void reap(struct loop *loop)
{
	while (loop->dead) {
		struct loop_source *src = loop->dead;
		loop->dead = src->next_dead;
		free(src);
	}
}

void loop_destroy(struct loop *loop)
{
	if (!loop)
		return;
	while (loop->live)
		loop_remove(loop->live);
	reap(loop);
	close(loop->epfd);
	free(loop);
}

struct loop_source *loop_add(struct loop *loop, int fd, uint32_t events, loop_fn fn, void *data)
{
	struct loop_source *src = calloc(1, sizeof(*src));
	if (!src)
		return NULL;
	*src = (struct loop_source){ .loop = loop, .fd = fd, .fn = fn, .data = data };
	struct epoll_event ev = { .events = events, .data.ptr = src };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;
		free(src);
		errno = err;
		return NULL;
	}
	src->next = loop->live;
	if (loop->live)
		loop->live->prev = src;
	loop->live = src;
	return src;
}

int loop_modify(struct loop_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };
	return epoll_ctl(src->loop->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0 ? -errno : 0;
}

void loop_remove(struct loop_source *src)
{
	if (!src || src->dead)
		return;
	struct loop *loop = src->loop;
	/* The fd may already be closed by the kernel's side (a dead peer);
	 * EBADF/ENOENT here are harmless. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, src->fd, NULL);
	if (src->prev)
		src->prev->next = src->next;
	else
		loop->live = src->next;
	if (src->next)
		src->next->prev = src->prev;
	src->dead = true;
	src->next_dead = loop->dead;
	loop->dead = src;
	if (!loop->dispatching)
		reap(loop);
}

int loop_dispatch(struct loop *loop, int timeout_ms)
{
	struct epoll_event evs[64];
	int n = epoll_wait(loop->epfd, evs, 64, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	loop->dispatching = true;
	for (int i = 0; i < n; i++) {
		struct loop_source *src = evs[i].data.ptr;
		if (!src->dead)
			src->fn(src->data, evs[i].events);
	}
	loop->dispatching = false;
	reap(loop);
	return n;
}
