//! `trailhound replay SOURCE...`: every detection over historical logs, findings out.
//!
//! Objects are read in order of delivery time (from the key), a chunk at a time so memory
//! stays bounded whatever the size of the history; each chunk's records are put through every
//! planned detection, and the matches of all chunks are aggregated into findings at the end,
//! in event-time order, so a finding does not depend on where chunk boundaries fall.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::record_batch::RecordBatch;
use indicatif::{ProgressBar, ProgressStyle};

use super::rules::PackArgs;
use super::ReadArgs;
use crate::decode::DecodeOptions;
use crate::detect::state::{self, State, Store};
use crate::detect::stats::{Stats, StatsOptions};
use crate::detect::{aggregate, Match, Severity};
use crate::finding::{iso_time, Finding, FindingFormat};
use crate::read::{read_all_by_source, read_invocations, ReadReport};
use crate::source::{self, ObjectRef};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Files, directories (walked) or glob patterns of CloudTrail logs, or s3://BUCKET/PREFIX (a
    /// trail's bucket and prefix: with --since, each account's and region's day folders from
    /// --since to --until are listed whole; without, everything under the prefix).
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<String>,

    /// Write findings to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Finding format: GuardDuty JSON, Security Hub ASFF or OCSF Detection Finding.
    #[arg(long, value_enum, default_value_t = FindingFormat::Guardduty)]
    pub format: FindingFormat,

    /// Only events at or after this time: 2026-10-05, 2026-10-05T08:00:00Z, or an age such as
    /// 7d or 12h (before now).
    #[arg(long, value_parser = parse_time_arg, value_name = "TIME")]
    pub since: Option<i64>,

    /// Only events before this time (same forms as --since).
    #[arg(long, value_parser = parse_time_arg, value_name = "TIME")]
    pub until: Option<i64>,

    /// Leave out findings below this severity: a number 1-10, or low, medium, high, critical.
    #[arg(long, value_parser = Severity::parse, default_value = "low", value_name = "SEVERITY")]
    pub min_severity: Severity,

    /// Where statistical detections keep what they learn (baselines, first sightings) between
    /// runs: a file, created if needed; dynamodb://TABLE, shared by a fleet (each statistical
    /// finding is emitted by one process only; AWS_ENDPOINT_URL is honoured); or :memory: to
    /// keep nothing [default: state.redb in trailhound's data directory]. Replaying a month
    /// in one run or in daily runs with one state gives the same findings; records the state
    /// already learned from are not learned again, and their statistical findings are
    /// reported as they were.
    #[arg(long, value_name = "PATH", env = "TRAILHOUND_STATE")]
    pub state: Option<PathBuf>,

    /// History an account needs before statistical detections report on it (until then they
    /// only learn), such as 7d or 0s.
    #[arg(long, default_value = "7d", value_parser = parse_learning, value_name = "DURATION")]
    pub learning: std::time::Duration,

    /// Score the findings against a labels file (as `simulate` writes): which labelled attacks
    /// were found, and how many findings fell on unlabelled (benign) events.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Stored bytes of log objects read and examined together; larger chunks use more memory
    /// (8 MiB of gzip is about 70 MB of JSON, and peaks near 0.7 GB resident).
    #[arg(long, default_value = DEFAULT_CHUNK, value_parser = super::parse_size, value_name = "SIZE")]
    pub chunk_size: usize,

    /// With an s3:// source and --since: only these accounts' folders (comma separated).
    #[arg(long, value_delimiter = ',', value_name = "ACCOUNT,...")]
    pub accounts: Vec<String>,

    /// With an s3:// source and --since: only these regions' folders (comma separated).
    #[arg(long, value_delimiter = ',', value_name = "REGION,...")]
    pub regions: Vec<String>,

    /// Instead of examining the objects, send each (S3 sources only) as an S3 notification to
    /// this SQS queue, so the daemons reading it (`trailhound run`) share a large replay.
    #[arg(long, value_name = "QUEUE_URL")]
    pub enqueue: Option<String>,

    /// Exit with status 3 when any object or record could not be read (it is always reported).
    #[arg(long)]
    pub strict: bool,

    #[command(flatten)]
    pub pack: PackArgs,

    #[command(flatten)]
    pub read: ReadArgs,
}

/// Parses `2026-10-05`, an RFC 3339 time, or an age (`7d`, `12h`, `30m`) before now, into
/// microseconds since the epoch.
pub fn parse_time_arg(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if let Some(micros) = crate::decode::time::parse_event_time(t) {
        return Ok(micros);
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_micros());
    }
    if let Ok(age) = crate::detect::rule::parse_duration(t) {
        return Ok(chrono::Utc::now().timestamp_micros() - age.as_micros() as i64);
    }
    Err(format!(
        "{text:?} is not a time: use 2026-10-05, 2026-10-05T08:00:00Z, or an age such as 7d or 12h"
    ))
}

/// A learning period: a duration, or 0.
fn parse_learning(text: &str) -> Result<std::time::Duration, String> {
    if text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        == "0"
    {
        return Ok(std::time::Duration::ZERO);
    }
    crate::detect::rule::parse_duration(text)
}

/// Keeps the rows of `batch` whose event time is in [since, until).
fn in_range(batch: RecordBatch, since: Option<i64>, until: Option<i64>) -> Option<RecordBatch> {
    if since.is_none() && until.is_none() {
        return Some(batch);
    }
    let times = batch
        .column_by_name("eventtime")?
        .as_primitive::<TimestampMicrosecondType>();
    let keep: BooleanArray = times
        .iter()
        .map(|t| {
            Some(t.is_some_and(|t| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u)))
        })
        .collect();
    let out = filter_record_batch(&batch, &keep).ok()?;
    (out.num_rows() > 0).then_some(out)
}

/// The default `--chunk-size`.
pub const DEFAULT_CHUNK: &str = "8MiB";

/// Objects in delivery order, split into chunks of at most `chunk_bytes` stored bytes.
pub fn chunks(mut objects: Vec<ObjectRef>, chunk_bytes: usize) -> Vec<Vec<ObjectRef>> {
    objects.sort_by_cached_key(|o| {
        let key = o.key();
        (source::key::delivery_time(&key).unwrap_or(i64::MIN), key)
    });
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut size = 0u64;
    for o in objects {
        if !current.is_empty() && size + o.size > chunk_bytes as u64 {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += o.size;
        current.push(o);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

pub fn run(args: ReplayArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let threads = args.read.threads();
    if let (Some(s), Some(u)) = (args.since, args.until) {
        if s >= u {
            bail!(
                "--since ({}) is not before --until ({})",
                iso_time(s),
                iso_time(u)
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    // The detections are planned while the first chunk is read.
    let mut pending = Some(args.pack.start_engine(&runtime, threads)?);
    let mut engine = None;
    let rules: Vec<_> = pending.as_ref().map_or(Vec::new(), |p| p.rules.clone());
    let mut stats = Stats::new(
        &rules,
        State::default(),
        &StatsOptions {
            learning: args.learning,
        },
    );
    let mut store = if stats.is_active() {
        let path = args.state.clone().unwrap_or_else(state::default_path);
        let store = Store::open(&path)?;
        stats.state = store.load()?;
        tracing::info!(
            "statistical detections learn in {} ({} entries)",
            store.describe(),
            stats.state.sizes().iter().map(|(_, n)| n).sum::<usize>()
        );
        Some(store)
    } else {
        None
    };
    let days = args.since.map(|since| source::s3::DayFilter {
        since,
        until: args
            .until
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros()),
        accounts: args.accounts.clone(),
        regions: args.regions.clone(),
    });
    let mut listing = source::list_with(&args.sources, days.as_ref())?;
    // Waiting on S3 takes more readers than cores.
    let read_threads = if source::any_remote(&args.sources) {
        threads.max(16)
    } else {
        threads
    };
    // A file delivered before --since holds only earlier events.
    let mut early = 0usize;
    if let Some(since) = args.since {
        listing.objects.retain(|o| {
            let keep = source::key::delivery_time(&o.key()).is_none_or(|d| d >= since);
            early += usize::from(!keep);
            keep
        });
    }
    if listing.objects.is_empty() && listing.invocations.is_empty() {
        bail!(
            "no CloudTrail logs to replay in {} ({listing}{})",
            args.sources.join(" "),
            if early > 0 {
                format!(", {early} delivered before --since")
            } else {
                String::new()
            }
        );
    }
    if let Some(queue) = &args.enqueue {
        return enqueue(&runtime, queue, &listing);
    }
    tracing::info!("replaying {listing} through {} detections", rules.len());
    let mut report = ReadReport::for_listing(&listing);
    let invocation_objects = std::mem::take(&mut listing.invocations);
    let total_objects = listing.objects.len();
    let progress = super::stderr_is_terminal().then(|| {
        let bar = ProgressBar::new(total_objects as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {pos}/{len} objects {wide_bar} {elapsed_precise} (eta {eta}) {msg}",
            )
            .expect("valid template"),
        );
        bar
    });
    let options = DecodeOptions {
        max_object_bytes: args.read.max_object_size,
        ..Default::default()
    };
    let mut matches: Vec<Vec<Match>> = vec![Vec::new(); rules.len()];
    let mut stat_findings: Vec<Finding> = Vec::new();
    let mut failed_rules: BTreeMap<String, String> = BTreeMap::new();
    let mut examined = 0usize;
    let mut detect_time = std::time::Duration::ZERO;
    // The next chunk is read while this one is examined (statistics run on one thread).
    let (sender, received) = std::sync::mpsc::sync_channel(1);
    let reader = {
        let chunks = chunks(listing.objects, args.chunk_size);
        let options = options.clone();
        std::thread::Builder::new()
            .name("trailhound-read".into())
            .spawn(move || {
                for chunk in chunks {
                    let n = chunk.len();
                    let t = Instant::now();
                    let (batches, report) =
                        read_all_by_source(chunk, options.clone(), read_threads, None);
                    tracing::debug!(
                        ms = t.elapsed().as_secs_f64() * 1e3,
                        objects = n,
                        "read chunk"
                    );
                    if sender.send((n, batches, report)).is_err() {
                        break; // the run stopped
                    }
                }
            })?
    };
    for (n, batches, chunk_report) in received {
        report.merge(&chunk_report);
        let batches: Vec<RecordBatch> = batches
            .into_iter()
            .filter_map(|b| in_range(b, args.since, args.until))
            .collect();
        examined += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        if let Some(p) = pending.take() {
            engine = Some(p.wait(&runtime)?);
            tracing::debug!(
                ms = started.elapsed().as_secs_f64() * 1e3,
                "planned {} detections",
                rules.len()
            );
        }
        let engine = engine.as_ref().expect("planned before the first chunk");
        let t = Instant::now();
        if store.is_some() {
            stats.begin_chunk(&batches);
        }
        let observations = take_outputs(
            runtime.block_on(engine.run(batches)),
            &mut matches,
            &mut failed_rules,
        );
        if store.is_some() {
            stat_findings.extend(stats.end_chunk(observations, chrono::Utc::now()));
        }
        detect_time += t.elapsed();
        tracing::debug!(ms = t.elapsed().as_secs_f64() * 1e3, "examined chunk");
        if let Some(bar) = &progress {
            bar.inc(n as u64);
            bar.set_message(format!(
                "{} matching events",
                matches.iter().map(Vec::len).sum::<usize>()
            ));
        }
    }
    if reader.join().is_err() {
        anyhow::bail!("the thread reading the logs failed");
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    // Bedrock invocation logs: one more pass, over the `bedrock_invocations` table.
    if !invocation_objects.is_empty() {
        let invocations = read_invocations(
            &invocation_objects,
            args.read.max_object_size,
            read_threads,
            &mut report,
        );
        examined += invocations.iter().map(RecordBatch::num_rows).sum::<usize>();
        if let Some(p) = pending.take() {
            engine = Some(p.wait(&runtime)?);
        }
        let engine = engine.as_ref().expect("planned");
        let t = Instant::now();
        take_outputs(
            runtime.block_on(engine.run_with(Vec::new(), invocations)),
            &mut matches,
            &mut failed_rules,
        );
        detect_time += t.elapsed();
    }
    let now = chrono::Utc::now();
    stat_findings.retain(|f| f.severity >= args.min_severity.0);
    // In a state shared by a fleet, each statistical finding is emitted by one process only.
    let mut claimed = Vec::new();
    if let Some(store) = store.as_ref().filter(|s| s.is_shared()) {
        let ids: Vec<String> = stat_findings.iter().map(|f| f.id.clone()).collect();
        let won = store.claim(&ids)?;
        let before = stat_findings.len();
        stat_findings.retain(|f| won.contains(&f.id));
        if stat_findings.len() < before {
            tracing::info!(
                "{} statistical findings were already emitted by another process sharing {}",
                before - stat_findings.len(),
                store.describe()
            );
        }
        claimed = won.into_iter().collect();
    }
    let mut findings: Vec<Finding> = rules
        .iter()
        .zip(matches)
        .flat_map(|(rule, m)| aggregate::findings(rule, m, now))
        .filter(|f| f.severity >= args.min_severity.0)
        .chain(stat_findings)
        .collect();
    findings.sort_by(|a, b| {
        a.first_seen
            .cmp(&b.first_seen)
            .then_with(|| a.id.cmp(&b.id))
    });

    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        "aggregated {} findings",
        findings.len()
    );
    write_findings(&args, &findings)?;
    // What was learned is kept only once the findings are out: a crash before this point
    // leaves the state as it was, and the next run finds the same things again.
    if let Some(store) = &mut store {
        store.confirm(&claimed)?;
        stats.expire();
        store.save(&mut stats.state)?;
        store.compact()?;
        tracing::info!(
            "state {}: {} entries, {} bytes",
            store.describe(),
            stats.state.sizes().iter().map(|(_, n)| n).sum::<usize>(),
            store.file_size()
        );
    }
    report.elapsed = started.elapsed();
    let summary = Summary {
        findings: &findings,
        report: &report,
        examined,
        rules: rules.len(),
        detect_secs: detect_time.as_secs_f64(),
        failed_rules: &failed_rules,
    };
    eprint!("{summary}");
    if super::stdout_is_terminal() || super::stderr_is_terminal() {
        eprint!("{}", findings_table(&findings, 40));
    }
    if let Some(labels) = &args.labels {
        let scored = score(labels, &findings, examined)?;
        eprint!("{scored}");
    }
    if !failed_rules.is_empty() {
        eprintln!(
            "trailhound: {} detection(s) failed while running (see above)",
            failed_rules.len()
        );
        return Ok(1);
    }
    Ok(super::hunt::finish_code(&report, args.strict))
}

/// Adds each rule's matches from one run of the engine to `matches`, and its first error to
/// `failed` (logged once); returns each rule's observations, for the statistics.
fn take_outputs(
    outputs: Vec<Result<crate::detect::Output, crate::detect::RunError>>,
    matches: &mut [Vec<Match>],
    failed: &mut BTreeMap<String, String>,
) -> Vec<Vec<RecordBatch>> {
    let mut observations = vec![Vec::new(); matches.len()];
    for (i, result) in outputs.into_iter().enumerate() {
        match result {
            Ok(found) => {
                matches[i].extend(found.matches);
                observations[i] = found.observations;
            }
            Err(e) => {
                if !failed.contains_key(&e.rule) {
                    tracing::error!("{e}");
                    failed.insert(e.rule.clone(), e.message.clone());
                }
            }
        }
    }
    observations
}

/// Sends each listed S3 object as a notification to `queue`, ten to a call.
fn enqueue(
    runtime: &tokio::runtime::Runtime,
    queue: &str,
    listing: &source::Listing,
) -> anyhow::Result<i32> {
    let mut bodies = Vec::new();
    for o in listing.objects.iter().chain(&listing.invocations) {
        match &o.location {
            source::Location::S3 { bucket, key } => {
                bodies.push(source::envelope::s3_notification(bucket, key, o.size))
            }
            _ => bail!(
                "--enqueue sends S3 objects to a queue; {} is not in S3",
                o.key()
            ),
        }
    }
    let config = runtime.block_on(source::s3::aws_config());
    let sent = bodies.len();
    runtime.block_on(source::sqs::Queue::new(&config, queue).send_all(&bodies))?;
    eprintln!("enqueued {sent} objects ({listing}) to {queue}");
    Ok(0)
}

fn write_findings(args: &ReplayArgs, findings: &[Finding]) -> anyhow::Result<()> {
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    for f in findings {
        serde_json::to_writer(&mut out, &args.format.render(f))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

struct Summary<'a> {
    findings: &'a [Finding],
    report: &'a ReadReport,
    examined: usize,
    rules: usize,
    detect_secs: f64,
    failed_rules: &'a BTreeMap<String, String>,
}

impl std::fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.report.elapsed.as_secs_f64().max(1e-9);
        writeln!(f, "{}", self.report)?;
        writeln!(
            f,
            "examined {} events with {} detections in {:.2}s overall ({:.0} events/s; detections {:.2}s)",
            self.examined, self.rules, secs, self.examined as f64 / secs, self.detect_secs
        )?;
        let mut by_label: BTreeMap<u8, (&str, usize)> = BTreeMap::new();
        let mut by_type: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for finding in self.findings {
            let label = finding.severity_label();
            by_label.entry(rank(label)).or_insert((label, 0)).1 += 1;
            *by_type
                .entry((label, finding.finding_type.as_str()))
                .or_default() += 1;
        }
        let parts: Vec<String> = by_label.values().map(|(l, n)| format!("{n} {l}")).collect();
        writeln!(
            f,
            "{} finding{}{}",
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" },
            if parts.is_empty() {
                String::new()
            } else {
                format!(": {}", parts.join(", "))
            }
        )?;
        let mut rows: Vec<_> = by_type.into_iter().collect();
        rows.sort_by(|a, b| {
            rank(a.0 .0)
                .cmp(&rank(b.0 .0))
                .then(b.1.cmp(&a.1))
                .then(a.0 .1.cmp(b.0 .1))
        });
        for ((label, t), n) in rows {
            writeln!(f, "  {n:>4}  {label:<8}  {t}")?;
        }
        for (rule, message) in self.failed_rules {
            writeln!(f, "detection {rule} failed: {message}")?;
        }
        Ok(())
    }
}

fn rank(label: &str) -> u8 {
    match label {
        "Critical" => 0,
        "High" => 1,
        "Medium" => 2,
        _ => 3,
    }
}

/// A table of findings for a person: most severe first.
fn findings_table(findings: &[Finding], max: usize) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by(|a, b| {
        b.severity
            .total_cmp(&a.severity)
            .then(a.first_seen.cmp(&b.first_seen))
    });
    let mut out = String::from("\nSEVERITY     FIRST SEEN (UTC)     COUNT  TITLE / ACTOR\n");
    for f in sorted.iter().take(max) {
        let when = iso_time(f.first_seen);
        out.push_str(&format!(
            "{:<11}  {}  {:>5}  {}\n{:>42}{}\n",
            format!("{} {}", f.severity_label(), f.severity),
            &when[..19],
            f.count,
            f.title,
            "",
            short_actor(&f.principal.arn),
        ));
    }
    if sorted.len() > max {
        out.push_str(&format!(
            "… and {} more (all are in the JSON output)\n",
            sorted.len() - max
        ));
    }
    out
}

fn short_actor(arn: &str) -> &str {
    arn.strip_prefix("arn:aws:").unwrap_or(arn)
}

/// How findings compare with a labels file.
struct Scored {
    attacks: Vec<(String, usize, usize, Vec<String>)>,
    benign_events: usize,
    benign_medium: Vec<String>,
    benign_low: usize,
}

fn score(path: &PathBuf, findings: &[Finding], examined: usize) -> anyhow::Result<Scored> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let labels: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let Some(attacks) = labels.get("attacks").and_then(|a| a.as_array()) else {
        bail!(
            "{}: expected an object with an \"attacks\" list, as simulate writes",
            path.display()
        );
    };
    let mut labelled: HashMap<String, String> = HashMap::new();
    let mut out = Scored {
        attacks: Vec::new(),
        benign_events: 0,
        benign_medium: Vec::new(),
        benign_low: 0,
    };
    for a in attacks {
        let id = a["id"].as_str().unwrap_or("?").to_string();
        for e in a["eventIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
        {
            labelled.insert(e.to_string(), id.clone());
        }
    }
    let serious: Vec<&Finding> = findings.iter().filter(|f| f.severity >= 4.0).collect();
    for a in attacks {
        let id = a["id"].as_str().unwrap_or("?").to_string();
        let events: HashSet<&str> = a["eventIds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .collect();
        let mut covered = HashSet::new();
        let mut by = Vec::new();
        for f in &serious {
            let hits: Vec<&String> = f
                .event_ids
                .iter()
                .filter(|e| events.contains(e.as_str()))
                .collect();
            if !hits.is_empty() {
                covered.extend(hits);
                if !by.contains(&f.detection) {
                    by.push(f.detection.clone());
                }
            }
        }
        out.attacks.push((id, covered.len(), events.len(), by));
    }
    let attack_events = labelled.len();
    out.benign_events = examined.saturating_sub(attack_events);
    for f in findings {
        if f.event_ids.iter().any(|e| labelled.contains_key(e)) {
            continue;
        }
        if f.severity >= 4.0 {
            out.benign_medium.push(format!(
                "{} ({}, {})",
                f.detection,
                f.severity_label(),
                short_actor(&f.principal.arn)
            ));
        } else {
            out.benign_low += 1;
        }
    }
    Ok(out)
}

impl std::fmt::Display for Scored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let found = self.attacks.iter().filter(|a| a.1 > 0).count();
        let covered: usize = self.attacks.iter().map(|a| a.1).sum();
        let total: usize = self.attacks.iter().map(|a| a.2).sum();
        writeln!(
            f,
            "\nlabels: {found} of {} attacks found at Medium or above; {covered} of {total} attack events are in a finding",
            self.attacks.len()
        )?;
        for (id, c, t, by) in &self.attacks {
            let status = if *c > 0 { "found" } else { "MISSED" };
            writeln!(
                f,
                "  {status:<6} {id}: {c}/{t} events, by {}",
                if by.is_empty() {
                    "-".to_string()
                } else {
                    by.join(", ")
                }
            )?;
        }
        let per_100k =
            self.benign_medium.len() as f64 * 100_000.0 / (self.benign_events.max(1)) as f64;
        writeln!(
            f,
            "benign: {} findings at Medium or above on {} unlabelled events ({per_100k:.2} per 100k); {} Low",
            self.benign_medium.len(),
            self.benign_events,
            self.benign_low
        )?;
        for b in self.benign_medium.iter().take(20) {
            writeln!(f, "  {b}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time_arg("2026-10-05").unwrap(), 1_791_158_400_000_000);
        assert_eq!(
            parse_time_arg("2026-10-05T00:00:00Z").unwrap(),
            1_791_158_400_000_000
        );
        let age = parse_time_arg("1d").unwrap();
        let now = chrono::Utc::now().timestamp_micros();
        assert!((now - age - 86_400_000_000).abs() < 10_000_000);
        assert!(parse_time_arg("yesterday").is_err());
    }
}
