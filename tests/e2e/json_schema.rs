//! docs/cli-json.schema.json describes what every verb prints with
//! `--json`. Each verb runs here and its output is checked against its
//! definition, with a small validator for the part of JSON Schema the file
//! uses (`type`, `properties`, `required`, `additionalProperties`, `items`,
//! `enum`, `oneOf`, `$ref`, `minimum`, and `format: id`); and every verb
//! whose help offers `--json` must have a definition.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{BIN, CHEAP_KDF, Repo, clean};

const SCHEMA: &str = include_str!("../../docs/cli-json.schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).expect("docs/cli-json.schema.json is JSON")
}

/// Problems of `v` against `s`, each with the JSON path where it is.
pub(crate) fn validate(root: &Value, s: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let mut target = root;
        for part in r.trim_start_matches("#/").split('/') {
            target = &target[part];
        }
        assert!(!target.is_null(), "{at}: dangling $ref {r}");
        return validate(root, target, v, at, out);
    }
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        let ok = alts.iter().filter(|a| {
            let mut e = Vec::new();
            validate(root, a, v, at, &mut e);
            e.is_empty()
        });
        if ok.count() != 1 {
            out.push(format!("{at}: matches not exactly one of oneOf: {v}"));
        }
        return;
    }
    if let Some(types) = s.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.iter().any(|t| type_matches(t, v)) {
            out.push(format!("{at}: {v} is not {types:?}"));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            out.push(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            out.push(format!("{at}: {n} < {min}"));
        }
    }
    if s.get("format").and_then(Value::as_str) == Some("id") {
        if let Some(t) = v.as_str() {
            if t.len() != 64 || !t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                out.push(format!(
                    "{at}: {t:?} is not an id (64 lower-case hex digits)"
                ));
            }
        }
    }
    if let (Some(items), Some(a)) = (s.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            validate(root, items, x, &format!("{at}[{i}]"), out);
        }
    }
    if let Some(o) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !o.contains_key(r) {
                out.push(format!("{at}: missing {r:?}"));
            }
        }
        for (k, x) in o {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, x, &format!("{at}.{k}"), out),
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.push(format!("{at}: {k:?} is not in the schema"));
                }
                None => {}
            }
        }
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        _ => false,
    }
}

/// Checks `stdout` of `verb` against its definition (JSON Lines where the
/// definition says so); panics listing every problem.
pub(crate) fn check_output(verb: &str, stdout: &str) {
    let root = schema();
    let def = &root["$defs"]["verbs"][verb];
    assert!(
        !def.is_null(),
        "docs/cli-json.schema.json has no definition of {verb:?}"
    );
    let values: Vec<Value> = if def["x-cairn-output"] == "lines" {
        stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{verb}: {e}: {l}")))
            .collect()
    } else {
        vec![serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{verb}: {e}: {stdout}"))]
    };
    assert!(!values.is_empty(), "{verb} printed nothing");
    let mut problems = Vec::new();
    for v in &values {
        validate(&root, def, v, verb, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "{verb} --json does not match the schema:\n{}",
        problems.join("\n")
    );
}

/// The verbs (`repair index` for subcommands) whose help lists `--json`.
fn verbs_with_json() -> BTreeSet<String> {
    let help = |args: &[&str]| {
        let out = clean(std::process::Command::new(BIN))
            .args(args)
            .arg("--help")
            .output()
            .expect("cairn --help");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let commands = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .filter(|c| c != "help")
            .collect()
    };
    let mut found = BTreeSet::new();
    for verb in commands(&help(&[])) {
        let text = help(&[&verb]);
        if text.contains("--json") {
            found.insert(verb.clone());
        }
        for sub in commands(&text) {
            if help(&[&verb, &sub]).contains("--json") {
                found.insert(format!("{verb} {sub}"));
            }
        }
    }
    found
}

#[test]
fn every_verb_with_json_output_is_described() {
    let described: BTreeSet<String> = schema()["$defs"]["verbs"]
        .as_object()
        .expect("verbs")
        .keys()
        .cloned()
        .collect();
    assert_eq!(verbs_with_json(), described);
}

#[test]
fn the_json_of_every_verb_matches_the_schema() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d")).expect("mkdir");
    std::fs::write(src.join("a"), b"alpha").expect("write");
    std::fs::write(src.join("d/b"), b"beta").expect("write");
    let r = Repo::at(tmp.path().join("repo"), "schema password");
    let json = |args: &[&str]| r.run(args.iter().copied()).success().stdout;
    let mut init = vec!["init", "--json"];
    init.extend(CHEAP_KDF);
    check_output("init", &json(&init));
    let s = src.to_str().expect("utf-8");
    check_output("backup", &json(&["backup", s, "--json"]));
    std::fs::write(src.join("c"), b"gamma").expect("write");
    check_output("backup", &json(&["backup", s, "--json"]));
    check_output("snapshots", &json(&["snapshots", "--json"]));
    check_output("ls", &json(&["ls", "latest", "--json"]));
    let snaps: Value = serde_json::from_str(&json(&["snapshots", "--json"])).expect("json");
    let ids: Vec<&str> = snaps
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    check_output("diff", &json(&["diff", ids[0], ids[1], "--json"]));
    check_output("find", &json(&["find", "a", "--json"]));
    let target = tmp.path().join("out");
    let t = target.to_str().expect("utf-8");
    check_output(
        "restore",
        &json(&["restore", "latest", "--target", t, "--json"]),
    );
    check_output("warm-up", &json(&["warm-up", "latest", "--json"]));
    check_output("check", &json(&["check", "--read-data", "--json"]));
    check_output("key list", &json(&["key", "list", "--json"]));
    check_output("settings", &json(&["settings", "--json"]));
    check_output("repair index", &json(&["repair", "index", "--json"]));
    check_output(
        "forget",
        &json(&["forget", "--keep-last", "1", "--prune", "--json"]),
    );
    let prune = json(&["prune", "--json"]);
    check_output("prune", &prune);
    // Optional in the shared report (forget's has none): prune's has it.
    let prune: Value = serde_json::from_str(&prune).expect("json");
    assert!(
        prune["peak_rss_bytes"].as_u64().is_some_and(|b| b > 0),
        "{prune}"
    );
    let copy = Repo::at(tmp.path().join("copy"), "schema password");
    let mut init = vec!["init"];
    init.extend(CHEAP_KDF);
    copy.run(init).success();
    let repo_path = tmp.path().join("repo");
    let from = repo_path.to_str().expect("utf-8");
    let mut c = copy.command(["copy", "--from-repo", from, "--json"]);
    c.env("CAIRN_FROM_PASSWORD", "schema password");
    let out = crate::common::Run::of(c).success().stdout;
    check_output("copy", &out);
}

#[test]
fn the_validator_refuses_what_the_schema_does_not_say() {
    let root = schema();
    let def = &root["$defs"]["verbs"]["key list"];
    let good = serde_json::json!([{"id": "a".repeat(64), "created": 1, "host": "h", "user": "u", "current": true}]);
    let mut e = Vec::new();
    validate(&root, def, &good, "key list", &mut e);
    assert!(e.is_empty(), "{e:?}");
    for bad in [
        serde_json::json!([{"id": "A".repeat(64), "created": 1, "host": "h", "user": "u", "current": true}]),
        serde_json::json!([{"id": "a".repeat(64), "created": 1, "host": "h", "user": "u"}]),
        serde_json::json!([{"id": "a".repeat(64), "created": "1", "host": "h", "user": "u", "current": true}]),
        serde_json::json!([{"id": "a".repeat(64), "created": 1, "host": "h", "user": "u", "current": true, "extra": 0}]),
        serde_json::json!({"id": "a".repeat(64)}),
    ] {
        let mut e = Vec::new();
        validate(&root, def, &bad, "key list", &mut e);
        assert!(!e.is_empty(), "accepted {bad}");
    }
}
