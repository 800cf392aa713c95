//! What every benchmark shares: percentiles, milliseconds, and the JSON file under
//! `target/bench/`.

#![allow(dead_code)]

pub mod pods;
pub mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `p`-quantile (0..=1) of sorted samples (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Prometheus' `histogram_quantile`: the `q`-quantile (0..=1) of a histogram's
/// cumulative buckets, (upper bound, count) in order, interpolated linearly within
/// its bucket; the highest finite bound when it falls in the `+Inf` bucket.
pub fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |(_, n)| *n);
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            if le.is_infinite() {
                return lower;
            }
            let within = if n > below {
                (rank - below) / (n - below)
            } else {
                0.0
            };
            return lower + (le - lower) * within;
        }
        (lower, below) = (le, n);
    }
    lower
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints (case, result) rows with the results aligned.
pub fn print_rows(rows: &[(String, String)]) {
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    for (case, result) in rows {
        println!("{case:<width$}   {result}");
    }
}

/// Prints a table: `header`, then `rows`, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("   ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Writes `target/bench/<name>.json` and says where.
pub fn write_json(name: &str, value: &serde_json::Value) {
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    println!("\nwrote {}", path.display());
}

/// The fields of a `/proc/.../stat` text after the command (which is in
/// parentheses): the state is the first, the parent's pid the second, utime the 12th,
/// stime the 13th.
fn stat_fields(stat: &str) -> Vec<&str> {
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace().collect()
}

/// CPU seconds of a process (all threads) and of its threads named `thread`.
pub fn cpu_seconds(pid: u32, thread: &str) -> (f64, f64) {
    let ticks = |stat: &Path| -> f64 {
        let stat = std::fs::read_to_string(stat).unwrap_or_default();
        let f = stat_fields(&stat);
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (t(11) + t(12)) / 100.0
    };
    let total = ticks(Path::new(&format!("/proc/{pid}/stat")));
    let named = threads_named(pid, thread)
        .iter()
        .map(|t| ticks(&t.join("stat")))
        .sum();
    (total, named)
}

/// The threads of `pid` named `name`: their `/proc/PID/task/TID` directories.
pub fn threads_named(pid: u32, name: &str) -> Vec<PathBuf> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .map(|t| t.path())
        .filter(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == name))
        .collect()
}

/// The children of `pid` (from `/proc/*/stat`).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent: u32 = stat_fields(&stat).get(1)?.parse().ok()?;
            (parent == pid).then_some(child)
        })
        .collect()
}

pub fn peak_rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmHWM:") / 1024.0
}

/// Resident MiB of `pid` now (`VmRSS`).
pub fn rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:") / 1024.0
}

/// Starts `pid`'s peak RSS (`VmHWM`) again from its RSS now (`clear_refs` 5), so
/// that [`peak_rss_mib`] tells the peak of what follows.
pub fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// The page size of [`for_each_page`]: kubectl's chunk size and client-go's
/// reflector's page.
pub const PAGE: u32 = 500;

/// Lists what `api` lists with `params` in pages of [`PAGE`], as clients list a large
/// collection, handing each page's items to `page` as it comes.
pub async fn for_each_page<K>(
    api: &kube::Api<K>,
    params: &kube::api::ListParams,
    mut page: impl FnMut(Vec<K>),
) where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = params.clone().limit(PAGE);
    loop {
        let listed = api.list(&params).await.unwrap();
        page(listed.items);
        match listed.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(t) => params = params.continue_token(&t),
            None => return,
        }
    }
}

/// Every object `api` lists with `params`, in pages ([`for_each_page`]): a single list
/// of every object would add the whole collection's encoding to the server's peak,
/// which is the list's cost, not the one a benchmark measures.
pub async fn list_paged<K>(api: &kube::Api<K>, params: &kube::api::ListParams) -> Vec<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    for_each_page(api, params, |page| items.extend(page)).await;
    items
}
