//! `trailhound rules coverage`: the README's table is the command's, and every
//! attack-simulation technique in the families trailhound claims is found at Medium or more.

use serde_json::Value;

use crate::common::{text, trailhound};

#[test]
fn the_readme_carries_the_coverage_table_as_the_command_prints_it() {
    let out = trailhound(&["rules", "coverage", "--format", "markdown"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = "<!-- coverage:start -->\n";
    let table = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("<!-- coverage:end -->"))
        .map(|(table, _)| table)
        .expect("the README has the coverage markers");
    assert!(
        table == text(&out.stdout),
        "the README's coverage table is stale: replace it with `trailhound rules coverage --format markdown`"
    );
}

#[test]
fn every_claimed_simulation_technique_is_found_at_medium_or_more() {
    let out = trailhound(&["rules", "coverage", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let simulations = doc["simulations"].as_array().unwrap();
    assert!(simulations.len() >= 40);
    let missed: Vec<&str> = simulations
        .iter()
        .filter(|s| !s["group"].is_null() && s["coveredAtMedium"] != true)
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(missed.is_empty(), "not covered at Medium: {missed:?}");
    // The matrix names each detection's techniques; a detection outside it is listed too.
    let attack = doc["attack"].as_array().unwrap();
    let logs = attack
        .iter()
        .find(|r| r["id"] == "T1562.008")
        .expect("T1562.008 is in the matrix");
    assert!(logs["detections"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["id"] == "cloudtrail-logging-stopped"));
}

/// A one-detection pack in `dir` whose `stratus` list is `stratus`.
fn write_detection_naming(dir: &std::path::Path, stratus: &str) {
    let rule = format!(
        r#"id = "my-stop"
title = "t"
description = "d"
type = "Stealth:IAMUser/Mine"
severity = 5
category = "logging-tampering"
stratus = ["{stratus}"]
sql = "SELECT * FROM cloudtrail WHERE eventname = 'StopLogging'"
"#
    );
    std::fs::write(dir.join("mine.toml"), rule).unwrap();
}

#[test]
fn a_detection_naming_an_unknown_simulation_is_refused_or_warned() {
    let dir = tempfile::tempdir().unwrap();
    // Shaped like a technique id but not in the catalogue: a warning.
    write_detection_naming(dir.path(), "aws.defense-evasion.cloudtrail-stopp");
    let out = trailhound(&[
        "rules",
        "coverage",
        "--detections",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("my-stop names \"aws.defense-evasion.cloudtrail-stopp\""),
        "{}",
        text(&out.stderr)
    );
    // Not an id at all: the pack is refused.
    write_detection_naming(dir.path(), "cloudtrail stop");
    let out = trailhound(&[
        "rules",
        "list",
        "--detections",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is not an attack-simulation technique id"));
}
