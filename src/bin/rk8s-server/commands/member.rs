//! `rk8s-server member add|list|promote|remove|status`, as `etcdctl member`: the
//! command that adds a member, the members, promoting a learner, removing a member,
//! and what a member sees.

use anyhow::Context;
use clap::Subcommand;

use super::StoreAccess;

#[derive(Subcommand)]
pub enum Command {
    /// Print the command that adds a member: run it on the new member's host (it
    /// joins as a learner and becomes a voter once it has caught up). Its token works
    /// once.
    Add {
        /// How long the command works.
        #[arg(long, default_value = "1h", value_parser = super::run::parse_duration)]
        ttl: std::time::Duration,
        #[command(flatten)]
        store: StoreAccess,
        /// The API server URL the new member joins through [default: the one the
        /// member of --data-dir advertises].
        #[arg(long)]
        server: Option<String>,
    },
    /// List the members: id, role (voter or learner), peer address, leader.
    List {
        #[command(flatten)]
        store: StoreAccess,
    },
    /// Promote a learner to voter now (the leader does so itself once the learner has
    /// caught up); through the leader's store port.
    Promote {
        /// The learner's id (see `member list`).
        id: u64,
        #[command(flatten)]
        store: StoreAccess,
    },
    /// Print a member's view: its id, the leader, term, revision and the members.
    Status {
        #[command(flatten)]
        store: StoreAccess,
    },
    /// Remove a member from the cluster.
    Remove {
        /// The member's id (see `member status`).
        id: u64,
        #[command(flatten)]
        store: StoreAccess,
    },
}

pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Add { ttl, store, server } => {
            super::token::run(super::token::Command::Create {
                ttl,
                node: None,
                member: true,
                usage_limit: None,
                store,
                server,
            })
            .await
        }
        Command::List { store } => {
            let endpoint = &store.endpoint;
            let s = store
                .connect()
                .await?
                .status()
                .await
                .with_context(|| format!("failed to get the members from {endpoint}"))?;
            println!("{:<6}  {:<8}  {:<6}  PEER ADDRESS", "ID", "ROLE", "LEADER");
            for a in &s.addresses {
                println!(
                    "{:<6}  {:<8}  {:<6}  {}",
                    a.id,
                    role(&s, a.id),
                    if a.id == s.leader { "yes" } else { "no" },
                    a.address
                );
            }
            Ok(())
        }
        Command::Promote { id, store } => {
            store
                .connect()
                .await?
                .promote_member(id)
                .await
                .with_context(|| format!("failed to promote member {id}"))?;
            println!("member {id} promoted to voter");
            Ok(())
        }
        Command::Status { store } => {
            let endpoint = &store.endpoint;
            let s = store
                .connect()
                .await?
                .status()
                .await
                .with_context(|| format!("failed to get the status of {endpoint}"))?;
            let leader = if s.leader == 0 {
                "none".to_string()
            } else if s.leader == s.id {
                format!("{} (this member)", s.leader)
            } else {
                s.leader.to_string()
            };
            println!("member    {}", s.id);
            println!("leader    {leader}");
            println!("term      {}", s.term);
            println!("revision  {}", s.revision);
            println!("applied   {}", s.applied);
            for a in &s.addresses {
                println!("  {:>6}  {:<8} {}", a.id, role(&s, a.id), a.address);
            }
            Ok(())
        }
        Command::Remove { id, store } => {
            store
                .connect()
                .await?
                .remove_member(id)
                .await
                .with_context(|| format!("failed to remove member {id}"))?;
            println!("member {id} removed");
            Ok(())
        }
    }
}

/// What member `id` is in `status`: a voter, a learner, or leaving (its address is
/// still recorded, its membership gone).
fn role(status: &rk8s_raftstore::proto::StatusResponse, id: u64) -> &'static str {
    if status.voters.contains(&id) {
        "voter"
    } else if status.learners.contains(&id) {
        "learner"
    } else {
        "leaving"
    }
}
