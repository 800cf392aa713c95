//! The HPA's reach into Prometheus (`--prometheus-url`): instant queries through the
//! HTTP API (`GET /api/v1/query`), and the rule that turns an HPA metric into a
//! query. A metric name that is a bare series name (`http_requests_total`) is scoped
//! with label matchers (the metric's selector, and for Pods and Object metrics the
//! namespace and the pods or object); any other name is PromQL, run as written — so
//! an External metric can be any query (`sum(rate(jobs_queued[1m]))`), with no
//! adapter in between.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// One sample of a query's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A Prometheus server, `http://HOST:PORT[/PREFIX]`.
#[derive(Clone, Debug)]
pub struct Prometheus {
    authority: String,
    prefix: String,
}

impl Prometheus {
    /// The server at `url` (plain HTTP).
    pub fn new(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("--prometheus-url {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "--prometheus-url {url:?}: only http:// is supported"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--prometheus-url {url:?}: no host"))?;
        let authority = match authority.port_u16() {
            Some(_) => authority.to_string(),
            None => format!("{authority}:80"),
        };
        Ok(Prometheus {
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// Runs `query` now; a vector's samples, or a scalar as one sample.
    pub async fn query(&self, query: &str) -> Result<Vec<Sample>, String> {
        let path = format!(
            "{}/api/v1/query?{}",
            self.prefix,
            form_urlencoded::Serializer::new(String::new())
                .append_pair("query", query)
                .finish()
        );
        let fetch = async {
            let tcp = tokio::net::TcpStream::connect(&self.authority)
                .await
                .map_err(|e| format!("connecting to Prometheus at {}: {e}", self.authority))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let req = http::Request::get(&path)
                .header(http::header::HOST, &self.authority)
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let body = http_body_util::Limited::new(resp.into_body(), 16 << 20)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>(body)
        };
        let body = tokio::time::timeout(Duration::from_secs(10), fetch)
            .await
            .map_err(|_| format!("Prometheus at {} did not answer within 10s", self.authority))??;
        parse(&body).map_err(|e| format!("query {query:?}: {e}"))
    }
}

/// Reads a `/api/v1/query` answer.
pub fn parse(body: &[u8]) -> Result<Vec<Sample>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not a Prometheus answer: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "Prometheus: {}",
            v["error"].as_str().unwrap_or("the query failed")
        ));
    }
    let value = |pair: &serde_json::Value| -> Result<f64, String> {
        pair[1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| format!("a sample without a value: {pair}"))
    };
    let data = &v["data"];
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                Ok(Sample {
                    labels: serde_json::from_value(s["metric"].clone()).unwrap_or_default(),
                    value: value(&s["value"])?,
                })
            })
            .collect(),
        Some("scalar") => Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: value(&data["result"])?,
        }]),
        other => Err(format!(
            "a {} result: the query must give an instant vector or a scalar",
            other.unwrap_or("missing")
        )),
    }
}

/// Whether `name` is a bare series name (then it is scoped with matchers).
pub fn is_series_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A label value inside a PromQL string.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Values as one anchored regular expression (`a|b`, metacharacters escaped).
pub fn any_of<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values
        .into_iter()
        .map(|v| {
            v.chars()
                .flat_map(|c| {
                    let special = ".+*?()|[]{}^$\\".contains(c);
                    special.then_some('\\').into_iter().chain([c])
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// The matchers of a label selector (`k="v"`, `k=~"a|b"`, `k!~"…"`, `k!=""`, `k=""`).
pub fn matchers(selector: Option<&LabelSelector>) -> Result<Vec<String>, String> {
    let Some(s) = selector else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", quoted(v)))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.iter().flatten().map(String::as_str);
        out.push(match e.operator.as_str() {
            "In" => format!("{}=~{}", e.key, quoted(&any_of(values))),
            "NotIn" => format!("{}!~{}", e.key, quoted(&any_of(values))),
            "Exists" => format!("{}!=\"\"", e.key),
            "DoesNotExist" => format!("{}=\"\"", e.key),
            other => {
                return Err(format!(
                    "selector operator {other:?} is not In, NotIn, Exists or DoesNotExist"
                ));
            }
        });
    }
    Ok(out)
}

/// The query for a metric `name`: a series name with the `scope` matchers
/// (`namespace="web"`) and the selector's, or the name itself as PromQL (then a
/// selector is refused: it could not be applied).
pub fn query_for(
    name: &str,
    selector: Option<&LabelSelector>,
    scope: &[String],
) -> Result<String, String> {
    if !is_series_name(name) {
        if selector.is_some_and(|s| s.match_labels.is_some() || s.match_expressions.is_some()) {
            return Err(format!(
                "metric {name:?} is a PromQL query: put its label matchers in the query, not in a selector"
            ));
        }
        return Ok(name.to_string());
    }
    let mut all: Vec<String> = scope.to_vec();
    all.extend(matchers(selector)?);
    if all.is_empty() {
        return Ok(name.to_string());
    }
    Ok(format!("{name}{{{}}}", all.join(",")))
}

/// A label value quoted for a matcher (`"web"`), for [`query_for`]'s scope.
pub fn equals(v: &str) -> String {
    quoted(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_vectors_or_scalars() {
        let v = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1.5,"2.5"]}]}}"#;
        assert_eq!(
            parse(v).unwrap(),
            vec![Sample {
                labels: BTreeMap::from([("pod".into(), "a".into())]),
                value: 2.5
            }]
        );
        let s = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"7"]}}"#;
        assert_eq!(parse(s).unwrap()[0].value, 7.0);
        let e = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(parse(e).unwrap_err(), "Prometheus: parse error");
        let m = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse(m).unwrap_err().contains("matrix"));
    }

    #[test]
    fn series_names_are_scoped_and_queries_run_as_written() {
        let selector: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"queue": "jobs"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a.b", "c"]}],
        }))
        .unwrap();
        assert_eq!(
            query_for(
                "jobs_waiting",
                Some(&selector),
                &[format!("namespace={}", equals("default"))]
            )
            .unwrap(),
            r#"jobs_waiting{namespace="default",queue="jobs",tier=~"a\\.b|c"}"#
        );
        assert_eq!(
            query_for("sum(rate(x[1m]))", None, &[]).unwrap(),
            "sum(rate(x[1m]))"
        );
        assert!(query_for("sum(x)", Some(&selector), &[]).is_err());
        assert_eq!(query_for("queue_depth", None, &[]).unwrap(), "queue_depth");
        assert!(is_series_name("http_requests_total") && !is_series_name("9x"));
        assert_eq!(any_of(["web-1.x", "web-2"]), "web-1\\.x|web-2");
    }

    #[test]
    fn only_plain_http_urls_are_taken() {
        assert!(Prometheus::new("http://127.0.0.1:9090").is_ok());
        assert_eq!(Prometheus::new("http://prom/x/").unwrap().prefix, "/x");
        assert!(Prometheus::new("https://127.0.0.1:9090").is_err());
        assert!(Prometheus::new("not a url").is_err());
    }
}
