#!/bin/bash
# vchan end to end on granted (TAP): Debian's unmodified libxenvchan (in
# vchan-peer, a small program of ours) and vchan-socket-proxy (xen-utils-4.17,
# unpacked), each process run as its domain under `grantctl run`, against the
# broker's xenstore. Streams both ways at once at in-page and multi-page ring
# sizes, checked byte by byte and by checksum; close and reconnect on the same
# ring; SIGKILL of either side; the xenstore nodes of a clean close.
#
# Usage: vchan.sh [SCENARIO...]   (default: all; see lib.sh for the env)
. "$(dirname "$0")/lib.sh"

need_packages libxen-dev libxenmisc4.17 libxenevtchn1 libxenstore4 xenstore-utils
need_xen_utils
check_granted
PROXY=$XUBIN/vchan-socket-proxy

PEER=${VCHAN_PEER:-$top/build/tests/vchan/vchan-peer}
if [ ! -x "$PEER" ] && pkg-config --exists xenvchan 2>/dev/null; then
	# Built here when meson did not find libxenvchan at configure time.
	PEER=$work/vchan-peer
	# shellcheck disable=SC2046 # pkg-config's words
	${CC:-cc} -std=c17 -D_GNU_SOURCE -O2 -Wall -Werror -o "$PEER" "$here/peer.c" \
		$(pkg-config --cflags --libs xenvchan) >"$work/cc.log" 2>&1 ||
		sed 's/^/# /' "$work/cc.log"
fi
[ -x "$PEER" ] || missing+=("vchan-peer (needs libxen-dev)")
SHORT+=("$PEER=vchan-peer")

P=/local/domain/1/data/vchan/t

# nodes PATH: xenstore-ls -p as domain 0; refs and ports vary, so they are
# written N.
nodes() {
	note "[0] xenstore-ls -p $1   (numbers written N)"
	timeout -k 1 "$CMD_MAX" "${RUN[@]}" --domid 0 --no-start -- xenstore-ls -p "$1" 2>&1 |
		sed -E 's/= "[0-9]+"[ .]*\(/= "N" (/' >>"$out"
}

# refs: the server's ring-ref and event-channel, as domain 0 reads them.
refs() {
	"${RUN[@]}" --domid 0 --no-start -- xenstore-read "$P/ring-ref" "$P/event-channel" |
		tr '\n' ' '
}

same_refs() {
	if [ -n "$1" ] && [ "$1" = "$2" ]; then
		note "-- ring-ref and event-channel unchanged"
	else
		note "-- ring-ref and event-channel were '$1', now '$2'"
	fi
}

# waitnode PATH: until domain 0 sees PATH (a server has published).
waitnode() {
	local i
	for ((i = 0; i < 200; i++)); do
		"${RUN[@]}" --domid 0 --no-start -- xenstore-exists "$1" 2>/dev/null && return 0
		sleep 0.02
	done
	note "-- $1 did not appear"
}

# waitsock PATH: until a unix socket is there (a proxy client listens).
waitsock() {
	local i
	for ((i = 0; i < 500; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.01
	done
	note "-- no socket at $1"
}

# released N: waits for the @releaseDomain of N's last process.
released() {
	bg wr 0 xenstore-watch -n 2 @releaseDomain
	waitfor wr @releaseDomain
	release "$1"
	finish wr
}

# ---- libxenvchan to libxenvchan: ring sizes --------------------------------------

# lib_stream LEFT RIGHT C2S S2C CLOSER: a server of domain 1 with rings of
# at least LEFT (client to server) and RIGHT bytes, a client of domain 2;
# C2S and S2C bytes at once; CLOSER (server or client) closes first.
lib_stream() {
	local left=$1 right=$2 cs=$3 sc=$4 sthen=wait cthen=close
	[ "$5" = server ] && sthen=close cthen=wait
	hold 1
	bg srv 1 "$PEER" server 2 $P "$left" "$right" --send "$sc@1" --recv "$cs@2" --then $sthen
	waitfor srv 'orders .*'
	nodes /local/domain/1/data
	x 0 xenstore-exists $P
	x 2 "$PEER" client 1 $P --send "$cs@2" --recv "$sc@1" --then $cthen
	finish srv
	# A clean close removes the server's nodes (domain 1 lives on).
	x 0 xenstore-exists $P
}

scenario ring_1024_2048
ring_1024_2048() {
	lib_stream 1024 2048 500003 700001 client
	expect <<'EOF'
-- domain 1 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 1024 2048 --send 700001@1 --recv 500003@2 --then wait &   (srv)
[0] xenstore-ls -p /local/domain/1/data   (numbers written N)
vchan = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
 t = ""  . . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
  ring-ref = "N" (n1,r2)
  event-channel = "N" (n1,r2)
[0] xenstore-exists /local/domain/1/data/vchan/t
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 500003@2 --recv 700001@1 --then close
orders left 10 right 11
connected
sent 500003 bytes fnv64 4563807485ed5ae9
received 700001 bytes fnv64 ed01cedcc6481f00
closed
-- srv said:
orders left 10 right 11
connected
sent 700001 bytes fnv64 ed01cedcc6481f00
received 500003 bytes fnv64 4563807485ed5ae9
peer closed
closed
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

scenario ring_2048_1024
ring_2048_1024() {
	lib_stream 2048 1024 500003 700001 server
	expect <<'EOF'
-- domain 1 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 2048 1024 --send 700001@1 --recv 500003@2 --then close &   (srv)
[0] xenstore-ls -p /local/domain/1/data   (numbers written N)
vchan = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
 t = ""  . . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
  ring-ref = "N" (n1,r2)
  event-channel = "N" (n1,r2)
[0] xenstore-exists /local/domain/1/data/vchan/t
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 500003@2 --recv 700001@1 --then wait
orders left 11 right 10
connected
sent 500003 bytes fnv64 4563807485ed5ae9
received 700001 bytes fnv64 ed01cedcc6481f00
peer closed
closed
-- srv said:
orders left 11 right 10
connected
sent 700001 bytes fnv64 ed01cedcc6481f00
received 500003 bytes fnv64 4563807485ed5ae9
closed
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

scenario ring_16k
ring_16k() {
	lib_stream 16384 16384 600011 800021 client
	expect <<'EOF'
-- domain 1 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 16384 16384 --send 800021@1 --recv 600011@2 --then wait &   (srv)
[0] xenstore-ls -p /local/domain/1/data   (numbers written N)
vchan = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
 t = ""  . . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
  ring-ref = "N" (n1,r2)
  event-channel = "N" (n1,r2)
[0] xenstore-exists /local/domain/1/data/vchan/t
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 600011@2 --recv 800021@1 --then close
orders left 14 right 14
connected
sent 600011 bytes fnv64 85984df14e6deaf1
received 800021 bytes fnv64 36b07b1c6b814b1e
closed
-- srv said:
orders left 14 right 14
connected
sent 800021 bytes fnv64 36b07b1c6b814b1e
received 600011 bytes fnv64 85984df14e6deaf1
peer closed
closed
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

scenario ring_64k
ring_64k() {
	lib_stream 65536 65536 900001 1200007 server
	expect <<'EOF'
-- domain 1 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 65536 65536 --send 1200007@1 --recv 900001@2 --then close &   (srv)
[0] xenstore-ls -p /local/domain/1/data   (numbers written N)
vchan = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
 t = ""  . . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
  ring-ref = "N" (n1,r2)
  event-channel = "N" (n1,r2)
[0] xenstore-exists /local/domain/1/data/vchan/t
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 900001@2 --recv 1200007@1 --then wait
orders left 16 right 16
connected
sent 900001 bytes fnv64 80e52db0d925f842
received 1200007 bytes fnv64 8394b148533b3c32
peer closed
closed
-- srv said:
orders left 16 right 16
connected
sent 1200007 bytes fnv64 8394b148533b3c32
received 900001 bytes fnv64 80e52db0d925f842
closed
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

scenario ring_1m
ring_1m() {
	lib_stream 1048576 1048576 3000017 2500009 client
	expect <<'EOF'
-- domain 1 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 1048576 1048576 --send 2500009@1 --recv 3000017@2 --then wait &   (srv)
[0] xenstore-ls -p /local/domain/1/data   (numbers written N)
vchan = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
 t = ""  . . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
  ring-ref = "N" (n1,r2)
  event-channel = "N" (n1,r2)
[0] xenstore-exists /local/domain/1/data/vchan/t
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 3000017@2 --recv 2500009@1 --then close
orders left 20 right 20
connected
sent 3000017 bytes fnv64 da2f642d30ebf844
received 2500009 bytes fnv64 691b2e554c5500dc
closed
-- srv said:
orders left 20 right 20
connected
sent 2500009 bytes fnv64 691b2e554c5500dc
received 3000017 bytes fnv64 da2f642d30ebf844
peer closed
closed
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

# One ring in the shared page, the other in pages of its own.
scenario ring_mixed
ring_mixed() {
	lib_stream 1000 100000 400009 300007 client
	expect <<'EOF'
-- domain 1 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 1000 100000 --send 300007@1 --recv 400009@2 --then wait &   (srv)
[0] xenstore-ls -p /local/domain/1/data   (numbers written N)
vchan = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
 t = ""  . . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
  ring-ref = "N" (n1,r2)
  event-channel = "N" (n1,r2)
[0] xenstore-exists /local/domain/1/data/vchan/t
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 400009@2 --recv 300007@1 --then close
orders left 11 right 17
connected
sent 400009 bytes fnv64 19a842e46c9db960
received 300007 bytes fnv64 9dd7013bc030694b
closed
-- srv said:
orders left 11 right 17
connected
sent 300007 bytes fnv64 9dd7013bc030694b
received 400009 bytes fnv64 19a842e46c9db960
peer closed
closed
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

# ---- close and reconnect ---------------------------------------------------------

# A server that outlives its clients takes the next on the same ref and port.
scenario lib_reconnect
lib_reconnect() {
	hold 1
	hold 2
	bg srv 1 "$PEER" server 2 $P 4096 65536 --send 300007@1 --recv 200003@2 --peers 3
	waitfor srv 'orders .*'
	local before after
	before=$(refs)
	x 2 "$PEER" client 1 $P --send 200003@2 --recv 300007@1 --then close
	x 2 "$PEER" client 1 $P --send 200003@2 --recv 300007@1 --then close
	after=$(refs)
	same_refs "$before" "$after"
	x 2 "$PEER" client 1 $P --send 200003@2 --recv 300007@1 --then close
	finish srv
	x 0 xenstore-exists $P
	expect <<'EOF'
-- domain 1 held by a sleeping process
-- domain 2 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 4096 65536 --send 300007@1 --recv 200003@2 --peers 3 &   (srv)
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 200003@2 --recv 300007@1 --then close
orders left 12 right 16
connected
sent 200003 bytes fnv64 a3fed98e5031ed2a
received 300007 bytes fnv64 9dd7013bc030694b
closed
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 200003@2 --recv 300007@1 --then close
orders left 12 right 16
connected
sent 200003 bytes fnv64 a3fed98e5031ed2a
received 300007 bytes fnv64 9dd7013bc030694b
closed
-- ring-ref and event-channel unchanged
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 200003@2 --recv 300007@1 --then close
orders left 12 right 16
connected
sent 200003 bytes fnv64 a3fed98e5031ed2a
received 300007 bytes fnv64 9dd7013bc030694b
closed
-- srv said:
orders left 12 right 16
connected
sent 300007 bytes fnv64 9dd7013bc030694b
received 200003 bytes fnv64 a3fed98e5031ed2a
peer closed
connected
sent 300007 bytes fnv64 9dd7013bc030694b
received 200003 bytes fnv64 a3fed98e5031ed2a
peer closed
connected
sent 300007 bytes fnv64 9dd7013bc030694b
received 200003 bytes fnv64 a3fed98e5031ed2a
peer closed
closed
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

# The client's domain lives only while a client runs: each client is a new
# process of domain 2, and reads the ring-ref granted to "r2" all the same.
scenario lib_reconnect_fresh_domain
lib_reconnect_fresh_domain() {
	hold 1
	bg srv 1 "$PEER" server 2 $P 4096 65536 --send 300007@1 --recv 200003@2 --peers 2
	waitfor srv 'orders .*'
	x 2 "$PEER" client 1 $P --send 200003@2 --recv 300007@1 --then close
	x 2 "$PEER" client 1 $P --send 200003@2 --recv 300007@1 --then close
	finish srv
	expect <<'EOF'
-- domain 1 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 4096 65536 --send 300007@1 --recv 200003@2 --peers 2 &   (srv)
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 200003@2 --recv 300007@1 --then close
orders left 12 right 16
connected
sent 200003 bytes fnv64 a3fed98e5031ed2a
received 300007 bytes fnv64 9dd7013bc030694b
closed
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 200003@2 --recv 300007@1 --then close
orders left 12 right 16
connected
sent 200003 bytes fnv64 a3fed98e5031ed2a
received 300007 bytes fnv64 9dd7013bc030694b
closed
-- srv said:
orders left 12 right 16
connected
sent 300007 bytes fnv64 9dd7013bc030694b
received 200003 bytes fnv64 a3fed98e5031ed2a
peer closed
connected
sent 300007 bytes fnv64 9dd7013bc030694b
received 200003 bytes fnv64 a3fed98e5031ed2a
peer closed
closed
EOF
}

# ---- SIGKILL ---------------------------------------------------------------------

# Each side's domain lives on (another process holds it): a process dies.
scenario lib_kill_server
lib_kill_server() {
	hold 1
	hold 2
	bg srv 1 "$PEER" server 2 $P 65536 65536 --send 4000000000@1
	waitfor srv 'orders .*'
	bg cli 2 "$PEER" client 1 $P --recv 4000000000@1
	waitfor cli connected
	sleep 0.2
	kill9 srv
	noticed cli 'peer closed during the stream'
	finish cli
	# A killed server leaves its nodes, until its domain goes.
	x 0 xenstore-exists $P
	released 1
	x 0 xenstore-exists $P
	expect <<'EOF'
-- domain 1 held by a sleeping process
-- domain 2 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 65536 65536 --send 4000000000@1 &   (srv)
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --recv 4000000000@1 &   (cli)
-- srv: killed with SIGKILL
-- cli noticed within 1 s: peer closed during the stream
-- cli said:
orders left 16 right 16
connected
peer closed during the stream
closed
(cli exit 1)
[0] xenstore-exists /local/domain/1/data/vchan/t
[0] xenstore-watch -n 2 @releaseDomain &   (wr)
-- the process holding domain 1 is gone
-- wr said:
@releaseDomain
@releaseDomain
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

scenario lib_kill_client
lib_kill_client() {
	hold 1
	hold 2
	bg srv 1 "$PEER" server 2 $P 65536 65536 --send 4000000000@1
	waitfor srv 'orders .*'
	bg cli 2 "$PEER" client 1 $P --recv 4000000000@1
	waitfor cli connected
	sleep 0.2
	kill9 cli
	noticed srv 'peer closed during the stream'
	finish srv
	x 0 xenstore-exists $P
	expect <<'EOF'
-- domain 1 held by a sleeping process
-- domain 2 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 65536 65536 --send 4000000000@1 &   (srv)
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --recv 4000000000@1 &   (cli)
-- cli: killed with SIGKILL
-- srv noticed within 1 s: peer closed during the stream
-- srv said:
orders left 16 right 16
connected
peer closed during the stream
closed
(srv exit 1)
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

# ---- vchan-socket-proxy ------------------------------------------------------------

# Both proxies in socket-path mode: unix socket -> client proxy (domain 2)
# -> vchan -> server proxy (domain 1) -> unix socket. The client proxy
# starts first and waits for the server's nodes; two connections one after
# the other use the same ring.
#
# Between two proxies the streams go one way, then the other: the proxy
# never sets ctrl->blocking, which libxenvchan leaves as malloc gave it; when
# that bit is 1 (MALLOC_PERTURB_=1, an ASan malloc) each proxy blocks in
# libxenvchan_write, and two of them streaming both ways at once deadlock,
# on Xen as here. With one of ours on either end both ways run at once.
scenario proxy_stream
proxy_stream() {
	bg back - "$PEER" listen "$sdir/back.sock" --send 600001@2 --recv 400003@1 --hold 600001 --peers 2
	waitfor back listening
	bg pc 2 "$PROXY" -m client -s data/proxy-state 1 $P "$sdir/front.sock"
	waitsock "$sdir/front.sock"
	bg f1 - "$PEER" connect "$sdir/front.sock" --send 400003@1 --recv 600001@2 --then close
	sleep 0.2
	bg ps 1 "$PROXY" -m server -s /local/domain/1/data/proxy-state 2 $P "$sdir/back.sock"
	finish f1
	# The next session only once the server proxy saw this one end (it
	# closes its backend socket then): vchan-socket-proxy races otherwise,
	# on Xen too, if a new client sets cli_live before it looked.
	waitfor back 'peer closed'
	local before after
	before=$(refs)
	nodes /local/domain/1/data
	x 0 xenstore-read /local/domain/2/data/proxy-state
	bg f2 - "$PEER" connect "$sdir/front.sock" --send 400003@1 --recv 600001@2 --then close
	finish f2
	after=$(refs)
	same_refs "$before" "$after"
	finish back
	running ps
	running pc
	expect <<'EOF'
[-] vchan-peer listen $W/back.sock --send 600001@2 --recv 400003@1 --hold 600001 --peers 2 &   (back)
[2] vchan-socket-proxy -m client -s data/proxy-state 1 /local/domain/1/data/vchan/t $W/front.sock &   (pc)
[-] vchan-peer connect $W/front.sock --send 400003@1 --recv 600001@2 --then close &   (f1)
[1] vchan-socket-proxy -m server -s /local/domain/1/data/proxy-state 2 /local/domain/1/data/vchan/t $W/back.sock &   (ps)
-- f1 said:
connected
sent 400003 bytes fnv64 0b11494032734b03
received 600001 bytes fnv64 3069b88101c390fd
closed
[0] xenstore-ls -p /local/domain/1/data   (numbers written N)
vchan = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
 t = ""  . . . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
  ring-ref = "N" (n1,r2)
  event-channel = "N" (n1,r2)
proxy-state = "running"  . . . . . . . . . . . . . . . . . .  (n1)
[0] xenstore-read /local/domain/2/data/proxy-state
running
[-] vchan-peer connect $W/front.sock --send 400003@1 --recv 600001@2 --then close &   (f2)
-- f2 said:
connected
sent 400003 bytes fnv64 0b11494032734b03
received 600001 bytes fnv64 3069b88101c390fd
closed
-- ring-ref and event-channel unchanged
-- back said:
listening
connected
sent 600001 bytes fnv64 3069b88101c390fd
received 400003 bytes fnv64 0b11494032734b03
peer closed
connected
sent 600001 bytes fnv64 3069b88101c390fd
received 400003 bytes fnv64 0b11494032734b03
peer closed
-- ps is running
-- pc is running
EOF
}

# The server proxy notices its client's death, then serves a new client.
scenario proxy_kill_client
proxy_kill_client() {
	hold 1
	hold 2
	bg back - "$PEER" listen "$sdir/back.sock"
	waitfor back listening
	bg ps 1 "$PROXY" -v -m server 2 $P "$sdir/back.sock"
	bg pc 2 "$PROXY" -v -m client 1 $P "$sdir/front.sock"
	waitsock "$sdir/front.sock"
	bg f1 - "$PEER" connect "$sdir/front.sock"
	waitfor back connected
	local before after
	before=$(refs)
	kill9 pc
	noticed ps 'vchan client disconnected'
	finish f1
	finish back
	running ps
	bg back - "$PEER" listen "$sdir/back.sock" --send 300001@2 --recv 200003@1 --hold 300001
	waitfor back listening
	bg pc 2 "$PROXY" -m client 1 $P "$sdir/front2.sock"
	waitsock "$sdir/front2.sock"
	bg f2 - "$PEER" connect "$sdir/front2.sock" --send 200003@1 --recv 300001@2 --then close
	finish f2
	finish back
	after=$(refs)
	same_refs "$before" "$after"
	expect <<'EOF'
-- domain 1 held by a sleeping process
-- domain 2 held by a sleeping process
[-] vchan-peer listen $W/back.sock &   (back)
[1] vchan-socket-proxy -v -m server 2 /local/domain/1/data/vchan/t $W/back.sock &   (ps)
[2] vchan-socket-proxy -v -m client 1 /local/domain/1/data/vchan/t $W/front.sock &   (pc)
[-] vchan-peer connect $W/front.sock &   (f1)
-- pc: killed with SIGKILL
-- ps noticed within 1 s: vchan client disconnected
-- f1 said:
connected
peer closed
closed
-- back said:
listening
connected
peer closed
-- ps is running
[-] vchan-peer listen $W/back.sock --send 300001@2 --recv 200003@1 --hold 300001 &   (back)
[2] vchan-socket-proxy -m client 1 /local/domain/1/data/vchan/t $W/front2.sock &   (pc)
[-] vchan-peer connect $W/front2.sock --send 200003@1 --recv 300001@2 --then close &   (f2)
-- f2 said:
connected
sent 200003 bytes fnv64 9ecebe450e221a0e
received 300001 bytes fnv64 dc0d36886693cd2f
closed
-- back said:
listening
connected
sent 300001 bytes fnv64 dc0d36886693cd2f
received 200003 bytes fnv64 9ecebe450e221a0e
peer closed
-- ring-ref and event-channel unchanged
EOF
}

# The client proxy notices its server's death and keeps listening.
scenario proxy_kill_server
proxy_kill_server() {
	hold 1
	hold 2
	bg back - "$PEER" listen "$sdir/back.sock"
	waitfor back listening
	bg ps 1 "$PROXY" -v -m server 2 $P "$sdir/back.sock"
	bg pc 2 "$PROXY" -v -m client 1 $P "$sdir/front.sock"
	waitsock "$sdir/front.sock"
	bg f1 - "$PEER" connect "$sdir/front.sock"
	waitfor back connected
	kill9 ps
	noticed pc 'vchan client disconnected'
	finish f1
	finish back
	running pc
	x 0 xenstore-exists $P
	expect <<'EOF'
-- domain 1 held by a sleeping process
-- domain 2 held by a sleeping process
[-] vchan-peer listen $W/back.sock &   (back)
[1] vchan-socket-proxy -v -m server 2 /local/domain/1/data/vchan/t $W/back.sock &   (ps)
[2] vchan-socket-proxy -v -m client 1 /local/domain/1/data/vchan/t $W/front.sock &   (pc)
[-] vchan-peer connect $W/front.sock &   (f1)
-- ps: killed with SIGKILL
-- pc noticed within 1 s: vchan client disconnected
-- f1 said:
connected
peer closed
closed
-- back said:
listening
connected
peer closed
-- pc is running
[0] xenstore-exists /local/domain/1/data/vchan/t
EOF
}

# Our server with multi-page rings, the client proxy maps them.
scenario lib_server_proxy_client
lib_server_proxy_client() {
	hold 1
	bg srv 1 "$PEER" server 2 $P 65536 1048576 --send 900001@2 --recv 700001@1 --hold 1
	waitfor srv 'orders .*'
	bg pc 2 "$PROXY" -m client 1 $P "$sdir/front.sock"
	waitsock "$sdir/front.sock"
	bg f - "$PEER" connect "$sdir/front.sock" --send 700001@1 --recv 900001@2 --then close
	finish f
	finish srv
	x 0 xenstore-exists $P
	expect <<'EOF'
-- domain 1 held by a sleeping process
[1] vchan-peer server 2 /local/domain/1/data/vchan/t 65536 1048576 --send 900001@2 --recv 700001@1 --hold 1 &   (srv)
[2] vchan-socket-proxy -m client 1 /local/domain/1/data/vchan/t $W/front.sock &   (pc)
[-] vchan-peer connect $W/front.sock --send 700001@1 --recv 900001@2 --then close &   (f)
-- f said:
connected
sent 700001 bytes fnv64 ed01cedcc6481f00
received 900001 bytes fnv64 80e52db0d925f842
closed
-- srv said:
orders left 16 right 20
connected
sent 900001 bytes fnv64 80e52db0d925f842
received 700001 bytes fnv64 ed01cedcc6481f00
peer closed
closed
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

# The server proxy, our client.
scenario proxy_server_lib_client
proxy_server_lib_client() {
	bg back - "$PEER" listen "$sdir/back.sock" --send 500009@2 --recv 300007@1 --hold 1
	waitfor back listening
	bg ps 1 "$PROXY" -m server 2 $P "$sdir/back.sock"
	waitnode $P/event-channel
	x 2 "$PEER" client 1 $P --send 300007@1 --recv 500009@2 --then close
	finish back
	running ps
	expect <<'EOF'
[-] vchan-peer listen $W/back.sock --send 500009@2 --recv 300007@1 --hold 1 &   (back)
[1] vchan-socket-proxy -m server 2 /local/domain/1/data/vchan/t $W/back.sock &   (ps)
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --send 300007@1 --recv 500009@2 --then close
orders left 10 right 11
connected
sent 300007 bytes fnv64 9dd7013bc030694b
received 500009 bytes fnv64 cc37caa8cede2c95
closed
-- back said:
listening
connected
sent 500009 bytes fnv64 cc37caa8cede2c95
received 300007 bytes fnv64 9dd7013bc030694b
peer closed
-- ps is running
EOF
}

# The server proxy on stdin/stdout sends a file. At its end it waits for one
# more event (its last write did not ask for one): our client's close, after
# which it exits 0, and its clean close removes its nodes.
scenario proxy_stdio_close
proxy_stdio_close() {
	hold 1
	"$PEER" gen 5 400009 >"$sdir/in.bin"
	BG_IN=$sdir/in.bin bg ps 1 "$PROXY" -m server 2 $P -
	waitnode $P/event-channel
	x 2 "$PEER" client 1 $P --recv 400009@5 --then close
	finish ps
	x 0 xenstore-exists $P
	expect <<'EOF'
-- domain 1 held by a sleeping process
[1] vchan-socket-proxy -m server 2 /local/domain/1/data/vchan/t - &   (ps, stdin $W/in.bin)
[2] vchan-peer client 1 /local/domain/1/data/vchan/t --recv 400009@5 --then close
orders left 10 right 11
connected
received 400009 bytes fnv64 9d6436f43423c04c
closed
-- ps said:
[0] xenstore-exists /local/domain/1/data/vchan/t
(exit 1)
EOF
}

run_all "$@"
