#!/usr/bin/env bash
# Unpacks Criterion for arm64, with the runtime libraries it needs, into a private sysroot
# (DIR, default build/arm64-sysroot) for the aarch64 cross build and qemu-aarch64. Nothing is
# installed system-wide: libcriterion-dev cannot be installed for two architectures at once.
set -euo pipefail
dir=$(realpath -m "${1:-build/arm64-sysroot}")
[ -e "$dir/.done" ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -qq
elif ! apt-cache show libcriterion3:arm64 >/dev/null 2>&1; then
  $SUDO apt-get update -qq
fi
mkdir -p "$dir/debs"
# Every arm64 package libcriterion3 needs at run time, libc6 included (qemu -L finds the
# loader there), plus the -dev package for the link-time symlink.
pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
         --no-replaces --no-enhances --no-pre-depends libcriterion3:arm64 |
       grep -E '^[a-z0-9][^ ]*:arm64$' | sort -u)
pkgs="$pkgs libcriterion-dev:arm64"
(cd "$dir/debs" && apt-get download $pkgs >/dev/null 2>&1 ||
   { for p in $pkgs; do apt-get download "$p" >/dev/null 2>&1 || true; done; })
for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir"; done
rm -rf "$dir/debs"
touch "$dir/.done"
echo "arm64 sysroot ready in $dir"
