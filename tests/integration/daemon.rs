//! `trailhound run` against moto's real S3 and SQS server on loopback, driven through the real
//! AWS SDK: notifications of every shape, keys that need decoding, poison messages,
//! duplicates, objects gone before they are read, and a SIGTERM drain.

use crate::common;
use crate::moto;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sqs::types::QueueAttributeName;
use moto::Moto;
use serde_json::{json, Value};

/// An AWS SDK configuration for moto's server.
fn sdk_config(runtime: &tokio::runtime::Runtime, moto: &Moto) -> aws_config::SdkConfig {
    runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&moto.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load(),
    )
}

struct Aws {
    runtime: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Aws {
    fn new(moto: &Moto) -> Aws {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let config = sdk_config(&runtime, moto);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        Aws {
            runtime,
            s3,
            sqs: aws_sdk_sqs::Client::new(&config),
        }
    }

    fn bucket(&self, name: &str) {
        self.runtime
            .block_on(self.s3.create_bucket().bucket(name).send())
            .unwrap();
    }

    fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.runtime
            .block_on(
                self.s3
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(ByteStream::from(body))
                    .send(),
            )
            .unwrap();
    }

    /// A queue with a dead-letter queue after `max_receives`; returns (queue URL, DLQ URL).
    fn queue(&self, name: &str, max_receives: u32) -> (String, String) {
        let dlq = self
            .runtime
            .block_on(
                self.sqs
                    .create_queue()
                    .queue_name(format!("{name}-dlq"))
                    .send(),
            )
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = self.attribute(&dlq, QueueAttributeName::QueueArn);
        let url = self
            .runtime
            .block_on(
                self.sqs
                    .create_queue()
                    .queue_name(name)
                    .attributes(QueueAttributeName::VisibilityTimeout, "30")
                    .attributes(
                        QueueAttributeName::RedrivePolicy,
                        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives})
                            .to_string(),
                    )
                    .send(),
            )
            .unwrap()
            .queue_url
            .unwrap();
        (url, dlq)
    }

    fn attribute(&self, queue: &str, name: QueueAttributeName) -> String {
        let out = self
            .runtime
            .block_on(
                self.sqs
                    .get_queue_attributes()
                    .queue_url(queue)
                    .attribute_names(name.clone())
                    .send(),
            )
            .unwrap();
        out.attributes.unwrap()[&name].clone()
    }

    /// Messages on the queue, visible or in flight.
    fn depth(&self, queue: &str) -> u64 {
        let visible: u64 = self
            .attribute(queue, QueueAttributeName::ApproximateNumberOfMessages)
            .parse()
            .unwrap();
        let hidden: u64 = self
            .attribute(
                queue,
                QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .parse()
            .unwrap();
        visible + hidden
    }

    fn send(&self, queue: &str, body: &str) {
        self.runtime
            .block_on(
                self.sqs
                    .send_message()
                    .queue_url(queue)
                    .message_body(body)
                    .send(),
            )
            .unwrap();
    }

    /// S3 notifications of created objects in `bucket` go to `queue`.
    fn notify(&self, bucket: &str, queue: &str) {
        use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
        let arn = self.attribute(queue, QueueAttributeName::QueueArn);
        self.runtime
            .block_on(
                self.s3
                    .put_bucket_notification_configuration()
                    .bucket(bucket)
                    .notification_configuration(
                        NotificationConfiguration::builder()
                            .queue_configurations(
                                QueueConfiguration::builder()
                                    .queue_arn(arn)
                                    .events(Event::S3ObjectCreated)
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .send(),
            )
            .unwrap();
    }
}

/// The sample's log files that hold labelled attack records, with the attacks' event ids.
fn attack_files() -> (Vec<PathBuf>, BTreeMap<String, BTreeSet<String>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("labels.json")).unwrap()).unwrap();
    let mut attacks: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in labels["attacks"].as_array().unwrap() {
        attacks.insert(
            a["id"].as_str().unwrap().to_string(),
            a["eventIds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .collect(),
        );
    }
    let every: BTreeSet<&String> = attacks.values().flatten().collect();
    let mut files = Vec::new();
    let mut stack = vec![root.join("AWSLogs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = gunzip_text(&path);
            if every.iter().any(|id| text.contains(id.as_str())) {
                files.push(path);
            }
        }
    }
    files.sort();
    (files, attacks)
}

fn key_of(path: &Path) -> String {
    let text = path.to_str().unwrap();
    text[text.find("AWSLogs/").unwrap()..].to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_daemon(moto: &Moto, queue: &str, dir: &Path, port: u16, extra: &[&str]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailhound"));
    let sink = format!("file:{}", dir.join("findings.jsonl").display());
    let state = dir.join("state.redb");
    let mut args = vec![
        "run",
        "--queue-url",
        queue,
        "--state",
        state.to_str().unwrap(),
        "--drain",
        "10s",
        "--log",
        "info",
    ];
    if !extra.contains(&"--sink") {
        args.extend(["--sink", &sink]);
    }
    if !extra.contains(&"--visibility") {
        args.extend(["--visibility", "30s"]);
    }
    args.extend(extra);
    let listen = format!("127.0.0.1:{port}");
    args.extend(["--listen", &listen]);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .unwrap();
    command.args(&args).stdout(Stdio::null()).stderr(log);
    for (k, v) in moto.env() {
        command.env(k, v);
    }
    command.spawn().expect("the daemon starts")
}

/// Waits until `done` holds, failing after `limit` with the daemon's log.
fn wait_until(dir: &Path, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < limit,
            "{what}: not within {limit:?}:\n{}",
            std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Metrics text, or nothing while the daemon is not listening.
fn metrics_of(port: u16) -> String {
    std::net::TcpStream::connect(("127.0.0.1", port))
        .map(|_| get(port, "/metrics"))
        .unwrap_or_default()
}

/// The eventIDs of the records behind a finding.
fn event_ids(finding: &Value) -> BTreeSet<String> {
    finding["service"]["additionalInfo"]["eventIds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Each finding id's versions, in the order they were written, as their eventIDs.
fn versions_by_id(found: &[Value]) -> BTreeMap<String, Vec<BTreeSet<String>>> {
    let mut by_id: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
    for f in found {
        by_id
            .entry(f["id"].as_str().unwrap().to_string())
            .or_default()
            .push(event_ids(f));
    }
    by_id
}

/// The text of a gzip file.
fn gunzip_text(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The attacks (by name, with their event ids) that have records in `files`; never none.
fn attacks_in(
    files: &[PathBuf],
    attacks: BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    let text: String = files.iter().map(|p| gunzip_text(p)).collect();
    let present: BTreeMap<_, _> = attacks
        .into_iter()
        .filter(|(_, ids)| ids.iter().any(|id| text.contains(id.as_str())))
        .collect();
    assert!(!present.is_empty(), "no attack has records in {files:?}");
    present
}

/// Waits (at most 90 s) until `queue` is empty and the daemon listening on `port` has
/// deleted at least `deleted` messages, then kills it; its last metrics.
fn stop_when_drained(
    mut daemon: Child,
    (aws, queue, dir, port): (&Aws, &str, &Path, u16),
    deleted: f64,
) -> String {
    wait_until(dir, Duration::from_secs(90), "the queue emptied", || {
        aws.depth(queue) == 0
            && metric(&metrics_of(port), "trailhound_messages_deleted_total") >= deleted
    });
    let metrics = metrics_of(port);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    metrics
}

/// Fails, with the daemons' log from `dir`, unless every attack has a record in a finding.
fn assert_attacks_found(dir: &Path, found: &[Value], attacks: &BTreeMap<String, BTreeSet<String>>) {
    let seen: BTreeSet<String> = found.iter().flat_map(event_ids).collect();
    for (attack, events) in attacks {
        assert!(
            events.iter().any(|e| seen.contains(e)),
            "attack {attack} not found in {} findings; the daemons' log:\n{}",
            found.len(),
            std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
        );
    }
}

/// Starts the daemon (with `extra` arguments) on `queue`, kills it with SIGKILL once the
/// metric `until.1` reaches `until.2` (failing if it exits before), starts it again and waits
/// (at most `limit`) until the queue is empty, then kills that one too.
fn kill_then_finish(
    (moto, aws, queue, dir): (&Moto, &Aws, &str, &Path),
    extra: &[&str],
    until: (&str, &str, f64),
    limit: Duration,
) {
    let (what, series, value) = until;
    let port = free_port();
    let mut first = start_daemon(moto, queue, dir, port, extra);
    wait_until(dir, Duration::from_secs(180), what, || {
        let exited = first.try_wait().unwrap();
        assert!(exited.is_none(), "the daemon exited: {exited:?}");
        metric(&metrics_of(port), series) >= value
    });
    first.kill().unwrap();
    first.wait().unwrap();
    let port = free_port();
    let mut second = start_daemon(moto, queue, dir, port, extra);
    // Empty on two reads a second apart: one approximate count of zero is not yet drained.
    wait_until(dir, limit, "the queue emptied", || {
        aws.depth(queue) == 0 && {
            std::thread::sleep(Duration::from_secs(1));
            aws.depth(queue) == 0
        }
    });
    second.kill().unwrap();
    second.wait().unwrap();
}

fn upload_all(aws: &Aws, bucket: &str, files: &[PathBuf]) {
    for path in files {
        aws.put(bucket, &key_of(path), std::fs::read(path).unwrap());
    }
}

#[test]
fn killed_mid_batch_it_loses_nothing_and_repeats_nothing() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, dlq) = aws.queue("kill", 5);
    aws.bucket("trail");
    aws.notify("trail", &queue);
    let (files, attacks) = attack_files();
    upload_all(&aws, "trail", &files);

    // Killed (-9) as soon as it has received something: its messages are hidden for the
    // visibility it asked for (3 s), then handed out again. It keeps a lake too.
    let lake = dir.path().join("lake");
    kill_then_finish(
        (&moto, &aws, &queue, dir.path()),
        &["--visibility", "3s", "--lake", lake.to_str().unwrap()],
        ("a first receive", "trailhound_messages_received_total", 1.0),
        Duration::from_secs(120),
    );

    // Nothing given up on: a message that lapsed back onto the queue too often would be here.
    assert_eq!(
        aws.depth(&dlq),
        0,
        "messages reached the DLQ:\n{}",
        std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
    );
    // The lake holds every record of every object once, whichever daemon examined it and
    // however often: a file per object, written again under its name.
    let count = "SELECT count(*), count(DISTINCT eventid) FROM cloudtrail";
    let mut raw_args = vec!["hunt", "--format", "csv", count];
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    raw_args.extend(paths.iter().map(String::as_str));
    let raw = common::trailhound(&raw_args);
    assert!(raw.status.success(), "{}", common::text(&raw.stderr));
    let kept = common::trailhound(&[
        "hunt",
        "--format",
        "csv",
        "--lake",
        lake.to_str().unwrap(),
        count,
    ]);
    assert!(kept.status.success(), "{}", common::text(&kept.stderr));
    assert_eq!(
        common::text(&kept.stdout),
        common::text(&raw.stdout),
        "the lake against the raw logs; the daemons' log:\n{}",
        std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
    );
    let objects = walkdir::WalkDir::new(lake.join("cloudtrail"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .count();
    assert!(
        objects >= files.len(),
        "{objects} files for {} objects",
        files.len()
    );
    let found = read_findings(dir.path());
    assert_attacks_found(dir.path(), &found, &attacks);
    // A finding written again carries the records of its earlier versions, or more: a reader
    // that keeps the last version of each id has each finding once and loses none of its
    // records. A batch the first daemon wrote findings for but never committed comes again,
    // perhaps split up differently, so a version in between may hold fewer. Statistical
    // findings are left out: which record is the first of something new depends on the
    // order the objects come back in.
    let statistical = common::statistical_set(&found, &common::detection_kinds());
    for (id, versions) in &versions_by_id(&found) {
        let Some((last, earlier)) = versions.split_last() else {
            continue;
        };
        let missing: BTreeSet<&String> = earlier
            .iter()
            .flatten()
            .filter(|e| !last.contains(*e))
            .collect();
        assert!(
            statistical.contains(id) || missing.is_empty(),
            "finding {id} lost records in its last version: {missing:?}; its \
             versions: {:#?}\nthe daemons' log:\n{}",
            found
                .iter()
                .filter(|f| f["id"] == id.as_str())
                .map(|f| (&f["service"]["count"], &f["updatedAt"], event_ids(f)))
                .collect::<Vec<_>>(),
            std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default()
        );
    }
    assert_eq!(aws.depth(&dlq), 0);

    // And each finding once, in its last version: a file per finding, replaced by each batch
    // that adds to it.
    let last: std::collections::BTreeMap<String, usize> = versions_by_id(&found)
        .into_iter()
        .map(|(id, versions)| (id, versions.last().map_or(0, |v| v.len())))
        .collect();
    let in_lake = common::trailhound(&[
        "hunt",
        "--format",
        "csv",
        "--lake",
        lake.to_str().unwrap(),
        "SELECT id, cardinality(eventids) AS n FROM findings ORDER BY id",
    ]);
    assert!(
        in_lake.status.success(),
        "{}",
        common::text(&in_lake.stderr)
    );
    let in_lake: std::collections::BTreeMap<String, usize> = common::text(&in_lake.stdout)
        .lines()
        .skip(1)
        .map(|line| {
            let (id, n) = line.rsplit_once(',').unwrap();
            (id.to_string(), n.parse().unwrap())
        })
        .collect();
    assert!(!in_lake.is_empty());
    assert_eq!(in_lake, last);
}

#[test]
fn a_lake_in_s3_is_kept_by_the_daemon_and_replay_and_read_by_hunt() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = aws.queue("lake", 5);
    aws.bucket("trail");
    aws.bucket("lake");
    aws.notify("trail", &queue);
    let (files, _) = attack_files();
    upload_all(&aws, "trail", &files);
    let owned = moto.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = |args: &[&str]| common::trailhound_with(args, &env);
    let hunt = |args: &[&str]| -> String {
        let out = run(&[&["hunt", "--format", "csv"][..], args].concat());
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        common::text(&out.stdout)
    };
    let count = "SELECT count(*), count(DISTINCT eventid) FROM cloudtrail";
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let raw = hunt(
        &[
            &[count][..],
            &paths.iter().map(String::as_str).collect::<Vec<_>>()[..],
        ]
        .concat(),
    );

    // The daemon keeps every record, and every finding once, in S3.
    let port = free_port();
    let daemon = start_daemon(
        &moto,
        &queue,
        dir.path(),
        port,
        &["--lake", "s3://lake/daemon"],
    );
    let metrics = stop_when_drained(daemon, (&aws, &queue, dir.path(), port), files.len() as f64);
    assert!(metric(&metrics, "trailhound_lake_files_total") >= files.len() as f64);
    assert_eq!(hunt(&["--lake", "s3://lake/daemon", count]), raw);
    let ids: BTreeSet<String> = read_findings(dir.path())
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!ids.is_empty());
    assert_eq!(
        hunt(&[
            "--lake",
            "s3://lake/daemon",
            "SELECT count(*), count(DISTINCT id) FROM findings"
        ]),
        format!(
            "count(*),count(DISTINCT findings.id)\n{},{}\n",
            ids.len(),
            ids.len()
        )
    );

    // Replay keeps one too; twice over, nothing twice.
    for _ in 0..2 {
        let out = run(&[
            "replay",
            "--state",
            ":memory:",
            "-o",
            "/dev/null",
            "--lake",
            "s3://lake/replay/",
            "s3://trail",
        ]);
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        assert!(common::text(&out.stderr).contains("lake s3://lake/replay:"));
    }
    assert_eq!(hunt(&["--lake", "s3://lake/replay", count]), raw);
    let keys = |prefix: &str| -> Vec<String> {
        let listed = aws
            .runtime
            .block_on(
                aws.s3
                    .list_objects_v2()
                    .bucket("lake")
                    .prefix(prefix)
                    .send(),
            )
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect()
    };
    // Nothing in the bucket but the lake's own layout: no staging, no temporary names.
    let replayed = keys("replay/");
    assert!(replayed.len() >= 2, "{replayed:?}");
    for key in &replayed {
        let layout = key.starts_with("replay/cloudtrail/date=") && key.contains("/account=")
            || key.starts_with("replay/findings/date=");
        assert!(layout && key.ends_with(".parquet"), "{key}");
    }

    // An object that only claims to be Parquet is passed over and named.
    aws.put(
        "lake",
        "replay/cloudtrail/date=2026-10-06/account=111122223333/region=us-east-1/fake.parquet",
        b"PAR1 not really PAR1".to_vec(),
    );
    let out = run(&[
        "hunt",
        "--format",
        "csv",
        "--lake",
        "s3://lake/replay",
        count,
    ]);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert_eq!(common::text(&out.stdout), raw);
    assert!(
        common::text(&out.stderr).contains("fake.parquet"),
        "{}",
        common::text(&out.stderr)
    );

    // The daemon's lake, a file per log object, merged in S3: a record held twice (one
    // file put again under another name) is dropped, nothing else is, and the partitions
    // hold fewer files. Merging again changes nothing.
    let before = keys("daemon/cloudtrail/");
    let copied = before.first().unwrap().clone();
    let body = aws
        .runtime
        .block_on(async {
            let got = aws
                .s3
                .get_object()
                .bucket("lake")
                .key(&copied)
                .send()
                .await?;
            Ok::<_, Box<dyn std::error::Error>>(got.body.collect().await?.into_bytes().to_vec())
        })
        .unwrap();
    let (folder, _) = copied.rsplit_once('/').unwrap();
    aws.put("lake", &format!("{folder}/again.parquet"), body.clone());
    assert_ne!(hunt(&["--lake", "s3://lake/daemon", count]), raw);
    // Dates out of range are not touched.
    let out = run(&[
        "lake",
        "compact",
        "s3://lake/daemon",
        "--since",
        "2999-01-01",
    ]);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert!(common::text(&out.stderr).starts_with("merged 0 files"));
    assert_eq!(keys("daemon/cloudtrail/").len(), before.len() + 1);
    for _ in 0..2 {
        let out = run(&["lake", "compact", "s3://lake/daemon"]);
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        assert_eq!(hunt(&["--lake", "s3://lake/daemon", count]), raw);
    }
    // An object delivered again after the merge, to a daemon that has not seen it (another
    // state): decoded, and not written a second time.
    upload_all(&aws, "trail", &files[..1]);
    let port = free_port();
    let other = tempfile::tempdir().unwrap();
    let daemon = start_daemon(
        &moto,
        &queue,
        other.path(),
        port,
        &["--lake", "s3://lake/daemon"],
    );
    let metrics = stop_when_drained(daemon, (&aws, &queue, other.path(), port), 1.0);
    assert!(
        metric(&metrics, "trailhound_records_total") > 0.0,
        "{metrics}"
    );
    assert_eq!(hunt(&["--lake", "s3://lake/daemon", count]), raw);
    let after = keys("daemon/cloudtrail/");
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(after
        .iter()
        .any(|k| k.rsplit('/').next().unwrap().starts_with("c-")));
    assert!(
        !after.iter().any(|k| k.ends_with("/again.parquet")),
        "{after:?}"
    );
    // A partition with an object that is not Parquet is left as it was, and said so; the
    // others are merged.
    let replayed = keys("replay/cloudtrail/");
    let first = replayed
        .iter()
        .find(|k| !k.ends_with("/fake.parquet"))
        .unwrap();
    let (folder, _) = first.rsplit_once('/').unwrap();
    aws.put(
        "lake",
        &format!("{folder}/not-parquet.parquet"),
        b"PAR1 nor this PAR1".to_vec(),
    );
    let out = run(&[
        "lake",
        "compact",
        "s3://lake/replay",
        "--target-size",
        "1GiB",
    ]);
    let stderr = common::text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("not-parquet.parquet"), "{stderr}");
    assert!(keys(&format!("{folder}/")).contains(first), "{stderr}");
    assert_eq!(
        hunt(&["--lake", "s3://lake/replay", count]),
        raw,
        "{stderr}"
    );

    // `lake stats` counts an S3 lake from its files' footers: after the merge, as many rows
    // as the raw logs hold records. A foreign object is named.
    let records: u64 = raw
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = run(&["lake", "stats", "s3://lake/daemon"]);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let stats = common::text(&out.stdout);
    let cloudtrail: Vec<&str> = stats
        .lines()
        .find(|l| l.starts_with("cloudtrail "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(cloudtrail[3], records.to_string(), "{stats}");
    assert_eq!(cloudtrail[2], after.len().to_string(), "{stats}");
    // A small file back beside the merged file that holds it (as a merge that stopped
    // between its put and its deletes leaves it) is not read twice.
    aws.put("lake", &copied, body);
    assert_eq!(hunt(&["--lake", "s3://lake/daemon", count]), raw);
    let out = run(&["lake", "stats", "s3://lake/replay"]);
    assert!(!out.status.success());
    let stderr = common::text(&out.stderr);
    assert!(
        stderr.contains("fake.parquet") || stderr.contains("not-parquet.parquet"),
        "{stderr}"
    );
    assert!(stderr.contains("not a readable Parquet file"), "{stderr}");

    // The DDL of an S3 lake is located there.
    let out = run(&[
        "lake",
        "ddl",
        "s3://lake/replay",
        "--accounts",
        "111122223333",
    ]);
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert!(common::text(&out.stdout).contains("LOCATION 's3://lake/replay/cloudtrail/'"));

    // An empty prefix, and a bucket that is not there: clear errors, no panic.
    let out = run(&["hunt", "--lake", "s3://lake/nothing", count]);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out.stderr));
    assert!(common::text(&out.stderr).contains("nothing there"));
    let out = run(&[
        "replay",
        "--state",
        ":memory:",
        "-o",
        "/dev/null",
        "--lake",
        "s3://no-such-bucket/x",
        "s3://trail",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", common::text(&out.stderr));
    assert!(
        common::text(&out.stderr).contains("no-such-bucket"),
        "{}",
        common::text(&out.stderr)
    );
}

#[test]
fn a_failing_sink_keeps_the_messages_until_it_recovers() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, dlq) = aws.queue("sinkfail", 10);
    aws.bucket("trail");
    aws.notify("trail", &queue);
    let (files, attacks) = attack_files();
    upload_all(&aws, "trail", &files[..3]);

    // The findings bucket does not exist yet: every send fails.
    let port = free_port();
    let daemon = start_daemon(
        &moto,
        &queue,
        dir.path(),
        port,
        &["--sink", "s3://findings/trailhound", "--visibility", "3s"],
    );
    wait_until(dir.path(), Duration::from_secs(60), "a failed send", || {
        metric(
            &metrics_of(port),
            "trailhound_errors_total{kind=\"sink-failed\"}",
        ) >= 1.0
    });
    assert!(
        aws.depth(&queue) >= 1,
        "the messages stay while the sink is down"
    );
    assert!(
        metric(
            &metrics_of(port),
            "trailhound_messages_kept_total{reason=\"sink-failed\"}"
        ) >= 1.0
    );
    // The sink comes back: the kept messages are handed out again and go through.
    aws.bucket("findings");
    stop_when_drained(daemon, (&aws, &queue, dir.path(), port), 1.0);
    let listed = aws
        .runtime
        .block_on(
            aws.s3
                .list_objects_v2()
                .bucket("findings")
                .prefix("trailhound/year=")
                .send(),
        )
        .unwrap();
    let mut found = Vec::new();
    for object in listed.contents() {
        let body = aws
            .runtime
            .block_on(
                aws.s3
                    .get_object()
                    .bucket("findings")
                    .key(object.key().unwrap())
                    .send(),
            )
            .unwrap()
            .body;
        let bytes = aws.runtime.block_on(body.collect()).unwrap().into_bytes();
        for line in String::from_utf8(bytes.to_vec()).unwrap().lines() {
            found.push(serde_json::from_str::<Value>(line).unwrap());
        }
    }
    assert!(!found.is_empty(), "no findings reached the recovered sink");
    // The attacks with records in those three files.
    assert_attacks_found(dir.path(), &found, &attacks_in(&files[..3], attacks));
    assert_eq!(aws.depth(&dlq), 0);
}

fn get(port: u16, path: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn read_findings(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("findings.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_daemon_reads_every_envelope_and_loses_nothing() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, dlq) = aws.queue("notices", 3);
    aws.bucket("trail");
    aws.bucket("quiet");
    aws.notify("trail", &queue);

    let (files, attacks) = attack_files();
    assert!(files.len() >= 6, "{} attack files", files.len());
    // Before the attack files, a benign object under the first one's key in another bucket:
    // the same key in another bucket is another object, so the attack is still read.
    let twin = key_of(&files[0]);
    let benign = crate::hostile::write_object(
        dir.path(),
        "benignbenignbeni",
        &[r#"{"eventVersion":"1.08","eventTime":"2026-10-05T10:00:00Z","eventID":"benign-twin","eventName":"ListBuckets","eventSource":"s3.amazonaws.com"}"#.to_string()],
    );
    aws.put("quiet", &twin, std::fs::read(&benign).unwrap());
    // And the same in a bucket outside --allowed-buckets: refused.
    aws.bucket("attacker");
    aws.put("attacker", &twin, std::fs::read(&benign).unwrap());
    for bucket in ["quiet", "attacker"] {
        aws.send(
            &queue,
            &json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": twin, "size": 1}}}]})
            .to_string(),
        );
    }
    // Half arrive as S3's own notifications (one under a key with a space, + and =); the rest,
    // in a bucket without notifications, are announced by SNS, EventBridge and CloudTrail
    // messages.
    let half = files.len() / 2;
    for (i, path) in files[..half].iter().enumerate() {
        let mut key = key_of(path);
        if i == 0 {
            key = key.replace(".json.gz", " odd+name=1.json.gz");
        }
        aws.put("trail", &key, std::fs::read(path).unwrap());
    }
    // An attacker's object among them: records shaped to crash the reader, and a genuine
    // StopLogging among them.
    let hostile = crate::hostile::write_object(
        dir.path(),
        "hostilehostileho",
        &crate::hostile::hostile_records(),
    );
    aws.put("trail", &key_of(&hostile), std::fs::read(&hostile).unwrap());
    let quiet: Vec<String> = files[half..].iter().map(|p| key_of(p)).collect();
    for (path, key) in files[half..].iter().zip(&quiet) {
        aws.put("quiet", key, std::fs::read(path).unwrap());
    }
    let s3_notice = |key: &str| {
        json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "quiet"}, "object": {"key": key.replace(' ', "+"), "size": 1}}}]})
        .to_string()
    };
    let sns = json!({"Type": "Notification", "MessageId": "m1", "Message": s3_notice(&quiet[0])})
        .to_string();
    aws.send(&queue, &sns);
    aws.send(&queue, &sns); // a duplicate notification
    aws.send(
        &queue,
        &json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": "quiet"}, "object": {"key": quiet[1], "size": 1}}})
        .to_string(),
    );
    aws.send(
        &queue,
        &json!({"s3Bucket": "quiet", "s3ObjectKey": quiet[2..].to_vec()}).to_string(),
    );
    aws.send(&queue, "CloudTrail validation message.");
    aws.send(&queue, "this is not a notification"); // poison: logged and deleted
    aws.send(
        &queue,
        &s3_notice("AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/gone.json.gz"),
    );

    let port = free_port();
    let mut daemon = start_daemon(
        &moto,
        &queue,
        dir.path(),
        port,
        &["--allowed-buckets", "trail,quiet/AWSLogs/"],
    );
    let started = Instant::now();
    let log = || std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    // Done when the queue is empty and every attack file was read (and the hostile object
    // and the benign twin).
    loop {
        if let Ok(Some(status)) = daemon.try_wait() {
            panic!("the daemon exited ({status}):\n{}", log());
        }
        let read = metric(
            &metrics_of(port),
            "trailhound_objects_total{kind=\"cloudtrail log\",outcome=\"read\"}",
        );
        if read as usize >= files.len() + 2 && aws.depth(&queue) == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "not done in 3 minutes; read {read} of {}:\n{}",
            files.len(),
            log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Hundreds of idle connections (more than it serves at once) do not starve the health
    // check: idle clients are closed after a short while.
    let idle: Vec<_> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(idle.len() >= 200, "only {} connections opened", idle.len());
    let asked = Instant::now();
    let health = get(port, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let check = common::trailhound(&["healthcheck", &format!("127.0.0.1:{port}")]);
    assert!(check.status.success(), "{}", common::text(&check.stderr));
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "the health check waited {:?} behind idle connections",
        asked.elapsed()
    );
    drop(idle);
    let metrics = get(port, "/metrics");

    // SIGTERM: drains and exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let until = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < until,
            "no exit 20 s after SIGTERM:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit {status}:\n{}", log());
    // Nobody listens now: the health check says so and fails.
    let check = common::trailhound(&["healthcheck", &format!("127.0.0.1:{port}")]);
    assert_eq!(
        check.status.code(),
        Some(1),
        "{}",
        common::text(&check.stderr)
    );

    // Every attack in the files was found. A finding is written again only as an update
    // that adds records (its group and window spanned two batches), never as a duplicate.
    let found = read_findings(dir.path());
    for (id, versions) in &versions_by_id(&found) {
        let sizes: Vec<usize> = versions.iter().map(BTreeSet::len).collect();
        assert!(
            sizes.windows(2).all(|w| w[1] > w[0]),
            "finding {id} written again without new records: {sizes:?}"
        );
    }
    assert_attacks_found(dir.path(), &found, &attacks);
    assert!(
        found
            .iter()
            .any(|f| common::detection(f) == "cloudtrail-logging-stopped"
                && f.to_string().contains("hostile-stop-logging")),
        "the StopLogging among hostile records was not found:\n{}",
        log()
    );
    assert!(
        metric(&metrics, "trailhound_errors_total{kind=\"duplicate-key\"}") >= 2.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "trailhound_errors_total{kind=\"bucket-not-allowed\"}"
        ),
        1.0,
        "{metrics}"
    );
    // What could never be processed was said, counted and deleted; nothing reached the DLQ.
    assert_eq!(
        metric(
            &metrics,
            "trailhound_errors_total{kind=\"unparseable-message\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "trailhound_errors_total{kind=\"object-gone\"}"),
        1.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "trailhound_objects_total{kind=\"cloudtrail log\",outcome=\"duplicate\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "trailhound_messages_ignored_total{kind=\"cloudtrail validation message\"}"
        ) == 1.0,
        "{metrics}"
    );
    let text = log();
    assert!(text.contains("this is not a notification"), "{text}");
    assert!(text.contains("gone.json.gz"), "{text}");
    assert_eq!(aws.depth(&queue), 0);
    assert_eq!(aws.depth(&dlq), 0);
}

/// Receives every message waiting on `queue` (a few long polls).
fn drain_queue(aws: &Aws, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..5 {
        let got = aws
            .runtime
            .block_on(
                aws.sqs
                    .receive_message()
                    .queue_url(queue)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send(),
            )
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            out.push(m.body.unwrap_or_default());
            aws.runtime
                .block_on(
                    aws.sqs
                        .delete_message()
                        .queue_url(queue)
                        .receipt_handle(m.receipt_handle.unwrap())
                        .send(),
                )
                .unwrap();
        }
    }
    out
}

/// A `StopLogging` whose caller chose long names and a user agent carrying U+FFFF: its
/// finding is larger than the findings queue takes.
fn oversized_stop_logging() -> Vec<u8> {
    let long = "m".repeat(1000);
    let record = json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": format!("AIDA{long}"),
            "arn": format!("arn:aws:iam::111122223333:user/{long}"), "accountId": "111122223333",
            "accessKeyId": "AKIAOVERSIZED0000001", "userName": long},
        "eventTime": "2026-10-05T10:00:00Z", "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9",
        "userAgent": format!("\u{ffff}{}", "u".repeat(1000)), "eventID": "oversized-stop-logging",
        "eventType": "AwsApiCall", "recipientAccountId": "111122223333",
        "requestParameters": {"name": format!("trail-{}", "n".repeat(1000))},
    });
    gzip(json!({ "Records": [record] }).to_string().as_bytes())
}

/// One finding SQS refuses (larger than the findings queue's message limit) is logged and
/// counted; the other findings of its batch go out and every message is deleted.
#[test]
fn a_finding_a_sink_refuses_does_not_hold_back_the_others() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, dlq) = aws.queue("refusing", 3);
    aws.bucket("trail");
    aws.notify("trail", &queue);
    // The sample's findings are under 4,000 bytes; the oversized one is over 5,000.
    let findings_queue = aws
        .runtime
        .block_on(
            aws.sqs
                .create_queue()
                .queue_name("findings")
                .attributes(QueueAttributeName::MaximumMessageSize, "5000")
                .send(),
        )
        .unwrap()
        .queue_url
        .unwrap();
    let (files, attacks) = attack_files();
    let files = &files[..3];
    aws.put(
        "trail",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T1000Z_oversized.json.gz",
        oversized_stop_logging(),
    );
    upload_all(&aws, "trail", files);

    let port = free_port();
    let sqs_sink = format!("sqs:{findings_queue}");
    let daemon = start_daemon(&moto, &queue, dir.path(), port, &["--sink", &sqs_sink]);
    let metrics = stop_when_drained(daemon, (&aws, &queue, dir.path(), port), 4.0);

    assert_eq!(aws.depth(&dlq), 0);
    assert_eq!(
        metric(
            &metrics,
            &format!("trailhound_findings_refused_total{{sink=\"{sqs_sink}\"}}")
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "trailhound_errors_total{kind=\"finding-refused\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "trailhound_errors_total{kind=\"sink-failed\"}"),
        0.0
    );
    // Every other finding is on the findings queue, the attacks of the three files among them.
    let found: Vec<Value> = drain_queue(&aws, &findings_queue)
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_attacks_found(dir.path(), &found, &attacks_in(files, attacks));
    assert!(!found
        .iter()
        .any(|f| event_ids(f).contains("oversized-stop-logging")));
    // The refused finding is in the log, whole, with SQS's reason.
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("refused a finding"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"));
    assert!(line.contains("oversized-stop-logging"), "{line}");
    assert!(line.contains("cloudtrail-logging-stopped"), "{line}");
    assert!(line.contains("InvalidParameterValue"), "{line}");
}

#[test]
fn sns_eventbridge_and_security_hub_sinks_take_every_finding() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, _) = aws.queue("notices", 5);
    aws.bucket("trail");
    aws.notify("trail", &queue);
    // SNS delivers to one queue; an EventBridge rule for trailhound's events to another.
    let config = sdk_config(&aws.runtime, &moto);
    let sns = aws_sdk_sns::Client::new(&config);
    let events = aws_sdk_eventbridge::Client::new(&config);
    let hub = aws_sdk_securityhub::Client::new(&config);
    let (from_sns, _) = aws.queue("from-sns", 5);
    let (from_events, _) = aws.queue("from-events", 5);
    let topic = aws
        .runtime
        .block_on(sns.create_topic().name("findings").send())
        .unwrap()
        .topic_arn
        .unwrap();
    aws.runtime
        .block_on(
            sns.subscribe()
                .topic_arn(&topic)
                .protocol("sqs")
                .endpoint(aws.attribute(&from_sns, QueueAttributeName::QueueArn))
                .attributes("RawMessageDelivery", "true")
                .send(),
        )
        .unwrap();
    aws.runtime
        .block_on(
            events
                .put_rule()
                .name("trailhound-findings")
                .event_pattern(
                    json!({"source": ["trailhound"], "detail-type": ["trailhound Finding"]})
                        .to_string(),
                )
                .send(),
        )
        .unwrap();
    aws.runtime
        .block_on(
            events
                .put_targets()
                .rule("trailhound-findings")
                .targets(
                    aws_sdk_eventbridge::types::Target::builder()
                        .id("q")
                        .arn(aws.attribute(&from_events, QueueAttributeName::QueueArn))
                        .build()
                        .unwrap(),
                )
                .send(),
        )
        .unwrap();

    let (files, _) = attack_files();
    upload_all(&aws, "trail", &files[..4]);
    let port = free_port();
    let sns_sink = format!("sns:{topic}");
    let file_sink = format!("file:{}", dir.path().join("findings.jsonl").display());
    let daemon = start_daemon(
        &moto,
        &queue,
        dir.path(),
        port,
        &[
            "--sink",
            &file_sink,
            "--sink",
            &sns_sink,
            "--sink",
            "eventbridge:default",
            "--sink",
            "securityhub",
        ],
    );
    stop_when_drained(daemon, (&aws, &queue, dir.path(), port), 4.0);

    let written: BTreeSet<String> = read_findings(dir.path())
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!written.is_empty());
    let ids_in = |bodies: Vec<String>, detail: bool| -> BTreeSet<String> {
        bodies
            .iter()
            .map(|b| {
                let v: Value = serde_json::from_str(b).unwrap();
                if detail {
                    assert_eq!(v["source"], "trailhound");
                    assert_eq!(v["detail-type"], "trailhound Finding");
                    v["detail"]["id"].as_str().unwrap().to_string()
                } else {
                    v["id"].as_str().unwrap().to_string()
                }
            })
            .collect()
    };
    assert_eq!(ids_in(drain_queue(&aws, &from_sns), false), written);
    assert_eq!(ids_in(drain_queue(&aws, &from_events), true), written);
    let imported: BTreeSet<String> = aws
        .runtime
        .block_on(hub.get_findings().max_results(100).send())
        .unwrap()
        .findings()
        .iter()
        .filter_map(|f| f.id.clone())
        .collect();
    assert_eq!(imported, written);
}

#[test]
fn replay_and_hunt_read_an_organisation_trail_in_s3() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    aws.bucket("trail");
    // The sample as an organisation trail under a prefix: org/AWSLogs/o-abc123/ACCOUNT/...
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
    let mut stack = vec![root.join("AWSLogs")];
    let mut uploaded = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let key = key_of(&path).replacen("AWSLogs/", "org/AWSLogs/o-abc123/", 1);
            aws.put("trail", &key, std::fs::read(&path).unwrap());
            uploaded += 1;
        }
    }
    assert!(uploaded > 100);
    let owned = moto.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ids = |out: &std::process::Output| -> BTreeSet<String> {
        common::findings(out)
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    let window = ["--since", "2026-10-05", "--until", "2026-10-07"];
    let local =
        common::trailhound(&[&["replay", root.to_str().unwrap()][..], &window[..]].concat());
    let remote = common::trailhound_with(
        &[&["replay", "s3://trail/org"][..], &window[..]].concat(),
        &env,
    );
    let local_ids = ids(&local);
    assert!(!local_ids.is_empty());
    assert_eq!(ids(&remote), local_ids, "{}", common::text(&remote.stderr));
    // One account only: fewer records read.
    let one = common::trailhound_with(
        &[
            &["replay", "s3://trail/org", "--accounts", "242016487318"][..],
            &window[..],
        ]
        .concat(),
        &env,
    );
    assert!(one.status.success(), "{}", common::text(&one.stderr));
    let examined = |out: &std::process::Output| -> u64 {
        let text = common::text(&out.stderr);
        let line = text
            .lines()
            .find(|l| l.starts_with("examined "))
            .unwrap()
            .to_string();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert!(
        examined(&one) < examined(&remote),
        "{}",
        common::text(&one.stderr)
    );
    // hunt reads the same objects.
    let sql = "SELECT count(*) AS n FROM cloudtrail";
    let count = |out: std::process::Output| -> String {
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        common::text(&out.stdout)
    };
    let here = count(common::trailhound(&[
        "hunt",
        "--format",
        "json",
        sql,
        root.to_str().unwrap(),
    ]));
    let there = count(common::trailhound_with(
        &["hunt", "--format", "json", sql, "s3://trail/org"],
        &env,
    ));
    assert_eq!(here, there);
}

#[test]
fn a_replay_enqueued_is_shared_through_the_queue() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, dlq) = aws.queue("replay", 5);
    aws.bucket("archive"); // no notifications: the replay announces its objects
    let (files, attacks) = attack_files();
    // One under a key that needs encoding in a notification.
    for (i, path) in files.iter().enumerate() {
        let mut key = key_of(path);
        if i == 0 {
            key = key.replace(".json.gz", " a+b=c.json.gz");
        }
        aws.put("archive", &key, std::fs::read(path).unwrap());
    }
    let owned = moto.env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = common::trailhound_with(
        &[
            "replay",
            "s3://archive",
            "--since",
            "2026-10-05",
            "--until",
            "2026-10-07",
            "--enqueue",
            &queue,
        ],
        &env,
    );
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    assert!(
        common::text(&out.stderr).contains(&format!("enqueued {} objects", files.len())),
        "{}",
        common::text(&out.stderr)
    );
    let port = free_port();
    let mut daemon = start_daemon(&moto, &queue, dir.path(), port, &[]);
    wait_until(
        dir.path(),
        Duration::from_secs(120),
        "the replay read",
        || {
            metric(
                &metrics_of(port),
                "trailhound_objects_total{kind=\"cloudtrail log\",outcome=\"read\"}",
            ) as usize
                >= files.len()
                && aws.depth(&queue) == 0
        },
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert_attacks_found(dir.path(), &read_findings(dir.path()), &attacks);
    assert_eq!(aws.depth(&dlq), 0);
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

/// A Bedrock model invocation log: `blocked` prompts a guardrail stopped, one a minute.
fn bedrock_log(blocked: usize) -> Vec<u8> {
    let mut body = String::new();
    for i in 0..blocked {
        body.push_str(
            &json!({
                "schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
                "timestamp": format!("2026-10-05T10:{i:02}:00Z"), "accountId": "111122223333",
                "identity": {"arn": "arn:aws:sts::111122223333:assumed-role/ChatApp/i-0abc"},
                "region": "us-east-1", "requestId": format!("bedrock-req-{i}"), "operation": "Converse",
                "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
                "input": {"inputContentType": "application/json", "inputTokenCount": 80},
                "output": {"outputContentType": "application/json",
                           "outputBodyJson": {"stopReason": "guardrail_intervened"}, "outputTokenCount": 6}
            })
            .to_string(),
        );
        body.push('\n');
    }
    gzip(body.as_bytes())
}

/// Puts an archived (Glacier) object, which GetObject refuses with a 403 every time.
fn put_archived(aws: &Aws, key: &str) {
    aws.runtime
        .block_on(
            aws.s3
                .put_object()
                .bucket("trail")
                .key(key)
                .storage_class(aws_sdk_s3::types::StorageClass::Glacier)
                .body(ByteStream::from(gzip(b"{\"Records\":[]}")))
                .send(),
        )
        .unwrap();
}

#[test]
fn bedrock_logs_become_findings_and_an_unreadable_object_reaches_the_dlq() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, dlq) = aws.queue("poison", 2);
    aws.bucket("trail");
    aws.notify("trail", &queue);
    aws.put(
        "trail",
        "AWSLogs/111122223333/BedrockModelInvocationLogs/us-east-1/2026/10/05/10/20261005T1000Z_a1.json.gz",
        bedrock_log(6),
    );
    // An archived log: GetObject refuses it (403, InvalidObjectState) every time it is tried,
    // so its message is handed back until the queue's redrive moves it to the DLQ.
    let archived = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T1000Z_archived.json.gz";
    put_archived(&aws, archived);

    let port = free_port();
    let mut daemon = start_daemon(&moto, &queue, dir.path(), port, &["--retry-after", "1s"]);
    wait_until(
        dir.path(),
        Duration::from_secs(120),
        "the archived object's message in the DLQ and the queue empty",
        || aws.depth(&dlq) == 1 && aws.depth(&queue) == 0,
    );
    let metrics = metrics_of(port);
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    let found = read_findings(dir.path());
    let blocked: Vec<&Value> = found
        .iter()
        .filter(|f| {
            f["service"]["additionalInfo"]["detection"] == "bedrock-guardrail-interventions-burst"
        })
        .collect();
    assert_eq!(blocked.len(), 1, "{found:#?}");
    let f = blocked[0];
    assert_eq!(f["service"]["count"], 6);
    assert_eq!(
        f["service"]["additionalInfo"]["principalArn"],
        "arn:aws:sts::111122223333:assumed-role/ChatApp/i-0abc"
    );
    assert_eq!(
        f["resource"]["accessKeyDetails"]["userName"], "ChatApp",
        "{f:#}"
    );
    assert_eq!(
        metric(
            &metrics,
            "trailhound_objects_total{kind=\"bedrock invocation log\",outcome=\"read\"}"
        ),
        1.0,
        "{metrics}"
    );
    // Tried twice (maxReceiveCount 2), kept both times, then moved by SQS.
    assert!(
        metric(&metrics, "trailhound_errors_total{kind=\"access-denied\"}") >= 2.0,
        "{metrics}"
    );
    let dead = drain_queue(&aws, &dlq);
    assert_eq!(dead.len(), 1);
    assert!(dead[0].contains("_archived.json.gz"), "{}", dead[0]);
}

/// Where the role cannot list the bucket, S3 answers 403 for a key that is gone: with
/// `--cannot-list` such a message is deleted at once rather than retried into the DLQ (moto
/// answers 403 for an archived object, which stands in for it here).
#[test]
fn with_cannot_list_a_403_is_taken_as_gone() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, dlq) = aws.queue("cannot-list", 2);
    aws.bucket("trail");
    aws.notify("trail", &queue);
    let archived = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T1000Z_forbidden.json.gz";
    put_archived(&aws, archived);
    let port = free_port();
    let mut daemon = start_daemon(
        &moto,
        &queue,
        dir.path(),
        port,
        &["--retry-after", "1s", "--cannot-list"],
    );
    wait_until(
        dir.path(),
        Duration::from_secs(60),
        "the message deleted",
        || {
            aws.depth(&queue) == 0
                && metric(
                    &metrics_of(port),
                    "trailhound_objects_total{kind=\"cloudtrail log\",outcome=\"access-denied\"}",
                ) == 1.0
        },
    );
    let metrics = metrics_of(port);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert_eq!(aws.depth(&dlq), 0, "{metrics}");
    // Tried once, not again.
    assert_eq!(
        metric(&metrics, "trailhound_errors_total{kind=\"access-denied\"}"),
        1.0,
        "{metrics}"
    );
}

#[test]
fn a_large_object_is_kept_hidden_by_the_heartbeat_while_in_work() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, dlq) = aws.queue("large", 5);
    aws.bucket("trail");
    aws.notify("trail", &queue);
    // One log object of 450,000 records (about 260 MB of JSON): examining it takes longer
    // than the 1 s visibility the daemon asks for, so without the heartbeat the second
    // poller would be handed the same message while the first is still in work.
    const RECORDS: usize = 450_000;
    let mut body = String::with_capacity(RECORDS * 600);
    body.push_str("{\"Records\":[");
    for i in 0..RECORDS {
        if i > 0 {
            body.push(',');
        }
        let (minute, second) = (i / 6000 % 60, i / 100 % 60);
        body.push_str(&format!(
            concat!(
                "{{\"eventVersion\":\"1.09\",\"userIdentity\":{{\"type\":\"AssumedRole\",",
                "\"principalId\":\"AROAEXAMPLE:w{w}\",\"arn\":\"arn:aws:sts::111122223333:assumed-role/Worker/w{w}\",",
                "\"accountId\":\"111122223333\",\"accessKeyId\":\"ASIAEXAMPLE{w:05}\",\"sessionContext\":{{\"sessionIssuer\":",
                "{{\"type\":\"Role\",\"arn\":\"arn:aws:iam::111122223333:role/Worker\",\"userName\":\"Worker\"}}}}}},",
                "\"eventTime\":\"2026-10-05T11:{m:02}:{s:02}Z\",\"eventSource\":\"s3.amazonaws.com\",\"eventName\":\"GetObject\",",
                "\"awsRegion\":\"us-east-1\",\"sourceIPAddress\":\"10.0.{a}.{b}\",\"userAgent\":\"aws-sdk-java/2.20\",",
                "\"requestParameters\":{{\"bucketName\":\"data\",\"key\":\"part-{i}.parquet\"}},\"responseElements\":null,",
                "\"eventID\":\"00000000-0000-4000-8000-{i:012}\",\"readOnly\":true,\"eventType\":\"AwsApiCall\",",
                "\"managementEvent\":false,\"recipientAccountId\":\"111122223333\"}}"
            ),
            w = i % 50,
            m = minute,
            s = second,
            a = i % 200,
            b = i % 250,
            i = i
        ));
    }
    body.push_str("]}");
    aws.put(
        "trail",
        "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T1100Z_large.json.gz",
        gzip(body.as_bytes()),
    );
    drop(body);

    let port = free_port();
    let mut daemon = start_daemon(
        &moto,
        &queue,
        dir.path(),
        port,
        &["--visibility", "1s", "--pollers", "2"],
    );
    wait_until(
        dir.path(),
        Duration::from_secs(180),
        "the large object examined and its message deleted",
        // S3's test event and the object's notification.
        || metric(&metrics_of(port), "trailhound_messages_deleted_total") >= 2.0,
    );
    // Long enough for a redelivery to show, had the message been let go.
    std::thread::sleep(Duration::from_secs(2));
    let metrics = metrics_of(port);
    daemon.kill().unwrap();
    daemon.wait().unwrap();

    let took = metric(&metrics, "trailhound_batch_seconds_total");
    eprintln!(
        "examined in {took:.2}s, visibility renewed {} times",
        metric(&metrics, "trailhound_visibility_extended_total")
    );
    assert!(
        took > 1.0,
        "the object was examined in {took:.2}s, within the visibility: it did not need the heartbeat"
    );
    assert_eq!(
        metric(&metrics, "trailhound_records_total"),
        RECORDS as f64,
        "{metrics}"
    );
    // The object's notification, and S3's test event from setting up notifications.
    assert_eq!(
        metric(&metrics, "trailhound_messages_received_total"),
        2.0,
        "the message was handed out again while in work:\n{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "trailhound_messages_ignored_total{kind=\"s3 test event\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "trailhound_objects_total{kind=\"cloudtrail log\",outcome=\"read\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "trailhound_visibility_extended_total") >= 1.0,
        "{metrics}"
    );
    assert_eq!(aws.depth(&queue), 0);
    assert_eq!(aws.depth(&dlq), 0);
}

/// Every log file under `dir`, in the order CloudTrail delivers them: by the time in the file
/// name (`<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<id>.json.gz`), then the key.
fn in_delivery_order(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort_by_cached_key(|p| {
        let key = key_of(p);
        let name = key.rsplit('/').next().unwrap_or_default().to_string();
        let time = name.split('_').nth(3).unwrap_or_default().to_string();
        (time, key)
    });
    files
}

/// Each finding id with the eventIDs of its last version.
fn last_versions(found: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    versions_by_id(found)
        .into_iter()
        .map(|(id, mut versions)| (id, versions.pop().unwrap_or_default()))
        .collect()
}

/// Batches of a few messages, a kill -9 a third of the way through and a restart: the last
/// version of every finding the daemon sent holds exactly the records replay's finding holds
/// over the same logs (same ids, same eventIDs), statistical findings included (they learn
/// for 0s here, so they report from the first record).
#[test]
fn the_daemon_finds_what_replay_finds_whatever_the_batching() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let dir = tempfile::tempdir().unwrap();
    let (queue, dlq) = aws.queue("same", 5);
    aws.bucket("trail");
    aws.notify("trail", &queue);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
    let files = in_delivery_order(&sample.join("AWSLogs"));
    assert!(files.len() > 1000, "{} files", files.len());
    upload_all(&aws, "trail", &files);

    let extra = [
        "--visibility",
        "3s",
        "--batch-messages",
        "16",
        "--pollers",
        "1",
        "--learning",
        "0s",
    ];
    let third = (files.len() / 3) as f64;
    kill_then_finish(
        (&moto, &aws, &queue, dir.path()),
        &extra,
        (
            "a third of the messages done",
            "trailhound_messages_deleted_total",
            third,
        ),
        Duration::from_secs(300),
    );
    assert_eq!(aws.depth(&dlq), 0);

    let daemon = last_versions(&read_findings(dir.path()));
    let out = common::trailhound(&["replay", sample.to_str().unwrap(), "--learning", "0s"]);
    let replayed = common::findings(&out);
    let kinds = common::detection_kinds();
    let statistical = common::statistical_set(&replayed, &kinds);
    assert!(!statistical.is_empty(), "no statistical finding to compare");
    let replay = last_versions(&replayed);
    let only_daemon: Vec<&String> = daemon.keys().filter(|k| !replay.contains_key(*k)).collect();
    let only_replay: Vec<&String> = replay.keys().filter(|k| !daemon.contains_key(*k)).collect();
    assert!(
        only_daemon.is_empty() && only_replay.is_empty(),
        "ids differ: {} only from the daemon, {} only from replay",
        only_daemon.len(),
        only_replay.len()
    );
    let found = read_findings(dir.path());
    let detection_of = |id: &str| {
        found
            .iter()
            .find(|f| f["id"] == id)
            .map_or("?", common::detection)
            .to_string()
    };
    let differ: Vec<String> = replay
        .iter()
        .filter(|(id, events)| &daemon[*id] != *events)
        .map(|(id, events)| {
            let d = &daemon[id];
            format!(
                "{id} ({}): daemon {} records, replay {}, {} only in the daemon's, {} only in replay's",
                detection_of(id),
                d.len(),
                events.len(),
                d.difference(events).count(),
                events.difference(d).count()
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {} findings hold other records in the daemon's last version than in replay's:\n{}",
        differ.len(),
        replay.len(),
        differ.join("\n")
    );
}
