//! `describe`: an object for people — its identity, labels and annotations, the rest
//! of its fields as indented YAML, and the events about it, newest last.

use serde_json::Value;

fn map_lines(label: &str, map: Option<&Value>) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != crate::apply::LAST_APPLIED)
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(&v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let mut out = String::new();
    match pairs.split_first() {
        None => out.push_str(&format!("{label:<14}<none>\n")),
        Some((first, rest)) => {
            out.push_str(&format!("{label:<14}{first}\n"));
            for p in rest {
                out.push_str(&format!("{:<14}{p}\n", ""));
            }
        }
    }
    out
}

fn title(key: &str) -> String {
    let mut c = key.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The description of `obj` with its `events`.
pub fn describe(obj: &Value, events: &[Value]) -> String {
    let meta = &obj["metadata"];
    let mut out = String::new();
    let field = |out: &mut String, label: &str, v: &Value| {
        if let Some(s) = v.as_str() {
            out.push_str(&format!("{label:<14}{s}\n"));
        }
    };
    field(&mut out, "Name:", &meta["name"]);
    field(&mut out, "Namespace:", &meta["namespace"]);
    field(&mut out, "Kind:", &obj["kind"]);
    field(&mut out, "Created:", &meta["creationTimestamp"]);
    field(&mut out, "Deleting at:", &meta["deletionTimestamp"]);
    out.push_str(&map_lines("Labels:", meta.get("labels")));
    out.push_str(&map_lines("Annotations:", meta.get("annotations")));
    if let Some(owners) = meta["ownerReferences"].as_array() {
        for o in owners {
            out.push_str(&format!(
                "{:<14}{}/{}\n",
                "Controlled By:",
                o["kind"].as_str().unwrap_or(""),
                o["name"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if matches!(k.as_str(), "metadata" | "apiVersion" | "kind") || v.is_null() {
                continue;
            }
            out.push_str(&format!("{}:\n", title(k)));
            for line in crate::print::yaml(v).lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    if events.is_empty() {
        out.push_str("Events:       <none>\n");
        return out;
    }
    let mut rows: Vec<&Value> = events.iter().collect();
    rows.sort_by_key(|e| {
        e["lastTimestamp"]
            .as_str()
            .or(e["metadata"]["creationTimestamp"].as_str())
            .unwrap_or("")
            .to_string()
    });
    out.push_str("Events:\n  TYPE      REASON          FROM                 MESSAGE\n");
    for e in rows {
        out.push_str(&format!(
            "  {:<9} {:<15} {:<20} {}\n",
            e["type"].as_str().unwrap_or(""),
            e["reason"].as_str().unwrap_or(""),
            e["source"]["component"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describes_fields_and_events() {
        let obj = json!({"kind": "Pod", "metadata": {"name": "web", "namespace": "default",
            "labels": {"app": "web", "tier": "front"}}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let events = vec![
            json!({"type": "Normal", "reason": "Scheduled", "message": "assigned to n1",
            "source": {"component": "default-scheduler"}}),
        ];
        let text = describe(&obj, &events);
        assert!(text.contains("Name:         web\n"), "{text}");
        assert!(
            text.contains("Labels:       app=web\n              tier=front\n"),
            "{text}"
        );
        assert!(text.contains("Annotations:  <none>\n"), "{text}");
        assert!(text.contains("Spec:\n  nodeName: n1\n"), "{text}");
        assert!(
            text.contains("Normal    Scheduled       default-scheduler    assigned to n1"),
            "{text}"
        );
        assert!(describe(&obj, &[]).ends_with("Events:       <none>\n"));
    }
}
