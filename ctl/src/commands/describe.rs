//! `describe KIND [NAME...]`: each object's fields, then its recent events.

use anyhow::Result;
use rk8s_api::object::resolve;

use super::{Global, query, resolve_targets};

/// `describe KIND NAME`: the object's fields, then its recent events.
pub async fn describe(g: &Global, resources: &[String]) -> Result<()> {
    let cluster = g.connect().await?;
    let mut first = true;
    for (kind, names) in resolve_targets(&cluster, resources).await? {
        let ns = Some(cluster.namespace.as_str());
        let names = if names.is_empty() {
            let list = cluster
                .get_json(&kind.collection_path(ns), "application/json")
                .await?;
            list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        } else {
            names
        };
        for name in names {
            if !first {
                println!();
            }
            first = false;
            let obj = cluster
                .get_json(&kind.object_path(ns, &name), "application/json")
                .await?;
            let events = if let Some(events_kind) = resolve("events") {
                let ns_value = obj["metadata"]["namespace"].as_str().unwrap_or("");
                let mut selector = format!(
                    "involvedObject.name={name},involvedObject.kind={}",
                    kind.kind
                );
                if !ns_value.is_empty() {
                    selector.push_str(&format!(",involvedObject.namespace={ns_value}"));
                }
                let path = format!(
                    "{}{}",
                    events_kind.collection_path(kind.is_namespaced().then_some(ns_value)),
                    query(&[("fieldSelector", Some(&selector))])
                );
                cluster.get_json(&path, "application/json").await?["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            print!("{}", crate::describe::describe(&obj, &events));
        }
    }
    Ok(())
}
