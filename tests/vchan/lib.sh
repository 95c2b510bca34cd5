# Shared by xenstore.sh and vchan.sh (sourced): Debian's packages, a private
# broker per scenario, processes run as domains, transcripts compared.
#
# A scenario is a shell function registered with `scenario NAME`. It drives
# processes with the helpers below; each helper writes what it did and what
# came back into a transcript, and the scenario ends with `expect`, the
# exact transcript wanted (the scenario's work directory is written $W).
#
# Env: GRANTED_BROKER, GRANTED_GRANTCTL, GRANTED_PRELOAD (default: the build
# tree), GRANTED_XU_DIR (where xen-utils-4.17 is unpacked, default
# /tmp/granted-xen-utils), VT_KEEP=1 keeps the work directory, VT_LOG the
# broker's log level (default debug: pyxs_dom0 reads request ids in it).
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BROKER=${GRANTED_BROKER:-$top/build/broker/granted}
GRANTCTL=${GRANTED_GRANTCTL:-$top/build/cli/grantctl}
export GRANTED_PRELOAD=${GRANTED_PRELOAD:-$top/build/shim/libgranted-preload.so}
XU=${GRANTED_XU_DIR:-/tmp/granted-xen-utils}
XUBIN=$XU/usr/lib/xen-4.17/bin
PY=/usr/bin/python3
SCEN_MAX=20 # seconds for one scenario
CMD_MAX=15  # seconds for one command

# How a program runs as a domain. An ASan-built shim in Debian's
# uninstrumented programs needs the ASan runtime first in LD_PRELOAD
# (grantctl keeps what is there first); their own leaks are not ours.
RUN=("$GRANTCTL" run)
asan_rt=$(ldd "$GRANTED_PRELOAD" 2>/dev/null | awk '/libasan/ { print $3 }')
if [ -n "$asan_rt" ]; then
	RUN=(env "LD_PRELOAD=$asan_rt" "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
		"$GRANTCTL" run)
fi

# grantctl run sets XENSTORED_PATH to the broker's xenstore: nothing from
# outside may point elsewhere.
unset XENSTORED_PATH XENSTORED_RUNDIR GRANTED_XENSTORE GRANTED_DOMID GRANTED_CLAIM_FD

work=$(mktemp -d /tmp/granted-vchan.XXXXXX)
cleanup() {
	local p
	for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
	[ -n "${VT_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# ---- Debian's packages -------------------------------------------------------

missing=()

apt_install() {
	[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
	echo "# apt-get install $*"
	{ apt-get install -y --no-install-recommends "$@" ||
		{ apt-get update && apt-get install -y --no-install-recommends "$@"; }
	} >"$work/apt.log" 2>&1 || { tail -5 "$work/apt.log" | sed 's/^/# /'; return 1; }
}

# need_packages PACKAGE...: installs those whose test fails; records the rest.
has_package() {
	case $1 in
	xenstore-utils) command -v xenstore-read >/dev/null ;;
	python3-pyxs) $PY -c 'import pyxs' 2>/dev/null ;;
	libxen-dev) pkg-config --exists xenvchan xenstore 2>/dev/null ;;
	*) dpkg -s "$1" >/dev/null 2>&1 ;;
	esac
}
need_packages() {
	local p want=()
	for p in "$@"; do has_package "$p" || want+=("$p"); done
	[ ${#want[@]} = 0 ] || apt_install "${want[@]}"
	for p in "$@"; do has_package "$p" || missing+=("$p"); done
}

# xen-utils-4.17 is unpacked, not installed (its postinst wants a hypervisor).
need_xen_utils() {
	if [ ! -x "$XUBIN/vchan-socket-proxy" ] || [ ! -x "$XUBIN/test-xenstore" ]; then
		echo "# unpacking xen-utils-4.17 into $XU"
		mkdir -p "$XU/deb"
		(cd "$XU/deb" && rm -f xen-utils-4.17_*.deb &&
			{ apt-get download xen-utils-4.17 >/dev/null 2>&1 ||
				{ [ "$(id -u)" = 0 ] && apt-get update >/dev/null 2>&1 &&
					apt-get download xen-utils-4.17 >/dev/null 2>&1; }; } &&
			dpkg-deb -x xen-utils-4.17_*.deb "$XU") ||
			echo "# could not fetch xen-utils-4.17"
	fi
	[ -x "$XUBIN/vchan-socket-proxy" ] && [ -x "$XUBIN/test-xenstore" ] ||
		missing+=(xen-utils-4.17)
}

check_granted() {
	local f
	for f in "$BROKER" "$GRANTCTL" "$GRANTED_PRELOAD"; do
		[ -e "$f" ] || missing+=("$f (build granted first)")
	done
}

# ---- the harness ---------------------------------------------------------------

sdir=""
out=""
bpid=""
declare -A BG   # name -> pid of a background process
declare -A HELD # domid -> pid of the process that keeps it alive

# What goes into the transcript: the work directory reads $W, and programs
# their names (SHORT: more "path=name" pairs). A program's lines that start
# with "# " vary from run to run: they go to the TAP diagnostics instead.
SHORT=("$XUBIN/=")
shorten() {
	local s=${1//$sdir/\$W} p
	for p in "${SHORT[@]}"; do s=${s//"${p%%=*}"/"${p#*=}"}; done
	printf '%s\n' "$s"
}
note() {
	local s
	for s in "$@"; do shorten "$s"; done >>"$out"
}
note_file() {
	local s
	while IFS= read -r s || [ -n "$s" ]; do
		case $s in
		"# "*) diag+=("${s#\# }") ;;
		*) shorten "$s" >>"$out" ;;
		esac
	done <"$1"
}

start_broker() {
	mkfifo "$sdir/ready"
	local rfd line
	exec {rfd}<>"$sdir/ready"
	"$BROKER" --socket "$sdir/sock" --ready-fd 9 --log-level "${VT_LOG:-debug}" \
		9>"$sdir/ready" 2>"$sdir/broker.log" </dev/null &
	bpid=$!
	if ! read -r -t 10 -u "$rfd" line; then
		exec {rfd}<&-
		return 1
	fi
	exec {rfd}<&-
	export GRANTED_SOCKET=$sdir/sock
}

# x N CMD...: CMD as domain N, in the foreground; its output and a
# non-zero exit status go into the transcript.
x() {
	local d=$1 st
	shift
	note "[$d] $*"
	timeout -k 1 "$CMD_MAX" "${RUN[@]}" --domid "$d" --no-start -- "$@" \
		>"$sdir/x.out" 2>&1 </dev/null
	st=$?
	note_file "$sdir/x.out"
	[ "$st" = 0 ] || note "(exit $st)"
	return "$st"
}

# hold N: a process of domain N that lives until the scenario ends, so
# that N (and /local/domain/N) outlives the processes under test.
hold() {
	local d=$1 fd line
	mkfifo "$sdir/hold$d"
	exec {fd}<>"$sdir/hold$d"
	"${RUN[@]}" --domid "$d" --no-start -- sh -c 'echo up; exec sleep 1000' \
		>&"$fd" 2>&1 </dev/null &
	HELD[$d]=$!
	line=""
	read -r -t 5 -u "$fd" line
	exec {fd}<&-
	if [ "$line" = up ]; then
		note "-- domain $d held by a sleeping process"
	else
		note "-- domain $d could not be held: $line"
	fi
}

release() {
	kill -9 "${HELD[$1]}" 2>/dev/null
	wait "${HELD[$1]}" 2>/dev/null
	unset "HELD[$1]"
	note "-- the process holding domain $1 is gone"
}

# bg NAME N CMD...: CMD as domain N in the background, output to NAME.out,
# stdin from $BG_IN (default /dev/null).
bg() {
	local name=$1 d=$2
	shift 2
	local in=${BG_IN:-/dev/null}
	note "[$d] $* &   ($name${BG_IN:+, stdin $BG_IN})"
	: >"$sdir/$name.out"
	# Not through a function: $! must be the program itself.
	if [ "$d" = - ]; then
		"$@" >"$sdir/$name.out" 2>&1 <"$in" &
	else
		"${RUN[@]}" --domid "$d" --no-start -- "$@" >"$sdir/$name.out" 2>&1 <"$in" &
	fi
	BG[$name]=$!
}

# waitfor NAME REGEX [SECONDS]: until a line of NAME.out is REGEX (grep -E).
waitfor() {
	local name=$1 line=$2 secs=${3:-10} i
	for ((i = 0; i < secs * 100; i++)); do
		grep -qxE -- "$line" "$sdir/$name.out" && return 0
		sleep 0.01
	done
	note "-- $name: no '$line' within $secs s"
	return 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# kill9 NAME: SIGKILL; the time of the kill is kept for noticed().
kill9() {
	kill_ms=$(now_ms)
	kill -9 "${BG[$1]}"
	wait "${BG[$1]}" 2>/dev/null
	unset "BG[$1]"
	note "-- $1: killed with SIGKILL"
}

# noticed NAME LINE: NAME prints LINE within a second of the last kill9.
noticed() {
	local name=$1 line=$2 t
	while :; do
		if grep -qxF -- "$line" "$sdir/$name.out"; then
			t=$(($(now_ms) - kill_ms))
			diag+=("$name noticed the kill after $t ms")
			if [ "$t" -le 1000 ]; then
				note "-- $name noticed within 1 s: $line"
				return 0
			fi
			break
		fi
		[ $(($(now_ms) - kill_ms)) -gt 3000 ] && break
		sleep 0.005
	done
	note "-- $name did NOT print '$line' within 1 s"
	return 1
}

# finish NAME: waits (at most CMD_MAX s) for NAME to exit; its output and a
# non-zero status go into the transcript.
finish() {
	local name=$1 pid=${BG[$1]} st i
	for ((i = 0; i < CMD_MAX * 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	kill -0 "$pid" 2>/dev/null && { kill -9 "$pid"; note "-- $name: killed, still running after $CMD_MAX s"; }
	wait "$pid"
	st=$?
	unset "BG[$name]"
	note "-- $name said:"
	note_file "$sdir/$name.out"
	[ "$st" = 0 ] || note "($name exit $st)"
}

# running NAME: notes whether NAME still runs.
running() {
	if kill -0 "${BG[$1]}" 2>/dev/null; then
		note "-- $1 is running"
	else
		note "-- $1 has exited"
	fi
}

# ---- scenarios -------------------------------------------------------------------

ALL=()
scenario() { ALL+=("$1"); }

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
	local scen=$1 num=$2 name pid d
	sdir=$work/$scen
	mkdir -p "$sdir"
	out=$sdir/transcript
	: >"$out"
	verdict="no expectation"
	diag=()
	BG=()
	HELD=()
	local t0=$SECONDS
	if ! start_broker; then
		echo "not ok $num - $scen # the broker did not start"
		sed 's/^/# /' "$sdir/broker.log"
		return 1
	fi
	"$scen"
	for name in "${!BG[@]}"; do kill -9 "${BG[$name]}" 2>/dev/null; done
	for d in "${!HELD[@]}"; do kill -9 "${HELD[$d]}" 2>/dev/null; done
	for pid in "${BG[@]}" "${HELD[@]}"; do wait "$pid" 2>/dev/null; done
	local bstat=0
	if kill -0 "$bpid" 2>/dev/null; then
		kill -TERM "$bpid"
		wait "$bpid"
		bstat=$?
	else
		wait "$bpid"
		bstat="died ($?)"
	fi
	unset GRANTED_SOCKET
	local took=$((SECONDS - t0)) why=""
	[ "$verdict" = ok ] || why=$verdict
	[ "$bstat" = 0 ] || why="${why:+$why; }broker ended with status $bstat"
	[ "$took" -le "$SCEN_MAX" ] || why="${why:+$why; }took ${took} s"
	if [ -z "$why" ]; then
		echo "ok $num - $scen # ${took} s"
		for d in "${diag[@]}"; do echo "# $d"; done
		return 0
	fi
	echo "not ok $num - $scen # $why"
	for d in "${diag[@]}"; do echo "# $d"; done
	[ -s "$sdir/diff" ] && sed 's/^/# /' "$sdir/diff"
	grep -v ' debug: \| info: ' "$sdir/broker.log" | sed 's/^/# broker: /'
	return 1
}

# run_all [SCENARIO...]: the TAP plan and lines; test 1 is the dependencies.
run_all() {
	local sel=("$@") n=1 bad=0 s
	[ ${#sel[@]} -gt 0 ] || sel=("${ALL[@]}")
	echo "1..$((${#sel[@]} + 1))"
	if [ ${#missing[@]} = 0 ]; then
		echo "ok 1 - dependencies: Debian's packages and granted are there"
	else
		# Not a skip: a suite that cannot run is a failure.
		echo "not ok 1 - dependencies missing: ${missing[*]}"
		bad=1
	fi
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
}
