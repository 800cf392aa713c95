//! Apply conflicts: fields another manager owns with a different value, reported with
//! kube-apiserver's 409 message and causes
//! (`k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go`).

use std::collections::BTreeMap;
use std::fmt;

use super::fieldset::Path;

/// A field manager as conflicts name it: an `Apply` manager by its name, an `Update`
/// manager with the API version it wrote (`"kubectl-edit" using apps/v1`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    /// The manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The API version of an `Update` (not part of an `Apply` manager's identity).
    pub api_version: String,
    /// The subresource written (`status`), empty for the object itself.
    pub subresource: String,
}

/// kube-apiserver's `printManager`.
impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.manager)?;
        if !self.subresource.is_empty() {
            write!(f, " with subresource {:?}", self.subresource)?;
        }
        if self.operation == "Update" {
            write!(f, " using {}", self.api_version)?;
        }
        Ok(())
    }
}

/// One conflicting field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Who owns the field.
    pub owner: Owner,
    /// The field (`.spec.replicas`).
    pub path: Path,
}

/// One entry of a Status' `details.causes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// Always `FieldManagerConflict`.
    pub reason: &'static str,
    /// `conflict with "kubectl" using apps/v1`.
    pub message: String,
    /// `.spec.replicas`.
    pub field: String,
}

/// The conflicts that refused an apply: a 409 `Conflict`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    /// The Status causes, one per conflicting field.
    pub fn causes(&self) -> Vec<Cause> {
        self.0
            .iter()
            .map(|c| Cause {
                reason: "FieldManagerConflict",
                message: format!("conflict with {}", c.owner),
                field: c.path.to_string(),
            })
            .collect()
    }
}

/// kube-apiserver's message: one conflict on one line, several grouped by manager,
/// managers sorted.
impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = self.0.as_slice() {
            return write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.owner, only.path
            );
        }
        let mut by_owner: BTreeMap<String, Vec<&Path>> = BTreeMap::new();
        for c in &self.0 {
            by_owner
                .entry(c.owner.to_string())
                .or_default()
                .push(&c.path);
        }
        write!(f, "Apply failed with {} conflicts: ", self.0.len())?;
        let mut first = true;
        for (owner, paths) in by_owner {
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            write!(f, "conflicts with {owner}:")?;
            for p in paths {
                write!(f, "\n- {p}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::fieldset::Element;

    fn conflict(manager: &str, operation: &str, field: &str) -> Conflict {
        Conflict {
            owner: Owner {
                manager: manager.into(),
                operation: operation.into(),
                api_version: "apps/v1".into(),
                subresource: String::new(),
            },
            path: Path(vec![
                Element::Field("spec".into()),
                Element::Field(field.into()),
            ]),
        }
    }

    #[test]
    fn one_conflict_reads_as_kube_apiserver_writes_it() {
        let c = Conflicts(vec![conflict(
            "kubectl-client-side-apply",
            "Update",
            "replicas",
        )]);
        assert_eq!(
            c.to_string(),
            r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
        );
        let causes = c.causes();
        assert_eq!(causes[0].reason, "FieldManagerConflict");
        assert_eq!(
            causes[0].message,
            r#"conflict with "kubectl-client-side-apply" using apps/v1"#
        );
        assert_eq!(causes[0].field, ".spec.replicas");
    }

    #[test]
    fn several_conflicts_are_grouped_by_sorted_manager() {
        let c = Conflicts(vec![
            conflict("m2", "Apply", "paused"),
            conflict("m1", "Update", "replicas"),
            conflict("m1", "Update", "template"),
        ]);
        assert_eq!(
            c.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"m1\" using apps/v1:\n- .spec.replicas\n- .spec.template\nconflicts with \"m2\":\n- .spec.paused"
        );
    }
}
