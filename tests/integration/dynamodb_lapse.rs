//! A process that claimed statistical findings in a shared DynamoDB state and died before
//! emitting them: its claims hold for their lease, then lapse, and the findings are emitted by
//! the next process that reads those records. Against moto's real DynamoDB server. (A test
//! binary of its own: it sets this process's AWS environment.)

use std::process::Command;
use std::time::Duration;

use trailhound::detect::state::dynamodb::DynamoStore;

use crate::common;
use crate::moto;

use common::{detection_kinds, findings, simulate, statistical_set, trailhound};

#[test]
fn claims_of_a_dead_process_hold_for_their_lease_then_lapse() {
    let moto = moto::Moto::start();
    let env = moto.env();
    for (k, v) in &env {
        std::env::set_var(k, v);
    }
    let sim = tempfile::tempdir().unwrap();
    let d = sim.path().to_str().unwrap();
    simulate(sim.path(), 10, 3, "0.3");
    let kinds = detection_kinds();
    let alone = trailhound(&["replay", d, "--state", ":memory:"]);
    let expected = statistical_set(&findings(&alone), &kinds);
    assert!(!expected.is_empty());
    let ids: Vec<String> = expected.iter().cloned().collect();

    let replay = |table: &str| {
        let state = format!("dynamodb://{table}");
        let out = Command::new(env!("CARGO_BIN_EXE_trailhound"))
            .args(["replay", d, "--state", &state])
            .output()
            .unwrap();
        statistical_set(&findings(&out), &kinds)
    };

    // Claimed by a process that is gone, with a ten-minute lease: nobody emits them yet.
    let held = DynamoStore::open_with_lease("held", Duration::from_secs(600)).unwrap();
    assert_eq!(held.claim(&ids).unwrap().len(), ids.len());
    drop(held);
    assert!(replay("held").is_empty());

    // With a one-second lease, the claims have lapsed by the time the next process has read
    // the logs: it emits every finding.
    let lapsing = DynamoStore::open_with_lease("lapsing", Duration::from_secs(1)).unwrap();
    assert_eq!(lapsing.claim(&ids).unwrap().len(), ids.len());
    drop(lapsing);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(replay("lapsing"), expected);
}
