/*
 * Mappings: one per successful mmap() of a grant device.
 *
 * The kernel learns of the last munmap because it owns the page tables; we
 * learn it from a token. The broker makes a pipe per mapping, keeps the read
 * end and sends the write end with the memory. The client keeps the token
 * open exactly as long as any part of the mapping exists: fork duplicates
 * both, exec and exit drop both (the token is CLOEXEC), and the client's
 * munmap() closes it once the last page of the mapping is gone. When every
 * copy is closed, the read end reports EPOLLHUP, whatever the client did.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "internal.h"
#include "loop.h"

static void token_event(void *data, uint32_t events)
{
	struct mapping *m = data;
	if (events & (EPOLLHUP | EPOLLERR)) {
		mapping_release(m);
		return;
	}
	/* Someone wrote into their token. Nothing is ever read from it, so
	 * drain and ignore; a full pipe only blocks the writer. */
	char buf[256];
	while (read(m->token_fd, buf, sizeof(buf)) > 0)
		;
}

int mapping_create(struct file *f, struct conn *c, struct mapping **out, int *token_out)
{
	if (f->dom->mappings >= f->b->cfg.max_mappings)
		return -ENOMEM;
	struct mapping *m = calloc(1, sizeof(*m));
	int p[2] = { -1, -1 };
	if (!m)
		return -ENOMEM;
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(m);
		return errno == EMFILE || errno == ENFILE ? -ENOMEM : -errno;
	}
	/* Only EPOLLHUP matters; it is always reported. */
	m->src = loop_add(f->b->loop, p[0], 0, token_event, m);
	if (!m->src) {
		close(p[0]);
		close(p[1]);
		free(m);
		return -ENOMEM;
	}
	m->id = ++f->b->next_mapping_id;
	m->file = f;
	m->token_fd = p[0];
	m->pid = c->peer.cred.pid;
	f->refs++;
	f->dom->mappings++;
	list_append(&f->mappings, &m->link);
	f->b->nmappings++;
	*out = m;
	*token_out = p[1];
	return 0;
}

void mapping_release(struct mapping *m)
{
	struct file *f = m->file;
	loop_remove(m->src);
	close(m->token_fd);
	list_remove(&m->link);
	f->b->nmappings--;
	f->dom->mappings--;
	if (m->map) {
		gntdev_map_put(m->map);
	} else {
		for (uint32_t i = 0; i < m->npages; i++)
			gntalloc_page_put(m->pages[i]);
	}
	free(m->pages);
	free(m);
	file_put(f);
}

void mapping_abort(struct mapping *m, int token)
{
	if (token >= 0)
		close(token);
	mapping_release(m);
}

int mapping_munmap(struct conn *c, struct file *f, const struct gr_hdr *h,
		   const struct gr_munmap *req)
{
	(void)c;
	(void)h;
	struct mapping *m;
	list_for_each(m, tmp, &f->mappings, struct mapping, link)
	{
		if (m->id != req->mapping_id)
			continue;
		/* The client closed its copy before asking: if that was the
		 * last one, the hang-up is already visible; handle it now so
		 * that the notification has fired when the reply arrives. */
		struct pollfd pfd = { .fd = m->token_fd, .events = 0 };
		if (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP))
			mapping_release(m);
		return 0;
	}
	/* Already released: its hang-up was seen first. */
	return 0;
}

struct reply_builder {
	struct conn *c;
	const struct gr_hdr *h;
	struct gr_mmap_reply head;
	int token; /* sent in the first message only, then closed */
	unsigned nfds;
	int fds[GR_MSG_FDS_MAX];
	struct allocation *fd_alloc[GR_MSG_FDS_MAX];
	uint32_t nruns;
	struct gr_run runs[(GR_MSG_MAX - sizeof(struct gr_hdr) - sizeof(struct gr_mmap_reply)) /
			   sizeof(struct gr_run)];
};

static void builder_start(struct reply_builder *rb)
{
	rb->nfds = 0;
	rb->nruns = 0;
	if (rb->token >= 0) {
		rb->fd_alloc[0] = NULL;
		rb->fds[rb->nfds++] = rb->token;
	}
}

static void builder_flush(struct reply_builder *rb, bool last)
{
	static char buf[GR_MSG_MAX];
	rb->head.n = rb->nruns;
	memcpy(buf, &rb->head, sizeof(rb->head));
	memcpy(buf + sizeof(rb->head), rb->runs, rb->nruns * sizeof(struct gr_run));
	size_t len = sizeof(rb->head) + rb->nruns * sizeof(struct gr_run);
	if (last)
		conn_reply(rb->c, rb->h, 0, buf, len, rb->fds, rb->nfds);
	else
		conn_reply_more(rb->c, rb->h, buf, len, rb->fds, rb->nfds);
	if (rb->token >= 0) {
		close(rb->token);
		rb->token = -1;
	}
	builder_start(rb);
}

static unsigned builder_fd_slot(struct reply_builder *rb, struct allocation *a)
{
	for (unsigned slot = 0; slot < rb->nfds; slot++)
		if (rb->fd_alloc[slot] == a)
			return slot;
	return rb->nfds;
}

int mapping_send(struct conn *c, const struct gr_hdr *h, struct mapping *m, int token,
		 const struct run_page *pages, uint32_t npages, bool writable)
{
	const uint32_t runs_max = sizeof(((struct reply_builder *)0)->runs) / sizeof(struct gr_run);
	struct reply_builder *rb = malloc(sizeof(*rb));
	if (!rb) {
		mapping_abort(m, token);
		return -ENOMEM;
	}
	rb->c = c;
	rb->h = h;
	rb->token = token;
	rb->head = (struct gr_mmap_reply){ .mapping_id = m->id, .writable = writable };
	/* The first message says how many runs the whole reply has. */
	for (uint32_t i = 0; i < npages; i++)
		if (i == 0 || pages[i].alloc != pages[i - 1].alloc ||
		    pages[i].idx != pages[i - 1].idx + 1)
			rb->head.nruns++;
	builder_start(rb);

	for (uint32_t i = 0; i < npages;) {
		uint32_t j = i + 1;
		while (j < npages && pages[j].alloc == pages[i].alloc &&
		       pages[j].idx == pages[j - 1].idx + 1)
			j++;
		unsigned slot = builder_fd_slot(rb, pages[i].alloc);
		if (rb->nruns == runs_max || (slot == rb->nfds && rb->nfds == GR_MSG_FDS_MAX)) {
			builder_flush(rb, false);
			slot = builder_fd_slot(rb, pages[i].alloc);
		}
		if (slot == rb->nfds) {
			int fd = allocation_fd(pages[i].alloc, writable);
			if (fd < 0) {
				/* Already-sent parts are useless without the end:
				 * the client sees the connection close. */
				int t = rb->token;
				free(rb);
				mapping_abort(m, t);
				return -ENOMEM;
			}
			rb->fd_alloc[slot] = pages[i].alloc;
			rb->fds[rb->nfds++] = fd;
		}
		rb->runs[rb->nruns++] = (struct gr_run){
			.offset = (uint64_t)pages[i].idx * XEN_PAGE_SIZE,
			.npages = j - i,
			.fd_index = (uint16_t)slot,
		};
		i = j;
	}
	builder_flush(rb, true);
	free(rb);
	return GR_REPLIED;
}
