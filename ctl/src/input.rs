//! Reading `-f` arguments the way kubectl does: a file, every manifest in a directory
//! (`-R` to descend), or `-` for standard input.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One input text and the name to report it by.
pub struct Input {
    /// The file name, or `<stdin>`.
    pub name: String,
    /// Its contents.
    pub text: String,
}

fn is_manifest(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

fn collect(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read directory {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("failed to read directory {}", dir.display()))?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                collect(&p, recursive, out)?;
            }
        } else if is_manifest(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads every input named by `-f` arguments.
pub fn read_all(args: &[String], recursive: bool) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("failed to read standard input")?;
            inputs.push(Input {
                name: "<stdin>".into(),
                text,
            });
            continue;
        }
        let path = Path::new(arg);
        let files = if path.is_dir() {
            let mut files = Vec::new();
            collect(path, recursive, &mut files)?;
            if files.is_empty() {
                anyhow::bail!("{arg}: no .yaml, .yml or .json files in this directory");
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        for f in files {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("failed to read {}", f.display()))?;
            inputs.push(Input {
                name: f.display().to_string(),
                text,
            });
        }
    }
    Ok(inputs)
}
