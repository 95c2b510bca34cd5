#!/bin/sh
# Quick start, part 2: build granted and run every test, twice: a normal
# build, then the whole suite again under AddressSanitizer and UBSan.
# Installs what it needs with apt-get (Debian packages only). The last line
# is "N passed, N failed", counting every TAP test case of both runs.
set -u
cd "$(dirname "$0")"
. ./scripts/deps.sh
need_packages test

log=$(mktemp -d /tmp/granted-tests.XXXXXX)
status=0

# Formatting (.clang-format): one TAP line, counted with the rest.
fmt_bad=""
for f in $(git ls-files '*.c' '*.h' 2>/dev/null); do
	clang-format --style=file "$f" | cmp -s - "$f" || fmt_bad="$fmt_bad $f"
done
if [ -n "$fmt_bad" ]; then
	echo "== format: not formatted:$fmt_bad"
	fmt_result="not ok"
else
	fmt_result="ok"
fi

run_suite() { # name builddir [meson options...]
	name=$1 dir=$2
	shift 2
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$log/$name-setup.log" 2>&1 || {
			cat "$log/$name-setup.log"
			status=1
			return
		}
	fi
	if ! ninja -C "$dir" >"$log/$name-build.log" 2>&1; then
		tail -40 "$log/$name-build.log"
		status=1
		return
	fi
	echo "== $name: meson test ($(nproc) cores) =="
	meson test -C "$dir" --print-errorlogs --num-processes 1 -t 2 >"$log/$name-test.log" 2>&1 ||
		status=1
	grep -E "^ *[0-9]+/[0-9]+ " "$log/$name-test.log" || true
	# the failures in full
	grep -B2 -A30 -E "^not ok|FAIL" "$log/$name-test.log" | head -200 || true
}

run_suite plain build
# The sanitizer build: the preloaded shim runs inside uninstrumented
# programs too, so the ASan runtime cannot always come first.
export ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite asan build-asan -Db_sanitize=address,undefined -Db_lundef=false \
	-Dc_args=-fno-sanitize-recover=all -Dbuildtype=debug

count() {
	for d in build build-asan; do
		f=$d/meson-logs/testlog.json
		[ -f "$f" ] && cat "$f"
	done | python3 -c '
import json, sys, re
ok = bad = 0
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    t = json.loads(line)
    out = t.get("stdout") or ""
    cases = re.findall(r"^(ok|not ok) \d+", out, re.M)
    if cases:
        ok += sum(1 for c in cases if c == "ok")
        bad += sum(1 for c in cases if c == "not ok")
        # a program that died before it planned all its cases
        plan = re.search(r"^1\.\.(\d+)", out, re.M)
        if plan and int(plan.group(1)) > len(cases):
            bad += int(plan.group(1)) - len(cases)
    else:
        if t.get("result") == "OK":
            ok += 1
        else:
            bad += 1
print(f"{ok} passed, {bad} failed")
'
}
echo "logs: $log"
summary=$(count | awk -v f="$fmt_result" '{ if (f == "ok") $1++; else $3++; print }')
echo "$summary"
case "$summary" in *" 0 failed") ;; *) status=1 ;; esac
exit $status
