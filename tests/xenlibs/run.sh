#!/bin/bash
# Xen's own libraries, unmodified, on granted (TAP).
#
# Each scenario starts a private broker, runs one xenlibs-agent per domain
# process under `grantctl run --domid N` (Debian's libxengnttab,
# libxenevtchn and libxentoolcore linked in, the shim preloaded), drives the
# agents one command at a time and compares the transcript (commands, result
# lines and whatever the libraries print on stderr) with the exact text
# expected from Xen 4.17 on Linux (shared/spec CLIENTS.md §4, ABI.md §11-12).
#
# Usage: run.sh [SCENARIO...]     (default: all)
# Env:   XL_AGENT (built agent), GRANTED_BROKER, GRANTED_GRANTCTL,
#        GRANTED_PRELOAD (defaults: the build tree next to this file),
#        XL_KEEP=1 keeps the work directory, XL_BROKER_LOG=debug the
#        broker's log level, XL_EXTRA=FILE more scenarios (sourced).
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BROKER=${GRANTED_BROKER:-$top/build/broker/granted}
GRANTCTL=${GRANTED_GRANTCTL:-$top/build/cli/grantctl}
export GRANTED_PRELOAD=${GRANTED_PRELOAD:-$top/build/shim/libgranted-preload.so}
AGENT=${XL_AGENT:-$top/build/tests/xenlibs/xenlibs-agent}
TMO=6          # seconds for one command's answer
SCEN_MAX=20    # seconds for one scenario

work=$(mktemp -d /tmp/xenlibs.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	[ -n "${XL_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# ---- the libraries ---------------------------------------------------------

have_libs() {
	pkg-config --exists xengnttab xenevtchn xentoolcore 2>/dev/null
}
if ! have_libs && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "# installing libxen-dev libxenmisc4.17"
	{ apt-get install -y --no-install-recommends libxen-dev libxenmisc4.17 ||
		{ apt-get update && apt-get install -y --no-install-recommends libxen-dev libxenmisc4.17; }
	} >"$work/apt.log" 2>&1 || sed 's/^/# /' "$work/apt.log" | tail -5
fi
if ! have_libs; then
	# Not a skip: a suite that did not run is a failure.
	echo "1..1"
	echo "not ok 1 - Debian's libxen-dev is not installed and cannot be installed"
	exit 1
fi
if [ ! -x "$AGENT" ]; then
	AGENT=$work/xenlibs-agent
	if ! ${CC:-cc} -std=c17 -D_GNU_SOURCE -O1 -Wall -Werror -o "$AGENT" "$here/agent.c" \
		$(pkg-config --cflags --libs xengnttab xenevtchn xentoolcore) 2>"$work/cc.log"; then
		echo "1..0 # cannot build the agent"
		sed 's/^/# /' "$work/cc.log"
		exit 1
	fi
fi
for f in "$BROKER" "$GRANTCTL" "$GRANTED_PRELOAD"; do
	if [ ! -e "$f" ]; then
		echo "1..0 # missing $f (build granted first)"
		exit 1
	fi
done

# ---- the harness -----------------------------------------------------------

declare -A AIN AOUT APID ADEAD
sdir=""
out=""
bpid=""

note() { echo "$*" >>"$out"; }

start_broker() {
	mkfifo "$sdir/ready"
	local rfd
	exec {rfd}<>"$sdir/ready"
	"$BROKER" --socket "$sdir/sock" --ready-fd 9 --log-level "${XL_BROKER_LOG:-warning}" \
		9>"$sdir/ready" 2>"$sdir/broker.log" </dev/null &
	bpid=$!
	local line
	if ! read -r -t 10 -u "$rfd" line; then
		exec {rfd}<&-
		return 1
	fi
	exec {rfd}<&-
	export GRANTED_SOCKET=$sdir/sock
}

# agent NAME DOMID: a new process acting as domain DOMID.
agent() {
	local name=$1 domid=$2 fin fout
	mkfifo "$sdir/$name.in" "$sdir/$name.out"
	exec {fin}<>"$sdir/$name.in"
	exec {fout}<>"$sdir/$name.out"
	XL_VARS=$sdir/vars "$GRANTCTL" run --domid "$domid" --no-start -- "$AGENT" \
		<"$sdir/$name.in" >"$sdir/$name.out" 2>&1 &
	APID[$name]=$!
	AIN[$name]=$fin
	AOUT[$name]=$fout
	ADEAD[$name]=""
	note "-- $name: a process of domain $domid"
}

# c NAME COMMAND...: one command, its answer into the transcript.
c() {
	local name=$1
	shift
	note "$name> $*"
	if [ -n "${ADEAD[$name]-gone}" ]; then
		note "$name: (agent gone)"
		return 1
	fi
	echo "$*" >&"${AIN[$name]}"
	local line
	while IFS= read -r -t "$TMO" -u "${AOUT[$name]}" line; do
		[ "$line" = "@@end" ] && return 0
		note "$name: $line"
	done
	note "$name: (no answer in ${TMO} s)"
	ADEAD[$name]=1
	kill -9 "${APID[$name]}" 2>/dev/null
	return 1
}

# kill9 NAME: SIGKILL, and wait until it is gone.
kill9() {
	local name=$1
	kill -9 "${APID[$name]}" 2>/dev/null
	wait "${APID[$name]}" 2>/dev/null
	ADEAD[$name]=1
	note "-- $name: killed with SIGKILL"
}

# The broker's view of the grants (granted's own tool; pids elided):
# mapcount is how many gntdev maps hold the grant (Xen's pin), mapped_by
# the processes that have it mmapped.
grants() {
	note "-- grantctl grants --json"
	"$GRANTCTL" grants --json 2>&1 | sed -E 's/"pid": [0-9]+/"pid": P/g; s/ +$//' >>"$out"
}

# ---- scenarios -------------------------------------------------------------

ALL=()
scenario() { ALL+=("$1"); }

# Pages shared rw and ro by two granters, mapped by a third domain with all
# three map calls; reads and writes both ways; two mappings alias.
scenario share_rw_ro
share_rw_ro() {
	agent d1 1
	agent d2 2
	agent d3 3
	c d1 gs_open
	c d1 share s1 2 2 rw
	c d1 share s2 2 1 ro
	c d1 put s1 0 0 hello-from-1
	c d1 put s1 1 100 page1-of-1
	c d1 put s2 0 0 read-only
	c d3 gs_open
	c d3 share t 2 1 rw
	c d3 put t 0 0 hello-from-3
	c d2 gt_open
	c d2 map m1 1 @s1 rw
	c d2 get m1 0 0 12
	c d2 get m1 1 100 10
	c d2 put m1 0 16 hello-from-2
	c d2 put m1 1 0 second-page
	c d1 get s1 0 16 12
	c d1 get s1 1 0 11
	c d2 maps m2 ro 1:@s2.0 3:@t.0 1:@s1.1
	c d2 get m2 0 0 9
	c d2 get m2 1 0 12
	c d2 get m2 2 100 10
	c d1 put s2 0 0 READ-ONLY
	c d2 get m2 0 0 9
	c d2 map1 m3 3 @t.0 rw
	c d2 put m3 0 0 HELLO
	c d3 get t 0 0 12
	c d2 get m2 1 0 12
	c d2 unmap m1
	c d2 unmap m2
	c d2 unmap m3
	c d1 unshare s1
	c d1 unshare s2
	c d3 unshare t
	c d2 gt_close
	c d1 gs_close
	c d3 gs_close
	grants
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
-- d3: a process of domain 3
d1> gs_open
d1: ok
d1> share s1 2 2 rw
d1: ok
d1> share s2 2 1 ro
d1: ok
d1> put s1 0 0 hello-from-1
d1: ok
d1> put s1 1 100 page1-of-1
d1: ok
d1> put s2 0 0 read-only
d1: ok
d3> gs_open
d3: ok
d3> share t 2 1 rw
d3: ok
d3> put t 0 0 hello-from-3
d3: ok
d2> gt_open
d2: ok
d2> map m1 1 @s1 rw
d2: ok
d2> get m1 0 0 12
d2: 'hello-from-1'
d2> get m1 1 100 10
d2: 'page1-of-1'
d2> put m1 0 16 hello-from-2
d2: ok
d2> put m1 1 0 second-page
d2: ok
d1> get s1 0 16 12
d1: 'hello-from-2'
d1> get s1 1 0 11
d1: 'second-page'
d2> maps m2 ro 1:@s2.0 3:@t.0 1:@s1.1
d2: ok
d2> get m2 0 0 9
d2: 'read-only'
d2> get m2 1 0 12
d2: 'hello-from-3'
d2> get m2 2 100 10
d2: 'page1-of-1'
d1> put s2 0 0 READ-ONLY
d1: ok
d2> get m2 0 0 9
d2: 'READ-ONLY'
d2> map1 m3 3 @t.0 rw
d2: ok
d2> put m3 0 0 HELLO
d2: ok
d3> get t 0 0 12
d3: 'HELLO-from-3'
d2> get m2 1 0 12
d2: 'HELLO-from-3'
d2> unmap m1
d2: ok
d2> unmap m2
d2: ok
d2> unmap m3
d2: ok
d1> unshare s1
d1: ok
d1> unshare s2
d1: ok
d3> unshare t
d3: ok
d2> gt_close
d2: ok
d1> gs_close
d1: ok
d3> gs_close
d3: ok
-- grantctl grants --json
[]
EOF
}

# A read-only grant mapped writable: mmap EINVAL, as the library prints it;
# nothing is left mapped; a read-only map of it still works.
scenario ro_mapped_rw
ro_mapped_rw() {
	agent d1 1
	agent d2 2
	c d1 gs_open
	c d1 share r 2 1 ro
	c d1 share w 2 1 rw
	c d1 put r 0 0 ro-page
	c d2 gt_open
	c d2 map1 m 1 @r.0 rw
	c d2 map m 1 @r rw
	c d2 maps m rw 1:@w.0 1:@r.0
	grants
	c d2 map1 m 1 @r.0 ro
	c d2 get m 0 0 7
	grants
	c d2 unmap m
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
d1> gs_open
d1: ok
d1> share r 2 1 ro
d1: ok
d1> share w 2 1 rw
d1: ok
d1> put r 0 0 ro-page
d1: ok
d2> gt_open
d2: ok
d2> map1 m 1 @r.0 rw
d2: gnttab: error: mmap failed: Invalid argument
d2: NULL EINVAL
d2> map m 1 @r rw
d2: gnttab: error: mmap failed: Invalid argument
d2: NULL EINVAL
d2> maps m rw 1:@w.0 1:@r.0
d2: gnttab: error: mmap failed: Invalid argument
d2: NULL EINVAL
-- grantctl grants --json
[
  {"granter": 1, "ref": 8, "grantee": 2, "access": "ro", "state": "active", "mapcount": 0, "mapped_by": []},
  {"granter": 1, "ref": 9, "grantee": 2, "access": "rw", "state": "active", "mapcount": 0, "mapped_by": []}
]
d2> map1 m 1 @r.0 ro
d2: ok
d2> get m 0 0 7
d2: 'ro-page'
-- grantctl grants --json
[
  {"granter": 1, "ref": 8, "grantee": 2, "access": "ro", "state": "active", "mapcount": 1, "mapped_by": [{"domid": 2, "pid": P, "access": "ro"}]},
  {"granter": 1, "ref": 9, "grantee": 2, "access": "rw", "state": "active", "mapcount": 0, "mapped_by": []}
]
d2> unmap m
d2: ok
EOF
}

# Only the grantee may map a grant: a third domain and the granter itself
# are refused at mmap (EINVAL), as are a never-granted ref, a domain that
# does not exist and a grant that has ended.
scenario third_domain_map
third_domain_map() {
	agent d1 1
	agent d2 2
	agent d3 3
	c d1 gs_open
	c d1 share s 2 1 rw
	c d1 share e 2 1 rw
	c d1 unshare e
	c d1 put s 0 0 for-dom2-only
	c d3 gt_open
	c d3 map1 m 1 @s.0 rw
	c d3 map1 m 1 @s.0 ro
	c d1 gt_open
	c d1 map1 m 1 @s.0 rw
	c d2 gt_open
	c d2 map1 m 1 @s.0 rw
	c d2 get m 0 0 13
	c d3 map1 m 1 @s.0 ro
	c d2 map1 x 1 100 ro
	c d2 map1 x 77 @s.0 ro
	c d2 map1 x 1 @e.0 ro
	c d2 unmap m
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
-- d3: a process of domain 3
d1> gs_open
d1: ok
d1> share s 2 1 rw
d1: ok
d1> share e 2 1 rw
d1: ok
d1> unshare e
d1: ok
d1> put s 0 0 for-dom2-only
d1: ok
d3> gt_open
d3: ok
d3> map1 m 1 @s.0 rw
d3: gnttab: error: mmap failed: Invalid argument
d3: NULL EINVAL
d3> map1 m 1 @s.0 ro
d3: gnttab: error: mmap failed: Invalid argument
d3: NULL EINVAL
d1> gt_open
d1: ok
d1> map1 m 1 @s.0 rw
d1: gnttab: error: mmap failed: Invalid argument
d1: NULL EINVAL
d2> gt_open
d2: ok
d2> map1 m 1 @s.0 rw
d2: ok
d2> get m 0 0 13
d2: 'for-dom2-only'
d3> map1 m 1 @s.0 ro
d3: gnttab: error: mmap failed: Invalid argument
d3: NULL EINVAL
d2> map1 x 1 100 ro
d2: gnttab: error: mmap failed: Invalid argument
d2: NULL EINVAL
d2> map1 x 77 @s.0 ro
d2: gnttab: error: mmap failed: Invalid argument
d2: NULL EINVAL
d2> map1 x 1 @e.0 ro
d2: gnttab: error: mmap failed: Invalid argument
d2: NULL EINVAL
d2> unmap m
d2: ok
EOF
}

# xengnttab_grant_copy both ways: gref to local, local to gref, gref to
# gref, the tail of a read-only grant; writing into a read-only grant -1.
# Waits on IOCTL_GNTDEV_GRANT_COPY.
scenario grant_copy
grant_copy() {
	agent d1 1
	agent d2 2
	c d1 gs_open
	c d1 share s 2 2 rw
	c d1 share r 2 1 ro
	c d1 put s 0 0 granter-text
	c d1 put r 0 4000 ro-tail
	c d2 gt_open
	c d2 put buf 0 0 from-dom2
	c d2 copy gref:1:@s.0:0 local:buf:1:0 12
	c d2 get buf 1 0 12
	c d2 copy local:buf:0:0 gref:1:@s.1:100 9
	c d1 get s 1 100 9
	c d2 copy gref:1:@s.0:0 gref:1:@s.1:200 12
	c d1 get s 1 200 12
	c d2 copy gref:1:@r.0:4000 local:buf:1:100 96
	c d2 get buf 1 100 7
	c d2 copy local:buf:0:0 gref:1:@r.0:0 9
	c d1 get r 0 0 9
	c d2 copy gref:1:@s.0:0 local:buf:1:0 4 local:buf:0:0 gref:1:@s.0:20 9
	c d1 get s 0 0 29
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
d1> gs_open
d1: ok
d1> share s 2 2 rw
d1: ok
d1> share r 2 1 ro
d1: ok
d1> put s 0 0 granter-text
d1: ok
d1> put r 0 4000 ro-tail
d1: ok
d2> gt_open
d2: ok
d2> put buf 0 0 from-dom2
d2: ok
d2> copy gref:1:@s.0:0 local:buf:1:0 12
d2: ok status 0
d2> get buf 1 0 12
d2: 'granter-text'
d2> copy local:buf:0:0 gref:1:@s.1:100 9
d2: ok status 0
d1> get s 1 100 9
d1: 'from-dom2'
d2> copy gref:1:@s.0:0 gref:1:@s.1:200 12
d2: ok status 0
d1> get s 1 200 12
d1: 'granter-text'
d2> copy gref:1:@r.0:4000 local:buf:1:100 96
d2: ok status 0
d2> get buf 1 100 7
d2: 'ro-tail'
d2> copy local:buf:0:0 gref:1:@r.0:0 9
d2: ok status -1
d1> get r 0 0 9
d1: '\x00\x00\x00\x00\x00\x00\x00\x00\x00'
d2> copy gref:1:@s.0:0 local:buf:1:0 4 local:buf:0:0 gref:1:@s.0:20 9
d2: ok status 0 0
d1> get s 0 0 29
d1: 'granter-text\x00\x00\x00\x00\x00\x00\x00\x00from-dom2'
EOF
}

# Grant-copy statuses: a ref beyond the table -3 (alone and between two
# good segments), a never-granted ref -1, a domain that does not exist -2,
# len 0 okay; local->local and offset+len > 4096 fail the whole ioctl
# (EINVAL, printed by the library); the granter itself and a third domain
# get -1. Waits on IOCTL_GNTDEV_GRANT_COPY.
scenario grant_copy_status
grant_copy_status() {
	agent d1 1
	agent d2 2
	agent d3 3
	c d1 gs_open
	c d1 share s 2 1 rw
	c d1 put s 0 0 abcdefgh
	c d2 gt_open
	c d2 put buf 0 0 12345678
	c d2 copy local:buf:0:0 gref:1:1000000:0 8
	c d2 copy gref:1:1000000:0 local:buf:1:0 8
	c d2 copy gref:1:@s.0:0 local:buf:1:0 4 gref:1:1000000:0 local:buf:1:0 4 local:buf:0:0 gref:1:@s.0:4 4
	c d2 get buf 1 0 4
	c d1 get s 0 0 8
	c d2 copy gref:1:100:0 local:buf:1:0 4
	c d2 copy gref:77:@s.0:0 local:buf:1:0 4
	c d2 copy gref:1:1000000:0 local:buf:1:0 0
	c d2 copy local:buf:0:0 local:buf:1:0 4
	c d2 copy gref:1:@s.0:4000 local:buf:1:0 200
	c d3 gt_open
	c d3 copy gref:1:@s.0:0 local:buf:0:0 4
	c d1 gt_open
	c d1 copy gref:1:@s.0:0 local:buf:0:0 4
	c d1 copy gref:32752:@s.0:0 local:buf:0:0 4
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
-- d3: a process of domain 3
d1> gs_open
d1: ok
d1> share s 2 1 rw
d1: ok
d1> put s 0 0 abcdefgh
d1: ok
d2> gt_open
d2: ok
d2> put buf 0 0 12345678
d2: ok
d2> copy local:buf:0:0 gref:1:1000000:0 8
d2: ok status -3
d2> copy gref:1:1000000:0 local:buf:1:0 8
d2: ok status -3
d2> copy gref:1:@s.0:0 local:buf:1:0 4 gref:1:1000000:0 local:buf:1:0 4 local:buf:0:0 gref:1:@s.0:4 4
d2: ok status 0 -3 0
d2> get buf 1 0 4
d2: 'abcd'
d1> get s 0 0 8
d1: 'abcd1234'
d2> copy gref:1:100:0 local:buf:1:0 4
d2: ok status -1
d2> copy gref:77:@s.0:0 local:buf:1:0 4
d2: ok status -2
d2> copy gref:1:1000000:0 local:buf:1:0 0
d2: ok status 0
d2> copy local:buf:0:0 local:buf:1:0 4
d2: gnttab: error: ioctl GRANT COPY failed 22 : Invalid argument
d2: -1 EINVAL
d2> copy gref:1:@s.0:4000 local:buf:1:0 200
d2: gnttab: error: ioctl GRANT COPY failed 22 : Invalid argument
d2: -1 EINVAL
d3> gt_open
d3: ok
d3> copy gref:1:@s.0:0 local:buf:0:0 4
d3: ok status -1
d1> gt_open
d1: ok
d1> copy gref:1:@s.0:0 local:buf:0:0 4
d1: ok status -1
d1> copy gref:32752:@s.0:0 local:buf:0:0 4
d1: ok status -1
EOF
}

# libxenevtchn between two domains: unbound, interdomain (the binder's port
# fires once), notify, masking until unmask with coalescing, errors, the
# peer unbinding (its port back to unbound; notify dropped) and binding again.
scenario evtchn
evtchn() {
	agent d1 1
	agent d2 2
	c d1 ev_open
	c d2 ev_open
	c d1 bind_unbound p 2
	c d2 bind_inter q 1 @p
	c d2 pending 1000
	c d2 unmask q
	c d1 pending 200
	c d1 notify p
	c d2 pending 1000
	c d1 notify p
	c d1 notify p
	c d2 pending 200
	c d2 unmask q
	c d2 pending 1000
	c d2 unmask q
	c d2 pending 200
	c d2 notify q
	c d1 pending 1000
	c d1 unmask p
	c d2 notify 50
	c d2 unbind 50
	c d2 bind_inter x 1 @p
	c d2 bind_inter x 77 1
	c d2 unbind q
	c d1 notify p
	c d1 pending 200
	c d2 bind_inter q2 1 @p
	c d2 pending 1000
	c d2 unmask q2
	c d1 notify p
	c d2 pending 1000
	c d2 unmask q2
	c d2 ev_close
	c d1 notify p
	c d1 pending 200
	c d1 unbind p
	c d1 notify p
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
d1> ev_open
d1: ok
d2> ev_open
d2: ok
d1> bind_unbound p 2
d1: ok
d2> bind_inter q 1 @p
d2: ok
d2> pending 1000
d2: event on q
d2> unmask q
d2: ok
d1> pending 200
d1: no event
d1> notify p
d1: ok
d2> pending 1000
d2: event on q
d1> notify p
d1: ok
d1> notify p
d1: ok
d2> pending 200
d2: no event
d2> unmask q
d2: ok
d2> pending 1000
d2: event on q
d2> unmask q
d2: ok
d2> pending 200
d2: no event
d2> notify q
d2: ok
d1> pending 1000
d1: event on p
d1> unmask p
d1: ok
d2> notify 50
d2: -1 ENOTCONN
d2> unbind 50
d2: -1 ENOTCONN
d2> bind_inter x 1 @p
d2: -1 EINVAL
d2> bind_inter x 77 1
d2: -1 ESRCH
d2> unbind q
d2: ok
d1> notify p
d1: ok
d1> pending 200
d1: no event
d2> bind_inter q2 1 @p
d2: ok
d2> pending 1000
d2: event on q2
d2> unmask q2
d2: ok
d1> notify p
d1: ok
d2> pending 1000
d2: event on q2
d2> unmask q2
d2: ok
d2> ev_close
d2: ok
d1> notify p
d1: ok
d1> pending 200
d1: no event
d1> unbind p
d1: ok
d1> notify p
d1: -1 ENOTCONN
EOF
}

# A third domain cannot bind a port offered to another domain or already
# connected; xenevtchn_restrict limits a handle to one domain.
scenario evtchn_third_domain
evtchn_third_domain() {
	agent d1 1
	agent d2 2
	agent d3 3
	c d1 ev_open
	c d2 ev_open
	c d3 ev_open
	c d1 bind_unbound p 2
	c d3 bind_inter x 1 @p
	c d2 bind_inter q 1 @p
	c d2 pending 1000
	c d2 unmask q
	c d3 bind_inter x 1 @p
	c d3 bind_inter x 2 @q
	c d3 pending 200
	c d1 pending 200
	c d3 restrict_ev 0
	c d2 restrict_ev 1
	c d2 restrict_ev 1
	c d2 bind_unbound z 1
	c d3 bind_unbound y 2
	c d2 bind_inter z 3 @y
	c d1 bind_unbound p2 2
	c d2 bind_inter q2 1 @p2
	c d2 pending 1000
	c d2 unmask q2
	c d2 notify q
	c d1 pending 1000
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
-- d3: a process of domain 3
d1> ev_open
d1: ok
d2> ev_open
d2: ok
d3> ev_open
d3: ok
d1> bind_unbound p 2
d1: ok
d3> bind_inter x 1 @p
d3: -1 EINVAL
d2> bind_inter q 1 @p
d2: ok
d2> pending 1000
d2: event on q
d2> unmask q
d2: ok
d3> bind_inter x 1 @p
d3: -1 EINVAL
d3> bind_inter x 2 @q
d3: -1 EINVAL
d3> pending 200
d3: no event
d1> pending 200
d1: no event
d3> restrict_ev 0
d3: -1 EINVAL
d2> restrict_ev 1
d2: ok
d2> restrict_ev 1
d2: -1 EACCES
d2> bind_unbound z 1
d2: -1 EACCES
d3> bind_unbound y 2
d3: ok
d2> bind_inter z 3 @y
d2: -1 EACCES
d1> bind_unbound p2 2
d1: ok
d2> bind_inter q2 1 @p2
d2: ok
d2> pending 1000
d2: event on q2
d2> unmask q2
d2: ok
d2> notify q
d2: ok
d1> pending 1000
d1: event on p
EOF
}

# Unmap notifications on a graceful unmap: the mapper's (byte cleared in the
# granter's page, event to the granter), the granter's on unshare (byte
# cleared in the page the grantee still maps, event to the grantee, the
# mapping still valid), event only, and CLEAR_BYTE refused on a read-only map.
scenario notify_graceful
notify_graceful() {
	agent d1 1
	agent d2 2
	c d1 gs_open
	c d1 ev_open
	c d1 share s 2 1 rw
	c d1 put s 0 16 ABCDEFGH
	c d1 bind_unbound p 2
	c d2 gt_open
	c d2 ev_open
	c d2 bind_inter q 1 @p
	c d2 pending 1000
	c d2 unmask q
	c d2 map_notify m 1 @s.0 rw 20 @q
	c d2 get m 0 16 8
	c d1 pending 200
	c d2 unmap m
	c d1 pending 1000
	c d1 get s 0 16 8
	c d1 unmask p
	c d2 map_notify m 1 @s.0 ro -1 @q
	c d2 unmap m
	c d1 pending 1000
	c d1 unmask p
	c d2 map_notify m 1 @s.0 ro 20 @q
	c d1 pending 200
	c d1 share_notify g 2 rw 21 @p
	c d1 put g 0 16 ABCDEFGH
	c d2 map1 n 1 @g.0 rw
	c d1 unshare g
	c d2 pending 1000
	c d2 get n 0 16 8
	c d2 put n 0 0 still-mapped
	c d2 get n 0 0 12
	c d2 unmap n
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
d1> gs_open
d1: ok
d1> ev_open
d1: ok
d1> share s 2 1 rw
d1: ok
d1> put s 0 16 ABCDEFGH
d1: ok
d1> bind_unbound p 2
d1: ok
d2> gt_open
d2: ok
d2> ev_open
d2: ok
d2> bind_inter q 1 @p
d2: ok
d2> pending 1000
d2: event on q
d2> unmask q
d2: ok
d2> map_notify m 1 @s.0 rw 20 @q
d2: ok
d2> get m 0 16 8
d2: 'ABCDEFGH'
d1> pending 200
d1: no event
d2> unmap m
d2: ok
d1> pending 1000
d1: event on p
d1> get s 0 16 8
d1: 'ABCD\x00FGH'
d1> unmask p
d1: ok
d2> map_notify m 1 @s.0 ro -1 @q
d2: ok
d2> unmap m
d2: ok
d1> pending 1000
d1: event on p
d1> unmask p
d1: ok
d2> map_notify m 1 @s.0 ro 20 @q
d2: gnttab: error: ioctl SET_UNMAP_NOTIFY failed: Invalid argument
d2: gnttab: error: mmap failed: Invalid argument
d2: NULL EINVAL
d1> pending 200
d1: no event
d1> share_notify g 2 rw 21 @p
d1: ok
d1> put g 0 16 ABCDEFGH
d1: ok
d2> map1 n 1 @g.0 rw
d2: ok
d1> unshare g
d1: ok
d2> pending 1000
d2: event on q
d2> get n 0 16 8
d2: 'ABCDE\x00GH'
d2> put n 0 0 still-mapped
d2: ok
d2> get n 0 0 12
d2: 'still-mapped'
d2> unmap n
d2: ok
EOF
}

# SIGKILL of the mapper: byte cleared and event delivered by the time the
# granter looks; the granter's port back to unbound, so a new process of
# the same domain binds it and maps the grant again.
scenario notify_kill_mapper
notify_kill_mapper() {
	agent d1 1
	agent d2 2
	c d1 gs_open
	c d1 ev_open
	c d1 share s 2 1 rw
	c d1 put s 0 16 ABCDEFGH
	c d1 bind_unbound p 2
	c d2 gt_open
	c d2 ev_open
	c d2 bind_inter q 1 @p
	c d2 pending 1000
	c d2 unmask q
	c d2 map_notify m 1 @s.0 rw 20 @q
	c d2 put m 0 0 mapper-was-here
	kill9 d2
	c d1 pending 2000
	c d1 get s 0 0 24
	c d1 unmask p
	grants
	agent d2b 2
	c d2b ev_open
	c d2b bind_inter q 1 @p
	c d2b pending 1000
	c d2b unmask q
	c d1 notify p
	c d2b pending 1000
	c d2b gt_open
	c d2b map1 m 1 @s.0 rw
	c d2b get m 0 16 8
	c d2b unmap m
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
d1> gs_open
d1: ok
d1> ev_open
d1: ok
d1> share s 2 1 rw
d1: ok
d1> put s 0 16 ABCDEFGH
d1: ok
d1> bind_unbound p 2
d1: ok
d2> gt_open
d2: ok
d2> ev_open
d2: ok
d2> bind_inter q 1 @p
d2: ok
d2> pending 1000
d2: event on q
d2> unmask q
d2: ok
d2> map_notify m 1 @s.0 rw 20 @q
d2: ok
d2> put m 0 0 mapper-was-here
d2: ok
-- d2: killed with SIGKILL
d1> pending 2000
d1: event on p
d1> get s 0 0 24
d1: 'mapper-was-here\x00ABCD\x00FGH'
d1> unmask p
d1: ok
-- grantctl grants --json
[
  {"granter": 1, "ref": 8, "grantee": 2, "access": "rw", "state": "active", "mapcount": 0, "mapped_by": []}
]
-- d2b: a process of domain 2
d2b> ev_open
d2b: ok
d2b> bind_inter q 1 @p
d2b: ok
d2b> pending 1000
d2b: event on q
d2b> unmask q
d2b: ok
d1> notify p
d1: ok
d2b> pending 1000
d2b: event on q
d2b> gt_open
d2b: ok
d2b> map1 m 1 @s.0 rw
d2b: ok
d2b> get m 0 16 8
d2b: 'ABCD\x00FGH'
d2b> unmap m
d2b: ok
EOF
}

# SIGKILL of the granter: the byte is cleared in the page the grantee still
# maps, the event delivered, the mapping still valid (reads and writes), and
# the grantee's port back to unbound so a new process of the granter's
# domain can bind it.
scenario notify_kill_granter
notify_kill_granter() {
	agent d1 1
	agent d2 2
	c d1 gs_open
	c d1 ev_open
	c d1 bind_unbound p 2
	c d2 ev_open
	c d2 bind_inter q 1 @p
	c d2 pending 1000
	c d2 unmask q
	c d1 share_notify s 2 rw 21 @p
	c d1 put s 0 16 ABCDEFGH
	c d2 gt_open
	c d2 map1 m 1 @s.0 rw
	c d2 get m 0 16 8
	kill9 d1
	c d2 pending 2000
	c d2 get m 0 16 8
	c d2 put m 0 0 after-kill
	c d2 get m 0 0 24
	c d2 unmask q
	agent d1b 1
	c d1b ev_open
	c d1b bind_inter p 2 @q
	c d1b pending 1000
	c d1b unmask p
	c d2 notify q
	c d1b pending 1000
	c d2 unmap m
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
d1> gs_open
d1: ok
d1> ev_open
d1: ok
d1> bind_unbound p 2
d1: ok
d2> ev_open
d2: ok
d2> bind_inter q 1 @p
d2: ok
d2> pending 1000
d2: event on q
d2> unmask q
d2: ok
d1> share_notify s 2 rw 21 @p
d1: ok
d1> put s 0 16 ABCDEFGH
d1: ok
d2> gt_open
d2: ok
d2> map1 m 1 @s.0 rw
d2: ok
d2> get m 0 16 8
d2: 'ABCDEFGH'
-- d1: killed with SIGKILL
d2> pending 2000
d2: event on q
d2> get m 0 16 8
d2: 'ABCDE\x00GH'
d2> put m 0 0 after-kill
d2: ok
d2> get m 0 0 24
d2: 'after-kill\x00\x00\x00\x00\x00\x00ABCDE\x00GH'
d2> unmask q
d2: ok
-- d1b: a process of domain 1
d1b> ev_open
d1b: ok
d1b> bind_inter p 2 @q
d1b: ok
d1b> pending 1000
d1b: event on p
d1b> unmask p
d1b: ok
d2> notify q
d2: ok
d1b> pending 1000
d1b: event on p
d2> unmap m
d2: ok
EOF
}

# xentoolcore_restrict_all: the gnttab fd becomes /dev/null, so calls fail
# ENOTTY as the library prints them (SET_MAX_GRANTS' ENOTTY is success), and
# the evtchn handle is restricted to the domain. The gntdev open file had no
# other reference, so dup2 releases it: the map that was only munmapped is
# destroyed then (byte cleared, event to the granter) and the broker no
# longer lists it.
scenario restrict_all
restrict_all() {
	agent d1 1
	agent d2 2
	c d1 gs_open
	c d1 ev_open
	c d1 share s 2 2 rw
	c d1 put s 0 16 ABCDEFGH
	c d1 bind_unbound p 2
	c d2 ev_open
	c d2 bind_inter q 1 @p
	c d2 pending 1000
	c d2 unmask q
	c d2 gt_open
	c d2 map_notify m 1 @s.0 rw 20 @q
	c d2 munmap m
	c d1 pending 300
	c d1 get s 0 16 8
	grants
	c d2 restrict_all 2
	c d1 pending 2000
	c d1 get s 0 16 8
	c d1 unmask p
	grants
	c d2 map1 x 1 @s.0 rw
	c d2 map x 1 @s ro
	c d2 setmax 8
	c d2 unmap_null
	c d2 copy gref:1:@s.0:0 local:buf:0:0 4
	c d2 bind_unbound z 3
	c d2 bind_unbound z 1
	c d2 notify q
	c d1 pending 1000
	c d2 gt_close
	c d2 ev_close
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
d1> gs_open
d1: ok
d1> ev_open
d1: ok
d1> share s 2 2 rw
d1: ok
d1> put s 0 16 ABCDEFGH
d1: ok
d1> bind_unbound p 2
d1: ok
d2> ev_open
d2: ok
d2> bind_inter q 1 @p
d2: ok
d2> pending 1000
d2: event on q
d2> unmask q
d2: ok
d2> gt_open
d2: ok
d2> map_notify m 1 @s.0 rw 20 @q
d2: ok
d2> munmap m
d2: ok
d1> pending 300
d1: no event
d1> get s 0 16 8
d1: 'ABCDEFGH'
-- grantctl grants --json
[
  {"granter": 1, "ref": 8, "grantee": 2, "access": "rw", "state": "active", "mapcount": 1, "mapped_by": [{"domid": 2, "pid": P, "access": "rw"}]},
  {"granter": 1, "ref": 9, "grantee": 2, "access": "rw", "state": "active", "mapcount": 0, "mapped_by": []}
]
d2> restrict_all 2
d2: ok
d1> pending 2000
d1: event on p
d1> get s 0 16 8
d1: 'ABCD\x00FGH'
d1> unmask p
d1: ok
-- grantctl grants --json
[
  {"granter": 1, "ref": 8, "grantee": 2, "access": "rw", "state": "active", "mapcount": 0, "mapped_by": []},
  {"granter": 1, "ref": 9, "grantee": 2, "access": "rw", "state": "active", "mapcount": 0, "mapped_by": []}
]
d2> map1 x 1 @s.0 rw
d2: gnttab: error: ioctl MAP_GRANT_REF failed: Inappropriate ioctl for device
d2: NULL ENOTTY
d2> map x 1 @s ro
d2: gnttab: error: ioctl MAP_GRANT_REF failed: Inappropriate ioctl for device
d2: NULL ENOTTY
d2> setmax 8
d2: ok
d2> unmap_null
d2: -1 EINVAL
d2> copy gref:1:@s.0:0 local:buf:0:0 4
d2: gnttab: error: ioctl GRANT COPY failed 25 : Inappropriate ioctl for device
d2: -1 ENOTTY
d2> bind_unbound z 3
d2: -1 EACCES
d2> bind_unbound z 1
d2: -1 EACCES
d2> notify q
d2: ok
d1> pending 1000
d1: event on p
d2> gt_close
d2: ok
d2> ev_close
d2: ok
EOF
}

# restrict_all while another mapping of the same gntdev file is still
# mmapped: as on Linux, that VMA keeps the open file alive, so the
# munmapped map's slot (and its notify) lives on until that last munmap;
# xengnttab_unmap fails ENOTTY and leaves the mapping usable.
scenario restrict_all_mapped
restrict_all_mapped() {
	agent d1 1
	agent d2 2
	c d1 gs_open
	c d1 ev_open
	c d1 share s 2 2 rw
	c d1 put s 0 16 ABCDEFGH
	c d1 bind_unbound p 2
	c d2 ev_open
	c d2 bind_inter q 1 @p
	c d2 pending 1000
	c d2 unmask q
	c d2 gt_open
	c d2 map_notify m 1 @s.0 rw 20 @q
	c d2 map1 k 1 @s.1 rw
	c d2 munmap m
	c d2 restrict_all 2
	c d1 pending 300
	c d1 get s 0 16 8
	c d2 unmap k
	c d2 put k 0 0 kept
	c d1 get s 1 0 4
	grants
	c d2 munmap k
	c d1 pending 2000
	c d1 get s 0 16 8
	grants
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
d1> gs_open
d1: ok
d1> ev_open
d1: ok
d1> share s 2 2 rw
d1: ok
d1> put s 0 16 ABCDEFGH
d1: ok
d1> bind_unbound p 2
d1: ok
d2> ev_open
d2: ok
d2> bind_inter q 1 @p
d2: ok
d2> pending 1000
d2: event on q
d2> unmask q
d2: ok
d2> gt_open
d2: ok
d2> map_notify m 1 @s.0 rw 20 @q
d2: ok
d2> map1 k 1 @s.1 rw
d2: ok
d2> munmap m
d2: ok
d2> restrict_all 2
d2: ok
d1> pending 300
d1: no event
d1> get s 0 16 8
d1: 'ABCDEFGH'
d2> unmap k
d2: -1 ENOTTY
d2> put k 0 0 kept
d2: ok
d1> get s 1 0 4
d1: 'kept'
-- grantctl grants --json
[
  {"granter": 1, "ref": 8, "grantee": 2, "access": "rw", "state": "active", "mapcount": 1, "mapped_by": [{"domid": 2, "pid": P, "access": "rw"}]},
  {"granter": 1, "ref": 9, "grantee": 2, "access": "rw", "state": "active", "mapcount": 1, "mapped_by": [{"domid": 2, "pid": P, "access": "rw"}]}
]
d2> munmap k
d2: ok
d1> pending 2000
d1: event on p
d1> get s 0 16 8
d1: 'ABCD\x00FGH'
-- grantctl grants --json
[
  {"granter": 1, "ref": 8, "grantee": 2, "access": "rw", "state": "active", "mapcount": 0, "mapped_by": []},
  {"granter": 1, "ref": 9, "grantee": 2, "access": "rw", "state": "active", "mapcount": 0, "mapped_by": []}
]
EOF
}

# The libraries' other paths: SET_MAX_GRANTS (ENOTTY on Linux) is success;
# xengnttab_unmap of NULL or with a wrong count is EINVAL and unmaps
# nothing; dma-buf is ENOTTY (a kernel without CONFIG_XEN_GNTDEV_DMABUF);
# gntalloc's 1024-page domain limit is ENOSPC as the library prints it;
# granting to a domain that does not exist succeeds.
scenario lib_errors
lib_errors() {
	agent d1 1
	agent d2 2
	c d2 gt_open
	c d2 setmax 1
	c d2 setmax 0
	c d2 unmap_null
	c d1 gs_open
	c d1 share s 2 2 rw
	c d2 map m 1 @s rw
	c d2 unmap m 1
	c d2 put m 1 0 still-there
	c d1 get s 1 0 11
	c d2 unmap m
	c d2 dmabuf_export 1 @s
	c d1 share big 2 1025 rw
	c d1 share most 2 1022 rw
	c d1 share one 2 1 rw
	c d1 unshare most
	c d1 share one 2 1 rw
	c d1 share nobody 77 1 rw
	c d1 unshare nobody
	c d1 gs_close
	c d2 gt_close
	expect <<'EOF'
-- d1: a process of domain 1
-- d2: a process of domain 2
d2> gt_open
d2: ok
d2> setmax 1
d2: ok
d2> setmax 0
d2: ok
d2> unmap_null
d2: -1 EINVAL
d1> gs_open
d1: ok
d1> share s 2 2 rw
d1: ok
d2> map m 1 @s rw
d2: ok
d2> unmap m 1
d2: -1 EINVAL
d2> put m 1 0 still-there
d2: ok
d1> get s 1 0 11
d1: 'still-there'
d2> unmap m
d2: ok
d2> dmabuf_export 1 @s
d2: gnttab: error: ioctl DMABUF_EXP_FROM_REFS failed: Inappropriate ioctl for device
d2: -1 ENOTTY
d1> share big 2 1025 rw
d1: gntshr: error: ioctl failed: No space left on device
d1: NULL ENOSPC
d1> share most 2 1022 rw
d1: ok
d1> share one 2 1 rw
d1: gntshr: error: ioctl failed: No space left on device
d1: NULL ENOSPC
d1> unshare most
d1: ok
d1> share one 2 1 rw
d1: ok
d1> share nobody 77 1 rw
d1: ok
d1> unshare nobody
d1: ok
d1> gs_close
d1: ok
d2> gt_close
d2: ok
EOF
}

# ---- running ---------------------------------------------------------------

# expect: compares the transcript with stdin; sets the verdict.
verdict=""
expect() {
	cat >"$sdir/expected"
	if diff -u "$sdir/expected" "$out" >"$sdir/diff"; then
		verdict=ok
	else
		verdict="transcript differs"
	fi
}

run_one() {
	local scen=$1
	sdir=$work/$scen
	mkdir -p "$sdir/vars"
	out=$sdir/transcript
	: >"$out"
		verdict="no expectation"
	AIN=() AOUT=() APID=() ADEAD=()
	local t0=$SECONDS
	if ! start_broker; then
		echo "not ok $2 - $scen # the broker did not start"
		sed 's/^/# /' "$sdir/broker.log"
		return 1
	fi
	"$scen"
	local name
	for name in "${!APID[@]}"; do
		[ -n "${ADEAD[$name]}" ] && continue
		echo exit >&"${AIN[$name]}"
	done
	sleep 0.1
	for name in "${!APID[@]}"; do
		kill -9 "${APID[$name]}" 2>/dev/null
		wait "${APID[$name]}" 2>/dev/null
		eval "exec ${AIN[$name]}>&- ${AOUT[$name]}<&-"
	done
	local bstat=0
	if kill -0 "$bpid" 2>/dev/null; then
		kill -TERM "$bpid"
		wait "$bpid"
		bstat=$?
	else
		wait "$bpid"
		bstat="died ($?)"
	fi
	local took=$((SECONDS - t0))
	local why=""
	[ "$verdict" = ok ] || why=$verdict
	[ "$bstat" = 0 ] || why="${why:+$why; }broker ended with status $bstat"
	[ "$took" -le "$SCEN_MAX" ] || why="${why:+$why; }took ${took} s"
	if [ -z "$why" ]; then
		echo "ok $2 - $scen # ${took} s"
		return 0
	fi
	echo "not ok $2 - $scen # $why"
	[ -s "$sdir/diff" ] && sed 's/^/# /' "$sdir/diff"
	[ -s "$sdir/broker.log" ] && sed 's/^/# broker: /' "$sdir/broker.log"
	return 1
}

# More scenarios, for debugging: XL_EXTRA=file.sh (same helpers).
[ -z "${XL_EXTRA:-}" ] || . "$XL_EXTRA"

sel=("$@")
[ ${#sel[@]} -gt 0 ] || sel=("${ALL[@]}")
echo "1..${#sel[@]}"
n=0
bad=0
for s in "${sel[@]}"; do
	n=$((n + 1))
	if ! declare -F "$s" >/dev/null; then
		echo "not ok $n - $s # no such scenario"
		bad=$((bad + 1))
		continue
	fi
	run_one "$s" "$n" || bad=$((bad + 1))
done
[ "$bad" = 0 ]
