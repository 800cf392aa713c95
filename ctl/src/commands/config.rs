//! `config view|current-context|get-contexts|get-clusters|get-users|use-context|
//! set-cluster|set-credentials|set-context|rename-context|delete-context|
//! delete-cluster|delete-user`: the kubeconfig, read and changed as kubectl does.
//!
//! With several files (`KUBECONFIG=a:b`, or `~/.rk8s/config` and `~/.kube/config`)
//! they are read merged, the first file to set a value winning; a change is written
//! to the file that defines what changes, a new entry to the first file that exists
//! (kubectl's rules, [`KubeconfigFiles::default_file`]).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Map, Value, json};

use super::Global;
use crate::cluster::KubeconfigFiles;
use crate::print;

/// `config` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum ConfigCommand {
    /// Print the kubeconfig, merged (secrets left out unless --raw).
    View {
        /// Include tokens and certificate data.
        #[arg(long)]
        raw: bool,
    },
    /// Print the current context.
    CurrentContext,
    /// List the contexts.
    GetContexts,
    /// List the clusters.
    GetClusters,
    /// List the users.
    GetUsers,
    /// Make NAME the current context.
    UseContext {
        /// The context.
        name: String,
    },
    /// Set a cluster entry (created if new; only the given fields change).
    SetCluster {
        /// The cluster's name.
        name: String,
        /// The API server's URL.
        #[arg(long)]
        server: Option<String>,
        /// The CA certificate file that signs the server's certificate.
        #[arg(long)]
        certificate_authority: Option<PathBuf>,
        /// Store the certificate files' contents in the kubeconfig.
        #[arg(long)]
        embed_certs: bool,
        /// Do not check the server's certificate (insecure).
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        insecure_skip_tls_verify: Option<bool>,
        /// The name the server's certificate is checked for.
        #[arg(long)]
        tls_server_name: Option<String>,
    },
    /// Set a user entry (created if new; only the given fields change).
    SetCredentials {
        /// The user's name.
        name: String,
        /// A bearer token.
        #[arg(long)]
        token: Option<String>,
        /// A client certificate file.
        #[arg(long)]
        client_certificate: Option<PathBuf>,
        /// The client certificate's key file.
        #[arg(long)]
        client_key: Option<PathBuf>,
        /// Store the certificate files' contents in the kubeconfig.
        #[arg(long)]
        embed_certs: bool,
        /// A user name for basic authentication.
        #[arg(long)]
        username: Option<String>,
        /// A password for basic authentication.
        #[arg(long)]
        password: Option<String>,
    },
    /// Set a context entry (created if new; only the given fields change).
    SetContext {
        /// The context's name (or --current).
        #[arg(required_unless_present = "current")]
        name: Option<String>,
        /// Change the current context.
        #[arg(long, conflicts_with = "name")]
        current: bool,
        /// The context's cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// The context's user.
        #[arg(long)]
        user: Option<String>,
        /// The context's namespace.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Rename a context.
    RenameContext {
        /// Its name.
        old: String,
        /// Its new name.
        new: String,
    },
    /// Delete a context.
    DeleteContext {
        /// The context.
        name: String,
    },
    /// Delete a cluster.
    DeleteCluster {
        /// The cluster.
        name: String,
    },
    /// Delete a user.
    DeleteUser {
        /// The user.
        name: String,
    },
}

/// The sections of a kubeconfig: the list's key and each entry's.
#[derive(Clone, Copy, Debug)]
enum Section {
    Clusters,
    Users,
    Contexts,
}

impl Section {
    fn list(self) -> &'static str {
        match self {
            Section::Clusters => "clusters",
            Section::Users => "users",
            Section::Contexts => "contexts",
        }
    }

    fn entry(self) -> &'static str {
        match self {
            Section::Clusters => "cluster",
            Section::Users => "user",
            Section::Contexts => "context",
        }
    }
}

/// The kubeconfig files as values, read once, written back when changed.
struct Config {
    files: KubeconfigFiles,
    docs: Vec<(PathBuf, Value, bool)>,
}

impl Config {
    fn read(g: &Global) -> Result<Self> {
        let files = KubeconfigFiles::find(g.kubeconfig.as_ref())?;
        // Files that do not exist yet are made when something is set.
        let mut docs = Vec::new();
        for path in files.paths.iter().filter(|p| p.exists()) {
            docs.push((path.clone(), read_file(path)?, false));
        }
        Ok(Config { files, docs })
    }

    /// Every file merged: entries by name and the current context, first wins.
    fn merged(&self) -> Value {
        let mut out = Map::new();
        for (_, doc, _) in &self.docs {
            for (k, v) in doc.as_object().into_iter().flatten() {
                let list = [Section::Clusters, Section::Users, Section::Contexts]
                    .into_iter()
                    .any(|s| s.list() == k);
                let unset = match out.get(k) {
                    None => true,
                    Some(Value::String(s)) => s.is_empty(),
                    Some(Value::Null) => true,
                    Some(_) => false,
                };
                if list {
                    let have = out.entry(k.clone()).or_insert_with(|| json!([]));
                    if !have.is_array() {
                        *have = json!([]);
                    }
                    for entry in v.as_array().into_iter().flatten() {
                        let name = entry["name"].as_str();
                        let known = have
                            .as_array()
                            .is_some_and(|a| a.iter().any(|e| e["name"].as_str() == name));
                        if !known && let Some(a) = have.as_array_mut() {
                            a.push(entry.clone());
                        }
                    }
                } else if unset {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(out)
    }

    fn current_context(&self) -> String {
        self.merged()["current-context"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn names(&self, section: Section) -> Vec<String> {
        let merged = self.merged();
        let mut names: Vec<String> = merged[section.list()]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// The index of the file new settings go to (added, empty, if it is new).
    fn default_doc(&mut self) -> usize {
        let path = self.files.default_file();
        match self.docs.iter().position(|(p, _, _)| *p == path) {
            Some(i) => i,
            None => {
                let empty = json!({"apiVersion": "v1", "kind": "Config", "clusters": [],
                    "users": [], "contexts": [], "current-context": "", "preferences": {}});
                self.docs.push((path, empty, true));
                self.docs.len() - 1
            }
        }
    }

    fn defining(&self, section: Section, name: &str) -> Vec<usize> {
        (0..self.docs.len())
            .filter(|i| find(&self.docs[*i].1, section, name).is_some())
            .collect()
    }

    /// Changes the fields of the entry `name` of `section` with `f` (in the file
    /// defining it, else made in the default file); whether it was new.
    fn update(
        &mut self,
        section: Section,
        name: &str,
        f: impl FnOnce(&mut Map<String, Value>) -> Result<()>,
    ) -> Result<bool> {
        let (doc, new) = match self.defining(section, name).first() {
            Some(i) => (*i, false),
            None => (self.default_doc(), true),
        };
        let (_, value, dirty) = &mut self.docs[doc];
        *dirty = true;
        let mut list = match value[section.list()].take() {
            Value::Array(a) => a,
            _ => Vec::new(),
        };
        let at = match list.iter().position(|e| e["name"].as_str() == Some(name)) {
            Some(at) => at,
            None => {
                list.push(json!({ "name": name }));
                list.len() - 1
            }
        };
        let mut fields = match list[at][section.entry()].take() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let done = f(&mut fields);
        list[at][section.entry()] = Value::Object(fields);
        value[section.list()] = Value::Array(list);
        done.map(|()| new)
    }

    /// Removes `name` from every file defining it; the first such file.
    fn delete(&mut self, section: Section, name: &str) -> Result<PathBuf> {
        let defining = self.defining(section, name);
        let Some(first) = defining.first() else {
            bail!(
                "cannot delete {} {name}, not in {}",
                section.entry(),
                self.files.default_file().display()
            );
        };
        let path = self.docs[*first].0.clone();
        for i in defining {
            let (_, doc, dirty) = &mut self.docs[i];
            if let Some(list) = doc[section.list()].as_array_mut() {
                list.retain(|e| e["name"].as_str() != Some(name));
            }
            *dirty = true;
        }
        Ok(path)
    }

    /// Sets the current context where kubectl sets it: in the first file that has
    /// one, else in the default file.
    fn set_current(&mut self, name: &str) {
        let has = |d: &Value| d["current-context"].as_str().is_some_and(|s| !s.is_empty());
        let doc = match self.docs.iter().position(|(_, d, _)| has(d)) {
            Some(i) => i,
            None => self.default_doc(),
        };
        let (_, value, dirty) = &mut self.docs[doc];
        value["current-context"] = json!(name);
        *dirty = true;
    }

    fn write(&self) -> Result<()> {
        for (path, value, dirty) in &self.docs {
            if *dirty {
                write_file(path, &print::yaml(value))?;
            }
        }
        Ok(())
    }
}

fn find<'a>(doc: &'a Value, section: Section, name: &str) -> Option<&'a Value> {
    doc[section.list()]
        .as_array()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
}

fn read_file(path: &PathBuf) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
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
        .unwrap_or_else(|| json!({}));
    if !value.is_object() {
        bail!("{}: a kubeconfig is a mapping", path.display());
    }
    Ok(value)
}

/// Writes a kubeconfig (readable by its owner only when it is new: it holds secrets).
fn write_file(path: &PathBuf, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
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

/// Sets `key` to a file's path, or with `embed` to its contents (`key-data`).
fn set_file(fields: &mut Map<String, Value>, key: &str, path: &PathBuf, embed: bool) -> Result<()> {
    if embed {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        fields.remove(key);
        fields.insert(
            format!("{key}-data"),
            json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
    } else {
        let absolute = std::path::absolute(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        fields.remove(&format!("{key}-data"));
        fields.insert(key.to_string(), json!(absolute.display().to_string()));
    }
    Ok(())
}

fn set(fields: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value {
        fields.insert(key.to_string(), json!(v));
    }
}

/// `config ...`.
pub fn config(g: &Global, cmd: &ConfigCommand) -> Result<()> {
    let mut c = Config::read(g)?;
    match cmd {
        ConfigCommand::View { raw } => {
            let mut value = c.merged();
            if !raw {
                redact(&mut value);
            }
            print!("{}", print::yaml(&value));
        }
        ConfigCommand::CurrentContext => match c.current_context().as_str() {
            "" => bail!("current-context is not set"),
            name => println!("{name}"),
        },
        ConfigCommand::GetContexts => {
            let current = c.current_context();
            let merged = c.merged();
            let mut rows = vec![
                vec!["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>(),
            ];
            for name in c.names(Section::Contexts) {
                let ctx =
                    &find(&merged, Section::Contexts, &name).unwrap_or(&Value::Null)["context"];
                let field = |k: &str| ctx[k].as_str().unwrap_or("").to_string();
                let mark = if name == current { "*" } else { "" };
                rows.push(vec![
                    mark.into(),
                    name,
                    field("cluster"),
                    field("user"),
                    field("namespace"),
                ]);
            }
            print::table(&rows);
        }
        ConfigCommand::GetClusters | ConfigCommand::GetUsers => {
            let section = match cmd {
                ConfigCommand::GetClusters => Section::Clusters,
                _ => Section::Users,
            };
            println!("NAME");
            for name in c.names(section) {
                println!("{name}");
            }
        }
        ConfigCommand::UseContext { name } => {
            if !c.names(Section::Contexts).contains(name) {
                bail!("no context exists with the name: {name:?}");
            }
            c.set_current(name);
            c.write()?;
            println!("Switched to context {name:?}.");
        }
        ConfigCommand::SetCluster {
            name,
            server,
            certificate_authority,
            embed_certs,
            insecure_skip_tls_verify,
            tls_server_name,
        } => {
            c.update(Section::Clusters, name, |fields| {
                set(fields, "server", server.as_ref());
                if let Some(ca) = certificate_authority {
                    set_file(fields, "certificate-authority", ca, *embed_certs)?;
                }
                if let Some(skip) = insecure_skip_tls_verify {
                    fields.insert("insecure-skip-tls-verify".into(), json!(skip));
                }
                set(fields, "tls-server-name", tls_server_name.as_ref());
                Ok(())
            })?;
            c.write()?;
            println!("Cluster {name:?} set.");
        }
        ConfigCommand::SetCredentials {
            name,
            token,
            client_certificate,
            client_key,
            embed_certs,
            username,
            password,
        } => {
            c.update(Section::Users, name, |fields| {
                set(fields, "token", token.as_ref());
                if let Some(cert) = client_certificate {
                    set_file(fields, "client-certificate", cert, *embed_certs)?;
                }
                if let Some(key) = client_key {
                    set_file(fields, "client-key", key, *embed_certs)?;
                }
                set(fields, "username", username.as_ref());
                set(fields, "password", password.as_ref());
                Ok(())
            })?;
            c.write()?;
            println!("User {name:?} set.");
        }
        ConfigCommand::SetContext {
            name,
            current: _,
            cluster,
            user,
            namespace,
        } => {
            let name = match name {
                Some(n) => n.clone(),
                None => match c.current_context() {
                    n if n.is_empty() => bail!("no current context is set"),
                    n => n,
                },
            };
            let new = c.update(Section::Contexts, &name, |fields| {
                set(fields, "cluster", cluster.as_ref());
                set(fields, "user", user.as_ref());
                set(fields, "namespace", namespace.as_ref());
                Ok(())
            })?;
            c.write()?;
            println!(
                "Context {name:?} {}.",
                if new { "created" } else { "modified" }
            );
        }
        ConfigCommand::RenameContext { old, new } => {
            let known = c.names(Section::Contexts);
            let file = c.files.default_file();
            if !known.contains(old) {
                bail!(
                    "cannot rename the context {old:?}, it's not in {}",
                    file.display()
                );
            }
            if known.contains(new) {
                bail!(
                    "cannot rename the context {old:?}, the context {new:?} already exists in {}",
                    file.display()
                );
            }
            for i in c.defining(Section::Contexts, old) {
                let (_, doc, dirty) = &mut c.docs[i];
                for e in doc["contexts"].as_array_mut().into_iter().flatten() {
                    if e["name"].as_str() == Some(old) {
                        e["name"] = json!(new);
                    }
                }
                if doc["current-context"].as_str() == Some(old) {
                    doc["current-context"] = json!(new);
                }
                *dirty = true;
            }
            c.write()?;
            println!("Context {old:?} renamed to {new:?}.");
        }
        ConfigCommand::DeleteContext { name } => {
            let current = c.current_context();
            let path = c.delete(Section::Contexts, name)?;
            c.write()?;
            if current == *name {
                eprintln!(
                    "warning: this removed your active context, use \"rk8sctl config use-context\" to select a different one"
                );
            }
            println!("deleted context {name} from {}", path.display());
        }
        ConfigCommand::DeleteCluster { name } | ConfigCommand::DeleteUser { name } => {
            let section = match cmd {
                ConfigCommand::DeleteCluster { .. } => Section::Clusters,
                _ => Section::Users,
            };
            let path = c.delete(section, name)?;
            c.write()?;
            println!("deleted {} {name} from {}", section.entry(), path.display());
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
