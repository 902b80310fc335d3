//! `trailhound run`: the long-running service. Pollers long-poll SQS for notifications of new
//! log objects; the examiner takes what they received in batches, fetches the objects from
//! S3, decodes them, runs every detection, sends the findings to the sinks, saves what the
//! statistical detections learned, and only then deletes the messages.
//!
//! * A message whose objects could not be fetched (S3 down, access denied) or whose findings
//!   a sink refused stays on the queue: SQS hands it out again, and after the queue's
//!   `maxReceiveCount` moves it to the dead-letter queue.
//! * A message that can never be processed (not a notification, an object gone) is logged
//!   with the reason, counted, and deleted.
//! * While a batch is in work its messages' visibility is extended (a heartbeat), so a large
//!   object is not handed to another reader meanwhile.
//! * An object already examined (a duplicate notification, a redelivery after a crash past
//!   the findings) is not examined again: the state remembers the objects it learned from.
//! * On SIGTERM or Ctrl-C: no more receives; the batch in work is finished within the drain
//!   deadline (or its messages are handed back at once), messages received but not started
//!   are handed back, and the process exits 0.

pub mod http;
pub mod metrics;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::record_batch::RecordBatch;
use futures::StreamExt;

use crate::decode::{bedrock, DecodeOptions, Decoder};
use crate::detect::state::{Kept, Store};
use crate::detect::stats::{object_name, Stats};
use crate::detect::{aggregate, Engine, Match};
use crate::finding::sink::Sink;
use crate::finding::Finding;
use crate::source::envelope::{self, Notice, Notified};
use crate::source::sqs::{Message, Queue};
use crate::source::{classify, s3, KeyKind};
pub use metrics::Metrics;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent long polls.
    pub pollers: usize,
    /// How long a received message stays hidden; the heartbeat renews it at a third of this.
    pub visibility: Duration,
    /// Most messages examined together.
    pub batch_messages: usize,
    /// Objects fetched from S3 at once.
    pub fetch_concurrency: usize,
    /// Time allowed to finish the batch in work after SIGTERM.
    pub drain: Duration,
    /// Where `/healthz` and `/metrics` are served, if anywhere.
    pub listen: Option<SocketAddr>,
    pub decode: DecodeOptions,
    /// Findings below this severity are not sent.
    pub min_severity: f64,
    /// Wait before a kept message (failed fetch or sink) is handed out again.
    pub retry_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            pollers: 2,
            visibility: Duration::from_secs(120),
            batch_messages: 100,
            fetch_concurrency: 16,
            drain: Duration::from_secs(25),
            listen: None,
            decode: DecodeOptions::default(),
            min_severity: 0.0,
            retry_after: Duration::from_secs(10),
        }
    }
}

/// What `/healthz` reports.
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// The last queue error, while receiving keeps failing.
    failing: Mutex<Option<String>>,
}

impl Health {
    /// Why the daemon is unhealthy, if it is.
    pub fn problem(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Messages received and not yet deleted or handed back, by message id.
type InFlight = Arc<Mutex<HashMap<String, Message>>>;

/// The parts the daemon runs with.
pub struct Daemon {
    pub queue: Queue,
    pub s3: aws_sdk_s3::Client,
    pub engine: Engine,
    pub stats: Stats,
    pub store: Option<Store>,
    pub sinks: Vec<Sink>,
    pub options: Options,
    pub metrics: Arc<Metrics>,
    /// Batches examined since the state was last expired.
    pub since_expiry: usize,
}

/// Findings sent are kept in the state under this key prefix and their id: when a later batch
/// holds more records of one (its group and window span both), it is sent again, updated, as
/// GuardDuty updates a finding, also after a restart; one with nothing new is not sent again.
const SENT: &str = "sent\u{1f}";

/// How long a sent finding is remembered for updates.
const SENT_MEMORY: chrono::Duration = chrono::Duration::days(2);

/// Batches between expiries of the state (forgetting what is past every lookback).
const EXPIRE_EVERY: usize = 50;

/// `finding` as an update of `before`: `None` when it adds no record.
fn update(before: &Finding, finding: &Finding) -> Option<Finding> {
    let known: std::collections::HashSet<&String> = before.event_ids.iter().collect();
    let new: Vec<String> = finding
        .event_ids
        .iter()
        .filter(|e| !known.contains(e))
        .cloned()
        .collect();
    if new.is_empty() {
        return None;
    }
    let mut merged = before.clone();
    merged.count += new.len();
    merged.event_ids.extend(new);
    merged.first_seen = merged.first_seen.min(finding.first_seen);
    merged.last_seen = merged.last_seen.max(finding.last_seen);
    merged.created_at = finding.created_at;
    Some(merged)
}

/// One object of a batch, and the message that named it.
struct Work {
    message: usize,
    object: Notified,
}

impl Daemon {
    /// Runs until `shutdown` resolves (then drains and returns).
    pub fn run(
        mut self,
        runtime: &tokio::runtime::Runtime,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let health = Arc::new(Health {
            metrics: self.metrics.clone(),
            failing: Mutex::new(None),
        });
        if let Some(addr) = self.options.listen {
            let bound = runtime.block_on(http::serve(addr, health.clone()))?;
            tracing::info!("serving /healthz and /metrics on http://{bound}");
        }
        let in_flight: InFlight = Arc::default();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(self.options.pollers.max(1) * 10);
        for n in 0..self.options.pollers.max(1) {
            runtime.spawn(poll(
                n,
                self.queue.clone(),
                self.options.visibility,
                tx.clone(),
                stop_rx.clone(),
                in_flight.clone(),
                health.clone(),
            ));
        }
        drop(tx);
        // The heartbeat has a thread, a runtime and an HTTP client of its own: detection work
        // keeps the main runtime's threads busy for as long as a batch takes, and a renewal
        // that waited for it would let the messages in work lapse back onto the queue.
        {
            let url = self.queue.url.clone();
            let visibility = self.options.visibility;
            let in_flight = in_flight.clone();
            let metrics = self.metrics.clone();
            let stop = stop_rx.clone();
            std::thread::Builder::new()
                .name("trailhound-heartbeat".into())
                .spawn(move || {
                    let beat = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime for the heartbeat");
                    beat.block_on(async move {
                        let config = crate::source::s3::aws_config().await;
                        let queue = Queue::new(&config, &url);
                        heartbeat(queue, visibility, in_flight, metrics, stop).await
                    })
                })?;
        }
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let stopping = stopping.clone();
            runtime.spawn(async move {
                shutdown.await;
                tracing::info!("stopping: no more receives; finishing the batch in work");
                stopping.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = stop_tx.send(true);
            });
        }
        tracing::info!(queue = self.queue.url.as_str(), "waiting for notifications");
        loop {
            // A batch: what is waiting, at least one message.
            let first = runtime.block_on(async {
                let mut stop = stop_rx.clone();
                tokio::select! {
                    m = rx.recv() => m,
                    _ = stop.wait_for(|s| *s) => None,
                }
            });
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < self.options.batch_messages {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let drain_deadline = self.options.drain;
            let outcome = if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                // Received while stopping: hand back at once.
                Err(batch)
            } else {
                Ok(batch)
            };
            match outcome {
                Ok(batch) => {
                    let started = Instant::now();
                    let mut watch = stop_rx.clone();
                    let kept =
                        self.examine(runtime, &batch, &in_flight, &mut watch, drain_deadline);
                    self.metrics.add(
                        "trailhound_batch_seconds_total",
                        &[],
                        started.elapsed().as_secs_f64(),
                    );
                    if let Err(e) = kept {
                        tracing::error!("{e:#}");
                    }
                }
                Err(batch) => release(runtime, &self.queue, &batch, &in_flight, Duration::ZERO),
            }
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
        }
        // Hand back whatever was received and not started.
        let left: Vec<Message> = {
            let mut pending = Vec::new();
            while let Ok(m) = rx.try_recv() {
                pending.push(m);
            }
            pending
        };
        release(runtime, &self.queue, &left, &in_flight, Duration::ZERO);
        for sink in &self.sinks {
            tracing::debug!(sink = sink.name().as_str(), "flushed");
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Examines one batch of messages; deletes those that are done.
    fn examine(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        batch: &[Message],
        in_flight: &InFlight,
        stop: &mut tokio::sync::watch::Receiver<bool>,
        drain: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let m = self.metrics.clone();
        m.add("trailhound_batches_total", &[], 1.0);
        // Messages that must stay on the queue (something may work later).
        let mut kept: BTreeSet<usize> = BTreeSet::new();
        let mut work = Vec::new();
        let mut in_batch: std::collections::HashSet<String> = Default::default();
        for (i, message) in batch.iter().enumerate() {
            match envelope::parse(&message.body) {
                Err(e) => {
                    tracing::warn!(
                        message = message.id.as_str(),
                        "deleting a message that cannot be processed: {e}"
                    );
                    m.inc(
                        "trailhound_errors_total",
                        &[("kind", "unparseable-message")],
                    );
                }
                Ok(Notice::Nothing { kind }) => {
                    tracing::info!(message = message.id.as_str(), "acknowledged: {kind}");
                    m.inc("trailhound_messages_ignored_total", &[("kind", kind)]);
                }
                Ok(Notice::Objects(objects)) => {
                    for object in objects {
                        let kind = classify(&object.key);
                        if !kind.holds_events() && kind != KeyKind::BedrockInvocationLog {
                            tracing::debug!(key = object.key.as_str(), "skipped: {kind}");
                            m.inc(
                                "trailhound_objects_total",
                                &[("kind", kind.name()), ("outcome", "skipped")],
                            );
                            continue;
                        }
                        let name = object_name(&object.key);
                        if self.stats.state.learned.get(name).is_some()
                            || !in_batch.insert(format!("{}/{name}", object.bucket))
                        {
                            tracing::info!(
                                key = object.key.as_str(),
                                "already examined (a duplicate notification): skipped"
                            );
                            m.inc(
                                "trailhound_objects_total",
                                &[("kind", kind.name()), ("outcome", "duplicate")],
                            );
                            continue;
                        }
                        work.push(Work { message: i, object });
                    }
                }
            }
        }
        // Fetch and decode, several objects at once.
        let limit = self.options.decode.max_object_bytes;
        let options = self.options.decode.clone();
        let client = self.s3.clone();
        let fetched: Vec<(
            usize,
            Notified,
            Result<crate::decode::DecodedObject, s3::FetchError>,
        )> = runtime.block_on(async {
            futures::stream::iter(work)
                .map(|w| {
                    let client = client.clone();
                    let options = options.clone();
                    async move {
                        let bytes =
                            s3::fetch(&client, &w.object.bucket, &w.object.key, limit).await;
                        let decoded = match bytes {
                            Ok(bytes) => {
                                let key = format!("s3://{}/{}", w.object.bucket, w.object.key);
                                let kind = classify(&w.object.key);
                                tokio::task::spawn_blocking(move || {
                                    if kind == KeyKind::BedrockInvocationLog {
                                        bedrock::decode(&key, &bytes, options.max_object_bytes)
                                    } else {
                                        Decoder::new(options).decode(&key, &bytes)
                                    }
                                })
                                .await
                                .map_err(|e| {
                                    s3::FetchError::Failed {
                                        bucket: w.object.bucket.clone(),
                                        key: w.object.key.clone(),
                                        detail: format!("decoding panicked: {e}"),
                                    }
                                })
                            }
                            Err(e) => Err(e),
                        };
                        (w.message, w.object, decoded)
                    }
                })
                .buffer_unordered(self.options.fetch_concurrency.max(1))
                .collect()
                .await
        });
        let mut batches: Vec<RecordBatch> = Vec::new();
        let mut invocations: Vec<RecordBatch> = Vec::new();
        let mut records = 0usize;
        for (i, object, result) in fetched {
            let kind = classify(&object.key);
            match result {
                Ok(decoded) => {
                    m.add("trailhound_bytes_total", &[], decoded.stored_bytes as f64);
                    m.add("trailhound_records_total", &[], decoded.records as f64);
                    records += decoded.records;
                    for p in &decoded.problems {
                        tracing::warn!(
                            object = format!("s3://{}/{}", object.bucket, object.key).as_str(),
                            "{p}"
                        );
                        m.inc("trailhound_errors_total", &[("kind", p.kind())]);
                    }
                    m.inc(
                        "trailhound_objects_total",
                        &[("kind", kind.name()), ("outcome", "read")],
                    );
                    if kind == KeyKind::BedrockInvocationLog {
                        invocations.extend(decoded.batch);
                    } else {
                        batches.extend(decoded.batch);
                    }
                }
                Err(e) => {
                    m.inc("trailhound_errors_total", &[("kind", e.kind())]);
                    if e.is_transient() {
                        tracing::warn!(
                            message = batch[i].id.as_str(),
                            "keeping the message for redelivery: {e}"
                        );
                        kept.insert(i);
                    } else {
                        tracing::warn!(message = batch[i].id.as_str(), "{e}; nothing to read");
                        m.inc(
                            "trailhound_objects_total",
                            &[("kind", kind.name()), ("outcome", e.kind())],
                        );
                    }
                }
            }
        }

        // Every detection.
        let rules: Vec<_> = self.engine.rules().cloned().collect();
        let mut findings: Vec<Finding> = Vec::new();
        let newest = newest_event(&batches);
        if !batches.is_empty() || !invocations.is_empty() {
            let active = self.store.is_some() && self.stats.is_active();
            self.stats.begin_chunk(&batches);
            let mut matches: Vec<Vec<Match>> = vec![Vec::new(); rules.len()];
            let mut observations = vec![Vec::new(); rules.len()];
            for (i, result) in runtime
                .block_on(self.engine.run_with(batches, invocations))
                .into_iter()
                .enumerate()
            {
                match result {
                    Ok(out) => {
                        matches[i] = out.matches;
                        observations[i] = out.observations;
                    }
                    Err(e) => {
                        tracing::error!("{e}");
                        m.inc("trailhound_errors_total", &[("kind", "detection-failed")]);
                    }
                }
            }
            // A threshold's window may span batches: its matches are judged with those
            // carried from earlier batches, and what a later batch could still join is kept.
            for (rule, found) in rules.iter().zip(matches.iter_mut()) {
                if rule.threshold.is_none() || found.is_empty() {
                    continue;
                }
                if let Some(before) = self.stats.state.pending.get(&rule.id) {
                    found.extend(before.iter().cloned());
                }
                let keep = aggregate::carried(rule, found);
                self.stats.state.pending.insert(rule.id.clone(), keep);
            }
            let now = chrono::Utc::now();
            let stat_findings = self.stats.end_chunk(observations, now);
            findings = rules
                .iter()
                .zip(matches)
                .flat_map(|(rule, found)| aggregate::findings(rule, found, now))
                .chain(if active { stat_findings } else { Vec::new() })
                .filter(|f| f.severity >= self.options.min_severity)
                .collect();
        }
        // In a state shared by a fleet, each statistical finding is emitted by one process.
        let mut claimed = Vec::new();
        if let Some(store) = self.store.as_ref().filter(|s| s.is_shared()) {
            let ids: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
            let won = store.claim(&ids)?;
            findings.retain(|f| !is_statistical(&rules, &f.detection) || won.contains(&f.id));
            claimed = won.into_iter().collect();
        }

        let findings: Vec<Finding> = findings
            .into_iter()
            .filter_map(|f| {
                match self
                    .stats
                    .state
                    .findings
                    .get(&format!("{SENT}{}", f.id))
                    .and_then(|kept| kept.last())
                {
                    Some(before) => update(&before.finding, &f),
                    None => Some(f),
                }
            })
            .collect();
        // Out to every sink, within the drain deadline once stopping.
        let sent = {
            let sinks = &mut self.sinks;
            let findings = &findings;
            runtime.block_on(async {
                let send = async {
                    for sink in sinks.iter_mut() {
                        sink.send(findings).await?;
                    }
                    Ok::<(), crate::finding::sink::SinkError>(())
                };
                tokio::pin!(send);
                tokio::select! {
                    r = &mut send => Some(r),
                    _ = async {
                        let _ = stop.wait_for(|s| *s).await;
                        tokio::time::sleep(drain).await;
                    } => None,
                }
            })
        };
        let done: Vec<&Message> = batch
            .iter()
            .enumerate()
            .filter(|(i, _)| !kept.contains(i))
            .map(|(_, m)| m)
            .collect();
        match sent {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::error!("{e}; the batch's messages stay on the queue");
                m.inc("trailhound_errors_total", &[("kind", "sink-failed")]);
                m.add(
                    "trailhound_messages_kept_total",
                    &[("reason", "sink-failed")],
                    batch.len() as f64,
                );
                // Forget what this batch taught: it is examined again when redelivered.
                if let Some(store) = &self.store {
                    self.stats.state = store.load()?;
                }
                release(
                    runtime,
                    &self.queue,
                    batch,
                    in_flight,
                    self.options.retry_after,
                );
                return Ok(());
            }
            None => {
                tracing::warn!(
                    "the drain deadline passed with the batch in work; handing its messages back"
                );
                if let Some(store) = &self.store {
                    self.stats.state = store.load()?;
                }
                release(runtime, &self.queue, batch, in_flight, Duration::ZERO);
                return Ok(());
            }
        }
        for f in &findings {
            m.inc(
                "trailhound_findings_total",
                &[("severity", f.severity_label())],
            );
            self.stats.state.findings.insert(
                format!("{SENT}{}", f.id),
                vec![Kept {
                    time: f.last_seen,
                    finding: f.clone(),
                }],
            );
        }
        self.since_expiry += 1;
        if self.since_expiry >= EXPIRE_EVERY {
            self.since_expiry = 0;
            self.stats.expire();
            let forget = chrono::Utc::now() - SENT_MEMORY;
            self.stats.state.findings.retain(|k, kept| {
                !k.starts_with(SENT) || kept.iter().any(|x| x.finding.created_at >= forget)
            });
        }
        if let Some(store) = &mut self.store {
            store.confirm(&claimed)?;
            store.save(&mut self.stats.state)?;
        }
        // Out of the heartbeat's hands first: a message being deleted needs no renewal.
        {
            let mut flight = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            for d in &done {
                flight.remove(&d.id);
            }
            m.set("trailhound_in_flight_messages", &[], flight.len() as f64);
        }
        let failed = runtime.block_on(self.queue.delete(&done))?;
        m.add(
            "trailhound_messages_deleted_total",
            &[],
            (done.len() - failed.len()) as f64,
        );
        let kept: Vec<Message> = kept.iter().map(|&i| batch[i].clone()).collect();
        if !kept.is_empty() {
            m.add(
                "trailhound_messages_kept_total",
                &[("reason", "fetch-failed")],
                kept.len() as f64,
            );
            release(
                runtime,
                &self.queue,
                &kept,
                in_flight,
                self.options.retry_after,
            );
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        if let Some(t) = newest {
            m.set(
                "trailhound_event_lag_seconds",
                &[],
                (now_ms as f64 - t as f64 / 1e3) / 1e3,
            );
        }
        if let Some(sent) = batch.iter().filter_map(|m| m.sent_ms).min() {
            m.set(
                "trailhound_notification_lag_seconds",
                &[],
                (now_ms - sent) as f64 / 1e3,
            );
        }
        m.set(
            "trailhound_events_per_second",
            &[],
            records as f64 / started.elapsed().as_secs_f64().max(1e-9),
        );
        tracing::info!(
            messages = batch.len(),
            findings = findings.len(),
            "batch done"
        );
        Ok(())
    }
}

fn is_statistical(rules: &[crate::detect::Rule], id: &str) -> bool {
    rules.iter().any(|r| r.id == id && r.stateful.is_some())
}

/// The newest event time in `batches`, in microseconds.
fn newest_event(batches: &[RecordBatch]) -> Option<i64> {
    batches
        .iter()
        .filter_map(|b| {
            b.column_by_name("eventtime")?
                .as_primitive_opt::<TimestampMicrosecondType>()?
                .iter()
                .flatten()
                .max()
        })
        .max()
}

/// Hands messages back to the queue after `after` (zero: at once).
fn release(
    runtime: &tokio::runtime::Runtime,
    queue: &Queue,
    messages: &[Message],
    in_flight: &InFlight,
    after: Duration,
) {
    {
        let mut flight = in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for m in messages {
            flight.remove(&m.id);
        }
    }
    runtime.block_on(async {
        for m in messages {
            if let Err(e) = queue.set_visibility(m, after).await {
                // It comes back when its visibility lapses anyway.
                tracing::warn!(message = m.id.as_str(), "{e}");
            }
        }
    });
}

/// One poller: long polls until told to stop.
async fn poll(
    n: usize,
    queue: Queue,
    visibility: Duration,
    tx: tokio::sync::mpsc::Sender<Message>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    in_flight: InFlight,
    health: Arc<Health>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return;
        }
        let received = tokio::select! {
            r = queue.receive(crate::source::sqs::MAX_MESSAGES, crate::source::sqs::MAX_WAIT, visibility) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match received {
            Ok(messages) => {
                backoff = Duration::from_millis(500);
                *health.failing.lock().unwrap_or_else(|e| e.into_inner()) = None;
                health.metrics.add(
                    "trailhound_messages_received_total",
                    &[],
                    messages.len() as f64,
                );
                for m in messages {
                    in_flight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(m.id.clone(), m.clone());
                    if tx.send(m).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(poller = n, "{e}; retrying in {backoff:?}");
                health
                    .metrics
                    .inc("trailhound_errors_total", &[("kind", "receive-failed")]);
                *health.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {},
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Keeps in-flight messages hidden while they are in work.
async fn heartbeat(
    queue: Queue,
    visibility: Duration,
    in_flight: InFlight,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = visibility / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {},
            _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                // Keep beating through the drain: the batch in work still needs its messages.
                tokio::time::sleep(every).await;
            },
        }
        let messages: Vec<Message> = in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for m in messages {
            match queue.set_visibility(&m, visibility).await {
                Ok(()) => metrics.inc("trailhound_visibility_extended_total", &[]),
                // Deleted or released since it was looked up: nothing to keep hidden.
                Err(_)
                    if !in_flight
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains_key(&m.id) => {}
                Err(e) => tracing::warn!(message = m.id.as_str(), "heartbeat: {e}"),
            }
        }
    }
}
