//! kube-apiserver's LimitRanger admission (`plugin/pkg/admission/limitranger`): the
//! LimitRanges of a pod's namespace give its containers (and init containers) the
//! default limits and requests they lack — noted in the pod's
//! `kubernetes.io/limit-ranger` annotation — and hold containers, the pod as a whole
//! and PersistentVolumeClaims to their `min`, `max` and `maxLimitRequestRatio`, with
//! kube's 403 and wording (`pods "web" is forbidden: maximum cpu usage per Container
//! is 500m, but limit is 1`). Only creates of pods are checked, as kube-apiserver does
//! (a pod's containers cannot change afterwards); claims on create and update.
//!
//! LimitRanges are read from an in-memory lister (as kube reads an informer): one
//! created a moment before a pod may not apply to it yet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, LimitRange, LimitRangeItem, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Wire;
use rk8s_api::AnyObject;
use rk8s_api::quantity::Quantity;

use crate::lister::Lister;
use crate::status::{ApiError, ApiResult};

/// The annotation that says what LimitRanger set.
const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// kube's `resource.MaxMilliValue`: beyond it values are compared whole.
const MAX_MILLI_VALUE: i64 = (i64::MAX / 1000) - 1;

type List = BTreeMap<String, Quantity>;

fn list(wire: Option<&BTreeMap<String, Wire>>) -> List {
    wire.into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Quantity::try_from(v).ok()?)))
        .collect()
}

/// Admits `obj` (being created, or replacing an object, for `update`) against the
/// LimitRanges of its namespace in `ranges`: defaults set, limits held.
pub fn admit(ranges: &Lister, obj: &mut AnyObject, update: bool) -> ApiResult<()> {
    let (is_pod, namespace) = match &*obj {
        AnyObject::Pod(_) if !update => (true, obj.namespace()),
        AnyObject::PersistentVolumeClaim(_) => (false, obj.namespace()),
        _ => return Ok(()),
    };
    let Some(namespace) = namespace.map(str::to_string) else {
        return Ok(());
    };
    let mut found: Vec<LimitRange> = ranges
        .list(Some(&namespace))
        .iter()
        .filter_map(|o| match o.as_ref() {
            AnyObject::LimitRange(l) => Some(l.as_ref().clone()),
            _ => None,
        })
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    found.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let resource = if is_pod {
        "pods"
    } else {
        "persistentvolumeclaims"
    };
    let name = obj.name().to_string();
    let forbidden = |errors: Vec<String>| {
        let message = match errors.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        ApiError::forbidden(format!("{resource} \"{name}\" is forbidden: {message}"))
    };
    match obj {
        AnyObject::Pod(pod) => {
            for range in &found {
                set_defaults(pod, range);
            }
            for range in &found {
                let errors = validate_pod(pod, range);
                if !errors.is_empty() {
                    return Err(forbidden(errors));
                }
            }
        }
        AnyObject::PersistentVolumeClaim(claim) => {
            let requests = list(
                claim
                    .spec
                    .as_ref()
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.requests.as_ref()),
            );
            for range in &found {
                let mut errors = Vec::new();
                for item in items(range, "PersistentVolumeClaim") {
                    for (k, v) in list(item.min.as_ref()) {
                        errors.extend(min(&item.type_, &k, &v, &requests, &List::new()));
                    }
                    for (k, v) in list(item.max.as_ref()) {
                        errors.extend(max_request(&item.type_, &k, &v, &requests));
                    }
                }
                if !errors.is_empty() {
                    return Err(forbidden(errors));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn items<'a>(range: &'a LimitRange, kind: &'a str) -> impl Iterator<Item = &'a LimitRangeItem> {
    range
        .spec
        .iter()
        .flat_map(|s| s.limits.iter())
        .filter(move |i| i.type_ == kind)
}

/// kube's `mergePodResourceRequirements`: what each container lacks of the range's
/// `default` (limits) and `defaultRequest`, and the annotation saying so.
fn set_defaults(pod: &mut Pod, range: &LimitRange) {
    let mut limits = BTreeMap::new();
    let mut requests = BTreeMap::new();
    for item in items(range, "Container") {
        limits.extend(item.default.clone().unwrap_or_default());
        requests.extend(item.default_request.clone().unwrap_or_default());
    }
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let mut notes = Vec::new();
    let merge = |c: &mut Container, what: &str, notes: &mut Vec<String>| {
        let resources = c.resources.get_or_insert_with(Default::default);
        let set = |have: &mut Option<BTreeMap<String, Wire>>,
                   defaults: &BTreeMap<String, Wire>|
         -> Vec<String> {
            let have = have.get_or_insert_with(BTreeMap::new);
            let mut added = Vec::new();
            for (k, v) in defaults {
                if !have.contains_key(k) {
                    have.insert(k.clone(), v.clone());
                    added.push(k.clone());
                }
            }
            added
        };
        let set_limits = set(&mut resources.limits, &limits);
        let set_requests = set(&mut resources.requests, &requests);
        if !set_requests.is_empty() {
            notes.push(format!(
                "{} request for {what} {}",
                set_requests.join(", "),
                c.name
            ));
        }
        if !set_limits.is_empty() {
            notes.push(format!(
                "{} limit for {what} {}",
                set_limits.join(", "),
                c.name
            ));
        }
    };
    for c in &mut spec.containers {
        merge(c, "container", &mut notes);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        merge(c, "init container", &mut notes);
    }
    if !notes.is_empty() {
        pod.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(
                ANNOTATION.to_string(),
                format!("LimitRanger plugin set: {}", notes.join("; ")),
            );
    }
}

fn container_lists(c: &Container) -> (List, List) {
    let r = c.resources.as_ref();
    (
        list(r.and_then(|r| r.requests.as_ref())),
        list(r.and_then(|r| r.limits.as_ref())),
    )
}

/// kube's `PodValidateLimitFunc`: every container and init container against the
/// `Container` items, the pod's total against the `Pod` items.
fn validate_pod(pod: &Pod, range: &LimitRange) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return errors;
    };
    let check =
        |item: &LimitRangeItem, requests: &List, limits: &List, errors: &mut Vec<String>| {
            let t = &item.type_;
            for (k, v) in list(item.min.as_ref()) {
                errors.extend(min(t, &k, &v, requests, limits));
            }
            for (k, v) in list(item.max.as_ref()) {
                errors.extend(max(t, &k, &v, requests, limits));
            }
            for (k, v) in list(item.max_limit_request_ratio.as_ref()) {
                errors.extend(ratio(t, &k, &v, requests, limits));
            }
        };
    for item in range.spec.iter().flat_map(|s| s.limits.iter()) {
        match item.type_.as_str() {
            "Container" => {
                for c in spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                {
                    let (requests, limits) = container_lists(c);
                    check(item, &requests, &limits, &mut errors);
                }
            }
            "Pod" => {
                let (requests, limits) = pod_totals(pod);
                check(item, &requests, &limits, &mut errors);
            }
            _ => {}
        }
    }
    errors
}

/// A pod's requests and limits as component-helpers aggregates them: the containers'
/// and sidecars' (restartable init containers') sum, or the most any other init
/// container needs with the sidecars started before it, whichever is more.
fn pod_totals(pod: &Pod) -> (List, List) {
    let Some(spec) = pod.spec.as_ref() else {
        return (List::new(), List::new());
    };
    let add = |into: &mut List, from: &List| {
        for (k, v) in from {
            let sum = match into.get(k) {
                Some(have) => have.checked_add(v).unwrap_or(*have),
                None => *v,
            };
            into.insert(k.clone(), sum);
        }
    };
    let at_least = |into: &mut List, from: &List| {
        for (k, v) in from {
            if into.get(k).is_none_or(|have| have < v) {
                into.insert(k.clone(), *v);
            }
        }
    };
    let (mut requests, mut limits) = (List::new(), List::new());
    for c in &spec.containers {
        let (r, l) = container_lists(c);
        add(&mut requests, &r);
        add(&mut limits, &l);
    }
    let (mut sidecar_requests, mut sidecar_limits) = (List::new(), List::new());
    let (mut init_requests, mut init_limits) = (List::new(), List::new());
    for c in spec.init_containers.iter().flatten() {
        let (r, l) = container_lists(c);
        if c.restart_policy.as_deref() == Some("Always") {
            add(&mut requests, &r);
            add(&mut limits, &l);
            add(&mut sidecar_requests, &r);
            add(&mut sidecar_limits, &l);
        } else {
            let (mut r2, mut l2) = (sidecar_requests.clone(), sidecar_limits.clone());
            add(&mut r2, &r);
            add(&mut l2, &l);
            at_least(&mut init_requests, &r2);
            at_least(&mut init_limits, &l2);
        }
    }
    at_least(&mut requests, &init_requests);
    at_least(&mut limits, &init_limits);
    (requests, limits)
}

/// kube's `requestLimitEnforcedValues`: milli-units when all three fit, else units.
fn values(
    request: Option<&Quantity>,
    limit: Option<&Quantity>,
    enforced: &Quantity,
) -> (i64, i64, i64) {
    let whole = |q: Option<&Quantity>| q.map_or(0, Quantity::value);
    let milli = |q: Option<&Quantity>| q.map_or(0, Quantity::milli_value);
    let fits = [whole(request), whole(limit), enforced.value()]
        .iter()
        .all(|v| *v <= MAX_MILLI_VALUE);
    if fits {
        (milli(request), milli(limit), enforced.milli_value())
    } else {
        (whole(request), whole(limit), enforced.value())
    }
}

fn min(t: &str, k: &str, enforced: &Quantity, requests: &List, limits: &List) -> Option<String> {
    let (req, lim) = (requests.get(k), limits.get(k));
    let (r, l, e) = values(req, lim, enforced);
    let e_text = enforced.canonical();
    match (req, lim) {
        (None, _) => Some(format!(
            "minimum {k} usage per {t} is {e_text}.  No request is specified"
        )),
        (Some(req), _) if r < e => Some(format!(
            "minimum {k} usage per {t} is {e_text}, but request is {}",
            req.canonical()
        )),
        (_, Some(lim)) if l < e => Some(format!(
            "minimum {k} usage per {t} is {e_text}, but limit is {}",
            lim.canonical()
        )),
        _ => None,
    }
}

fn max(t: &str, k: &str, enforced: &Quantity, requests: &List, limits: &List) -> Option<String> {
    let (req, lim) = (requests.get(k), limits.get(k));
    let (r, l, e) = values(req, lim, enforced);
    let e_text = enforced.canonical();
    match (req, lim) {
        (_, None) => Some(format!(
            "maximum {k} usage per {t} is {e_text}.  No limit is specified"
        )),
        (_, Some(lim)) if l > e => Some(format!(
            "maximum {k} usage per {t} is {e_text}, but limit is {}",
            lim.canonical()
        )),
        (Some(req), _) if r > e => Some(format!(
            "maximum {k} usage per {t} is {e_text}, but request is {}",
            req.canonical()
        )),
        _ => None,
    }
}

/// A claim's `max`: held against its request (claims have no limits).
fn max_request(t: &str, k: &str, enforced: &Quantity, requests: &List) -> Option<String> {
    let req = requests.get(k);
    let (r, _, e) = values(req, None, enforced);
    let e_text = enforced.canonical();
    match req {
        None => Some(format!(
            "maximum {k} usage per {t} is {e_text}.  No request is specified"
        )),
        Some(req) if r > e => Some(format!(
            "maximum {k} usage per {t} is {e_text}, but request is {}",
            req.canonical()
        )),
        _ => None,
    }
}

fn ratio(t: &str, k: &str, enforced: &Quantity, requests: &List, limits: &List) -> Option<String> {
    let (req, lim) = (requests.get(k), limits.get(k));
    let (r, l, _) = values(req, lim, enforced);
    let e_text = enforced.canonical();
    if req.is_none() || r == 0 {
        return Some(format!(
            "{k} max limit to request ratio per {t} is {e_text}, but no request is specified or request is 0"
        ));
    }
    if lim.is_none() || l == 0 {
        return Some(format!(
            "{k} max limit to request ratio per {t} is {e_text}, but no limit is specified or limit is 0"
        ));
    }
    let observed = l as f64 / r as f64;
    let (scaled, allowed) = if enforced.value() <= MAX_MILLI_VALUE {
        (observed * 1000.0, enforced.milli_value() as f64)
    } else {
        (observed, enforced.value() as f64)
    };
    (scaled > allowed).then(|| {
        format!(
            "{k} max limit to request ratio per {t} is {e_text}, but provided ratio is {observed:.6}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(json: serde_json::Value) -> LimitRange {
        serde_json::from_value(json).unwrap()
    }

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_fill_what_containers_lack_and_say_so() {
        let r = range(serde_json::json!({"spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]}}));
        let mut p = pod(serde_json::json!({"metadata": {"name": "web"}, "spec": {
            "containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"}}},
                           {"name": "b", "image": "x"}],
            "initContainers": [{"name": "i", "image": "x",
                "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]}}));
        set_defaults(&mut p, &r);
        let spec = p.spec.as_ref().unwrap();
        let a = spec.containers[0].resources.as_ref().unwrap();
        assert_eq!(a.limits.as_ref().unwrap()["cpu"].0, "1");
        assert_eq!(a.limits.as_ref().unwrap()["memory"].0, "256Mi");
        assert_eq!(a.requests.as_ref().unwrap()["cpu"].0, "100m");
        assert_eq!(
            p.metadata.annotations.unwrap()[ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container a; memory limit for container a; cpu, memory request for container b; cpu, memory limit for container b"
        );
    }

    #[test]
    fn containers_and_pods_are_held_to_min_max_and_ratio_in_kubes_words() {
        let r = range(serde_json::json!({"spec": {"limits": [
            {"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "500m", "memory": "1Gi"},
             "maxLimitRequestRatio": {"cpu": "2"}},
            {"type": "Pod", "max": {"cpu": "800m"}}]}}));
        let p = pod(
            serde_json::json!({"metadata": {"name": "web"}, "spec": {"containers": [
            {"name": "a", "image": "x", "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "1"}}},
            {"name": "b", "image": "x", "resources": {"requests": {"cpu": "200m"},
                "limits": {"cpu": "300m", "memory": "512Mi"}}}]}}),
        );
        assert_eq!(
            validate_pod(&p, &r),
            [
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum cpu usage per Container is 500m, but limit is 1",
                "maximum memory usage per Container is 1Gi.  No limit is specified",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 20.000000",
                "maximum cpu usage per Pod is 800m, but limit is 1300m",
            ]
        );
        let fine = pod(
            serde_json::json!({"metadata": {"name": "ok"}, "spec": {"containers": [
            {"name": "a", "image": "x", "resources": {"requests": {"cpu": "200m"},
                "limits": {"cpu": "300m", "memory": "512Mi"}}}]}}),
        );
        assert!(validate_pod(&fine, &r).is_empty());
    }

    #[test]
    fn init_containers_count_as_kube_aggregates_them() {
        let p = pod(serde_json::json!({"metadata": {"name": "web"}, "spec": {
            "containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [
                {"name": "side", "image": "x", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "50m"}}},
                {"name": "setup", "image": "x", "resources": {"requests": {"cpu": "500m"}}}]}}));
        let (requests, _) = pod_totals(&p);
        // max(100m + 50m, 50m + 500m)
        assert_eq!(requests["cpu"].canonical(), "550m");
    }

    #[test]
    fn claims_are_held_to_their_storage_range() {
        let r = range(serde_json::json!({"spec": {"limits": [
            {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]}}));
        let claim = |size: &str| -> k8s_openapi::api::core::v1::PersistentVolumeClaim {
            serde_json::from_value(
                serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}}),
            )
            .unwrap()
        };
        let errors = |size: &str| {
            let c = claim(size);
            let requests = list(
                c.spec
                    .as_ref()
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.requests.as_ref()),
            );
            let mut out = Vec::new();
            for item in items(&r, "PersistentVolumeClaim") {
                for (k, v) in list(item.min.as_ref()) {
                    out.extend(min(&item.type_, &k, &v, &requests, &List::new()));
                }
                for (k, v) in list(item.max.as_ref()) {
                    out.extend(max_request(&item.type_, &k, &v, &requests));
                }
            }
            out
        };
        assert!(errors("5Gi").is_empty());
        assert_eq!(
            errors("20Gi"),
            ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
        );
        assert_eq!(
            errors("500Mi"),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
    }
}
