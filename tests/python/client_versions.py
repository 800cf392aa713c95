"""Kinds served in two versions, through the official Python client (PyPI
`kubernetes`): an autoscaling/v1 HorizontalPodAutoscaler read back through
AutoscalingV2Api and patched through AutoscalingV1Api, and an events.k8s.io/v1 Event
listed through CoreV1Api (one store). Run by tests/python_client.rs with the admin
kubeconfig as its only argument; exits non-zero (with the failing assertion) when rk8s
answers otherwise than kube-apiserver would."""

import datetime
import sys

from kubernetes import client, config

config.load_kube_config(config_file=sys.argv[1])
v1 = client.AutoscalingV1Api()
v2 = client.AutoscalingV2Api()
core = client.CoreV1Api()
events = client.EventsV1Api()
ns = "default"

hpa = client.V1HorizontalPodAutoscaler(
    metadata=client.V1ObjectMeta(name="py-hpa"),
    spec=client.V1HorizontalPodAutoscalerSpec(
        scale_target_ref=client.V1CrossVersionObjectReference(
            api_version="apps/v1", kind="Deployment", name="web"
        ),
        min_replicas=1,
        max_replicas=4,
        target_cpu_utilization_percentage=40,
    ),
)
made = v1.create_namespaced_horizontal_pod_autoscaler(ns, hpa)
assert made.api_version == "autoscaling/v1", made.api_version
assert made.spec.target_cpu_utilization_percentage == 40
seen = v2.read_namespaced_horizontal_pod_autoscaler("py-hpa", ns)
cpu = seen.spec.metrics[0].resource
assert (cpu.name, cpu.target.type, cpu.target.average_utilization) == ("cpu", "Utilization", 40), cpu
patched = v1.patch_namespaced_horizontal_pod_autoscaler(
    "py-hpa", ns, {"spec": {"targetCPUUtilizationPercentage": 65}}
)
assert patched.spec.target_cpu_utilization_percentage == 65
seen = v2.read_namespaced_horizontal_pod_autoscaler("py-hpa", ns)
assert seen.spec.metrics[0].resource.target.average_utilization == 65
names = [h.metadata.name for h in v1.list_namespaced_horizontal_pod_autoscaler(ns).items]
assert names == ["py-hpa"], names
v1.delete_namespaced_horizontal_pod_autoscaler("py-hpa", ns)

event = client.EventsV1Event(
    metadata=client.V1ObjectMeta(name="py-event"),
    event_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    regarding=client.V1ObjectReference(kind="Pod", name="web", namespace=ns),
    reason="Checked",
    note="from the python client",
    type="Normal",
    action="Check",
    reporting_controller="example.com/python",
    reporting_instance="py-1",
)
events.create_namespaced_event(ns, event)
listed = core.list_namespaced_event(ns, field_selector="involvedObject.name=web,reason=Checked")
assert [(e.metadata.name, e.message) for e in listed.items] == [("py-event", "from the python client")], listed.items
through_events = events.list_namespaced_event(ns, field_selector="regarding.name=web")
assert [e.note for e in through_events.items] == ["from the python client"]
print("ok")
