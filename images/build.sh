#!/usr/bin/env bash
# Builds the OCI image layouts rk8s' tests and demo run, offline, from Debian
# packages: `busybox` (busybox-static with its applets: sh, httpd, nc, …) and, where
# kubectl is installed, `kubectl` (busybox and the static kubectl binary: an
# in-cluster client for the service-account tests). Output: OUT/NAME, OCI image
# layouts with the tag `latest`. Idempotent: an existing layout newer than its inputs
# is kept. (The pause sandbox is built into rk8s-node:
# runtime/pause.c.)
#
#   images/build.sh [OUT]      (default: target/images)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/images}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# image NAME ROOTFS_DIR CONFIG_ARGS...
image() {
  local name=$1 rootfs=$2
  shift 2
  local layout="$OUT/$name"
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:latest"
  umoci unpack --image "$layout:latest" "$work/$name-bundle" >/dev/null
  cp -a "$rootfs/." "$work/$name-bundle/rootfs/"
  umoci repack --image "$layout:latest" "$work/$name-bundle" >/dev/null
  umoci config --image "$layout:latest" --os linux --architecture amd64 "$@"
  umoci gc --layout "$layout"
  echo "images: built $layout"
}

fresh() { # LAYOUT INPUT... : true when the layout exists and is newer than every input
  local layout=$1
  shift
  [ -f "$layout/index.json" ] || return 1
  for input in "$@"; do [ "$input" -nt "$layout/index.json" ] && return 1; done
  return 0
}

busybox_rootfs() { # DIR: busybox, its applets, /etc/passwd and a page to serve
  local root=$1
  mkdir -p "$root"/{bin,etc,tmp,var/www,proc,sys,dev,root}
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
  echo '<h1>rk8s busybox</h1>' >"$root/var/www/index.html"
  chmod 1777 "$root/tmp"
}

if ! fresh "$OUT/busybox" /bin/busybox "$0"; then
  busybox_rootfs "$work/busybox-rootfs"
  image busybox "$work/busybox-rootfs" --config.cmd sh --config.env PATH=/bin --config.workingdir /
fi

kubectl=$(readlink -f "$(command -v kubectl || true)" 2>/dev/null || true)
if [ -x "$kubectl" ] && ! fresh "$OUT/kubectl" /bin/busybox "$kubectl" "$0"; then
  busybox_rootfs "$work/kubectl-rootfs"
  cp "$kubectl" "$work/kubectl-rootfs/bin/kubectl"
  image kubectl "$work/kubectl-rootfs" --config.cmd sh --config.env PATH=/bin --config.workingdir /
fi
