"""RBAC through the official Python client (PyPI `kubernetes`) against rk8s: a user
known by a client certificate (`rk8s-server kubeconfig create`) is refused until a
ClusterRoleBinding to `view` names it, and the access and self reviews say so. Run by
tests/python_client.rs with the admin's and the user's kubeconfigs as its arguments;
exits non-zero (with the failing assertion) when rk8s answers otherwise than
kube-apiserver would."""

import json
import sys
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException

admin = config.new_client_from_config(config_file=sys.argv[1])
user = config.new_client_from_config(config_file=sys.argv[2])
ns = "default"


def may(api_client, verb, resource):
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, namespace=ns
            )
        )
    )
    answer = client.AuthorizationV1Api(api_client).create_self_subject_access_review(review)
    return answer.status.allowed


# Who the certificate says the user is.
me = client.AuthenticationV1Api(user).create_self_subject_review(client.V1SelfSubjectReview())
assert me.status.user_info.username == "pat", me
assert me.status.user_info.groups == ["testers", "system:authenticated"], me

# Nothing is allowed yet: kube-apiserver's 403 and a "no" from the review.
try:
    client.CoreV1Api(user).list_namespaced_pod(ns)
    raise AssertionError("the list succeeded without a binding")
except ApiException as e:
    assert e.status == 403, e
    message = json.loads(e.body)["message"]
    assert message == (
        'pods is forbidden: User "pat" cannot list resource "pods" in API group "" '
        'in the namespace "default"'
    ), message
assert may(user, "list", "pods") is False

# A binding to view: reads, no writes.
binding = client.V1ClusterRoleBinding(
    metadata=client.V1ObjectMeta(name="pat-views"),
    role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
    subjects=[client.RbacV1Subject(api_group="rbac.authorization.k8s.io", kind="User", name="pat")],
)
client.RbacAuthorizationV1Api(admin).create_cluster_role_binding(binding)
deadline = time.time() + 30
while not may(user, "list", "pods"):
    assert time.time() < deadline, "the binding did not take effect in 30 s"
    time.sleep(0.2)
client.CoreV1Api(user).list_namespaced_pod(ns)
assert may(user, "create", "pods") is False

# The admin asks about the user: allowed, and by which binding.
review = client.V1SubjectAccessReview(
    spec=client.V1SubjectAccessReviewSpec(
        user="pat",
        groups=["testers"],
        resource_attributes=client.V1ResourceAttributes(verb="watch", resource="pods", namespace=ns),
    )
)
answer = client.AuthorizationV1Api(admin).create_subject_access_review(review)
assert answer.status.allowed is True, answer
assert answer.status.reason.startswith('RBAC: allowed by ClusterRoleBinding "pat-views"'), answer
review.spec.resource_attributes.verb = "delete"
assert client.AuthorizationV1Api(admin).create_subject_access_review(review).status.allowed is False
print("ok")
