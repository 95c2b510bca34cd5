/*
 * GR_OP_SYNC_FILE: after a process drops its last copy of a device socket,
 * the broker may not have seen the hang-up yet; asking it to drain that
 * file's connection makes the release (if it was the last copy anywhere)
 * happen before close() returns, as the kernel's does. A short-lived
 * connection: a process keeps no fd of ours once its devices are closed.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

void gr_sync_file(uint64_t file_id)
{
	char *buf = malloc(GR_MSG_MAX);
	struct chan ch = { .fd = -1 };
	if (!buf || gr_connect(&ch.fd) < 0)
		goto out;
	struct gr_hello hello = { .version = GR_PROTO_VERSION, .kind = GR_KIND_CONTROL };
	if (chan_call_fd(&ch, buf, GR_OP_HELLO, &hello, sizeof(hello), NULL, 0, NULL, NULL) < 0)
		goto out;
	struct gr_sync_file req = { .file_id = file_id };
	chan_call_fd(&ch, buf, GR_OP_SYNC_FILE, &req, sizeof(req), NULL, 0, NULL, NULL);
out:
	if (ch.fd >= 0)
		close(ch.fd);
	free(buf);
}
