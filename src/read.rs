//! The read path: listed objects → fetched bytes → decoded batches, on every core, with a
//! report of what was read and what was skipped and why.
//!
//! Work is shared through a [`ReadQueue`]: each worker (a thread, or a DataFusion partition)
//! takes the next object, decodes it with its own [`Decoder`] and hands on the batch. Problems
//! are logged as they happen (naming the object, and the record where there is one) and
//! tallied in a [`ReadReport`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Records read but flagged (a duplicate key, a field nested too deep), by reason.
    pub flagged_records: BTreeMap<&'static str, usize>,
    /// Object-level problems, by kind.
    pub object_problems: BTreeMap<&'static str, usize>,
    /// Keys passed over while listing, by kind.
    pub skipped_keys: BTreeMap<KeyKind, usize>,
    /// The first few problems, as `key: message`.
    pub details: Vec<String>,
    /// Wall time spent reading.
    pub elapsed: Duration,
    /// The memory budget reading had, and the most of it reserved at once (bytes).
    pub memory_budget: usize,
    pub memory_peak: usize,
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
            if let crate::decode::Problem::Object(e) = problem {
                *self.object_problems.entry(e.kind()).or_default() += 1
            }
            tracing::warn!(object = key, "{problem}");
            if self.details.len() < MAX_REPORTED_DETAILS {
                self.details.push(format!("{key}: {problem}"));
            }
        }
        // Every record problem, beyond the per-object detail limit too.
        for (kind, n) in &decoded.skipped_by_kind {
            *self.skipped_records.entry(kind).or_default() += n;
        }
        for (kind, n) in &decoded.flagged_by_kind {
            *self.flagged_records.entry(kind).or_default() += n;
        }
    }

    fn add_fetch_error(&mut self, key: &str, error: &crate::source::SourceError) {
        self.objects_with_problems += 1;
        *self.object_problems.entry(error.kind()).or_default() += 1;
        let text = crate::aws::describe(error);
        tracing::warn!(object = key, "{text}");
        if self.details.len() < MAX_REPORTED_DETAILS {
            self.details.push(text);
        }
    }

    /// Records dropped with a batch that did not assemble (a fault of trailhound's own),
    /// counted as skipped and as an object problem of each object they came from.
    fn add_lost(&mut self, lost: &crate::decode::BatchError) {
        *self.skipped_records.entry("internal-error").or_default() += lost.records;
        for key in &lost.sources {
            self.objects_with_problems += 1;
            *self.object_problems.entry("internal-error").or_default() += 1;
            tracing::error!(object = key.as_str(), "{lost}");
            if self.details.len() < MAX_REPORTED_DETAILS {
                self.details.push(format!("{key}: {lost}"));
            }
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
        for (k, v) in &other.flagged_records {
            *self.flagged_records.entry(k).or_default() += v;
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
        self.memory_budget = self.memory_budget.max(other.memory_budget);
        self.memory_peak = self.memory_peak.max(other.memory_peak);
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
        if self.memory_budget > 0 {
            write!(
                f,
                "\nmemory for reading: at most {:.1} MB of the {:.1} MB budget",
                self.memory_peak as f64 / 1e6,
                self.memory_budget as f64 / 1e6,
            )?;
            if let Some(resident) = crate::memory::peak_resident() {
                write!(
                    f,
                    "; {:.1} MB resident at most (the process)",
                    resident as f64 / 1e6
                )?;
            }
        }
        if !self.skipped_keys.is_empty() {
            write!(
                f,
                "\nskipped keys that hold no events: {}",
                counts(&self.skipped_keys)
            )?;
        }
        if self.has_problems() {
            write!(f, "\n{} objects had problems", self.objects_with_problems)?;
            if !self.object_problems.is_empty() {
                write!(f, " ({})", counts(&self.object_problems))?;
            }
            if !self.skipped_records.is_empty() {
                write!(
                    f,
                    "; {} records skipped ({})",
                    self.skipped_record_count(),
                    counts(&self.skipped_records)
                )?;
            }
            if !self.flagged_records.is_empty() {
                write!(
                    f,
                    "; records kept but flagged: {}",
                    counts(&self.flagged_records)
                )?;
            }
            for detail in &self.details {
                write!(f, "\n  {detail}")?;
            }
        }
        Ok(())
    }
}

/// Counts by kind as `3 too-large, 1 corrupt-gzip`.
fn counts<K: std::fmt::Display>(by_kind: &BTreeMap<K, usize>) -> String {
    let parts: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    parts.join(", ")
}

/// Objects waiting to be read, shared by the workers that read them.
pub struct ReadQueue {
    objects: Vec<ObjectRef>,
    next: AtomicUsize,
    /// Decompressed body bytes of the objects taken since the chunk started.
    chunk_body_bytes: AtomicUsize,
    /// Decompressed body bytes of every object read, and their stored bytes.
    body_bytes: AtomicUsize,
    stored_read: AtomicU64,
    /// Stored bytes of every object, and of those taken so far.
    stored_total: u64,
    stored_taken: AtomicU64,
    options: DecodeOptions,
    report: Mutex<ReadReport>,
    progress: Option<ProgressBar>,
    started: Instant,
}

impl ReadQueue {
    pub fn new(objects: Vec<ObjectRef>, options: DecodeOptions) -> Self {
        Self {
            next: AtomicUsize::new(0),
            chunk_body_bytes: AtomicUsize::new(0),
            body_bytes: AtomicUsize::new(0),
            stored_read: AtomicU64::new(0),
            stored_total: objects.iter().map(|o| o.size).sum(),
            stored_taken: AtomicU64::new(0),
            objects,
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
    pub fn work(&self, decoder: &mut Decoder, emit: impl FnMut(RecordBatch) -> bool) {
        self.work_until(decoder, usize::MAX, emit);
    }

    /// [`work`](Self::work), but taking no further object once the objects taken since the
    /// last [`start_chunk`](Self::start_chunk) hold `chunk_bytes` of decompressed body
    /// between them. Every object's stored bytes, body and parse are reserved from the
    /// options' memory budget before they are spent.
    pub fn work_until(
        &self,
        decoder: &mut Decoder,
        chunk_bytes: usize,
        mut emit: impl FnMut(RecordBatch) -> bool,
    ) {
        let budget = &self.options.budget;
        // A stored object the budget could not hold is refused, as one over the size limit.
        let limit = self.options.max_object_bytes.min(budget.fetch_ceiling());
        loop {
            if self.chunk_body_bytes.load(Ordering::Relaxed) >= chunk_bytes {
                break;
            }
            let Some(object) = self.objects.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            self.stored_taken.fetch_add(object.size, Ordering::Relaxed);
            let key = object.key();
            let stored = budget.reserve_fetch_blocking(object.size.min(limit as u64) as usize);
            let decoded = match object.fetch(limit) {
                Ok(bytes) => {
                    let mut allowance = crate::memory::DecodeAllowance::new(budget);
                    decoder.decode_pending_within(&key, &bytes, &mut allowance)
                }
                Err(e) => {
                    crate::sync::lock(&self.report).add_fetch_error(&key, &e);
                    continue;
                }
            };
            drop(stored);
            self.chunk_body_bytes
                .fetch_add(decoded.body_bytes, Ordering::Relaxed);
            self.body_bytes
                .fetch_add(decoded.body_bytes, Ordering::Relaxed);
            self.stored_read.fetch_add(object.size, Ordering::Relaxed);
            crate::sync::lock(&self.report).add_object(&key, &decoded);
            if let Some(bar) = &self.progress {
                bar.inc(1);
            }
            if decoder.pending() >= BATCH_ROWS && !self.hand_on(decoder, BATCH_ROWS, &mut emit) {
                return;
            }
        }
        self.hand_on(decoder, 1, &mut emit);
    }

    /// Emits the decoder's batches of at least `rows` records, reporting any that did not
    /// assemble; false when `emit` wants no more.
    fn hand_on(
        &self,
        decoder: &mut Decoder,
        rows: usize,
        emit: &mut impl FnMut(RecordBatch) -> bool,
    ) -> bool {
        let batches = decoder.take_full(rows);
        for lost in decoder.take_lost() {
            crate::sync::lock(&self.report).add_lost(&lost);
        }
        for batch in batches {
            if !emit(batch) {
                return false;
            }
        }
        true
    }

    /// Starts a new chunk for [`work_until`](Self::work_until); false when every object has
    /// been taken.
    pub fn start_chunk(&self) -> bool {
        self.chunk_body_bytes.store(0, Ordering::Relaxed);
        self.next.load(Ordering::Relaxed) < self.objects.len()
    }

    /// The decompressed size to cut the next chunk at, for chunks of `chunk_bytes`: full
    /// chunks until about two are left, then smaller ones (see [`tapered`]). What is left is
    /// estimated from the stored size of the objects not taken yet, at the ratio of body to
    /// stored bytes of those read.
    pub fn next_chunk_bytes(&self, chunk_bytes: usize) -> usize {
        let read = self.stored_read.load(Ordering::Relaxed);
        let body = self.body_bytes.load(Ordering::Relaxed) as u64;
        if read == 0 || body == 0 {
            return chunk_bytes;
        }
        let left = self
            .stored_total
            .saturating_sub(self.stored_taken.load(Ordering::Relaxed));
        let left = (left as f64 * body as f64 / read as f64).min(usize::MAX as f64) as usize;
        tapered(chunk_bytes, left)
    }

    /// Objects taken so far.
    pub fn taken(&self) -> usize {
        self.next.load(Ordering::Relaxed).min(self.objects.len())
    }

    /// The report so far, emptied (for reports chunk by chunk).
    pub fn take_report(&self) -> ReadReport {
        let report = std::mem::take(&mut *crate::sync::lock(&self.report));
        self.finished(report)
    }

    /// The report so far.
    pub fn report(&self) -> ReadReport {
        self.finished(crate::sync::lock(&self.report).clone())
    }

    fn finished(&self, mut report: ReadReport) -> ReadReport {
        report.elapsed = self.started.elapsed();
        report.memory_budget = self.options.budget.total();
        report.memory_peak = self.options.budget.peak();
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
                crate::sync::lock(&batches).extend(mine);
            });
        }
    });
    if let Some(bar) = &queue.progress {
        bar.finish_and_clear();
    }
    (crate::sync::into_inner(batches), queue.report())
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
                    let mut out = crate::sync::lock(&out);
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
    let (batches, mut read) = crate::sync::into_inner(out);
    read.elapsed = started.elapsed();
    report.merge(&read);
    batches
}

/// Number of worker threads to use by default: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The default size of a replay chunk: decompressed bytes of log objects read and examined
/// together.
pub const DEFAULT_CHUNK: &str = "64MiB";

/// Objects in order of delivery: the time in their key, then the key. Records come roughly in
/// event-time order this way, which keeps what statistics hold in work small.
pub fn delivery_order(objects: &mut [ObjectRef]) {
    objects.sort_by_cached_key(|o| {
        let key = o.key();
        (
            crate::source::key::delivery_time(&key).unwrap_or(i64::MIN),
            key,
        )
    });
}

/// Event times a run keeps: from `since` (inclusive) to `until` (exclusive), in microseconds
/// since the epoch; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl TimeWindow {
    /// True when neither end is set.
    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    /// True when an object delivered at the time its key names may hold records in the
    /// window: one delivered before `since` holds only earlier events. Keys without a
    /// delivery time may hold anything.
    pub fn may_hold(&self, key: &str) -> bool {
        match (self.since, crate::source::key::delivery_time(key)) {
            (Some(since), Some(delivered)) => delivered >= since,
            _ => true,
        }
    }

    /// The rows of `batch` whose event time is in the window; `None` when none is.
    pub fn keep(&self, batch: RecordBatch) -> Option<RecordBatch> {
        use datafusion::arrow::array::{AsArray, BooleanArray};
        use datafusion::arrow::datatypes::TimestampMicrosecondType;
        if self.is_open() {
            return Some(batch);
        }
        let times = batch
            .column_by_name("eventtime")?
            .as_primitive_opt::<TimestampMicrosecondType>()?;
        let keep: BooleanArray = times
            .iter()
            .map(|t| {
                Some(t.is_some_and(|t| {
                    self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
                }))
            })
            .collect();
        let out = datafusion::arrow::compute::filter_record_batch(&batch, &keep).ok()?;
        (out.num_rows() > 0).then_some(out)
    }
}

/// The size of a chunk when about `left` bytes of body are left to read in chunks of
/// `chunk`: a whole chunk while two or more are left, then half of what is left, never less
/// than a quarter of a chunk; what is left once it is below three eighths of a chunk is one
/// chunk (with room for the estimate to be short by half).
///
/// Chunks are read, examined and concluded in a pipeline, one stage each. Once the last chunk
/// is read, its examination and conclusion are all that run, on fewer threads than there are
/// cores, so a small last chunk ends the run sooner. The quarter bounds the chunks added (two
/// or three), each of which has a fixed cost.
pub fn tapered(chunk: usize, left: usize) -> usize {
    if left >= chunk.saturating_mul(2) {
        chunk
    } else if left <= chunk / 8 * 3 {
        chunk / 2
    } else {
        (left / 2).clamp(chunk / 4, chunk)
    }
}

/// One chunk read by a [`ReadAhead`].
#[derive(Debug)]
pub struct ReadChunk {
    /// Objects in the chunk.
    pub objects: usize,
    /// Its records, each batch of one `eventSource`.
    pub batches: Vec<RecordBatch>,
    pub report: ReadReport,
}

/// The next chunk of `queue`'s objects, read on `threads` threads: objects until their
/// decompressed bodies reach `chunk_bytes` (less towards the end: [`tapered`]), their records
/// in batches of one `eventSource` each. `None` once every object has been read.
pub fn read_chunk(queue: &ReadQueue, chunk_bytes: usize, threads: usize) -> Option<ReadChunk> {
    let chunk_bytes = queue.next_chunk_bytes(chunk_bytes);
    if !queue.start_chunk() {
        return None;
    }
    let before = queue.taken();
    let started = Instant::now();
    let batches = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut decoder = queue.decoder().grouping_by_source();
                let mut mine = Vec::new();
                queue.work_until(&mut decoder, chunk_bytes, |batch| {
                    mine.push(batch);
                    true
                });
                crate::sync::lock(&batches).extend(mine);
            });
        }
    });
    let objects = queue.taken() - before;
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        objects,
        "read chunk"
    );
    Some(ReadChunk {
        objects,
        batches: crate::sync::into_inner(batches),
        report: queue.take_report(),
    })
}

/// Why reading ahead failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadAheadError {
    #[error("cannot start the thread that reads the logs: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the thread reading the logs failed: {0}")]
    Panicked(String),
}

/// Reads chunks of objects in their order on a thread of its own, one chunk ahead of the
/// caller, who examines the chunk before meanwhile. An iterator of [`ReadChunk`]s; call
/// [`ReadAhead::finish`] at the end to learn whether the reader failed.
pub struct ReadAhead {
    received: std::sync::mpsc::Receiver<ReadChunk>,
    thread: std::thread::JoinHandle<()>,
}

impl ReadAhead {
    /// Starts reading `objects`, in their order, with `threads` readers, in chunks of about
    /// `chunk_bytes` of decompressed body (an object larger than that is a chunk of its own).
    pub fn spawn(
        objects: Vec<ObjectRef>,
        chunk_bytes: usize,
        options: DecodeOptions,
        threads: usize,
    ) -> Result<Self, ReadAheadError> {
        let (sender, received) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("trailhound-read".into())
            .spawn(move || {
                let queue = ReadQueue::new(objects, options);
                while let Some(read) = read_chunk(&queue, chunk_bytes, threads) {
                    if sender.send(read).is_err() {
                        break; // the caller stopped
                    }
                }
            })
            .map_err(ReadAheadError::Spawn)?;
        Ok(Self { received, thread })
    }

    /// Waits for the reader to end; an error when it failed (its chunks stopped coming).
    pub fn finish(self) -> Result<(), ReadAheadError> {
        drop(self.received);
        self.thread.join().map_err(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "it panicked".into());
            ReadAheadError::Panicked(message)
        })
    }
}

impl Iterator for ReadAhead {
    type Item = ReadChunk;

    fn next(&mut self) -> Option<ReadChunk> {
        self.received.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{KeyKind, Location};

    /// A log object written to `path` (its folders made) holding `body`.
    fn log_file(path: &std::path::Path, body: &str) -> ObjectRef {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
        ObjectRef {
            location: Location::File(path.to_path_buf()),
            size: body.len() as u64,
            kind: KeyKind::CloudTrailLog,
        }
    }

    #[test]
    fn chunks_follow_delivery_time_and_are_cut_by_decoded_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let name = |time: &str, id: &str| {
            format!("AWSLogs/1/CloudTrail/us-east-1/2026/10/05/1_CloudTrail_us-east-1_20261005T{time}Z_{id}.json")
        };
        let mut objects = Vec::new();
        for (time, id) in [("1200", "late"), ("0800", "early"), ("1000", "middle")] {
            let body = format!(
                r#"{{"Records":[{{"eventTime":"2026-10-05T{}:00:00Z","eventID":"{id}"}}]}}"#,
                &time[..2]
            );
            objects.push(log_file(&dir.path().join(name(time, id)), &body));
        }
        delivery_order(&mut objects);
        let body = objects[0].size as usize;
        // Two bodies fill a chunk of one and a half.
        let reader = ReadAhead::spawn(objects, body * 3 / 2, DecodeOptions::default(), 1).unwrap();
        let chunks: Vec<Vec<String>> = reader
            .map(|chunk| {
                let mut ids = Vec::new();
                for batch in &chunk.batches {
                    let column = batch.column_by_name("eventid").unwrap();
                    let column = datafusion::arrow::array::AsArray::as_string::<i32>(column);
                    ids.extend(column.iter().flatten().map(str::to_string));
                }
                assert_eq!(chunk.objects, ids.len());
                ids
            })
            .collect();
        assert_eq!(chunks, vec![vec!["early", "middle"], vec!["late"]]);
    }

    #[test]
    fn the_last_chunks_are_smaller() {
        // By the rule: whole chunks while two are left, then half of what is left, down to a
        // quarter of a chunk; below three eighths, the rest at once.
        assert_eq!(tapered(64, 1000), 64);
        assert_eq!(tapered(64, 128), 64);
        assert_eq!(tapered(64, 100), 50);
        assert_eq!(tapered(64, 40), 20);
        assert_eq!(tapered(64, 30), 16);
        assert_eq!(tapered(64, 24), 32);
        assert_eq!(tapered(64, 3), 32);
        // As read: 40 objects of one body each, in chunks of eight bodies.
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("AWSLogs/1/CloudTrail/us-east-1/2026/10/05");
        let mut objects = Vec::new();
        for i in 0..40 {
            let path = folder.join(format!(
                "1_CloudTrail_us-east-1_20261005T{:02}{:02}Z_o{i:02}.json",
                i / 4,
                i % 4 * 15
            ));
            let body = format!(
                r#"{{"Records":[{{"eventTime":"2026-10-05T10:00:00Z","eventID":"e{i:02}"}}]}}"#
            );
            objects.push(log_file(&path, &body));
        }
        delivery_order(&mut objects);
        let body = objects[0].size as usize;
        let reader = ReadAhead::spawn(objects, body * 8, DecodeOptions::default(), 1).unwrap();
        let sizes: Vec<usize> = reader.map(|chunk| chunk.objects).collect();
        assert_eq!(sizes, vec![8, 8, 8, 8, 4, 2, 2]);
    }

    #[test]
    fn a_window_keeps_objects_that_may_hold_its_events() {
        let since = crate::decode::time::parse_event_time("2026-10-05T09:00:00Z").unwrap();
        let window = TimeWindow {
            since: Some(since),
            until: None,
        };
        assert!(!window.may_hold(
            "AWSLogs/1/CloudTrail/us-east-1/2026/10/05/1_CloudTrail_us-east-1_20261005T0800Z_a.json.gz"
        ));
        assert!(window.may_hold(
            "AWSLogs/1/CloudTrail/us-east-1/2026/10/05/1_CloudTrail_us-east-1_20261005T1000Z_a.json.gz"
        ));
        assert!(window.may_hold("export.jsonl"));
        assert!(TimeWindow::default().is_open());
    }
}
