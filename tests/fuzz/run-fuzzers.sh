#!/bin/sh
# Fuzzes every target with libFuzzer for a while:
#
#   tests/fuzz/run-fuzzers.sh [seconds-per-target] [target...]
#
# Configures (once) a clang build with -fsanitize=fuzzer-no-link and
# ASan+UBSan in $FUZZ_BUILD_DIR (default: build-fuzz at the top of the
# source tree), builds the fuzz targets, and runs each for the given time
# (default 60 s) from its checked-in seeds. New inputs go to a scratch
# corpus, never to tests/fuzz/corpus; seeds named bug-* (known bugs, which
# the replay tests already run) are left out. Prints the executions of each
# target; fails if any target found a crash, a leak or a timeout, and says
# where the input is (copy it into tests/fuzz/corpus/<target>/ to keep it).
# FUZZ_KEEP_GOING=1 carries on after a crash (libFuzzer's -fork=1
# -ignore_crashes=1), to find more than the first bug.
# Exits 77 (skipped) without clang and its libFuzzer runtime.
set -u
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-message connection ioctl}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$src/build-fuzz}
work=${FUZZ_WORK_DIR:-$(mktemp -d /tmp/granted-fuzz.XXXXXX)}

cc=${FUZZ_CC:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "SKIP: $cc not found (apt-get install clang libclang-rt-14-dev)"
	exit 77
fi
probe=$work/probe
mkdir -p "$work"
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' >"$probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >/dev/null 2>&1; then
	echo "SKIP: $cc cannot link -fsanitize=fuzzer (apt-get install libclang-rt-14-dev)"
	exit 77
fi

if [ ! -f "$build/build.ninja" ]; then
	echo "== configuring $build"
	# werror off: clang's warnings in code outside tests/fuzz are not
	# this build's business. b_lundef off: the sanitizer runtimes.
	CC=$cc meson setup "$build" "$src" -Dbuildtype=debugoptimized -Dwerror=false \
		-Db_sanitize=address,undefined -Db_lundef=false \
		"-Dc_args=-fsanitize=fuzzer-no-link -fno-sanitize-recover=all -gline-tables-only" \
		>"$work/setup.log" 2>&1 || {
		cat "$work/setup.log"
		exit 1
	}
fi
ninja_targets=""
for t in $targets; do
	ninja_targets="$ninja_targets tests/fuzz/fuzz-$t"
done
echo "== building$ninja_targets"
# shellcheck disable=SC2086
if ! ninja -C "$build" $ninja_targets >"$work/build.log" 2>&1; then
	tail -40 "$work/build.log"
	exit 1
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for t in $targets; do
	corpus=$work/$t/corpus
	artifacts=$work/$t/artifacts
	mkdir -p "$corpus" "$artifacts"
	for f in "$src/tests/fuzz/corpus/$t"/*; do
		case ${f##*/} in
		bug-*) ;;
		*) [ -f "$f" ] && cp "$f" "$corpus/" ;;
		esac
	done
	seeds=$(find "$corpus" -type f | wc -l)
	log=$work/$t/log
	keep=""
	[ -n "${FUZZ_KEEP_GOING:-}" ] && keep="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1"
	bin=$build/tests/fuzz/fuzz-$t
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
		-max_len=8192 -print_final_stats=1 -artifact_prefix="$artifacts/" $keep \
		"$corpus" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	if [ -z "$execs" ]; then
		execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
	fi
	units=$(($(find "$corpus" -type f | wc -l) - seeds))
	found=$(find "$artifacts" -type f | head -1)
	nfound=$(find "$artifacts" -type f | wc -l)
	if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
		status=1
		echo "FAIL $t: exit $rc after ${execs:-?} executions; $nfound inputs saved," \
			"the first: ${found:-none}"
		# Each saved input replayed: the first report in full, then every
		# distinct one counted (fork mode keeps the jobs' logs to itself).
		pat="fuzz check failed|runtime error|ERROR: [A-Za-z]+Sanitizer|ERROR: libFuzzer"
		[ -n "$found" ] && "$bin" "$found" 2>&1 | grep -E -m1 -A30 "$pat"
		echo "-- distinct failures (of at most 50 inputs):"
		find "$artifacts" -type f | head -50 | while read -r a; do
			"$bin" "$a" 2>&1 | grep -E -m1 "$pat" | sed -E 's/==[0-9]+==//;
				s/[0-9]+ fds before, [0-9]+ after/N fds before, M after/'
		done | sort | uniq -c | sort -rn
		echo "(full log: $log)"
	else
		echo "ok $t: ${execs:-?} executions in ${secs} s, $units new corpus inputs"
	fi
done
[ "$status" -eq 0 ] && [ -z "${FUZZ_WORK_DIR:-}" ] && rm -rf "$work"
exit $status
