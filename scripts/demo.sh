#!/usr/bin/env bash
# The README's first command. `make demo` (after setup and a release build) runs
# `scripts/demo.sh up`: a two-node cluster on this machine, narrated, left running;
# `make demo-down` runs `scripts/demo.sh down`, which removes every process,
# namespace, link, rule, mount, cgroup and file `up` made. `up --short` is the
# non-interactive run of the test suite (tests/demo.rs): the same steps, shorter waits.
#
#   host bridge rk8sdemo0 10.77.0.1 ── rk8s-server (API https://10.77.0.1:6443), Prometheus
#     ├─ namespace rk8sdemo-a, 10.77.0.11: rk8s-node a (pods 10.244.0.0/24)
#     └─ namespace rk8sdemo-b, 10.77.0.12: rk8s-node b (pods 10.244.1.0/24)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${RK8S_BIN_DIR:-$ROOT/target/release}
STATE=${RK8S_DEMO_DIR:-/var/lib/rk8s-demo}
KUBECONFIG_FILE=${RK8S_DEMO_KUBECONFIG:-$HOME/.rk8s/config}
BRIDGE=rk8sdemo0
NET=10.77.0
API=https://$NET.1:6443
PROM=127.0.0.1:19090
NODES=(a b)

mode=up
short=0
for arg in "$@"; do
  case $arg in
    up | down) mode=$arg ;;
    --short) short=1 ;;
    *) echo "usage: $0 [up [--short] | down]" >&2; exit 2 ;;
  esac
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
indent() { sed 's/^/   /'; }
ctl() { "$BIN/rk8sctl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
k() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }
wait_until() { # seconds what command...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "demo: timed out waiting for $what" >&2
      return 1
    fi
    sleep 0.5
  done
}
node_args() { # node
  echo --name "$1" --data-dir "$STATE/node-$1/data" --run-dir "$STATE/node-$1/run" \
    --manifests "$STATE/node-$1/manifests" --device-plugin-dir "$STATE/node-$1/device-plugins" \
    --bridge "rk8sdemo$1" --disk-pressure-free-percent 0
}
# A node's settings file (as an installed node reads /etc/rk8s/node.yaml): the same
# settings as node_args, and where it joins.
node_config() { # node token hash
  local f="$STATE/node-$1/node.yaml"
  install -m 600 /dev/null "$f"
  cat >"$f" <<EOF
server: $API
token: $2
ca-cert-hash: $3
name: $1
data-dir: $STATE/node-$1/data
run-dir: $STATE/node-$1/run
manifests: $STATE/node-$1/manifests
device-plugin-dir: $STATE/node-$1/device-plugins
bridge: rk8sdemo$1
disk-pressure-free-percent: 0
stats-interval: 2s
EOF
  echo "$f"
}
# The local mode's state (the Compose app of step 10), apart from the nodes'.
local_env() {
  env RK8S_RUN_DIR="$STATE/local/run" RK8S_DATA_DIR="$STATE/local/data" \
    RK8S_LOCAL_BRIDGE=rk8sdemol0 RK8S_LOCAL_SUBNET=10.205.0.0/24 "$@"
}

down() {
  # The processes `up` started, by the pids it recorded.
  for f in "$STATE"/pids/*; do
    [ -f "$f" ] || continue
    kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$STATE"/pids/*; do
    [ -f "$f" ] || continue
    local pid
    pid=$(cat "$f")
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  # Each node's pods, pod network, Service rules, VXLAN device and container helper,
  # from inside its namespace; then the namespaces and the host bridge.
  for n in "${NODES[@]}"; do
    if ip netns list | grep -qw "rk8sdemo-$n" && [ -d "$STATE/node-$n" ]; then
      # shellcheck disable=SC2046
      nsenter --net="/run/netns/rk8sdemo-$n" "$BIN/rk8s-node" reset $(node_args "$n") >/dev/null 2>&1 || true
    fi
    ip netns delete "rk8sdemo-$n" 2>/dev/null || true
  done
  ip link delete "$BRIDGE" 2>/dev/null || true
  # The Compose app, if `up` stopped in the middle of it.
  if [ -d "$STATE/local/run" ]; then
    local_env "$BIN/rk8sctl" compose -f examples/compose.yaml down -t 1 >/dev/null 2>&1 || true
    local_env "$BIN/rk8sctl" compose -f examples/compose.yaml down -t 1 >/dev/null 2>&1 || true
    local helper=$STATE/local/run/local/helper/helper.pid
    [ -f "$helper" ] && kill "$(cat "$helper")" 2>/dev/null || true
  fi
  ip link delete rk8sdemol0 2>/dev/null || true
  for h in $(nft -a list chain ip rk8s postrouting 2>/dev/null | grep 'comment "net:rk8s' | sed 's/.*handle //'); do
    nft delete rule ip rk8s postrouting handle "$h" 2>/dev/null || true
  done
  nft list chain ip rk8s postrouting 2>/dev/null | grep -q masquerade || nft delete table ip rk8s 2>/dev/null || true
  # The pods' parent cgroups, when no other pod is left in them.
  for dir in /sys/fs/cgroup/*/rk8s; do rmdir "$dir" 2>/dev/null || true; done
  # The kubeconfig `up` wrote, unless something else has replaced it since; the one
  # it set aside comes back.
  if grep -qF "$API" "$KUBECONFIG_FILE" 2>/dev/null; then rm -f "$KUBECONFIG_FILE"; fi
  if [ -f "$KUBECONFIG_FILE.before-demo" ] && [ ! -e "$KUBECONFIG_FILE" ]; then
    mv "$KUBECONFIG_FILE.before-demo" "$KUBECONFIG_FILE"
  fi
  rm -rf "$STATE"
}

if [ "$mode" = down ]; then
  down
  echo "rk8s demo: everything it started is stopped and removed"
  exit 0
fi

# A cluster from an earlier run goes first: running `make demo` twice works.
[ -d "$STATE" ] && down
finished=0
on_exit() {
  [ $finished = 1 ] && return
  for log in "$STATE"/*.log; do
    [ -f "$log" ] || continue
    echo "--- last lines of $log" >&2
    tail -n 15 "$log" >&2
  done
  if [ -f "$KUBECONFIG_FILE" ]; then
    k get pods -o wide >&2 2>/dev/null || true
    k get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 15 >&2 || true
  fi
  rm -rf /tmp/rk8s-demo-logs && mkdir -p /tmp/rk8s-demo-logs
  cp "$STATE"/*.log /tmp/rk8s-demo-logs/ 2>/dev/null || true
  echo "demo: the logs are kept in /tmp/rk8s-demo-logs; stopping and removing what it started" >&2
  down
}
trap on_exit EXIT
trap 'exit 130' INT TERM
mkdir -p "$STATE/pids"
start() { # name command... (detached from this terminal; pid recorded)
  local name=$1
  shift
  setsid "$@" >>"$STATE/$name.log" 2>&1 < /dev/null &
  echo $! >"$STATE/pids/$name"
  disown
}

step "1. The control plane: rk8s-server with its embedded Raft store (no etcd)"
images/build.sh target/images >/dev/null
ip link add "$BRIDGE" type bridge
ip addr add "$NET.1/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
mkdir -p "$(dirname "$KUBECONFIG_FILE")"
# A kubeconfig of another cluster is set aside; `down` puts it back.
if [ -f "$KUBECONFIG_FILE" ] && ! grep -qF "$API" "$KUBECONFIG_FILE"; then
  mv "$KUBECONFIG_FILE" "$KUBECONFIG_FILE.before-demo"
  say "(your $KUBECONFIG_FILE is kept as $KUBECONFIG_FILE.before-demo until make demo-down)"
fi
# Settings in a file, as an installed server reads /etc/rk8s/server.yaml.
cat >"$STATE/server.yaml" <<EOF
data-dir: $STATE/server
address: $NET.1
peer-listen: 127.0.0.1:12380
admin-kubeconfig: $KUBECONFIG_FILE
horizontal-pod-autoscaler-sync-period: 5s
EOF
start server env RUST_LOG=warn "$BIN/rk8s-server" --config "$STATE/server.yaml"
wait_until 30 "the API server" ctl cluster-info
ctl cluster-info | indent
say "admin kubeconfig: $KUBECONFIG_FILE"

step "2. Two nodes, each in its own network namespace, join with bootstrap tokens"
for i in 1 2; do
  n=${NODES[$((i - 1))]}
  ns=rk8sdemo-$n
  ip netns add "$ns"
  ip link add "rk8sdemov$n" type veth peer name eth0 netns "$ns"
  ip link set "rk8sdemov$n" master "$BRIDGE" up
  ip -n "$ns" addr add "$NET.1$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  # The busybox image in the node's store, as a registry pull would leave it.
  mkdir -p "$STATE/node-$n/data"
  RK8S_DATA_DIR=$STATE/node-$n/data "$BIN/rk8sctl" image import target/images/busybox \
    --name docker.io/library/busybox:1.36 >/dev/null
  join=$("$BIN/rk8s-server" token create --endpoint 127.0.0.1:12380 --data-dir "$STATE/server" --server "$API" --ttl 10m)
  token=$(echo "$join" | sed 's/.*--token \([^ ]*\).*/\1/')
  hash=$(echo "$join" | sed 's/.*--ca-cert-hash \([^ ]*\).*/\1/')
  say "node $n: rk8s-node join $API --token ${token%%.*}.… --ca-cert-hash ${hash:0:20}…"
  # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup
  # filesystems the node's containers need.
  start "node-$n" env RUST_LOG=warn \
    nsenter --net="/run/netns/$ns" "$BIN/rk8s-node" join --config "$(node_config "$n" "$token" "$hash")"
done
ready_nodes() { [ "$(k get nodes --no-headers 2>/dev/null | grep -c ' Ready ')" = 2 ]; }
wait_until 60 "both nodes Ready" ready_nodes
ctl get nodes -o wide | indent

step "3. A web Deployment, its Service and an HPA (examples/)"
ctl apply -f examples/deployment.yaml -f examples/service.yaml -f examples/hpa.yaml | indent
wait_until 90 "the web pods" k rollout status deploy/web --timeout=5s
ctl get pods -o wide | indent
say "pods on both nodes, addresses from each node's podCIDR, one VXLAN between them"

step "4. Through the Service: by ClusterIP, by name, and by NodePort on each node"
both_ready() { [ "$(k get endpoints web -o jsonpath='{.subsets[*].addresses[*].ip}' | wc -w)" = 2 ]; }
wait_until 30 "both pods in the Service's endpoints" both_ready
k get svc,endpoints web | indent
pod=$(k get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
ip=$(k get svc web -o jsonpath='{.spec.clusterIP}')
say "from pod $pod: wget http://web (the Service's name; ClusterIP $ip), six times:"
ctl exec "$pod" -- sh -c 'for i in 1 2 3 4 5 6; do wget -qO- http://web; done' | indent
say "from pod $pod: wget http://web.default.svc.cluster.local"
ctl exec "$pod" -- wget -qO- http://web.default.svc.cluster.local | indent
for i in 1 2; do
  say "from this host: curl http://$NET.1$i:30080 (node ${NODES[$((i - 1))]}'s address)"
  curl -s --max-time 5 "http://$NET.1$i:30080/" | indent
done

step "5. Through the Ingress: two hosts on every node's port 80 (IngressClass rk8s)"
ctl apply -f examples/ingress.yaml | indent
wait_until 90 "the greeter pod" k rollout status deploy/greeter --timeout=5s
addressed() { [ -n "$(k get ingress demo -o jsonpath='{.status.loadBalancer.ingress[*].ip}')" ]; }
wait_until 30 "the Ingress' addresses" addressed
k get ingress demo | indent
answers() { curl -sf --max-time 2 --resolve "$1:80:$2" "http://$1/" >/dev/null; }
wait_until 30 "the Ingress routing greeter.rk8s.test" answers greeter.rk8s.test "$NET.12"
for host in web.rk8s.test greeter.rk8s.test; do
  for i in 1 2; do
    say "curl http://$host/ through node ${NODES[$((i - 1))]} ($NET.1$i:80):"
    curl -s --max-time 5 --resolve "$host:80:$NET.1$i" "http://$host/" | indent
  done
done

step "6. NetworkPolicy: a db that only the api pods reach (examples/network-policy.yaml)"
ctl apply -f examples/network-policy.yaml | indent
wait_until 90 "the policy-demo pods" k -n policy-demo rollout status deploy/db --timeout=5s
pod_running() { [ "$(k -n policy-demo get pod "$1" -o jsonpath='{.status.phase}')" = Running ]; }
for pod in api other; do
  wait_until 60 "pod $pod" pod_running "$pod"
done
k -n policy-demo get networkpolicies | indent
probe() { ctl exec -n policy-demo "$1" -- timeout 3 wget -qO- http://db 2>&1; }
# Blocked means the connect was refused or timed out (wget's own words, or timeout's
# exit status), not any failure (a pod not running yet, an exec error).
refused() {
  local out rc
  out=$(probe other) && return 1
  rc=$?
  case "$rc" in 124 | 143) return 0 ;; esac
  printf '%s' "$out" | grep -qiE 'connection refused|timed out|host is unreachable'
}
wait_until 30 "the other pod refused" refused
say "from pod other (role: other): wget http://db"
say "$(probe other | head -1) (blocked by NetworkPolicy db-deny-all)"
allowed() { probe api; }
wait_until 30 "the api pod allowed" allowed
say "from pod api (role: api): wget http://db"
probe api | indent

step "7. Prometheus scrapes the cluster (rk8sctl prometheus-config)"
mkdir -p "$STATE/prometheus"
ctl prometheus-config --dir "$STATE/prometheus" --scrape-interval 5s >"$STATE/prometheus/prometheus.yml"
start prometheus prometheus --config.file "$STATE/prometheus/prometheus.yml" \
  --storage.tsdb.path "$STATE/prometheus/data" --web.listen-address "$PROM"
# The API server, and each node's kubelet and cAdvisor endpoints (through the API).
targets_up() { curl -s "http://$PROM/api/v1/query?query=sum(up)" | grep -q '"value":\[[0-9.]*,"[5-9]'; }
wait_until 60 "Prometheus' five targets up" targets_up
query() { # PromQL; prints one line per series
  curl -s "http://$PROM/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    labels = ", ".join("%s=%s" % kv for kv in sorted(r["metric"].items()) if kv[0] != "__name__")
    print("   {%s} %s" % (labels, r["value"][1]))'
}
say "up:"
query up
say "kube_deployment_status_replicas_available (the API server's object series):"
query 'kube_deployment_status_replicas_available'
say "Prometheus: http://$PROM (kube_*, container_*, kubelet_* and apiserver_* series)"

hpa_line() {
  local cur des cpu
  cur=$(k get hpa web -o jsonpath='{.status.currentReplicas}' 2>/dev/null)
  des=$(k get hpa web -o jsonpath='{.status.desiredReplicas}' 2>/dev/null)
  cpu=$(k get hpa web -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}' 2>/dev/null)
  printf '   %4ss  replicas %s → %s   cpu %s%% of requests (target 50%%)\n' "$SECONDS" "${cur:-?}" "${des:-?}" "${cpu:-?}"
}
replicas() { k get deploy web -o jsonpath='{.status.readyReplicas}' 2>/dev/null; }
watch_until() { # seconds what test...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    hpa_line
    if [ $SECONDS -ge $deadline ]; then
      echo "demo: timed out waiting for $what" >&2
      return 1
    fi
    sleep 3
  done
  hpa_line
}

step "8. Load on: the HPA scales web up (CPU from the nodes' cgroups, every 2 s)"
ctl apply -f - <<'YAML' | indent
apiVersion: apps/v1
kind: Deployment
metadata: {name: load}
spec:
  replicas: 1
  selector: {matchLabels: {app: load}}
  template:
    metadata: {labels: {app: load}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: load
          image: busybox:1.36
          command: ["sh", "-c", "for i in 1 2 3 4; do (while true; do wget -qO- http://web >/dev/null 2>&1; done) & done; wait"]
YAML
want=4
[ $short = 1 ] && want=3
scaled_up() { [ "$(replicas)" -ge $want ] 2>/dev/null; }
watch_until 240 "the HPA to scale web to $want" scaled_up

step "9. Load off: the HPA scales back down (after its 60 s stabilization window)"
ctl delete deploy load | indent
if [ $short = 1 ]; then
  calmed() { [ "$(k get hpa web -o jsonpath='{.status.currentMetrics[0].resource.current.averageUtilization}')" -lt 50 ] 2>/dev/null; }
  watch_until 120 "CPU to fall below the target" calmed
  say "(--short: not waiting for the window; web goes back to 2 replicas within about 2 minutes)"
else
  scaled_down() { [ "$(replicas)" = 2 ]; }
  watch_until 300 "the HPA to scale web back to 2" scaled_down
fi
k describe hpa web | sed -n '/^Events:/,$p' | indent

step "10. Without a cluster: the same runtime runs a Compose app on this host (rk8sctl compose)"
local_env "$BIN/rk8sctl" image import target/images/busybox --name docker.io/library/busybox:1.36 >/dev/null
local_env "$BIN/rk8sctl" compose -f examples/compose.yaml up -d | indent
local_env "$BIN/rk8sctl" compose -f examples/compose.yaml ps | indent
say "curl http://127.0.0.1:18080 (its published port):"
wait_until 20 "the compose web service" curl -sf http://127.0.0.1:18080/
curl -s http://127.0.0.1:18080/ | indent
local_env "$BIN/rk8sctl" compose -f examples/compose.yaml down -t 1 | indent

finished=1
step "The cluster keeps running"
cat <<TEXT
   rk8sctl get nodes,pods -o wide          (kubeconfig: $KUBECONFIG_FILE)
   kubectl --kubeconfig $KUBECONFIG_FILE get hpa,svc,endpoints
   rk8sctl top nodes; rk8sctl top pods
   rk8sctl logs deploy/web; rk8sctl exec -it POD -- sh
   rk8sctl scale deploy/web --replicas 5; rk8sctl rollout status deploy/web
   Prometheus: http://$PROM   logs: $STATE/*.log

   make demo-down     stops and removes all of it (processes, namespaces, links,
                      nftables rules, mounts, cgroups, files)
   make test          everything CI runs
TEXT
