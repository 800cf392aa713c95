"""Attach through the official Python client (PyPI `kubernetes`) against rk8s:
`kubernetes.stream.stream(connect_get_namespaced_pod_attach, ...)` (the WebSocket
channel protocol, v4) to the `echo` container of tests/attach.rs, which echoes each
line of its stdin. Run with the admin's kubeconfig as the argument; exits non-zero
(with the failing assertion) when rk8s answers otherwise than kubelet would."""

import sys
import time

from kubernetes import client, config
from kubernetes.stream import stream

config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()

attached = stream(
    api.connect_get_namespaced_pod_attach,
    "echo",
    "default",
    container="echo",
    stdin=True,
    stdout=True,
    stderr=True,
    tty=False,
    _preload_content=False,
)
attached.write_stdin("from python\n")
out = ""
deadline = time.time() + 30
while "echo: from python" not in out:
    assert time.time() < deadline, "no echo within 30s: %r" % out
    assert attached.is_open(), "the session ended: %r" % out
    attached.update(timeout=1)
    if attached.peek_stdout():
        out += attached.read_stdout()
attached.close()
print("ok")
