#!/usr/bin/env bash
# What `make bench` needs beyond scripts/setup.sh: etcd 3.4 to compare against,
# protoc with the well-known protos to build the etcd client, and podman (on runc:
# crun does not work on this cgroup layout) as the runtime benchmark's second peer,
# and nginx as the Ingress benchmark's peer proxy (ingress-nginx is nginx).
# Idempotent. etcd's
# package must not start a daemon here (it would hold ports 2379/2380), so service
# starts are refused while it installs.
set -euo pipefail

PACKAGES=(etcd-server protobuf-compiler libprotobuf-dev runc podman nginx)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup-bench: installing Debian packages: ${missing[*]}"
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  created=1
fi
trap '[ "$created" = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
