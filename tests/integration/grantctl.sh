#!/bin/bash
# grantctl end to end (TAP): run starts a broker that exits when idle, the
# tables and their JSON, and the plain messages of its errors.
set -u
GRANTCTL=${GRANTED_GRANTCTL:?}
DEMO=${GRANTED_DEMO:?}
dir=$(mktemp -d /tmp/granted-ctl.XXXXXX)
export GRANTED_SOCKET=$dir/socket GRANTED_IDLE_EXIT=1
trap 'pkill -f "granted --idle-exit 1 --ready-fd" 2>/dev/null; rm -rf "$dir"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() { # name expected-status command...
	local name=$1 want=$2
	shift 2
	out=$("$@" 2>&1)
	st=$?
	if [ "$st" = "$want" ]; then ok "$name"; else bad "$name" "status $st, expected $want" "$out"; fi
}
echo "1..11"

check "no broker: tables say so" 1 "$GRANTCTL" domains
case "$out" in "grantctl: no broker listens on $GRANTED_SOCKET") ok "no broker: the message names the socket" ;;
*) bad "no broker: the message names the socket" "$out" ;; esac
check "run --no-start without a broker" 1 "$GRANTCTL" run --domid 1 --no-start -- true
check "bad domid" 2 "$GRANTCTL" run --domid 32752 -- true
check "unknown command" 2 "$GRANTCTL" frobnicate

# run starts a broker; the program gets its exit status
check "run starts a broker, exit status passes through" 3 "$GRANTCTL" run --domid 1 -- sh -c 'exit 3'
[ -S "$GRANTED_SOCKET" ] && ok "the broker listens" || bad "the broker listens"

"$GRANTCTL" run --domid 1 -- "$DEMO" writer >"$dir/w" &
w=$!
for _ in $(seq 100); do [ "$(wc -l <"$dir/w")" -ge 2 ] && break; sleep 0.05; done
"$GRANTCTL" run --domid 2 -- "$DEMO" reader $(sed -n 2p "$dir/w") >"$dir/r" &
r=$!
sleep 0.4
"$GRANTCTL" grants --json >"$dir/g.json" && "$GRANTCTL" domains --json >"$dir/d.json" &&
	"$GRANTCTL" ports --json >"$dir/p.json"
if /usr/bin/python3 - "$dir" <<'PY'; then ok "tables in JSON while two domains share"; else bad "tables in JSON while two domains share" "$(cat "$dir"/*.json)"; fi
import json, sys
d = sys.argv[1]
g = json.load(open(d + "/g.json"))
dom = json.load(open(d + "/d.json"))
json.load(open(d + "/p.json"))
assert [(x["granter"], x["grantee"], x["access"]) for x in g] == [(1, 2, "rw"), (1, 2, "ro")], g
assert g[0]["mapped_by"][0]["domid"] == 2 and g[0]["mapped_by"][0]["access"] == "rw", g
assert g[1]["mapped_by"][0]["access"] == "ro", g
ids = {x["domid"]: x for x in dom}
assert ids[1]["grants"] == 2 and ids[1]["gntalloc_pages"] == 2, dom
assert ids[2]["mappings"] == 2, dom
PY
"$GRANTCTL" grants | grep -q "dom2 (pid" && ok "the text table names who maps" || bad "the text table names who maps" "$("$GRANTCTL" grants)"
wait $r $w
grep -q "hello back from domain 2" "$dir/w" && ok "the demo ran" || bad "the demo ran" "$(cat "$dir/w" "$dir/r")"

# Nothing left: the broker exits by itself about a second after its last client.
for _ in $(seq 60); do [ -S "$GRANTED_SOCKET" ] || break; sleep 0.1; done
[ -S "$GRANTED_SOCKET" ] && bad "the idle broker exits and removes its socket" || ok "the idle broker exits and removes its socket"
exit $((failed > 0))
