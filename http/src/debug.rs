//! The chaos endpoints' backend: what `/rk8s/v1/debug/actors` lists and kills when a
//! member runs with `--enable-chaos` (for chaos tests; admin only).

use serde_json::Value;

/// The control plane's actors, listed and killed through the API.
pub trait ActorControl: Send + Sync {
    /// Every actor of this member, as `{"kind", "name", "restarts", "mailbox"}`.
    fn list(&self) -> Value;
    /// Kills `kind`/`name`, or one at random (`None`); which one was killed.
    fn kill(&self, target: Option<(&str, &str)>) -> Option<(String, String)>;
}
