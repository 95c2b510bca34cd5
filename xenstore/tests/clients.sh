#!/bin/bash
# Debian's real xenstore clients against granted's xenstore engine, run in
# its test daemon: xenstore-utils, test-xenstore (xen-utils-4.17) and
# python3-pyxs, then per-domain identity with xs-domclient. Prints TAP.
#
#   clients.sh DAEMON DOMCLIENT
#
# Installs the Debian packages it needs when they are missing (as root);
# test-xenstore is unpacked from xen-utils-4.17 into a cache directory
# ($GRANTED_XU_DIR, default /tmp/granted-xen-utils), not installed.
set -u
DAEMON=$(realpath "$1")
DOMCLIENT=$(realpath "$2")
PY=/usr/bin/python3
XU=${GRANTED_XU_DIR:-/tmp/granted-xen-utils}
T=$(mktemp -d /tmp/granted-xs-XXXXXX)
n=0
failed=0
pids=()

cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
# A client that is missing is a failure, not a skip: CI installs them all.
skip() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1 # $2"; }
note() { sed 's/^/# /'; }

# check NAME EXPECTED-FILE ACTUAL-FILE
check() {
	if diff -u "$2" "$3" >"$T/diff"; then
		ok "$1"
	else
		notok "$1"
		note <"$T/diff"
	fi
}

# expect NAME (expected output on stdin) -- COMMAND...
expect() {
	local name=$1
	shift 2
	cat >"$T/expected"
	"$@" >"$T/actual" 2>&1
	check "$name" "$T/expected" "$T/actual"
}

# ---- what the tests need ---------------------------------------------------

apt_install() {
	[ "$(id -u)" = 0 ] || return 1
	apt-get install -y --no-install-recommends "$@" >"$T/apt.log" 2>&1 ||
		{ apt-get update >>"$T/apt.log" 2>&1 &&
			apt-get install -y --no-install-recommends "$@" >>"$T/apt.log" 2>&1; }
}

missing=()
command -v xenstore-read >/dev/null || missing+=(xenstore-utils)
$PY -c 'import pyxs' 2>/dev/null || missing+=(python3-pyxs)
dpkg -s libxenmisc4.17 >/dev/null 2>&1 || missing+=(libxenmisc4.17)
if [ ${#missing[@]} -gt 0 ]; then
	apt_install "${missing[@]}" || echo "# could not install ${missing[*]}"
fi

TEST_XENSTORE=/usr/lib/xen-4.17/bin/test-xenstore
if [ ! -x "$TEST_XENSTORE" ]; then
	TEST_XENSTORE=$XU/usr/lib/xen-4.17/bin/test-xenstore
	if [ ! -x "$TEST_XENSTORE" ]; then
		mkdir -p "$XU/deb"
		(cd "$XU/deb" && { apt-get download xen-utils-4.17 >/dev/null 2>&1 ||
			{ [ "$(id -u)" = 0 ] && apt-get update >/dev/null 2>&1 &&
				apt-get download xen-utils-4.17 >/dev/null 2>&1; }; } &&
			dpkg-deb -x xen-utils-4.17_*.deb "$XU") || echo "# could not fetch xen-utils-4.17"
	fi
fi

# ---- the daemon --------------------------------------------------------------

# start_daemon SOCKET LOG ARGS...: starts it and waits until it listens.
start_daemon() {
	local sock=$1 log=$2
	shift 2
	rm -f "$T/ready"
	mkfifo "$T/ready"
	"$DAEMON" -l debug -r 3 "$@" "$sock" 3>"$T/ready" 2>"$log" &
	pids+=($!)
	local line
	if ! read -r -t 10 line <"$T/ready"; then
		echo "Bail out! the daemon did not start"
		note <"$log"
		exit 1
	fi
}

export XENSTORED_PATH=$T/socket
start_daemon "$XENSTORED_PATH" "$T/daemon.log" -i 1 -i 2
unset XENSTORED_RUNDIR

# ---- xenstore-utils ----------------------------------------------------------

if command -v xenstore-read >/dev/null; then
	expect "xenstore-write several, xenstore-read" <<'EOF' -- \
		sh -c 'xenstore-write /t/a hello /t/b "two words" && xenstore-read /t/a /t/b'
hello
two words
EOF

	expect "xenstore-read of a missing node fails" <<'EOF' -- \
		sh -c 'xenstore-read /nope; echo "exit $?"'
xenstore-read: couldn't read path /nope
exit 1
EOF

	expect "xenstore-ls -p" <<'EOF' -- xenstore-ls -p /
tool = ""  . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 xenstored = ""  . . . . . . . . . . . . . . . . . . . . . .  (n0)
local = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 domain = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
  0 = "" . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
   domid = "0" . . . . . . . . . . . . . . . . . . . . . . .  (n0)
  1 = "" . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0,r1)
   domid = "1" . . . . . . . . . . . . . . . . . . . . . . .  (n0,r1)
   control = ""  . . . . . . . . . . . . . . . . . . . . . .  (n0,r1)
   data = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
   device = "" . . . . . . . . . . . . . . . . . . . . . . .  (n1)
   drivers = ""  . . . . . . . . . . . . . . . . . . . . . .  (n1)
   feature = ""  . . . . . . . . . . . . . . . . . . . . . .  (n1)
   attr = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n1)
   error = ""  . . . . . . . . . . . . . . . . . . . . . . .  (n1)
  2 = "" . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0,r2)
   domid = "2" . . . . . . . . . . . . . . . . . . . . . . .  (n0,r2)
   control = ""  . . . . . . . . . . . . . . . . . . . . . .  (n0,r2)
   data = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n2)
   device = "" . . . . . . . . . . . . . . . . . . . . . . .  (n2)
   drivers = ""  . . . . . . . . . . . . . . . . . . . . . .  (n2)
   feature = ""  . . . . . . . . . . . . . . . . . . . . . .  (n2)
   attr = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n2)
   error = ""  . . . . . . . . . . . . . . . . . . . . . . .  (n2)
t = "" . . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 a = "hello" . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 b = "two words" . . . . . . . . . . . . . . . . . . . . . .  (n0)
EOF

	expect "xenstore-list" <<'EOF' -- xenstore-list /t
a
b
EOF

	expect "xenstore-chmod" <<'EOF' -- sh -c 'xenstore-chmod /t/a n1 r2 b3 && xenstore-ls -p /t'
a = "hello"  . . . . . . . . . . . . . . . . . . . . . . . .  (n1,r2,b3)
b = "two words"  . . . . . . . . . . . . . . . . . . . . . .  (n0)
EOF

	expect "xenstore-exists" <<'EOF' -- \
		sh -c 'xenstore-exists /t/a; echo "a $?"; xenstore-exists /t/zz; echo "zz $?"'
a 0
zz 1
EOF

	expect "xenstore-rm" <<'EOF' -- sh -c 'xenstore-rm /t/b && xenstore-list /t && xenstore-rm /t/b; echo "again $?"'
a
again 0
EOF

	# The watch fires once when registered, then for each change below it.
	(timeout 10 xenstore-watch -n 4 /w >"$T/watch" 2>&1; echo "exit $?" >>"$T/watch") &
	for i in $(seq 100); do [ -s "$T/watch" ] && break; sleep 0.05; done
	xenstore-write /w/a 1
	xenstore-write /w/a/b 2
	xenstore-rm /w
	wait $!
	check "xenstore-watch" - "$T/watch" <<'EOF'
/w
/w/a
/w/a/b
/w
exit 0
EOF

	expect "xenstore (multi-call) write/read/ls" <<'EOF' -- \
		sh -c 'xenstore write /m/x 1 && xenstore read /m/x && xenstore ls /m && xenstore rm /m'
1
x = "1"
EOF
else
	for t in write-read read-missing ls-p list chmod exists rm watch multicall; do
		skip "xenstore-utils $t" "xenstore-utils not installed"
	done
fi

# ---- test-xenstore -----------------------------------------------------------

if [ -x "$TEST_XENSTORE" ]; then
	"$TEST_XENSTORE" >"$T/tx" 2>&1
	rc=$?
	note <"$T/tx"
	if [ $rc = 0 ] && [ "$(grep -c ' ns' "$T/tx")" = 12 ] && ! grep -q failed "$T/tx"; then
		ok "test-xenstore: 12 tests pass"
	else
		notok "test-xenstore: exit $rc"
	fi
	"$TEST_XENSTORE" -i 20 >"$T/tx" 2>&1
	rc=$?
	if [ $rc = 0 ] && ! grep -q failed "$T/tx"; then
		ok "test-xenstore -i 20"
	else
		notok "test-xenstore -i 20: exit $rc"
		note <"$T/tx"
	fi
	expect "test-xenstore cleans up after itself" <<'EOF' -- \
		sh -c 'xenstore-exists /local/domain/0/xenstore-test; echo $?'
1
EOF
else
	skip "test-xenstore" "xen-utils-4.17 not available"
	skip "test-xenstore -i 20" "xen-utils-4.17 not available"
	skip "test-xenstore cleans up" "xen-utils-4.17 not available"
fi

# ---- python3-pyxs ------------------------------------------------------------

if $PY -c 'import pyxs' 2>/dev/null; then
	cat >"$T/pyxs_test.py" <<'PYEOF'
import os
from pyxs import Client

path = os.environ["XENSTORED_PATH"]
with Client(unix_socket_path=path) as c, Client(unix_socket_path=path) as o:
    c.write(b"/py/a", b"1")
    c.mkdir(b"/py/dir")
    print(c.read(b"/py/a"), c.list(b"/py"), c.exists(b"/py/x"), c.get_perms(b"/py/a"))
    c.set_perms(b"/py/a", [b"n0", b"r5"])
    print(c.get_perms(b"/py/a"), c.get_domain_path(7), c.is_domain_introduced(1))
    m = c.monitor()
    m.watch(b"/py", b"tok")
    events = m.wait()
    print(next(events))
    o.write(b"/py/b", b"2")
    print(next(events))
    # A transaction commits...
    c.transaction()
    c.write(b"/py/c", b"3")
    print(c.read(b"/py/c"), o.read(b"/py/c", b"absent"))
    print(c.commit(), next(events))
    # ... and one that read what another changed fails (EAGAIN).
    c.transaction()
    c.read(b"/py/a")
    o.write(b"/py/a", b"changed")
    c.write(b"/py/d", b"4")
    print(c.commit(), c.exists(b"/py/d"), next(events))
    c.delete(b"/py")
    print(next(events))
PYEOF
	expect "pyxs: read, write, ls, perms, watch, transactions (req ids > 0)" <<'EOF' -- \
		timeout 30 $PY "$T/pyxs_test.py"
b'1' [b'a', b'dir'] False [b'n0']
[b'n0', b'r5'] b'/local/domain/7' True
Event(path=b'/py', token=b'tok')
Event(path=b'/py/b', token=b'tok')
b'3' b'absent'
True Event(path=b'/py/c', token=b'tok')
False False Event(path=b'/py/a', token=b'tok')
Event(path=b'/py', token=b'tok')
EOF
	if grep -q 'domain 0: MKDIR req [1-9][0-9]* tx 0 "/py/dir"' "$T/daemon.log" &&
		grep -q 'domain 0: TRANSACTION_END req [1-9][0-9]* tx [1-9]' "$T/daemon.log"; then
		ok "pyxs: its request ids were non-zero"
	else
		notok "pyxs: its request ids were non-zero"
	fi
else
	skip "pyxs" "python3-pyxs not installed"
	skip "pyxs request ids" "python3-pyxs not installed"
fi

# ---- domains, with xs-domclient ----------------------------------------------

D=$DOMCLIENT
expect "domain 1: relative paths resolve under /local/domain/1" <<'EOF' -- \
	$D -d 1 read domid : domainpath 1 : write data/x hello : read /local/domain/1/data/x : ls data : getperms data/x
1
/local/domain/1
OK
hello
x
n1
EOF

expect "domain 0 sees what domain 1 wrote, with domain 1 as owner" <<'EOF' -- \
	$D read /local/domain/1/data/x : getperms /local/domain/1/data/x : read domid
hello
n1
0
EOF

expect "domain 1: EACCES outside what it may see" <<'EOF' -- \
	$D -d 1 read /tool/xenstored : ls / : read /local/domain/2/domid : write /x 1 : write domid 5 : read /tool/nope : read nope : introduced 2 : control check
ERR EACCES
ERR EACCES
ERR EACCES
ERR EACCES
ERR EACCES
ERR EACCES
ERR ENOENT
ERR EACCES
ERR EACCES
EOF

# libxenvchan's server and client, as CLIENTS.md 6.1 records them.
expect "vchan-like: domain 1 grants domain 2 read access in a transaction" <<'EOF' -- \
	$D -d 1 txstart : write data/vchan/t1/ring-ref 8 : setperms data/vchan/t1/ring-ref n1 r2 : write data/vchan/t1/event-channel 1 : setperms data/vchan/t1/event-channel n1 r2 : txend T
1
OK
OK
OK
OK
OK
EOF

expect "vchan-like: domain 2 reads, may not write; domain 3 may not read" <<'EOF' -- \
	sh -c "$D -d 2 read /local/domain/1/data/vchan/t1/ring-ref : read /local/domain/1/data/vchan/t1/event-channel : write /local/domain/1/data/vchan/t1/ring-ref 9 : read /local/domain/1/data/vchan/t1/ring-ref/nope : read /local/domain/1/data/nope; $D -d 3 read /local/domain/1/data/vchan/t1/ring-ref"
8
1
ERR EACCES
ERR ENOENT
ERR EACCES
ERR EACCES
EOF

expect "domain 1 may not give a node away; dom0 may" <<'EOF' -- \
	sh -c "$D -d 1 setperms data/x n2 : setperms data/x n1 r2; $D setperms /local/domain/1/data/x n2; $D -d 2 write /local/domain/1/data/x mine; $D -d 1 write data/x back"
ERR EPERM
OK
OK
OK
ERR EACCES
EOF

# Domain 2 watches its own data and domain 1's; it hears only of what it
# may read, with paths as it gave them.
$D -d 2 watch data w : watch /local/domain/1/data t1 : events 2 : events 1 >"$T/w2" 2>&1 &
w2=$!
for i in $(seq 200); do [ "$(wc -l <"$T/w2")" -ge 4 ] && break; sleep 0.05; done
$D write /local/domain/1/data/secret 1 : write /local/domain/2/data/y 2 >/dev/null
wait $w2
check "domain 2 watches: events only for what it may read, relative paths" - "$T/w2" <<'EOF'
OK
OK
event data w
event /local/domain/1/data t1
event data/y w
EOF

expect "a claim only as the first message" <<'EOF' -- \
	sh -c "$D -d 1 claim 2 : read domid; $D read domid : claim 1 : read domid"
ERR EACCES
1
0
ERR EACCES
0
EOF

expect "a bad claim is refused and the connection closed" <<'EOF' -- \
	sh -c "$D claim 32752 : read domid 2>/dev/null; echo \"exit \$?\""
ERR EINVAL
exit 2
EOF

# ---- quotas, in a daemon of their own ------------------------------------------

export XENSTORED_PATH=$T/quota-socket
start_daemon "$XENSTORED_PATH" "$T/quota.log" -i 1 -q nodes=8 -q value-size=10 -q watches=2 \
	-q transactions=1 -q perms=2
expect "quotas: nodes (ENOSPC), value size (ENOSPC), permissions (ENOSPC)" <<'EOF' -- \
	$D -d 1 write data/a 1 : write data/b 1 : write data/c/d 1 : write data/c 1 : write data/a 12345678901 : write data/a 1234567890 : setperms data/a n1 r2 r3 : setperms data/a n1 r2
OK
OK
ERR ENOSPC
ERR ENOSPC
ERR ENOSPC
OK
ERR ENOSPC
OK
EOF

expect "quotas: watches (E2BIG), transactions (ENOSPC); dom0 unbound" <<'EOF' -- \
	sh -c "$D -d 1 watch data w1 : watch data w2 : watch data w3 : txstart : txforget : txstart ; $D write /local/domain/1/data/dom0-1 1 : write /local/domain/1/data/dom0-2 1 : write /local/domain/1/data/dom0-3 12345678901"
OK
OK
ERR E2BIG
1
ERR ENOSPC
OK
OK
OK
EOF

# Both daemons stop on SIGTERM with status 0 (a sanitizer build reports
# leaks and errors through it).
for i in "${!pids[@]}"; do
	kill "${pids[$i]}"
	wait "${pids[$i]}"
	rc=$?
	if [ $rc = 0 ]; then
		ok "daemon $((i + 1)) exits cleanly"
	else
		notok "daemon $((i + 1)) exits cleanly (status $rc)"
		note <"$([ $i = 0 ] && echo "$T/daemon.log" || echo "$T/quota.log")" | grep -v debug
	fi
done
pids=()

echo "1..$n"
echo "# $((n - failed)) passed, $failed failed"
[ $failed = 0 ]
