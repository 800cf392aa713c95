//! `metadata.managedFields`: who owns which fields, kept up to date by every write
//! (an `Update` entry per writer) and by server-side apply (an `Apply` entry per
//! applier), as kube-apiserver's field manager does
//! (`k8s.io/apimachinery/pkg/util/managedfields`, structured-merge-diff's
//! `merge/update.go`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};
use serde_json::Value;

use super::conflict::{Conflict, Conflicts, Owner};
use super::fieldset::{Element, FieldSet};
use super::schema::ListTypes;
use super::walk::{self, MergeError};

/// kubectl's client-side apply annotation.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The one manager whose server-side apply takes over from client-side apply
/// (kube-apiserver's `lastAppliedManager` and `lastAppliedUpdater` act for it alone).
const KUBECTL: &str = "kubectl";

/// Why an apply was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// 409: fields other managers own with other values, and no `force`.
    #[error(transparent)]
    Conflicts(#[from] Conflicts),
    /// The applied configuration is not an object.
    #[error("the applied configuration must be an object")]
    NotAnObject,
    /// The applied configuration cannot be merged (duplicate or missing list keys).
    #[error("failed to create typed patch object: {0}")]
    Invalid(#[from] MergeError),
}

/// One managedFields entry, its field set read.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    owner: Owner,
    time: Option<Time>,
    fields: FieldSet,
}

impl Entry {
    fn is(&self, owner: &Owner) -> bool {
        let o = &self.owner;
        o.manager == owner.manager
            && o.operation == owner.operation
            && o.subresource == owner.subresource
            && (o.operation == "Apply" || o.api_version == owner.api_version)
    }
}

/// Reads managedFields; an entry that cannot be read is dropped, as kube-apiserver
/// drops managedFields it cannot decode.
fn decode(managed: &[ManagedFieldsEntry]) -> Vec<Entry> {
    managed
        .iter()
        .filter_map(|m| {
            if m.fields_type.as_deref().is_some_and(|t| t != "FieldsV1") {
                return None;
            }
            let fields = match &m.fields_v1 {
                Some(FieldsV1(v)) => FieldSet::from_fields_v1(v).ok()?,
                None => FieldSet::new(),
            };
            Some(Entry {
                owner: Owner {
                    manager: m.manager.clone().unwrap_or_default(),
                    operation: m.operation.clone().unwrap_or_default(),
                    api_version: m.api_version.clone().unwrap_or_default(),
                    subresource: m.subresource.clone().unwrap_or_default(),
                },
                time: m.time.clone(),
                fields,
            })
        })
        .collect()
}

/// Writes managedFields: empty entries left out, `Apply` entries first, then by time,
/// manager, API version and subresource (kube-apiserver's `sortEncodedManagedFields`).
fn encode(mut entries: Vec<Entry>) -> Vec<ManagedFieldsEntry> {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        let time = |e: &Entry| e.time.as_ref().map(|t| t.0.as_second()).unwrap_or(0);
        a.owner
            .operation
            .cmp(&b.owner.operation)
            .then(time(a).cmp(&time(b)))
            .then(a.owner.manager.cmp(&b.owner.manager))
            .then(a.owner.api_version.cmp(&b.owner.api_version))
            .then(a.owner.subresource.cmp(&b.owner.subresource))
    });
    entries
        .into_iter()
        .map(|e| ManagedFieldsEntry {
            api_version: Some(e.owner.api_version),
            fields_type: Some("FieldsV1".to_string()),
            fields_v1: Some(FieldsV1(e.fields.to_fields_v1())),
            manager: Some(e.owner.manager),
            operation: Some(e.owner.operation),
            subresource: (!e.owner.subresource.is_empty()).then_some(e.owner.subresource),
            time: e.time,
        })
        .collect()
}

/// Leaves out of `set` the fields no manager owns: the object's identity and the
/// server's bookkeeping (kube-apiserver's `stripSet`), and the part of the object the
/// write did not address (`status` for the object itself, all but `status` for the
/// status subresource).
fn restrict(mut set: FieldSet, subresource: &str) -> FieldSet {
    let field = |name: &str| Element::Field(name.to_string());
    let drop = |set: &mut FieldSet, name: &str| {
        set.members.remove(&field(name));
        set.children.remove(&field(name));
    };
    if subresource == "status" {
        set.members.retain(|e| *e == field("status"));
        set.children.retain(|e, _| *e == field("status"));
        return set;
    }
    for name in ["apiVersion", "kind", "status"] {
        drop(&mut set, name);
    }
    if let Some(meta) = set.children.get_mut(&field("metadata")) {
        for name in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            drop(meta, name);
        }
        if meta.is_empty() {
            set.children.remove(&field("metadata"));
        }
    }
    set.members.remove(&field("metadata"));
    set
}

fn api_version(v: &Value) -> String {
    v.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The managedFields a write starts from: those of the object as written when it
/// carries any (a client may set them), none when it carries only empty entries (how a
/// client clears them: `managedFields: [{}]`), else the live object's.
pub fn prior_managed_fields(live: &Value, new: &Value) -> Vec<ManagedFieldsEntry> {
    let of = |v: &Value| -> Option<Vec<ManagedFieldsEntry>> {
        serde_json::from_value(v.get("metadata")?.get("managedFields")?.clone()).ok()
    };
    match of(new) {
        Some(entries) if entries.is_empty() => of(live).unwrap_or_default(),
        Some(entries) if entries.iter().all(|e| *e == ManagedFieldsEntry::default()) => Vec::new(),
        Some(entries) => entries,
        None => of(live).unwrap_or_default(),
    }
}

/// The managedFields after a create, update or patch (operation `Update`) by `manager`
/// of `subresource` (empty for the object itself) that turned `old` into `new` (`{}`
/// for a create): the fields that changed become the manager's, taken from whoever
/// owned them; fields gone from the object leave every entry.
pub fn update_managed_fields(
    types: &dyn ListTypes,
    old: &Value,
    new: &Value,
    manager: &str,
    subresource: &str,
    managed: &[ManagedFieldsEntry],
    now: &Time,
) -> Vec<ManagedFieldsEntry> {
    let mut entries = decode(managed);
    let diff = walk::compare(old, new, types);
    let changed = restrict(diff.modified.union(&diff.added), subresource);
    let removed = restrict(diff.removed, subresource);
    for e in &mut entries {
        e.fields = e.fields.difference(&changed).difference(&removed);
    }
    if !changed.is_empty() {
        let owner = Owner {
            manager: manager.to_string(),
            operation: "Update".to_string(),
            api_version: api_version(new),
            subresource: subresource.to_string(),
        };
        match entries.iter_mut().find(|e| e.is(&owner)) {
            Some(e) => {
                e.fields.union_with(&changed);
                e.time = Some(now.clone());
            }
            None => entries.push(Entry {
                owner,
                time: Some(now.clone()),
                fields: changed,
            }),
        }
    }
    encode(entries)
}

/// What a server-side apply makes.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The object after the apply, its `metadata.managedFields` included.
    pub object: Value,
    /// Its managedFields.
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// A server-side apply of `applied` by `manager` to `live` (`{}` when the object does
/// not exist yet), with `managed` the live object's managedFields.
#[derive(Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// The object as it is.
    pub live: &'a Value,
    /// The applied configuration.
    pub applied: &'a Value,
    /// The field manager (`?fieldManager=`).
    pub manager: &'a str,
    /// The subresource applied to (`status`), empty for the object itself.
    pub subresource: &'a str,
    /// `?force=true`: take fields from other managers instead of conflicting.
    pub force: bool,
    /// The live object's managedFields.
    pub managed: &'a [ManagedFieldsEntry],
    /// The time the manager's entry records.
    pub now: &'a Time,
}

/// Server-side apply (structured-merge-diff's `Updater.Apply` with kube-apiserver's
/// client-side-apply upgrade):
///
/// - the fields of the applied configuration are set, merged into the live object
///   (lists of named things by key);
/// - fields the manager applied last time and applies no more are removed, unless
///   another manager owns them too;
/// - fields another manager owns and the apply would change are conflicts, unless
///   `force` (then they become the applier's alone); a field applied with the value
///   it has is shared;
/// - `kubectl`'s first apply after `kubectl apply` (client-side) may change the
///   fields its `last-applied-configuration` annotation lists with the values the
///   object has, and keeps that annotation up to date.
///
/// An apply that changes nothing returns the live object and managedFields as they
/// were.
pub fn apply(types: &dyn ListTypes, req: &ApplyRequest<'_>) -> Result<Applied, ApplyError> {
    let ApplyRequest {
        live,
        applied,
        manager,
        subresource,
        ..
    } = *req;
    let mut config = applied.clone();
    let Some(fields) = config.as_object_mut() else {
        return Err(ApplyError::NotAnObject);
    };
    // The bookkeeping is the server's, and a write of the object leaves its status
    // alone (and the other way around).
    if let Some(Value::Object(meta)) = fields.get_mut("metadata") {
        meta.remove("managedFields");
    }
    if subresource == "status" {
        fields.retain(|k, _| matches!(k.as_str(), "status" | "apiVersion" | "kind" | "metadata"));
    } else {
        fields.remove("status");
    }
    let empty = Value::Object(Default::default());
    let live = if live.is_object() { live } else { &empty };
    let mut live_plain = live.clone();
    if let Some(Value::Object(meta)) = live_plain.get_mut("metadata") {
        meta.remove("managedFields");
    }

    let mut merged = walk::merge(&live_plain, &config, types)?;
    let owner = Owner {
        manager: manager.to_string(),
        operation: "Apply".to_string(),
        api_version: api_version(applied),
        subresource: subresource.to_string(),
    };
    let mut entries = decode(req.managed);
    let applied_set = restrict(walk::object_fields(&config, types), subresource);
    let previous = match entries.iter().position(|e| e.is(&owner)) {
        Some(n) => entries.remove(n),
        None => Entry {
            owner: owner.clone(),
            time: None,
            fields: FieldSet::new(),
        },
    };

    // Prune what the manager applied before and no one owns now.
    if !previous.fields.is_empty() {
        let mut owned = applied_set.clone();
        for e in &entries {
            owned.union_with(&e.fields);
        }
        let candidates = previous.fields.difference(&owned);
        if !candidates.is_empty() {
            walk::prune(&mut merged, &candidates, &owned, types);
        }
    }

    let diff = walk::compare(&live_plain, &merged, types);
    let changed = restrict(diff.modified.union(&diff.added), subresource);
    let removed = restrict(diff.removed, subresource);
    let mut conflicts: Vec<(usize, FieldSet)> = entries
        .iter()
        .enumerate()
        .map(|(n, e)| (n, e.fields.intersection(&changed)))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if !req.force && !conflicts.is_empty() {
        let allowed = if manager == KUBECTL {
            allowed_from_last_applied(types, &live_plain, &owner.api_version)
        } else {
            None
        };
        let allowed = allowed.unwrap_or_default();
        let left: Vec<Conflict> = conflicts
            .iter()
            .flat_map(|(n, set)| {
                let owner = entries[*n].owner.clone();
                set.difference(&allowed)
                    .paths()
                    .into_iter()
                    .map(move |path| Conflict {
                        owner: owner.clone(),
                        path,
                    })
            })
            .collect();
        if !left.is_empty() {
            return Err(Conflicts(left).into());
        }
    }
    for (n, taken) in conflicts.drain(..) {
        entries[n].fields = entries[n].fields.difference(&taken);
    }
    for e in &mut entries {
        e.fields = e.fields.difference(&removed);
    }

    if merged == live_plain && previous.fields == applied_set {
        return Ok(Applied {
            object: live.clone(),
            managed_fields: req.managed.to_vec(),
        });
    }
    entries.push(Entry {
        owner,
        time: Some(req.now.clone()),
        fields: applied_set,
    });
    if manager == KUBECTL && last_applied(&merged).is_some() {
        set_last_applied(&mut merged, applied);
    }
    let managed_fields = encode(entries);
    if let Some(Value::Object(meta)) = merged.get_mut("metadata") {
        meta.insert(
            "managedFields".to_string(),
            serde_json::to_value(&managed_fields).unwrap_or(Value::Null),
        );
    }
    Ok(Applied {
        object: merged,
        managed_fields,
    })
}

fn last_applied(object: &Value) -> Option<&str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// The fields `kubectl apply --server-side` may take over from client-side apply
/// without a conflict: those the `last-applied-configuration` annotation lists with
/// the value the object has (kube-apiserver's `allowedConflictsFromLastApplied`).
fn allowed_from_last_applied(
    types: &dyn ListTypes,
    live: &Value,
    api_version: &str,
) -> Option<FieldSet> {
    let last: Value = serde_json::from_str(last_applied(live)?).ok()?;
    if self::api_version(&last) != api_version {
        return None;
    }
    let set = restrict(walk::object_fields(&last, types), "");
    let diff = walk::compare(&last, live, types);
    Some(
        set.difference(&diff.modified)
            .difference(&diff.added)
            .difference(&diff.removed),
    )
}

/// Keeps the client-side apply annotation in step with what `kubectl` applied server
/// side, so a later `kubectl apply` (client-side) computes from it (kube-apiserver's
/// `lastAppliedUpdater`).
fn set_last_applied(object: &mut Value, applied: &Value) {
    let mut config = applied.clone();
    if let Some(Value::Object(meta)) = config.get_mut("metadata")
        && let Some(Value::Object(annotations)) = meta.get_mut("annotations")
    {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.remove("annotations");
        }
    }
    let text = format!("{config}\n");
    if let Some(Value::Object(annotations)) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.insert(LAST_APPLIED_ANNOTATION.to_string(), Value::String(text));
    }
}
