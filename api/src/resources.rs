//! Resource requests and limits mapped to cgroup values, as the kubelet does
//! (`pkg/kubelet/cm/helpers_linux.go`): CPU limits become a CFS quota per period, CPU
//! requests become shares (cgroup v1) or a weight (cgroup v2), memory limits bytes.
//!
//! ```
//! use rk8s_api::resources::CgroupResources;
//! # use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
//! let limits = [("cpu".to_string(), Quantity("500m".into())), ("memory".to_string(), Quantity("233Mi".into()))];
//! let r = CgroupResources::from_requirements(None, Some(&limits.into_iter().collect()))?;
//! assert_eq!((r.cpu_quota, r.cpu_period), (Some(50_000), 100_000));
//! assert_eq!(r.memory_limit, Some(244_318_208));
//! # Ok::<(), rk8s_api::quantity::QuantityError>(())
//! ```

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use crate::quantity::{Quantity, QuantityError};

/// The CFS period the kubelet uses: 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts: 1 ms.
pub const MIN_QUOTA_US: i64 = 1_000;
/// cgroup v1 `cpu.shares` bounds.
pub const MIN_SHARES: u64 = 2;
/// cgroup v1 `cpu.shares` upper bound.
pub const MAX_SHARES: u64 = 262_144;

/// Millicores to a CFS quota in microseconds per [`CPU_PERIOD_US`]; `None` means no
/// limit (a zero limit).
pub fn cpu_quota(milli_cpu: i64) -> Option<i64> {
    if milli_cpu <= 0 {
        return None;
    }
    let quota = milli_cpu.saturating_mul(CPU_PERIOD_US as i64) / 1000;
    Some(quota.max(MIN_QUOTA_US))
}

/// Millicores requested to cgroup v1 `cpu.shares` (1 core = 1024 shares).
pub fn cpu_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    let shares = (milli_cpu as u64).saturating_mul(1024) / 1000;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// cgroup v1 shares to cgroup v2 `cpu.weight` (the OCI runtimes' conversion:
/// `1 + (shares - 2) * 9999 / 262142`).
pub fn cpu_weight(shares: u64) -> u64 {
    let shares = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + (shares - 2) * 9999 / 262_142
}

/// What a container's cgroup is set to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupResources {
    /// CPU shares from the CPU request (cgroup v1; see [`cpu_weight`] for v2).
    pub cpu_shares: u64,
    /// CFS quota from the CPU limit; `None` for no limit.
    pub cpu_quota: Option<i64>,
    /// CFS period.
    pub cpu_period: u64,
    /// Memory limit in bytes; `None` for no limit.
    pub memory_limit: Option<i64>,
}

impl CgroupResources {
    /// From a container's `resources.requests` and `resources.limits` (a missing CPU
    /// request takes the limit, as defaulting does).
    pub fn from_requirements(
        requests: Option<&BTreeMap<String, K8sQuantity>>,
        limits: Option<&BTreeMap<String, K8sQuantity>>,
    ) -> Result<Self, QuantityError> {
        let get = |map: Option<&BTreeMap<String, K8sQuantity>>, name: &str| {
            map.and_then(|m| m.get(name))
                .map(Quantity::try_from)
                .transpose()
        };
        let cpu_limit = get(limits, "cpu")?;
        let cpu_request = get(requests, "cpu")?.or(cpu_limit);
        let memory_limit = get(limits, "memory")?;
        Ok(CgroupResources {
            cpu_shares: cpu_shares(cpu_request.map_or(0, |q| q.milli_value())),
            cpu_quota: cpu_limit.and_then(|q| cpu_quota(q.milli_value())),
            cpu_period: CPU_PERIOD_US,
            memory_limit: memory_limit.map(|q| q.value()).filter(|b| *b > 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_maps_like_the_kubelet() {
        assert_eq!(cpu_quota(500), Some(50_000));
        assert_eq!(cpu_quota(2000), Some(200_000));
        assert_eq!(cpu_quota(5), Some(MIN_QUOTA_US));
        assert_eq!(cpu_quota(0), None);
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(100), 102);
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(1_000_000), MAX_SHARES);
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(MAX_SHARES), 10_000);
    }

    #[test]
    fn requests_default_to_limits_and_bad_quantities_fail() {
        let limits: BTreeMap<_, _> = [("cpu".to_string(), K8sQuantity("1.5".into()))].into();
        let r = CgroupResources::from_requirements(None, Some(&limits)).unwrap();
        assert_eq!(r.cpu_shares, 1536);
        assert_eq!(r.memory_limit, None);
        let bad: BTreeMap<_, _> = [("memory".to_string(), K8sQuantity("lots".into()))].into();
        assert!(CgroupResources::from_requirements(None, Some(&bad)).is_err());
    }
}
