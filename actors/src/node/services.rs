//! The node's watch cache of Services — the one its Service proxy and DNS are
//! programmed from ([`super::network::keep`]) — read by the runtime for the
//! containers' service variables, without a second watch or a copy per pod.

use std::sync::Arc;

use futures_util::FutureExt;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::Store;
use rk8s_runtime::pod::ServiceLister;

/// The Services the node watches, as the runtime lists them.
#[derive(Clone)]
pub struct ServiceCache(pub Store<Service>);

impl ServiceLister for ServiceCache {
    fn select(&self, keep: &dyn Fn(&Service) -> bool) -> Option<Vec<Arc<Service>>> {
        // Filled once (kubelet's `serviceHasSynced`): the store is ready after its
        // first list, which the watch delivers whole.
        self.0.wait_until_ready().now_or_never()?.ok()?;
        Some(self.0.state_filter(|s| keep(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    fn service(namespace: &str, name: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443}]}
        }))
        .unwrap()
    }

    #[test]
    fn services_are_listed_once_the_first_list_arrived() {
        let (store, mut writer) = kube::runtime::reflector::store::<Service>();
        let cache = ServiceCache(store);
        assert!(cache.select(&|_| true).is_none());
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(service("default", "kubernetes")));
        writer.apply_watcher_event(&Event::InitApply(service("shop", "web")));
        writer.apply_watcher_event(&Event::InitDone);
        let all = cache.select(&|_| true).unwrap();
        assert_eq!(all.len(), 2);
        let shop = cache
            .select(&|s| s.metadata.namespace.as_deref() == Some("shop"))
            .unwrap();
        assert_eq!(shop.len(), 1);
    }
}
