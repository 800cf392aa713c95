//! `rk8s-server member status|remove`: what a member sees, and removing a member.

use anyhow::Context;
use clap::Subcommand;

use super::StoreAccess;

#[derive(Subcommand)]
pub enum Command {
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
                let role = if s.voters.contains(&a.id) {
                    "voter"
                } else if s.learners.contains(&a.id) {
                    "learner"
                } else {
                    "leaving"
                };
                println!("  {:>6}  {:<8} {}", a.id, role, a.address);
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
