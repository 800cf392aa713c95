//! Indexed Jobs (`completionMode: Indexed`), as kube-controller-manager runs them:
//! each pod has a completion index in `0..completions` (annotation and label
//! `batch.kubernetes.io/job-completion-index`, `JOB_COMPLETION_INDEX` in its
//! containers' environment, hostname `JOB-INDEX`); the Job is complete when every
//! index has a succeeded pod. Which indexes succeeded is the status'
//! `completedIndexes` (`"0-2,5"`). Pure helpers of [`crate::job`].

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};

/// The annotation and label holding a pod's completion index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable holding it.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// A pod's completion index, if it has a valid one below `completions`.
pub fn index_of(pod: &Pod, completions: usize) -> Option<usize> {
    let value = pod.metadata.annotations.as_ref()?.get(INDEX_KEY)?;
    // `01` is not index 1's way of writing it.
    if value.len() > 1 && value.starts_with('0') {
        return None;
    }
    let index: usize = value.parse().ok()?;
    (index < completions).then_some(index)
}

/// Reads `completedIndexes` (`"1,3-5,7"`); parts that do not read are skipped, and
/// none at or beyond `completions` is kept (a range is never walked past it).
pub fn parse(text: Option<&str>, completions: usize) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for part in text
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (low, high) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (part.parse(), part.parse()),
        };
        let (Ok(low), Ok(high)) = (low, high) else {
            continue;
        };
        out.extend(low..=high.min(completions.saturating_sub(1)));
    }
    out
}

/// Writes indexes as `completedIndexes` does: ascending, runs as `a-b`.
pub fn format(indexes: &BTreeSet<usize>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    for &i in indexes {
        run = match run {
            Some((a, b)) if b + 1 == i => Some((a, i)),
            Some((a, b)) => {
                parts.push(interval(a, b));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((a, b)) = run {
        parts.push(interval(a, b));
    }
    parts.join(",")
}

fn interval(a: usize, b: usize) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// What the active pods of an Indexed Job call for: those to delete (no valid
/// index, an index that succeeded already, or a second pod of one index — the newest
/// goes) and the lowest indexes with no pod, up to `room` of them.
pub fn plan(
    active: &[&Pod],
    completed: &BTreeSet<usize>,
    completions: usize,
    room: usize,
) -> (Vec<String>, Vec<usize>) {
    let mut by_index: BTreeMap<usize, Vec<&Pod>> = BTreeMap::new();
    let mut delete = Vec::new();
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    for pod in active {
        match index_of(pod, completions) {
            Some(i) if !completed.contains(&i) => by_index.entry(i).or_default().push(pod),
            _ => delete.push(name(pod)),
        }
    }
    for pods in by_index.values_mut() {
        pods.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        delete.extend(pods.iter().skip(1).map(|p| name(p)));
    }
    let create = (0..completions)
        .filter(|i| !completed.contains(i) && !by_index.contains_key(i))
        .take(room)
        .collect();
    (delete, create)
}

/// The template of index `index`'s pod for the Job named `job`: the index as
/// annotation, label and `JOB_COMPLETION_INDEX` (read from the annotation, as
/// Kubernetes adds it), and hostname `JOB-INDEX` unless the template names one.
pub fn template_for(mut template: PodTemplateSpec, job: &str, index: usize) -> PodTemplateSpec {
    let meta = template.metadata.get_or_insert_with(Default::default);
    let i = index.to_string();
    let annotations = meta.annotations.get_or_insert_with(Default::default);
    annotations.insert(INDEX_KEY.to_string(), i.clone());
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.insert(INDEX_KEY.to_string(), i);
    let spec = template.spec.get_or_insert_with(Default::default);
    if spec.hostname.as_deref().is_none_or(str::is_empty) {
        spec.hostname = Some(format!("{job}-{index}"));
    }
    let env = EnvVar {
        name: INDEX_ENV.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: format!("metadata.annotations['{INDEX_KEY}']"),
                api_version: Some("v1".into()),
            }),
            ..Default::default()
        }),
        value: None,
    };
    let containers = spec.init_containers.iter_mut().flatten();
    for c in containers.chain(spec.containers.iter_mut()) {
        let vars = c.env.get_or_insert_with(Vec::new);
        if !vars.iter().any(|v| v.name == INDEX_ENV) {
            vars.push(env.clone());
        }
    }
    template
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_read_and_write_as_kubernetes_does() {
        let set = parse(Some("0-2,5,7-8"), 10);
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 5, 7, 8]);
        assert_eq!(format(&set), "0-2,5,7-8");
        assert_eq!(format(&BTreeSet::new()), "");
        // Beyond completions, or unreadable, is left out (and never walked).
        assert_eq!(format(&parse(Some("1,x,3-999999999999,12"), 5)), "1,3-4");
    }

    fn pod(name: &str, index: &str, created: &str) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name,
            "creationTimestamp": created,
            "annotations": {INDEX_KEY: index}}}))
        .unwrap()
    }

    #[test]
    fn each_index_gets_one_pod_the_lowest_missing_first() {
        let a = pod("a", "0", "2026-01-01T00:00:00Z");
        let b = pod("b", "0", "2026-01-01T00:00:01Z");
        let c = pod("c", "3", "2026-01-01T00:00:00Z");
        let d = pod("d", "07", "2026-01-01T00:00:00Z");
        let e = pod("e", "9", "2026-01-01T00:00:00Z");
        let done: BTreeSet<usize> = [1, 3].into();
        let (delete, create) = plan(&[&a, &b, &c, &d, &e], &done, 5, 2);
        assert_eq!(delete, ["c", "d", "e", "b"]);
        assert_eq!(create, [2, 4]);
    }

    #[test]
    fn pods_of_an_index_carry_it() {
        let template: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "c", "image": "x"}]}}))
        .unwrap();
        let t = template_for(template, "render", 4);
        let meta = t.metadata.unwrap();
        assert_eq!(meta.annotations.unwrap()[INDEX_KEY], "4");
        assert_eq!(meta.labels.unwrap()[INDEX_KEY], "4");
        let spec = t.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("render-4"));
        let env = &spec.containers[0].env.as_ref().unwrap()[0];
        assert_eq!(env.name, INDEX_ENV);
        assert_eq!(
            env.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
    }
}
