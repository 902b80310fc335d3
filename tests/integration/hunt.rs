//! `trailhound hunt` and `simulate` as a user runs them: the real binary on real files.

use std::io::Write;
use std::path::Path;
use std::process::Output;

use crate::common;

use common::{text, trailhound};

/// Two accounts over two days into `dir`, with `extra` options.
fn simulate_with(dir: &Path, scale: &str, extra: &[&str]) {
    let mut args = vec![
        "simulate",
        "--out",
        dir.to_str().unwrap(),
        "--days",
        "2",
        "--accounts",
        "2",
        "--scale",
        scale,
    ];
    args.extend_from_slice(extra);
    let out = trailhound(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn simulate(dir: &Path) {
    simulate_with(dir, "0.05", &[]);
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Counts from a CSV with a header and one number per line.
fn csv_number(out: &Output) -> u64 {
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    lines.next().expect("header");
    lines
        .next()
        .expect("value")
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn queries_run_with_athena_names_and_json_functions() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path());
    let d = dir.path().to_str().unwrap();

    // The labels name the attacks; the key-policy attack's PutKeyPolicy must be found by SQL.
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("labels.json")).unwrap())
            .unwrap();
    let attacks = labels["attacks"].as_array().unwrap();
    assert!(attacks.len() >= 5);

    let out = trailhound(&[
        "hunt",
        "--format",
        "csv",
        "SELECT count(*) FROM cloudtrail",
        d,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let total = csv_number(&out);
    assert!(total > 1000, "{total}");

    // `->>` and json_extract_scalar agree; mixed-case names work; struct fields are reachable.
    let q = "SELECT eventID, requestparameters->>'keyId' AS a, \
             json_extract_scalar(requestParameters, '$.keyId') AS b, userIdentity.sessioncontext.sessionissuer.username AS who \
             FROM cloudtrail WHERE eventName = 'PutKeyPolicy' AND requestparameters LIKE '%999988887777%'";
    let out = trailhound(&["hunt", "--format", "json", q, d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["a"], rows[0]["b"]);
    assert!(rows[0]["a"].as_str().unwrap().starts_with("arn:aws:kms:"));
    assert_eq!(rows[0]["who"], "AdminRole");
    let kms_attack = attacks
        .iter()
        .find(|a| a["id"] == "kms-key-backdoor")
        .unwrap();
    let ids: Vec<&str> = kms_attack["eventIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(ids.contains(&rows[0]["eventid"].as_str().unwrap()));

    // Timestamps compare as times; `readonly` is Athena's 'true'/'false' string.
    let out = trailhound(&["hunt", "--format", "csv",
        "SELECT count(*) FROM cloudtrail WHERE eventtime >= TIMESTAMP '2026-10-06 00:00:00' AND readonly = 'false'", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let writes_day2 = csv_number(&out);
    assert!(writes_day2 > 0 && writes_day2 < total);

    // Several statements: the last one's result is printed.
    let out = trailhound(&[
        "hunt",
        "--format",
        "csv",
        "SELECT 1; SELECT 41 + 1 AS answer",
        d,
    ]);
    assert_eq!(text(&out.stdout), "answer\n42\n");

    // A SQL error is reported, with a non-zero exit.
    let out = trailhound(&["hunt", "SELECT nosuchcolumn FROM cloudtrail", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nosuchcolumn"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn broken_files_are_reported_and_good_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    simulate(dir.path());
    let d = dir.path().to_str().unwrap();
    let count = |extra: &[&str]| {
        let mut args = vec![
            "hunt",
            "--format",
            "csv",
            "SELECT count(*) FROM cloudtrail",
            d,
        ];
        args.extend_from_slice(extra);
        trailhound(&args)
    };
    let clean = count(&[]);
    assert!(clean.status.success());
    let quiet = text(&clean.stderr);
    assert!(!quiet.contains("problems"), "{quiet}");
    assert!(
        quiet.contains("skipped keys that hold no events: 1 json file"),
        "labels.json is passed over: {quiet}"
    );
    let good = csv_number(&clean);

    // Now add broken objects beside the good ones.
    let bad = dir
        .path()
        .join("AWSLogs/111111111111/CloudTrail/us-east-1/2026/10/05");
    std::fs::create_dir_all(&bad).unwrap();
    let rec = |id: &str| {
        format!(r#"{{"eventTime":"2026-10-05T10:00:00Z","eventID":"{id}","eventName":"X"}}"#)
    };
    let name = |n: &str| {
        bad.join(format!(
            "111111111111_CloudTrail_us-east-1_20261005T1000Z_{n}.json.gz"
        ))
    };
    // corrupt gzip
    let mut corrupt = gz(format!(r#"{{"Records":[{}]}}"#, rec("c1")).as_bytes());
    for b in &mut corrupt[10..] {
        *b = 0xff; // a reserved deflate block type: the stream is unreadable from its start
    }
    std::fs::write(name("corruptxxxxxxxxx"), corrupt).unwrap();
    // truncated file: two complete records survive
    let whole = format!(
        r#"{{"Records":[{},{},{}]}}"#,
        rec("t1"),
        rec("t2"),
        rec("t3")
    );
    std::fs::write(
        name("truncatedxxxxxxx"),
        gz(&whole.as_bytes()[..whole.len() - 30]),
    )
    .unwrap();
    // another shape
    std::fs::write(name("htmlxxxxxxxxxxxx"), gz(b"<html>AccessDenied</html>")).unwrap();
    // records without eventID / eventTime next to a good one
    let mixed = format!(
        r#"{{"Records":[{{"eventTime":"2026-10-05T10:00:00Z"}},{},{{"eventID":"x"}}]}}"#,
        rec("m1")
    );
    std::fs::write(name("mixedxxxxxxxxxxx"), gz(mixed.as_bytes())).unwrap();
    // a digest file is skipped and counted
    let digest = dir
        .path()
        .join("AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2026/10/05");
    std::fs::create_dir_all(&digest).unwrap();
    std::fs::write(
        digest
            .join("111111111111_CloudTrail-Digest_us-east-1_t_us-east-1_20261005T100000Z.json.gz"),
        gz(b"{}"),
    )
    .unwrap();

    let out = count(&[]);
    assert!(out.status.success(), "without --strict the exit is 0");
    assert_eq!(
        csv_number(&out),
        good + 2 + 1,
        "truncated file's two records and the mixed file's good one"
    );
    let err = text(&out.stderr);
    for needle in [
        "corruptxxxxxxxxx.json.gz: gzip stream is corrupt or truncated",
        "truncatedxxxxxxx.json.gz: the body ends in the middle of a record, after 2 complete records",
        "htmlxxxxxxxxxxxx.json.gz: the body is not CloudTrail JSON",
        "mixedxxxxxxxxxxx.json.gz: record 0 skipped: the record has no `eventID` field",
        "mixedxxxxxxxxxxx.json.gz: record 2 skipped: the record has no `eventTime` field",
        "skipped keys that hold no events: 1 cloudtrail digest, 1 json file",
        "4 objects had problems",
        "2 records skipped",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    let strict = count(&["--strict"]);
    assert_eq!(strict.status.code(), Some(3));
    assert_eq!(
        csv_number(&strict),
        good + 3,
        "--strict still prints the result"
    );
}

#[test]
fn bad_invocations_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = trailhound(&["hunt", "SELECT 1", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no such file or directory"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(dir.path().join("README.md"), "hello").unwrap();
    let out = trailhound(&["hunt", "SELECT 1", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no CloudTrail logs found"),
        "{}",
        text(&out.stderr)
    );

    let out = trailhound(&["hunt", "SELECT 1", "s3://"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not an S3 URL; use s3://BUCKET/PREFIX"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn simulate_is_deterministic_for_a_seed() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (dir, threads) in [(a.path(), "1"), (b.path(), "2")] {
        simulate_with(dir, "0.03", &["--seed", "11", "--threads", threads]);
    }
    let files = |root: &Path| {
        let mut v: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(root)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                (
                    e.path().strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert!(fa.len() > 20);
    assert_eq!(fa, fb, "same seed, same bytes, whatever the thread count");
    // Key layout as CloudTrail writes it.
    let re_ok = fa
        .iter()
        .filter(|(k, _)| k.ends_with(".json.gz"))
        .all(|(k, _)| {
            let parts: Vec<&str> = k.split('/').collect();
            parts.len() == 8
                && parts[0] == "AWSLogs"
                && parts[2] == "CloudTrail"
                && parts[7].starts_with(&format!("{}_CloudTrail_{}_", parts[1], parts[3]))
                && parts[7].len()
                    == format!(
                        "{}_CloudTrail_{}_20261005T1000Z_0123456789abcdef.json.gz",
                        parts[1], parts[3]
                    )
                    .len()
        });
    assert!(re_ok);
}
