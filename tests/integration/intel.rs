//! Threat intelligence the user brings: `--threat-list` in plain and STIX 2.1 form, and
//! `--trusted-ips`, with the files in `tests/intel/`.

use std::path::Path;

use serde_json::{json, Value};

use crate::common::{detection, findings, text, trailhound};

const KEY: &str = "AKIAINTELTEST0000001";

/// A call by one IAM user's key on `day` of October 2026 from `ip`.
fn call(day: u32, n: u32, ip: &str, source: &str, name: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": "AIDAINTELTEST", "arn": "arn:aws:iam::111122223333:user/dana",
                         "accountId": "111122223333", "accessKeyId": KEY, "userName": "dana"},
        "eventTime": format!("2026-10-{day:02}T09:{n:02}:00Z"), "eventSource": source, "eventName": name,
        "awsRegion": "eu-west-1", "sourceIPAddress": ip, "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1",
        "requestParameters": {"name": "org-trail"}, "eventID": format!("intel-{day}-{n}"),
        "eventType": "AwsApiCall", "readOnly": false, "recipientAccountId": "111122223333",
        "managementEvent": true, "eventCategory": "Management"
    })
}

/// Nine days of the key's usual work from 198.51.100.20, then on the tenth a call from the
/// threat-listed 198.51.100.66 and a trail stopped from a new network (203.0.113.140, in the
/// trusted ranges).
fn write_logs(dir: &Path) {
    for day in 1..=10 {
        let mut records = vec![call(
            day,
            0,
            "198.51.100.20",
            "s3.amazonaws.com",
            "ListBuckets",
        )];
        if day == 10 {
            records.push(call(
                day,
                1,
                "198.51.100.66",
                "iam.amazonaws.com",
                "ListUsers",
            ));
            records.push(call(
                day,
                2,
                "203.0.113.140",
                "cloudtrail.amazonaws.com",
                "StopLogging",
            ));
        }
        crate::common::write_day_log(dir, day, "intel", &records);
    }
}

fn intel(file: &str) -> String {
    format!("{}/tests/intel/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn replay(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let dir = dir.to_str().unwrap();
    let mut args = vec!["replay", dir, "--learning", "1d"];
    args.extend(extra);
    findings(&trailhound(&args))
}

fn by(found: &[Value], id: &str) -> Vec<Value> {
    found
        .iter()
        .filter(|f| detection(f) == id)
        .cloned()
        .collect()
}

fn event_ids(f: &Value) -> Vec<&str> {
    f["service"]["additionalInfo"]["eventIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn a_call_from_an_address_on_a_threat_list_is_a_finding_in_either_form() {
    let dir = tempfile::tempdir().unwrap();
    write_logs(dir.path());
    assert!(by(&replay(dir.path(), &[]), "threat-list-caller").is_empty());
    for list in ["threat-list.txt", "threat-list.stix.json"] {
        let found = replay(dir.path(), &["--threat-list", &intel(list)]);
        let listed = by(&found, "threat-list-caller");
        assert_eq!(listed.len(), 1, "{list}: {found:#?}");
        assert_eq!(event_ids(&listed[0]), ["intel-10-1"], "{list}");
        assert_eq!(listed[0]["severity"], 5.0);
        assert_eq!(
            listed[0]["type"],
            "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom"
        );
    }
}

#[test]
fn trusted_ranges_silence_network_findings_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    write_logs(dir.path());
    let plain = replay(dir.path(), &[]);
    let new_network = by(&plain, "access-key-new-network");
    assert!(
        new_network
            .iter()
            .any(|f| event_ids(f).contains(&"intel-10-2")),
        "{plain:#?}"
    );
    let trusted = replay(dir.path(), &["--trusted-ips", &intel("trusted-ips.txt")]);
    assert!(
        !by(&trusted, "access-key-new-network")
            .iter()
            .any(|f| event_ids(f).contains(&"intel-10-2")),
        "{trusted:#?}"
    );
    // The trail stopped from the trusted range is still a finding.
    let stopped = by(&trusted, "cloudtrail-logging-stopped");
    assert_eq!(stopped.len(), 1);
    assert_eq!(event_ids(&stopped[0]), ["intel-10-2"]);
    // A trusted address on the threat list is trusted, as GuardDuty's lists work.
    let both = replay(
        dir.path(),
        &[
            "--threat-list",
            &intel("threat-list.txt"),
            "--trusted-ips",
            &intel("threat-list.txt"),
        ],
    );
    assert!(by(&both, "threat-list-caller").is_empty());
}

#[test]
fn a_list_that_is_not_one_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write_logs(dir.path());
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "198.51.100.66\nbad.example.com\n").unwrap();
    let out = trailhound(&[
        "replay",
        dir.path().to_str().unwrap(),
        "--threat-list",
        bad.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--threat-list:")
            && err.contains("bad.txt:2")
            && err.contains("\"bad.example.com\" is not an IP address or CIDR network"),
        "{err}"
    );
}

#[test]
fn hunting_can_ask_which_calls_came_from_listed_addresses() {
    let dir = tempfile::tempdir().unwrap();
    write_logs(dir.path());
    let out = trailhound(&[
        "hunt",
        "--format",
        "csv",
        "--threat-list",
        &intel("threat-list.stix.json"),
        "--trusted-ips",
        &intel("trusted-ips.txt"),
        "SELECT eventid, threat_listed(sourceipaddress) AS listed, trusted_ip(sourceipaddress) AS trusted \
         FROM cloudtrail WHERE eventtime >= '2026-10-10' ORDER BY eventid",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "eventid,listed,trusted\nintel-10-0,false,false\nintel-10-1,true,false\nintel-10-2,false,true\n"
    );
}
