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

use crate::decode::DecodeOptions;
use crate::detect::stats::object_name;
use crate::detect::{Chunk, Examiner};
use crate::finding::sink::Sink;
use crate::source::envelope::{self, Notice, Notified};
use crate::source::sqs::{Message, Queue};
use crate::source::{classify, s3, KeyKind};
pub use metrics::{Metric, Metrics};

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
    /// Wait before a kept message (failed fetch or sink) is handed out again.
    pub retry_after: Duration,
    /// The buckets, each with an optional key prefix, whose objects may be read; empty for
    /// any. A notification naming anything else is refused, counted and deleted.
    pub allowed: Vec<AllowedPlace>,
    /// The account that must own every bucket read (`ExpectedBucketOwner`).
    pub expected_bucket_owner: Option<String>,
    /// A 403 on GetObject means the object is gone (the role cannot list the bucket, so S3
    /// says 403 for a missing key), not a failure worth retrying.
    pub denied_is_gone: bool,
    /// Keeps every record read in this Parquet lake, a file per object (written again under
    /// the same name when a message comes again), durable before the message is deleted.
    pub lake: Option<crate::lake::LakeWriter>,
}

/// A bucket (and key prefix) the daemon may read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPlace {
    pub bucket: String,
    /// Keys must start with this (empty: any key).
    pub prefix: String,
}

impl AllowedPlace {
    /// `BUCKET` or `BUCKET/PREFIX` (an `s3://` in front is accepted).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let text = text.strip_prefix("s3://").unwrap_or(text);
        let (bucket, prefix) = text.split_once('/').unwrap_or((text, ""));
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid {
            return Err(format!(
                "{bucket:?} is not an S3 bucket name (3-63 lowercase letters, digits, '-' or '.')"
            ));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl Options {
    /// True when `bucket`/`key` may be read.
    pub fn allows(&self, bucket: &str, key: &str) -> bool {
        self.allowed.is_empty()
            || self
                .allowed
                .iter()
                .any(|a| a.bucket == bucket && key.starts_with(&a.prefix))
    }
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
            retry_after: Duration::from_secs(10),
            allowed: Vec::new(),
            expected_bucket_owner: None,
            denied_is_gone: false,
            lake: None,
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
        crate::sync::lock(&self.failing).clone()
    }
}

/// Messages received and not yet deleted or handed back, by message id.
type InFlight = Arc<Mutex<HashMap<String, Message>>>;

/// The long-running service: see the [module](self).
pub struct Daemon {
    queue: Queue,
    s3: aws_sdk_s3::Client,
    examiner: Examiner,
    sinks: Vec<Sink>,
    options: Options,
    metrics: Arc<Metrics>,
    /// The statistics' counts of clamped objects and evicted entries already in the metrics.
    counted: (u64, u64),
}

/// What becomes of a message once its batch has been examined: its acknowledgement. Every
/// message of a batch gets one, and [`Daemon::acknowledge`] applies them together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// Done with: its findings are out (or it named nothing to read, or can never be read).
    /// Deleted from the queue.
    Delete,
    /// Something may work later (an object could not be fetched; a sink or the state
    /// failed): handed back after `--retry-after`. The queue's redrive policy counts the
    /// attempts and moves it to the dead-letter queue in the end. The reason is counted.
    Retry(&'static str),
    /// Not examined (the daemon is stopping): handed back at once.
    Release,
}

/// One object of a batch, and the message that named it.
struct Work {
    message: usize,
    object: Notified,
}

/// Messages received and waiting for a batch: a whole batch (the pollers fill the next while
/// one is examined), and at least the pollers' ten per receive.
fn received_room(options: &Options) -> usize {
    options.batch_messages.max(options.pollers.max(1) * 10)
}

impl Daemon {
    /// A daemon that reads `queue`, fetches objects with `s3`, examines them with `examiner`
    /// (whose delivery should be [`crate::detect::Delivery::EachChunk`]) and sends findings
    /// to every one of `sinks`.
    pub fn new(
        queue: Queue,
        s3: aws_sdk_s3::Client,
        examiner: Examiner,
        sinks: Vec<Sink>,
        options: Options,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            queue,
            s3,
            examiner,
            sinks,
            options,
            metrics,
            counted: (0, 0),
        }
    }

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
        // Room for a whole batch: the pollers fill the next batch while one is examined, so
        // with a backlog each batch is as large as --batch-messages allows and the pack's cost
        // per batch is shared by that many objects (with room for only the pollers' last
        // receives, batches of 20 to 40 messages cost the daemon three times the CPU per event).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(received_room(&self.options));
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
                    let beat = match crate::aws::runtime("trailhound-heartbeat", 0) {
                        Ok(beat) => beat,
                        Err(e) => {
                            tracing::error!("no runtime for the heartbeat: {e}");
                            return;
                        }
                    };
                    beat.block_on(async move {
                        let config = crate::aws::config().await;
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
            let acks = if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                // Received while stopping: not examined.
                vec![Ack::Release; batch.len()]
            } else {
                let started = Instant::now();
                let mut watch = stop_rx.clone();
                let acks = self.examine(runtime, &batch, &mut watch);
                self.metrics
                    .add(Metric::BatchSeconds, &[], started.elapsed().as_secs_f64());
                acks
            };
            self.acknowledge(runtime, &batch, &acks, &in_flight);
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
        }
        // Hand back whatever was received and not started.
        let mut left = Vec::new();
        while let Ok(m) = rx.try_recv() {
            left.push(m);
        }
        let acks = vec![Ack::Release; left.len()];
        self.acknowledge(runtime, &left, &acks, &in_flight);
        for sink in &self.sinks {
            tracing::debug!(sink = sink.name().as_str(), "flushed");
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Examines one batch of messages: fetches and decodes what they name, runs every
    /// detection, sends the findings to every sink and keeps what the batch taught. Returns
    /// each message's acknowledgement, in the batch's order; nothing is deleted here.
    fn examine(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        batch: &[Message],
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Vec<Ack> {
        let started = Instant::now();
        let m = self.metrics.clone();
        m.add(Metric::Batches, &[], 1.0);
        let mut acks = vec![Ack::Delete; batch.len()];
        let work = self.objects_to_read(batch);
        let (chunk, fetch_failed) = self.fetch(runtime, batch, work);
        for i in fetch_failed {
            acks[i] = Ack::Retry("fetch-failed");
        }
        let newest = newest_event(&chunk.cloudtrail);
        let records = chunk.records();
        let for_lake = self
            .options
            .lake
            .as_ref()
            .map(|_| (chunk.cloudtrail.clone(), chunk.invocations.clone()));

        // Every detection.
        let examined = match runtime.block_on(self.examiner.examine(chunk)) {
            Ok(examined) => examined,
            Err(e) => {
                tracing::error!(
                    "{}; the batch's messages stay on the queue",
                    crate::aws::describe(&e)
                );
                m.inc(Metric::Errors, &[("kind", "state-failed")]);
                return self.undo(Ack::Retry("state-failed"), batch.len());
            }
        };
        for e in &examined.failures {
            tracing::error!("{e}");
            m.inc(Metric::Errors, &[("kind", "detection-failed")]);
        }
        let findings = examined.findings;

        // Out to every sink, within the drain deadline once stopping.
        let drain = self.options.drain;
        let sent = {
            let sinks = &mut self.sinks;
            let findings = &findings;
            runtime.block_on(async {
                let send = async {
                    let mut refused = Vec::new();
                    for sink in sinks.iter_mut() {
                        for r in sink.send(findings).await? {
                            refused.push((sink.name(), r));
                        }
                    }
                    Ok::<_, crate::finding::sink::SinkError>(refused)
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
        match sent {
            Some(Ok(refused)) => {
                // A finding a sink refused for itself is kept here, in full, rather than
                // holding back the batch: sending it again would be refused again.
                for (sink, r) in refused {
                    let f = &findings[r.index];
                    tracing::error!(
                        sink = sink.as_str(),
                        finding = f.id.as_str(),
                        detection = f.detection.as_str(),
                        reason = r.reason.as_str(),
                        body = serde_json::to_string(f).unwrap_or_default().as_str(),
                        "the sink refused a finding; it is logged here instead"
                    );
                    m.inc(Metric::FindingsRefused, &[("sink", sink.as_str())]);
                    m.inc(Metric::Errors, &[("kind", "finding-refused")]);
                }
            }
            Some(Err(e)) => {
                tracing::error!(
                    "{}; the batch's messages stay on the queue",
                    crate::aws::describe(&e)
                );
                m.inc(Metric::Errors, &[("kind", "sink-failed")]);
                return self.undo(Ack::Retry("sink-failed"), batch.len());
            }
            None => {
                tracing::warn!(
                    "the drain deadline passed with the batch in work; handing its messages back"
                );
                return self.undo(Ack::Release, batch.len());
            }
        }
        // The records and findings into the lake, durably, before any message is deleted.
        if let (Some(lake), Some((cloudtrail, invocations))) = (&self.options.lake, for_lake) {
            use crate::lake::{
                findings::write_each_finding, group::write_each_object, write::RecordTable,
            };
            let written =
                write_each_object(lake, RecordTable::CloudTrail, &cloudtrail).and_then(|a| {
                    let b = write_each_object(lake, RecordTable::Invocations, &invocations)?;
                    let c = write_each_finding(lake, &findings)?;
                    Ok(a.files + b.files + c.files)
                });
            match written {
                Ok(files) => m.add(Metric::LakeFiles, &[], files as f64),
                Err(e) => {
                    tracing::error!("lake: {e}; the batch's messages stay on the queue");
                    m.inc(Metric::Errors, &[("kind", "lake-failed")]);
                    return self.undo(Ack::Retry("lake-failed"), batch.len());
                }
            }
        }
        // The findings are out: what the batch taught is kept. If that fails, the objects
        // stay unlearned and their messages come back (their findings are sent again, with
        // the same ids).
        if let Err(e) = self.examiner.commit(&findings) {
            tracing::error!(
                "{}; the batch's messages stay on the queue",
                crate::aws::describe(&e)
            );
            m.inc(Metric::Errors, &[("kind", "state-failed")]);
            return self.undo(Ack::Retry("state-failed"), batch.len());
        }
        for f in &findings {
            m.inc(Metric::Findings, &[("severity", f.severity_label())]);
        }
        // Records dated past their delivery, and state entries forgotten at the caps.
        let stats = self.examiner.stats();
        let (clamped, evicted) = (stats.clamped(), stats.evicted());
        for (kind, now, before) in [
            ("event-time-clamped", clamped, self.counted.0),
            ("state-evicted", evicted, self.counted.1),
        ] {
            if now > before {
                m.add(Metric::Errors, &[("kind", kind)], (now - before) as f64);
            }
        }
        self.counted = (clamped, evicted);
        let now_ms = chrono::Utc::now().timestamp_millis();
        if let Some(t) = newest {
            m.set(
                Metric::EventLag,
                &[],
                (now_ms as f64 - t as f64 / 1e3) / 1e3,
            );
        }
        if let Some(sent) = batch.iter().filter_map(|m| m.sent_ms).min() {
            m.set(Metric::NotificationLag, &[], (now_ms - sent) as f64 / 1e3);
        }
        m.set(
            Metric::EventsPerSecond,
            &[],
            records as f64 / started.elapsed().as_secs_f64().max(1e-9),
        );
        tracing::info!(
            messages = batch.len(),
            findings = findings.len(),
            "batch done"
        );
        acks
    }

    /// Forgets what the batch in work taught (it will be examined again) and gives every one
    /// of its `n` messages `ack`.
    fn undo(&mut self, ack: Ack, n: usize) -> Vec<Ack> {
        if let Err(e) = self.examiner.rollback() {
            tracing::error!("{}", crate::aws::describe(&e));
            self.metrics
                .inc(Metric::Errors, &[("kind", "state-failed")]);
        }
        vec![ack; n]
    }

    /// The objects a batch's messages name that hold records to read: notices that name
    /// nothing, keys that hold no events and objects already examined are acknowledged here.
    fn objects_to_read(&self, batch: &[Message]) -> Vec<Work> {
        let m = &self.metrics;
        let mut work = Vec::new();
        let mut in_batch: std::collections::HashSet<String> = Default::default();
        for (i, message) in batch.iter().enumerate() {
            let objects = match envelope::parse(&message.body) {
                Err(e) => {
                    tracing::warn!(
                        message = message.id.as_str(),
                        "deleting a message that cannot be processed: {e}"
                    );
                    m.inc(Metric::Errors, &[("kind", "unparseable-message")]);
                    continue;
                }
                Ok(Notice::Nothing { kind }) => {
                    tracing::info!(message = message.id.as_str(), "acknowledged: {kind}");
                    m.inc(Metric::MessagesIgnored, &[("kind", kind)]);
                    continue;
                }
                Ok(Notice::Objects(objects)) => objects,
            };
            for object in objects {
                let kind = classify(&object.key);
                if !kind.is_examined() {
                    tracing::debug!(key = object.key.as_str(), "skipped: {kind}");
                    m.inc(
                        Metric::Objects,
                        &[("kind", kind.name()), ("outcome", "skipped")],
                    );
                    continue;
                }
                if !self.options.allows(&object.bucket, &object.key) {
                    tracing::warn!(
                        message = message.id.as_str(),
                        "refused: s3://{}/{} is outside --allowed-buckets",
                        object.bucket,
                        object.key
                    );
                    m.inc(Metric::Errors, &[("kind", "bucket-not-allowed")]);
                    m.inc(
                        Metric::Objects,
                        &[("kind", kind.name()), ("outcome", "refused")],
                    );
                    continue;
                }
                let name =
                    object_name(&format!("s3://{}/{}", object.bucket, object.key)).into_owned();
                if self.examiner.has_learned(&name) || !in_batch.insert(name) {
                    tracing::info!(
                        key = object.key.as_str(),
                        "already examined (a duplicate notification): skipped"
                    );
                    m.inc(
                        Metric::Objects,
                        &[("kind", kind.name()), ("outcome", "duplicate")],
                    );
                    continue;
                }
                work.push(Work { message: i, object });
            }
        }
        work
    }

    /// Fetches and decodes `work`, several objects at once: the decoded chunk, and the
    /// messages whose objects could not be fetched for now (worth trying again).
    fn fetch(
        &self,
        runtime: &tokio::runtime::Runtime,
        batch: &[Message],
        work: Vec<Work>,
    ) -> (Chunk, BTreeSet<usize>) {
        let m = &self.metrics;
        let limit = self.options.decode.max_object_bytes;
        let options = self.options.decode.clone();
        let budget = &self.options.decode.budget;
        let client = self.s3.clone();
        let owner = self.options.expected_bucket_owner.clone();
        let fetched: Vec<(
            usize,
            Notified,
            Result<crate::decode::DecodedObject, s3::FetchError>,
        )> = runtime.block_on(async {
            futures::stream::iter(work)
                .map(|w| {
                    let client = client.clone();
                    let options = options.clone();
                    let owner = owner.clone();
                    async move {
                        let bytes = s3::fetch_within(
                            &client,
                            &w.object.bucket,
                            &w.object.key,
                            limit,
                            owner.as_deref(),
                            Some(budget),
                        )
                        .await;
                        let decoded = match bytes {
                            Ok((bytes, reserved)) => {
                                let key = format!("s3://{}/{}", w.object.bucket, w.object.key);
                                let kind = classify(&w.object.key);
                                tokio::task::spawn_blocking(move || {
                                    let decoded =
                                        crate::decode::decode_object(kind, &key, &bytes, &options);
                                    // The stored bytes' share, given back with them.
                                    drop((bytes, reserved));
                                    decoded
                                })
                                .await
                                .map_err(|e| {
                                    s3::FetchError::Failed {
                                        bucket: w.object.bucket.clone(),
                                        key: w.object.key.clone(),
                                        doing: "decoding",
                                        cause: e.into(),
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
        let mut chunk = Chunk::default();
        let mut failed = BTreeSet::new();
        for (i, object, result) in fetched {
            let kind = classify(&object.key);
            match result {
                Ok(decoded) => {
                    m.add(Metric::Bytes, &[], decoded.stored_bytes as f64);
                    m.add(Metric::Records, &[], decoded.records as f64);
                    for p in &decoded.problems {
                        tracing::warn!(
                            object = format!("s3://{}/{}", object.bucket, object.key).as_str(),
                            "{p}"
                        );
                        if let crate::decode::Problem::Object(e) = p {
                            m.inc(Metric::Errors, &[("kind", e.kind())]);
                        }
                    }
                    // Every record problem, beyond the detailed ones too.
                    for (kind, n) in decoded
                        .skipped_by_kind
                        .iter()
                        .chain(&decoded.flagged_by_kind)
                    {
                        m.add(Metric::Errors, &[("kind", kind)], *n as f64);
                    }
                    m.inc(
                        Metric::Objects,
                        &[("kind", kind.name()), ("outcome", "read")],
                    );
                    if kind == KeyKind::BedrockInvocationLog {
                        chunk.invocations.extend(decoded.batch);
                    } else {
                        chunk.cloudtrail.extend(decoded.batch);
                    }
                }
                Err(e) => {
                    m.inc(Metric::Errors, &[("kind", e.kind())]);
                    let gone =
                        self.options.denied_is_gone && matches!(e, s3::FetchError::Denied { .. });
                    if e.is_transient() && !gone {
                        tracing::warn!(
                            message = batch[i].id.as_str(),
                            "keeping the message for redelivery: {}",
                            crate::aws::describe(&e)
                        );
                        failed.insert(i);
                    } else {
                        tracing::warn!(
                            message = batch[i].id.as_str(),
                            "{}; nothing to read",
                            crate::aws::describe(&e)
                        );
                        m.inc(
                            Metric::Objects,
                            &[("kind", kind.name()), ("outcome", e.kind())],
                        );
                    }
                }
            }
        }
        (chunk, failed)
    }

    /// Applies a batch's acknowledgements (`acks[i]` is `batch[i]`'s): deletes the messages
    /// that are done, hands the others back, now or after `--retry-after`.
    fn acknowledge(
        &self,
        runtime: &tokio::runtime::Runtime,
        batch: &[Message],
        acks: &[Ack],
        in_flight: &InFlight,
    ) {
        let m = &self.metrics;
        // Out of the heartbeat's hands first: a message being deleted needs no renewal.
        {
            let mut flight = crate::sync::lock(in_flight);
            for message in batch {
                flight.remove(&message.id);
            }
            m.set(Metric::InFlightMessages, &[], flight.len() as f64);
        }
        let done: Vec<&Message> = batch
            .iter()
            .zip(acks)
            .filter(|(_, a)| **a == Ack::Delete)
            .map(|(message, _)| message)
            .collect();
        if !done.is_empty() {
            match runtime.block_on(self.queue.delete(&done)) {
                Ok(failed) => m.add(
                    Metric::MessagesDeleted,
                    &[],
                    (done.len() - failed.len()) as f64,
                ),
                // They come back when their visibility lapses, and are then found examined.
                Err(e) => tracing::warn!("{}", crate::aws::describe(&e)),
            }
        }
        runtime.block_on(async {
            for (message, ack) in batch.iter().zip(acks) {
                let after = match ack {
                    Ack::Delete => continue,
                    Ack::Retry(reason) => {
                        m.inc(Metric::MessagesKept, &[("reason", reason)]);
                        self.options.retry_after
                    }
                    Ack::Release => Duration::ZERO,
                };
                if let Err(e) = self.queue.set_visibility(message, after).await {
                    // It comes back when its visibility lapses anyway.
                    tracing::warn!(
                        message = message.id.as_str(),
                        "{}",
                        crate::aws::describe(&e)
                    );
                }
            }
        });
    }
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
                *crate::sync::lock(&health.failing) = None;
                health
                    .metrics
                    .add(Metric::MessagesReceived, &[], messages.len() as f64);
                for m in messages {
                    crate::sync::lock(&in_flight).insert(m.id.clone(), m.clone());
                    if tx.send(m).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let e = crate::aws::describe(&e);
                tracing::warn!(poller = n, "{e}; retrying in {backoff:?}");
                health
                    .metrics
                    .inc(Metric::Errors, &[("kind", "receive-failed")]);
                *crate::sync::lock(&health.failing) = Some(e.to_string());
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
        let messages: Vec<Message> = crate::sync::lock(&in_flight).values().cloned().collect();
        for m in messages {
            match queue.set_visibility(&m, visibility).await {
                Ok(()) => metrics.inc(Metric::VisibilityExtended, &[]),
                // Deleted or released since it was looked up: nothing to keep hidden.
                Err(_) if !crate::sync::lock(&in_flight).contains_key(&m.id) => {}
                Err(e) => tracing::warn!(
                    message = m.id.as_str(),
                    "heartbeat: {}",
                    crate::aws::describe(&e)
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pollers_have_room_for_a_whole_batch() {
        let with = |batch_messages, pollers| {
            received_room(&Options {
                batch_messages,
                pollers,
                ..Options::default()
            })
        };
        assert_eq!(with(100, 2), 100);
        assert_eq!(with(400, 4), 400);
        // Never less than what the pollers' receives bring in.
        assert_eq!(with(5, 4), 40);
        assert_eq!(with(1, 0), 10);
    }
}
