#!/bin/bash
# Debian's real xenstore clients against the BROKER's xenstore (TAP): each
# process runs under `grantctl run --domid N` and talks to xenstore as
# domain N. xenstore-utils, test-xenstore (xen-utils-4.17, unpacked) and
# python3-pyxs; relative paths, permissions, watches, and the
# @introduceDomain / @releaseDomain watches as domains come and go.
#
# Usage: xenstore.sh [SCENARIO...]   (default: all; see lib.sh for the env)
. "$(dirname "$0")/lib.sh"

need_packages xenstore-utils python3-pyxs libxenmisc4.17
need_xen_utils
check_granted

# ---- xenstore-utils as domain 0 ----------------------------------------------------

scenario utils_dom0
utils_dom0() {
	x 0 xenstore-write /t/a hello /t/b 'two words'
	x 0 xenstore-read /t/a /t/b
	x 0 xenstore-read /nope
	x 0 xenstore-read domid
	x 0 xenstore-ls -p /
	x 0 xenstore-list /t
	x 0 xenstore-chmod /t/a n1 r2 b3
	x 0 xenstore-ls -p /t
	x 0 xenstore-exists /t/a
	x 0 xenstore-exists /t/zz
	x 0 xenstore-rm /t/b
	x 0 xenstore-list /t
	x 0 xenstore-rm /t/b
	x 0 xenstore write /m/x 1
	x 0 xenstore read /m/x
	x 0 xenstore ls /m
	# The watch fires once when registered, then for each change below it.
	bg w 0 xenstore-watch -n 4 /w
	waitfor w /w
	x 0 xenstore-write /w/a 1
	x 0 xenstore-write /w/a/b 2
	x 0 xenstore-rm /w
	finish w
	expect <<'EOF'
[0] xenstore-write /t/a hello /t/b two words
[0] xenstore-read /t/a /t/b
hello
two words
[0] xenstore-read /nope
xenstore-read: couldn't read path /nope
(exit 1)
[0] xenstore-read domid
0
[0] xenstore-ls -p /
tool = ""  . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 xenstored = ""  . . . . . . . . . . . . . . . . . . . . . .  (n0)
local = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 domain = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
  0 = "" . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
   domid = "0" . . . . . . . . . . . . . . . . . . . . . . .  (n0)
t = "" . . . . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 a = "hello" . . . . . . . . . . . . . . . . . . . . . . . .  (n0)
 b = "two words" . . . . . . . . . . . . . . . . . . . . . .  (n0)
[0] xenstore-list /t
a
b
[0] xenstore-chmod /t/a n1 r2 b3
[0] xenstore-ls -p /t
a = "hello"  . . . . . . . . . . . . . . . . . . . . . . . .  (n1,r2,b3)
b = "two words"  . . . . . . . . . . . . . . . . . . . . . .  (n0)
[0] xenstore-exists /t/a
[0] xenstore-exists /t/zz
(exit 1)
[0] xenstore-rm /t/b
[0] xenstore-list /t
a
[0] xenstore-rm /t/b
[0] xenstore write /m/x 1
[0] xenstore read /m/x
1
[0] xenstore ls /m
x = "1"
[0] xenstore-watch -n 4 /w &   (w)
[0] xenstore-write /w/a 1
[0] xenstore-write /w/a/b 2
[0] xenstore-rm /w
-- w said:
/w
/w/a
/w/a/b
/w
EOF
}

# ---- xenstore-utils as domains 3 and 4 ---------------------------------------------

scenario utils_identity
utils_identity() {
	hold 3
	hold 4
	x 3 xenstore-read domid
	x 3 xenstore-write data/x hello
	x 3 xenstore-read data/x
	x 3 xenstore-ls -p /local/domain/3
	x 3 xenstore-list data
	x 0 xenstore-read /local/domain/3/data/x
	# Another domain's nodes and the rest of the tree are refused.
	x 3 xenstore-read /local/domain/4/domid
	x 3 xenstore-write /local/domain/4/data/y 1
	x 3 xenstore-list /local/domain/4
	x 3 xenstore-rm /local/domain/4/data
	x 3 xenstore-exists /local/domain/4/domid
	x 3 xenstore-ls /
	x 3 xenstore-write /x 1
	x 3 xenstore-write domid 5
	x 4 xenstore-read /local/domain/3/data/x
	# The owner grants, may not give away; domain 0 may.
	x 3 xenstore-chmod data/x n3 r4
	x 4 xenstore-read /local/domain/3/data/x
	x 4 xenstore-write /local/domain/3/data/x mine
	x 3 xenstore-chmod data/x n4
	x 0 xenstore-chmod /local/domain/3/data/x n4
	x 4 xenstore-write /local/domain/3/data/x mine
	x 3 xenstore-read data/x
	x 0 xenstore-ls -p /local/domain/3/data
	expect <<'EOF'
-- domain 3 held by a sleeping process
-- domain 4 held by a sleeping process
[3] xenstore-read domid
3
[3] xenstore-write data/x hello
[3] xenstore-read data/x
hello
[3] xenstore-ls -p /local/domain/3
domid = "3"  . . . . . . . . . . . . . . . . . . . . . . . .  (n0,r3)
control = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n0,r3)
data = ""  . . . . . . . . . . . . . . . . . . . . . . . . .  (n3)
 x = "hello" . . . . . . . . . . . . . . . . . . . . . . . .  (n3)
device = ""  . . . . . . . . . . . . . . . . . . . . . . . .  (n3)
drivers = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n3)
feature = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n3)
attr = ""  . . . . . . . . . . . . . . . . . . . . . . . . .  (n3)
error = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n3)
[3] xenstore-list data
x
[0] xenstore-read /local/domain/3/data/x
hello
[3] xenstore-read /local/domain/4/domid
xenstore-read: couldn't read path /local/domain/4/domid
(exit 1)
[3] xenstore-write /local/domain/4/data/y 1
xenstore-write: could not write path /local/domain/4/data/y
(exit 1)
[3] xenstore-list /local/domain/4
xenstore-list: could not list path /local/domain/4
(exit 1)
[3] xenstore-rm /local/domain/4/data
xenstore-rm: could not remove path /local/domain/4/data
(exit 1)
[3] xenstore-exists /local/domain/4/domid
(exit 1)
[3] xenstore-ls /
xenstore-ls: xs_directory (/): Permission denied
(exit 1)
[3] xenstore-write /x 1
xenstore-write: could not write path /x
(exit 1)
[3] xenstore-write domid 5
xenstore-write: could not write path domid
(exit 1)
[4] xenstore-read /local/domain/3/data/x
xenstore-read: couldn't read path /local/domain/3/data/x
(exit 1)
[3] xenstore-chmod data/x n3 r4
[4] xenstore-read /local/domain/3/data/x
hello
[4] xenstore-write /local/domain/3/data/x mine
xenstore-write: could not write path /local/domain/3/data/x
(exit 1)
[3] xenstore-chmod data/x n4
xenstore-chmod: Error occurred setting permissions on 'data/x': Operation not permitted
(exit 1)
[0] xenstore-chmod /local/domain/3/data/x n4
[4] xenstore-write /local/domain/3/data/x mine
[3] xenstore-read data/x
xenstore-read: couldn't read path data/x
(exit 1)
[0] xenstore-ls -p /local/domain/3/data
x = "mine" . . . . . . . . . . . . . . . . . . . . . . . . .  (n4)
EOF
}

# A domain's watches: relative paths as given, events only for what it may read.
scenario watch_identity
watch_identity() {
	hold 3
	hold 4
	bg w3 3 xenstore-watch -n 3 data
	waitfor w3 data
	bg w4 3 xenstore-watch -n 2 /local/domain/4/data
	waitfor w4 /local/domain/4/data
	x 0 xenstore-write /local/domain/3/data/a 1
	x 3 xenstore-write data/b 2
	finish w3
	x 0 xenstore-write /local/domain/4/data/secret 1
	x 4 xenstore-write data/also-secret 1
	running w4
	x 0 xenstore-chmod /local/domain/4/data/secret n4 r3
	finish w4
	expect <<'EOF'
-- domain 3 held by a sleeping process
-- domain 4 held by a sleeping process
[3] xenstore-watch -n 3 data &   (w3)
[3] xenstore-watch -n 2 /local/domain/4/data &   (w4)
[0] xenstore-write /local/domain/3/data/a 1
[3] xenstore-write data/b 2
-- w3 said:
data
data/a
data/b
[0] xenstore-write /local/domain/4/data/secret 1
[4] xenstore-write data/also-secret 1
-- w4 is running
[0] xenstore-chmod /local/domain/4/data/secret n4 r3
-- w4 said:
/local/domain/4/data
/local/domain/4/data/secret
EOF
}

# ---- domains appear and go with their processes -------------------------------------

scenario domains
domains() {
	bg wi 0 xenstore-watch -n 2 @introduceDomain
	waitfor wi @introduceDomain
	hold 5
	finish wi
	x 0 xenstore-ls -p /local/domain/5
	# A second process of domain 5 introduces nothing.
	bg wi 0 xenstore-watch -n 2 @introduceDomain
	waitfor wi @introduceDomain
	x 5 xenstore-read domid
	sleep 0.3
	running wi
	hold 6
	finish wi
	# Nor does its exit release domain 5: the last process's does.
	bg wr 0 xenstore-watch -n 2 @releaseDomain
	waitfor wr @releaseDomain
	x 5 xenstore-write data/x 1
	x 0 xenstore-write /t/owned 1
	x 0 xenstore-chmod /t/owned n5
	sleep 0.3
	running wr
	release 5
	finish wr
	x 0 xenstore-exists /local/domain/5
	x 0 xenstore-exists /t/owned
	x 0 xenstore-exists /t
	x 0 xenstore-read /local/domain/6/domid
	expect <<'EOF'
[0] xenstore-watch -n 2 @introduceDomain &   (wi)
-- domain 5 held by a sleeping process
-- wi said:
@introduceDomain
@introduceDomain
[0] xenstore-ls -p /local/domain/5
domid = "5"  . . . . . . . . . . . . . . . . . . . . . . . .  (n0,r5)
control = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n0,r5)
data = ""  . . . . . . . . . . . . . . . . . . . . . . . . .  (n5)
device = ""  . . . . . . . . . . . . . . . . . . . . . . . .  (n5)
drivers = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n5)
feature = "" . . . . . . . . . . . . . . . . . . . . . . . .  (n5)
attr = ""  . . . . . . . . . . . . . . . . . . . . . . . . .  (n5)
error = "" . . . . . . . . . . . . . . . . . . . . . . . . .  (n5)
[0] xenstore-watch -n 2 @introduceDomain &   (wi)
[5] xenstore-read domid
5
-- wi is running
-- domain 6 held by a sleeping process
-- wi said:
@introduceDomain
@introduceDomain
[0] xenstore-watch -n 2 @releaseDomain &   (wr)
[5] xenstore-write data/x 1
[0] xenstore-write /t/owned 1
[0] xenstore-chmod /t/owned n5
-- wr is running
-- the process holding domain 5 is gone
-- wr said:
@releaseDomain
@releaseDomain
[0] xenstore-exists /local/domain/5
(exit 1)
[0] xenstore-exists /t/owned
(exit 1)
[0] xenstore-exists /t
[0] xenstore-read /local/domain/6/domid
6
EOF
}

# ---- test-xenstore ---------------------------------------------------------------------

# tx ARGS...: test-xenstore as domain 0; its timings vary, so the transcript
# keeps the count of tests and failures.
tx() {
	note "[0] test-xenstore $*"
	timeout -k 1 "$CMD_MAX" "${RUN[@]}" --domid 0 --no-start -- "$XUBIN/test-xenstore" "$@" \
		>"$sdir/tx.out" 2>&1 </dev/null
	local st=$?
	note "$(grep -c ' ns' "$sdir/tx.out") tests timed, $(grep -ci 'fail' "$sdir/tx.out") failed"
	[ "$st" = 0 ] || note "(exit $st)"
	diag+=("test-xenstore $*: $(tr '\n' ' ' <"$sdir/tx.out")")
}

scenario test_xenstore
test_xenstore() {
	tx
	tx -i 20
	x 0 xenstore-exists /local/domain/0/xenstore-test
	expect <<'EOF'
[0] test-xenstore 
12 tests timed, 0 failed
[0] test-xenstore -i 20
12 tests timed, 0 failed
[0] xenstore-exists /local/domain/0/xenstore-test
(exit 1)
EOF
}

# ---- python3-pyxs ----------------------------------------------------------------------

scenario pyxs_dom0
pyxs_dom0() {
	hold 1
	cat >"$sdir/pyxs_test.py" <<'PYEOF'
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
	x 0 $PY "$sdir/pyxs_test.py"
	# The broker saw pyxs's own request ids (libxenstore always sends 0).
	if grep -q 'domain 0: MKDIR req [1-9][0-9]* tx 0 "/py/dir"' "$sdir/broker.log" &&
		grep -q 'domain 0: TRANSACTION_END req [1-9][0-9]* tx [1-9]' "$sdir/broker.log"; then
		note "-- pyxs's request ids were > 0"
	else
		note "-- pyxs's request ids were NOT > 0"
	fi
	expect <<'EOF'
-- domain 1 held by a sleeping process
[0] /usr/bin/python3 $W/pyxs_test.py
b'1' [b'a', b'dir'] False [b'n0']
[b'n0', b'r5'] b'/local/domain/7' True
Event(path=b'/py', token=b'tok')
Event(path=b'/py/b', token=b'tok')
b'3' b'absent'
True Event(path=b'/py/c', token=b'tok')
False False Event(path=b'/py/a', token=b'tok')
Event(path=b'/py', token=b'tok')
-- pyxs's request ids were > 0
EOF
}

scenario pyxs_identity
pyxs_identity() {
	hold 4
	cat >"$sdir/pyxs_dom.py" <<'PYEOF'
import os
from pyxs import Client, PyXSError

path = os.environ["XENSTORED_PATH"]
with Client(unix_socket_path=path) as c:
    print(c.read(b"domid"), c.get_domain_path(3))
    c.write(b"data/p", b"v")
    print(c.read(b"/local/domain/3/data/p"), c.get_perms(b"data/p"))
    for p in (b"/local/domain/4/domid", b"/tool/xenstored"):
        try:
            c.read(p)
        except PyXSError as e:
            print(p, e.args[0], os.strerror(e.args[0]))
    m = c.monitor()
    m.watch(b"data", b"rel")
    events = m.wait()
    print(next(events))
    c.write(b"data/q", b"w")
    print(next(events))
PYEOF
	x 3 $PY "$sdir/pyxs_dom.py"
	expect <<'EOF'
-- domain 4 held by a sleeping process
[3] /usr/bin/python3 $W/pyxs_dom.py
b'3' b'/local/domain/3'
b'v' [b'n3']
b'/local/domain/4/domid' 13 Permission denied
b'/tool/xenstored' 13 Permission denied
Event(path=b'data', token=b'rel')
Event(path=b'data/q', token=b'rel')
EOF
}

run_all "$@"
