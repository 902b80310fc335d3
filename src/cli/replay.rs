//! `trailhound replay SOURCE...`: every detection over historical logs, findings out.
//!
//! Argument handling and output. The work is the library's: objects are read in order of
//! delivery time a chunk at a time ([`crate::read::delivery_order`], [`ReadAhead`]), so
//! memory stays bounded whatever the size of the history, and each chunk goes through the
//! [`Examiner`], which gives every finding at the end, built from all of its records.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use datafusion::arrow::record_batch::RecordBatch;

use super::rules::{PackArgs, PendingEngine};
use super::ReadArgs;
use crate::detect::state::{self, Store};
use crate::detect::stats::StatsOptions;
use crate::detect::{Chunk, Delivery, ExamineOptions, Examiner, RunError, Severity};
use crate::finding::{iso_time, short_arn, Finding, FindingFormat};
use crate::lake::write::RecordTable;
use crate::lake::{GroupsThread, LakeWriter, ReplayGroups, Written};
use crate::read::{
    delivery_order, read_invocations, ReadAhead, ReadReport, TimeWindow, DEFAULT_CHUNK,
};
use crate::simulate::score::score;
use crate::source;

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
    #[arg(long, default_value = "7d", value_parser = super::parse_learning, value_name = "DURATION")]
    pub learning: std::time::Duration,

    /// Score the findings against a labels file (as `simulate` writes): which labelled attacks
    /// were found, and how many findings fell on unlabelled (benign) events.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Decompressed bytes of log objects read and examined together (an object larger than
    /// that is a chunk of its own); larger chunks use more memory. See --memory-budget for
    /// what reading may hold at once.
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

    /// Also keep every record read, whole, in a Parquet lake in this directory or S3 prefix
    /// (s3://BUCKET/PREFIX): cloudtrail/, bedrock_invocations/ and findings/ under
    /// date=/account=/region= partitions, for `hunt --lake`, DuckDB, Athena, Trino or Spark.
    /// Objects are read in whole delivery days, and a file is named after the objects it
    /// holds, so replaying the same logs again replaces files instead of adding rows. --since
    /// and --until choose what is examined, not what is kept.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub lake: Option<crate::lake::Location>,

    /// With --lake: most memory for records waiting until their trail folder's day has been
    /// read whole (beyond it, files are written early, in parts).
    #[arg(long, default_value = "1GiB", value_parser = super::parse_size, value_name = "SIZE")]
    pub lake_buffer: usize,

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

pub fn run(args: ReplayArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let threads = args.read.threads();
    let window = TimeWindow {
        since: args.since,
        until: args.until,
    };
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
    let pending = args.pack.start_engine(&runtime, threads)?;
    let rules = pending.rules.clone();
    // The state is opened now, so that one in use elsewhere is reported before any reading.
    let store = if rules.iter().any(|r| r.stateful.is_some() && r.enabled) {
        Store::open(&args.state.clone().unwrap_or_else(state::default_path))?
    } else {
        Store::Memory
    };
    let mut planning = Some((pending, store));
    let mut examiner: Option<Examiner> = None;
    let options = ExamineOptions {
        delivery: Delivery::AtEnd,
        min_severity: args.min_severity.0,
        stats: StatsOptions {
            learning: args.learning,
        },
        only: None,
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
    let before = listing.objects.len();
    if args.lake.is_some() {
        // A lake file holds a whole group of objects: none is left half written.
        crate::lake::group::widen_to_groups(&mut listing.objects, |o| window.may_hold(&o.key()));
    } else {
        listing.objects.retain(|o| window.may_hold(&o.key()));
    }
    let early = before - listing.objects.len();
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
    let lake = match &args.lake {
        Some(location) => {
            Some(LakeWriter::open(location).with_context(|| format!("--lake {location}"))?)
        }
        None => None,
    };
    let progress = super::progress_bar(
        listing.objects.len() as u64,
        "{spinner} {pos}/{len} objects {wide_bar} {elapsed_precise} (eta {eta}) {msg}",
    );
    let decode = args.read.decode_options();
    // Once the pack is planned, each service's records are decoded only as far as the
    // detections read them (the first chunk, read while planning, is decoded whole).
    let projections = decode.by_source.clone();
    let mut failed_rules: BTreeMap<String, String> = BTreeMap::new();
    let mut examined = 0usize;
    let mut detect_time = std::time::Duration::ZERO;
    // The next chunk is read while this one is examined.
    delivery_order(&mut listing.objects);
    let mut groups = match &lake {
        Some(lake) => Some(GroupsThread::spawn(
            ReplayGroups::plan(RecordTable::CloudTrail, &listing.objects)
                .with_cap(args.lake_buffer),
            lake.clone(),
        )?),
        None => None,
    };
    let mut reader = ReadAhead::spawn(
        std::mem::take(&mut listing.objects),
        args.chunk_size,
        decode,
        read_threads,
    )?;
    for read in reader.by_ref() {
        report.merge(&read.report);
        if let Some(writing) = &groups {
            if !writing.send(read.batches.clone(), read.objects) {
                if let Some(writing) = groups.take() {
                    writing.finish()?;
                }
                bail!("the lake stopped being written");
            }
        }
        let batches: Vec<RecordBatch> = read
            .batches
            .into_iter()
            .filter_map(|b| window.keep(b))
            .collect();
        let examiner = ready(&mut examiner, &mut planning, &runtime, &options)?;
        // The lake keeps whole records: every column is decoded.
        if projections.get().is_none() && lake.is_none() {
            projections.set(examiner.engine().decode_projections());
        }
        // This chunk's detections run while the chunk before is concluded (its statistics
        // and matches).
        let t = Instant::now();
        let done = runtime.block_on(examiner.examine_overlapped(Chunk::cloudtrail(batches)))?;
        detect_time += t.elapsed();
        examined += done.records;
        note_failures(&mut failed_rules, done.failures);
        tracing::debug!(ms = t.elapsed().as_secs_f64() * 1e3, "examined chunk");
        if let Some(bar) = &progress {
            bar.inc(read.objects as u64);
            bar.set_message(format!("{examined} events examined"));
        }
    }
    if let Some(examiner) = examiner.as_mut() {
        let t = Instant::now();
        let done = runtime.block_on(examiner.drain())?;
        detect_time += t.elapsed();
        examined += done.records;
        note_failures(&mut failed_rules, done.failures);
    }
    reader.finish()?;
    let mut kept = Written::default();
    if let Some(writing) = groups.take() {
        kept += writing.finish()?;
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    // Bedrock invocation logs: one more chunk, of the `bedrock_invocations` table.
    if !invocation_objects.is_empty() {
        let invocations = read_invocations(
            &invocation_objects,
            args.read.max_object_size,
            read_threads,
            &mut report,
        );
        if let Some(lake) = &lake {
            let mut groups = ReplayGroups::plan(RecordTable::Invocations, &invocation_objects);
            groups.add(&invocations)?;
            groups.finish(lake)?;
            kept += groups.written();
        }
        let examiner = ready(&mut examiner, &mut planning, &runtime, &options)?;
        if projections.get().is_none() && lake.is_none() {
            projections.set(examiner.engine().decode_projections());
        }
        let t = Instant::now();
        let done = runtime.block_on(examiner.examine(Chunk {
            cloudtrail: Vec::new(),
            invocations,
        }))?;
        detect_time += t.elapsed();
        examined += done.records;
        note_failures(&mut failed_rules, done.failures);
    }
    let examiner = ready(&mut examiner, &mut planning, &runtime, &options)?;
    let findings = examiner.finish()?;
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        "aggregated {} findings",
        findings.len()
    );
    write_findings(&args, &findings)?;
    if let Some(lake) = &lake {
        kept += crate::lake::findings::write_findings(lake, &findings)?;
        lake.sync()?;
        let merged = if kept.already_merged > 0 {
            format!(
                " ({} records already merged by `lake compact`, not written again)",
                kept.already_merged
            )
        } else {
            String::new()
        };
        eprintln!(
            "lake {}: {} records and {} findings in {} files, {:.1} MB{merged}",
            lake.location(),
            kept.rows - findings.len(),
            findings.len(),
            kept.files,
            kept.bytes as f64 / 1e6
        );
    }
    // What was learned is kept only once the findings are out: a crash before this point
    // leaves the state as it was, and the next run finds the same things again.
    examiner.commit(&findings)?;
    if examiner.learns() {
        tracing::info!(
            "state {}: {} entries, {} bytes",
            examiner.store().describe(),
            examiner.state_entries(),
            examiner.store().file_size()
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

/// The examiner, once the detections are planned (they are planned while the first chunk is
/// read) and the state is loaded.
fn ready<'a>(
    examiner: &'a mut Option<Examiner>,
    planning: &mut Option<(PendingEngine, Store)>,
    runtime: &tokio::runtime::Runtime,
    options: &ExamineOptions,
) -> anyhow::Result<&'a mut Examiner> {
    if let Some((pending, store)) = planning.take() {
        let engine = pending.wait(runtime)?;
        let made = Examiner::new(Arc::new(engine), store, options.clone())?;
        if made.learns() {
            tracing::info!(
                "statistical detections learn in {} ({} entries)",
                made.store().describe(),
                made.state_entries()
            );
        }
        *examiner = Some(made);
    }
    examiner
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("the detections could not be planned"))
}

/// Notes each detection's first failure (logged once).
fn note_failures(failed: &mut BTreeMap<String, String>, failures: Vec<RunError>) {
    for e in failures {
        if !failed.contains_key(&e.rule) {
            tracing::error!("{e}");
            failed.insert(e.rule.clone(), e.message.clone());
        }
    }
}

/// Sends each listed S3 object as a notification to `queue`, ten to a call.
fn enqueue(
    runtime: &tokio::runtime::Runtime,
    queue: &str,
    listing: &source::Listing,
) -> anyhow::Result<i32> {
    let bodies =
        source::envelope::notifications(listing.objects.iter().chain(&listing.invocations))
            .context("--enqueue")?;
    let config = runtime.block_on(crate::aws::config());
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
            short_arn(&f.principal.arn),
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
