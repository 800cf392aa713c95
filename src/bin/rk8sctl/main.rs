//! `rk8sctl`: the rk8s command line.

mod commands;
mod input;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Drive an rk8s cluster, or run containers, pods and Compose apps locally.
#[derive(Parser)]
#[command(name = "rk8sctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check manifests, single-container files and Compose files without applying them.
    Validate(commands::validate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => commands::validate::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
