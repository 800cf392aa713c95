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
//!     score:
//!       disabled: [{name: "*"}]
//!       enabled: [{name: RoundRobin}]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::framework::Plugin;
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

fn default_weight(name: &str) -> i64 {
    DEFAULTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, w)| *w)
        .filter(|w| *w > 0)
        .unwrap_or(1)
}

/// Builds the profiles of `config` (the default profile when it has none).
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

fn build_one(p: &ProfileConfig, percentage: u32, registry: &Registry) -> Result<Profile, String> {
    let args: BTreeMap<&str, &serde_json::Value> = p
        .plugin_config
        .iter()
        .filter_map(|c| c.args.as_ref().map(|a| (c.name.as_str(), a)))
        .collect();
    let mut made: BTreeMap<String, Arc<dyn Plugin>> = BTreeMap::new();
    let mut make = |name: &str| -> Result<Arc<dyn Plugin>, String> {
        if let Some(p) = made.get(name) {
            return Ok(p.clone());
        }
        let plugin = registry
            .make(name, args.get(name).copied())
            .map_err(|e| format!("plugins: {name}: {e}"))?;
        made.insert(name.to_string(), plugin.clone());
        Ok(plugin)
    };
    let plugins = p.plugins.clone().unwrap_or_default();
    let multi_disabled = |n: &str| {
        plugins
            .multi_point
            .disabled
            .iter()
            .any(|d| d.name == "*" || d.name == n)
    };
    // Defaults (minus multiPoint.disabled), then multiPoint.enabled.
    let mut base: Vec<(String, Option<i64>)> = DEFAULTS
        .iter()
        .filter(|(n, _)| !multi_disabled(n))
        .map(|(n, _)| (n.to_string(), None))
        .collect();
    for e in &plugins.multi_point.enabled {
        base.retain(|(n, _)| *n != e.name);
        base.push((e.name.clone(), e.weight));
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
    type Has = fn(&dyn Plugin) -> bool;
    let points: [(&PluginSet, Has, usize); 6] = [
        (&plugins.pre_filter, |p| p.pre_filter().is_some(), 0),
        (&plugins.filter, |p| p.filter().is_some(), 1),
        (&plugins.post_filter, |p| p.post_filter().is_some(), 2),
        (&plugins.pre_score, |p| p.pre_score().is_some(), 3),
        (&plugins.score, |p| p.score().is_some(), 4),
        (&plugins.reserve, |p| p.reserve().is_some(), 5),
    ];
    for (set, has, point) in points {
        let disabled = |n: &str| set.disabled.iter().any(|d| d.name == "*" || d.name == n);
        let mut chosen: Vec<(Arc<dyn Plugin>, i64)> = Vec::new();
        for (name, weight) in &base {
            if disabled(name) {
                continue;
            }
            let plugin = make(name)?;
            if has(plugin.as_ref()) {
                chosen.push((plugin, weight.unwrap_or_else(|| default_weight(name))));
            }
        }
        for e in &set.enabled {
            let plugin = make(&e.name)?;
            if !has(plugin.as_ref()) {
                return Err(format!("plugins: {} has no such extension point", e.name));
            }
            chosen.retain(|(p, _)| p.name() != e.name);
            chosen.push((plugin, e.weight.unwrap_or_else(|| default_weight(&e.name))));
        }
        if let Some((p, w)) = chosen.iter().find(|(_, w)| *w < 0) {
            return Err(format!(
                "plugins.score: {} has a negative weight {w}",
                p.name()
            ));
        }
        let plugins = chosen.iter().map(|(p, _)| p.clone()).collect();
        match point {
            0 => profile.pre_filter = plugins,
            1 => profile.filter = plugins,
            2 => profile.post_filter = plugins,
            3 => profile.pre_score = plugins,
            4 => profile.score = chosen,
            _ => profile.reserve = plugins,
        }
    }
    Ok(profile)
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
    score:
      disabled: [{name: "*"}]
      enabled: [{name: RoundRobin}]
    filter:
      disabled: [{name: NodePorts}]
"#;

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
        assert!(rr.filter.iter().all(|p| p.name() != "NodePorts"));
        assert!(rr.filter.iter().any(|p| p.name() == "NodeResourcesFit"));
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
