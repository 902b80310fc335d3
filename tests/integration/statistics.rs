//! Statistical detections as a user runs them: the real binary over simulated weeks of
//! history whose last day holds attacks that only a learned baseline reveals, replayed in one
//! run and again in daily runs against one state file.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use serde_json::Value;

use crate::common;

use common::{detection, detection_kinds, findings, text, trailhound, trailhound_with};

/// The attacks `simulate` hides in routine-looking calls (with nine days or more).
const BEHAVIOUR_ATTACKS: [&str; 4] = [
    "stolen-ci-key-llmjacking",
    "instance-credential-exfiltration",
    "app-invocation-spike",
    "new-place-privilege-change",
];

const DAYS: u32 = 10;

fn simulate(dir: &Path) {
    common::simulate(dir, DAYS, 3, "0.3");
}

fn replay(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    findings(&trailhound(&all))
}

fn event_ids(finding: &Value) -> HashSet<String> {
    finding["service"]["additionalInfo"]["eventIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

/// Findings by id, with the event ids behind each.
fn by_id(findings: &[Value]) -> BTreeMap<String, (String, BTreeSet<String>)> {
    findings
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                (detection(f).to_string(), event_ids(f).into_iter().collect()),
            )
        })
        .collect()
}

#[test]
fn learned_behaviour_finds_the_hidden_attacks_in_one_run_and_in_daily_runs() {
    let sim = tempfile::tempdir().unwrap();
    simulate(sim.path());
    let d = sim.path().to_str().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let one = state_dir.path().join("one.redb");
    let findings = replay(&[d, "--state", one.to_str().unwrap()]);

    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string(sim.path().join("labels.json")).unwrap())
            .unwrap();
    let kinds = detection_kinds();
    let mut attack_events = HashSet::new();
    for attack in labels["attacks"].as_array().unwrap() {
        let name = attack["id"].as_str().unwrap();
        let events: HashSet<String> = attack["eventIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect();
        attack_events.extend(events.iter().cloned());
        let statistical: Vec<&str> = findings
            .iter()
            .filter(|f| {
                f["severity"].as_f64().unwrap() >= 4.0 && !event_ids(f).is_disjoint(&events)
            })
            .map(detection)
            .collect();
        assert!(
            !statistical.is_empty(),
            "attack {name} not found at Medium or above"
        );
        if BEHAVIOUR_ATTACKS.contains(&name) {
            // Each of these is made of calls no rule flags: a statistical detection (they
            // live under detections/behaviour/) must be what finds it.
            assert!(
                statistical.iter().any(|id| kinds[*id] != "match"),
                "attack {name} found only by {statistical:?}, none of them statistical"
            );
        }
    }
    for name in BEHAVIOUR_ATTACKS {
        assert!(
            labels["attacks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == name),
            "simulate did not inject {name}"
        );
    }
    // Benign traffic: no Medium-or-higher finding rests on benign records alone.
    let noisy: Vec<&str> = findings
        .iter()
        .filter(|f| {
            f["severity"].as_f64().unwrap() >= 4.0
                && event_ids(f).iter().all(|e| !attack_events.contains(e))
        })
        .map(detection)
        .collect();
    assert!(noisy.is_empty(), "benign Medium+ findings: {noisy:?}");

    // The same logs in daily runs, one state: the same findings, ids and records.
    let daily = state_dir.path().join("daily.redb");
    let start = chrono::NaiveDate::from_ymd_opt(2026, 10, 5).unwrap();
    let mut split = Vec::new();
    for day in 0..=DAYS {
        let since = (start + chrono::Duration::days(i64::from(day))).to_string();
        let until = (start + chrono::Duration::days(i64::from(day) + 1)).to_string();
        let mut args = vec![d, "--state", daily.to_str().unwrap(), "--until", &until];
        if day > 0 {
            args.extend_from_slice(&["--since", &since]);
        }
        split.extend(replay(&args));
    }
    assert_eq!(by_id(&findings), by_id(&split));

    // Replaying logs the state already learned from reports what they reported, no more.
    let again = replay(&[d, "--state", one.to_str().unwrap()]);
    assert_eq!(by_id(&findings), by_id(&again));
}

#[test]
fn a_failed_run_keeps_no_state_and_the_next_run_finds_the_same() {
    let sim = tempfile::tempdir().unwrap();
    simulate(sim.path());
    let d = sim.path().to_str().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state.redb");
    let s = state.to_str().unwrap();
    let reference = replay(&[d, "--state", ":memory:"]);

    // The findings cannot be written: the run fails after reading everything, and what it
    // learned is not kept (a later run must not treat those records as already seen).
    let out = trailhound(&[
        "replay",
        d,
        "--state",
        s,
        "--output",
        state_dir
            .path()
            .join("missing/dir/f.json")
            .to_str()
            .unwrap(),
    ]);
    assert!(!out.status.success());
    let shown = trailhound(&["state", "show", "--state", s]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert!(
        text(&shown.stdout).starts_with("state: 0 entries"),
        "state after a failed run: {}",
        text(&shown.stdout)
    );

    let after = replay(&[d, "--state", s]);
    assert_eq!(by_id(&reference), by_id(&after));
}

#[test]
fn state_show_explains_what_was_learned_and_reset_forgets_it() {
    let sim = tempfile::tempdir().unwrap();
    simulate(sim.path());
    let d = sim.path().to_str().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    // The default state lives in the user's data directory.
    let data = state_dir.path().to_str().unwrap();
    let env = [("XDG_DATA_HOME", data), ("TRAILHOUND_STATE", "")];
    let out = trailhound_with(&["replay", d, "-o", "/dev/null"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let default = state_dir.path().join("trailhound/state.redb");
    assert!(default.exists(), "no state at {}", default.display());

    let s = default.to_str().unwrap();
    // What is known about the principals: when each was first seen, and its first-seen
    // values with their first and last sightings.
    let shown = trailhound(&[
        "state",
        "show",
        "--state",
        s,
        "--limit",
        "1000",
        "arn:aws:iam::",
    ]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let shown = text(&shown.stdout);
    assert!(shown.contains("\nentities ("), "{shown}");
    assert!(shown.contains("\nfirst-seen values ("), "{shown}");
    assert!(shown.contains("principal-new-model | "), "{shown}");

    let exported = trailhound(&["state", "export", "--state", s]);
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let exported: Value = serde_json::from_str(&text(&exported.stdout)).unwrap();
    assert!(exported["values"].as_object().unwrap().len() > 10);

    let refused = trailhound(&["state", "reset", "--state", s]);
    assert!(!refused.status.success(), "reset without --yes must refuse");
    let reset = trailhound(&["state", "reset", "--state", s, "--yes"]);
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    let exported = trailhound(&["state", "export", "--state", s]);
    let exported: Value = serde_json::from_str(&text(&exported.stdout)).unwrap();
    assert!(exported["values"].as_object().unwrap().is_empty());
    assert!(exported["accounts"].as_object().unwrap().is_empty());
}

#[test]
fn a_state_file_in_use_is_refused_with_a_clear_error() {
    let sim = tempfile::tempdir().unwrap();
    let d = sim.path().to_str().unwrap();
    common::simulate(sim.path(), 1, 1, "0.05");
    let state = sim.path().join("state.redb");
    // Another process (here, this test) holds the state.
    let held = trailhound::detect::state::Store::open(&state).unwrap();
    let out = trailhound(&["replay", d, "--state", state.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(state.to_str().unwrap()), "{err}");
    assert!(
        err.contains("another trailhound is using this state"),
        "{err}"
    );
    drop(held);
    let out = trailhound(&["replay", d, "--state", state.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A key's call on `day` of October 2026 from `ip`.
fn key_call(day: u32, ip: &str, source: &str, name: &str, params: Value) -> Value {
    serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDASEQTEST", "arn": "arn:aws:iam::111122223333:user/erin",
                         "accountId": "111122223333", "accessKeyId": "AKIASEQTEST000000001", "userName": "erin"},
        "eventTime": format!("2026-10-{day:02}T10:00:00Z"), "eventSource": source, "eventName": name,
        "awsRegion": "eu-west-1", "sourceIPAddress": ip, "userAgent": "aws-cli/2.15.0",
        "requestParameters": params, "eventID": format!("seq-{day}"), "eventType": "AwsApiCall",
        "readOnly": false, "recipientAccountId": "111122223333"
    })
}

/// One record that is two steps (an administrator policy attached in a key's first call from
/// a new network) makes no finding of the built-in sequence, whose steps are records of their
/// own; a sequence that says `shared_events = true` finds it, listing and counting it once.
#[test]
fn one_record_is_one_step_unless_the_sequence_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    for day in 1..=10 {
        let record = if day < 10 {
            key_call(
                day,
                "198.51.100.20",
                "s3.amazonaws.com",
                "ListBuckets",
                Value::Null,
            )
        } else {
            key_call(
                day,
                "192.0.2.66",
                "iam.amazonaws.com",
                "AttachUserPolicy",
                serde_json::json!({"userName": "x", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
            )
        };
        common::write_day_log(&logs, day, "seq", &[record]);
    }
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("shared.toml"),
        r#"id = "shared-step-sequence"
kind = "sequence"
title = "A key's first call from a new network changes permissions"
description = "{entity}: {steps}"
type = "AttackSequence:IAMUser/SharedStepTest"
severity = 7
category = "credential-misuse"

[sequence]
window = "1h"
join = "access_key"
shared_events = true
steps = ["access-key-new-network", "privilege-or-logging-change"]
"#,
    )
    .unwrap();
    let found = findings(&trailhound(&[
        "replay",
        logs.to_str().unwrap(),
        "--learning",
        "1d",
        "--detections",
        rules.to_str().unwrap(),
    ]));
    assert!(
        !found
            .iter()
            .any(|f| detection(f) == "new-place-then-privilege-change"),
        "{found:#?}"
    );
    let shared: Vec<&Value> = found
        .iter()
        .filter(|f| detection(f) == "shared-step-sequence")
        .collect();
    assert_eq!(shared.len(), 1, "{found:#?}");
    assert_eq!(shared[0]["service"]["count"], 1);
    assert_eq!(
        shared[0]["service"]["additionalInfo"]["eventIds"],
        serde_json::json!(["seq-10"])
    );
}
