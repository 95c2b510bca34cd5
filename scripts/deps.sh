# Installs, with apt-get, the Debian packages a step needs and lacks.
# need_packages build|test

need_packages() {
	pkgs="meson ninja-build gcc pkg-config linux-libc-dev"
	if [ "$1" = test ]; then
		# Xen's own libraries and clients, run unmodified against granted.
		pkgs="$pkgs clang clang-format libclang-rt-14-dev valgrind libxen-dev libxenmisc4.17 xenstore-utils python3-pyxs"
	fi
	missing=""
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "installing:$missing" >&2
		if [ "$(id -u)" = 0 ]; then
			apt-get update -qq >/dev/null
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
		else
			sudo apt-get update -qq >/dev/null
			sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
		fi
	fi
}
