//! Config files for the binaries (`/etc/rk8s/server.yaml`, `/etc/rk8s/node.yaml`), as
//! k3s reads its own: a YAML mapping whose keys are the command's flags without the
//! dashes (`data-dir: /var/lib/rk8s`, `tls-san: [a, b]`, `enable-chaos: true`). Every
//! flag can be set there; a flag given on the command line wins over the file. The
//! settings become arguments placed before the command line's, so clap checks them
//! as it checks flags; a key that is no flag, or a value of the wrong shape, is an
//! error naming the file, line and key. One file may serve several subcommands
//! (`rk8s-node join` and `run` read node.yaml): a caller names the keys of the other
//! subcommands, which are then passed over.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ArgAction;
use rk8s_api::path::FieldPath;
use serde_json::Value;

/// The file `args` names with `--config FILE` (or `--config=FILE`), else `default`
/// when it exists.
pub fn config_path(args: &[OsString], default: &Path) -> Option<PathBuf> {
    named_config(args).or_else(|| default.exists().then(|| default.to_path_buf()))
}

/// The file `args` names with `--config FILE` or `--config=FILE`.
fn named_config(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let text = a.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// `args` with the settings of `file` inserted at `at` (after the program name, or
/// after the subcommand they apply to), for the flags of `command` that `args` does
/// not give; the keys in `other` (settings of another subcommand) are passed over.
pub fn with_settings(
    command: &clap::Command,
    args: Vec<OsString>,
    at: usize,
    file: &Path,
    other: &[String],
) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the config file {}", file.display()))?;
    let settings = settings_args(command, &text, &file.display().to_string(), &args, other)?;
    let at = at.min(args.len());
    let mut out: Vec<OsString> = args[..at].to_vec();
    // The file read is named to the command (which logs it) when it was the default.
    if named_config(&args).is_none() {
        out.push(OsString::from(format!("--config={}", file.display())));
    }
    out.extend(settings.into_iter().map(OsString::from));
    out.extend_from_slice(&args[at..]);
    Ok(out)
}

/// The arguments the settings in `text` (the file `name`) stand for: `--flag=value`
/// for each value, `--flag` for a `true` switch; flags `given` on the command line
/// are left to it, and so are the keys in `other`.
fn settings_args(
    command: &clap::Command,
    text: &str,
    name: &str,
    given: &[OsString],
    other: &[String],
) -> Result<Vec<String>> {
    let docs = rk8s_api::yaml::parse_documents(text).map_err(|e| anyhow::anyhow!("{name}:{e}"))?;
    let Some(doc) = docs.into_iter().find(|d| !d.value.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = &doc.value else {
        bail!(
            "{name}:{}: a config file is a mapping of flags to values",
            doc.start
        );
    };
    let given: Vec<String> = given
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut out = Vec::new();
    for (key, value) in map {
        if other.contains(key) {
            continue;
        }
        let at = doc
            .positions
            .locate(&FieldPath::root().key(key.as_str()))
            .map_or_else(|| doc.start.to_string(), |l| l.to_string());
        let fail = |why: String| anyhow::anyhow!("{name}:{at}: {key}: {why}");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config" && key != "help")
            .ok_or_else(|| fail(format!("no such setting (the settings are the flags of `{} --help`, without the dashes)", command.get_name())))?;
        let on_command_line = given.iter().any(|g| {
            g == &format!("--{key}")
                || g.starts_with(&format!("--{key}="))
                || arg.get_short().is_some_and(|s| g == &format!("-{s}"))
        });
        if on_command_line {
            continue;
        }
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let many = matches!(arg.get_action(), ArgAction::Append);
        match value {
            Value::Bool(b) if switch => {
                if *b {
                    out.push(format!("--{key}"));
                }
            }
            _ if switch => return Err(fail("expected true or false".into())),
            Value::Array(items) if many => {
                for item in items {
                    out.push(format!(
                        "--{key}={}",
                        scalar(item).ok_or_else(|| fail("expected a list of values".into()))?
                    ));
                }
            }
            Value::Array(_) => return Err(fail("expected one value, not a list".into())),
            Value::Null => {}
            other => {
                let text =
                    scalar(other).ok_or_else(|| fail("expected a value, not a mapping".into()))?;
                out.push(format!("--{key}={text}"));
            }
        }
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A command with each kind of flag.
    #[derive(clap::Parser, Debug)]
    #[command(name = "demo")]
    struct Demo {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "/var/lib/x")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 6443)]
        port: u16,
        #[arg(long = "tls-san")]
        tls_sans: Vec<String>,
        #[arg(long)]
        enable_chaos: bool,
    }

    fn parse(text: &str, cli: &[&str]) -> Result<Demo> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("demo.yaml");
        std::fs::write(&file, text)?;
        let args: Vec<OsString> = std::iter::once("demo")
            .chain(cli.iter().copied())
            .map(OsString::from)
            .collect();
        let other = ["token".to_string()];
        let merged = with_settings(
            &<Demo as clap::CommandFactory>::command(),
            args,
            1,
            &file,
            &other,
        )?;
        Ok(Demo::try_parse_from(merged)?)
    }

    #[test]
    fn settings_are_flags_and_the_command_line_wins() {
        let d = parse(
            "data-dir: /srv/rk8s\nport: 7443\ntls-san: [a.example, 10.0.0.1]\nenable-chaos: true\n",
            &[],
        )
        .unwrap();
        assert_eq!(d.data_dir, PathBuf::from("/srv/rk8s"));
        assert_eq!(d.port, 7443);
        assert_eq!(d.tls_sans, ["a.example", "10.0.0.1"]);
        assert!(d.enable_chaos);
        let d = parse(
            "port: 7443\ntls-san: [a]\n",
            &["--port", "8443", "--tls-san=b"],
        )
        .unwrap();
        assert_eq!(
            (d.port, d.tls_sans.as_slice()),
            (8443, ["b".to_string()].as_slice())
        );
        let d = parse("enable-chaos: false\n", &[]).unwrap();
        assert!(!d.enable_chaos);
        // Another subcommand's setting is passed over.
        let d = parse("token: abc.def\nport: 7000\n", &[]).unwrap();
        assert_eq!(d.port, 7000);
        assert!(parse("", &[]).is_ok());
    }

    #[test]
    fn bad_settings_name_the_file_line_and_key() {
        let e = parse("port: 7443\nprot: 1\n", &[]).unwrap_err().to_string();
        assert!(e.ends_with("demo.yaml:2:1: prot: no such setting (the settings are the flags of `demo --help`, without the dashes)"), "{e}");
        let e = parse("port: [1, 2]\n", &[]).unwrap_err().to_string();
        assert!(
            e.contains(":1:1: port: expected one value, not a list"),
            "{e}"
        );
        let e = parse("enable-chaos: yes please\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("enable-chaos: expected true or false"), "{e}");
        let e = parse("data-dir: {a: b}\n", &[]).unwrap_err().to_string();
        assert!(
            e.contains("data-dir: expected a value, not a mapping"),
            "{e}"
        );
        // A value clap rejects is rejected as the flag would be.
        assert!(parse("port: 99999\n", &[]).is_err());
        let e = parse("- a\n", &[]).unwrap_err().to_string();
        assert!(e.contains("a config file is a mapping"), "{e}");
    }

    #[test]
    fn the_file_is_named_by_config_or_is_the_default() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let missing = Path::new("/nonexistent/x.yaml");
        assert_eq!(
            config_path(&args(&["x", "--config", "/a.yaml"]), missing),
            Some(PathBuf::from("/a.yaml"))
        );
        assert_eq!(
            config_path(&args(&["x", "--config=/b.yaml"]), missing),
            Some(PathBuf::from("/b.yaml"))
        );
        assert_eq!(config_path(&args(&["x"]), missing), None);
        assert_eq!(
            config_path(&args(&["x", "--", "--config=/c"]), missing),
            None
        );
    }
}
