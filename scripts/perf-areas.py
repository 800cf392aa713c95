#!/usr/bin/env python3
"""Where a profiled rk8s process spends its CPU, by thread and by area.

Usage:
  perf record -F 49 --call-graph dwarf,8192 -p PID -o perf.data -- sleep 60
  perf script -i perf.data -F comm,tid,ip,sym > perf.script
  scripts/perf-areas.py perf.script

Each sample is put in the area of the innermost frame (from the leaf outwards) that
names one of the areas below; a sample under a store snapshot counts as the
snapshot's whatever its leaf. Prints the shares by thread and by area, and the most
frequent leaves of the largest areas. docs/benchmarks.md uses it for the 150,000-pod
case.
"""

import collections
import re
import sys

AREAS = [
    ("store: snapshots", r"snapshot_now|write_snapshot|install_snapshot"),
    ("TLS", r"(^|[^A-Za-z_])(rustls|ring|aws_lc_rs|tokio_rustls)::|x25519|sha512"),
    ("store: Raft log, raft-engine", r"raft_engine::|(^|[^A-Za-z_])raft::|raftstore::log"),
    ("store: MVCC and watch hub", r"(^|[^A-Za-z_])rk8s_raftstore::"),
    ("watch serving", r"rk8s_apiserver::watch"),
    ("admission", r"rk8s_apiserver::(admission|limit_ranger|pod_security|resource_quota|priority)"),
    ("authentication and RBAC", r"rk8s_apiserver::(rbac|auth|users|node_restriction)"),
    ("managedFields and apply", r"managed_fields|rk8s_apiserver::apply|rk8s_api::apply"),
    ("patches", r"rk8s_apiserver::patch|rk8s_api::patch"),
    ("scheduler", r"rk8s_scheduler::"),
    ("controllers", r"rk8s_controllers::"),
    ("informers", r"rk8s_informers::"),
    ("events", r"rk8s_events::"),
    ("/metrics", r"state_metrics|(^|[^A-Za-z_])prometheus::"),
    ("API handlers", r"rk8s_apiserver::"),
    ("in-process kube clients", r"kube_client::|kube_runtime::"),
    ("JSON", r"serde_json::"),
    ("HTTP (hyper)", r"(^|[^A-Za-z_])(hyper|h2|hyper_util)::"),
]


def samples(text):
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.strip().split("\n") if line.strip()]
        if len(lines) < 2:
            continue
        thread = re.sub(r"[-\d]+$", "", lines[0].split()[0])
        frames = [line.split(None, 1)[1] if " " in line else "" for line in lines[1:]]
        yield thread, frames


def area(frames):
    snapshot = AREAS[0][1]
    if any(re.search(snapshot, frame) for frame in frames):
        return AREAS[0][0]
    for frame in frames:
        for name, pattern in AREAS:
            if re.search(pattern, frame):
                return name
    return "other"


def main():
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    threads, areas = collections.Counter(), collections.Counter()
    leaves = collections.defaultdict(collections.Counter)
    total = 0
    for thread, frames in samples(text):
        total += 1
        threads[thread] += 1
        name = area(frames)
        areas[name] += 1
        leaves[name][re.sub(r"<.*", "", frames[0])[:90]] += 1
    if total == 0:
        sys.exit("no samples")
    print(f"samples {total}\n--- by thread")
    for name, n in threads.most_common(12):
        print(f"{100 * n / total:5.1f} %  {name}")
    print("--- by area")
    for name, n in areas.most_common():
        print(f"{100 * n / total:5.1f} %  {name}")
    for name, _ in areas.most_common(6):
        print(f"== {name}: most frequent leaves")
        for leaf, n in leaves[name].most_common(6):
            print(f"   {100 * n / total:4.1f} %  {leaf}")


if __name__ == "__main__":
    main()
