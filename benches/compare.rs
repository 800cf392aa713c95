//! `make bench-quick`'s verdict: the small cases' results in `target/bench/` against
//! the figures recorded in `docs/bench-quick.json`, as a table (recorded, now,
//! change). A figure worse than recorded by more than the file's tolerance is a
//! regression: the table says so and the program fails. `RK8S_BENCH_RECORD=1` writes
//! the current figures into the file instead (after a change meant to move them;
//! say why in the commit).
//!
//! Each metric names a benchmark's JSON (`file`), optionally an array in it (`in`)
//! and the fields an element must have (`where`), and the number to read (`field`),
//! and whether `higher` or `lower` is better.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::print_table;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The number `metric` names in the results, if they hold it.
fn read(metric: &Value) -> Option<f64> {
    let file = metric["file"].as_str()?;
    let path = root().join("target/bench").join(format!("{file}.json"));
    let results: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let matches = |v: &&Value| {
        metric["where"]
            .as_object()
            .is_none_or(|w| w.iter().all(|(k, want)| v.get(k) == Some(want)))
    };
    let holder = match metric["in"].as_str() {
        Some(array) => results[array].as_array()?.iter().find(matches)?,
        None => Some(&results).filter(matches)?,
    };
    holder[metric["field"].as_str()?].as_f64()
}

fn main() {
    let path = root().join("docs/bench-quick.json");
    let text = std::fs::read_to_string(&path).expect("docs/bench-quick.json is readable");
    let mut recorded: Value = serde_json::from_str(&text).expect("docs/bench-quick.json is JSON");
    let tolerance = recorded["tolerance"].as_f64().unwrap_or(0.25);
    let record = std::env::var_os("RK8S_BENCH_RECORD").is_some();
    let mut rows = Vec::new();
    let mut regressions = 0;
    for metric in recorded["metrics"].as_array_mut().expect("a metrics array") {
        let name = metric["name"].as_str().unwrap_or("?").to_string();
        let was = metric["recorded"].as_f64();
        let now = read(metric);
        let higher = metric["better"].as_str() != Some("lower");
        let verdict = match (was, now) {
            (_, None) => "not run".to_string(),
            (None, Some(_)) => "new".to_string(),
            (Some(was), Some(now)) => {
                let worse = if higher {
                    now < was * (1.0 - tolerance)
                } else {
                    now > was * (1.0 + tolerance)
                };
                if worse && !record {
                    regressions += 1;
                    "REGRESSION".to_string()
                } else {
                    "ok".to_string()
                }
            }
        };
        let change = match (was, now) {
            (Some(was), Some(now)) if was != 0.0 => format!("{:+.0}%", (now / was - 1.0) * 100.0),
            _ => String::new(),
        };
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        rows.push(vec![
            name,
            if higher { "higher" } else { "lower" }.to_string(),
            show(was),
            show(now),
            change,
            verdict,
        ]);
        if record && let Some(now) = now {
            metric["recorded"] = Value::from((now * 10.0).round() / 10.0);
        }
    }
    println!();
    print_table(
        &["metric", "better", "recorded", "now", "change", "verdict"],
        &rows,
    );
    if record {
        let text = serde_json::to_string_pretty(&recorded).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        println!("\nrecorded into {}", path.display());
    } else if regressions > 0 {
        println!(
            "\n{regressions} figure(s) worse than recorded by more than {:.0}%",
            tolerance * 100.0
        );
        std::process::exit(1);
    }
}
