"""CRUD through the official Python client (PyPI `kubernetes`) against rk8s:
ConfigMaps and Secrets through the typed core API, a CustomResourceDefinition through
the apiextensions API, and its objects through the custom objects API, and a
namespace's deletion (Terminating, its conditions, `finalize`). Run by
tests/python_client.rs with the admin kubeconfig as its only argument; exits non-zero
(with the failing assertion) when rk8s answers otherwise than kube-apiserver would."""

import base64
import json
import sys
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
ext = client.ApiextensionsV1Api()
custom = client.CustomObjectsApi()
ns = "default"


def expect_status(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ApiException as e:
        assert e.status == code, f"expected {code}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected {code}, the call succeeded")


# ConfigMap: create, read, list by label, patch, replace with a stale version, delete.
cm = client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="py-config", labels={"from": "python"}),
    data={"mode": "fast"},
)
created = core.create_namespaced_config_map(ns, cm)
assert created.metadata.uid and created.metadata.resource_version
assert core.read_namespaced_config_map("py-config", ns).data == {"mode": "fast"}
names = [c.metadata.name for c in core.list_namespaced_config_map(ns, label_selector="from=python").items]
assert names == ["py-config"], names
patched = core.patch_namespaced_config_map("py-config", ns, {"data": {"extra": "1"}})
assert patched.data == {"mode": "fast", "extra": "1"}, patched.data
created.data = {"stale": "yes"}
expect_status(409, core.replace_namespaced_config_map, "py-config", ns, created)
expect_status(409, core.create_namespaced_config_map, ns, cm)
core.delete_namespaced_config_map("py-config", ns)
expect_status(404, core.read_namespaced_config_map, "py-config", ns)

# Secret: stringData lands in data (base64), immutable secrets keep their data.
secret = client.V1Secret(
    metadata=client.V1ObjectMeta(name="py-secret"),
    string_data={"password": "s3cr3t"},
    immutable=True,
)
created = core.create_namespaced_secret(ns, secret)
assert created.type == "Opaque", created.type
assert base64.b64decode(created.data["password"]) == b"s3cr3t", created.data
assert not created.string_data
expect_status(422, core.patch_namespaced_secret, "py-secret", ns, {"data": {"password": base64.b64encode(b"new").decode()}})
core.delete_namespaced_secret("py-secret", ns)

# A CRD, then its objects through the custom objects API.
crd = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.org"},
    "spec": {
        "group": "example.org",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "color": {"type": "string", "enum": ["red", "blue"]},
                    "count": {"type": "integer", "default": 1},
                }},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            }}},
        }],
    },
}
ext.create_custom_resource_definition(crd)
for _ in range(100):
    got = ext.read_custom_resource_definition("gadgets.example.org")
    if any(c.type == "Established" and c.status == "True" for c in (got.status.conditions or [])):
        break
    time.sleep(0.1)
else:
    raise AssertionError("the CRD never became Established")

args = ("example.org", "v1", ns, "gadgets")
obj = {"apiVersion": "example.org/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"color": "red"}}
made = custom.create_namespaced_custom_object(*args, obj)
assert made["spec"] == {"color": "red", "count": 1}, made["spec"]
assert custom.get_namespaced_custom_object(*args, "g1")["spec"]["color"] == "red"
listed = custom.list_namespaced_custom_object(*args)
assert [o["metadata"]["name"] for o in listed["items"]] == ["g1"], listed
bad = dict(obj, metadata={"name": "g2"}, spec={"color": "green"})
e = expect_status(422, custom.create_namespaced_custom_object, *args, bad)
assert 'spec.color: Unsupported value: "green"' in json.loads(e.body)["message"], e.body
patched = custom.patch_namespaced_custom_object(*args, "g1", {"spec": {"color": "blue"}})
assert patched["spec"]["color"] == "blue"
status = custom.patch_namespaced_custom_object_status(*args, "g1", {"status": {"ready": True}})
assert status["status"] == {"ready": True}, status
custom.delete_namespaced_custom_object(*args, "g1")
expect_status(404, custom.get_namespaced_custom_object, *args, "g1")
ext.delete_custom_resource_definition("gadgets.example.org")


def wait_for(what, check, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never: {what}")


def condition(namespace, kind):
    for c in namespace.status.conditions or []:
        if c.type == kind:
            return c
    return None


# Namespace: deleted, it terminates while a finalizer holds its content, then goes once
# its own finalizer is removed through `finalize`.
core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-ns")))
assert core.read_namespace("py-ns").spec.finalizers == ["kubernetes"]
held = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held", finalizers=["example.org/hold"]))
core.create_namespaced_config_map("py-ns", held)
core.delete_namespace("py-ns")
assert core.read_namespace("py-ns").status.phase == "Terminating"
e = expect_status(403, core.create_namespaced_config_map, "py-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="late")))
assert json.loads(e.body)["details"]["causes"][0]["reason"] == "NamespaceTerminating", e.body


def held_back():
    namespace = core.read_namespace("py-ns")
    c = condition(namespace, "NamespaceFinalizersRemaining")
    return namespace if c is not None and c.status == "True" else None


stuck = wait_for("the held ConfigMap reported", held_back)
assert condition(stuck, "NamespaceFinalizersRemaining").message == (
    "Some content in the namespace has finalizers remaining: example.org/hold in 1 resource instances"
), stuck.status
stuck = core.read_namespace("py-ns")  # as it is now: the controller may have written its status
stuck.spec.finalizers = []
core.replace_namespace_finalize("py-ns", stuck)


def namespace_gone():
    try:
        core.read_namespace("py-ns")
    except ApiException as e:
        return e.status == 404
    return False


wait_for("the namespace gone", namespace_gone)

# ComponentStatus (deprecated, computed at each read): the store answers; this server
# runs no scheduler, so no member holds its leader Lease.
statuses = {cs.metadata.name: cs.conditions[0] for cs in core.list_component_status().items}
assert list(statuses) == ["scheduler", "controller-manager", "etcd-0"], statuses
assert (statuses["etcd-0"].type, statuses["etcd-0"].status, statuses["etcd-0"].message) == ("Healthy", "True", "ok")
assert statuses["scheduler"].status == "False", statuses["scheduler"]
assert statuses["scheduler"].error == "no member holds the leader Lease kube-system/kube-scheduler", statuses
assert core.read_component_status("etcd-0").conditions[0].status == "True"
only = core.list_component_status(field_selector="metadata.name=etcd-0").items
assert [cs.metadata.name for cs in only] == ["etcd-0"], only
e = expect_status(500, core.read_component_status, "nope")
assert json.loads(e.body)["message"] == "Component not found: nope", e.body
print("python client: ok")
