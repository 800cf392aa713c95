//! What a node may read beyond its own objects: a Secret, ConfigMap or
//! PersistentVolumeClaim is readable by a node while a pod bound to it uses it, and so
//! is the PersistentVolume such a claim is bound to, as kube-apiserver's Node authorizer decides
//! from its graph. rk8s reads the graph's edges off the node's pods in the namespace
//! at each read (nodes read them one by one, when a pod starts).
//!
//! rk8s adds one edge kube's Node authorizer has not: every node runs the built-in
//! Ingress proxy, so a node may read a Secret that an Ingress of the Secret's
//! namespace served by the `rk8s.io/ingress` controller names in `spec.tls`
//! (`rk8s_api::ingress::served`) — what an ingress controller's role grants it —
//! and only if the Secret is of type `kubernetes.io/tls` (checked once read; another
//! type is refused as the Node authorizer refuses an object without an edge).

use rk8s_api::AnyObject;

use crate::auth::Access;
use crate::call::Call;
use crate::handlers::Handlers;
use crate::request::Query;
use crate::status::ApiResult;

impl Handlers {
    /// The access `c` has to the object it reads, what a node's is decided (the
    /// Secret or ConfigMap a pod of it uses: all of it; a Secret only a served
    /// Ingress names: [`Access::IngressTls`], its type checked once read
    /// ([`Handlers::tls_secret_access`]); else refused).
    pub(crate) async fn read_access(&self, c: &Call<'_>) -> ApiResult<Access> {
        match &c.access {
            Access::UsedOnNode(node) => self.check_used_on(node, c).await,
            other => Ok(other.clone()),
        }
    }

    /// [`Access::IngressTls`] once the object is read: all of a `kubernetes.io/tls`
    /// Secret; another object is refused with the Node authorizer's words. Other
    /// accesses are kept.
    pub(crate) fn tls_secret_access(
        c: &Call<'_>,
        access: Access,
        obj: &AnyObject,
    ) -> ApiResult<Access> {
        match access {
            Access::IngressTls(_) if is_tls_secret(obj) => Ok(Access::All),
            Access::IngressTls(node) => Err(crate::auth::no_relationship(c.identity, c.req, &node)),
            other => Ok(other),
        }
    }

    /// Whether `obj` is a PersistentVolume whose claim a pod bound to the node of
    /// `access` uses (the Node authorizer's pod → claim → volume edges); `Err(())`
    /// if not.
    pub(crate) async fn volume_used_on(&self, access: &Access, obj: &AnyObject) -> Result<(), ()> {
        let (Access::BoundTo(node), AnyObject::PersistentVolume(pv)) = (access, obj) else {
            return Err(());
        };
        let claim = pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .ok_or(())?;
        let (ns, name) = (
            claim.namespace.as_deref().ok_or(())?,
            claim.name.as_deref().ok_or(())?,
        );
        let selector = form_urlencoded::Serializer::new(String::new())
            .append_pair("fieldSelector", &format!("spec.nodeName={node}"))
            .finish();
        let pods = self
            .list_kind("Pod", Some(ns), &Query::parse(Some(&selector)))
            .await
            .map_err(|_| ())?;
        let used = pods.iter().any(|pod| match pod {
            AnyObject::Pod(p) => p
                .spec
                .as_ref()
                .is_some_and(|s| rk8s_api::references::claims(s).contains(name)),
            _ => false,
        });
        used.then_some(()).ok_or(())
    }

    /// Whether the request reads a Secret that an Ingress of its namespace, served by
    /// rk8s' proxy, names for TLS.
    async fn secret_of_served_ingress(&self, c: &Call<'_>) -> bool {
        let req = c.req;
        if req.kind.plural != "secrets" {
            return false;
        }
        let none = Query::default();
        let Ok(ingresses) = self
            .list_kind("Ingress", req.namespace.as_deref(), &none)
            .await
        else {
            return false;
        };
        let naming: Vec<_> = ingresses
            .iter()
            .filter_map(|o| match o {
                AnyObject::Ingress(i) => Some(&**i),
                _ => None,
            })
            .filter(|i| rk8s_api::ingress::tls_secrets(i).contains(req.name()))
            .collect();
        if naming.is_empty() {
            return false;
        }
        let Ok(classes) = self.list_kind("IngressClass", None, &none).await else {
            return false;
        };
        let classes: Vec<_> = classes
            .iter()
            .filter_map(|o| match o {
                AnyObject::IngressClass(c) => Some(&**c),
                _ => None,
            })
            .collect();
        naming
            .iter()
            .any(|i| rk8s_api::ingress::served(i, classes.iter().copied()))
    }

    /// Whether a pod bound to `node` in the request's namespace uses the Secret,
    /// ConfigMap or claim the request names (the Node authorizer's graph, read off
    /// the pods: all of it), or a served Ingress names the Secret (only if it is a
    /// TLS one, [`Access::IngressTls`]).
    async fn check_used_on(&self, node: &str, c: &Call<'_>) -> ApiResult<Access> {
        let req = c.req;
        let selector = form_urlencoded::Serializer::new(String::new())
            .append_pair("fieldSelector", &format!("spec.nodeName={node}"))
            .finish();
        let pods = self
            .list_kind(
                "Pod",
                req.namespace.as_deref(),
                &Query::parse(Some(&selector)),
            )
            .await?;
        let used = pods.iter().any(|pod| {
            let AnyObject::Pod(pod) = pod else {
                return false;
            };
            let Some(spec) = &pod.spec else { return false };
            let names = match req.kind.plural {
                "secrets" => rk8s_api::references::secrets(spec),
                "persistentvolumeclaims" => rk8s_api::references::claims(spec),
                _ => rk8s_api::references::config_maps(spec),
            };
            names.contains(req.name())
        });
        if used {
            Ok(Access::All)
        } else if self.secret_of_served_ingress(c).await {
            Ok(Access::IngressTls(node.to_string()))
        } else {
            Err(crate::auth::no_relationship(c.identity, req, node))
        }
    }
}

/// The Secret type an Ingress's certificate has (`tls.crt`, `tls.key`).
const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Whether `obj` is a `kubernetes.io/tls` Secret.
fn is_tls_secret(obj: &AnyObject) -> bool {
    matches!(obj, AnyObject::Secret(s) if s.type_.as_deref() == Some(TLS_SECRET_TYPE))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn secret(type_: Option<&str>) -> AnyObject {
        AnyObject::Secret(Box::new(k8s_openapi::api::core::v1::Secret {
            type_: type_.map(str::to_string),
            ..Default::default()
        }))
    }

    #[test]
    fn only_tls_secrets_are_read_through_an_ingress() {
        assert!(is_tls_secret(&secret(Some("kubernetes.io/tls"))));
        assert!(!is_tls_secret(&secret(Some("Opaque"))));
        assert!(!is_tls_secret(&secret(Some(
            "kubernetes.io/service-account-token"
        ))));
        assert!(!is_tls_secret(&secret(None)));
    }
}
