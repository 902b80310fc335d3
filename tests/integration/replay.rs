//! `trailhound replay` and `trailhound rules` as a user runs them: the real binary, the
//! built-in detection pack, simulated logs with labelled attacks.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common;

use common::{text, trailhound};

fn simulate(dir: &Path, days: &str, extra: &[&str]) {
    let mut args = vec![
        "simulate",
        "--out",
        dir.to_str().unwrap(),
        "--days",
        days,
        "--accounts",
        "3",
        "--scale",
        "0.15",
    ];
    args.extend_from_slice(extra);
    let out = trailhound(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn lines(out: &Output) -> Vec<Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn replay(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    let out = trailhound(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    lines(&out)
}

fn ids(findings: &[Value]) -> BTreeSet<String> {
    findings
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_injected_attack_is_found_and_benign_traffic_stays_quiet() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "3", &[]);
    let d = dir.path().to_str().unwrap();
    let labels_path = dir.path().join("labels.json");
    let out = trailhound(&["replay", d, "--labels", labels_path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let findings = lines(&out);
    assert!(!findings.is_empty());

    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string(&labels_path).unwrap()).unwrap();
    let mut labelled = HashSet::new();
    for attack in labels["attacks"].as_array().unwrap() {
        let events: HashSet<&str> = attack["eventIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        labelled.extend(events.iter().map(|e| e.to_string()));
        let found = findings.iter().any(|f| {
            f["severity"].as_f64().unwrap() >= 4.0
                && f["service"]["additionalInfo"]["eventIds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| events.contains(e.as_str().unwrap()))
        });
        assert!(
            found,
            "attack {} was not found at Medium or above:\n{stderr}",
            attack["id"]
        );
    }
    // Benign traffic: no Medium-or-higher finding rests only on unlabelled events.
    let benign: Vec<&Value> = findings
        .iter()
        .filter(|f| f["severity"].as_f64().unwrap() >= 4.0)
        .filter(|f| {
            !f["service"]["additionalInfo"]["eventIds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| labelled.contains(e.as_str().unwrap()))
        })
        .collect();
    assert!(benign.is_empty(), "findings on benign events: {benign:#?}");
    assert!(
        stderr.contains("attacks found at Medium or above"),
        "{stderr}"
    );
    assert!(!stderr.contains("MISSED"), "{stderr}");

    // The GuardDuty shape.
    for f in &findings {
        assert_eq!(f["schemaVersion"], "2.0");
        assert_eq!(f["id"].as_str().unwrap().len(), 32);
        let t = f["type"].as_str().unwrap();
        assert!(t.contains(':') && t.contains('/'), "{t}");
        let s = f["severity"].as_f64().unwrap();
        assert!((1.0..=10.0).contains(&s));
        assert!(f["resource"]["accessKeyDetails"].is_object());
        assert!(f["service"]["action"]["awsApiCallAction"]["api"].is_string());
        assert!(f["service"]["count"].as_u64().unwrap() >= 1);
        assert_eq!(
            f["service"]["count"].as_u64().unwrap() as usize,
            f["service"]["additionalInfo"]["eventIds"]
                .as_array()
                .unwrap()
                .len()
        );
        assert!(
            f["service"]["eventFirstSeen"].as_str().unwrap()
                <= f["service"]["eventLastSeen"].as_str().unwrap()
        );
        assert!(f["service"]["additionalInfo"]["detection"].is_string());
    }
}

#[test]
fn ids_are_stable_across_runs_and_across_split_runs() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "2", &["--seed", "11"]);
    let d = dir.path().to_str().unwrap();
    let whole = replay(&[d]);
    let again = replay(&[d, "--threads", "1", "--chunk-size", "200KB"]);
    assert_eq!(ids(&whole), ids(&again));
    // Day by day (the attacks are on the second day).
    let first = replay(&[d, "--until", "2026-10-06"]);
    let second = replay(&[d, "--since", "2026-10-06"]);
    let mut split = ids(&first);
    split.extend(ids(&second));
    assert_eq!(ids(&whole), split);
    assert!(ids(&second).len() >= ids(&first).len());
    // Counts agree too, not only ids.
    let count = |fs: &[Value]| {
        fs.iter()
            .map(|f| f["service"]["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(count(&whole), count(&first) + count(&second));
}

#[test]
fn asff_and_ocsf_carry_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "1", &[]);
    let d = dir.path().to_str().unwrap();
    let gd = replay(&[d, "--min-severity", "medium"]);
    let asff = replay(&[d, "--min-severity", "medium", "--format", "asff"]);
    let ocsf = replay(&[d, "--min-severity", "medium", "--format", "ocsf"]);
    assert_eq!(gd.len(), asff.len());
    assert_eq!(gd.len(), ocsf.len());
    assert!(gd.iter().all(|f| f["severity"].as_f64().unwrap() >= 4.0));
    let asff_ids: BTreeSet<String> = asff
        .iter()
        .map(|f| f["Id"].as_str().unwrap().to_string())
        .collect();
    let ocsf_ids: BTreeSet<String> = ocsf
        .iter()
        .map(|f| f["finding_info"]["uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&gd), asff_ids);
    assert_eq!(ids(&gd), ocsf_ids);
    for f in &asff {
        assert_eq!(f["SchemaVersion"], "2018-10-08");
        assert!(f["Types"][0].as_str().unwrap().contains('/'));
        assert!(["MEDIUM", "HIGH", "CRITICAL"].contains(&f["Severity"]["Label"].as_str().unwrap()));
        assert!(!f["Resources"].as_array().unwrap().is_empty());
    }
    for f in &ocsf {
        assert_eq!(f["class_uid"], 2004);
        assert!(f["severity_id"].as_u64().unwrap() >= 3);
    }
}

#[test]
fn bad_input_is_reported_and_the_good_records_still_found() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path(), "1", &[]);
    let d = dir.path().to_str().unwrap();
    let clean = replay(&[d]);
    // A corrupt gzip beside the good files.
    let bad = dir.path().join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T1200Z_corruptcorruptco.json.gz");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, b"\x1f\x8b\x08\x00garbage-that-is-not-deflate").unwrap();
    let out = trailhound(&["replay", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("corruptcorruptco"), "{stderr}");
    assert_eq!(ids(&lines(&out)), ids(&clean));
    let strict = trailhound(&["replay", "--strict", d]);
    assert_eq!(strict.status.code(), Some(3), "{}", text(&strict.stderr));
}

#[test]
fn the_built_in_pack_passes_its_own_tests() {
    let out = trailhound(&["rules", "test"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    let list = trailhound(&["rules", "list", "--format", "json"]);
    assert!(list.status.success());
    let rules: Vec<Value> = lines(&list);
    assert!(rules.len() >= 50, "only {} detections", rules.len());
    let categories: BTreeSet<&str> = rules
        .iter()
        .map(|r| r["category"].as_str().unwrap())
        .collect();
    for c in [
        "model-access",
        "key-policy",
        "credential-misuse",
        "logging-tampering",
        "iam-change",
    ] {
        assert!(categories.contains(c), "no {c} detection");
    }
    assert!(rules.iter().all(|r| r["tests"].as_u64().unwrap() >= 2));
}

#[test]
fn a_broken_user_detection_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"id = "my-rule"
title = "Mine"
description = "{actor} listed buckets"
type = "Discovery:S3/BucketEnumeration"
severity = 2
category = "discovery"
sql = '''
SELECT * FROM cloudtrail WHERE eventname = 'ListBuckets'
'''

[[tests]]
name = "fires"
findings = 1
records = ['{"eventSource": "s3.amazonaws.com", "eventName": "ListBuckets"}']

[[tests]]
name = "quiet"
findings = 0
records = ['{"eventSource": "s3.amazonaws.com", "eventName": "GetObject"}']
"#;
    std::fs::write(dir.path().join("mine.toml"), good).unwrap();
    let d = dir.path().to_str().unwrap();
    let out = trailhound(&["rules", "test", "--no-builtin", "--detections", d]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("2 passed, 0 failed"),
        "{}",
        text(&out.stdout)
    );

    // A misspelt column on the SQL's second line (line 9 of the file).
    let bad = good.replace(
        "SELECT * FROM cloudtrail WHERE eventname",
        "SELECT * FROM cloudtrail\nWHERE evntname",
    );
    std::fs::write(dir.path().join("mine.toml"), bad).unwrap();
    let out = trailhound(&["rules", "test", "--no-builtin", "--detections", d]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("mine.toml:9:"), "{stderr}");
    assert!(stderr.contains("evntname"), "{stderr}");

    // A test whose expectation is wrong fails, naming the test's line.
    let wrong = good.replace(
        "name = \"quiet\"\nfindings = 0",
        "name = \"quiet\"\nfindings = 1",
    );
    std::fs::write(dir.path().join("mine.toml"), wrong).unwrap();
    let out = trailhound(&["rules", "test", "--no-builtin", "--detections", d]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL my-rule / quiet") && stdout.contains("mine.toml:16"),
        "{stdout}"
    );

    // A user's rule in a replay, beside the built-ins.
    let sim = tempfile::tempdir().unwrap();
    simulate(sim.path(), "1", &[]);
    std::fs::write(dir.path().join("mine.toml"), good).unwrap();
    let findings = replay(&[sim.path().to_str().unwrap(), "--detections", d]);
    assert!(findings
        .iter()
        .any(|f| f["service"]["additionalInfo"]["detection"] == "my-rule"));
}

/// The bundled sample's findings, pinned: each finding's id and eventIDs (in the order the
/// finding lists them) as `tests/sample-findings.txt` records them. A change to the
/// detections or the pipeline that moves any of them shows here; when the move is intended,
/// write the file again (the message says how) and say why in the commit.
///
/// Replay decodes each service's records only as far as the detections read them, once the
/// pack is planned (the first chunk, read while planning, is decoded whole): in small chunks
/// nearly every record is decoded that way, and the findings must be the same, field for
/// field, as the default run's.
#[test]
fn the_sample_gives_the_findings_it_always_gave() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = root.join("sample");
    let sample = sample.to_str().unwrap();
    let whole = replay(&[sample]);
    let projected = replay(&[sample, "--chunk-size", "128KiB"]);
    // Every field but when the finding was made.
    let comparable = |findings: &[Value]| {
        let mut out: Vec<String> = findings
            .iter()
            .map(|f| {
                let mut f = f.clone();
                let o = f.as_object_mut().unwrap();
                o.remove("createdAt");
                o.remove("updatedAt");
                f.to_string()
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(comparable(&whole), comparable(&projected));
    // With a lake every record is decoded whole (the lake keeps it all): the same findings.
    let lake = tempfile::tempdir().unwrap();
    let with_lake = replay(&[
        sample,
        "--chunk-size",
        "128KiB",
        "--lake",
        lake.path().to_str().unwrap(),
    ]);
    assert_eq!(comparable(&whole), comparable(&with_lake));
    let mut got: Vec<String> = whole
        .iter()
        .map(|f| {
            let events: Vec<&str> = f["service"]["additionalInfo"]["eventIds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap())
                .collect();
            format!("{} {}", f["id"].as_str().unwrap(), events.join(","))
        })
        .collect();
    got.sort();
    let pinned_path = root.join("tests/sample-findings.txt");
    let pinned = std::fs::read_to_string(&pinned_path).unwrap();
    let pinned: Vec<&str> = pinned.lines().filter(|l| !l.starts_with('#')).collect();
    let missing: Vec<&&str> = pinned
        .iter()
        .filter(|l| !got.iter().any(|g| g == **l))
        .collect();
    let new: Vec<&String> = got
        .iter()
        .filter(|g| !pinned.contains(&g.as_str()))
        .collect();
    assert!(
        missing.is_empty() && new.is_empty(),
        "the sample's findings moved: {} pinned lines are gone, {} lines are new.\n\
         gone: {missing:#?}\nnew: {new:#?}\n\
         If intended: trailhound replay sample | jq -r '.id + \" \" + (.service.additionalInfo.eventIds | join(\",\"))' | sort > {}",
        missing.len(),
        new.len(),
        pinned_path.display()
    );
}
