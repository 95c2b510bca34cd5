/*
 * Reading and writing the caller's memory as the kernel does: a bad pointer
 * is EFAULT, never a crash of the host program. process_vm_readv/writev on
 * ourselves check the page tables for us, read-only pages included.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim.h"

int copy_in(void *dst, const void *user, size_t n)
{
	if (n == 0)
		return 0;
	struct iovec local = { .iov_base = dst, .iov_len = n };
	struct iovec remote = { .iov_base = (void *)user, .iov_len = n };
	ssize_t r = process_vm_readv(granted_getpid(), &local, 1, &remote, 1, 0);
	return r == (ssize_t)n ? 0 : -EFAULT;
}

int copy_out(void *user, const void *src, size_t n)
{
	if (n == 0)
		return 0;
	struct iovec local = { .iov_base = (void *)src, .iov_len = n };
	struct iovec remote = { .iov_base = user, .iov_len = n };
	ssize_t r = process_vm_writev(granted_getpid(), &local, 1, &remote, 1, 0);
	return r == (ssize_t)n ? 0 : -EFAULT;
}
