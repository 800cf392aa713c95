"""Port forwarding through the official Python client (PyPI `kubernetes`) against rk8s:
`kubernetes.stream.portforward` (the WebSocket channel protocol) to the pod `web` of
tests/port_forward.rs, an HTTP GET through it, and a port nobody listens on reported on
its error channel. Run with the admin's kubeconfig as the argument; exits non-zero
(with the failing assertion) when rk8s answers otherwise than kubelet would."""

import sys

from kubernetes import client, config
from kubernetes.stream import portforward

config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()


def get(port, path):
    """`GET path` on `port` of the pod: the whole answer, once the pod closes."""
    forward = portforward(
        api.connect_get_namespaced_pod_portforward, "web", "default", ports=str(port)
    )
    sock = forward.socket(port)
    sock.setblocking(True)
    answer = b""
    try:
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\nHost: web\r\n\r\n")
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    except OSError:
        # A port nobody listens on: the forward may be closed before the request goes.
        pass
    sock.close()
    return answer, forward.error(port)


answer, error = get(8080, "/index.html")
assert error is None, error
head, body = answer.split(b"\r\n\r\n", 1)
assert head.split(b" ", 2)[1] == b"200", head
assert body == b"hello-from-the-pod\n", body

answer, error = get(9999, "/")
assert answer == b"", answer
assert error is not None and "error forwarding port 9999 to pod default/web" in error, error
print("ok")
