//! `cluster-info` and `version`: where the control plane is and what it runs.

use anyhow::Result;

use super::Global;
use crate::cluster::explain;

/// `cluster-info`.
pub async fn cluster_info(g: &Global) -> Result<()> {
    let cluster = g.connect().await?;
    let req = http::Request::get("/readyz").body(Vec::new())?;
    let ready = cluster.client.request_text(req).await.map_err(explain)?;
    println!(
        "Kubernetes control plane is running at {} (readyz: {})",
        cluster.server,
        ready.trim()
    );
    Ok(())
}

/// `version`: the client's, and the server's if one answers.
pub async fn version(g: &Global) -> Result<()> {
    println!("Client Version: rk8sctl {}", env!("CARGO_PKG_VERSION"));
    let cluster = g.connect().await?;
    let v = cluster.get_json("/version", "application/json").await?;
    println!(
        "Server Version: {}",
        v["gitVersion"].as_str().unwrap_or("unknown")
    );
    Ok(())
}
