#!/bin/sh
# The broker under valgrind while test programs run against it: each TAP
# program given as an argument runs with GRANTED_BROKER pointing at a
# wrapper that execs valgrind on the real broker, so the harness's private
# broker is the valgrind one. Programs named unit-* hold the broker in
# their own process and run under valgrind themselves. Two TAP lines per
# program: its own tests passed, and valgrind found nothing (no error, no
# definite leak) in any broker it ran.
#
# Arguments: program[:VAR=value] ...  (one environment setting each)
set -u

real=${GRANTED_BROKER:?GRANTED_BROKER is not set}
command -v valgrind >/dev/null 2>&1 || { echo "1..0 # SKIP valgrind is not installed"; exit 0; }

work=$(mktemp -d /tmp/granted-valgrind.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0777 "$work" # brokers of other users write their logs here
vg="valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite"
vg="$vg --show-leak-kinds=definite --track-fds=no --num-callers=30"
cat >"$work/broker" <<EOF
#!/bin/sh
exec $vg --log-file="$work/vg.%p.log" "$real" "\$@"
EOF
chmod +x "$work/broker"

echo "1..$(($# * 2))"
n=0
for arg in "$@"; do
	prog=${arg%%:*}
	setting=
	[ "$arg" != "$prog" ] && setting=${arg#*:}
	name=$(basename "$prog")
	rm -f "$work"/vg.*.log
	start=$(date +%s)
	case $name in
	unit-*)
		env $setting $vg --log-file="$work/vg.%p.log" "$prog" >"$work/out" 2>&1
		;;
	*)
		env $setting GRANTED_BROKER="$work/broker" "$prog" >"$work/out" 2>&1
		;;
	esac
	status=$?
	secs=$(($(date +%s) - start))

	n=$((n + 1))
	if [ $status -eq 0 ] && ! grep -q "^not ok" "$work/out"; then
		echo "ok $n - $name passes against the broker under valgrind ($secs s)"
	else
		echo "not ok $n - $name against the broker under valgrind (status $status, $secs s)"
		sed 's/^/# /' "$work/out" | grep -v "^# ok " | tail -40
	fi

	n=$((n + 1))
	bad=
	logs=0
	for log in "$work"/vg.*.log; do
		[ -f "$log" ] || continue
		logs=$((logs + 1))
		if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
			bad="$bad $log"
		fi
	done
	if grep -q "broker ended with status" "$work/out"; then
		bad="$bad (the broker exited with an error)"
	fi
	if [ $logs -eq 0 ]; then
		echo "not ok $n - $name: no valgrind log (did the broker run under valgrind?)"
	elif [ -z "$bad" ]; then
		echo "ok $n - $name: valgrind found no error and no definite leak ($logs process(es))"
	else
		echo "not ok $n - $name: valgrind found errors"
		for log in $bad; do
			[ -f "$log" ] && sed 's/^/# /' "$log" | grep -v "^# ==[0-9]*== *$" | head -80
		done
		echo "# $bad"
	fi
done
