//! `rk8s-server encryption rewrite`: writes every stored value of the resources an
//! `EncryptionConfiguration` covers again, so that each is encrypted with the
//! configuration's current first key — kube's `kubectl get secrets -A -o json |
//! kubectl replace -f -` step of a key rotation, without going through the API.
//!
//! It talks to a member's store port: the serving member decrypts what it reads and
//! encrypts what it writes with its own `--encryption-provider-config`, so the
//! command needs the same file only to know which resources to rewrite. Each value is
//! written back only if its key has not changed since it was read (a compare on its
//! `mod_revision`); a value changed meanwhile is read again and retried, one deleted
//! meanwhile is skipped.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use rk8s_apiserver::encryption::EncryptionTransformer;
use rk8s_raftstore::client::StoreClient;
use rk8s_raftstore::prefix_end;
use rk8s_raftstore::proto::{
    Compare, CompareResult, CompareTarget, KeyValue, PutRequest, RangeRequest, RequestOp,
    TxnRequest, request_op, response_op,
};

use super::StoreAccess;

/// Keys read per page.
const PAGE: i64 = 500;
/// Attempts at one key that keeps changing under the rewrite.
const ATTEMPTS: usize = 10;

#[derive(Subcommand)]
pub enum Command {
    /// Write every stored object of the resources the configuration covers again,
    /// encrypted with its first key (after adding a new key first and restarting
    /// every member with the file; then the old key can be removed). Prints how
    /// many were rewritten.
    Rewrite {
        /// The members' EncryptionConfiguration (the same file as their
        /// --encryption-provider-config): which resources to rewrite.
        #[arg(long, value_name = "FILE")]
        encryption_provider_config: PathBuf,
        #[command(flatten)]
        store: StoreAccess,
    },
}

pub async fn run(cmd: Command) -> anyhow::Result<()> {
    let Command::Rewrite {
        encryption_provider_config,
        store,
    } = cmd;
    let config = EncryptionTransformer::load(&encryption_provider_config)?;
    let client = store.connect().await?;
    let mut total = Rewritten::default();
    for prefix in config.prefixes() {
        let done = rewrite_prefix(&client, &prefix)
            .await
            .with_context(|| format!("failed to rewrite the values under {prefix}"))?;
        if done.values > 0 {
            let with = config
                .writing_key(prefix.as_bytes())
                .unwrap_or_else(|| "the first provider".into());
            println!("{prefix}: {} rewritten with {with}", done.values);
        }
        total.values += done.values;
        total.gone += done.gone;
    }
    println!(
        "{} values rewritten ({} deleted meanwhile)",
        total.values, total.gone
    );
    Ok(())
}

/// What a rewrite did.
#[derive(Default)]
struct Rewritten {
    /// Values written again.
    values: u64,
    /// Keys deleted between their read and their write.
    gone: u64,
}

/// Rewrites every key under `prefix`, a page at a time.
async fn rewrite_prefix(client: &StoreClient, prefix: &str) -> anyhow::Result<Rewritten> {
    let mut done = Rewritten::default();
    let end = prefix_end(prefix.as_bytes());
    let mut from = prefix.as_bytes().to_vec();
    loop {
        let page = client
            .range(
                RangeRequest {
                    key: from.clone(),
                    range_end: end.clone(),
                    limit: PAGE,
                    ..RangeRequest::default()
                },
                true,
            )
            .await
            .context("failed to read")?;
        for kv in &page.kvs {
            match rewrite_key(client, kv.clone()).await? {
                true => done.values += 1,
                false => done.gone += 1,
            }
        }
        match (page.more, page.kvs.last()) {
            (true, Some(last)) => {
                from = last.key.clone();
                from.push(0);
            }
            _ => return Ok(done),
        }
    }
}

/// Writes `kv` back as it is unless it changed since (then reads it again); false if
/// it is gone.
async fn rewrite_key(client: &StoreClient, mut kv: KeyValue) -> anyhow::Result<bool> {
    let name = String::from_utf8_lossy(&kv.key).into_owned();
    for _ in 0..ATTEMPTS {
        let txn = TxnRequest {
            compare: vec![Compare {
                key: kv.key.clone(),
                target: CompareTarget::Mod as i32,
                result: CompareResult::Equal as i32,
                number: kv.mod_revision,
                value: Vec::new(),
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::Put(PutRequest {
                    key: kv.key.clone(),
                    value: kv.value.clone(),
                    lease: kv.lease,
                })),
            }],
            failure: vec![RequestOp {
                request: Some(request_op::Request::Range(RangeRequest {
                    key: kv.key.clone(),
                    ..RangeRequest::default()
                })),
            }],
        };
        let answer = match client.txn(txn).await {
            Ok(a) => a,
            // Its lease expired meanwhile: the key goes with it.
            Err(e) if e.to_string().contains("lease") && e.to_string().contains("not found") => {
                return Ok(false);
            }
            Err(e) => return Err(e).with_context(|| format!("failed to write {name}")),
        };
        if answer.succeeded {
            return Ok(true);
        }
        let current = answer.responses.into_iter().find_map(|r| match r.response {
            Some(response_op::Response::Range(r)) => Some(r.kvs.into_iter().next()),
            _ => None,
        });
        match current.flatten() {
            Some(now) => kv = now,
            None => return Ok(false),
        }
    }
    anyhow::bail!(
        "{name} changed {ATTEMPTS} times while it was being rewritten: run the command again"
    )
}
