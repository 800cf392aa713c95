#!/usr/bin/env bash
# Installs what building and testing rk8s needs on Debian, as root. Idempotent: it
# only calls apt-get or cargo for what is missing, so a second run is quick and works
# without network once everything is there.
#
#   scripts/setup.sh          everything `make test` needs
#   scripts/setup.sh --demo   only what `make demo` needs (no cargo tools, no registry,
#                             no Python client)
set -euo pipefail
DEMO_ONLY=0
[ "${1:-}" = --demo ] && DEMO_ONLY=1

# Debian packages. Later parts of rk8s add theirs here.
PACKAGES=(
  build-essential # cc for crates with C parts, and libFuzzer for the fuzz target
  pkg-config
  kubectl         # the API-compatibility tests drive rk8s-server with it
  libseccomp-dev  # libcontainer's seccomp filters
  busybox-static  # contents of the test and demo images (images/build.sh)
  umoci           # builds those OCI image layouts offline
  skopeo          # pushes them to a registry in the pull tests
  docker-registry # the local OCI registry of the pull tests
  zstd            # compresses the zstd layer of the pull tests' layered image
  apache2-utils   # htpasswd: the login of the registry in the pull secret test
  runc            # the external OCI runtime backend (RuntimeClass handler "runc")
  iproute2        # ip: bridges, veth pairs, network namespaces
  nftables        # nft: masquerading and host ports
  prometheus      # the real Prometheus of the metrics tests and the demo
  curl            # the demo's requests from the host (NodePort, Prometheus' API)
  python3         # the demo prints Prometheus' answer
  python3-venv    # the Python Kubernetes client's environment (below)
  systemd         # systemd-analyze verify checks the units make install writes
)

# What the demo uses of them: building, images, networking, Prometheus, its requests.
DEMO_PACKAGES=(build-essential pkg-config kubectl libseccomp-dev busybox-static umoci
  iproute2 nftables prometheus curl python3)
[ "$DEMO_ONLY" = 1 ] && PACKAGES=("${DEMO_PACKAGES[@]}")

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo is missing: install Rust ${RUST_VERSION:-1.89 or newer}"; exit 1; }
[ "$DEMO_ONLY" = 1 ] && exit 0

# Cargo tools, pinned so that every machine runs the same checks.
install_tool() { # name version binary
  if ! command -v "$3" >/dev/null 2>&1 || ! "$3" --version 2>/dev/null | grep -q "$2"; then
    echo "setup: installing $1 $2"
    cargo install --locked --quiet "$1" --version "$2"
  fi
}
install_tool cargo-fuzz 0.13.2 cargo-fuzz
install_tool cargo-deny 0.20.2 cargo-deny

# The official Python Kubernetes client (PyPI), which tests/python_client.rs drives
# against rk8s, in an environment of its own under target/.
PYTHON_CLIENT=kubernetes==33.1.0
PYTHON_ENV="$(cd "$(dirname "$0")/.." && pwd)/target/python"
if ! "$PYTHON_ENV/bin/python" -c "import kubernetes" 2>/dev/null; then
  echo "setup: installing the Python client ($PYTHON_CLIENT) into $PYTHON_ENV"
  python3 -m venv "$PYTHON_ENV"
  "$PYTHON_ENV/bin/pip" install --quiet "$PYTHON_CLIENT"
fi

command -v cargo >/dev/null || { echo "setup: cargo is missing: install Rust ${RUST_VERSION:-1.89 or newer}"; exit 1; }
