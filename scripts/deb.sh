#!/usr/bin/env bash
# `make deb`: the Debian package of rk8s, built with Debian's own dpkg-deb from the
# files `make install` puts in place (scripts/install.sh into a staging DESTDIR, PREFIX
# /usr, units in /lib/systemd/system), so the package and `make install` cannot
# drift apart. The config files are conffiles (kept on upgrade and remove, removed on
# purge); the maintainer scripts reload systemd, stop the units on remove, reset the
# node (its pods and network) when the package is removed, and delete the data on
# purge. They honour DPKG_ROOT (dpkg --root with --force-script-chrootless).
#
#   scripts/deb.sh [OUT]     (default: target/debian; BUILD as for install.sh;
#                             COMPRESSION: dpkg-deb's -Z, default xz)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/debian}
BUILD=${BUILD:-target/release}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

DESTDIR=$stage PREFIX=/usr UNITDIR=/lib/systemd/system BUILD=$BUILD scripts/install.sh install >/dev/null
# dpkg keeps the list of the package's files: install.sh's own is not shipped.
rm -f "$stage/usr/lib/rk8s/installed-files"
find "$stage" -type d -empty -delete

mkdir -p "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: rk8s
Version: $version
Architecture: $arch
Maintainer: rk8s developers <rk8s@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: libc6, libseccomp2, iproute2, nftables
Recommends: kubectl
Section: admin
Priority: optional
Homepage: https://github.com/rk8s-dev/rk8s
Description: lightweight Kubernetes-compatible container orchestrator
 rk8s-server is the control plane: an embedded Raft store (no etcd), a
 Kubernetes-compatible HTTPS API, the scheduler and the controllers.
 rk8s-node runs pods as OCI containers through youki's libcontainer, with an
 overlay network, Services and DNS. rk8sctl is the command-line client.
CONTROL
printf '/etc/rk8s/server.yaml\n/etc/rk8s/node.yaml\n' >"$stage/DEBIAN/conffiles"

cat >"$stage/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  echo "rk8s: start the control plane with 'systemctl enable --now rk8s-server'; join nodes with the command 'rk8s-server token create' prints"
fi
exit 0
SCRIPT

cat >"$stage/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
# On upgrade the agent is left alone: restarted, it re-adopts its running pods.
if [ "$1" = remove ]; then
  if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl stop rk8s-node.service rk8s-server.service || true
  fi
  # The node's pods, helper and network go with the agent that manages them.
  if [ -z "$DPKG_ROOT" ] && [ -e /var/lib/rk8s/node/identity.json ]; then
    /usr/bin/rk8s-node reset || echo "rk8s: rk8s-node reset failed; continuing" >&2
  fi
fi
exit 0
SCRIPT

cat >"$stage/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rm -rf "$DPKG_ROOT/var/lib/rk8s" "$DPKG_ROOT/run/rk8s"
  rmdir "$DPKG_ROOT/etc/rk8s" 2>/dev/null || true
fi
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
SCRIPT
chmod 755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

mkdir -p "$OUT"
deb="$OUT/rk8s_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${COMPRESSION:-xz}" --build "$stage" "$deb" >/dev/null
echo "deb: built $deb"
