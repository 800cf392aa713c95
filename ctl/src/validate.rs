//! `rk8sctl validate -f FILE|DIR|-`: decode, default and validate manifests,
//! single-container files and Compose files without a cluster, listing every error.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Result;
use clap::ValueEnum;
use rk8s_api::formats::{self, FileFormat};
use rk8s_api::{AnyObject, Diagnostic, manifest};

use crate::input;

/// `validate`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct ValidateArgs {
    /// File, directory or `-` (standard input); may be repeated.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Descend into subdirectories of directories given with -f.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Print the objects as the API server would store them (defaults filled in).
    #[arg(short = 'o', long)]
    pub output: Option<Output>,
}

/// `validate`'s output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    /// The objects as YAML.
    Yaml,
    /// The objects as JSON.
    Json,
}

/// `validate`: every problem of every file on stderr (and a failure exit code), else
/// a line per valid object or, with `-o`, the objects with their defaults.
pub fn validate(args: &ValidateArgs) -> Result<ExitCode> {
    let inputs = input::read_all(&args.files, args.recursive)?;
    let mut problems: Vec<Diagnostic> = Vec::new();
    let mut objects: Vec<AnyObject> = Vec::new();
    let mut summary = Vec::new();
    for input in &inputs {
        match formats::detect(&input.text) {
            FileFormat::Manifests => match manifest::load(&input.name, &input.text) {
                Ok(ms) => {
                    for m in ms {
                        summary.push(format!("{}: {} is valid", input.name, m.object.reference()));
                        objects.push(m.object);
                    }
                }
                Err(d) => problems.extend(d),
            },
            FileFormat::Compose => match formats::decode_compose(&input.name, &input.text) {
                Ok(app) => summary.push(format!(
                    "{}: compose app with {} services is valid (start order: {})",
                    input.name,
                    app.services.len(),
                    app.start_order().unwrap_or_default().join(", ")
                )),
                Err(d) => problems.extend(d),
            },
            FileFormat::Container => match formats::decode_container(&input.name, &input.text) {
                Ok(c) => summary.push(format!("{}: container {} is valid", input.name, c.name)),
                Err(d) => problems.extend(d),
            },
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        let files: BTreeSet<&str> = problems.iter().map(|p| p.file.as_str()).collect();
        eprintln!(
            "{} error{} in {} file{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" },
        );
        return Ok(ExitCode::FAILURE);
    }
    match args.output {
        Some(Output::Yaml) => print!("{}", manifest::to_yaml(&objects)),
        Some(Output::Json) => {
            let values: Vec<_> = objects.iter().map(AnyObject::to_value).collect();
            let out = if values.len() == 1 {
                serde_json::to_string_pretty(&values[0])?
            } else {
                serde_json::to_string_pretty(&serde_json::json!({
                    "apiVersion": "v1", "kind": "List", "items": values
                }))?
            };
            println!("{out}");
        }
        None => {
            for line in summary {
                println!("{line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
