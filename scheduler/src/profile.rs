//! Profiles: which plugins run at which extension point, with which weights and
//! arguments, per `schedulerName`. `rk8s-server --scheduler-config FILE` reads them
//! from a `KubeSchedulerConfiguration`-shaped YAML file:
//!
//! ```yaml
//! percentageOfNodesToScore: 0          # 0: Kubernetes' adaptive default
//! profiles:
//! - schedulerName: default-scheduler   # the defaults, when no file is given
//! - schedulerName: bin-packing
//!   pluginConfig:
//!   - name: NodeResourcesFit
//!     args: {scoringStrategy: {type: MostAllocated}}
//! - schedulerName: round-robin
//!   plugins:
//!     multiPoint:
//!       enabled: [{name: RoundRobin}]  # its PreScore, Score and Reserve
//!     score:
//!       disabled: [{name: "*"}]        # also drops multiPoint's Score plugins...
//!       enabled: [{name: RoundRobin}]  # ...so RoundRobin's is named again
//! ```
//!
//! As in kube-scheduler, the default plugins are multiPoint ones, and only multiPoint
//! enables a plugin at every extension point it has; a plugin listed under one point
//! (`score`) runs there alone. A Score whose own PreScore or Reserve would not run is
//! refused (see [`build`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::framework::{Plugin, PodInfo};
use crate::plugins::{DEFAULTS, Registry};

/// The scheduler name pods get when they name none.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// The configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Configuration {
    /// `kubescheduler.config.k8s.io/v1` (optional).
    #[serde(default)]
    pub api_version: Option<String>,
    /// `KubeSchedulerConfiguration` (optional).
    #[serde(default)]
    pub kind: Option<String>,
    /// Share of nodes to find feasible before scoring (0: adaptive).
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<u32>,
    /// The profiles.
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
}

/// One profile.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileConfig {
    /// The name pods pick it by (`spec.schedulerName`).
    pub scheduler_name: String,
    /// Changes to the default plugin set, per extension point.
    #[serde(default)]
    pub plugins: Option<PluginsConfig>,
    /// Arguments per plugin.
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
    /// This profile's share of nodes to score.
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<u32>,
}

/// Enabled and disabled plugins per extension point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginsConfig {
    /// Every extension point a plugin has.
    #[serde(default)]
    pub multi_point: PluginSet,
    /// QueueSort (only PrioritySort exists).
    #[serde(default)]
    pub queue_sort: PluginSet,
    /// PreFilter.
    #[serde(default)]
    pub pre_filter: PluginSet,
    /// Filter.
    #[serde(default)]
    pub filter: PluginSet,
    /// PostFilter.
    #[serde(default)]
    pub post_filter: PluginSet,
    /// PreScore.
    #[serde(default)]
    pub pre_score: PluginSet,
    /// Score (weights here).
    #[serde(default)]
    pub score: PluginSet,
    /// Reserve.
    #[serde(default)]
    pub reserve: PluginSet,
    /// Bind (only DefaultBinder exists).
    #[serde(default)]
    pub bind: PluginSet,
}

/// Plugins turned on and off.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSet {
    /// Turned on (after the defaults), in order.
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    /// Turned off (`*`: every default).
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// A plugin by name, with a score weight.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// Its name.
    pub name: String,
    /// Its weight at Score (default: its default weight, else 1).
    #[serde(default)]
    pub weight: Option<i64>,
}

/// Arguments of one plugin.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin.
    pub name: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Option<serde_json::Value>,
}

/// A profile ready to run.
#[derive(Clone)]
pub struct Profile {
    /// Its scheduler name.
    pub name: String,
    /// Share of nodes to score (0: adaptive).
    pub percentage_of_nodes_to_score: u32,
    /// PreFilter plugins.
    pub pre_filter: Vec<Arc<dyn Plugin>>,
    /// Filter plugins.
    pub filter: Vec<Arc<dyn Plugin>>,
    /// PostFilter plugins.
    pub post_filter: Vec<Arc<dyn Plugin>>,
    /// PreScore plugins.
    pub pre_score: Vec<Arc<dyn Plugin>>,
    /// Score plugins with their weights.
    pub score: Vec<(Arc<dyn Plugin>, i64)>,
    /// Reserve plugins.
    pub reserve: Vec<Arc<dyn Plugin>>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |v: &[Arc<dyn Plugin>]| v.iter().map(|p| p.name()).collect::<Vec<_>>();
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("filter", &names(&self.filter))
            .field(
                "score",
                &self
                    .score
                    .iter()
                    .map(|(p, w)| (p.name(), *w))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Profile {
    /// Tells the Reserve plugins that `pod` is going to `node`.
    pub fn reserve(&self, pod: &PodInfo, node: &str) {
        for plugin in &self.reserve {
            if let Some(r) = plugin.reserve() {
                r.reserve(pod, node);
            }
        }
    }

    /// Tells the Reserve plugins that `pod` is not going to `node` after all (its
    /// binding failed).
    pub fn unreserve(&self, pod: &PodInfo, node: &str) {
        for plugin in &self.reserve {
            if let Some(r) = plugin.reserve() {
                r.unreserve(pod, node);
            }
        }
    }
}

fn default_weight(name: &str) -> i64 {
    DEFAULTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, w)| *w)
        .filter(|w| *w > 0)
        .unwrap_or(1)
}

/// Builds the profiles of `config` (the default profile when it has none).
///
/// Per extension point, as kube-scheduler's `NewFramework` builds its framework: the
/// multiPoint plugins that have the point (the defaults, minus `multiPoint.disabled`,
/// plus `multiPoint.enabled`), minus this point's `disabled` (`*`: all of them), plus
/// this point's `enabled`. A plugin that would run at Score without its own PreScore or
/// Reserve is an error, where kube-scheduler would fail every pod's cycle instead.
pub fn build(config: &Configuration, registry: &Registry) -> Result<Vec<Profile>, String> {
    let mut profiles = config.profiles.clone();
    if profiles.is_empty() {
        profiles.push(ProfileConfig {
            scheduler_name: DEFAULT_SCHEDULER.into(),
            ..Default::default()
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, p) in profiles.iter().enumerate() {
        if p.scheduler_name.is_empty() {
            return Err(format!("profiles[{i}].schedulerName: must be set"));
        }
        if !seen.insert(p.scheduler_name.clone()) {
            return Err(format!(
                "profiles[{i}].schedulerName: {:?} is used by another profile",
                p.scheduler_name
            ));
        }
        let percentage = p
            .percentage_of_nodes_to_score
            .or(config.percentage_of_nodes_to_score)
            .unwrap_or(0);
        if percentage > 100 {
            return Err(format!(
                "profiles[{i}].percentageOfNodesToScore: {percentage} is more than 100"
            ));
        }
        out.push(build_one(p, percentage, registry).map_err(|e| format!("profiles[{i}].{e}"))?);
    }
    Ok(out)
}

/// Whether a plugin has one extension point.
type Has = fn(&dyn Plugin) -> bool;

/// A plugin with its Score weight.
type Weighted = (Arc<dyn Plugin>, i64);

fn build_one(p: &ProfileConfig, percentage: u32, registry: &Registry) -> Result<Profile, String> {
    let args: BTreeMap<&str, &serde_json::Value> = p
        .plugin_config
        .iter()
        .filter_map(|c| c.args.as_ref().map(|a| (c.name.as_str(), a)))
        .collect();
    let plugins = p.plugins.clone().unwrap_or_default();
    let points: [(&str, &PluginSet, Has); 6] = [
        ("preFilter", &plugins.pre_filter, |p| {
            p.pre_filter().is_some()
        }),
        ("filter", &plugins.filter, |p| p.filter().is_some()),
        ("postFilter", &plugins.post_filter, |p| {
            p.post_filter().is_some()
        }),
        ("preScore", &plugins.pre_score, |p| p.pre_score().is_some()),
        ("score", &plugins.score, |p| p.score().is_some()),
        ("reserve", &plugins.reserve, |p| p.reserve().is_some()),
    ];
    let multi_point = merge_multi_point(&plugins.multi_point)?;
    // One instance per plugin, whatever the extension points it runs at: RoundRobin's
    // Reserve tells its PreScore where the last pod went.
    let mut made: BTreeMap<String, Arc<dyn Plugin>> = BTreeMap::new();
    let named = points.iter().flat_map(|(_, set, _)| set.enabled.iter());
    for e in multi_point.iter().chain(named) {
        if !made.contains_key(&e.name) {
            let plugin = registry
                .make(&e.name, args.get(e.name.as_str()).copied())
                .map_err(|err| format!("plugins: {}: {err}", e.name))?;
            made.insert(e.name.clone(), plugin);
        }
    }
    let mut profile = Profile {
        name: p.scheduler_name.clone(),
        percentage_of_nodes_to_score: percentage,
        pre_filter: Vec::new(),
        filter: Vec::new(),
        post_filter: Vec::new(),
        pre_score: Vec::new(),
        score: Vec::new(),
        reserve: Vec::new(),
    };
    for (point, set, has) in points {
        let chosen = expand(point, set, has, &multi_point, &made)?;
        if let Some((p, w)) = chosen.iter().find(|(_, w)| *w < 0) {
            return Err(format!(
                "plugins.{point}: {} has a negative weight {w}",
                p.name()
            ));
        }
        let plugins = chosen.iter().map(|(p, _)| p.clone()).collect();
        match point {
            "preFilter" => profile.pre_filter = plugins,
            "filter" => profile.filter = plugins,
            "postFilter" => profile.post_filter = plugins,
            "preScore" => profile.pre_score = plugins,
            "score" => profile.score = chosen,
            _ => profile.reserve = plugins,
        }
    }
    check_score_companions(&profile)?;
    Ok(profile)
}

fn unique(point: &str, set: &PluginSet) -> Result<(), String> {
    for (i, e) in set.enabled.iter().enumerate() {
        if set.enabled[..i].iter().any(|o| o.name == e.name) {
            return Err(format!("plugins.{point}: {} is enabled twice", e.name));
        }
    }
    Ok(())
}

/// The multiPoint list after the profile's changes, merged as kube-scheduler's
/// `mergePluginSet` (pkg/scheduler/apis/config/v1/default_plugins.go) merges them:
/// every default plugin is a multiPoint one there. The defaults in their order minus
/// `disabled` (`*`: all), a default named again in `enabled` replaced where it stands
/// (its new weight), then the other `enabled` plugins.
fn merge_multi_point(set: &PluginSet) -> Result<Vec<PluginRef>, String> {
    unique("multiPoint", set)?;
    let off = |n: &str| set.disabled.iter().any(|d| d.name == "*" || d.name == n);
    let mut merged: Vec<PluginRef> = DEFAULTS
        .iter()
        .filter(|(n, _)| !off(n))
        .map(|(n, _)| {
            set.enabled
                .iter()
                .find(|e| e.name == *n)
                .cloned()
                .unwrap_or_else(|| PluginRef {
                    name: n.to_string(),
                    weight: None,
                })
        })
        .collect();
    for e in &set.enabled {
        if !merged.iter().any(|m| m.name == e.name) {
            merged.push(e.clone());
        }
    }
    Ok(merged)
}

/// The plugins of one extension point, with their weights, as kube-scheduler's
/// `NewFramework` (pkg/scheduler/framework/runtime/framework.go) chooses them: those
/// named under this point, which must have it (`updatePluginList`), and the multiPoint
/// plugins that have it, unless disabled here by name or by `*`
/// (`expandMultiPointPlugins`). A plugin named both ways comes first, in this point's
/// order; then the multiPoint ones; then the rest of this point's.
fn expand(
    point: &str,
    set: &PluginSet,
    has: Has,
    multi_point: &[PluginRef],
    made: &BTreeMap<String, Arc<dyn Plugin>>,
) -> Result<Vec<Weighted>, String> {
    unique(point, set)?;
    let with_weight = |e: &PluginRef| -> Result<Weighted, String> {
        let plugin = made
            .get(&e.name)
            .cloned()
            .ok_or_else(|| format!("plugins: {}: unknown plugin", e.name))?;
        Ok((plugin, e.weight.unwrap_or_else(|| default_weight(&e.name))))
    };
    let mut named = Vec::new();
    for e in &set.enabled {
        let (plugin, weight) = with_weight(e)?;
        if !has(plugin.as_ref()) {
            return Err(format!(
                "plugins.{point}: {} has no {point} extension point",
                e.name
            ));
        }
        named.push((plugin, weight));
    }
    if set.disabled.iter().any(|d| d.name == "*") {
        return Ok(named);
    }
    let mut overridden = Vec::new();
    let mut from_multi_point = Vec::new();
    for e in multi_point {
        let (plugin, weight) = with_weight(e)?;
        if !has(plugin.as_ref()) || set.disabled.iter().any(|d| d.name == e.name) {
            continue;
        }
        if set.enabled.iter().any(|n| n.name == e.name) {
            overridden.push(e.name.as_str());
        } else {
            from_multi_point.push((plugin, weight));
        }
    }
    let (first, rest): (Vec<_>, Vec<_>) = named
        .into_iter()
        .partition(|(p, _)| overridden.contains(&p.name()));
    Ok(first
        .into_iter()
        .chain(from_multi_point)
        .chain(rest)
        .collect())
}

/// Refuses a plugin that would run at Score without its own PreScore or Reserve.
///
/// kube-scheduler enables a plugin only at the extension point it is listed under;
/// multiPoint alone enables every point the plugin has (`expandMultiPointPlugins`),
/// and no validation ties them together. A Score listed alone there runs without the
/// state its PreScore writes, and Kubernetes' scorers then fail every cycle
/// (`getPreScoreState`: "reading ... from cycleState"). Here a Score cannot fail: it
/// would score every node alike, and RoundRobin listed under `score` alone placed
/// pods at random. RoundRobin also needs its Reserve, which tells it where the last
/// pod went. So the profile is refused, once, at start, with the fix.
fn check_score_companions(profile: &Profile) -> Result<(), String> {
    for (plugin, _) in &profile.score {
        let runs = |at: &[Arc<dyn Plugin>]| at.iter().any(|p| p.name() == plugin.name());
        let mut missing = Vec::new();
        if plugin.pre_score().is_some() && !runs(&profile.pre_score) {
            missing.push("preScore");
        }
        if plugin.reserve().is_some() && !runs(&profile.reserve) {
            missing.push("reserve");
        }
        if !missing.is_empty() {
            let missing = missing.join(" and ");
            return Err(format!(
                "plugins.score: {} would run without its {missing} (a plugin listed under one \
                 extension point runs only there, as in kube-scheduler): list it under \
                 multiPoint, or under {missing} as well",
                plugin.name()
            ));
        }
    }
    Ok(())
}

/// Reads a configuration file (errors name the file, line, column and field).
pub fn load(file: &str, text: &str) -> Result<Configuration, String> {
    let (config, _): (Configuration, _) =
        rk8s_api::formats::decode_single(file, text).map_err(|diags| {
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
- schedulerName: round-robin
  plugins:
    multiPoint:
      enabled: [{name: RoundRobin}]
    score:
      disabled: [{name: "*"}]
      enabled: [{name: RoundRobin}]
    filter:
      disabled: [{name: NodePorts}]
"#;

    fn names(plugins: &[Arc<dyn Plugin>]) -> Vec<&'static str> {
        plugins.iter().map(|p| p.name()).collect()
    }

    fn one(yaml: &str) -> Result<Profile, String> {
        let config = load("s.yaml", yaml).unwrap();
        build(&config, &Registry::default()).map(|mut p| p.remove(0))
    }

    #[test]
    fn profiles_change_the_defaults_per_extension_point() {
        let config = load("sched.yaml", FILE).unwrap();
        let profiles = build(&config, &Registry::default()).unwrap();
        assert_eq!(profiles.len(), 3);
        let default = &profiles[0];
        let scores: Vec<(&str, i64)> = default.score.iter().map(|(p, w)| (p.name(), *w)).collect();
        assert_eq!(
            scores,
            [
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1),
            ]
        );
        let rr = &profiles[2];
        assert_eq!(rr.score.len(), 1);
        assert_eq!(rr.score[0].0.name(), "RoundRobin");
        assert_eq!(
            names(&rr.pre_score),
            [
                "PodTopologySpread",
                "InterPodAffinity",
                "ImageLocality",
                "RoundRobin"
            ]
        );
        assert_eq!(names(&rr.reserve), ["RoundRobin"]);
        assert!(rr.filter.iter().all(|p| p.name() != "NodePorts"));
        assert!(rr.filter.iter().any(|p| p.name() == "NodeResourcesFit"));
        // One instance behind every extension point: its Reserve feeds its PreScore.
        assert!(Arc::ptr_eq(&rr.score[0].0, &rr.reserve[0]));
    }

    #[test]
    fn a_plugin_listed_under_score_alone_gets_no_other_extension_point() {
        // kube-scheduler's updatePluginList: only the point it is listed under. Its
        // Score without its PreScore and Reserve would rank every node alike.
        let err = one(
            "profiles:\n- schedulerName: rr\n  plugins:\n    score:\n      disabled: [{name: \"*\"}]\n      enabled: [{name: RoundRobin}]\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "profiles[0].plugins.score: RoundRobin would run without its preScore and reserve \
             (a plugin listed under one extension point runs only there, as in kube-scheduler): \
             list it under multiPoint, or under preScore and reserve as well"
        );
        // Listed at every point it has, one by one, it runs.
        let rr = one(
            "profiles:\n- schedulerName: rr\n  plugins:\n    score:\n      disabled: [{name: \"*\"}]\n      enabled: [{name: RoundRobin}]\n    preScore: {enabled: [{name: RoundRobin}]}\n    reserve: {enabled: [{name: RoundRobin}]}\n",
        )
        .unwrap();
        assert_eq!(names(&rr.reserve), ["RoundRobin"]);
        // Turning a default scorer's PreScore off would leave its Score blind too.
        let err = one(
            "profiles:\n- schedulerName: x\n  plugins: {preScore: {disabled: [{name: InterPodAffinity}]}}\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "profiles[0].plugins.score: InterPodAffinity would run without its preScore "
            ),
            "{err}"
        );
        // Off at both, as Kubernetes' no-scoring example does, is fine.
        let quiet = one(
            "profiles:\n- schedulerName: x\n  plugins:\n    preScore: {disabled: [{name: \"*\"}]}\n    score: {disabled: [{name: \"*\"}]}\n",
        )
        .unwrap();
        assert!(quiet.score.is_empty() && quiet.pre_score.is_empty());
    }

    #[test]
    fn extension_points_are_ordered_and_merged_as_kube_scheduler_does() {
        // A default named again in multiPoint stays where it stands (mergePluginSet),
        // with its new weight.
        let p = one(
            "profiles:\n- schedulerName: x\n  plugins:\n    multiPoint: {enabled: [{name: RoundRobin}, {name: TaintToleration, weight: 5}]}\n",
        )
        .unwrap();
        assert_eq!(p.score[0].0.name(), "TaintToleration");
        assert_eq!(p.score[0].1, 5);
        assert_eq!(p.score.last().map(|(p, _)| p.name()), Some("RoundRobin"));
        // Named at a point too: first there, with that point's weight
        // (expandMultiPointPlugins); one named only at the point comes last.
        let p = one(
            "profiles:\n- schedulerName: x\n  plugins:\n    multiPoint: {enabled: [{name: RoundRobin}]}\n    filter: {enabled: [{name: NodePorts}]}\n    score: {enabled: [{name: ImageLocality, weight: 4}]}\n",
        )
        .unwrap();
        assert_eq!(p.score[0].0.name(), "ImageLocality");
        assert_eq!(p.score[0].1, 4);
        assert_eq!(
            p.score
                .iter()
                .filter(|(p, _)| p.name() == "ImageLocality")
                .count(),
            1
        );
        assert_eq!(names(&p.filter)[0], "NodePorts");
        // multiPoint.disabled: * leaves only what is enabled.
        let p = one(
            "profiles:\n- schedulerName: x\n  plugins:\n    multiPoint:\n      disabled: [{name: \"*\"}]\n      enabled: [{name: NodeResourcesFit}]\n",
        )
        .unwrap();
        assert_eq!(names(&p.filter), ["NodeResourcesFit"]);
        assert_eq!(p.score.len(), 1);
        // Listed twice at one point, or at a point the plugin lacks: errors.
        let err = one(
            "profiles:\n- schedulerName: x\n  plugins: {filter: {enabled: [{name: NodePorts}, {name: NodePorts}]}}\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "profiles[0].plugins.filter: NodePorts is enabled twice"
        );
        let err = one(
            "profiles:\n- schedulerName: x\n  plugins: {reserve: {enabled: [{name: NodePorts}]}}\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "profiles[0].plugins.reserve: NodePorts has no reserve extension point"
        );
    }

    #[test]
    fn bad_files_say_where() {
        let err = load(
            "sched.yaml",
            "profiles:\n- schedulerName: x\n  plugins: {scor: {}}\n",
        )
        .unwrap_err();
        assert!(err.starts_with("sched.yaml:3:"), "{err}");
        assert!(err.contains("scor"), "{err}");
        let config = load(
            "s.yaml",
            "profiles:\n- schedulerName: x\n  plugins: {score: {enabled: [{name: Nope}]}}\n",
        )
        .unwrap();
        let err = build(&config, &Registry::default()).unwrap_err();
        assert!(
            err.starts_with("profiles[0].plugins: Nope: unknown plugin"),
            "{err}"
        );
        let config = load("s.yaml", "profiles:\n- schedulerName: x\n  pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: Most}}}]\n").unwrap();
        let err = build(&config, &Registry::default()).unwrap_err();
        assert!(err.contains("scoringStrategy.type \"Most\""), "{err}");
    }
}
