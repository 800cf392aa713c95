//! `config view|current-context|get-contexts|use-context`: the kubeconfig, read and
//! changed as kubectl does.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::Global;
use crate::cluster::kubeconfig_path;
use crate::print;

/// `config` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum ConfigCommand {
    /// Print the kubeconfig (secrets left out unless --raw).
    View {
        /// Include tokens and certificate data.
        #[arg(long)]
        raw: bool,
    },
    /// Print the current context.
    CurrentContext,
    /// List the contexts.
    GetContexts,
    /// Make NAME the current context.
    UseContext {
        /// The context.
        name: String,
    },
}

fn read_kubeconfig(g: &Global) -> Result<(PathBuf, Value)> {
    let path = kubeconfig_path(g.kubeconfig.as_ref())?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let docs = rk8s_api::yaml::parse_documents(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: {}",
            path.display(),
            e.location.line,
            e.location.column,
            e.message
        )
    })?;
    let value = docs
        .into_iter()
        .map(|d| d.value)
        .find(|v| !v.is_null())
        .unwrap_or(Value::Null);
    Ok((path, value))
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                match k.as_str() {
                    "token" | "password" => *val = json!("REDACTED"),
                    k if k.ends_with("-data") => *val = json!("DATA+OMITTED"),
                    _ => redact(val),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `config ...`.
pub fn config(g: &Global, cmd: &ConfigCommand) -> Result<()> {
    let (path, mut value) = read_kubeconfig(g)?;
    match cmd {
        ConfigCommand::View { raw } => {
            if !raw {
                redact(&mut value);
            }
            print!("{}", print::yaml(&value));
        }
        ConfigCommand::CurrentContext => {
            println!("{}", value["current-context"].as_str().unwrap_or(""));
        }
        ConfigCommand::GetContexts => {
            let current = value["current-context"].as_str().unwrap_or("").to_string();
            println!("CURRENT   NAME   CLUSTER   AUTHINFO   NAMESPACE");
            for c in value["contexts"].as_array().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or("");
                println!(
                    "{:<9} {name}   {}   {}   {}",
                    if name == current { "*" } else { "" },
                    c["context"]["cluster"].as_str().unwrap_or(""),
                    c["context"]["user"].as_str().unwrap_or(""),
                    c["context"]["namespace"].as_str().unwrap_or("")
                );
            }
        }
        ConfigCommand::UseContext { name } => {
            let known = value["contexts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"].as_str() == Some(name));
            if !known {
                bail!(
                    "no context exists with the name: {name:?} in {}",
                    path.display()
                );
            }
            value["current-context"] = json!(name);
            std::fs::write(&path, print::yaml(&value))
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("Switched to context {name:?}.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_view_hides_secrets() {
        let mut v = json!({"users": [{"name": "admin", "user": {"token": "s3cret"}}],
                           "clusters": [{"cluster": {"certificate-authority-data": "AAAA", "server": "https://x"}}]});
        redact(&mut v);
        assert_eq!(v["users"][0]["user"]["token"], "REDACTED");
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "DATA+OMITTED"
        );
        assert_eq!(v["clusters"][0]["cluster"]["server"], "https://x");
    }
}
