/*
 * The quick-start demo: two domains share pages as on Xen, written the way
 * a Xen program is written (the kernel's uapi headers, open/ioctl/mmap), and
 * run as domains 1 and 2 by `grantctl run`.
 *
 *   demo writer   (domain 1) grants one writable and one read-only page to
 *                 domain 2, writes a message, prints the refs, waits;
 *   demo reader REF_RW REF_RO  (domain 2) maps both, reads the message,
 *                 answers through the writable page, and shows that the
 *                 read-only grant cannot be mapped for writing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

typedef uint16_t domid_t;
typedef uint32_t grant_ref_t;
#include <xen/gntalloc.h>
#include <xen/gntdev.h>

#define PAGE 4096

static int writer(void)
{
	int fd = open("/dev/xen/gntalloc", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("writer: open /dev/xen/gntalloc");
		return 1;
	}
	struct ioctl_gntalloc_alloc_gref rw = { .domid = 2,
						.flags = GNTALLOC_FLAG_WRITABLE,
						.count = 1 };
	struct ioctl_gntalloc_alloc_gref ro = { .domid = 2, .flags = 0, .count = 1 };
	if (ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, &rw) ||
	    ioctl(fd, IOCTL_GNTALLOC_ALLOC_GREF, &ro)) {
		perror("writer: ALLOC_GREF");
		return 1;
	}
	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("writer: mmap");
		return 1;
	}
	strcpy(p, "hello from domain 1");
	strcpy(p + PAGE, "read-only notice from domain 1");
	printf("domain 1: granted ref %u (rw) and ref %u (ro) to domain 2\n", rw.gref_ids[0],
	       ro.gref_ids[0]);
	printf("%u %u\n", rw.gref_ids[0], ro.gref_ids[0]);
	fflush(stdout);
	/* Wait for the reader's answer in the shared page. */
	for (int i = 0; i < 5000 && strcmp(p + 100, "hello back from domain 2") != 0; i++)
		usleep(1000);
	printf("domain 1: the page now also says \"%s\"\n", p + 100);
	fflush(stdout);
	sleep(1); /* long enough for the grant table to be shown */
	munmap(p, 2 * PAGE);
	close(fd);
	return 0;
}

static char *map_ref(int fd, uint32_t ref, int prot, uint64_t *index)
{
	struct ioctl_gntdev_map_grant_ref op = { .count = 1 };
	op.refs[0].domid = 1;
	op.refs[0].ref = ref;
	if (ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF, &op))
		return MAP_FAILED;
	*index = op.index;
	return mmap(NULL, PAGE, prot, MAP_SHARED, fd, (off_t)op.index);
}

static int reader(uint32_t ref_rw, uint32_t ref_ro)
{
	int fd = open("/dev/xen/gntdev", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("reader: open /dev/xen/gntdev");
		return 1;
	}
	uint64_t i_rw, i_ro, i_bad;
	char *p = map_ref(fd, ref_rw, PROT_READ | PROT_WRITE, &i_rw);
	if (p == MAP_FAILED) {
		perror("reader: map the writable grant");
		return 1;
	}
	printf("domain 2: read \"%s\" through ref %u\n", p, ref_rw);
	char *bad = map_ref(fd, ref_ro, PROT_READ | PROT_WRITE, &i_bad);
	printf("domain 2: mapping read-only ref %u for writing: %s\n", ref_ro,
	       bad == MAP_FAILED ? strerror(errno) : "allowed?!");
	char *ro = map_ref(fd, ref_ro, PROT_READ, &i_ro);
	if (ro == MAP_FAILED) {
		perror("reader: map the read-only grant");
		return 1;
	}
	printf("domain 2: read \"%s\" through ref %u, read-only\n", ro, ref_ro);
	strcpy(p + 100, "hello back from domain 2");
	fflush(stdout);
	sleep(1);
	munmap(p, PAGE);
	munmap(ro, PAGE);
	struct ioctl_gntdev_unmap_grant_ref un = { .index = i_rw, .count = 1 };
	ioctl(fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &un);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "writer") == 0)
		return writer();
	if (argc == 4 && strcmp(argv[1], "reader") == 0)
		return reader((uint32_t)strtoul(argv[2], NULL, 0),
			      (uint32_t)strtoul(argv[3], NULL, 0));
	fprintf(stderr, "usage: demo writer | demo reader REF_RW REF_RO\n");
	return 2;
}
