//! Decoding, defaulting and validating real manifest files: the examples round-trip,
//! JSON and YAML twins agree, and bad files give the exact messages in the
//! `fixtures/invalid/*.expected` files (regenerate with `UPDATE_EXPECTED=1` and review
//! the diff).

// Test helpers may panic: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use rk8s_api::manifest::{self, Manifest};
use rk8s_api::object::AnyObject;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("compose")
        })
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("container")
        })
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Vec<Manifest> {
    let text = fs::read_to_string(path).unwrap();
    manifest::load(&path.display().to_string(), &text).unwrap_or_else(|errs| {
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        panic!("{} is not valid:\n{}", path.display(), msgs.join("\n"))
    })
}

fn objects(ms: &[Manifest]) -> Vec<AnyObject> {
    ms.iter().map(|m| m.object.clone()).collect()
}

#[test]
fn examples_are_valid_and_round_trip_through_yaml_and_json() {
    let files = example_files();
    assert!(
        files.len() >= 6,
        "examples/ is missing manifests: {files:?}"
    );
    for path in files {
        let decoded = objects(&load(&path));
        assert!(!decoded.is_empty(), "{}", path.display());

        let yaml = manifest::to_yaml(&decoded);
        let (again, errs) = manifest::decode("re-encoded.yaml", &yaml);
        assert!(errs.is_empty(), "{errs:?}\n{yaml}");
        assert_eq!(
            objects(&again),
            decoded,
            "YAML round trip of {}",
            path.display()
        );

        for obj in &decoded {
            let json = serde_json::to_string_pretty(&obj.to_value()).unwrap();
            let (again, errs) = manifest::decode("re-encoded.json", &json);
            assert!(errs.is_empty(), "{errs:?}");
            assert_eq!(objects(&again), vec![obj.clone()], "JSON round trip");
        }
    }
}

#[test]
fn json_fixture_decodes_to_the_same_value_as_its_yaml_twin() {
    let yaml = load(&repo_root().join("examples/pod.yaml"));
    let json = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pod.json"));
    assert_eq!(objects(&json), objects(&yaml));
}

#[test]
fn a_list_decodes_to_its_items() {
    let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}]}"#;
    let ms = manifest::load("list.json", text).unwrap();
    let names: Vec<&str> = ms.iter().map(|m| m.object.name()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn defaults_are_filled_in_as_kubernetes_does() {
    let ms = load(&repo_root().join("examples/deployment.yaml"));
    let v = ms[0].object.to_value();
    assert_eq!(v["metadata"]["namespace"], "default");
    assert_eq!(v["spec"]["revisionHistoryLimit"], 5);
    assert_eq!(v["spec"]["progressDeadlineSeconds"], 600);
    let pod = &v["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(pod["containers"][0]["readinessProbe"]["timeoutSeconds"], 1);
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["scheme"],
        "HTTP"
    );

    let ms = load(&repo_root().join("examples/pod.yaml"));
    let v = ms[0].object.to_value();
    // A limit without a request requests the limit.
    assert_eq!(
        v["spec"]["containers"][1]["resources"]["requests"]["cpu"],
        "100m"
    );

    let hpa = manifest::load(
        "hpa.yaml",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\n\
         spec:\n  scaleTargetRef: {kind: Deployment, name: web}\n  maxReplicas: 3\n  \
         behavior:\n    scaleDown:\n      stabilizationWindowSeconds: 30\n",
    )
    .unwrap();
    let v = hpa[0].object.to_value();
    assert_eq!(v["spec"]["minReplicas"], 1);
    assert_eq!(
        v["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    let b = &v["spec"]["behavior"];
    assert_eq!(b["scaleUp"]["policies"][0]["value"], 4);
    assert_eq!(b["scaleDown"]["stabilizationWindowSeconds"], 30);
    assert_eq!(b["scaleDown"]["selectPolicy"], "Max");
    assert_eq!(b["scaleDown"]["policies"][0]["type"], "Percent");
}

#[test]
fn defaulting_twice_changes_nothing() {
    for path in example_files() {
        for m in load(&path) {
            let mut again = m.object.clone();
            rk8s_api::defaults::apply_defaults(&mut again);
            assert_eq!(again, m.object, "{}", path.display());
        }
    }
}

#[test]
fn invalid_manifests_give_the_expected_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty());
    for input in inputs {
        let name = input.file_name().unwrap().to_string_lossy().to_string();
        let text = fs::read_to_string(&input).unwrap();
        let errs = manifest::load(&name, &text).expect_err(&name);
        let actual: String = errs.iter().map(|e| format!("{e}\n")).collect();
        let expected_path = input.with_extension("expected");
        if std::env::var_os("UPDATE_EXPECTED").is_some() {
            fs::write(&expected_path, &actual).unwrap();
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        assert_eq!(actual, expected, "messages for {name} changed");
    }
}

#[test]
fn the_local_mode_examples_are_valid() {
    let root = repo_root().join("examples");
    let text = fs::read_to_string(root.join("container.yaml")).unwrap();
    let spec = rk8s_api::formats::decode_container("container.yaml", &text).unwrap();
    assert_eq!(spec.name, "single-container-test");
    let text = fs::read_to_string(root.join("compose.yaml")).unwrap();
    let app = rk8s_api::formats::decode_compose("compose.yaml", &text).unwrap();
    assert_eq!(app.start_order().unwrap(), ["web", "client"]);
}
