#!/usr/bin/env bash
# The README's first command (`make demo`, after setup and a release build): shows
# what rk8s does today. It grows into a running cluster as the control plane and node
# agent land; see the status table in the README.
set -euo pipefail
cd "$(dirname "$0")/.."

RK8SCTL=$PWD/target/release/rk8sctl
SERVER=$PWD/target/release/rk8s-server
NODE=$PWD/target/release/rk8s-node
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

tmp=$(mktemp -d)
pids=()
# Local mode (step 6) state, network and helper: all of it goes at the end.
export RK8S_RUN_DIR=$tmp/run RK8S_DATA_DIR=$tmp/data RK8S_LOCAL_BRIDGE=rk8sdemo0 \
  RK8S_LOCAL_SUBNET=10.205.0.0/24 RK8S_PAUSE_IMAGE=$PWD/target/images/pause
local_cleanup() {
  [ -d "$tmp/run" ] || return 0
  "$RK8SCTL" compose -f examples/compose.yaml down -t 1 >/dev/null 2>&1 || true
  "$RK8SCTL" container rm -f single-container-test >/dev/null 2>&1 || true
  [ -f "$tmp/run/local/helper/helper.pid" ] && kill "$(cat "$tmp/run/local/helper/helper.pid")" 2>/dev/null || true
  ip link delete rk8sdemo0 2>/dev/null || true
  for h in $(nft -a list chain ip rk8s postrouting 2>/dev/null | grep 'comment "net:rk8s"' | sed 's/.*handle //'); do
    nft delete rule ip rk8s postrouting handle "$h" || true
  done
  nft list chain ip rk8s postrouting 2>/dev/null | grep -q masquerade || nft delete table ip rk8s 2>/dev/null || true
  # The parent of the pods' cgroups, when no other pod is left in it.
  for dir in /sys/fs/cgroup/*/rk8s; do rmdir "$dir" 2>/dev/null || true; done
}
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  local_cleanup
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

step "4. The store that replaces etcd: three rk8s-server members, then the leader is killed"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
eps=("127.0.0.1:$(free_port)" "127.0.0.1:$(free_port)" "127.0.0.1:$(free_port)")
api_ports=("$(free_port)" "$(free_port)" "$(free_port)")
start_member() { # index [join-endpoint]
  local args=(--data-dir "$tmp/member$1" --peer-listen "${eps[$1]}" --port "${api_ports[$1]}"
              --admin-kubeconfig "$tmp/member$1.kubeconfig")
  [ $# -gt 1 ] && args+=(--join "$2")
  RUST_LOG=warn "$SERVER" "${args[@]}" 2>>"$tmp/member$1.log" &
  pids[$1]=$!
}
wait_until() { # seconds command...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "demo: timed out waiting for: $*" >&2; return 1; }
    sleep 0.3
  done
}
voters() { "$SERVER" member status --endpoint "$1" 2>/dev/null | grep -c ' voter ' ; }
has_voters() { [ "$(voters "$1")" = "$2" ]; }
start_member 0
wait_until 20 has_voters "${eps[0]}" 1
start_member 1 "${eps[0]}"
start_member 2 "${eps[0]}"
wait_until 30 has_voters "${eps[0]}" 3
"$SERVER" member status --endpoint "${eps[0]}" | sed 's/^/   /'
leader_id=$("$SERVER" member status --endpoint "${eps[0]}" | awk '/^leader/ {print $2}')
for i in 0 1 2; do
  if "$SERVER" member status --endpoint "${eps[$i]}" | grep -q "^member *$leader_id\$"; then leader=$i; fi
done
echo
echo "   kill -9 the leader (member $leader_id, pid ${pids[$leader]}) ..."
{ kill -9 "${pids[$leader]}"; wait "${pids[$leader]}"; } 2>/dev/null || true
survivor=$(( (leader + 1) % 3 ))
new_leader() { local l; l=$("$SERVER" member status --endpoint "${eps[$survivor]}" | awk '/^leader/ {print $2}'); [ "$l" != none ] && [ "$l" != "$leader_id" ]; }
wait_until 30 new_leader
"$SERVER" member status --endpoint "${eps[$survivor]}" | sed 's/^/   /'
echo "   a new leader was elected by the two survivors; restarting the killed member ..."
start_member "$leader"
knows_leader() { "$SERVER" member status --endpoint "${eps[$leader]}" | grep -q '^leader *[0-9]'; }
wait_until 30 knows_leader
"$SERVER" member status --endpoint "${eps[$leader]}" | sed -n '1,2p' | sed 's/^/   /'

step "5. The Kubernetes API on the store: rk8sctl and kubectl talk to rk8s-server"
ctl() { RK8S_CONFIG="$tmp/member0.kubeconfig" "$RK8SCTL" "$@"; }
wait_until 30 ctl cluster-info
ctl version | sed 's/^/   /'
ctl apply -f examples/deployment.yaml | sed 's/^/   /'
ctl apply -f examples/deployment.yaml | sed 's/^/   /'
ctl scale deploy/web --replicas 3 | sed 's/^/   /'
ctl get deployments,namespaces | sed 's/^/   /'
echo "   kubectl reads the same kubeconfig:"
kubectl --kubeconfig "$tmp/member0.kubeconfig" get deploy web -o wide | sed 's/^/   /'

step "6. Scheduler and controllers on the Raft leader, with three simulated nodes (rk8s-node simulate)"
RK8S_CONFIG="$tmp/member0.kubeconfig" "$NODE" simulate --count 3 --zones 3 --start-latency 300ms \
  >"$tmp/simulate.log" 2>&1 &
pids+=($!)
k() { kubectl --kubeconfig "$tmp/member0.kubeconfig" "$@"; }
wait_until 30 sh -c "kubectl --kubeconfig $tmp/member0.kubeconfig get nodes --no-headers 2>/dev/null | grep -c Ready | grep -qx 3"
k get nodes -L topology.kubernetes.io/zone | sed 's/^/   /'
k rollout status deploy/web --timeout=60s | sed 's/^/   /'
k get pods -o wide | sed 's/^/   /'
echo "   a rolling update to a new image, then back:"
container=$(k get deploy web -o jsonpath='{.spec.template.spec.containers[0].name}')
k set image deploy/web "$container=busybox:1.37" | sed 's/^/   /'
k rollout status deploy/web --timeout=60s | sed 's/^/   /'
k rollout undo deploy/web | sed 's/^/   /'
k rollout status deploy/web --timeout=60s | sed 's/^/   /'
k get rs | sed 's/^/   /'
k describe deploy web | sed -n '/^Events:/,$p' | sed 's/^/   /'
echo "   a pod that fits no node says why:"
ctl apply -f - <<'YAML' | sed 's/^/   /'
apiVersion: v1
kind: Pod
metadata: {name: picky}
spec:
  nodeSelector: {disk: nvme}
  containers: [{name: c, image: busybox}]
YAML
wait_until 30 sh -c "kubectl --kubeconfig $tmp/member0.kubeconfig get events --field-selector involvedObject.name=picky 2>/dev/null | grep -q FailedScheduling"
k get events --field-selector involvedObject.name=picky | sed 's/^/   /'
echo "   deleting the Deployment cascades to its ReplicaSets and pods (garbage collector):"
k delete deploy web | sed 's/^/   /'
wait_until 30 sh -c "[ -z \"\$(kubectl --kubeconfig $tmp/member0.kubeconfig get rs --no-headers 2>/dev/null)\" ]"
k get deploy,rs,pods 2>&1 | sed 's/^/   /'

step "7. Pods as real containers (youki's libcontainer), no control plane needed: rk8sctl compose"
images/build.sh >/dev/null
"$RK8SCTL" image import target/images/busybox --name docker.io/library/busybox:1.36 | sed 's/^/   /'
"$RK8SCTL" compose -f examples/compose.yaml up -d | sed 's/^/   /'
"$RK8SCTL" compose -f examples/compose.yaml ps | sed 's/^/   /'
sleep 1
"$RK8SCTL" compose -f examples/compose.yaml logs | sed 's/^/   /'
"$RK8SCTL" container run examples/container.yaml | sed 's/^/   /'
echo "   rk8sctl container exec single-container-test -- hostname; cat /proc/self/cgroup | grep memory:"
"$RK8SCTL" container exec single-container-test -- hostname | sed 's/^/   /'
"$RK8SCTL" container exec single-container-test -- sh -c 'grep memory /proc/self/cgroup' | sed 's/^/   /'
"$RK8SCTL" compose -f examples/compose.yaml down -t 1 | sed 's/^/   /'
"$RK8SCTL" container rm -f single-container-test | sed 's/^/   /'

step "Next"
cat <<TEXT
   rk8sctl validate -f FILE|DIR|-      check manifests, Compose files and single-container files
   rk8sctl validate -f FILE -o yaml    print objects as the API server would store them
   make test                           run everything CI runs

   rk8s-server                         run a control-plane member: store + API on https://127.0.0.1:6443,
                                       admin kubeconfig in ~/.rk8s/config (kubectl --kubeconfig ~/.rk8s/config)
   rk8s-server --data-dir DIR --peer-listen HOST:PORT [--join HOST:PORT] [--port N]
                                       more members (rk8s-server member status|remove, token create)

   rk8sctl apply|get|describe|scale|delete|edit ...   the cluster commands (kubeconfig: ~/.rk8s/config)
   rk8sctl top nodes|pods; rk8sctl autoscale deploy/NAME --max N --cpu-percent P
                                       usage from real nodes and HPAs (docs/autoscaling.md;
                                       rk8s-server --prometheus-url for PromQL metrics)
   rk8sctl prometheus-config           a Prometheus scrape configuration for the cluster

   rk8sctl container|pod run FILE, ls, state, logs, exec NAME -- CMD, stop, rm
   rk8sctl compose [-f FILE] up -d|ps|logs|down  local containers, pods and Compose apps
   rk8s-node run --manifests DIR                 static pods from a directory

   rk8s-node join https://HOST:6443 --token T --ca-cert-hash H   a real node (rk8s-server token create)
   rk8s-node simulate --count N                  simulated nodes for scheduling experiments

   The network overlay and Services (beyond Endpoints) come next: see "Status" in README.md.
   Everything this demo started has been stopped and removed.
TEXT
