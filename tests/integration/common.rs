//! Helpers shared by the tests that run the `trailhound` binary as a user would.
// Each test binary uses some of them.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs the binary under test with `args`. Statistical detections learn in memory unless a
/// test names a `--state`: tests run in parallel and must not share the user's state file.
pub fn trailhound(args: &[&str]) -> Output {
    trailhound_with(args, &[])
}

/// Runs the binary under test with `args` and extra environment variables (an empty value
/// unsets the variable).
pub fn trailhound_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailhound"));
    command.args(args).env("TRAILHOUND_STATE", ":memory:");
    for (name, value) in env {
        if value.is_empty() {
            command.env_remove(name);
        } else {
            command.env(name, value);
        }
    }
    command.output().expect("the binary runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `trailhound simulate` into `dir`.
pub fn simulate(dir: &Path, days: u32, accounts: u32, scale: &str) {
    let (days, accounts) = (days.to_string(), accounts.to_string());
    let out = trailhound(&[
        "simulate",
        "--out",
        dir.to_str().unwrap(),
        "--days",
        &days,
        "--accounts",
        &accounts,
        "--scale",
        scale,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Each built-in detection's kind (`match`, `first-seen`, ...), by id, from `rules list`.
pub fn detection_kinds() -> BTreeMap<String, String> {
    let pack = trailhound(&["rules", "list", "--format", "json"]);
    assert!(pack.status.success(), "{}", text(&pack.stderr));
    text(&pack.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().into(),
                v["kind"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// The findings a successful run wrote to stdout.
pub fn findings(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The detection behind a finding.
pub fn detection(finding: &Value) -> &str {
    finding["service"]["additionalInfo"]["detection"]
        .as_str()
        .unwrap()
}

/// Ids of the statistical findings (of detections whose kind is not `match`), in order.
pub fn statistical_ids(found: &[Value], kinds: &BTreeMap<String, String>) -> Vec<String> {
    found
        .iter()
        .filter(|f| kinds[detection(f)] != "match")
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// The same, as a set.
pub fn statistical_set(found: &[Value], kinds: &BTreeMap<String, String>) -> BTreeSet<String> {
    statistical_ids(found, kinds).into_iter().collect()
}

/// Writes `records` as one plain-JSON CloudTrail object of account 111122223333 in
/// eu-west-1, dated 2026-10-`day` (`tag` tells objects of one day apart).
pub fn write_day_log(root: &Path, day: u32, tag: &str, records: &[Value]) {
    let folder = root.join(format!(
        "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/10/{day:02}"
    ));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join(format!(
            "111122223333_CloudTrail_eu-west-1_202610{day:02}T0910Z_{tag}{day:02}.json"
        )),
        serde_json::json!({ "Records": records }).to_string(),
    )
    .unwrap();
}
