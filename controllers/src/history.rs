//! ControllerRevisions: the template history of a DaemonSet or StatefulSet (as
//! kube-controller-manager keeps it, and `kubectl rollout history|undo` reads it).
//! Each template an owner has had is one revision named `NAME-HASH`, holding the strategic merge
//! patch that puts the template back (`{"spec": {"template": {…, "$patch":
//! "replace"}}}`) and a revision number; the current template's is the highest (a
//! rollback to an older template raises that one's number), and old revisions no pod
//! runs are kept up to `revisionHistoryLimit`. [`plan`] says what to write (pure);
//! [`sync`] writes it.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};

/// The label holding a revision's (and its pods') template hash.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// What to write.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// The current template's revision, to create.
    pub create: Option<ControllerRevision>,
    /// The current template's revision, existing but not the newest: its name and
    /// the number to raise it to (a rollback).
    pub bump: Option<(String, i64)>,
    /// Old revisions beyond the limit that no pod runs, to delete.
    pub delete: Vec<String>,
}

/// The revision of `template` with `hash` for the owner `meta`, numbered `number`.
pub fn revision(
    meta: &ObjectMeta,
    owner: OwnerReference,
    template: &PodTemplateSpec,
    hash: &str,
    number: i64,
) -> ControllerRevision {
    let mut template_json = serde_json::to_value(template).unwrap_or_default();
    if let Some(map) = template_json.as_object_mut() {
        map.insert("$patch".into(), "replace".into());
    }
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.to_string(), hash.to_string());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name(meta, hash)),
            namespace: meta.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: Some(RawExtension(
            serde_json::json!({"spec": {"template": template_json}}),
        )),
        revision: number,
    }
}

/// The name of the owner's revision of `hash`.
pub fn name(meta: &ObjectMeta, hash: &str) -> String {
    format!("{}-{hash}", meta.name.as_deref().unwrap_or_default())
}

/// What to write so that the owner `meta`'s `revisions` (those it controls) hold its
/// current template (`hash`) as the newest, and at most `limit` old ones besides
/// those of `live` hashes (its pods').
pub fn plan(
    meta: &ObjectMeta,
    owner: OwnerReference,
    template: &PodTemplateSpec,
    hash: &str,
    revisions: &[ControllerRevision],
    live: &HashSet<String>,
    limit: usize,
) -> Plan {
    let current = name(meta, hash);
    let newest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let mut plan = Plan::default();
    match revisions
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(current.as_str()))
    {
        None => plan.create = Some(revision(meta, owner, template, hash, newest + 1)),
        Some(r) if r.revision < newest => plan.bump = Some((current.clone(), newest + 1)),
        Some(_) => {}
    }
    let hash_of = |r: &ControllerRevision| {
        r.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .cloned()
    };
    let mut old: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| r.metadata.name.as_deref() != Some(current.as_str()))
        .filter(|r| !hash_of(r).is_some_and(|h| live.contains(&h)))
        .collect();
    old.sort_by_key(|r| r.revision);
    let excess = old.len().saturating_sub(limit);
    plan.delete = old
        .into_iter()
        .take(excess)
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    plan
}

/// What making the history came to.
pub enum History {
    /// The current template's revision is there, the newest.
    Held,
    /// Its name is another template's: the collision count to write.
    Collided(i32),
}

/// The owner whose history [`sync`] makes.
pub struct Owned<'a> {
    /// Its metadata.
    pub meta: &'a ObjectMeta,
    /// The controller reference its revisions carry.
    pub reference: OwnerReference,
    /// Its selector (its revisions carry its template's labels).
    pub selector: Option<String>,
    /// Its status' collision count.
    pub collisions: Option<i32>,
}

/// Makes the owner's history hold `template` (of `hash`) as the newest revision,
/// keeping `limit` old ones besides those of `live` hashes (see [`plan`]): creates,
/// raises and deletes revisions through the API.
pub async fn sync(
    client: &kube::Client,
    owner: Owned<'_>,
    template: &PodTemplateSpec,
    hash: &str,
    live: &HashSet<String>,
    limit: i32,
) -> Result<History, kube::Error> {
    let ns = owner.meta.namespace.as_deref().unwrap_or("default");
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let uid = owner.meta.uid.as_deref().unwrap_or_default();
    let params = ListParams {
        label_selector: owner.selector,
        ..Default::default()
    };
    let revisions: Vec<ControllerRevision> = api
        .list(&params)
        .await?
        .items
        .into_iter()
        .filter(|r| crate::common::controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
        .collect();
    let plan = plan(
        owner.meta,
        owner.reference,
        template,
        hash,
        &revisions,
        live,
        usize::try_from(limit).unwrap_or(0),
    );
    let key = crate::common::object_name(owner.meta);
    if let Some(revision) = &plan.create {
        let created = api.create(&PostParams::default(), revision).await;
        rk8s_supervision::wrote();
        match created {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Made already (a view behind our own write), or another template's.
                let name = revision.metadata.name.as_deref().unwrap_or_default();
                let there = api.get(name).await?;
                let ours =
                    crate::common::controller_of(&there.metadata).is_some_and(|o| o.uid == uid);
                if !ours || there.data != revision.data {
                    return Ok(History::Collided(
                        owner.collisions.unwrap_or(0).saturating_add(1),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    if let Some((name, number)) = &plan.bump {
        let patch = serde_json::json!({"revision": number});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        rk8s_supervision::wrote();
    }
    for name in &plan.delete {
        let deleted = api.delete(name, &DeleteParams::default()).await;
        rk8s_supervision::wrote();
        if let Err(e) = deleted {
            tracing::debug!(owner = %key, revision = %name, "deleting: {e}");
        }
    }
    Ok(History::Held)
}

/// The template a revision holds (its `$patch: replace` data), if it holds one.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision
        .data
        .as_ref()?
        .0
        .get("spec")?
        .get("template")?
        .clone();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("agent".into()),
            namespace: Some("default".into()),
            uid: Some("u".into()),
            ..Default::default()
        }
    }

    fn owner() -> OwnerReference {
        crate::common::controller_ref("apps/v1", "DaemonSet", &meta())
    }

    fn existing(hash: &str, number: i64) -> ControllerRevision {
        revision(&meta(), owner(), &PodTemplateSpec::default(), hash, number)
    }

    #[test]
    fn a_new_template_gets_the_next_number_and_patch_data() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "a", "image": "agent:2"}]}}))
        .unwrap_or_default();
        let p = plan(
            &meta(),
            owner(),
            &t,
            "h2",
            &[existing("h1", 1)],
            &HashSet::new(),
            10,
        );
        let created = p.create.unwrap();
        assert_eq!(created.metadata.name.as_deref(), Some("agent-h2"));
        assert_eq!(created.revision, 2);
        let labels = created.metadata.labels.unwrap();
        assert_eq!(
            (labels["app"].as_str(), labels[HASH_LABEL].as_str()),
            ("agent", "h2")
        );
        let data = created.data.unwrap().0;
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            "agent:2"
        );
        assert!(p.bump.is_none() && p.delete.is_empty());
    }

    #[test]
    fn a_rollback_raises_the_old_revision() {
        let revisions = [existing("h1", 1), existing("h2", 2)];
        let p = plan(
            &meta(),
            owner(),
            &PodTemplateSpec::default(),
            "h1",
            &revisions,
            &HashSet::new(),
            10,
        );
        assert_eq!(p.bump, Some(("agent-h1".into(), 3)));
        assert!(p.create.is_none());
        let p = plan(
            &meta(),
            owner(),
            &PodTemplateSpec::default(),
            "h2",
            &revisions,
            &HashSet::new(),
            10,
        );
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn old_revisions_beyond_the_limit_go_unless_pods_run_them() {
        let revisions: Vec<_> = (1..=5).map(|i| existing(&format!("h{i}"), i)).collect();
        let live: HashSet<String> = ["h1".to_string()].into();
        let p = plan(
            &meta(),
            owner(),
            &PodTemplateSpec::default(),
            "h5",
            &revisions,
            &live,
            2,
        );
        // Old: h1 (live, kept), h2, h3, h4 → the oldest one beyond two goes.
        assert_eq!(p.delete, ["agent-h2"]);
    }
}
