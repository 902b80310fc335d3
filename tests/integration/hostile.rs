//! Logs written by an attacker: records shaped to crash or blind the reader must be read,
//! flagged and examined like any other, and must not hide the genuine records beside them.

use std::path::Path;

use crate::common::{self, text, trailhound};

/// A CloudTrail record with `extra` (`"key":value,...`) added after its own fields.
fn record(id: &str, name: &str, extra: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","principalId":"AIDAHOSTILE","arn":"arn:aws:iam::111122223333:user/mallory","accountId":"111122223333","accessKeyId":"AKIAHOSTILE0000000001","userName":"mallory"}},"eventTime":"2026-10-05T10:00:00Z","eventSource":"cloudtrail.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","userAgent":"aws-cli/2.15.0","eventID":"{id}","eventType":"AwsApiCall","recipientAccountId":"111122223333"{extra}}}"#
    )
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// The records of one hostile object: every shape that once crashed the reader, and a
/// genuine `StopLogging` that itself carries deep request parameters and a duplicate key.
pub fn hostile_records() -> Vec<String> {
    vec![
        record(
            "hostile-deep-unknown",
            "DescribeTrails",
            &format!(r#","weird":{}"#, nested(200)),
        ),
        record(
            "hostile-deepest-unknown",
            "DescribeTrails",
            &format!(r#","weird":{{"a":{}}}"#, nested(1000)),
        ),
        record(
            "hostile-duplicate-resources",
            "DescribeTrails",
            r#","resources":5,"resources":[{"ARN":"arn:aws:s3:::x"},7]"#,
        ),
        record(
            "hostile-duplicate-identity",
            "DescribeTrails",
            r#","userIdentity":"x","userIdentity":{"type":"Root","odd":{"b":1}}"#,
        ),
        record(
            "hostile-stop-logging",
            "StopLogging",
            &format!(
                r#","requestParameters":{{"name":"org-trail","deep":{}}},"odd":1,"odd":2"#,
                nested(500)
            ),
        ),
    ]
}

/// Writes `records` as a gzipped CloudTrail object under `dir`, named with `tag`.
pub fn write_object(dir: &Path, tag: &str, records: &[String]) -> std::path::PathBuf {
    let folder = dir.join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05");
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(format!(
        "111122223333_CloudTrail_us-east-1_20261005T1000Z_{tag}.json.gz"
    ));
    let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    path
}

#[test]
fn hostile_records_crash_nothing_and_hide_nothing() {
    let dir = tempfile::tempdir().unwrap();
    common::simulate(dir.path(), 1, 1, "0.2");
    let d = dir.path().to_str().unwrap();
    let count = || {
        trailhound(&[
            "hunt",
            "--format",
            "csv",
            // `unmapped` read too, so that its fields are checked.
            "SELECT count(*) AS n, count(unmapped) AS u FROM cloudtrail",
            d,
        ])
    };
    let before = count();
    assert!(before.status.success(), "{}", text(&before.stderr));
    let n = |out: &std::process::Output| -> u64 {
        let stdout = text(&out.stdout);
        let row = stdout.lines().nth(1).unwrap_or_default();
        let n = row.split(',').next().unwrap_or_default().trim();
        n.parse()
            .unwrap_or_else(|_| panic!("not a count: {stdout:?}\n{}", text(&out.stderr)))
    };
    let records = hostile_records();
    write_object(dir.path(), "hostilehostileho", &records);

    // hunt reads every hostile record, says which were flagged, and exits 0.
    let after = count();
    let stderr = text(&after.stderr);
    assert!(after.status.success(), "{stderr}");
    assert_eq!(n(&after), n(&before) + records.len() as u64, "{stderr}");
    assert!(stderr.contains("records kept but flagged"), "{stderr}");
    assert!(
        stderr.contains("duplicate-key") && stderr.contains("too-deep"),
        "{stderr}"
    );
    // The hostile fields can be queried.
    let weird = trailhound(&[
        "hunt",
        "--format",
        "csv",
        "SELECT eventid FROM cloudtrail WHERE unmapped LIKE '%weird%' ORDER BY eventid",
        d,
    ]);
    assert!(weird.status.success(), "{}", text(&weird.stderr));
    assert_eq!(
        text(&weird.stdout).lines().skip(1).collect::<Vec<_>>(),
        ["hostile-deep-unknown", "hostile-deepest-unknown"]
    );

    // replay goes on to the end (statistics on) and reports the StopLogging beside them.
    let out = trailhound(&["replay", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let found = common::findings(&out);
    let stopped: Vec<_> = found
        .iter()
        .filter(|f| common::detection(f) == "cloudtrail-logging-stopped")
        .filter(|f| f.to_string().contains("hostile-stop-logging"))
        .collect();
    assert_eq!(stopped.len(), 1, "{}", text(&out.stderr));
    // The statistical detections saw the hostile records too: with no learning period, the
    // new principal's finding rebuilds its records, deep request parameters included.
    let out = trailhound(&["replay", "--learning", "0s", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let statistical: Vec<String> = common::findings(&out)
        .iter()
        .filter(|f| f.to_string().contains("hostile-"))
        .map(|f| common::detection(f).to_string())
        .collect();
    assert!(
        statistical.len() > 1,
        "only {statistical:?} hold the hostile records"
    );
}

#[test]
fn a_flood_of_denied_calls_makes_one_bounded_finding() {
    let dir = tempfile::tempdir().unwrap();
    let flood: Vec<String> = (0..30_000)
        .map(|i| {
            let minute = i / 1000;
            let second = (i / 20) % 50;
            record(&format!("denied-{i:05}"), "ListBuckets", "")
                .replace(
                    "2026-10-05T10:00:00Z",
                    &format!("2026-10-05T10:{minute:02}:{second:02}Z"),
                )
                .replace(r#""cloudtrail.amazonaws.com""#, r#""s3.amazonaws.com""#)
                .replace(
                    r#""recipientAccountId""#,
                    r#""errorCode":"AccessDenied","recipientAccountId""#,
                )
        })
        .collect();
    write_object(dir.path(), "floodfloodfloodf", &flood);
    let out = trailhound(&["replay", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let found = common::findings(&out);
    let denied: Vec<_> = found
        .iter()
        .filter(|f| common::detection(f) == "access-denied-repeated")
        .collect();
    assert_eq!(denied.len(), 1, "{found:?}");
    let f = denied[0];
    let info = &f["service"]["additionalInfo"];
    assert_eq!(f["service"]["count"], 30_000);
    assert_eq!(info["eventIds"].as_array().unwrap().len(), 500);
    assert_eq!(info["eventIds"][0], "denied-00000");
    assert_eq!(info["eventIdsTruncated"], true);
    assert!(
        f.to_string().len() < 100_000,
        "{} bytes",
        f.to_string().len()
    );
}

#[test]
fn a_record_from_the_far_future_does_not_move_the_states_clock() {
    let sim = tempfile::tempdir().unwrap();
    common::simulate(sim.path(), 3, 1, "0.2");
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state.redb");
    let s = state.to_str().unwrap();
    let replay = |dir: &Path| {
        let out = trailhound(&[
            "replay",
            "--state",
            s,
            dir.to_str().unwrap(),
            "-o",
            "/dev/null",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    let export = || -> serde_json::Value {
        let out = trailhound(&["state", "export", "--state", s]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_str(&text(&out.stdout)).unwrap()
    };
    replay(sim.path());
    let before = export();
    let values = before["values"].as_object().unwrap().len();
    assert!(values > 10, "{before}");

    // An object delivered in the simulated days, holding a record dated in 2999.
    let attacker = tempfile::tempdir().unwrap();
    let future = record("from-the-future", "ListBuckets", "")
        .replace("2026-10-05T10:00:00Z", "2999-01-01T00:00:00Z");
    write_object(attacker.path(), "futurefuturefutu", &[future]);
    let stderr = replay(attacker.path());
    assert!(stderr.contains("the state's clock stops at"), "{stderr}");
    let after = export();
    let horizon = after["horizon"].as_str().unwrap_or_default().to_string();
    assert!(horizon.starts_with("2026-"), "the clock moved to {horizon}");
    // Nothing learned was expired by it.
    assert!(
        after["values"].as_object().unwrap().len() >= values,
        "{values} values before, {} after",
        after["values"].as_object().unwrap().len()
    );
}

/// Writes `body` gzipped, streamed `repeat` times, as an object named with `tag`.
fn write_gzip(dir: &Path, tag: &str, pieces: &[&[u8]], repeat: usize) {
    let folder = dir.join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05");
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(format!(
        "111122223333_CloudTrail_us-east-1_20261005T1000Z_{tag}.json.gz"
    ));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    use std::io::Write;
    gz.write_all(pieces[0]).unwrap();
    for _ in 0..repeat {
        gz.write_all(pieces[1]).unwrap();
    }
    gz.write_all(pieces[2]).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
}

/// Objects made to exhaust memory, beside a genuine one, read within a 96 MiB budget: 32 MB
/// of tiny values (a parse of half a gigabyte in one go) and a 300 MB gzip bomb. hunt reads
/// the genuine record, reports both, and the process stays near its budget.
#[test]
fn bombs_are_read_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    write_object(
        dir.path(),
        "genuinegenuineg1",
        &[record("genuine-stop", "StopLogging", "")],
    );
    let zeros = "0,".repeat(1 << 20);
    write_gzip(
        dir.path(),
        "tinyvaluestinyva",
        &[b"{\"Records\":[", zeros.as_bytes(), b"0]}"],
        16,
    );
    let spaces = " ".repeat(1 << 20);
    write_gzip(
        dir.path(),
        "spacesspacesspac",
        &[b"{\"Records\":[]}", spaces.as_bytes(), b""],
        300,
    );
    let out = trailhound(&[
        "hunt",
        "--memory-budget",
        "96MiB",
        "--format",
        "csv",
        "SELECT eventid FROM cloudtrail",
        dir.path().to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        text(&out.stdout).lines().collect::<Vec<_>>(),
        ["eventid", "genuine-stop"],
        "{stderr}"
    );
    // 16 Mi + 1 tiny values, none a record, each counted; the bomb refused whole.
    assert!(
        stderr.contains("16777217 records skipped (16777217 not-an-object)"),
        "{stderr}"
    );
    assert!(stderr.contains("1 over-budget"), "{stderr}");
    let megabytes = |after: &str| -> f64 {
        let at = stderr
            .find(after)
            .unwrap_or_else(|| panic!("no {after:?}: {stderr}"));
        let number = stderr[at + after.len()..]
            .split_whitespace()
            .next()
            .unwrap();
        number.parse().unwrap()
    };
    let budget = 96.0 * 1.048576;
    assert!(
        megabytes("memory for reading: at most ") <= budget,
        "{stderr}"
    );
    // The process besides reading (the binary, DataFusion, the allocator's slack) needs
    // about 100 MB here (101 MB once, with the whole suite running beside it); reading the
    // tiny values whole would have taken 600 MB.
    let resident = megabytes("budget; ");
    assert!(
        resident < budget + 125.0,
        "{resident} MB resident\n{stderr}"
    );
}

/// 25,000 calls, each with its own temporary key, session and IPv6 address, in one account:
/// the state keeps at most 20,000 entries of each kind for the account, forgets the least
/// recently seen and says so (unbounded, such a flood once made 500,007 entries of 100,000).
#[test]
fn a_flood_of_distinct_sessions_stays_within_the_state_caps() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<String> = (0..25_000)
        .map(|i| {
            format!(
                r#"{{"eventVersion":"1.08","userIdentity":{{"type":"AssumedRole","principalId":"AROAFLOOD:s{i}","arn":"arn:aws:sts::111122223333:assumed-role/flood/s{i}","accountId":"111122223333","accessKeyId":"ASIA{i:016}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROAFLOOD","arn":"arn:aws:iam::111122223333:role/flood","accountId":"111122223333","userName":"flood"}}}}}},"eventTime":"2026-10-05T10:{:02}:{:02}Z","eventSource":"iam.amazonaws.com","eventName":"ListUsers","awsRegion":"us-east-1","sourceIPAddress":"2001:db8:{:x}::1","userAgent":"ua-{i}","eventID":"flood-{i}","eventType":"AwsApiCall","recipientAccountId":"111122223333"}}"#,
                (i / 1000) % 60,
                i % 60,
                i
            )
        })
        .collect();
    write_object(dir.path(), "floodfloodflood1", &records);
    let state = dir.path().join("state.redb");
    let out = trailhound(&[
        "replay",
        "--learning",
        "0s",
        "--log",
        "info",
        "--state",
        state.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("entries for one account and detection: forgot the"),
        "{stderr}"
    );
    let entries: usize = stderr
        .split("state.redb: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no state size: {stderr}"));
    // First-seen values, entities and rate histories: 20,000 each at most, and a few more
    // for the objects learned from.
    assert!(entries <= 3 * 20_000 + 100, "{entries} entries\n{stderr}");
    assert!(entries >= 20_000, "{entries} entries\n{stderr}");
}
