//! A state shared by a fleet in DynamoDB (`--state dynamodb://TABLE`), against moto's real
//! DynamoDB-protocol server: processes that read the same logs emit each statistical finding
//! once between them.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use crate::common;
use crate::moto;

use common::{
    detection_kinds, findings, simulate, statistical_ids, statistical_set, text, trailhound,
};

fn command(args: &[&str], env: &[(&'static str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trailhound"));
    c.args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

#[test]
fn a_fleet_sharing_a_dynamodb_state_emits_each_statistical_finding_once() {
    let moto = moto::Moto::start();
    let env = moto.env();
    let sim = tempfile::tempdir().unwrap();
    let d = sim.path().to_str().unwrap();
    simulate(sim.path(), 10, 3, "0.3");
    let kinds = detection_kinds();

    // What one process alone reports.
    let alone = findings(&trailhound(&["replay", d, "--state", ":memory:"]));
    let expected = statistical_set(&alone, &kinds);
    assert!(expected.len() >= 4, "{expected:?}");

    // Two processes read the same logs at once with one shared state.
    let state = "dynamodb://trailhound-fleet";
    let a = command(&["replay", d, "--state", state], &env)
        .spawn()
        .unwrap();
    let b = command(&["replay", d, "--state", state], &env)
        .spawn()
        .unwrap();
    let a = statistical_ids(&findings(&a.wait_with_output().unwrap()), &kinds);
    let b = statistical_ids(&findings(&b.wait_with_output().unwrap()), &kinds);
    let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
    all.sort();
    let union: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), union.len(), "a finding was emitted twice");
    assert_eq!(union, expected);

    // The state is kept in the table, and shows what was learned.
    let shown = command(&["state", "show", "--state", state, "arn:aws:iam::"], &env)
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert!(
        text(&shown.stdout).contains("\nfirst-seen values ("),
        "{}",
        text(&shown.stdout)
    );

    // A later run over the same logs: everything was emitted already.
    let later = command(&["replay", d, "--state", state], &env)
        .output()
        .unwrap();
    assert!(statistical_ids(&findings(&later), &kinds).is_empty());

    // After a reset the fleet learns again and reports again, once.
    let reset = command(&["state", "reset", "--state", state, "--yes"], &env)
        .output()
        .unwrap();
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    let again = command(&["replay", d, "--state", state], &env)
        .output()
        .unwrap();
    let again = statistical_set(&findings(&again), &kinds);
    assert_eq!(again, expected);
}

#[test]
fn an_unreachable_dynamodb_is_a_clear_error() {
    let sim = tempfile::tempdir().unwrap();
    let d = sim.path().to_str().unwrap();
    simulate(sim.path(), 1, 1, "0.05");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = vec![
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_MAX_ATTEMPTS", "1".into()),
    ];
    let out = command(&["replay", d, "--state", "dynamodb://t"], &env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("dynamodb://t"), "{err}");
    assert!(err.contains("DescribeTable"), "{err}");
}
