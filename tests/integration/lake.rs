//! The Parquet lake as a user keeps it: `replay --lake` writes it, `hunt --lake` and DuckDB
//! (from PyPI) read it, and both agree with `hunt` over the raw logs.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{self, text, trailhound};

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// CSV rows of a query, header left out.
fn rows(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = text(&out.stdout)
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

fn hunt_raw(sql: &str, logs: &Path) -> Vec<String> {
    rows(&ok(trailhound(&[
        "hunt",
        "--format",
        "csv",
        sql,
        logs.to_str().unwrap(),
    ])))
}

/// `hunt --lake` with CSV output, which must succeed.
fn hunt_lake_output(sql: &str, lake: &Path) -> Output {
    ok(trailhound(&[
        "hunt",
        "--format",
        "csv",
        "--lake",
        lake.to_str().unwrap(),
        sql,
    ]))
}

fn hunt_lake(sql: &str, lake: &Path) -> Vec<String> {
    rows(&hunt_lake_output(sql, lake))
}

/// How many files `hunt --lake` opened to answer `sql` (`files_opened` of `EXPLAIN ANALYZE`).
fn files_opened(sql: &str, lake: &Path) -> usize {
    let out = hunt_lake_output(&format!("EXPLAIN ANALYZE {sql}"), lake);
    let plan = text(&out.stdout);
    plan.split("files_opened=")
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().unwrap()
        })
        .sum()
}

fn replay_into(lake: &Path, logs: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "replay",
        "--state",
        ":memory:",
        "--lake",
        lake.to_str().unwrap(),
        "-o",
        "/dev/null",
    ];
    args.extend_from_slice(extra);
    args.push(logs.to_str().unwrap());
    ok(trailhound(&args))
}

/// Runs Python (`$PYTHON`, else python3) with `args`, `LAKE` set to the lake's path; its
/// stdout. Fails, naming what it `needs` installed, unless it succeeds.
fn python<S: AsRef<std::ffi::OsStr>>(args: &[S], lake: &Path, needs: &str) -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args(args)
        .env("LAKE", lake)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{needs}: {}", text(&out.stderr));
    text(&out.stdout).to_string()
}

/// Runs `script` with DuckDB in Python, `LAKE` set to the lake's path; its stdout lines.
fn duckdb(script: &str, lake: &Path) -> Vec<String> {
    let script = format!("import duckdb, os\nLAKE = os.environ['LAKE']\n{script}");
    let out = python(
        &["-c", script.as_str()],
        lake,
        "duckdb (pip install duckdb)",
    );
    let mut lines: Vec<String> = out.lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn a_replayed_lake_reads_the_same_with_hunt_and_duckdb_as_the_raw_logs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let lake = dir.path().join("lake");
    common::simulate(&logs, 2, 2, "0.05");
    let out = replay_into(&lake, &logs, &[]);
    assert!(text(&out.stderr).contains("lake "), "{}", text(&out.stderr));

    // Partitions by event date, account and region; nothing else under the tables.
    let mut partitions = 0;
    for entry in walkdir::WalkDir::new(lake.join("cloudtrail"))
        .min_depth(3)
        .max_depth(3)
    {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        assert!(name.starts_with("region="), "{name}");
        partitions += 1;
    }
    assert!(partitions >= 4, "{partitions} partitions");

    let by_event = "SELECT eventname, count(*) AS n FROM cloudtrail GROUP BY eventname";
    let raw = hunt_raw(by_event, &logs);
    assert!(raw.len() > 10, "{raw:?}");
    assert_eq!(hunt_lake(by_event, &lake), raw);

    // Nested fields survive: the struct, the list of structs and the dictionary column.
    let nested =
        "SELECT recipientaccountid, awsregion, count(DISTINCT useridentity.accesskeyid) AS keys, \
                  count(DISTINCT useridentity.sessioncontext.sessionissuer.arn) AS issuers, \
                  sum(cardinality(resources)) AS resources, count(DISTINCT sourcekey) AS objects \
                  FROM cloudtrail GROUP BY 1, 2";
    assert_eq!(hunt_lake(nested, &lake), hunt_raw(nested, &logs));

    // The partition columns are the records' own account and region.
    let partition_check =
        "SELECT count(*) FROM cloudtrail WHERE account <> recipientaccountid OR region <> awsregion \
         OR date <> to_char(eventtime, '%Y-%m-%d')";
    assert_eq!(hunt_lake(partition_check, &lake), vec!["0"]);

    // A time range reads the days it covers, and counts what the raw logs count.
    let day = "SELECT count(*) FROM cloudtrail WHERE eventtime >= '2026-10-06T00:00:00Z' AND eventtime < '2026-10-07T00:00:00Z'";
    let one_day = hunt_raw(day, &logs);
    assert_eq!(hunt_lake(day, &lake), one_day);

    // DuckDB reads the same files: counts by account, and nested fields by path.
    let by_account = hunt_raw(
        "SELECT recipientaccountid, count(*) FROM cloudtrail GROUP BY recipientaccountid",
        &logs,
    );
    let duck = duckdb(
        "t = f\"read_parquet('{LAKE}/cloudtrail/*/*/*/*.parquet', hive_partitioning=true)\"\n\
         for account, n in duckdb.sql(f'SELECT account, count(*) FROM {t} GROUP BY account').fetchall():\n\
         \x20   print(f'{account},{n}')",
        &lake,
    );
    assert_eq!(duck, by_account);
    let keys = "SELECT DISTINCT useridentity.accesskeyid FROM cloudtrail WHERE useridentity.accesskeyid <> ''";
    let duck_keys = duckdb(
        "t = f\"read_parquet('{LAKE}/cloudtrail/*/*/*/*.parquet', hive_partitioning=true)\"\n\
         for (k,) in duckdb.sql(f\"SELECT DISTINCT useridentity.accesskeyid FROM {t} WHERE useridentity.accesskeyid <> ''\").fetchall():\n\
         \x20   print(k)",
        &lake,
    );
    assert_eq!(duck_keys, hunt_raw(keys, &logs));

    // A question about one access key opens only the files whose footers allow the key
    // (its statistics and bloom filter), and answers what the raw logs answer.
    let partitions_of_key = hunt_raw(
        "SELECT useridentity.accesskeyid, count(DISTINCT concat(recipientaccountid, awsregion, \
         to_char(eventtime, '%Y-%m-%d'))) AS n FROM cloudtrail \
         WHERE useridentity.accesskeyid LIKE 'AKIA%' GROUP BY 1 ORDER BY n, 1 LIMIT 1",
        &logs,
    );
    let (key, with_key) = partitions_of_key[0].split_once(',').unwrap();
    let with_key: usize = with_key.parse().unwrap();
    let one_key = format!(
        "SELECT eventid, eventname FROM cloudtrail WHERE useridentity.accesskeyid = '{key}'"
    );
    let expected = hunt_raw(&one_key, &logs);
    assert!(!expected.is_empty());
    assert_eq!(hunt_lake(&one_key, &lake), expected);
    let total = files(&lake, "cloudtrail").len();
    let opened = files_opened(&one_key, &lake);
    assert!(
        with_key <= opened && opened < total,
        "{opened} files opened of {total}, {with_key} hold {key}"
    );
    let either = format!(
        "SELECT count(*) FROM cloudtrail WHERE useridentity.accesskeyid IN ('{key}', 'AKIANOSUCHKEY0000000')"
    );
    assert_eq!(hunt_lake(&either, &lake), vec![expected.len().to_string()]);
    let nobody =
        "SELECT count(*) FROM cloudtrail WHERE useridentity.accesskeyid = 'AKIANOSUCHKEY0000000'";
    assert_eq!(hunt_lake(nobody, &lake), vec!["0"]);
    assert!(files_opened(nobody, &lake) <= 1, "a key nobody used");

    // Findings land beside the records, and join to them by eventid.
    let joined = hunt_lake(
        "SELECT count(*) > 0 FROM findings f JOIN cloudtrail c ON array_has(f.eventids, c.eventid)",
        &lake,
    );
    assert_eq!(joined, vec!["true"]);
}

#[test]
fn replaying_the_same_logs_again_leaves_no_row_twice() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let lake = dir.path().join("lake");
    common::simulate(&logs, 2, 1, "0.05");
    replay_into(&lake, &logs, &[]);
    let count = "SELECT count(*), count(DISTINCT eventid) FROM cloudtrail";
    let first = hunt_lake(count, &lake);
    // Again, whole; then from part-way through the second day, in small chunks.
    replay_into(&lake, &logs, &[]);
    replay_into(
        &lake,
        &logs,
        &["--since", "2026-10-06T10:30:00Z", "--chunk-size", "64KiB"],
    );
    assert_eq!(hunt_lake(count, &lake), first);
    let raw = hunt_raw(count, &logs);
    assert_eq!(first, raw);
}

#[test]
fn foreign_and_older_files_in_a_lake_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let lake = dir.path().join("lake");
    common::simulate(&logs, 1, 1, "0.05");
    replay_into(&lake, &logs, &[]);
    let count = "SELECT count(*) FROM cloudtrail";
    let before: u64 = hunt_lake(count, &lake)[0].parse().unwrap();

    // Files that are not Parquet by name are not read; nor are files being written.
    let partition = walkdir::WalkDir::new(lake.join("cloudtrail"))
        .min_depth(3)
        .max_depth(3)
        .into_iter()
        .next()
        .unwrap()
        .unwrap()
        .into_path();
    std::fs::write(partition.join("notes.txt"), "not data").unwrap();
    std::fs::write(partition.join(".half.parquet.1.tmp"), "PAR1 cut short").unwrap();
    std::fs::write(lake.join("cloudtrail").join("README"), "hello").unwrap();
    assert_eq!(hunt_lake(count, &lake), vec![before.to_string()]);

    // A file from an older schema (two columns) is read, its missing columns null.
    let old = partition.join("older.parquet");
    duckdb(
        &format!(
            "duckdb.sql(\"COPY (SELECT 'old-1' AS eventid, 'GetObject' AS eventname) TO '{}' (FORMAT PARQUET)\")",
            old.display()
        ),
        &lake,
    );
    assert_eq!(hunt_lake(count, &lake), vec![(before + 1).to_string()]);
    assert_eq!(
        hunt_lake(
            "SELECT eventname, useridentity IS NULL, account IS NOT NULL FROM cloudtrail WHERE eventid = 'old-1'",
            &lake
        ),
        vec!["GetObject,true,true"]
    );

    // A file named .parquet that cannot be Parquet (its footer lies about its length) is
    // passed over and said so, not read: readers trust that length.
    std::fs::write(
        partition.join("broken.parquet"),
        b"PAR1 this is not parquet PAR1",
    )
    .unwrap();
    let out = hunt_lake_output(count, &lake);
    assert_eq!(rows(&out), vec![(before + 1).to_string()]);
    let err = text(&out.stderr);
    assert!(
        err.contains("broken.parquet") && err.contains("1 file(s) of the lake skipped"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let out = trailhound(&["hunt", "--strict", "--lake", lake.to_str().unwrap(), count]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    std::fs::remove_file(partition.join("broken.parquet")).unwrap();

    // Good files in directories that are not the lake's partitions (a bad value, or no
    // partition at all) are skipped and named, by every query alike, not read by some.
    let odd = lake.join("cloudtrail/date=garbage/account=../region=x");
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::copy(&old, odd.join("copy.parquet")).unwrap();
    std::fs::create_dir_all(lake.join("cloudtrail/junk")).unwrap();
    std::fs::copy(&old, lake.join("cloudtrail/junk/copy.parquet")).unwrap();
    let out = hunt_lake_output(count, &lake);
    assert_eq!(rows(&out), vec![(before + 1).to_string()]);
    let err = text(&out.stderr);
    assert!(err.contains("date \"garbage\" is not well formed"), "{err}");
    assert!(err.contains("not in a partition directory"), "{err}");
    assert!(err.contains("2 file(s) of the lake skipped"), "{err}");

    // A lake that is not there is said so.
    let out = trailhound(&["hunt", "--lake", "/nonexistent/lake", count]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no such directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_athena_ddl_names_the_lake_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let lake = dir.path().join("lake");
    common::simulate(&logs, 1, 2, "0.05");
    replay_into(&lake, &logs, &[]);
    let out = ok(trailhound(&[
        "lake",
        "ddl",
        lake.to_str().unwrap(),
        "--location",
        "s3://lake-bucket/th",
    ]));
    let ddl = text(&out.stdout);
    let accounts = hunt_lake("SELECT DISTINCT account FROM cloudtrail", &lake);
    assert_eq!(accounts.len(), 2);
    for a in &accounts {
        assert!(ddl.contains(a.as_str()), "{a} not in\n{ddl}");
    }
    assert!(ddl.contains("CREATE EXTERNAL TABLE IF NOT EXISTS trailhound.cloudtrail"));
    let out = trailhound(&[
        "lake",
        "ddl",
        lake.to_str().unwrap(),
        "--location",
        "/tmp/x",
    ]);
    assert!(!out.status.success());
    let stats = text(&ok(trailhound(&["lake", "stats", lake.to_str().unwrap()])).stdout);
    assert!(stats.contains("cloudtrail"), "{stats}");
}

/// The Athena DDL run in Spark's Hive metastore (`scripts/spark-ddl-check.py`, pyspark from
/// PyPI): Hive's grammar accepts every statement, and Spark, reading the files through the
/// declared types, counts what `hunt` counts over the raw logs, nested fields and the
/// findings' join to their records included.
#[test]
fn the_athena_ddl_runs_in_spark_and_reads_what_hunt_reads() {
    let dir = tempfile::tempdir().unwrap();
    let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
    let lake = dir.path().join("lake");
    replay_into(&lake, &logs, &[]);
    let location = "s3://lake-bucket/trailhound";
    let ddl = ok(trailhound(&[
        "lake",
        "ddl",
        lake.to_str().unwrap(),
        "--location",
        location,
    ]));
    let ddl_file = dir.path().join("lake.sql");
    std::fs::write(&ddl_file, &ddl.stdout).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/spark-ddl-check.py");
    let out = python(
        &[
            script.as_os_str(),
            ddl_file.as_os_str(),
            lake.as_os_str(),
            location.as_ref(),
        ],
        &lake,
        "spark (pip install pyspark; Java 17 or later)",
    );
    let spark: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    // A value as `hunt --format csv` prints it; an array as one row.
    fn csv(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items.iter().map(csv).collect::<Vec<_>>().join(","),
            other => other.to_string(),
        }
    }

    assert_eq!(
        spark["tables"],
        serde_json::json!([
            "trailhound.cloudtrail",
            "trailhound.bedrock_invocations",
            "trailhound.findings"
        ])
    );
    assert_eq!(
        vec![csv(&spark["cloudtrail_count"])],
        hunt_raw(
            "SELECT count(*), count(DISTINCT eventid) FROM cloudtrail",
            &logs
        )
    );
    let mut by_account: Vec<String> = spark["by_account"]
        .as_array()
        .unwrap()
        .iter()
        .map(csv)
        .collect();
    by_account.sort();
    assert_eq!(
        by_account,
        hunt_raw(
            "SELECT recipientaccountid, count(*) FROM cloudtrail GROUP BY 1",
            &logs
        )
    );
    let nested = hunt_raw(
        "SELECT count(DISTINCT useridentity.accesskeyid), \
                count(DISTINCT useridentity.sessioncontext.sessionissuer.arn), \
                to_char(min(eventtime), '%Y-%m-%d %H:%M:%S') FROM cloudtrail",
        &logs,
    );
    assert_eq!(
        vec![[
            csv(&spark["access_keys"]),
            csv(&spark["issuers"]),
            csv(&spark["first_event"])
        ]
        .join(",")],
        nested
    );
    assert_eq!(
        vec![csv(&spark["resources"])],
        hunt_raw(
            "SELECT count(*) FROM (SELECT unnest(resources) AS r FROM cloudtrail) \
             WHERE r.arn IS NOT NULL",
            &logs
        )
    );
    let findings = hunt_lake("SELECT count(*) FROM findings", &lake);
    assert_ne!(findings, vec!["0"]);
    assert_eq!(vec![csv(&spark["findings"])], findings);
    assert_eq!(
        vec![csv(&spark["finding_records"])],
        hunt_lake(
            "SELECT count(*) FROM (SELECT unnest(eventids) AS id FROM findings) f \
             JOIN cloudtrail c ON c.eventid = f.id",
            &lake
        )
    );
}

/// Data files under a lake's table.
fn files(lake: &Path, table: &str) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(lake.join(table))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "parquet"))
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn compaction_merges_small_files_and_drops_records_held_twice() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let lake = dir.path().join("lake");
    common::simulate(&logs, 2, 1, "0.05");
    replay_into(&lake, &logs, &[]);
    let count = "SELECT count(*), count(DISTINCT eventid) FROM cloudtrail";
    let expected = hunt_raw(count, &logs);
    // Merged, a record is kept once per eventid (CloudTrail itself delivers a few twice).
    let distinct = expected[0].split(',').nth(1).unwrap().to_string();
    let merged = vec![format!("{distinct},{distinct}")];
    assert_eq!(hunt_lake(count, &lake), expected);
    let before = files(&lake, "cloudtrail");

    // A file copied under another name: every record in it twice.
    let copied = before[0].with_file_name("copied.parquet");
    std::fs::copy(&before[0], &copied).unwrap();
    assert_ne!(hunt_lake(count, &lake), expected);

    let out = ok(trailhound(&[
        "lake",
        "compact",
        lake.to_str().unwrap(),
        "--target-size",
        "4MiB",
    ]));
    let said = text(&out.stderr);
    assert!(said.contains("duplicates dropped"), "{said}");
    assert!(!said.contains(" 0 duplicates"), "{said}");
    let after = files(&lake, "cloudtrail");
    assert!(
        after.len() < before.len(),
        "{} -> {} files",
        before.len(),
        after.len()
    );
    assert_eq!(hunt_lake(count, &lake), merged);
    // Nothing is left outside the tables, and DuckDB reads the merged files.
    assert!(files(&lake, ".staging").is_empty());
    let duck = duckdb(
        "print(duckdb.sql(f\"SELECT count(*) FROM read_parquet('{LAKE}/cloudtrail/*/*/*/*.parquet', hive_partitioning=true)\").fetchall()[0][0])",
        &lake,
    );
    assert_eq!(duck[0], distinct);

    // Replaying the same logs after the merge adds nothing: the groups are known merged.
    replay_into(&lake, &logs, &[]);
    assert_eq!(hunt_lake(count, &lake), merged);
    assert_eq!(files(&lake, "cloudtrail").len(), after.len());
    // Compacting again changes nothing.
    ok(trailhound(&[
        "lake",
        "compact",
        lake.to_str().unwrap(),
        "--target-size",
        "4MiB",
    ]));
    assert_eq!(hunt_lake(count, &lake), merged);
}

#[test]
fn compaction_while_replay_writes_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let lake = dir.path().join("lake");
    common::simulate(&logs, 2, 2, "0.1");
    let expected = hunt_raw(
        "SELECT count(*), count(DISTINCT eventid) FROM cloudtrail",
        &logs,
    );
    std::fs::create_dir_all(&lake).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compactor = {
        let (lake, stop) = (lake.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let out = trailhound(&[
                    "lake",
                    "compact",
                    lake.to_str().unwrap(),
                    "--target-size",
                    "8MiB",
                ]);
                assert!(out.status.success(), "{}", text(&out.stderr));
                runs += 1;
            }
            runs
        })
    };
    // Small chunks: many writes, spread over the compactions.
    replay_into(&lake, &logs, &["--chunk-size", "32KiB"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = compactor.join().unwrap();
    assert!(runs >= 1);
    let count = "SELECT count(*), count(DISTINCT eventid) FROM cloudtrail";
    // Every record is there; any held twice (a group rewritten after it was merged) is
    // dropped by the next compaction.
    let distinct = hunt_lake(count, &lake);
    assert_eq!(
        distinct[0].split(',').nth(1),
        expected[0].split(',').nth(1),
        "{distinct:?} vs {expected:?}"
    );
    ok(trailhound(&[
        "lake",
        "compact",
        lake.to_str().unwrap(),
        "--target-size",
        "8MiB",
    ]));
    let d = expected[0].split(',').nth(1).unwrap();
    assert_eq!(hunt_lake(count, &lake), vec![format!("{d},{d}")]);
}

#[test]
fn bench_times_writing_the_lake() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
    let out = ok(trailhound(&[
        "bench",
        "--repeat",
        "1",
        "--with-lake",
        sample.to_str().unwrap(),
    ]));
    let report = text(&out.stdout);
    let stage = report
        .lines()
        .find(|l| l.starts_with("lake: group + write Parquet"))
        .unwrap_or_else(|| panic!("{report}"));
    // seconds, records/s and MB/s, each a number above zero.
    let figures: Vec<f64> = stage
        .split_whitespace()
        .rev()
        .take(3)
        .map(|f| f.parse().unwrap())
        .collect();
    assert!(figures.iter().all(|f| *f > 0.0), "{stage}");
    let size = report
        .lines()
        .find(|l| l.starts_with("lake: ") && l.contains(" files, "))
        .unwrap_or_else(|| panic!("{report}"));
    let files: usize = size["lake: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(files >= 4, "{size}");
    // Nothing left behind in the temporary directory.
    let left = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("trailhound-bench-lake-")
        })
        .count();
    assert_eq!(left, 0);
}
