//! `debug actors` and `debug kill-actor`: the control plane's actors as the API
//! server lists them (`rk8s-server --enable-chaos`), and killing one.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cluster::explain;
use crate::commands::Global;
use crate::print;

/// What `debug` does.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum DebugCommand {
    /// The control plane's actors: kind, name, restarts, mailbox depth.
    Actors,
    /// Kill an actor (its supervisor restarts it and it rebuilds from the API).
    KillActor {
        /// `KIND/NAME` (`ReplicaSet/default/web-5d8f`, `Controller/scheduler`).
        #[arg(required_unless_present = "random", conflicts_with = "random")]
        actor: Option<String>,
        /// Kill one at random.
        #[arg(long)]
        random: bool,
    },
}

const ACTORS: &str = "/rk8s/v1/debug/actors";

/// Prints actors as the registry lists them (`{"kind", "name", "restarts",
/// "mailbox"}`, from the API server or a node's chaos socket) as a table.
pub fn print_actors(items: &[Value]) {
    let header = ["KIND", "NAME", "RESTARTS", "MAILBOX"].map(String::from);
    let rows: Vec<Vec<String>> = std::iter::once(header.to_vec())
        .chain(items.iter().map(|a| {
            ["kind", "name", "restarts", "mailbox"]
                .iter()
                .map(|k| match &a[*k] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        }))
        .collect();
    print::table(&rows);
}

/// Runs a `debug` command.
pub async fn debug(g: &Global, command: &DebugCommand) -> Result<()> {
    let cluster = g.connect().await?;
    match command {
        DebugCommand::Actors => {
            let answer = cluster.get_json(ACTORS, "application/json").await?;
            let items = answer["items"].as_array().cloned().unwrap_or_default();
            if answer["leader"] == Value::Bool(false) {
                eprintln!(
                    "this member does not lead: the control plane's actors run on the leader"
                );
            }
            print_actors(&items);
        }
        DebugCommand::KillActor { actor, random } => {
            let body = match (actor, random) {
                (_, true) => json!({"random": true}),
                (Some(actor), false) => {
                    let (kind, name) = actor
                        .split_once('/')
                        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
                        .with_context(|| {
                            format!(
                                "{actor:?}: name the actor as KIND/NAME (see rk8sctl debug actors)"
                            )
                        })?;
                    json!({"kind": kind, "name": name})
                }
                (None, false) => bail!("name an actor (KIND/NAME) or pass --random"),
            };
            let req = http::Request::post(format!("{ACTORS}/kill"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body)?)?;
            let killed: Value = cluster.client.request(req).await.map_err(explain)?;
            println!(
                "killed {}/{}",
                killed["kind"].as_str().unwrap_or_default(),
                killed["name"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(())
}
