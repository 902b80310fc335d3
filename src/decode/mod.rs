//! Decoding: log object bytes (gzip or plain) → Arrow record batches of the `cloudtrail` table.
//!
//! Accepted bodies: a CloudTrail log file `{"Records":[...]}`, a JSON array of records, or
//! JSON Lines with one record per line (CloudTrail Lake, Athena and `lookup-events` exports).
//! A [`Decoder`] is reused across objects so its buffers are allocated once per thread.
//!
//! Nothing good is dropped because something next to it is bad: a corrupt record is skipped
//! and reported with its index; a truncated or corrupt object yields every complete record
//! before the fault, and the fault is reported.

pub mod bedrock;
pub mod columns;
mod gzip;
pub mod json_text;
pub mod roundtrip;
pub mod schema;
pub mod time;

pub use columns::{BatchError, Projection, RecordProblem, RecordsBuilder, MAX_UNMAPPED_DEPTH};
pub use gzip::{inflate, inflate_streaming, is_gzip, InflateError};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use datafusion::arrow::record_batch::RecordBatch;
use simd_json::{Buffers, Node, Tape};

/// Zero bytes kept after a body so simd-json can read past its end.
pub const PADDING: usize = simd_json::INPUT_PADDING;

/// Default limit on an object's decompressed size: 1 GiB. CloudTrail's own files are far
/// smaller; anything above this is refused rather than risk exhausting memory.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 1 << 30;

/// At most this many problems are kept in detail for one object; the rest are only counted.
const MAX_DETAILED_PROBLEMS: usize = 100;

/// Why an object could not be read in full.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{0}")]
    Inflate(#[from] InflateError),
    #[error("the object is larger than the {limit}-byte limit (see --max-object-size)")]
    TooLarge { limit: usize },
    /// Reading the object would take more memory than the whole budget holds.
    #[error("reading the object needs {needed} bytes of memory, more than the {ceiling} bytes the memory budget can give one object (see --memory-budget)")]
    OverBudget { needed: usize, ceiling: usize },
    #[error("the body is not CloudTrail JSON: {found}; expected {{\"Records\":[...]}}, a JSON array of records, or JSON Lines")]
    Shape { found: String },
    #[error("the body ends in the middle of a record, after {complete} complete records")]
    Truncated { complete: usize },
    #[error("the body is not valid JSON: {detail}")]
    Json { detail: String },
    /// A fault of trailhound's own while decoding (a bug): the object's records, and those of
    /// earlier objects not yet handed on, are dropped and counted rather than taking the
    /// process down.
    #[error("decoding failed on an internal error ({detail}); {dropped} records were dropped with it (please report this)")]
    Internal { detail: String, dropped: usize },
}

impl ObjectError {
    /// A short, stable name for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectError::Inflate(InflateError::TooLarge { .. }) | ObjectError::TooLarge { .. } => {
                "too-large"
            }
            ObjectError::Inflate(InflateError::Corrupt { .. }) => "corrupt-gzip",
            ObjectError::OverBudget { .. } => "over-budget",
            ObjectError::Shape { .. } => "unknown-shape",
            ObjectError::Truncated { .. } => "truncated",
            ObjectError::Json { .. } => "invalid-json",
            ObjectError::Internal { .. } => "internal-error",
        }
    }
}

impl RecordProblem {
    /// A short, stable name for counting skipped records by reason.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordProblem::NotAnObject => "not-an-object",
            RecordProblem::Missing("eventTime") => "no-eventTime",
            RecordProblem::Missing("timestamp") => "no-timestamp",
            RecordProblem::Missing("requestId") => "no-requestId",
            RecordProblem::Missing(_) => "no-eventID",
            RecordProblem::BadTimestamp(_) => "bad-timestamp",
            RecordProblem::BadEventTime(_) => "bad-eventTime",
            RecordProblem::BadEventId => "bad-eventID",
            RecordProblem::InvalidJson(_) => "invalid-record-json",
            RecordProblem::TooDeep { .. } => "too-deep",
            RecordProblem::DuplicateKey(_) => "duplicate-key",
            RecordProblem::OverBudget { .. } => "over-budget",
        }
    }
}

/// Something wrong with part of an object.
#[derive(Debug)]
pub enum Problem {
    /// The object as a whole (records before the fault were still read).
    Object(ObjectError),
    /// One record, by its 0-based position in the body (and its line, for JSON Lines).
    Record {
        index: usize,
        line: Option<usize>,
        problem: RecordProblem,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Object(e) => write!(f, "{e}"),
            Problem::Record {
                index,
                line,
                problem,
            } => {
                write!(f, "record {index}")?;
                if let Some(line) = line {
                    write!(f, " (line {line})")?;
                }
                let outcome = if problem.keeps_record() {
                    "kept, flagged"
                } else {
                    "skipped"
                };
                write!(f, " {outcome}: {problem}")
            }
        }
    }
}

impl Problem {
    /// A short, stable name for counting problems by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Object(e) => e.kind(),
            Problem::Record { problem, .. } => problem.kind(),
        }
    }
}

/// The result of decoding one object.
#[derive(Debug, Default)]
pub struct DecodedObject {
    /// The records read, or `None` when there were none.
    pub batch: Option<RecordBatch>,
    /// Number of records read.
    pub records: usize,
    /// Size of the object as stored.
    pub stored_bytes: usize,
    /// Size of the body after decompression.
    pub body_bytes: usize,
    /// What was wrong, in detail (at most 100 per object).
    pub problems: Vec<Problem>,
    /// Records skipped, including those beyond the detailed list.
    pub skipped_records: usize,
    /// Records kept but flagged (a duplicate key, a field nested too deep), including those
    /// beyond the detailed list.
    pub flagged_records: usize,
    /// Every record problem, detailed or not, counted by [`RecordProblem::kind`]: skipped
    /// records, then flagged ones.
    pub skipped_by_kind: BTreeMap<&'static str, usize>,
    pub flagged_by_kind: BTreeMap<&'static str, usize>,
}

impl DecodedObject {
    pub(crate) fn note(&mut self, problem: Problem) {
        match &problem {
            Problem::Record { problem, .. } if problem.keeps_record() => {
                self.flagged_records += 1;
                *self.flagged_by_kind.entry(problem.kind()).or_default() += 1;
            }
            Problem::Record { problem, .. } => {
                self.skipped_records += 1;
                *self.skipped_by_kind.entry(problem.kind()).or_default() += 1;
            }
            Problem::Object(_) => {}
        }
        if self.problems.len() < MAX_DETAILED_PROBLEMS {
            self.problems.push(problem);
        }
    }

    pub(crate) fn record_problem(
        &mut self,
        index: usize,
        line: Option<usize>,
        problem: RecordProblem,
    ) {
        self.note(Problem::Record {
            index,
            line,
            problem,
        });
    }
}

/// Options for decoding.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Columns to build.
    pub projection: Projection,
    /// Largest decompressed body accepted, in bytes.
    pub max_object_bytes: usize,
    /// The memory every reader using these options shares (stored bytes, bodies, parses).
    pub budget: crate::memory::Budget,
    /// Columns to build of each service's records, for a decoder that groups records by
    /// `eventSource` (see [`Decoder::grouping_by_source`]); `projection` until they are set.
    pub by_source: LateProjections,
}

/// [`SourceProjections`] that may be set after the readers started (replay plans its
/// detections while the first chunk is read); shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct LateProjections(Arc<OnceLock<SourceProjections>>);

impl LateProjections {
    /// Projections set from the start.
    pub fn new(projections: SourceProjections) -> Self {
        let late = Self::default();
        late.set(projections);
        late
    }

    /// Sets the projections for builders made from now on; a second call changes nothing.
    pub fn set(&self, projections: SourceProjections) {
        let _ = self.0.set(projections);
    }

    /// The projections, once set.
    pub fn get(&self) -> Option<&SourceProjections> {
        self.0.get()
    }
}

/// What to decode of each service's records: the detections read different columns of
/// each. Every projection should keep the same columns in its batches (see
/// [`Projection::decoding`]), so that batches of different services share one schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceProjections {
    /// For a service not in `services`.
    pub otherwise: Projection,
    /// By `eventSource`.
    pub services: HashMap<String, Projection>,
}

impl SourceProjections {
    /// The projection for records of `source`.
    pub fn of(&self, source: &str) -> &Projection {
        self.services.get(source).unwrap_or(&self.otherwise)
    }
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            projection: Projection::all(),
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            budget: crate::memory::Budget::new(crate::memory::DEFAULT_BUDGET),
            by_source: LateProjections::default(),
        }
    }
}

/// The memory a decoder may spend on one object's body and its parse (see
/// [`crate::memory`]). The decoder asks for what an object needs before spending it.
pub trait Allowance {
    /// Bytes held now.
    fn granted(&self) -> usize;
    /// Gives back what is held, waits for `bytes` (at most [`ceiling`](Self::ceiling)) and
    /// returns what was granted.
    fn regrant(&mut self, bytes: usize) -> usize;
    /// The most that can ever be granted.
    fn ceiling(&self) -> usize;
}

/// No bound but the decoder's own `max_object_bytes`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unbounded;

impl Allowance for Unbounded {
    fn granted(&self) -> usize {
        usize::MAX
    }
    fn regrant(&mut self, _: usize) -> usize {
        usize::MAX
    }
    fn ceiling(&self) -> usize {
        usize::MAX
    }
}

/// Memory a parse of `body` takes besides the body: simd-json's copy of its strings, and a
/// tape node and structural indexes for every value. Each value follows one of `[ { , :` (or
/// starts the body), so counting those bytes bounds the values from above.
fn parse_cost(body: &[u8]) -> usize {
    // Counted in byte-wide sums of at most 255 bytes, which the compiler turns into vector
    // compares (a byte at a time, this count took a third of a narrow query's time).
    let mut values = 1usize;
    for chunk in body.chunks(255) {
        let mut n = 0u8;
        for &b in chunk {
            n += u8::from(b == b'[')
                + u8::from(b == b'{')
                + u8::from(b == b',')
                + u8::from(b == b':');
        }
        values += usize::from(n);
    }
    body.len() + values * VALUE_BYTES
}

/// The most [`parse_cost`] can be for a body of `len` bytes: a value every two bytes.
fn parse_cost_bound(len: usize) -> usize {
    len.saturating_add((len / 2 + 1).saturating_mul(VALUE_BYTES))
}

/// The most a body of `len` bytes can need: itself with its padding, and the largest parse.
fn worst_need(len: usize) -> usize {
    len.saturating_add(PADDING)
        .saturating_add(parse_cost_bound(len))
}

/// Memory per parsed value: its tape node and (at most two) structural indexes.
const VALUE_BYTES: usize = std::mem::size_of::<Node<'static>>() + 8;

/// What a large object is first expected to cost per byte of body (body, strings, tape)
/// before its parse is counted. CloudTrail's objects cost 4.1–4.8 (real logs and `simulate`'s,
/// counted as [`parse_cost`] does): a guess below that loads such an object twice.
const EXPECTED_COST_PER_BYTE: usize = 5;

/// An object whose worst-case parse needs at most this fraction of the decode ceiling asks for
/// that worst case up front instead of counting its parse.
const WORST_CASE_SHARE: usize = 16;

/// Buffers larger than this are not kept from one object to the next.
const RETAINED_BYTES: usize = 16 << 20;

/// How an object's body is parsed once loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParseMode {
    /// In one go: the allowance covers the whole parse.
    Whole,
    /// A record at a time, each within what the body leaves of the allowance.
    OneByOne { room: usize },
}

/// Decodes objects into `cloudtrail` batches, reusing its buffers from one object to the next.
pub struct Decoder {
    options: DecodeOptions,
    body: Vec<u8>,
    buffers: Buffers,
    tape: Tape<'static>,
    /// Records decoded and not yet taken.
    held: Held,
    /// Pending records before the object being decoded.
    object_start: usize,
}

/// The shape of a body, told from its first bytes.
enum Shape {
    /// `{"Records":[...]}`
    RecordsObject,
    /// `[...]`
    Array,
    /// One JSON object per line (a single object is a one-line file).
    Lines,
}

/// Records decoded and not yet taken: one builder, or one per event source.
struct Held {
    builder: RecordsBuilder,
    /// When grouping by event source: a builder per source (records without one go to
    /// `builder`).
    by_source: Option<HashMap<String, RecordsBuilder>>,
    /// Records in all builders.
    count: usize,
    projection: Projection,
    /// Projections of the builders by source.
    by_source_projection: LateProjections,
    /// Batches that did not assemble since the last [`Decoder::take_lost`].
    lost: Vec<BatchError>,
}

impl Held {
    /// Appends one record to its builder.
    fn append(&mut self, nodes: &[Node<'_>]) -> Result<Option<RecordProblem>, RecordProblem> {
        let source = if self.by_source.is_some() {
            columns::event_source(nodes)
        } else {
            None
        };
        let builder = match (&mut self.by_source, source) {
            (Some(by_source), Some(source)) => {
                // Looked up by `&str` first: no key is allocated for a source already seen.
                if !by_source.contains_key(source) {
                    let projection = match self.by_source_projection.get() {
                        Some(p) => p.of(source).clone(),
                        None => self.projection.clone(),
                    };
                    let builder = RecordsBuilder::new(projection, 256);
                    by_source.insert(source.to_string(), builder);
                }
                match by_source.get_mut(source) {
                    Some(builder) => builder,
                    None => &mut self.builder,
                }
            }
            _ => &mut self.builder,
        };
        let flagged = builder.append(nodes)?;
        self.count += 1;
        Ok(flagged)
    }
}

impl Decoder {
    pub fn new(options: DecodeOptions) -> Self {
        Self::with_capacity(options, 1024)
    }

    /// A decoder whose columns start with room for `records` records (they grow as needed).
    /// A batch keeps the room its columns were given, so a decoder made for one small object
    /// should ask for little.
    pub fn with_capacity(options: DecodeOptions, records: usize) -> Self {
        Self {
            held: Held {
                builder: RecordsBuilder::new(options.projection.clone(), records),
                by_source: None,
                count: 0,
                projection: options.projection.clone(),
                by_source_projection: options.by_source.clone(),
                lost: Vec::new(),
            },
            options,
            body: Vec::new(),
            // About a kilobyte of JSON per record; simd-json grows them as needed.
            buffers: Buffers::new(records.clamp(1, 1024) << 10),
            tape: Tape::null(),
            object_start: 0,
        }
    }

    /// A decoder whose pending records are kept apart by `eventSource`, so each batch it hands
    /// on holds one service's records (for [`take_full`](Self::take_full) and
    /// [`take_all`](Self::take_all); [`decode`](Self::decode) does not group).
    pub fn grouping_by_source(mut self) -> Self {
        self.held.by_source = Some(HashMap::new());
        self
    }

    /// The options this decoder was made with.
    pub fn options(&self) -> &DecodeOptions {
        &self.options
    }

    /// Decodes one stored object into a batch of its own. `source_key` is recorded in the
    /// `sourcekey` column.
    pub fn decode(&mut self, source_key: &str, stored: &[u8]) -> DecodedObject {
        let mut out = self.decode_pending(source_key, stored);
        self.take_pending_into(&mut out);
        out
    }

    /// Sets `out.batch` to the pending records, noting a batch that did not assemble as
    /// `out`'s problem.
    fn take_pending_into(&mut self, out: &mut DecodedObject) {
        out.batch = self.take_pending();
        for lost in self.take_lost() {
            out.note(Problem::Object(ObjectError::Internal {
                detail: lost.detail,
                dropped: lost.records,
            }));
        }
    }

    /// Records decoded by [`decode_pending`](Self::decode_pending) and not yet taken.
    pub fn pending(&self) -> usize {
        self.held.count
    }

    /// The ungrouped records decoded since the last take, as one batch; `None` when there are
    /// none.
    pub fn take_pending(&mut self) -> Option<RecordBatch> {
        if self.held.builder.is_empty() {
            return None;
        }
        self.held.count -= self.held.builder.len();
        match self.held.builder.finish_objects() {
            Ok(batch) => Some(batch),
            Err(e) => {
                self.held.lost.push(e);
                None
            }
        }
    }

    /// Batches that did not assemble since the last call (see
    /// [`RecordsBuilder::finish_objects`]); their records were dropped.
    pub fn take_lost(&mut self) -> Vec<BatchError> {
        std::mem::take(&mut self.held.lost)
    }

    /// Batches of the builders holding at least `rows` pending records.
    pub fn take_full(&mut self, rows: usize) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        let builders = std::iter::once(&mut self.held.builder)
            .chain(self.held.by_source.iter_mut().flat_map(|m| m.values_mut()));
        for builder in builders {
            if builder.len() >= rows.max(1) {
                self.held.count -= builder.len();
                match builder.finish_objects() {
                    Ok(batch) => out.push(batch),
                    Err(e) => self.held.lost.push(e),
                }
            }
        }
        out
    }

    /// Batches of every pending record.
    pub fn take_all(&mut self) -> Vec<RecordBatch> {
        self.take_full(1)
    }

    /// Decodes one stored object, adding its records to those already pending (log objects
    /// often hold a few records each, and a batch per object costs every later step). The
    /// result counts this object's records and problems; its `batch` is always `None`.
    pub fn decode_pending(&mut self, source_key: &str, stored: &[u8]) -> DecodedObject {
        self.decode_pending_within(source_key, stored, &mut Unbounded)
    }

    /// [`decode_pending`](Self::decode_pending), spending no more memory on the object's body
    /// and parse than `allowance` grants. A body whose parse cannot fit the most the allowance
    /// can give is read a record at a time; what even that cannot fit is reported, not read.
    pub fn decode_pending_within(
        &mut self,
        source_key: &str,
        stored: &[u8],
        allowance: &mut dyn Allowance,
    ) -> DecodedObject {
        let work = std::panic::AssertUnwindSafe(|| {
            self.decode_pending_unguarded(source_key, stored, allowance)
        });
        match std::panic::catch_unwind(work) {
            Ok(out) => out,
            Err(panic) => {
                // The builders may hold half a record: start again from empty ones.
                let dropped = self.held.count;
                self.reset();
                let detail = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                let mut out = DecodedObject {
                    stored_bytes: stored.len(),
                    ..Default::default()
                };
                out.note(Problem::Object(ObjectError::Internal { detail, dropped }));
                out
            }
        }
    }

    /// Empties the decoder (its pending records included) as if it were new.
    fn reset(&mut self) {
        let grouping = self.held.by_source.is_some();
        let lost = self.take_lost();
        *self = Decoder::new(self.options.clone());
        self.held.lost = lost;
        if grouping {
            self.held.by_source = Some(HashMap::new());
        }
    }

    fn decode_pending_unguarded(
        &mut self,
        source_key: &str,
        stored: &[u8],
        allowance: &mut dyn Allowance,
    ) -> DecodedObject {
        #[cfg(test)]
        if source_key == tests::PANIC_KEY {
            panic!("decoding {source_key}");
        }
        self.object_start = self.held.count;
        let mut out = DecodedObject {
            stored_bytes: stored.len(),
            ..Default::default()
        };
        let loaded = self.load_within(stored, allowance);
        out.body_bytes = self.body.len();
        match loaded {
            Ok(mode) => self.decode_body(&mut out, mode),
            Err(ObjectError::Inflate(InflateError::Corrupt {
                decompressed,
                source,
            })) => {
                // Keep every complete record before the fault.
                out.note(Problem::Object(ObjectError::Inflate(
                    InflateError::Corrupt {
                        decompressed,
                        source,
                    },
                )));
                if !self.body.is_empty() {
                    let mode = self.parse_mode(allowance);
                    self.decode_body(&mut out, mode);
                }
            }
            Err(e) => out.note(Problem::Object(e)),
        }
        if self.body.capacity() > RETAINED_BYTES {
            // What a large object needed is not kept for the next (the allowance is given
            // back with the object).
            self.body = Vec::new();
            self.buffers = Buffers::new(1 << 20);
            self.tape = Tape::null();
        }
        out.records = self.held.count - self.object_start;
        self.held.builder.end_object(source_key);
        for builder in self.held.by_source.iter_mut().flat_map(|m| m.values_mut()) {
            builder.end_object(source_key);
        }
        out
    }

    /// Puts the object's body (decompressed if need be) in `self.body`, within `allowance`,
    /// and says how to parse it. The allowance is asked for what the body and its parse need
    /// before they are spent: first a guess from the stored size (or the gzip trailer's),
    /// then, if the guess was short, the counted need, loading again from nothing.
    fn load_within(
        &mut self,
        stored: &[u8],
        allowance: &mut dyn Allowance,
    ) -> Result<ParseMode, ObjectError> {
        let limit = self.options.max_object_bytes;
        let gz = is_gzip(stored);
        let guess = if gz {
            gzip::size_hint(stored).unwrap_or(stored.len())
        } else {
            stored.len()
        };
        let guess = guess.min(limit);
        // Asking at once for the most a parse of the guessed body can cost saves counting its
        // values (a pass over every byte), when that is a small share of what can be granted.
        let worst = worst_need(guess);
        let mut want = if worst <= allowance.ceiling() / WORST_CASE_SHARE {
            worst
        } else {
            guess
                .saturating_mul(EXPECTED_COST_PER_BYTE)
                .saturating_add(PADDING)
        };
        // At most three rounds: the guess, the real body size, the counted parse.
        for _ in 0..3 {
            if allowance.granted() < want {
                self.release_body();
                allowance.regrant(want);
            }
            let granted = allowance.granted();
            let room = granted.saturating_sub(PADDING).min(limit);
            let loaded = if gz {
                inflate(stored, &mut self.body, room).map_err(ObjectError::from)
            } else if stored.len() > room {
                Err(ObjectError::TooLarge { limit: room })
            } else {
                self.body.clear();
                self.body.reserve(stored.len() + PADDING);
                self.body.extend_from_slice(stored);
                Ok(())
            };
            match loaded {
                Ok(()) => {}
                Err(
                    ObjectError::TooLarge { .. }
                    | ObjectError::Inflate(InflateError::TooLarge { .. }),
                ) if room < limit => {
                    // Larger than its trailer said, or than the allowance: learn its size
                    // (without keeping it) and ask again.
                    self.release_body();
                    let size = if gz {
                        gzip::inflated_len(stored, limit)
                    } else {
                        Some(stored.len())
                    };
                    let Some(size) = size.filter(|&n| n <= limit) else {
                        return Err(ObjectError::TooLarge { limit });
                    };
                    let needed = size.saturating_add(PADDING);
                    if needed > allowance.ceiling() {
                        return Err(ObjectError::OverBudget {
                            needed,
                            ceiling: allowance.ceiling(),
                        });
                    }
                    want = needed.saturating_add(
                        parse_cost_bound(size).min(allowance.ceiling().saturating_sub(needed)),
                    );
                    continue;
                }
                Err(e) => return Err(e),
            }
            match self.parse_need(allowance) {
                Ok(mode) => return Ok(mode),
                Err(needed) => want = needed,
            }
        }
        Ok(self.parse_mode(allowance))
    }

    /// How the loaded body can be parsed within what `allowance` holds, or the bytes to ask
    /// for so it can be parsed whole.
    fn parse_need(&self, allowance: &dyn Allowance) -> Result<ParseMode, usize> {
        let granted = allowance.granted();
        if worst_need(self.body.len()) <= granted {
            return Ok(ParseMode::Whole);
        }
        let body = self.body.len().saturating_add(PADDING);
        let needed = body.saturating_add(parse_cost(&self.body));
        if needed <= granted {
            Ok(ParseMode::Whole)
        } else if needed <= allowance.ceiling() {
            Err(needed)
        } else {
            Ok(ParseMode::OneByOne {
                room: granted.saturating_sub(body),
            })
        }
    }

    /// [`parse_need`](Self::parse_need) with no more to ask for.
    fn parse_mode(&self, allowance: &dyn Allowance) -> ParseMode {
        let granted = allowance.granted();
        self.parse_need(allowance)
            .unwrap_or_else(|_| ParseMode::OneByOne {
                room: granted.saturating_sub(self.body.len().saturating_add(PADDING)),
            })
    }

    /// Frees the body's memory (before its allowance is given back).
    fn release_body(&mut self) {
        self.body = Vec::new();
        self.buffers = Buffers::new(1 << 10);
        self.tape = Tape::null();
    }

    fn decode_body(&mut self, out: &mut DecodedObject, mode: ParseMode) {
        let len = self.body.len();
        let start = skip_space(&self.body, 0);
        let shape = match self.body.get(start) {
            None => {
                out.note(Problem::Object(ObjectError::Shape {
                    found: "an empty body".into(),
                }));
                return;
            }
            Some(b'[') => Shape::Array,
            Some(b'{') => {
                let key_at = skip_space(&self.body, start + 1);
                if self.body[key_at..].starts_with(b"\"Records\"") {
                    Shape::RecordsObject
                } else {
                    Shape::Lines
                }
            }
            Some(&other) => {
                out.note(Problem::Object(ObjectError::Shape {
                    found: describe_start(&self.body[start..], other),
                }));
                return;
            }
        };
        if let Shape::Lines = shape {
            self.decode_lines(out, mode);
            return;
        }
        if let ParseMode::OneByOne { room } = mode {
            self.salvage_body(out, room);
            return;
        }
        self.body.resize(len + PADDING, 0);
        let mut tape = std::mem::replace(&mut self.tape, Tape::null()).reset();
        let parsed = simd_json::fill_tape_padded(&mut self.body, len, &mut self.buffers, &mut tape);
        match parsed {
            Ok(()) => {
                match records_of(&tape.0) {
                    Ok(records) => {
                        for (index, record) in records.enumerate() {
                            if let Ok(Some(problem)) | Err(problem) = self.held.append(record) {
                                out.record_problem(index, None, problem);
                            }
                        }
                    }
                    Err(found) => out.note(Problem::Object(ObjectError::Shape { found })),
                }
                self.tape = tape.reset();
            }
            Err(_) => {
                self.tape = tape.reset();
                // Parsing rewrote strings in place: read the body again before salvaging.
                self.body.truncate(len);
                self.salvage_body(out, usize::MAX);
            }
        }
    }

    /// Reads `{"Records":[...]}` or `[...]` record by record, keeping every good one, when the
    /// body as a whole is not valid JSON or its parse would not fit the memory allowed. A
    /// record whose own parse needs more than `room` bytes is reported and skipped.
    fn salvage_body(&mut self, out: &mut DecodedObject, room: usize) {
        let body = std::mem::take(&mut self.body);
        let mut at = skip_space(&body, 0);
        let array_start = match body.get(at) {
            Some(b'[') => Some(at),
            Some(b'{') => {
                at = skip_space(&body, at + 1);
                if body[at..].starts_with(b"\"Records\"") {
                    at = skip_space(&body, at + b"\"Records\"".len());
                    if body.get(at) == Some(&b':') {
                        at = skip_space(&body, at + 1);
                    }
                    (body.get(at) == Some(&b'[')).then_some(at)
                } else {
                    None
                }
            }
            _ => None,
        };
        let Some(array_start) = array_start else {
            out.note(Problem::Object(ObjectError::Json {
                detail: json_error(&body),
            }));
            self.body = body;
            return;
        };
        let mut at = array_start + 1;
        let mut index = 0;
        let mut scratch = Vec::new();
        loop {
            at = skip_space(&body, at);
            match body.get(at) {
                None => {
                    out.note(Problem::Object(ObjectError::Truncated {
                        complete: self.held.count - self.object_start,
                    }));
                    break;
                }
                Some(b']') => {
                    let rest = skip_space(&body, at + 1);
                    if !matches!(&body[rest..], [] | [b'}', ..]) {
                        out.note(Problem::Object(ObjectError::Json {
                            detail: "unexpected text after the records".into(),
                        }));
                    }
                    break;
                }
                Some(b',') => {
                    at += 1;
                    continue;
                }
                Some(_) => {}
            }
            let Some(end) = value_end(&body, at) else {
                out.note(Problem::Object(ObjectError::Truncated {
                    complete: self.held.count - self.object_start,
                }));
                break;
            };
            if end == at {
                // A stray `}` where a record should start: no value to read, one byte to skip.
                out.record_problem(
                    index,
                    None,
                    RecordProblem::InvalidJson(format!("unexpected '}}' at byte {at}")),
                );
                index += 1;
                at += 1;
                continue;
            }
            if let Some(needed) = over_room(&body[at..end], room) {
                out.record_problem(index, None, RecordProblem::OverBudget { needed, room });
                index += 1;
                at = end;
                continue;
            }
            scratch.clear();
            scratch.extend_from_slice(&body[at..end]);
            scratch.resize(end - at + PADDING, 0);
            let mut tape = Tape::null();
            let mut buffers = Buffers::new(end - at);
            match simd_json::fill_tape_padded(&mut scratch, end - at, &mut buffers, &mut tape) {
                Ok(()) => {
                    if let Ok(Some(problem)) | Err(problem) = self.held.append(&tape.0) {
                        out.record_problem(index, None, problem);
                    }
                }
                Err(e) => {
                    out.record_problem(index, None, RecordProblem::InvalidJson(e.to_string()))
                }
            }
            index += 1;
            at = end;
        }
        self.body = body;
    }

    /// JSON Lines: every non-blank line is a record; a bad line is reported and skipped, and
    /// so is a line whose parse would need more than the memory allowed.
    fn decode_lines(&mut self, out: &mut DecodedObject, mode: ParseMode) {
        let room = match mode {
            ParseMode::Whole => usize::MAX,
            ParseMode::OneByOne { room } => room,
        };
        let len = self.body.len();
        self.body.resize(len + PADDING, 0);
        let mut slot = std::mem::replace(&mut self.tape, Tape::null());
        let mut line_start = 0;
        let mut index = 0;
        let mut line_no = 0;
        while line_start < len {
            line_no += 1;
            let line_end =
                memchr_newline(&self.body[line_start..len]).map_or(len, |n| line_start + n);
            let next = line_end + 1;
            let (s, e) = trim(&self.body, line_start, line_end);
            line_start = next;
            if s == e {
                continue;
            }
            if let Some(needed) = over_room(&self.body[s..e], room) {
                out.record_problem(
                    index,
                    Some(line_no),
                    RecordProblem::OverBudget { needed, room },
                );
                index += 1;
                continue;
            }
            let mut tape = slot.reset();
            match simd_json::fill_tape_padded(
                &mut self.body[s..],
                e - s,
                &mut self.buffers,
                &mut tape,
            ) {
                Ok(()) => {
                    if let Ok(Some(problem)) | Err(problem) = self.held.append(&tape.0) {
                        out.record_problem(index, Some(line_no), problem);
                    }
                }
                Err(err) => out.record_problem(
                    index,
                    Some(line_no),
                    RecordProblem::InvalidJson(err.to_string()),
                ),
            }
            slot = tape.reset();
            index += 1;
        }
        self.tape = slot;
        self.body.truncate(len);
    }
}

/// The records of a parsed body: the `Records` array of an object, or a top-level array.
/// A single object that is not a `{"Records":...}` wrapper is one record.
fn records_of<'t, 'i>(
    nodes: &'t [Node<'i>],
) -> Result<impl Iterator<Item = &'t [Node<'i>]>, String> {
    let array_at = match nodes[0] {
        Node::Array { .. } => 0,
        Node::Object { len, .. } => {
            let mut i = 1;
            let mut found = None;
            for _ in 0..len {
                let size = json_text::value_len(&nodes[i + 1..]);
                if let Node::String("Records") = nodes[i] {
                    found = Some(i + 1);
                }
                i += 1 + size;
            }
            match found {
                Some(at) if matches!(nodes[at], Node::Array { .. }) => at,
                Some(_) => return Err("`Records` is not an array".into()),
                None => return Err("a JSON object without a `Records` array".into()),
            }
        }
        _ => return Err("a JSON scalar".into()),
    };
    let Node::Array { len, count } = nodes[array_at] else {
        unreachable!()
    };
    let items = &nodes[array_at + 1..array_at + 1 + count];
    let mut at = 0;
    Ok((0..len).map(move |_| {
        let size = json_text::value_len(&items[at..]);
        let item = &items[at..at + size];
        at += size;
        item
    }))
}

fn skip_space(b: &[u8], mut at: usize) -> usize {
    // A UTF-8 byte order mark is tolerated at the very start.
    if at == 0 && b.starts_with(&[0xef, 0xbb, 0xbf]) {
        at = 3;
    }
    while at < b.len() && matches!(b[at], b' ' | b'\n' | b'\r' | b'\t') {
        at += 1;
    }
    at
}

fn trim(b: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && matches!(b[s], b' ' | b'\r' | b'\t') {
        s += 1;
    }
    while e > s && matches!(b[e - 1], b' ' | b'\r' | b'\t') {
        e -= 1;
    }
    (s, e)
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// End (exclusive) of the JSON value starting at `b[at]`, found by bracket counting outside
/// strings; `None` when the body ends first. Scalars end at the next `,` `]` or `}`.
fn value_end(b: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &c) in b.iter().enumerate().skip(at) {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return Some(i),
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// The bytes parsing `record` on its own needs, when that is more than `room`.
fn over_room(record: &[u8], room: usize) -> Option<usize> {
    if room == usize::MAX {
        return None;
    }
    if worst_need(record.len()) <= room {
        return None;
    }
    let needed = record.len() + PADDING + parse_cost(record);
    (needed > room).then_some(needed)
}

fn describe_start(body: &[u8], first: u8) -> String {
    let preview: String = String::from_utf8_lossy(&body[..body.len().min(24)])
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect();
    if first.is_ascii_graphic() || first == b' ' {
        format!("it starts with {preview:?}")
    } else {
        format!("it starts with byte 0x{first:02x} ({preview:?})")
    }
}

fn json_error(body: &[u8]) -> String {
    match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        Err(e) => e.to_string(),
        Ok(_) => "unreadable".into(),
    }
}

/// Records a decoder for one object starts with room for.
const OBJECT_RECORDS_HINT: usize = 32;

/// Decodes one stored object of `kind` into the table its kind is read into (see
/// [`crate::source::KeyKind::table`]): Bedrock invocation logs into `bedrock_invocations`,
/// everything else into `cloudtrail`.
pub fn decode_object(
    kind: crate::source::KeyKind,
    source_key: &str,
    stored: &[u8],
    options: &DecodeOptions,
) -> DecodedObject {
    match kind.table() {
        Some(crate::source::LogTable::BedrockInvocations) => {
            bedrock::decode(source_key, stored, options.max_object_bytes)
        }
        _ => {
            let mut allowance = crate::memory::DecodeAllowance::new(&options.budget);
            // A log object holds a few records to a few hundred: columns with room for a
            // thousand (2 MB) cost the daemon more than decoding them, and its batch kept that
            // room until the whole batch of messages was examined.
            let mut decoder = Decoder::with_capacity(options.clone(), OBJECT_RECORDS_HINT);
            let mut out = decoder.decode_pending_within(source_key, stored, &mut allowance);
            decoder.take_pending_into(&mut out);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    /// The key whose decoding panics in tests (to show that a panic is contained).
    pub(super) const PANIC_KEY: &str = "test: panic while decoding";

    /// A record with `extra` (`"key":value,...`) added after its fields.
    fn record_with(id: &str, extra: &str) -> String {
        let plain = record(id);
        format!("{},{extra}}}", &plain[..plain.len() - 1])
    }

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    /// Every record of `out` rebuilt as JSON.
    fn rebuilt(out: &DecodedObject) -> Vec<serde_json::Value> {
        let batch = out.batch.as_ref().expect("records");
        (0..batch.num_rows())
            .map(|row| super::roundtrip::record_json(batch, row))
            .collect()
    }

    #[test]
    fn the_parse_cost_counts_every_structural_byte() {
        let naive = |body: &[u8]| {
            let values = body
                .iter()
                .filter(|&&b| matches!(b, b'[' | b'{' | b',' | b':'))
                .count()
                + 1;
            body.len() + values * VALUE_BYTES
        };
        let mut bodies: Vec<Vec<u8>> = vec![Vec::new(), b",".repeat(255), b",".repeat(256)];
        bodies.push(b"{:[,".repeat(1000));
        bodies.push(record("e1").repeat(37).into_bytes());
        bodies.push((0..=255u8).cycle().take(10_000).collect());
        for body in &bodies {
            assert_eq!(parse_cost(body), naive(body), "{} bytes", body.len());
        }
    }

    #[test]
    fn a_field_outside_the_schema_nested_past_the_limit_is_kept_as_text() {
        // serde_json stops at 128 levels and simd-json at 1024: both sides of each.
        for depth in [10, 127, 129, 200, 1000] {
            let weird = format!(r#""weird":{}"#, nested(depth));
            let body = format!(
                r#"{{"Records":[{},{}]}}"#,
                record_with("a", &weird),
                record("b")
            );
            let out = Decoder::new(DecodeOptions::default()).decode("k", body.as_bytes());
            assert_eq!(ids(&out), ["a", "b"], "depth {depth}");
            let records = rebuilt(&out);
            let weird = &records[0]["weird"];
            if depth < MAX_UNMAPPED_DEPTH {
                assert!(out.problems.is_empty(), "{:?}", out.problems);
                assert!(weird.is_array());
            } else {
                assert_eq!(out.flagged_records, 1, "depth {depth}");
                assert_eq!(out.problems[0].kind(), "too-deep");
                assert!(out.problems[0]
                    .to_string()
                    .contains("record 0 kept, flagged"));
                assert_eq!(weird.as_str(), Some(nested(depth).as_str()));
            }
        }
    }

    #[test]
    fn deep_request_parameters_are_kept_and_rebuild_without_a_panic() {
        let params = format!(r#""requestParameters":{{"a":{}}}"#, nested(900));
        let body = format!(r#"{{"Records":[{}]}}"#, record_with("a", &params));
        let out = Decoder::new(DecodeOptions::default()).decode("k", body.as_bytes());
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        let records = rebuilt(&out);
        // Deeper than serde_json reads: given as the text itself.
        let text = records[0]["requestParameters"].as_str().expect("text");
        assert!(text.starts_with(r#"{"a":[[[["#), "{text}");
    }

    #[test]
    fn duplicate_keys_of_different_shapes_keep_every_value_and_flag_the_record() {
        let cases = [
            r#""resources":5,"resources":[{"ARN":"arn:a"},7]"#,
            r#""userIdentity":"x","userIdentity":{"type":"IAMUser","odd":{"b":1}}"#,
            r#""userIdentity":{"type":"Root","odd":1},"userIdentity":{"type":"IAMUser"}"#,
            r#""odd":1,"odd":{"b":2},"odd":[3]"#,
            r#""eventName":"StopLogging","eventName":"ListBuckets""#,
        ];
        for extra in cases {
            let body = format!(
                r#"{{"Records":[{},{}]}}"#,
                record_with("a", extra),
                record("b")
            );
            let out = Decoder::new(DecodeOptions::default()).decode("k", body.as_bytes());
            assert_eq!(ids(&out), ["a", "b"], "{extra}");
            let kinds: Vec<_> = out.problems.iter().map(Problem::kind).collect();
            assert_eq!(kinds, ["duplicate-key"], "{extra}");
            assert_eq!((out.flagged_records, out.skipped_records), (1, 0));
            // Every value is somewhere in the rebuilt record.
            let text = rebuilt(&out)[0].to_string();
            for value in ["5", "7", "arn:a", "\"x\"", "IAMUser", "StopLogging", "[3]"] {
                if extra.contains(value) {
                    assert!(text.contains(value), "{value} lost from {extra}: {text}");
                }
            }
        }
    }

    #[test]
    fn a_panic_while_decoding_is_that_objects_error_and_the_decoder_goes_on() {
        let mut decoder = Decoder::new(DecodeOptions::default());
        let first = decoder.decode_pending("k1", trail(&["a"]).as_bytes());
        assert!(first.problems.is_empty());
        let failed = decoder.decode_pending(PANIC_KEY, trail(&["b"]).as_bytes());
        assert_eq!(failed.problems.len(), 1);
        assert_eq!(failed.problems[0].kind(), "internal-error");
        assert!(
            failed.problems[0]
                .to_string()
                .contains("1 records were dropped"),
            "{}",
            failed.problems[0]
        );
        assert_eq!(decoder.pending(), 0);
        let after = decoder.decode("k3", trail(&["c", "d"]).as_bytes());
        assert_eq!(ids(&after), ["c", "d"]);
    }

    fn record(id: &str) -> String {
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2024-03-01T10:00:00Z","eventID":"{id}","eventName":"ListBuckets","eventSource":"s3.amazonaws.com"}}"#
        )
    }

    fn trail(ids: &[&str]) -> String {
        let records: Vec<String> = ids.iter().map(|i| record(i)).collect();
        format!(r#"{{"Records":[{}]}}"#, records.join(","))
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn ids(out: &DecodedObject) -> Vec<String> {
        use datafusion::arrow::array::AsArray;
        let Some(batch) = &out.batch else {
            return vec![];
        };
        let col = batch.column_by_name("eventid").unwrap().as_string::<i32>();
        col.iter().map(|v| v.unwrap().to_string()).collect()
    }

    #[test]
    fn all_three_body_shapes_decode_gzipped_or_not() {
        let shapes = [
            trail(&["a", "b"]),
            format!("[{},{}]", record("a"), record("b")),
            format!("{}\n\n{}\r\n", record("a"), record("b")),
        ];
        let mut decoder = Decoder::new(DecodeOptions::default());
        for body in shapes {
            for stored in [body.as_bytes().to_vec(), gz(body.as_bytes())] {
                let out = decoder.decode("k", &stored);
                assert!(out.problems.is_empty(), "{:?}", out.problems);
                assert_eq!(ids(&out), ["a", "b"]);
            }
        }
    }

    #[test]
    fn truncated_body_keeps_complete_records() {
        let body = trail(&["a", "b", "c"]);
        let cut = &body[..body.len() - 40];
        let mut decoder = Decoder::new(DecodeOptions::default());
        let out = decoder.decode("k", cut.as_bytes());
        assert_eq!(ids(&out), ["a", "b"]);
        assert!(matches!(
            out.problems[..],
            [Problem::Object(ObjectError::Truncated { complete: 2 })]
        ));
    }

    #[test]
    fn truncated_gzip_keeps_complete_records() {
        let body = trail(
            &(0..200)
                .map(|i| format!("id{i}"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let whole = gz(body.as_bytes());
        let cut = &whole[..whole.len() * 2 / 3];
        let out = Decoder::new(DecodeOptions::default()).decode("k", cut);
        assert!(out.records > 50 && out.records < 200, "{}", out.records);
        let kinds: Vec<_> = out.problems.iter().map(Problem::kind).collect();
        assert_eq!(kinds, ["corrupt-gzip", "truncated"]);
    }

    #[test]
    fn a_bad_record_is_skipped_and_named() {
        let body = format!(
            r#"{{"Records":[{},{{"eventID":"x"}},{},{{"eventTime":}},{}]}}"#,
            record("a"),
            record("b"),
            record("c")
        );
        let out = Decoder::new(DecodeOptions::default()).decode("k", body.as_bytes());
        assert_eq!(ids(&out), ["a", "b", "c"]);
        let text: Vec<String> = out.problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].starts_with("record 1 skipped: the record has no `eventTime`"));
        assert!(text[1].starts_with("record 3 skipped: the record is not valid JSON"));
        assert_eq!(out.skipped_records, 2);
    }

    #[test]
    fn a_bad_line_is_skipped_and_named() {
        let body = format!("{}\nnot json\n{}\n", record("a"), record("b"));
        let out = Decoder::new(DecodeOptions::default()).decode("k", body.as_bytes());
        assert_eq!(ids(&out), ["a", "b"]);
        assert_eq!(out.problems.len(), 1);
        assert!(out.problems[0]
            .to_string()
            .starts_with("record 1 (line 2) skipped"));
    }

    #[test]
    fn other_shapes_and_sizes_are_refused_clearly() {
        let mut decoder = Decoder::new(DecodeOptions {
            max_object_bytes: 64,
            ..Default::default()
        });
        for (body, kind) in [
            (&b"<html>no</html>"[..], "unknown-shape"),
            (b"", "unknown-shape"),
            (b"{\"Records\": 5}", "unknown-shape"),
            (b"\"just a string\"", "unknown-shape"),
        ] {
            let out = decoder.decode("k", body);
            assert_eq!(out.records, 0);
            assert_eq!(
                out.problems.iter().map(Problem::kind).collect::<Vec<_>>(),
                [kind],
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let big = trail(&["a", "b", "c"]);
        assert_eq!(
            decoder.decode("k", big.as_bytes()).problems[0].kind(),
            "too-large"
        );
        assert_eq!(
            decoder.decode("k", &gz(big.as_bytes())).problems[0].kind(),
            "too-large"
        );
    }

    #[test]
    fn grouping_decoder_hands_on_one_service_per_batch_with_each_rows_object() {
        use datafusion::arrow::array::AsArray;
        let with_source = |id: &str, source: &str| record(id).replace("s3.amazonaws.com", source);
        let first = format!(
            r#"{{"Records":[{},{},{}]}}"#,
            with_source("a", "kms.amazonaws.com"),
            with_source("b", "s3.amazonaws.com"),
            with_source("c", "kms.amazonaws.com")
        );
        let second = format!(
            r#"{{"Records":[{},{}]}}"#,
            with_source("d", "s3.amazonaws.com"),
            with_source("e", "kms.amazonaws.com")
        );
        let mut decoder = Decoder::new(DecodeOptions::default()).grouping_by_source();
        assert_eq!(decoder.decode_pending("one", first.as_bytes()).records, 3);
        assert_eq!(decoder.decode_pending("two", second.as_bytes()).records, 2);
        assert_eq!(decoder.pending(), 5);
        // Only the kms builder holds three records.
        let full = decoder.take_full(3);
        assert_eq!(full.len(), 1);
        assert_eq!(decoder.pending(), 2);
        let mut batches = full;
        batches.extend(decoder.take_all());
        assert_eq!(decoder.pending(), 0);
        let mut seen = Vec::new();
        for batch in &batches {
            let sources = batch
                .column_by_name("eventsource")
                .unwrap()
                .as_string::<i32>();
            let first_source = sources.value(0);
            assert!(sources.iter().all(|s| s == Some(first_source)));
            let ids = batch.column_by_name("eventid").unwrap().as_string::<i32>();
            let keys = batch.column_by_name("sourcekey").unwrap();
            let keys = datafusion::arrow::compute::cast(
                keys,
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let keys = keys.as_string::<i32>();
            for row in 0..batch.num_rows() {
                seen.push((ids.value(row).to_string(), keys.value(row).to_string()));
            }
        }
        seen.sort();
        let expected: Vec<(String, String)> = [
            ("a", "one"),
            ("b", "one"),
            ("c", "one"),
            ("d", "two"),
            ("e", "two"),
        ]
        .iter()
        .map(|(i, k)| (i.to_string(), k.to_string()))
        .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn value_end_respects_strings() {
        let b = br#"{"a":"}\"]","b":[1,{}]} ,"#;
        assert_eq!(value_end(b, 0), Some(b.len() - 2));
        assert_eq!(value_end(b"12, 3", 0), Some(2));
        assert_eq!(value_end(br#"{"a":"#, 0), None);
    }

    /// An allowance with a fixed ceiling that records what it was asked for.
    struct Recorded {
        granted: usize,
        ceiling: usize,
        asked: Vec<usize>,
    }

    impl Allowance for Recorded {
        fn granted(&self) -> usize {
            self.granted
        }
        fn regrant(&mut self, bytes: usize) -> usize {
            self.asked.push(bytes);
            self.granted = bytes.min(self.ceiling);
            self.granted
        }
        fn ceiling(&self) -> usize {
            self.ceiling
        }
    }

    fn within(stored: &[u8], ceiling: usize) -> (DecodedObject, Recorded) {
        let mut allowance = Recorded {
            granted: 0,
            ceiling,
            asked: Vec::new(),
        };
        let mut decoder = Decoder::new(DecodeOptions::default());
        let mut out = decoder.decode_pending_within("k", stored, &mut allowance);
        out.batch = decoder.take_pending();
        (out, allowance)
    }

    fn gzip(body: &str) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(body.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    /// An object of CloudTrail's usual make-up is inflated once and asks for memory once: its
    /// worst-case parse is a small share of the ceiling, so nothing is counted or loaded again
    /// (a first guess of four bytes per byte was short for such records, and every object
    /// was inflated twice).
    #[test]
    fn an_ordinary_object_asks_once() {
        // Values of the lengths CloudTrail writes (the tests' usual record is denser).
        let records: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","principalId":"AROAEXAMPLEID:session-{i}","arn":"arn:aws:sts::111122223333:assumed-role/app-role/session-{i}","accountId":"111122223333","accessKeyId":"ASIAEXAMPLEKEY{i:06}","sessionContext":{{"sessionIssuer":{{"type":"Role","principalId":"AROAEXAMPLEID","arn":"arn:aws:iam::111122223333:role/app-role","accountId":"111122223333","userName":"app-role"}},"attributes":{{"creationDate":"2024-03-01T09:00:00Z","mfaAuthenticated":"false"}}}}}},"eventTime":"2024-03-01T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.{}","userAgent":"aws-sdk-java/2.20.0 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.6","requestParameters":{{"bucketName":"example-data-bucket","key":"reports/2024/03/01/part-{i:05}.csv","Host":"example-data-bucket.s3.amazonaws.com"}},"responseElements":null,"requestID":"EXAMPLEREQ{i:08}","eventID":"id{i}","readOnly":true,"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111122223333","eventCategory":"Data"}}"#,
                    i % 250
                )
            })
            .collect();
        let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
        let (out, allowance) = within(&gzip(&body), 1 << 30);
        assert_eq!(out.batch.map(|b| b.num_rows()), Some(200));
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(allowance.asked.len(), 1, "{:?}", allowance.asked);
        assert!(allowance.asked[0] >= body.len() + parse_cost(body.as_bytes()));
        // With a small ceiling the first ask is a guess from the size, and it is enough.
        let (out, allowance) = within(&gzip(&body), 16 * (body.len() + PADDING));
        assert_eq!(out.batch.map(|b| b.num_rows()), Some(200));
        let guess = body.len() * EXPECTED_COST_PER_BYTE + PADDING;
        assert_eq!(allowance.asked, [guess]);
        assert!(guess < worst_need(body.len()));
    }

    #[test]
    fn a_body_larger_than_its_trailer_says_is_asked_for_again() {
        let records: Vec<String> = (0..2000).map(|i| record(&format!("id{i}"))).collect();
        let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
        // Two gzip members: the trailer gives the size of the last, one byte.
        let mut stored = gzip(&body);
        stored.extend(gzip(" "));
        let (out, allowance) = within(&stored, 64 << 20);
        assert_eq!(out.batch.map(|b| b.num_rows()), Some(2000));
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(allowance.asked.len(), 2, "{:?}", allowance.asked);
        assert!(allowance.asked[1] >= body.len(), "{:?}", allowance.asked);
    }

    #[test]
    fn a_parse_larger_than_the_ceiling_goes_a_record_at_a_time() {
        // A million tiny values (a parse of 30 MB or so) and two records, in 2 MB of body.
        let body = format!(
            r#"{{"Records":[{},{}{}]}}"#,
            record("first"),
            "0,".repeat(1 << 20),
            record("last")
        );
        let ceiling = 8 << 20;
        let (out, allowance) = within(body.as_bytes(), ceiling);
        assert_eq!(out.batch.map(|b| b.num_rows()), Some(2));
        assert_eq!(out.problems.len(), MAX_DETAILED_PROBLEMS);
        assert!(allowance.asked.iter().all(|&a| a <= 64 << 20));
        assert!(allowance.granted <= ceiling);
        // Unbounded, the same records.
        let whole = Decoder::new(DecodeOptions::default()).decode("k", body.as_bytes());
        assert_eq!(whole.batch.map(|b| b.num_rows()), Some(2));
    }

    #[test]
    fn a_record_larger_than_what_the_body_leaves_is_reported() {
        let big = format!(
            r#"{{"eventTime":"2024-03-01T10:00:00Z","eventID":"big","x":[{}0]}}"#,
            "0,".repeat(1 << 20)
        );
        let body = format!(r#"{{"Records":[{},{big}]}}"#, record("small"));
        let (out, _) = within(body.as_bytes(), 4 << 20);
        assert_eq!(out.batch.map(|b| b.num_rows()), Some(1));
        assert!(
            out.problems[0].to_string().contains("memory budget"),
            "{}",
            out.problems[0]
        );
        assert_eq!(out.problems[0].kind(), "over-budget");
    }

    #[test]
    fn a_body_larger_than_the_ceiling_is_refused() {
        let body = format!(r#"{{"Records":[{}]}}{}"#, record("a"), " ".repeat(8 << 20));
        let (out, allowance) = within(&gzip(&body), 4 << 20);
        assert!(out.batch.is_none());
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].kind(), "over-budget", "{}", out.problems[0]);
        assert!(allowance.granted <= 4 << 20);
    }

    /// Found by fuzzing: an object as `eventTime` was reported by writing out its first
    /// tape node alone, which read past the slice.
    #[test]
    fn an_object_as_event_time_is_a_record_problem() {
        let good = record("a");
        let bad = record("b").replace(
            r#""eventTime":"2024-03-01T10:00:00Z""#,
            r#""eventTime":{"at":["noon",{"x":1}]}"#,
        );
        assert_ne!(bad, record("b"), "the test record has moved on");
        let body = format!(r#"{{"Records":[{good},{bad}]}}"#);
        let out = Decoder::new(DecodeOptions::default()).decode("k", body.as_bytes());
        assert_eq!(out.batch.map(|b| b.num_rows()), Some(1));
        let problem = out.problems[0].to_string();
        // The whole value, as the report quotes it.
        assert!(
            problem.contains(r#"{\"at\":[\"noon\",{\"x\":1}]}"#),
            "{problem}"
        );
    }

    /// Found by fuzzing: a stray `}` among the records of a body being salvaged made a
    /// zero-length value, and the salvage loop never moved on.
    #[test]
    fn a_stray_brace_among_records_is_skipped_not_looped_on() {
        let body = format!(r#"{{"Records":[{},}} {}]"#, record("a"), record("b"));
        let out = Decoder::new(DecodeOptions::default()).decode("k", body.as_bytes());
        assert_eq!(out.batch.map(|b| b.num_rows()), Some(2));
        assert_eq!(out.problems.len(), 1);
        assert!(
            out.problems[0].to_string().contains("unexpected '}'"),
            "{}",
            out.problems[0]
        );
    }
}
