/* Where the broker listens, as both sides compute it (granted(8)). */
#ifndef GRANTED_PATHS_H
#define GRANTED_PATHS_H

#include <stddef.h>

/*
 * $GRANTED_SOCKET if set; else /run/granted/socket for root; else
 * $XDG_RUNTIME_DIR/granted/socket; else /tmp/granted-$UID/socket.
 * Returns 0, or -ENAMETOOLONG.
 */
int gr_socket_path(char *buf, size_t len);

/*
 * Where the broker serves xenstore: $GRANTED_XENSTORE if set, else
 * xenstored.socket in the directory of gr_socket_path(). Programs run by
 * grantctl get it as $XENSTORED_PATH, where libxenstore and pyxs look.
 */
int gr_xenstore_path(char *buf, size_t len);

#endif
