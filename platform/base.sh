#!/usr/bin/env bash
# Build adpipe/debian:bookworm, a Debian 12 minbase root file system made with debootstrap
# and imported with `docker import`: the base of every local stand-in image when no
# container registry answers. Skips the work when the image exists.
set -euo pipefail
image="${DEBIAN_BASE_IMAGE:-adpipe/debian:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
state="${STATE_DIR:-.state}"

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
command -v debootstrap >/dev/null || { echo "base: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
  echo "base: no registry answers, and building $image with debootstrap needs root: run \`sudo bash platform/base.sh\` once, then make again as yourself" >&2
  exit 1
fi
rootfs="$(mktemp -d "${TMPDIR:-/tmp}/adpipe-rootfs.XXXXXX")"
trap 'rm -rf "$rootfs"' EXIT
echo "base: debootstrap bookworm from $mirror (about 20 s)"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$state/debootstrap.log" 2>&1 \
  || { echo "base: debootstrap failed; see $state/debootstrap.log" >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$image" >/dev/null
echo "base: imported $image"
