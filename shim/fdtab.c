/*
 * Which fd numbers of this process are device files. The kernel keeps this
 * in the fd table; we keep it beside it, updated by every wrapper that
 * creates or drops an fd number (open, dup*, fcntl F_DUPFD*, close*), and
 * copied to the child by fork with the rest of memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "shim.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct shfile **tab;
static size_t ntab;
static size_t nused; /* fast path: no device file at all */

bool fd_any(void)
{
	return __atomic_load_n(&nused, __ATOMIC_ACQUIRE) != 0;
}

struct shfile *fd_lookup(int fd)
{
	if (fd < 0 || __atomic_load_n(&nused, __ATOMIC_ACQUIRE) == 0)
		return NULL;
	struct shfile *f = NULL;
	pthread_mutex_lock(&lock);
	if ((size_t)fd < ntab)
		f = tab[fd];
	pthread_mutex_unlock(&lock);
	return f;
}

int fd_attach(int fd, struct shfile *f)
{
	int r = 0;
	pthread_mutex_lock(&lock);
	if ((size_t)fd >= ntab) {
		size_t n = ntab ? ntab : 64;
		while (n <= (size_t)fd)
			n *= 2;
		struct shfile **t = realloc(tab, n * sizeof(*t));
		if (!t) {
			r = -ENOMEM;
			goto out;
		}
		memset(t + ntab, 0, (n - ntab) * sizeof(*t));
		tab = t;
		ntab = n;
	}
	if (!tab[fd])
		__atomic_add_fetch(&nused, 1, __ATOMIC_RELEASE);
	tab[fd] = f;
	f->nfds++;
out:
	pthread_mutex_unlock(&lock);
	return r;
}

/* Drops fd from the table; returns the file if that was its last fd. */
static struct shfile *forget_locked(int fd)
{
	if (fd < 0 || (size_t)fd >= ntab || !tab[fd])
		return NULL;
	struct shfile *f = tab[fd];
	tab[fd] = NULL;
	__atomic_sub_fetch(&nused, 1, __ATOMIC_RELEASE);
	return --f->nfds == 0 ? f : NULL;
}

void fd_release(struct shfile *f)
{
	if (!f)
		return;
	/* The handle's own copies go; the broker sees the release once no
	 * process holds the file and its last mapping is gone. */
	granted_close(f->dev);
	free(f);
}

struct shfile *fd_detach(int fd)
{
	if (__atomic_load_n(&nused, __ATOMIC_ACQUIRE) == 0)
		return NULL;
	pthread_mutex_lock(&lock);
	struct shfile *f = forget_locked(fd);
	pthread_mutex_unlock(&lock);
	return f;
}

void fd_forget(int fd)
{
	if (__atomic_load_n(&nused, __ATOMIC_ACQUIRE) == 0)
		return;
	pthread_mutex_lock(&lock);
	struct shfile *f = forget_locked(fd);
	pthread_mutex_unlock(&lock);
	if (f)
		fd_release(f);
}

void fd_forget_range(unsigned first, unsigned last)
{
	if (__atomic_load_n(&nused, __ATOMIC_ACQUIRE) == 0)
		return;
	for (size_t fd = first; fd <= last; fd++) {
		pthread_mutex_lock(&lock);
		if (fd >= ntab) {
			pthread_mutex_unlock(&lock);
			break;
		}
		struct shfile *f = forget_locked((int)fd);
		pthread_mutex_unlock(&lock);
		if (f)
			fd_release(f);
	}
}

struct shfile *fd_discover(int fd)
{
	struct stat st;
	int type;
	socklen_t len = sizeof(type);
	struct sockaddr_un peer, want = { .sun_family = AF_UNIX };
	socklen_t plen = sizeof(peer);

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
		return NULL;
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0 ||
	    granted_socket_path(want.sun_path, sizeof(want.sun_path)) < 0 ||
	    strncmp(peer.sun_path, want.sun_path, sizeof(want.sun_path)) != 0)
		return NULL;
	struct shfile *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	if (granted_attach(fd, &f->dev) < 0) {
		free(f);
		return NULL;
	}
	f->kind = granted_device_kind(f->dev);
	if (fd_attach(fd, f) < 0) {
		granted_close(f->dev);
		free(f);
		return NULL;
	}
	return f;
}
