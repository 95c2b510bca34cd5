#!/bin/sh
# Quick start, part 1: build granted (installing what a fresh Debian 12 lacks)
# and run the demo: two domains share pages through /dev/xen/gntalloc and
# /dev/xen/gntdev, with the broker's embedded default policy.
set -eu
cd "$(dirname "$0")"
. ./scripts/deps.sh
need_packages build
meson setup build >/dev/null 2>&1 || meson setup --reconfigure build >/dev/null
ninja -C build >/dev/null

B=$PWD/build
export GRANTED_SOCKET="${GRANTED_SOCKET:-$(mktemp -d /tmp/granted-demo.XXXXXX)/socket}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "== domain 1 shares two pages with domain 2 (grantctl starts a broker) =="
"$B/cli/grantctl" run --domid 1 -- "$B/examples/demo" writer >"$out" &
writer=$!
for _ in $(seq 100); do [ "$(wc -l <"$out")" -ge 2 ] && break; sleep 0.05; done
head -1 "$out"
refs=$(sed -n 2p "$out")
echo "== domain 2 maps them =="
"$B/cli/grantctl" run --domid 2 -- "$B/examples/demo" reader $refs &
reader=$!
sleep 0.5
echo "== the grant table, while both run =="
"$B/cli/grantctl" grants
echo "== domains =="
"$B/cli/grantctl" domains
wait $reader
wait $writer
sed -n '3,$p' "$out"
