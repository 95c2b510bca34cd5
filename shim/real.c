/* The libc functions behind our wrappers, found once with dlsym(RTLD_NEXT). */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "shim.h"

struct real_fns real;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* POSIX's blessed way to turn dlsym's void * into a function pointer. */
#define LOAD(name)                                                                                 \
	do {                                                                                       \
		void *sym = dlsym(RTLD_NEXT, #name);                                               \
		memcpy(&real.name, &sym, sizeof(sym));                                             \
	} while (0)

static void load(void)
{
	LOAD(open);
	LOAD(openat);
	LOAD(close);
	LOAD(close_range);
	LOAD(closefrom);
	LOAD(dup);
	LOAD(dup2);
	LOAD(dup3);
	LOAD(fcntl);
	LOAD(ioctl);
	LOAD(mmap);
	LOAD(munmap);
	LOAD(mremap);
	LOAD(read);
	LOAD(write);
	LOAD(lseek);
	LOAD(pread);
	LOAD(pwrite);
	LOAD(poll);
	LOAD(ppoll);
	LOAD(select);
	LOAD(pselect);
	LOAD(sendmsg);
	LOAD(connect);
	LOAD(sendmmsg);
}

void real_init(void)
{
	pthread_once(&once, load);
}
