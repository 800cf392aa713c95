//! A CustomResourceDefinition itself: its defaults, its validation, and the status the
//! API server computes for it, as kube-apiserver's apiextensions-apiserver does
//! (`apis/apiextensions/v1/defaults.go`, `apis/apiextensions/validation/validation.go`,
//! `registry/customresourcedefinition/strategy.go`, `controller/status/naming_controller.go`
//! and the establishing controller).
//!
//! rk8s serves one schema per version and converts between versions by rewriting
//! `apiVersion` only (`conversion.strategy: None`); conversion webhooks are refused.

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, CustomResourceDefinitionCondition,
    CustomResourceDefinitionNames, CustomResourceDefinitionStatus, CustomResourceDefinitionVersion,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::jsonpath::JsonPath;
use super::structural;
use crate::names;
use crate::path::FieldPath;
use crate::validation::{FieldError, Reason};

/// The `NamesAccepted` condition type.
pub const NAMES_ACCEPTED: &str = "NamesAccepted";
/// The `Established` condition type.
pub const ESTABLISHED: &str = "Established";

/// Printer column types (apiextensions `printerColumnDatatypes`).
const COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
/// Printer column formats (apiextensions `customResourceColumnDefinitionFormats`).
const COLUMN_FORMATS: &[&str] = &[
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

/// Fills in what kube-apiserver defaults in a v1 CRD: `names.singular` (the lowercase
/// kind), `names.listKind` (kind + `List`) and `conversion.strategy: None`.
pub fn default_crd(crd: &mut CustomResourceDefinition) {
    let names = &mut crd.spec.names;
    if names.singular.as_deref().is_none_or(str::is_empty) {
        names.singular = Some(names.kind.to_lowercase());
    }
    if names.list_kind.as_deref().is_none_or(str::is_empty) && !names.kind.is_empty() {
        names.list_kind = Some(format!("{}List", names.kind));
    }
    if crd.spec.conversion.is_none() {
        crd.spec.conversion = Some(CustomResourceConversion {
            strategy: "None".to_string(),
            webhook: None,
        });
    }
}

/// The version objects are stored in, if exactly one is marked `storage: true`.
pub fn storage_version(crd: &CustomResourceDefinition) -> Option<&CustomResourceDefinitionVersion> {
    let mut storage = crd.spec.versions.iter().filter(|v| v.storage);
    match (storage.next(), storage.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// The versions the API server serves (`served: true`), in the CRD's order. A CRD may
/// serve none: kube-apiserver accepts it and serves nothing.
pub fn served_versions(
    crd: &CustomResourceDefinition,
) -> impl Iterator<Item = &CustomResourceDefinitionVersion> {
    crd.spec.versions.iter().filter(|v| v.served)
}

/// What the API server does to a CRD being created (apiextensions `strategy.go`
/// `PrepareForCreate`): defaults, status reset to `storedVersions: [<storage version>]`,
/// generation 1.
pub fn prepare_for_create(crd: &mut CustomResourceDefinition) {
    default_crd(crd);
    crd.metadata.generation = Some(1);
    crd.status = Some(CustomResourceDefinitionStatus {
        stored_versions: storage_version(crd).map(|v| vec![v.name.clone()]),
        ..CustomResourceDefinitionStatus::default()
    });
}

/// What the API server does to a CRD being updated (`PrepareForUpdate`): defaults, the
/// status kept from `old`, the generation bumped when the spec changed, and the storage
/// version added to `storedVersions`.
pub fn prepare_for_update(crd: &mut CustomResourceDefinition, old: &CustomResourceDefinition) {
    default_crd(crd);
    crd.status = old.status.clone();
    let generation = old.metadata.generation.unwrap_or(0);
    crd.metadata.generation = Some(if crd.spec != old.spec {
        generation + 1
    } else {
        generation
    });
    if let Some(storage) = storage_version(crd).map(|v| v.name.clone()) {
        let status = crd.status.get_or_insert_with(Default::default);
        let stored = status.stored_versions.get_or_insert_with(Vec::new);
        if !stored.contains(&storage) {
            stored.push(storage);
        }
    }
}

struct Errs(Vec<FieldError>);

impl Errs {
    fn push(&mut self, path: FieldPath, reason: Reason) {
        self.0.push(FieldError { path, reason });
    }
    fn required(&mut self, path: FieldPath) {
        self.push(path, Reason::Required);
    }
    fn required_because(&mut self, path: FieldPath, detail: &str) {
        self.push(path, Reason::Message(format!("Required value: {detail}")));
    }
    fn invalid(&mut self, path: FieldPath, value: &str, detail: impl Into<String>) {
        self.push(
            path,
            Reason::Invalid {
                value: value.to_string(),
                detail: detail.into(),
            },
        );
    }
    fn not_supported(&mut self, path: FieldPath, value: &str, supported: &[&str]) {
        self.push(
            path,
            Reason::NotSupported {
                value: value.to_string(),
                supported: supported.iter().map(|s| s.to_string()).collect(),
            },
        );
    }
}

/// DNS-1035 label: at most 63 of `[a-z0-9-]`, starting with a letter and ending with a
/// letter or digit (versions, plural and singular names, short names, categories).
fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let ok = s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        errs.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_string(),
        );
    }
    errs
}

/// Validates a CRD being created, as kube-apiserver does, returning every problem
/// (none: valid). Expects a defaulted CRD ([`default_crd`]).
pub fn validate_crd(crd: &CustomResourceDefinition) -> Vec<FieldError> {
    let mut errs = Errs(Vec::new());
    let spec = &crd.spec;
    let meta = FieldPath::root().key("metadata");
    match crd.metadata.name.as_deref().filter(|n| !n.is_empty()) {
        None => errs.push(
            meta.key("name"),
            Reason::Message("Required value: name or generateName is required".to_string()),
        ),
        Some(name) => {
            for problem in names::dns1123_subdomain(name) {
                errs.invalid(meta.key("name"), name, problem);
            }
            if name != format!("{}.{}", spec.names.plural, spec.group) {
                errs.invalid(
                    meta.key("name"),
                    name,
                    "must be spec.names.plural+\".\"+spec.group",
                );
            }
        }
    }
    let sp = FieldPath::root().key("spec");
    if spec.group.is_empty() {
        errs.required(sp.key("group"));
    } else if let problems @ [_, ..] = names::dns1123_subdomain(&spec.group).as_slice() {
        errs.invalid(sp.key("group"), &spec.group, problems.join(","));
    } else if !spec.group.contains('.') {
        errs.invalid(
            sp.key("group"),
            &spec.group,
            "should be a domain with at least one dot",
        );
    }
    if spec.scope.is_empty() {
        errs.required(sp.key("scope"));
    } else if !["Cluster", "Namespaced"].contains(&spec.scope.as_str()) {
        errs.not_supported(sp.key("scope"), &spec.scope, &["Cluster", "Namespaced"]);
    }
    if spec.preserve_unknown_fields == Some(true) {
        errs.invalid(
            sp.key("preserveUnknownFields"),
            "true",
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        );
    }

    let vp = sp.key("versions");
    let mut seen = BTreeSet::new();
    let mut unique = true;
    for (i, v) in spec.versions.iter().enumerate() {
        if !seen.insert(v.name.as_str()) {
            unique = false;
        }
        if let problems @ [_, ..] = dns1035_label(&v.name).as_slice() {
            errs.invalid(vp.index(i).key("name"), &v.name, problems.join(","));
        }
        version(&mut errs, v, &vp.index(i));
    }
    if !unique {
        errs.push(
            vp.clone(),
            Reason::Message("must contain unique version names".to_string()),
        );
    }
    if spec.versions.iter().filter(|v| v.storage).count() != 1 {
        errs.push(
            vp.clone(),
            Reason::Message("must have exactly one version marked as storage version".to_string()),
        );
    }

    let np = sp.key("names");
    let n = &spec.names;
    if n.plural.is_empty() {
        errs.required(np.key("plural"));
    }
    if n.singular.as_deref().is_none_or(str::is_empty) {
        errs.required(np.key("singular"));
    }
    if n.kind.is_empty() {
        errs.required(np.key("kind"));
    }
    if n.list_kind.as_deref().is_none_or(str::is_empty) {
        errs.required(np.key("listKind"));
    }
    validate_names(&mut errs, n, &np);
    conversion(&mut errs, crd, &sp.key("conversion"));
    errs.0
}

/// Validates an update of a CRD: everything [`validate_crd`] checks, the fields that may
/// not change (`group`, `names.plural`; `scope` and `names.kind` once established), and
/// that every stored version is still listed.
pub fn validate_crd_update(
    crd: &CustomResourceDefinition,
    old: &CustomResourceDefinition,
) -> Vec<FieldError> {
    let mut errs = Errs(validate_crd(crd));
    let sp = FieldPath::root().key("spec");
    let mut immutable = |path: FieldPath, new: &str, old: &str| {
        if new != old {
            errs.invalid(path, new, "field is immutable");
        }
    };
    immutable(sp.key("group"), &crd.spec.group, &old.spec.group);
    immutable(
        sp.key("names").key("plural"),
        &crd.spec.names.plural,
        &old.spec.names.plural,
    );
    if is_condition_true(old, ESTABLISHED) {
        immutable(sp.key("scope"), &crd.spec.scope, &old.spec.scope);
        immutable(
            sp.key("names").key("kind"),
            &crd.spec.names.kind,
            &old.spec.names.kind,
        );
    }
    let stored = crd
        .status
        .as_ref()
        .and_then(|s| s.stored_versions.as_deref())
        .unwrap_or(&[]);
    let path = FieldPath::root().key("status").key("storedVersions");
    for (i, v) in stored.iter().enumerate() {
        if !crd.spec.versions.iter().any(|sv| sv.name == *v) {
            errs.invalid(
                path.index(i),
                v,
                format!(
                    "missing from spec.versions; {v} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {v} and removes {v} from status.storedVersions"
                ),
            );
        }
    }
    errs.0
}

/// Plural, singular, short names, kind, list kind and categories
/// (`ValidateCustomResourceDefinitionNames`).
fn validate_names(errs: &mut Errs, n: &CustomResourceDefinitionNames, path: &FieldPath) {
    let mut label = |field: &str, value: &str, mixed_case: bool| {
        if value.is_empty() {
            return;
        }
        let checked = if mixed_case {
            value.to_lowercase()
        } else {
            value.to_string()
        };
        if let problems @ [_, ..] = dns1035_label(&checked).as_slice() {
            let detail = problems.join(",");
            let detail = if mixed_case {
                format!("may have mixed case, but should otherwise match: {detail}")
            } else {
                detail
            };
            errs.invalid(path.key(field), value, detail);
        }
    };
    label("plural", &n.plural, false);
    label("singular", n.singular.as_deref().unwrap_or(""), false);
    label("kind", &n.kind, true);
    let list_kind = n.list_kind.as_deref().unwrap_or("");
    label("listKind", list_kind, true);
    for (field, list) in [
        ("shortNames", &n.short_names),
        ("categories", &n.categories),
    ] {
        for (i, s) in list.iter().flatten().enumerate() {
            if let problems @ [_, ..] = dns1035_label(s).as_slice() {
                errs.invalid(path.key(field).index(i), s, problems.join(","));
            }
        }
    }
    if !n.kind.is_empty() && n.kind == list_kind {
        errs.invalid(
            path.key("listKind"),
            list_kind,
            "kind and listKind may not be the same",
        );
    }
}

/// One entry of `spec.versions`.
fn version(errs: &mut Errs, v: &CustomResourceDefinitionVersion, path: &FieldPath) {
    let deprecated = v.deprecated == Some(true);
    if let Some(warning) = &v.deprecation_warning {
        let wp = path.key("deprecationWarning");
        if !deprecated {
            errs.invalid(
                wp.clone(),
                warning,
                "can only be set for deprecated versions",
            );
        }
        if warning.len() > 256 {
            errs.invalid(wp.clone(), warning, "must be <= 256 characters long");
        }
        if warning.is_empty() {
            errs.invalid(wp, warning, "must not be an empty string");
        }
    }
    let schema_path = path.key("schema").key("openAPIV3Schema");
    match v
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
    {
        None => errs.required_because(schema_path, "schemas are required"),
        Some(s) => errs.0.extend(structural::validate_schema(s, &schema_path)),
    }
    if let Some(scale) = v.subresources.as_ref().and_then(|s| s.scale.as_ref()) {
        let sub = path.key("subresources");
        let mut scale_path = |field: &str, value: &str, prefixes: &[&str], under: &str| {
            let p = sub.key(format!("scale.{field}"));
            if value.is_empty() {
                errs.required(p);
            } else if let Some(problem) = simple_json_path(value) {
                errs.invalid(p, value, problem);
            } else if !prefixes.iter().any(|pre| value.starts_with(pre)) {
                errs.invalid(p, value, format!("should be a json path under {under}"));
            }
        };
        scale_path(
            "specReplicasPath",
            &scale.spec_replicas_path,
            &[".spec."],
            ".spec",
        );
        scale_path(
            "statusReplicasPath",
            &scale.status_replicas_path,
            &[".status."],
            ".status",
        );
        if let Some(selector) = scale
            .label_selector_path
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            scale_path(
                "labelSelectorPath",
                selector,
                &[".spec.", ".status."],
                "either .spec or .status",
            );
        }
    }
    for (i, c) in v.additional_printer_columns.iter().flatten().enumerate() {
        let cp = path.key("additionalPrinterColumns").index(i);
        if c.name.is_empty() {
            errs.required(cp.key("name"));
        }
        let types = format!("must be one of {}", COLUMN_TYPES.join(","));
        if c.type_.is_empty() {
            errs.required_because(cp.key("type"), &types);
        } else if !COLUMN_TYPES.contains(&c.type_.as_str()) {
            errs.invalid(cp.key("type"), &c.type_, types);
        }
        if let Some(f) = c.format.as_deref().filter(|f| !f.is_empty())
            && !COLUMN_FORMATS.contains(&f)
        {
            errs.invalid(
                cp.key("format"),
                f,
                format!("must be one of {}", COLUMN_FORMATS.join(",")),
            );
        }
        if c.json_path.is_empty() {
            errs.required(cp.key("JSONPath"));
        } else if let Some(problem) = simple_json_path(&c.json_path) {
            errs.invalid(cp.key("JSONPath"), &c.json_path, problem);
        } else if let Err(e) = JsonPath::parse(&c.json_path) {
            // Stricter than Kubernetes, which accepts any path here and shows an empty
            // cell when it cannot evaluate it: rk8s says so when the CRD is written.
            errs.invalid(cp.key("JSONPath"), &c.json_path, e.to_string());
        }
    }
}

/// apiextensions `validateSimpleJSONPath`.
fn simple_json_path(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("must not be empty")
    } else if !s.starts_with('.') {
        Some("must be a simple json path starting with .")
    } else {
        None
    }
}

/// `spec.conversion`: only `None` (rk8s runs no conversion webhooks).
fn conversion(errs: &mut Errs, crd: &CustomResourceDefinition, path: &FieldPath) {
    let Some(c) = &crd.spec.conversion else {
        return;
    };
    let sp = path.key("strategy");
    match c.strategy.as_str() {
        "" => errs.required(sp),
        "None" => {
            if let Some(w) = &c.webhook {
                if w.client_config.is_some() {
                    errs.push(
                        path.key("webhook").key("clientConfig"),
                        Reason::Forbidden(
                            "should not be set when strategy is not set to Webhook".to_string(),
                        ),
                    );
                }
                if !w.conversion_review_versions.is_empty() {
                    errs.push(
                        path.key("webhook").key("conversionReviewVersions"),
                        Reason::Forbidden(
                            "should not be set when strategy is not set to Webhook".to_string(),
                        ),
                    );
                }
            }
        }
        "Webhook" => errs.push(
            sp,
            Reason::Forbidden(
                "rk8s does not support conversion webhooks: use strategy None (objects of every served version are then converted by rewriting apiVersion only)"
                    .to_string(),
            ),
        ),
        other => errs.not_supported(sp, other, &["None", "Webhook"]),
    }
}

/// Names already in use in a CRD's API group, which the CRD may not take: the plurals,
/// singulars and short names (`resources`) and the kinds and list kinds (`kinds`) of the
/// group's other CRDs, and of the built-in kinds the caller adds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TakenNames {
    /// Resource names: plurals, singulars and short names.
    pub resources: BTreeSet<String>,
    /// Kinds and list kinds.
    pub kinds: BTreeSet<String>,
}

impl TakenNames {
    /// The names the other CRDs of `group` have been granted (their
    /// `status.acceptedNames`), skipping the CRD named `own_name` (the one being
    /// checked), as kube-apiserver's naming controller gathers them.
    pub fn from_crds<'a>(
        group: &str,
        own_name: &str,
        crds: impl IntoIterator<Item = &'a CustomResourceDefinition>,
    ) -> Self {
        let mut taken = Self::default();
        for crd in crds {
            if crd.spec.group != group || crd.metadata.name.as_deref() == Some(own_name) {
                continue;
            }
            if let Some(names) = crd.status.as_ref().and_then(|s| s.accepted_names.as_ref()) {
                taken.add_names(names);
            }
        }
        taken
    }

    /// Marks every name of `names` as taken.
    pub fn add_names(&mut self, names: &CustomResourceDefinitionNames) {
        for r in [Some(&names.plural), names.singular.as_ref()]
            .into_iter()
            .flatten()
            .chain(names.short_names.iter().flatten())
        {
            if !r.is_empty() {
                self.resources.insert(r.clone());
            }
        }
        for k in [Some(&names.kind), names.list_kind.as_ref()]
            .into_iter()
            .flatten()
        {
            if !k.is_empty() {
                self.kinds.insert(k.clone());
            }
        }
    }

    /// Marks a built-in resource name (plural or short name) as taken.
    #[must_use]
    pub fn with_resource(mut self, name: impl Into<String>) -> Self {
        self.resources.insert(name.into());
        self
    }

    /// Marks a built-in kind as taken.
    #[must_use]
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kinds.insert(kind.into());
        self
    }
}

fn is_condition_true(crd: &CustomResourceDefinition, type_: &str) -> bool {
    find_condition(crd, type_).is_some_and(|c| c.status == "True")
}

fn find_condition<'a>(
    crd: &'a CustomResourceDefinition,
    type_: &str,
) -> Option<&'a CustomResourceDefinitionCondition> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `requested` may be granted when it is already ours or nobody else's
/// (naming controller `equalToAcceptedOrFresh`).
fn check_name(requested: &str, accepted: &str, taken: &BTreeSet<String>) -> Result<(), String> {
    if requested == accepted || !taken.contains(requested) {
        Ok(())
    } else {
        Err(format!("\"{requested}\" is already in use"))
    }
}

/// The status the API server keeps for `crd`, given the names already `taken` in its
/// group: `acceptedNames`, the `NamesAccepted` and `Established` conditions, and
/// `storedVersions` (the storage version added). Conditions keep their
/// `lastTransitionTime` while their status does not change; new ones get `now`.
///
/// kube-apiserver's naming controller grants each name that is not in use (reasons
/// `PluralConflict`, `SingularConflict`, `ShortNamesConflict`, `KindConflict`,
/// `ListKindConflict`: `"crontabs" is already in use`), and its establishing controller
/// then sets `Established`; rk8s serves a CRD as soon as its names are accepted, so both
/// happen here. A CRD once established stays so.
pub fn compute_status(
    crd: &CustomResourceDefinition,
    taken: &TakenNames,
    now: &Time,
) -> CustomResourceDefinitionStatus {
    let requested = &crd.spec.names;
    let old = crd.status.clone().unwrap_or_default();
    let accepted = old.accepted_names.clone().unwrap_or_default();
    let mut granted = accepted.clone();
    let mut conflict: Option<(&str, String)> = None;
    let mut fail = |reason: &'static str, message: String| {
        // Later conflicts overwrite earlier ones, as in the naming controller.
        conflict = Some((reason, message));
    };

    match check_name(&requested.plural, &accepted.plural, &taken.resources) {
        Ok(()) => granted.plural = requested.plural.clone(),
        Err(e) => fail("PluralConflict", e),
    }
    let singular = requested.singular.clone().unwrap_or_default();
    match check_name(
        &singular,
        accepted.singular.as_deref().unwrap_or(""),
        &taken.resources,
    ) {
        Ok(()) => granted.singular = Some(singular).filter(|s| !s.is_empty()),
        Err(e) => fail("SingularConflict", e),
    }
    if requested.short_names != accepted.short_names {
        let mine: BTreeSet<&String> = accepted.short_names.iter().flatten().collect();
        let errors: Vec<String> = requested
            .short_names
            .iter()
            .flatten()
            .filter(|s| !mine.contains(s))
            .filter_map(|s| check_name(s, "", &taken.resources).err())
            .collect();
        match errors.as_slice() {
            [] => granted.short_names = requested.short_names.clone(),
            [one] => fail("ShortNamesConflict", one.clone()),
            many => fail("ShortNamesConflict", format!("[{}]", many.join(", "))),
        }
    }
    match check_name(&requested.kind, &accepted.kind, &taken.kinds) {
        Ok(()) => granted.kind = requested.kind.clone(),
        Err(e) => fail("KindConflict", e),
    }
    let list_kind = requested.list_kind.clone().unwrap_or_default();
    match check_name(
        &list_kind,
        accepted.list_kind.as_deref().unwrap_or(""),
        &taken.kinds,
    ) {
        Ok(()) => granted.list_kind = Some(list_kind).filter(|s| !s.is_empty()),
        Err(e) => fail("ListKindConflict", e),
    }
    granted.categories = requested.categories.clone();

    let names_accepted = match conflict {
        Some((reason, message)) => ("False", reason, message),
        None => ("True", "NoConflicts", "no conflicts found".to_string()),
    };
    let established = if is_condition_true(crd, ESTABLISHED) || names_accepted.0 == "True" {
        (
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted".to_string(),
        )
    } else {
        (
            "False",
            "NotAccepted",
            "not all names are accepted".to_string(),
        )
    };

    let mut conditions: Vec<CustomResourceDefinitionCondition> = old
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_ != NAMES_ACCEPTED && c.type_ != ESTABLISHED)
        .collect();
    for (type_, (status, reason, message)) in
        [(NAMES_ACCEPTED, names_accepted), (ESTABLISHED, established)]
    {
        let since = find_condition(crd, type_)
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        conditions.push(CustomResourceDefinitionCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message),
            last_transition_time: Some(since),
        });
    }

    let mut stored = old.stored_versions.clone().unwrap_or_default();
    if let Some(storage) = storage_version(crd)
        && !stored.contains(&storage.name)
    {
        stored.push(storage.name.clone());
    }
    CustomResourceDefinitionStatus {
        accepted_names: Some(granted),
        conditions: Some(conditions),
        stored_versions: Some(stored),
    }
}

#[cfg(test)]
mod tests;
