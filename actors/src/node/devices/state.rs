//! The device manager's state and decisions, without I/O (kubelet's
//! `devicemanager.ManagerImpl` fields and `podDevices`): the devices each plugin
//! listed, healthy or not; the plugins' endpoints and when they stopped; the devices
//! allocated to each pod's containers with what the plugin answered; and from these
//! the node's capacity, the devices a container gets and the options it runs with.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PodSpec;
use rk8s_deviceplugin::v1beta1::{ContainerAllocateResponse, Device, DevicePluginOptions, HEALTHY};

/// How long a stopped plugin's resource stays in the node's capacity (kubelet's
/// `endpointStopGracePeriod`): the time the capacity change takes to reach the
/// scheduler.
pub const STOP_GRACE_PERIOD: Duration = Duration::from_secs(5 * 60);

/// A registered plugin as the state sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// Counts registrations of the resource: a stream that ends after a newer
    /// registration stops nothing.
    pub generation: u64,
    /// Its options (`None`: an endpoint read from a checkpoint, no plugin yet).
    pub options: Option<DevicePluginOptions>,
    /// When its plugin went (its stream ended).
    pub stopped_at: Option<Instant>,
}

impl Endpoint {
    fn grace_expired(&self, now: Instant) -> bool {
        self.stopped_at
            .is_some_and(|t| now.saturating_duration_since(t) > STOP_GRACE_PERIOD)
    }
}

/// Devices of one container for one resource, and the plugin's answer to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The device ids.
    pub ids: BTreeSet<String>,
    /// What `Allocate` answered for them.
    pub response: ContainerAllocateResponse,
}

/// Allocations by pod uid, container name and resource.
pub type PodDevices = BTreeMap<String, BTreeMap<String, BTreeMap<String, Allocation>>>;

/// What the node reports: capacity (healthy and unhealthy devices) and allocatable
/// (healthy ones) per resource, and the resources gone since the last report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    /// Every device, per resource.
    pub capacity: BTreeMap<String, i64>,
    /// Healthy devices, per resource.
    pub allocatable: BTreeMap<String, i64>,
    /// Resources whose plugin went longer than the grace period ago (reported with 0).
    pub removed: Vec<String>,
}

/// What a container asks of a resource that needs choosing (kubelet's
/// `devicesToAllocate` up to its call of `GetPreferredAllocation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// The container has its devices already, or needs none.
    Nothing,
    /// `needed` more devices from `available` (devices of the pod's init containers
    /// in `reusable` first).
    Devices {
        /// How many.
        needed: usize,
        /// Healthy devices no other container holds.
        available: BTreeSet<String>,
        /// Devices an init container of the pod held, given first.
        reusable: BTreeSet<String>,
    },
}

/// The pods the node's API view holds (kubelet's pod manager), by uid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownPods {
    /// Pods bound here that have not ended.
    pub running: BTreeSet<String>,
    /// Pods bound here whose phase is `Succeeded` or `Failed`.
    pub ended: BTreeSet<String>,
}

/// The pods whose devices stay allocated (kubelet's `activePods` with
/// `filterOutInactivePods`): those of the API that have not ended, and those the
/// runtime still holds (`on_node`: their containers may still run, as after a stop
/// that failed) unless the API says they ended.
pub fn active_pods(known: &KnownPods, on_node: &BTreeSet<String>) -> BTreeSet<String> {
    let mut active = known.running.clone();
    active.extend(on_node.difference(&known.ended).cloned());
    active
}

/// The device manager's state.
#[derive(Clone, Debug, Default)]
pub struct Devices {
    /// Every device of each resource as last listed.
    pub all: BTreeMap<String, BTreeMap<String, Device>>,
    /// Healthy device ids per resource.
    pub healthy: BTreeMap<String, BTreeSet<String>>,
    /// Unhealthy device ids per resource.
    pub unhealthy: BTreeMap<String, BTreeSet<String>>,
    /// The plugins, by resource.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// What each pod's containers hold.
    pub pods: PodDevices,
}

impl Devices {
    /// A plugin registered for `resource` with `options`: its endpoint replaces any
    /// other (kubelet accepts the newest). Returns the registration's generation.
    pub fn connected(&mut self, resource: &str, options: DevicePluginOptions) -> u64 {
        let generation = self.endpoints.get(resource).map_or(0, |e| e.generation) + 1;
        self.endpoints.insert(
            resource.to_string(),
            Endpoint {
                generation,
                options: Some(options),
                stopped_at: None,
            },
        );
        self.healthy.entry(resource.to_string()).or_default();
        self.unhealthy.entry(resource.to_string()).or_default();
        generation
    }

    /// The plugin of registration `generation` listed `devices`: they are the
    /// resource's devices now (kubelet's `genericDeviceUpdateCallback`). A list from
    /// a replaced registration is ignored; returns whether it was taken.
    pub fn listed(&mut self, resource: &str, generation: u64, devices: Vec<Device>) -> bool {
        if self.endpoints.get(resource).map(|e| e.generation) != Some(generation) {
            return false;
        }
        let (mut healthy, mut unhealthy) = (BTreeSet::new(), BTreeSet::new());
        let mut all = BTreeMap::new();
        for device in devices {
            if device.health == HEALTHY {
                healthy.insert(device.id.clone());
            } else {
                unhealthy.insert(device.id.clone());
            }
            all.insert(device.id.clone(), device);
        }
        self.healthy.insert(resource.to_string(), healthy);
        self.unhealthy.insert(resource.to_string(), unhealthy);
        self.all.insert(resource.to_string(), all);
        true
    }

    /// The plugin of registration `generation` went (its stream ended): its devices
    /// are unhealthy and its endpoint stopped now (kubelet's `PluginDisconnected`);
    /// the capacity stays for [`STOP_GRACE_PERIOD`]. Returns whether it was current.
    pub fn disconnected(&mut self, resource: &str, generation: u64, now: Instant) -> bool {
        let Some(endpoint) = self.endpoints.get_mut(resource) else {
            return false;
        };
        if endpoint.generation != generation {
            return false;
        }
        endpoint.stopped_at = Some(now);
        let healthy = std::mem::take(self.healthy.entry(resource.to_string()).or_default());
        self.unhealthy
            .entry(resource.to_string())
            .or_default()
            .extend(healthy);
        true
    }

    /// The capacity to report now; resources whose plugin went more than the grace
    /// period ago are forgotten and listed as removed (kubelet's `GetCapacity`).
    pub fn capacity(&mut self, now: Instant) -> Capacity {
        let mut out = Capacity::default();
        let resources: BTreeSet<String> = self
            .healthy
            .keys()
            .chain(self.unhealthy.keys())
            .cloned()
            .collect();
        for resource in resources {
            let expired = self
                .endpoints
                .get(&resource)
                .is_none_or(|e| e.grace_expired(now));
            if expired {
                self.endpoints.remove(&resource);
                self.healthy.remove(&resource);
                self.unhealthy.remove(&resource);
                self.all.remove(&resource);
                out.removed.push(resource);
                continue;
            }
            let healthy = self.healthy.get(&resource).map_or(0, BTreeSet::len);
            let unhealthy = self.unhealthy.get(&resource).map_or(0, BTreeSet::len);
            let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            out.capacity
                .insert(resource.clone(), count(healthy + unhealthy));
            out.allocatable.insert(resource, count(healthy));
        }
        out
    }

    /// Whether `resource` is a device plugin's: registered now, or held by a pod
    /// (kubelet's `isDevicePluginResource`).
    pub fn is_device_resource(&self, resource: &str) -> bool {
        self.healthy.contains_key(resource) || self.allocated().contains_key(resource)
    }

    /// Every allocated device, per resource.
    pub fn allocated(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for containers in self.pods.values() {
            for resources in containers.values() {
                for (resource, a) in resources {
                    out.entry(resource.clone())
                        .or_default()
                        .extend(a.ids.iter().cloned());
                }
            }
        }
        out
    }

    /// The devices container `container` of pod `uid` holds of `resource`.
    pub fn container_devices(
        &self,
        uid: &str,
        container: &str,
        resource: &str,
    ) -> Option<&Allocation> {
        self.pods.get(uid)?.get(container)?.get(resource)
    }

    /// What container `container` of pod `uid` still needs of `resource`, of which it
    /// asks `required`, with `reusable` devices of the pod's init containers at hand;
    /// `Err` in kubelet's words when it cannot have them.
    pub fn need(
        &self,
        (uid, container): (&str, &str),
        resource: &str,
        required: usize,
        reusable: &BTreeSet<String>,
    ) -> Result<Need, String> {
        let mut needed = required;
        let held = self.container_devices(uid, container, resource);
        if let Some(held) = held {
            if held.ids.len() != required {
                return Err(format!(
                    "pod {uid:?} container {container:?} changed request for resource {resource:?} from {} to {required}",
                    held.ids.len()
                ));
            }
            needed = 0;
        }
        let Some(healthy) = self.healthy.get(resource) else {
            return Err(format!("cannot allocate unregistered device {resource}"));
        };
        if healthy.is_empty() {
            return Err(format!(
                "no healthy devices present; cannot allocate unhealthy devices {resource}"
            ));
        }
        if held.is_some_and(|h| !h.ids.is_subset(healthy)) {
            return Err(format!(
                "previously allocated devices are no longer healthy; cannot allocate unhealthy devices {resource}"
            ));
        }
        if needed == 0 {
            return Ok(Need::Nothing);
        }
        let reusable: BTreeSet<String> = reusable.iter().take(needed).cloned().collect();
        if reusable.len() == needed {
            return Ok(Need::Devices {
                needed,
                available: BTreeSet::new(),
                reusable,
            });
        }
        let in_use = self.allocated().remove(resource).unwrap_or_default();
        let available: BTreeSet<String> = healthy.difference(&in_use).cloned().collect();
        let still = needed - reusable.len();
        if available.len() < still {
            return Err(format!(
                "requested number of devices unavailable for {resource}. Requested: {still}, Available: {}",
                available.len()
            ));
        }
        Ok(Need::Devices {
            needed,
            available,
            reusable,
        })
    }

    /// Records that container `container` of pod `uid` holds `ids` of `resource`,
    /// with the plugin's `response`.
    pub fn insert(
        &mut self,
        (uid, container): (&str, &str),
        resource: &str,
        ids: BTreeSet<String>,
        response: ContainerAllocateResponse,
    ) {
        self.pods
            .entry(uid.to_string())
            .or_default()
            .entry(container.to_string())
            .or_default()
            .insert(resource.to_string(), Allocation { ids, response });
    }

    /// After container `name` of pod `uid` got its devices: an init container's may
    /// be used again by the next containers (`add`), a sidecar's or an app
    /// container's not (kubelet's `addContainerAllocatedResources` and
    /// `removeContainerAllocatedResources` on its `devicesToReuse`).
    pub fn account_reuse(
        &self,
        (uid, name): (&str, &str),
        reusable: &mut BTreeMap<String, BTreeSet<String>>,
        add: bool,
    ) {
        let Some(held) = self.pods.get(uid).and_then(|c| c.get(name)) else {
            return;
        };
        for (resource, allocation) in held {
            let set = reusable.entry(resource.clone()).or_default();
            if add {
                set.extend(allocation.ids.iter().cloned());
            } else {
                set.retain(|id| !allocation.ids.contains(id));
            }
        }
    }

    /// The devices container `name` of pod `uid` (of `spec`) may reuse: what the
    /// containers before it left, replayed in admission order (init containers first).
    pub fn reusable_before(
        &self,
        uid: &str,
        spec: &PodSpec,
        name: &str,
    ) -> BTreeMap<String, BTreeSet<String>> {
        let mut reusable = BTreeMap::new();
        for init in spec.init_containers.iter().flatten() {
            if init.name == name {
                return reusable;
            }
            let restartable = init.restart_policy.as_deref() == Some("Always");
            self.account_reuse((uid, &init.name), &mut reusable, !restartable);
        }
        for container in &spec.containers {
            if container.name == name {
                break;
            }
            self.account_reuse((uid, &container.name), &mut reusable, false);
        }
        reusable
    }

    /// Frees the devices of every pod not in `active` (kubelet's
    /// `UpdateAllocatedDevices`); the uids freed.
    pub fn retain_active(&mut self, active: &BTreeSet<String>) -> Vec<String> {
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !active.contains(*uid))
            .cloned()
            .collect();
        for uid in &gone {
            self.pods.remove(uid);
        }
        gone
    }

    /// Frees every device of pod `uid`; whether it held any.
    pub fn free(&mut self, uid: &str) -> bool {
        self.pods.remove(uid).is_some()
    }

    /// The options container `container` of pod `uid` runs with: every resource's
    /// answer merged, the first of each variable, device path, mount path and
    /// annotation kept (kubelet's `deviceRunContainerOptions`); `None` when it holds
    /// no device.
    pub fn run_options(&self, uid: &str, container: &str) -> Option<ContainerAllocateResponse> {
        let resources = self.pods.get(uid)?.get(container)?;
        let mut out = ContainerAllocateResponse::default();
        for allocation in resources.values() {
            let r = &allocation.response;
            for (k, v) in &r.envs {
                out.envs.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for d in &r.devices {
                if !out
                    .devices
                    .iter()
                    .any(|o| o.container_path == d.container_path)
                {
                    out.devices.push(d.clone());
                }
            }
            for m in &r.mounts {
                if !out
                    .mounts
                    .iter()
                    .any(|o| o.container_path == m.container_path)
                {
                    out.mounts.push(m.clone());
                }
            }
            for (k, v) in &r.annotations {
                out.annotations
                    .entry(k.clone())
                    .or_insert_with(|| v.clone());
            }
            out.cdi_devices.extend(r.cdi_devices.iter().cloned());
        }
        Some(out)
    }
}

/// The devices to give: `needed` of them, the `reusable` ones first, then those
/// the plugin `preferred` (of `available`), then the rest of `available` in order
/// (kubelet's `allocateRemainingFrom`, without NUMA alignment).
pub fn choose(
    needed: usize,
    reusable: &BTreeSet<String>,
    available: &BTreeSet<String>,
    preferred: &[String],
) -> BTreeSet<String> {
    let mut chosen = BTreeSet::new();
    let candidates = reusable
        .iter()
        .chain(preferred.iter().filter(|p| available.contains(*p)))
        .chain(available.iter());
    for id in candidates {
        if chosen.len() == needed {
            break;
        }
        chosen.insert(id.clone());
    }
    chosen
}
