//! Output as kubectl prints it: aligned columns from the server's `Table`, YAML, JSON,
//! or `kind/name`.

use serde_json::Value;

/// The `Accept` header asking for a Table (with whole objects, for `-A` and names).
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// Options of a table.
#[derive(Clone, Debug, Default)]
pub struct TableStyle {
    /// `-o wide`: every column.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first.
    pub namespace_column: bool,
    /// Leave the header line out (rows of a watch after the first).
    pub no_headers: bool,
    /// Prefix names with `kind/` (when several kinds are printed).
    pub kind_prefix: Option<String>,
    /// `-L KEY`: a column of each label's value, after the others.
    pub label_columns: Vec<String>,
    /// `--show-labels`: a LABELS column last.
    pub show_labels: bool,
}

fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".to_string(),
        other => other.to_string(),
    }
}

/// The rows of a Table as text lines, columns aligned as kubectl aligns them (three
/// spaces apart).
pub fn table_lines(table: &Value, style: &TableStyle) -> Vec<String> {
    table_lines_at(table, style, &mut Vec::new())
}

/// Prints tables one after another with columns that only grow (the initial list and
/// then the rows of a watch line up).
#[derive(Clone, Debug, Default)]
pub struct Printer {
    /// How rows are shown.
    pub style: TableStyle,
    widths: Vec<usize>,
}

impl Printer {
    /// A printer in `style`.
    pub fn new(style: TableStyle) -> Self {
        Printer {
            style,
            widths: Vec::new(),
        }
    }

    /// The lines of `table`.
    pub fn lines(&mut self, table: &Value) -> Vec<String> {
        table_lines_at(table, &self.style, &mut self.widths)
    }
}

/// Like [`table_lines`], with columns at least as wide as `widths`, which grows to
/// the widths used (so the rows of a watch line up with the table before them).
fn table_lines_at(table: &Value, style: &TableStyle, widths: &mut Vec<usize>) -> Vec<String> {
    let empty = Vec::new();
    let columns = table["columnDefinitions"].as_array().unwrap_or(&empty);
    let shown: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| style.wide || c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, _)| i)
        .collect();
    let mut grid: Vec<Vec<String>> = Vec::new();
    if !style.no_headers {
        let mut header: Vec<String> = shown
            .iter()
            .map(|i| columns[*i]["name"].as_str().unwrap_or("").to_uppercase())
            .collect();
        if style.namespace_column {
            header.insert(0, "NAMESPACE".into());
        }
        // kubectl heads a label's column with the last segment of its key.
        header.extend(
            style
                .label_columns
                .iter()
                .map(|k| k.rsplit('/').next().unwrap_or(k).to_uppercase()),
        );
        if style.show_labels {
            header.push("LABELS".into());
        }
        grid.push(header);
    }
    for row in table["rows"].as_array().unwrap_or(&empty) {
        let cells = row["cells"].as_array().unwrap_or(&empty);
        let mut line: Vec<String> = shown
            .iter()
            .map(|i| {
                let text = cells.get(*i).map(cell_text).unwrap_or_default();
                match (&style.kind_prefix, columns[*i]["format"].as_str()) {
                    (Some(k), Some("name")) => format!("{k}/{text}"),
                    _ => text,
                }
            })
            .collect();
        let meta = &row["object"]["metadata"];
        if style.namespace_column {
            line.insert(0, meta["namespace"].as_str().unwrap_or("").to_string());
        }
        let labels = meta["labels"].as_object();
        for key in &style.label_columns {
            let value = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            line.push(value.unwrap_or("").to_string());
        }
        if style.show_labels {
            line.push(labels_text(labels));
        }
        grid.push(line);
    }
    aligned(&grid, widths)
}

/// Labels as `--show-labels` prints them: `k=v,k2=v2` by key, or `<none>`.
fn labels_text(labels: Option<&serde_json::Map<String, Value>>) -> String {
    let mut pairs: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// Rows as lines with columns aligned as kubectl's tab writer aligns them: each
/// column but the last as wide as its widest cell plus three spaces, and at least six,
/// padded even when the cells after it are empty (as wide as `widths` too, which grows to the widths used, so the rows of a watch
/// line up with the table before them).
pub fn aligned(grid: &[Vec<String>], widths: &mut Vec<usize>) -> Vec<String> {
    let count = grid.iter().map(Vec::len).max().unwrap_or(0);
    widths.resize(widths.len().max(count), 0);
    for (c, w) in widths.iter_mut().enumerate().take(count) {
        let widest = grid
            .iter()
            .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
            .max()
            .unwrap_or(0);
        *w = (*w).max(widest).max(3);
    }
    grid.iter()
        .map(|r| {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 == r.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
                }
            }
            line
        })
        .collect()
}

/// An object or list as YAML.
pub fn yaml(value: &Value) -> String {
    let mut out = String::new();
    rk8s_api::emit::write_yaml(&mut out, value);
    out
}

/// An object as `get -o yaml|json` shows it: without `managedFields`.
pub fn for_output(mut value: Value) -> Value {
    if let Some(Value::Object(meta)) = value.get_mut("metadata") {
        meta.remove("managedFields");
    }
    value
}

/// Prints rows with columns aligned as kubectl aligns tables ([`aligned`]).
pub fn table(rows: &[Vec<String>]) {
    for line in aligned(rows, &mut Vec::new()) {
        println!("{line}");
    }
}

/// An age as kubectl shows it: `45s`, `3m`, `5h`, `2d`.
pub fn age(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_like_kubectl() {
        let t = json!({
            "columnDefinitions": [
                {"name": "Name", "format": "name", "priority": 0},
                {"name": "Status", "format": "", "priority": 0},
                {"name": "Node", "format": "", "priority": 1}],
            "rows": [
                {"cells": ["web", "Running", "n1"], "object": {"metadata": {"namespace": "default"}}},
                {"cells": ["a-much-longer-name", "Pending", null], "object": {"metadata": {"namespace": "kube-system"}}}]
        });
        assert_eq!(
            table_lines(&t, &TableStyle::default()),
            vec![
                "NAME                 STATUS",
                "web                  Running",
                "a-much-longer-name   Pending"
            ]
        );
        let wide = table_lines(
            &t,
            &TableStyle {
                wide: true,
                namespace_column: true,
                ..Default::default()
            },
        );
        assert_eq!(wide[0], "NAMESPACE     NAME                 STATUS    NODE");
        assert_eq!(
            wide[2],
            "kube-system   a-much-longer-name   Pending   <none>"
        );
        let named = table_lines(
            &t,
            &TableStyle {
                no_headers: true,
                kind_prefix: Some("pod".into()),
                ..Default::default()
            },
        );
        assert_eq!(named[0], "pod/web                  Running");
    }
}
