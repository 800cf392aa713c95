"""A long list through the official Python client (PyPI `kubernetes`), which lists
without a `limit`: rk8s streams it. Run by tests/list_streaming.rs with the admin
kubeconfig and a namespace holding ConfigMaps `cm-00000` … `cm-01233` (and
`cm-zzzzz`); exits non-zero when the list differs from the paginated one."""

import sys

from kubernetes import client, config

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
ns = sys.argv[2]

whole = core.list_namespaced_config_map(ns)
names = [c.metadata.name for c in whole.items]
paged, token = [], None
while True:
    page = core.list_namespaced_config_map(ns, limit=500, _continue=token)
    paged += [c.metadata.name for c in page.items]
    token = page.metadata._continue
    if not token:
        break
assert names == paged, f"{len(names)} streamed, {len(paged)} paged"
ours = [n for n in names if n.startswith("cm-")]
assert len(ours) == 1235, len(ours)
assert ours[0] == "cm-00000" and ours[-2] == "cm-01233", (ours[0], ours[-2])
assert int(whole.metadata.resource_version) > 0
