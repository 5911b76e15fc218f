#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only those missing. Usage:
#   scripts/deps.sh build|test|cross|bench|coverage
# As root it runs apt-get; otherwise through sudo when there is one, else it lists what to
# install and fails.
set -euo pipefail

want=(cmake make gcc pkg-config liburing-dev systemtap-sdt-dev libssl-dev)
case "${1:-build}" in
  build) ;;
  test)  want+=(libcriterion-dev valgrind python3 binutils g++ clang gdb redis-tools redis-server
                 chromium curl openssl python3-redis python3-hiredis wget apache2-utils
                 nghttp2-client wrk nginx-light iproute2) ;;
  cross) want+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user qemu-user-binfmt gdb-multiarch) ;;
  coverage) want+=(libcriterion-dev gcovr) ;;
  bench) want+=(g++ golang-go libboost-context-dev libboost-fiber-dev librust-tokio-dev cargo util-linux
                 libuv1-dev fio python3-matplotlib wrk nginx-light h2o) ;;
  *) echo "deps.sh: unknown set '$1'" >&2; exit 2 ;;
esac

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${want[@]}"; do
  installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

# cargo is satisfied by a rustup toolchain as well.
if [[ " ${missing[*]} " == *" cargo "* ]] && command -v cargo >/dev/null; then
  missing=("${missing[@]/cargo/}")
fi
missing=($(printf '%s\n' "${missing[@]}" | sed '/^$/d'))
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "deps.sh: missing packages: ${missing[*]} (run as root or install them)" >&2; exit 1
fi
if [[ " ${missing[*]} " == *":arm64"* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
