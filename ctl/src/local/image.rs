//! `rk8sctl image pull|import|ls|rm`: the local image store that `rk8sctl`'s local modes
//! and static pods run from.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use rk8s_runtime::image::{ImageStore, PullOptions, PullPolicy};

use super::DEFAULT_DATA_DIR;

/// `image`'s arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct ImageArgs {
    /// The local data directory (images are in its `images/`).
    #[arg(long, env = "RK8S_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    pub root: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// The `image` verbs.
#[derive(Subcommand, Clone, Debug)]
pub enum ImageCommand {
    /// Pull an image from a registry (`busybox`, `localhost:5000/web:v1`).
    Pull {
        /// The image reference.
        reference: String,
        /// A registry reached over plain HTTP (`HOST:PORT`); repeatable.
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
        /// User name for basic auth (the password is read from stdin).
        #[arg(long)]
        username: Option<String>,
        /// Mirrors, credentials and TLS per registry, as rk8s-node reads them (none
        /// when the file does not exist).
        #[arg(long, default_value = rk8s_runtime::image::registries::DEFAULT_PATH)]
        registries: PathBuf,
    },
    /// Import an OCI image layout directory.
    Import {
        /// The layout directory (with index.json).
        layout: PathBuf,
        /// The tag in the layout to import (default: its only image, or `latest`).
        #[arg(long)]
        tag: Option<String>,
        /// The reference to store it under (default: the directory's path).
        #[arg(long)]
        name: Option<String>,
    },
    /// List stored images.
    Ls,
    /// Remove an image and every layer no other image uses.
    Rm {
        /// The image reference (or layout path).
        reference: String,
    },
}

/// A pull's progress on standard error: a bar per layer being downloaded on a
/// terminal (indicatif), its lines printed above them; the lines alone otherwise.
struct PullBars {
    multi: indicatif::MultiProgress,
    layers: Arc<std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>>,
}

impl PullBars {
    fn new() -> Self {
        Self {
            multi: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
            layers: Arc::default(),
        }
    }

    /// The line sink: above the bars on a terminal, one line each otherwise.
    fn lines(&self) -> rk8s_runtime::image::Progress {
        let multi = self.multi.clone();
        let tty = std::io::stderr().is_terminal();
        Arc::new(move |line: &str| {
            if tty {
                let _ = multi.println(line);
            } else {
                eprintln!("{line}");
            }
        })
    }

    /// The byte counts: each layer's bar, made when its first bytes arrive.
    fn layers(&self) -> rk8s_runtime::image::LayerProgress {
        let multi = self.multi.clone();
        let layers = self.layers.clone();
        Arc::new(move |digest: &str, downloaded: u64, size: u64| {
            let mut layers = layers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let bar = layers.entry(digest.to_string()).or_insert_with(|| {
                let bar = multi.add(indicatif::ProgressBar::new(size));
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                let short = digest.trim_start_matches("sha256:");
                bar.set_prefix(short.get(..12).unwrap_or(short).to_string());
                bar
            });
            bar.set_position(downloaded);
            if downloaded >= size {
                bar.finish();
            }
        })
    }

    /// Takes the bars off the terminal.
    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

/// Runs an `image` command, printing what it did.
pub async fn image(args: &ImageArgs) -> Result<()> {
    let store = ImageStore::open(args.root.join("images")).with_context(|| {
        format!(
            "failed to open the image store under {}",
            args.root.display()
        )
    })?;
    match &args.command {
        ImageCommand::Pull {
            reference,
            insecure,
            username,
            registries,
        } => {
            let registries = rk8s_runtime::image::registries::Registries::load(registries)?;
            let basic_auth = match username {
                Some(user) => {
                    let user = user.clone();
                    let mut password = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut password)
                        .context("failed to read the password from stdin")?;
                    Some((user, password.trim_end().to_string()))
                }
                None => None,
            };
            let bars = PullBars::new();
            let options = PullOptions {
                insecure_registries: insecure.clone(),
                basic_auth,
                registries: Arc::new(registries),
                progress: Some(bars.lines()),
                layer_progress: Some(bars.layers()),
                ..PullOptions::default()
            };
            let image = store
                .ensure(reference, PullPolicy::Always, &options)
                .await?;
            bars.clear();
            println!("{} {}", image.reference, image.id);
        }
        ImageCommand::Import { layout, tag, name } => {
            let image = store.import_layout(layout, tag.as_deref(), name.as_deref())?;
            println!("{} {}", image.reference, image.id);
        }
        ImageCommand::Ls => {
            let images = store.list()?;
            let width = images
                .iter()
                .map(|i| i.reference.len())
                .max()
                .unwrap_or(0)
                .max(9);
            println!("{:width$}  {:19}  SIZE", "REFERENCE", "DIGEST");
            for image in images {
                let short = image.digest.get(..19).unwrap_or(&image.digest);
                println!(
                    "{:width$}  {short:19}  {}",
                    image.reference,
                    human_size(image.size)
                );
            }
        }
        ImageCommand::Rm { reference } => {
            store.remove(reference)?;
            println!("removed {reference}");
        }
    }
    Ok(())
}

/// `1234567` → `1.2 MB`, as `docker images` shows sizes (SI units).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_in_si_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_234_567), "1.2 MB");
        assert_eq!(human_size(5_000_000_000_000), "5000.0 GB");
    }
}
