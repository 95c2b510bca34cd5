/*
 * The broker object: its loop, accepting clients, the grant-end timer, and
 * the idle exit used when grantctl starts a broker on demand.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "internal.h"
#include "loop.h"

void broker_config_defaults(struct broker_config *cfg)
{
	*cfg = (struct broker_config){
		.max_grant_entries = 32768,
		.max_maptrack = 262144,
		.gntalloc_limit = 1024,
		.gntdev_map_limit = 65536,
		.max_ports = 1023,
		.grant_end_delay_ms = 1000,
		.idle_exit_ms = 0,
		.max_connections = 4096,
		.max_files = 1024,
		.max_mappings = 16384,
		.max_map_refs = 1u << 20,
		.log_level = LOG_WARNING,
	};
}

static void on_timer(void *data, uint32_t events)
{
	struct broker *b = data;
	uint64_t ticks;
	(void)events;
	if (read(b->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_warn("timerfd: %s", strerror(errno));
	grants_expire(b);
}

static void on_accept(void *data, uint32_t events)
{
	struct broker *b = data;
	(void)events;
	for (;;) {
		int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				broker_refuse_client(b, b->listen_fd);
				return;
			}
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("accept: %s", strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		int r = broker_add_client(b, fd);
		if (r < 0)
			log_warn("cannot add a client: %s", strerror(-r));
	}
}

static void listeners_enable(struct broker *b, bool on)
{
	b->listening = on;
	if (b->listen_src)
		loop_modify(b->listen_src, on ? EPOLLIN : 0);
	if (b->xs_src)
		loop_modify(b->xs_src, on ? EPOLLIN : 0);
}

void broker_refuse_client(struct broker *b, int listen_fd)
{
	/* Out of fds (the kernel says so before it looks at the backlog):
	 * spend the reserve fd to accept the waiting client, if any, and close
	 * it, so that the listener does not stay readable and the loop serves
	 * everyone else. One refusal per round of the loop: the others wait
	 * their turn in the backlog. */
	int fd = -1;
	if (b->reserve_fd >= 0) {
		close(b->reserve_fd);
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			close(fd);
		b->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	/* Without a reserve, stop listening until a client goes. */
	if (b->reserve_fd < 0)
		listeners_enable(b, false);
	if (fd < 0)
		return;
	b->refused++;
	uint64_t now = now_ns();
	if (now - b->refused_logged_ns >= 1000000000u) {
		log_err("out of file descriptors: refused %lu client(s)", b->refused);
		b->refused = 0;
		b->refused_logged_ns = now;
	}
}

static void raise_fd_limit(void)
{
	/* Every memfd, mapping token and client costs the broker an fd. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int broker_create(const struct broker_config *cfg, int listen_fd, struct broker **out)
{
	struct broker *b = calloc(1, sizeof(*b));
	int r = -ENOMEM;
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	b->uid = geteuid();
	b->listen_fd = listen_fd;
	b->timer_fd = b->reserve_fd = b->epoch_fd = b->epoch_ro_fd = b->xs_listen_fd = -1;
	list_init(&b->conns);
	list_init(&b->dead_conns);
	list_init(&b->files);
	log_set_level(cfg->log_level);
	raise_fd_limit();
	b->domains = calloc(DOMID_FIRST_RESERVED, sizeof(*b->domains));
	b->loop = loop_create();
	if (!b->domains || !b->loop)
		goto fail;
	b->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	b->listening = true;
	r = epoch_init(b);
	if (r < 0)
		goto fail;
	r = -ENOMEM;
	b->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (b->timer_fd < 0) {
		r = -errno;
		goto fail;
	}
	b->timer_src = loop_add(b->loop, b->timer_fd, EPOLLIN, on_timer, b);
	if (!b->timer_src)
		goto fail;
	if (listen_fd >= 0) {
		b->listen_src = loop_add(b->loop, listen_fd, EPOLLIN, on_accept, b);
		if (!b->listen_src) {
			r = -errno;
			goto fail;
		}
	}
	for (unsigned i = 0; i < cfg->ndeclared; i++) {
		struct domain *d;
		r = domain_claim(b, cfg->declared[i], &d);
		if (r < 0)
			goto fail;
		d->declared = true;
		d->claims--;
	}
	b->idle_since_ns = now_ns();
	*out = b;
	return 0;
fail:
	broker_destroy(b);
	return r;
}

static void reap_dead_conns(struct broker *b)
{
	struct conn *c;
	list_for_each(c, tmp, &b->dead_conns, struct conn, link)
	{
		list_remove(&c->link);
		free(c->peer.groups);
		free(c);
	}
}

void broker_destroy(struct broker *b)
{
	if (!b)
		return;
	/* One at a time: a kill can kill others (a file's attach connections). */
	while (!list_empty(&b->conns))
		conn_kill(list_entry(b->conns.next, struct conn, link), NULL);
	/* Files still alive are held only by mappings now. */
	while (!list_empty(&b->files)) {
		struct file *f = list_entry(b->files.next, struct file, link);
		struct mapping *m = list_entry(f->mappings.next, struct mapping, link);
		if (list_empty(&f->mappings))
			break; /* cannot happen: files without refs are gone */
		mapping_release(m);
	}
	reap_dead_conns(b);
	broker_xenstore_fini(b);
	grants_expire_all(b);
	for (uint32_t id = 0; b->domains && id < DOMID_FIRST_RESERVED; id++) {
		struct domain *d = b->domains[id];
		if (d) {
			d->declared = false;
			domain_maybe_free(d);
		}
	}
	free(b->ending);
	free(b->uids);
	free(b->domains);
	epoch_fini(b);
	loop_remove(b->timer_src);
	loop_remove(b->listen_src);
	if (b->timer_fd >= 0)
		close(b->timer_fd);
	if (b->reserve_fd >= 0)
		close(b->reserve_fd);
	loop_destroy(b->loop);
	free(b);
}

struct loop *broker_loop(struct broker *b)
{
	return b->loop;
}

int broker_dispatch(struct broker *b, int timeout_ms)
{
	int r = loop_dispatch(b->loop, timeout_ms);
	reap_dead_conns(b);
	/* Whatever this round closed may give the reserve back. */
	if (!b->listening) {
		b->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (b->reserve_fd >= 0)
			listeners_enable(b, true);
	}
	if (b->nconns > 0 || b->nfiles > 0)
		b->idle_since_ns = now_ns();
	return r;
}

int broker_run(struct broker *b)
{
	while (!b->stop) {
		int timeout = -1;
		if (b->cfg.idle_exit_ms) {
			uint64_t idle_ms = (now_ns() - b->idle_since_ns) / 1000000u;
			if (b->nconns == 0 && b->nfiles == 0 && idle_ms >= b->cfg.idle_exit_ms) {
				log_info("no client for %u ms: exiting", b->cfg.idle_exit_ms);
				break;
			}
			timeout = (int)(b->cfg.idle_exit_ms - (b->nconns ? 0 : idle_ms));
			if (timeout <= 0)
				timeout = 1;
		}
		int r = broker_dispatch(b, timeout);
		if (r < 0)
			return r;
	}
	return 0;
}

void broker_stop(struct broker *b)
{
	b->stop = true;
}

void broker_get_stats(const struct broker *b, struct broker_stats *st)
{
	*st = (struct broker_stats){
		.connections = b->nconns,
		.files = b->nfiles,
		.allocations = b->nallocs,
		.mappings = b->nmappings,
	};
	for (uint32_t id = 0; id < DOMID_FIRST_RESERVED; id++) {
		if (b->domains[id]) {
			st->domains++;
			st->grants += b->domains[id]->grants_used;
		}
	}
}
