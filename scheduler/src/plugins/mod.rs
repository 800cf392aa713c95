//! The built-in plugins and the registry that makes plugins from their names (and
//! `pluginConfig` arguments). A custom plugin is registered in Rust with
//! [`Registry::register`] and then enabled in a profile like a built-in one.

pub mod affinity;
pub mod basic;
pub mod fit;
pub mod pods;
pub mod volumes;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::framework::Plugin;

/// Makes a plugin from its `pluginConfig` arguments (if any).
pub type Factory =
    Arc<dyn Fn(Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> + Send + Sync>;

/// Plugins by name.
#[derive(Clone)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

/// The default plugins, in Kubernetes' order, with their default score weights.
pub const DEFAULTS: [(&str, i64); 12] = [
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeBinding", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
];

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FitArgs {
    #[serde(default)]
    scoring_strategy: Option<StrategyArgs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StrategyArgs {
    #[serde(rename = "type", default = "least")]
    type_: String,
    #[serde(default)]
    resources: Option<Vec<fit::ResourceWeight>>,
    #[serde(default)]
    requested_to_capacity_ratio: Option<ShapeArgs>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapeArgs {
    shape: Vec<fit::ShapePoint>,
}

fn least() -> String {
    "LeastAllocated".into()
}

fn fit_plugin(args: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    let args: FitArgs = match args {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| e.to_string())?,
        None => FitArgs::default(),
    };
    let strategy = match args.scoring_strategy {
        None => fit::ScoringStrategy::default(),
        Some(s) => {
            let resources = s
                .resources
                .unwrap_or_else(|| match fit::ScoringStrategy::default() {
                    fit::ScoringStrategy::LeastAllocated { resources } => resources,
                    _ => Vec::new(),
                });
            match s.type_.as_str() {
                "LeastAllocated" => fit::ScoringStrategy::LeastAllocated { resources },
                "MostAllocated" => fit::ScoringStrategy::MostAllocated { resources },
                "RequestedToCapacityRatio" => {
                    let shape = s
                        .requested_to_capacity_ratio
                        .ok_or("RequestedToCapacityRatio needs requestedToCapacityRatio.shape")?
                        .shape;
                    if shape.is_empty()
                        || shape
                            .windows(2)
                            .any(|w| w[0].utilization >= w[1].utilization)
                        || shape.iter().any(|p| {
                            !(0..=100).contains(&p.utilization) || !(0..=10).contains(&p.score)
                        })
                    {
                        return Err("requestedToCapacityRatio.shape: points need utilization 0..=100 in increasing order and score 0..=10".into());
                    }
                    fit::ScoringStrategy::RequestedToCapacityRatio { resources, shape }
                }
                other => {
                    return Err(format!(
                        "scoringStrategy.type {other:?}: expected LeastAllocated, MostAllocated or RequestedToCapacityRatio"
                    ));
                }
            }
        }
    };
    Ok(Arc::new(fit::NodeResourcesFit { strategy }))
}

fn no_args(
    make: fn() -> Arc<dyn Plugin>,
) -> impl Fn(Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String> {
    move |args| match args {
        Some(v) if !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()) => {
            Err("this plugin takes no arguments".into())
        }
        _ => Ok(make()),
    }
}

impl Default for Registry {
    fn default() -> Self {
        let mut r = Registry {
            factories: BTreeMap::new(),
        };
        r.register(
            "PrioritySort",
            no_args(|| Arc::new(crate::queue::PrioritySort)),
        );
        r.register(
            "NodeUnschedulable",
            no_args(|| Arc::new(basic::NodeUnschedulable)),
        );
        r.register("NodeName", no_args(|| Arc::new(basic::NodeName)));
        r.register(
            "TaintToleration",
            no_args(|| Arc::new(basic::TaintToleration)),
        );
        r.register("NodeAffinity", no_args(|| Arc::new(affinity::NodeAffinity)));
        r.register("NodePorts", no_args(|| Arc::new(basic::NodePorts)));
        r.register("NodeResourcesFit", fit_plugin);
        r.register(
            "VolumeBinding",
            no_args(|| Arc::new(volumes::VolumeBinding)),
        );
        r.register(
            "PodTopologySpread",
            no_args(|| Arc::new(pods::PodTopologySpread)),
        );
        r.register(
            "InterPodAffinity",
            no_args(|| Arc::new(pods::InterPodAffinity)),
        );
        r.register(
            "NodeResourcesBalancedAllocation",
            no_args(|| Arc::new(fit::BalancedAllocation)),
        );
        r.register("ImageLocality", no_args(|| Arc::new(fit::ImageLocality)));
        r.register(
            "RoundRobin",
            no_args(|| Arc::new(fit::RoundRobin::default())),
        );
        r
    }
}

impl Registry {
    /// Adds (or replaces) a plugin factory under `name`.
    pub fn register(
        &mut self,
        name: &str,
        factory: impl Fn(Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, String>
        + Send
        + Sync
        + 'static,
    ) {
        self.factories.insert(name.to_string(), Arc::new(factory));
    }

    /// Makes the plugin `name`.
    pub fn make(
        &self,
        name: &str,
        args: Option<&serde_json::Value>,
    ) -> Result<Arc<dyn Plugin>, String> {
        let factory = self.factories.get(name).ok_or_else(|| {
            format!(
                "unknown plugin {name:?} (known: {})",
                self.factories
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        factory(args)
    }
}
