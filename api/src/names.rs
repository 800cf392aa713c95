//! Syntax checks for names, label keys and values, as Kubernetes' `validation` package
//! defines them. Each returns the reasons the text is not valid (empty when it is).

fn alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: at most 63 of `[a-z0-9-]`, starting and ending alphanumeric
/// (namespaces, Service names, container and port names).
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.chars().all(|c| alnum_lower(c) || c == '-')
        && s.starts_with(alnum_lower)
        && s.ends_with(alnum_lower);
    if !ok {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc')"
                .to_string(),
        );
    }
    errs
}

/// RFC 1123 subdomain: at most 253 characters, dot-separated labels (most object names).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| alnum_lower(c) || c == '-')
                && part.starts_with(alnum_lower)
                && part.ends_with(alnum_lower)
        });
    if !ok {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')"
                .to_string(),
        );
    }
    errs
}

fn qualified_name_part(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| alnum(c) || c == '-' || c == '_' || c == '.')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name of
/// at most 63 characters (`app`, `app.kubernetes.io/name`).
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(prefix)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    } else if !qualified_name_part(name) {
        errs.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
             and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc')"
                .to_string(),
        );
    }
    errs
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9-_.]` starting and ending
/// alphanumeric.
pub fn label_value(s: &str) -> Vec<String> {
    if s.is_empty() || qualified_name_part(s) {
        return Vec::new();
    }
    if s.len() > 63 {
        return vec!["must be no more than 63 characters".to_string()];
    }
    vec![
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
         or '.', and must start and end with an alphanumeric character"
            .to_string(),
    ]
}

/// An IANA service name, as used for named ports: at most 15 of `[a-z0-9-]`, with at
/// least one letter and no `--`, not starting or ending with `-`.
pub fn iana_svc_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if !s.chars().all(|c| alnum_lower(c) || c == '-') || s.is_empty() {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// An environment variable name: any printable ASCII except `=`, not empty
/// (Kubernetes 1.32+ relaxed the older C-identifier rule).
pub fn env_var_name(s: &str) -> Vec<String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && c != '=') {
        Vec::new()
    } else {
        vec!["a valid environment variable name must consist only of printable ASCII characters other than '='".to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubernetes_rules() {
        assert!(dns1123_label("web-1").is_empty());
        assert!(!dns1123_label("Web").is_empty());
        assert!(!dns1123_label("-web").is_empty());
        assert!(!dns1123_label(&"a".repeat(64)).is_empty());
        assert!(dns1123_subdomain("web.example.com").is_empty());
        assert!(!dns1123_subdomain("web..com").is_empty());
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(qualified_name("App_Name.v2").is_empty());
        assert!(!qualified_name("/name").is_empty());
        assert!(!qualified_name("a/b/c").is_empty());
        assert!(label_value("").is_empty());
        assert!(!label_value("has space").is_empty());
        assert!(iana_svc_name("http").is_empty());
        assert!(!iana_svc_name("8080").is_empty());
        assert!(!iana_svc_name("a--b").is_empty());
        assert!(env_var_name("MY_VAR.1").is_empty());
        assert!(!env_var_name("A=B").is_empty());
    }
}
