//! The read path: listed objects → fetched bytes → decoded batches, on every core, with a
//! report of what was read and what was skipped and why.
//!
//! Work is shared through a [`ReadQueue`]: each worker (a thread, or a DataFusion partition)
//! takes the next object, decodes it with its own [`Decoder`] and hands on the batch. Problems
//! are logged as they happen (naming the object, and the record where there is one) and
//! tallied in a [`ReadReport`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use indicatif::ProgressBar;

use crate::decode::{DecodeOptions, DecodedObject, Decoder};
use crate::source::{KeyKind, Listing, ObjectRef};

/// Records per batch the read path hands on (fewer when the objects run out).
pub const BATCH_ROWS: usize = 2048;

/// At most this many problem messages are kept for the end-of-run summary.
const MAX_REPORTED_DETAILS: usize = 20;

/// What a read did: counts, sizes, and what was skipped and why.
#[derive(Debug, Default, Clone)]
pub struct ReadReport {
    /// Objects fetched and decoded (whether or not they had problems).
    pub objects: usize,
    /// Records read into the table.
    pub records: usize,
    /// Stored (often compressed) bytes read.
    pub stored_bytes: u64,
    /// Bytes after decompression.
    pub body_bytes: u64,
    /// Objects with at least one problem.
    pub objects_with_problems: usize,
    /// Records skipped, by reason.
    pub skipped_records: BTreeMap<&'static str, usize>,
    /// Object-level problems, by kind.
    pub object_problems: BTreeMap<&'static str, usize>,
    /// Keys passed over while listing, by kind.
    pub skipped_keys: BTreeMap<KeyKind, usize>,
    /// The first few problems, as `key: message`.
    pub details: Vec<String>,
    /// Wall time spent reading.
    pub elapsed: Duration,
}

impl ReadReport {
    /// A report that starts from a listing's skipped keys.
    pub fn for_listing(listing: &Listing) -> Self {
        Self {
            skipped_keys: listing.skipped.clone(),
            ..Default::default()
        }
    }

    /// True when anything was skipped: a key, an object or a record.
    pub fn has_problems(&self) -> bool {
        self.objects_with_problems > 0
    }

    /// Records skipped, all reasons together.
    pub fn skipped_record_count(&self) -> usize {
        self.skipped_records.values().sum()
    }

    fn add_object(&mut self, key: &str, decoded: &DecodedObject) {
        self.objects += 1;
        self.records += decoded.records;
        self.stored_bytes += decoded.stored_bytes as u64;
        self.body_bytes += decoded.body_bytes as u64;
        if decoded.problems.is_empty() {
            return;
        }
        self.objects_with_problems += 1;
        for problem in &decoded.problems {
            match problem {
                crate::decode::Problem::Object(e) => {
                    *self.object_problems.entry(e.kind()).or_default() += 1
                }
                crate::decode::Problem::Record { problem, .. } => {
                    *self.skipped_records.entry(problem.kind()).or_default() += 1
                }
            }
            tracing::warn!(object = key, "{problem}");
            if self.details.len() < MAX_REPORTED_DETAILS {
                self.details.push(format!("{key}: {problem}"));
            }
        }
        // Records beyond the per-object detail limit are counted too.
        let detailed = decoded
            .problems
            .iter()
            .filter(|p| matches!(p, crate::decode::Problem::Record { .. }))
            .count();
        if decoded.skipped_records > detailed {
            *self.skipped_records.entry("other").or_default() += decoded.skipped_records - detailed;
        }
    }

    fn add_fetch_error(&mut self, key: &str, error: &crate::source::SourceError) {
        self.objects_with_problems += 1;
        *self.object_problems.entry(error.kind()).or_default() += 1;
        tracing::warn!(object = key, "{error}");
        if self.details.len() < MAX_REPORTED_DETAILS {
            self.details.push(error.to_string());
        }
    }

    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: &ReadReport) {
        self.objects += other.objects;
        self.records += other.records;
        self.stored_bytes += other.stored_bytes;
        self.body_bytes += other.body_bytes;
        self.objects_with_problems += other.objects_with_problems;
        for (k, v) in &other.skipped_records {
            *self.skipped_records.entry(k).or_default() += v;
        }
        for (k, v) in &other.object_problems {
            *self.object_problems.entry(k).or_default() += v;
        }
        for (k, v) in &other.skipped_keys {
            *self.skipped_keys.entry(*k).or_default() += v;
        }
        let room = MAX_REPORTED_DETAILS.saturating_sub(self.details.len());
        self.details
            .extend(other.details.iter().take(room).cloned());
        self.elapsed = self.elapsed.max(other.elapsed);
    }

    /// Records per second over the elapsed time.
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Decompressed megabytes (10^6 bytes) per second over the elapsed time.
    pub fn body_mb_per_second(&self) -> f64 {
        self.body_bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for ReadReport {
    /// The end-of-run summary: what was read, then what was skipped and why.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read {} records from {} objects ({:.1} MB stored, {:.1} MB decompressed) in {:.2}s: {:.0} records/s, {:.1} MB/s",
            self.records,
            self.objects,
            self.stored_bytes as f64 / 1e6,
            self.body_bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.records_per_second(),
            self.body_mb_per_second(),
        )?;
        if !self.skipped_keys.is_empty() {
            let parts: Vec<String> = self
                .skipped_keys
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            write!(
                f,
                "\nskipped keys that hold no events: {}",
                parts.join(", ")
            )?;
        }
        if self.has_problems() {
            write!(f, "\n{} objects had problems", self.objects_with_problems)?;
            if !self.object_problems.is_empty() {
                let parts: Vec<String> = self
                    .object_problems
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect();
                write!(f, " ({})", parts.join(", "))?;
            }
            if !self.skipped_records.is_empty() {
                let parts: Vec<String> = self
                    .skipped_records
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect();
                write!(
                    f,
                    "; {} records skipped ({})",
                    self.skipped_record_count(),
                    parts.join(", ")
                )?;
            }
            for detail in &self.details {
                write!(f, "\n  {detail}")?;
            }
        }
        Ok(())
    }
}

/// Objects waiting to be read, shared by the workers that read them.
pub struct ReadQueue {
    objects: Vec<ObjectRef>,
    next: AtomicUsize,
    options: DecodeOptions,
    report: Mutex<ReadReport>,
    progress: Option<ProgressBar>,
    started: Instant,
}

impl ReadQueue {
    pub fn new(objects: Vec<ObjectRef>, options: DecodeOptions) -> Self {
        Self {
            objects,
            next: AtomicUsize::new(0),
            options,
            report: Mutex::new(ReadReport::default()),
            progress: None,
            started: Instant::now(),
        }
    }

    /// Ticks `bar` once per object read.
    pub fn with_progress(mut self, bar: ProgressBar) -> Self {
        bar.set_length(self.objects.len() as u64);
        self.progress = Some(bar);
        self
    }

    /// A decoder with this queue's options, for one worker.
    pub fn decoder(&self) -> Decoder {
        Decoder::new(self.options.clone())
    }

    /// Reads objects until the queue is empty or `emit` returns false, passing on batches of
    /// about [`BATCH_ROWS`] records (the records of several small objects go together).
    pub fn work(&self, decoder: &mut Decoder, mut emit: impl FnMut(RecordBatch) -> bool) {
        while let Some(object) = self.objects.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            let key = object.key();
            let decoded = match object.fetch(self.options.max_object_bytes) {
                Ok(bytes) => decoder.decode_pending(&key, &bytes),
                Err(e) => {
                    self.report
                        .lock()
                        .expect("report lock")
                        .add_fetch_error(&key, &e);
                    continue;
                }
            };
            self.report
                .lock()
                .expect("report lock")
                .add_object(&key, &decoded);
            if let Some(bar) = &self.progress {
                bar.inc(1);
            }
            if decoder.pending() >= BATCH_ROWS {
                for batch in decoder.take_full(BATCH_ROWS) {
                    if !emit(batch) {
                        return;
                    }
                }
            }
        }
        for batch in decoder.take_all() {
            if !emit(batch) {
                return;
            }
        }
    }

    /// The report so far.
    pub fn report(&self) -> ReadReport {
        let mut report = self.report.lock().expect("report lock").clone();
        report.elapsed = self.started.elapsed();
        report
    }
}

/// Reads every object on `threads` threads and returns all batches (in no set order).
pub fn read_all(
    objects: Vec<ObjectRef>,
    options: DecodeOptions,
    threads: usize,
    progress: Option<ProgressBar>,
) -> (Vec<RecordBatch>, ReadReport) {
    read_with(objects, options, threads, progress, false)
}

/// Like [`read_all`], but each batch holds the records of one `eventSource` (what the
/// detection engine groups by), so they need not be copied again to be grouped.
pub fn read_all_by_source(
    objects: Vec<ObjectRef>,
    options: DecodeOptions,
    threads: usize,
    progress: Option<ProgressBar>,
) -> (Vec<RecordBatch>, ReadReport) {
    read_with(objects, options, threads, progress, true)
}

fn read_with(
    objects: Vec<ObjectRef>,
    options: DecodeOptions,
    threads: usize,
    progress: Option<ProgressBar>,
    by_source: bool,
) -> (Vec<RecordBatch>, ReadReport) {
    let mut queue = ReadQueue::new(objects, options);
    if let Some(bar) = progress {
        queue = queue.with_progress(bar);
    }
    let queue = Arc::new(queue);
    let batches = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut decoder = queue.decoder();
                if by_source {
                    decoder = decoder.grouping_by_source();
                }
                let mut mine = Vec::new();
                queue.work(&mut decoder, |batch| {
                    mine.push(batch);
                    true
                });
                batches.lock().expect("batches lock").extend(mine);
            });
        }
    });
    if let Some(bar) = &queue.progress {
        bar.finish_and_clear();
    }
    (batches.into_inner().expect("batches lock"), queue.report())
}

/// Reads Bedrock model invocation logs on `threads` threads into `bedrock_invocations`
/// batches; their problems go into `report` as any object's do.
pub fn read_invocations(
    objects: &[ObjectRef],
    max_object_bytes: usize,
    threads: usize,
    report: &mut ReadReport,
) -> Vec<RecordBatch> {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let out = Mutex::new((Vec::new(), ReadReport::default()));
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, objects.len().max(1)) {
            scope.spawn(|| {
                while let Some(object) = objects.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let key = object.key();
                    let result = object.fetch(max_object_bytes).map(|bytes| {
                        crate::decode::bedrock::decode(&key, &bytes, max_object_bytes)
                    });
                    let mut out = out.lock().expect("invocations lock");
                    match result {
                        Ok(decoded) => {
                            out.1.add_object(&key, &decoded);
                            out.0.extend(decoded.batch);
                        }
                        Err(e) => out.1.add_fetch_error(&key, &e),
                    }
                }
            });
        }
    });
    let (batches, mut read) = out.into_inner().expect("invocations lock");
    read.elapsed = started.elapsed();
    report.merge(&read);
    batches
}

/// Number of worker threads to use by default: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
