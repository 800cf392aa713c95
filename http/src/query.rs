//! A request's query string, decoded, with the typed reads the API's parameters need;
//! and what a path holds after its first segments (what a proxy passes on).

use crate::status::{ApiError, ApiResult};

/// Whether a boolean parameter's value means true (`true`, `1`, `True`).
pub fn is_true(v: &str) -> bool {
    matches!(v, "true" | "1" | "True")
}

/// The query string's parameters, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=x%2Fy` (form encoding: `+` is a space).
    pub fn parse(query: Option<&str>) -> Self {
        Query(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// Every parameter, in order (repeated ones repeat).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`, `1`).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(is_true)
    }

    /// A non-negative integer parameter; an error names it if it is not one.
    pub fn number(&self, key: &str) -> ApiResult<Option<i64>> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{key}: invalid value {v:?}: must be a non-negative integer"
                    ))
                })
            })
            .transpose()
    }
}

/// What `path` holds after its first `n` segments (empty segments not counted): its
/// own slashes kept, leading and trailing.
pub fn after_segments(path: &str, n: usize) -> &str {
    let bytes = path.as_bytes();
    let (mut i, mut seen) = (0, 0);
    while seen < n {
        while bytes.get(i) == Some(&b'/') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        while i < bytes.len() && bytes[i] != b'/' {
            i += 1;
        }
        seen += 1;
    }
    &path[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&limit=5&bad=%zz",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.number("limit").unwrap(), Some(5));
        assert_eq!(q.get("bad"), Some("%zz"));
        let q = Query::parse(Some("a&b=&c=%E2%9C%93"));
        assert_eq!(
            (q.get("a"), q.get("b"), q.get("c")),
            (Some(""), Some(""), Some("✓"))
        );
        assert!(Query::parse(Some("limit=-1")).number("limit").is_err());
        assert_eq!(Query::parse(Some("x=%4")).get("x"), Some("%4"));
    }
}
