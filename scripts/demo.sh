#!/usr/bin/env bash
# The README's first command (`make demo`, after setup and a release build): shows
# what rk8s does today. It grows into a running cluster as the control plane and node
# agent land; see the status table in the README.
set -euo pipefail
cd "$(dirname "$0")/.."

RK8SCTL=$PWD/target/release/rk8sctl
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

step "1. Every example manifest decodes, defaults and validates (rk8sctl validate -f examples/)"
"$RK8SCTL" validate -f examples/

step "2. What the API server would store: the web Deployment with Kubernetes' defaults filled in"
"$RK8SCTL" validate -f examples/deployment.yaml -o yaml | sed -n '1,40p'
echo "   ... (rk8sctl validate -f examples/deployment.yaml -o yaml for all of it)"

step "3. A manifest with mistakes: every one is reported with file:line:column and field"
cat > "$tmp/broken.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: Web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: web
          image: busybox:1.36
          resources:
            limits: {cpu: 5OOm, memory: 64Mi}
            requests: {memory: 128Mi}
        - name: web
          image: busybox:1.36
          ports: [{containerPort: 80800}]
YAML
cat -n "$tmp/broken.yaml" | sed 's/^/   /'
echo
if (cd "$tmp" && "$RK8SCTL" validate -f broken.yaml); then
  echo "demo: the broken manifest was accepted, which is a bug" >&2
  exit 1
fi

step "Next"
cat <<TEXT
   rk8sctl validate -f FILE|DIR|-      check manifests, Compose files and single-container files
   rk8sctl validate -f FILE -o yaml    print objects as the API server would store them
   make test                           run everything CI runs

   The cluster itself (rk8s-server with its Raft store, rk8s-node, and the
   apply/get/scale commands) is being built next: see "Status" in README.md.
TEXT
