/*
 * Opening, adopting and closing device files.
 *
 * For gntalloc and gntdev the device is the socket itself, so every copy a
 * program makes of it (dup, fork, SCM_RIGHTS) keeps the file alive exactly
 * as a kernel fd would, and the broker sees the release when the last copy
 * goes. For evtchn the fd to poll is an epoll set of the bound ports'
 * doorbells; the socket is kept aside. The handle owns private CLOEXEC
 * copies of both; callers that hand an fd to a program dup granted_fd().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "wire.h"

/* Our own fds go high, out of the way of the numbers programs expect. */
static int move_high(int fd)
{
	struct rlimit rl;
	int base = 512;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 2 < (rlim_t)base)
		base = (int)(rl.rlim_cur / 2);
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, base);
	if (nfd < 0)
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return nfd;
}

static struct granted_dev *dev_new(void)
{
	struct granted_dev *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->buf = malloc(GR_MSG_MAX);
	if (!dev->buf) {
		free(dev);
		return NULL;
	}
	pthread_mutex_init(&dev->lock, NULL);
	dev->conn_fd = dev->chan.fd = -1;
	dev->refs = 1;
	return dev;
}

/*
 * Every handle of the process, so that fork can end solo mode: a fork child
 * shares the files, and from then on neither process knows alone what the
 * other maps.
 */
static pthread_mutex_t devs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct granted_dev *devs;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

void dev_unsolo(struct granted_dev *dev)
{
	if (!dev->solo)
		return;
	/* What the broker has not seen yet goes now; the broker already
	 * holds the whole map list, so nothing else needs saying. */
	chan_flush(dev);
	dev->solo = false;
	free(dev->lmaps);
	dev->lmaps = NULL;
	dev->nlmaps = dev->lmaps_cap = 0;
}

static void before_fork(void)
{
	pthread_mutex_lock(&devs_lock);
	for (struct granted_dev *d = devs; d; d = d->next_dev) {
		pthread_mutex_lock(&d->lock);
		dev_unsolo(d);
		pthread_mutex_unlock(&d->lock);
	}
	pthread_mutex_unlock(&devs_lock);
}

static void watch_forks(void)
{
	pthread_atfork(before_fork, NULL, NULL);
}

static void dev_register(struct granted_dev *dev)
{
	pthread_once(&fork_once, watch_forks);
	pthread_mutex_lock(&devs_lock);
	dev->next_dev = devs;
	if (devs)
		devs->prev_dev = dev;
	devs = dev;
	pthread_mutex_unlock(&devs_lock);
}

static void dev_unregister(struct granted_dev *dev)
{
	pthread_mutex_lock(&devs_lock);
	if (dev->prev_dev)
		dev->prev_dev->next_dev = dev->next_dev;
	else if (devs == dev)
		devs = dev->next_dev;
	if (dev->next_dev)
		dev->next_dev->prev_dev = dev->prev_dev;
	pthread_mutex_unlock(&devs_lock);
}

GR_EXPORT void granted_mark_shared(struct granted_dev *dev)
{
	pthread_mutex_lock(&dev->lock);
	dev_unsolo(dev);
	pthread_mutex_unlock(&dev->lock);
}

void dev_get(struct granted_dev *dev)
{
	__atomic_add_fetch(&dev->refs, 1, __ATOMIC_RELAXED);
}

void dev_put(struct granted_dev *dev)
{
	if (__atomic_sub_fetch(&dev->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	dev_unregister(dev);
	/* Anything still queued matters to the broker (a MAP whose UNMAP
	 * never came keeps the map listed until the release). */
	if (dev->ob.n && dev->chan.fd >= 0 && dev->chan.forkgen == gr_forkgen())
		chan_flush(dev);
	if (dev->ev)
		evtchn_teardown(dev);
	copy_teardown(dev);
	if (dev->chan.fd >= 0 && dev->chan.fd != dev->conn_fd)
		close(dev->chan.fd);
	if (dev->conn_fd >= 0) {
		close(dev->conn_fd);
		gr_sync_file(dev->file_id);
	}
	pthread_mutex_destroy(&dev->lock);
	free(dev->ob.buf);
	free(dev->lmaps);
	free(dev->buf);
	free(dev);
}

struct hello_ctx {
	struct gr_hello_reply rep;
	int shm_fd;
};

static int on_hello(void *ctx, const struct gr_hdr *h, const void *p, size_t len, int *fds,
		    unsigned nfds)
{
	struct hello_ctx *hc = ctx;
	if (h->result < 0)
		return 0;
	if (len != sizeof(hc->rep))
		return -EIO;
	memcpy(&hc->rep, p, sizeof(hc->rep));
	if (nfds == 1) {
		hc->shm_fd = fds[0];
		fds[0] = -1;
	}
	return 0;
}

GR_EXPORT int granted_open(enum granted_device kind, uint16_t domid, int flags,
			   struct granted_dev **out)
{
	struct granted_dev *dev = NULL;
	struct hello_ctx hc = { .shm_fd = -1 };
	int sock = -1, r;

	gr_init_once();
	if (kind != GRANTED_GNTALLOC && kind != GRANTED_GNTDEV && kind != GRANTED_EVTCHN)
		return -EINVAL;
	dev = dev_new();
	if (!dev)
		return -ENOMEM;
	dev->kind = kind;
	dev->domid = domid;
	dev->flags = flags;
	r = gr_connect(&sock);
	if (r < 0)
		goto fail;
	/* The hello carries our own end of the socket: the broker records
	 * which socket is this file's, for later ATTACH requests. */
	struct chan ch = { .fd = sock, .forkgen = gr_forkgen() };
	struct gr_hello hello = { .version = GR_PROTO_VERSION,
				  .kind = (uint16_t)kind,
				  .domid = domid };
	r = chan_call_fd(&ch, dev->buf, GR_OP_HELLO, &hello, sizeof(hello), &sock, 1, on_hello,
			 &hc);
	if (r < 0)
		goto fail;
	dev->file_id = hc.rep.file_id;
	dev->map_limit = hc.rep.map_limit;
	dev->chan.seq = ch.seq;
	dev->chan.forkgen = ch.forkgen;
	dev->conn_fd = move_high(sock);
	if (dev->conn_fd < 0) {
		r = -errno;
		goto fail;
	}
	close(sock);
	sock = -1;
	dev->chan.fd = dev->conn_fd;
	if (kind == GRANTED_EVTCHN)
		r = evtchn_setup(dev, hc.shm_fd);
	else if (kind == GRANTED_GNTDEV)
		r = copy_setup(dev, hc.shm_fd);
	if (r < 0)
		goto fail;
	if (hc.shm_fd >= 0)
		close(hc.shm_fd);
	/* Nobody else can have this file yet; with O_CLOEXEC no exec'd or
	 * spawned program will either, unless told (granted_mark_shared). */
	dev->solo = kind == GRANTED_GNTDEV && (flags & O_CLOEXEC);
	dev_register(dev);
	gr_debug("opened %s as domain %u",
		 kind == GRANTED_GNTALLOC ? "gntalloc"
		 : kind == GRANTED_GNTDEV ? "gntdev"
					  : "evtchn",
		 domid);
	*out = dev;
	return 0;
fail:
	if (hc.shm_fd >= 0)
		close(hc.shm_fd);
	if (sock >= 0)
		close(sock);
	dev_put(dev);
	return r;
}

GR_EXPORT int granted_attach(int fd, struct granted_dev **out)
{
	struct stat st;
	struct hello_ctx hc = { .shm_fd = -1 };
	int r;

	gr_init_once();
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -ENODEV;
	struct granted_dev *dev = dev_new();
	if (!dev)
		return -ENOMEM;
	dev->conn_fd = move_high(fd);
	if (dev->conn_fd < 0) {
		r = -errno;
		goto fail;
	}
	int sock;
	r = gr_connect(&sock);
	if (r < 0)
		goto fail;
	dev->chan = (struct chan){ .fd = sock, .forkgen = gr_forkgen() };
	struct gr_attach at = { .version = GR_PROTO_VERSION };
	r = chan_call_fd(&dev->chan, dev->buf, GR_OP_ATTACH, &at, sizeof(at), &dev->conn_fd, 1,
			 on_hello, &hc);
	if (r >= 0 && hc.rep.kind == GRANTED_GNTDEV)
		r = copy_setup(dev, hc.shm_fd);
	if (hc.shm_fd >= 0)
		close(hc.shm_fd);
	if (r < 0)
		goto fail;
	if (hc.rep.kind != GRANTED_GNTALLOC && hc.rep.kind != GRANTED_GNTDEV) {
		r = -ENODEV;
		goto fail;
	}
	dev->kind = hc.rep.kind;
	dev->domid = hc.rep.domid;
	dev->file_id = hc.rep.file_id;
	dev->map_limit = hc.rep.map_limit;
	int fl = fcntl(fd, F_GETFL);
	dev->flags = fl < 0 ? O_RDWR : fl;
	dev_register(dev);
	*out = dev;
	return 0;
fail:
	dev_put(dev);
	return r;
}

GR_EXPORT void granted_close(struct granted_dev *dev)
{
	if (!dev)
		return;
	pthread_mutex_lock(&dev->lock);
	dev->closed = true;
	pthread_mutex_unlock(&dev->lock);
	dev_put(dev);
}

GR_EXPORT int granted_fd(const struct granted_dev *dev)
{
	return dev->kind == GRANTED_EVTCHN ? evtchn_fd(dev) : dev->conn_fd;
}

GR_EXPORT uint32_t granted_gntdev_map_limit(const struct granted_dev *dev)
{
	return dev->map_limit;
}

GR_EXPORT enum granted_device granted_device_kind(const struct granted_dev *dev)
{
	return dev->kind;
}

GR_EXPORT uint16_t granted_domid(const struct granted_dev *dev)
{
	return dev->domid;
}
