//! Statistical detections: they learn each principal's normal behaviour and report what
//! departs from it. Their queries run in the [engine](super::engine) like any detection's; what
//! they return (observations) is put through the kinds below, in event-time order, against
//! the [state](super::state) kept between chunks and runs.
//!
//! * **first-seen**: the query's `value` never seen for its `entity` within the lookback.
//! * **rate**: an entity's count per bucket (of events, or of distinct `value`s) at least
//!   `multiple` times its baseline and at least `floor`. The baseline is the median plus
//!   `mad` scaled median absolute deviations of the entity's own earlier buckets (only those
//!   at the same hours of the day with `daily_cycle`), empty buckets included.
//! * **signal**: records that are a step of a sequence, not a finding alone.
//! * **sequence**: every step (a detection's id) seen for one principal or access key within
//!   the window.
//!
//! Learning: nothing is reported for an account until it has `learning` (default 7 days) of
//! history, and nothing about an entity (first-seen values, rates) until the entity itself has
//! `min_entity_age` of history; a new principal is one low-severity finding of its own (a
//! first-seen detector whose entity is the account), not a flood. Sequences still see the
//! steps of young entities, so a brand-new key that discovers models and invokes them in bulk
//! is found.

use std::collections::BTreeMap;

// State lookups are the hot path of statistical detections: a fast hasher, not SipHash.
use ahash::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimestampMicrosecondType};
use datafusion::arrow::record_batch::RecordBatch;

use super::aggregate;
use super::fields::Match;
use super::rule::{Join, Rate, Rule, Sequence, Stateful};
use super::state::{key, parts, KeptFinding, RateHistory, Reported, Seen, State, Step};
use crate::decode::roundtrip::record_json_with;
use crate::decode::schema::{cloudtrail_schema, SOURCE_KEY_COLUMN};
use crate::finding::Finding;

const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
/// How far past its object's delivery a record may move the state's clock. CloudTrail
/// delivers a file within about 15 minutes of its events.
pub const CLOCK_SLACK: i64 = HOUR;

/// Most entries kept for one account in each table of what the statistics learn: first-seen
/// values and rate histories per detection and account, entities per account. A flood of
/// distinct keys, sessions or addresses (whoever holds a credential can make one) grows the
/// state no further: the least recently seen entries are forgotten first.
pub const MAX_ENTRIES_PER_ACCOUNT: usize = 20_000;

/// Holds each group of `table` (keys alike in their first `group_parts` parts) to `max`
/// entries, forgetting the least recent (by `recency`) first. Returns how many were forgotten.
fn cap<V>(
    table: &mut crate::detect::state::Table<V>,
    group_parts: usize,
    max: usize,
    recency: impl Fn(&V) -> i64,
) -> usize {
    let group = |key: &str| -> String {
        key.split('\u{1f}')
            .take(group_parts)
            .collect::<Vec<_>>()
            .join("\u{1f}")
    };
    let mut counts: HashMap<String, usize> = HashMap::default();
    for (key, _) in table.iter() {
        *counts.entry(group(key)).or_default() += 1;
    }
    let over: HashSet<String> = counts
        .into_iter()
        .filter(|(_, n)| *n > max)
        .map(|(g, _)| g)
        .collect();
    if over.is_empty() {
        return 0;
    }
    let mut by_group: HashMap<String, Vec<(i64, String)>> = HashMap::default();
    for (key, value) in table.iter() {
        let g = group(key);
        if over.contains(&g) {
            by_group
                .entry(g)
                .or_default()
                .push((recency(value), key.clone()));
        }
    }
    let mut forget: HashSet<String> = HashSet::default();
    for (_, mut entries) in by_group {
        entries.sort();
        let extra = entries.len() - max;
        forget.extend(entries.into_iter().take(extra).map(|(_, k)| k));
    }
    table.retain(|key, _| !forget.contains(key));
    forget.len()
}

/// Records of one first-seen value or one rate bucket kept in a finding, at most.
const MAX_EVENTS: usize = 200;
/// How long the objects learned from are remembered past the latest record (so replaying
/// them again reports their findings instead of learning them twice): the default lookback
/// and a day. Replaying older logs against the same state learns them again.
pub const OBJECT_MEMORY: i64 = 15 * DAY;
/// Steps remembered per principal or key, at most.
const MAX_STEPS: usize = 256;

/// How statistical detections learn.
#[derive(Debug, Clone)]
pub struct StatsOptions {
    /// History an account needs before its first-seen and rate findings are reported.
    pub learning: Duration,
}

impl Default for StatsOptions {
    fn default() -> Self {
        Self {
            learning: Duration::from_secs(7 * 86_400),
        }
    }
}

/// The object a record came from, as the state names it: the key from `AWSLogs/` on, so the
/// same log is the same object under any prefix, with the bucket in front for an object read
/// from S3 (`s3://BUCKET/...`): a log in another bucket under the same key is another object.
pub fn object_name(source_key: &str) -> std::borrow::Cow<'_, str> {
    let from_logs = source_key
        .find("AWSLogs/")
        .map_or(source_key, |at| &source_key[at..]);
    match source_key
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((bucket, _)) => format!("{bucket}/{from_logs}").into(),
        None => from_logs.into(),
    }
}

/// The state's names of source keys, position for position (nulls stay null).
fn object_names(keys: &StringArray) -> StringArray {
    keys.iter().map(|k| k.map(object_name)).collect()
}

/// Statistical detections over a run: the stateful rules of a pack and what they learned.
pub struct Stats {
    rules: Vec<Rule>,
    /// Sequences a detection is a step of, by detection id.
    step_of: HashMap<String, Vec<usize>>,
    /// The longest sequence window (steps are kept that long).
    max_window: i64,
    learning: i64,
    pub state: State,
    /// Objects of the chunk being examined: name → (earliest, latest) event time.
    chunk_objects: HashMap<String, (i64, i64)>,
    /// Objects whose records were dated past their delivery: see [`Stats::clamped`].
    clamped: u64,
    /// Entries forgotten at the caps: see [`Stats::evicted`].
    evicted: u64,
    /// Objects of the chunk learned from in an earlier run.
    replayed: HashSet<String>,
    /// Signals (sequence steps) given, by detection id, in this run.
    signals: HashMap<String, usize>,
    /// The chunk being examined.
    chunk: ChunkRecords,
    /// The observations of a chunk (kept between chunks: their memory is reused).
    obs: Vec<Observation>,
}

/// One row a first-seen, rate or signal detector's query returned: an observation.
struct Observation {
    rule: usize,
    batch: usize,
    row: usize,
    time: i64,
    /// A fixed hash of the event id: orders records of the same second the same way in every
    /// run, cheaply.
    id_hash: u64,
}

/// The same hash of an event id in every run.
fn id_hash(id: &str) -> u64 {
    static SEEDED: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
    SEEDED
        .get_or_init(|| ahash::RandomState::with_seeds(0x7472, 0x6169, 0x6c68, 0x6f75))
        .hash_one(id)
}

/// One batch a detector returned, its columns as text: what observations point into.
struct ObservedBatch {
    batch: RecordBatch,
    ids: StringArray,
    accounts: Option<StringArray>,
    /// Each row's object, as an index into `object_names` (as [`object_name`] gives them).
    objects: Vec<Option<u32>>,
    object_names: Option<StringArray>,
    entity: Option<StringArray>,
    value: Option<StringArray>,
    times: Vec<Option<i64>>,
}

fn text_column(batch: &RecordBatch, name: &str) -> Option<StringArray> {
    let column = batch.column_by_name(name)?;
    let column = cast(column, &DataType::Utf8).ok()?;
    Some(column.as_string::<i32>().clone())
}

/// The state's names of the source keys of dictionaries already seen in a chunk, by their
/// values array: a chunk's batches, and every detector's rows of them, share one.
type NamesSeen = Vec<(ArrayRef, StringArray)>;

impl ObservedBatch {
    fn new(batch: RecordBatch, seen: &mut NamesSeen) -> Option<Self> {
        let ids = text_column(&batch, "eventid")?;
        let times = batch
            .column_by_name("eventtime")?
            .as_primitive_opt::<TimestampMicrosecondType>()?
            .iter()
            .collect();
        let (objects, object_names) = match batch.column_by_name(SOURCE_KEY_COLUMN) {
            // Keys are a dictionary (often the whole chunk's, a filter keeps it): each row
            // points into its values.
            Some(keys) if keys.as_any_dictionary_opt().is_some() => {
                let dict = keys.as_any_dictionary();
                let names = match seen.iter().find(|(v, _)| Arc::ptr_eq(v, dict.values())) {
                    Some((_, names)) => names.clone(),
                    None => {
                        let values = cast(dict.values(), &DataType::Utf8).ok()?;
                        let names = object_names(values.as_string::<i32>());
                        seen.push((dict.values().clone(), names.clone()));
                        names
                    }
                };
                let index = dict.normalized_keys();
                let objects = (0..batch.num_rows())
                    .map(|row| keys.is_valid(row).then(|| index[row] as u32))
                    .collect();
                (objects, Some(names))
            }
            Some(_) => {
                let keys = text_column(&batch, SOURCE_KEY_COLUMN)?;
                let objects = (0..batch.num_rows())
                    .map(|row| keys.is_valid(row).then_some(row as u32))
                    .collect();
                (objects, Some(object_names(&keys)))
            }
            None => (vec![None; batch.num_rows()], None),
        };
        Some(Self {
            accounts: text_column(&batch, "recipientaccountid"),
            entity: text_column(&batch, "entity"),
            value: text_column(&batch, "value"),
            ids,
            times,
            objects,
            object_names,
            batch,
        })
    }

    /// The object row `row` came from, as the state names it.
    fn object(&self, row: usize) -> Option<&str> {
        let names = self.object_names.as_ref()?;
        self.objects[row].map(|i| names.value(i as usize))
    }

    fn text(array: &Option<StringArray>, row: usize) -> Option<&str> {
        array
            .as_ref()
            .filter(|a| a.is_valid(row))
            .map(|a| a.value(row))
    }

    fn account(&self, row: usize) -> &str {
        Self::text(&self.accounts, row).unwrap_or("unknown")
    }

    /// The row as a match: its whole record (from the chunk: observations carry only the
    /// columns statistics need) and the query's computed columns.
    fn to_match(&self, row: usize, chunk: &mut ChunkRecords) -> Match {
        let table = cloudtrail_schema();
        let mut extra = BTreeMap::new();
        for (i, field) in self.batch.schema().fields().iter().enumerate() {
            if table.field_with_name(field.name()).is_ok() {
                continue;
            }
            let column = self.batch.column(i);
            if column.is_valid(row) {
                if let Ok(text) = cast(&column.slice(row, 1), &DataType::Utf8) {
                    extra.insert(
                        field.name().clone(),
                        text.as_string::<i32>().value(0).to_string(),
                    );
                }
            }
        }
        Match {
            event_id: self.ids.value(row).to_string(),
            time: self.times[row].unwrap_or_default(),
            record: chunk
                .record(self.ids.value(row))
                .unwrap_or_else(|| record_json_with(&self.batch, row, |_| true, false)),
            extra,
        }
    }
}

/// The batches of the chunk being examined, to find a record by its event id.
#[derive(Default)]
struct ChunkRecords {
    batches: Vec<RecordBatch>,
    /// Event ids (hashed, sorted) → (batch, row), made when first needed.
    index: Option<Vec<(u64, u32, u32)>>,
}

impl ChunkRecords {
    fn new(batches: &[RecordBatch]) -> Self {
        Self {
            batches: batches.to_vec(),
            index: None,
        }
    }

    fn record(&mut self, event_id: &str) -> Option<serde_json::Value> {
        let batches = &self.batches;
        let index = self.index.get_or_insert_with(|| {
            let mut index = Vec::new();
            for (b, batch) in batches.iter().enumerate() {
                let Some(ids) = text_column(batch, "eventid") else {
                    continue;
                };
                for (row, id) in ids.iter().enumerate() {
                    if let Some(id) = id {
                        index.push((id_hash(id), b as u32, row as u32));
                    }
                }
            }
            // Stable: the first of duplicate deliveries comes first.
            index.sort_by_key(|e| e.0);
            index
        });
        let hash = id_hash(event_id);
        let from = index.partition_point(|e| e.0 < hash);
        let &(_, b, row) =
            index[from..]
                .iter()
                .take_while(|e| e.0 == hash)
                .find(|&&(_, b, row)| {
                    text_column(&self.batches[b as usize], "eventid")
                        .is_some_and(|ids| ids.value(row as usize) == event_id)
                })?;
        Some(record_json_with(
            &self.batches[b as usize],
            row as usize,
            |_| true,
            false,
        ))
    }
}

/// What a chunk's first-seen or rate detectors detected, to be reported.
enum Detected {
    FirstSeen {
        rule: usize,
        entity: String,
        value: String,
        account: String,
        time: i64,
    },
    Rate {
        rule: usize,
        entity: String,
        account: String,
        bucket: i64,
        count: u64,
        baseline: f64,
        threshold: f64,
    },
}

fn micros(d: Duration) -> i64 {
    d.as_micros() as i64
}

/// The threshold a bucket's count must reach: (baseline, threshold).
pub fn rate_threshold(rate: &Rate, history: &RateHistory, bucket: i64) -> (f64, f64) {
    let width = micros(rate.bucket).max(1);
    let first = history.first - history.first.rem_euclid(width);
    let start = first.max(bucket - micros(rate.lookback));
    let of_day = |t: i64| t.rem_euclid(DAY);
    let mut counts = Vec::new();
    // The hour just before is left out: a burst that began in the previous bucket is not
    // its own baseline.
    let end = bucket - HOUR.max(width);
    let mut slot = start;
    while slot < end {
        let near = !rate.daily_cycle || {
            let d = (of_day(slot) - of_day(bucket)).abs();
            d.min(DAY - d) <= HOUR
        };
        if near {
            counts.push(history.buckets.get(&slot).copied().unwrap_or(0) as f64);
        }
        slot += width;
    }
    let baseline = if counts.is_empty() {
        0.0
    } else {
        let median = median(&mut counts);
        let mut deviations: Vec<f64> = counts.iter().map(|c| (c - median).abs()).collect();
        median + rate.mad * 1.4826 * self::median(&mut deviations)
    };
    let threshold = (rate.floor as f64).max(rate.multiple * baseline.max(1.0));
    (baseline, threshold)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Steps of `seq` within `[from, to]` (in the listed order when it is `ordered`), one for each
/// of its steps, each a record of its own unless `shared_events`; `None` when there is no
/// such choice. The search tries other candidates when one record would be two steps, up to
/// a budget; past it (a flood of steps) records may be shared rather than the sequence
/// missed.
fn choose_steps<'a>(
    seq: &Sequence,
    steps: &'a [Step],
    from: i64,
    to: i64,
) -> Option<Vec<&'a Step>> {
    fn search<'a>(
        wanted: &[String],
        steps: &'a [Step],
        (from, to, after): (i64, i64, i64),
        (ordered, shared): (bool, bool),
        chosen: &mut Vec<&'a Step>,
        budget: &mut usize,
    ) -> bool {
        let Some((first, rest)) = wanted.split_first() else {
            return true;
        };
        for s in steps {
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            let fits = first.split('|').any(|w| w.trim() == s.detection)
                && s.time >= from
                && s.time <= to
                && (!ordered || s.time >= after)
                && (shared
                    || !chosen
                        .iter()
                        .any(|c| c.event_ids.iter().any(|e| s.event_ids.contains(e))));
            if !fits {
                continue;
            }
            chosen.push(s);
            if search(
                rest,
                steps,
                (from, to, s.time),
                (ordered, shared),
                chosen,
                budget,
            ) {
                return true;
            }
            chosen.pop();
        }
        false
    }
    let mut chosen = Vec::new();
    let mut budget = SEQUENCE_SEARCH_BUDGET;
    let window = (from, to, from);
    if search(
        &seq.steps,
        steps,
        window,
        (seq.ordered, seq.shared_events),
        &mut chosen,
        &mut budget,
    ) {
        return Some(chosen);
    }
    if budget > 0 || seq.shared_events {
        return None;
    }
    chosen.clear();
    let mut budget = SEQUENCE_SEARCH_BUDGET;
    search(
        &seq.steps,
        steps,
        window,
        (seq.ordered, true),
        &mut chosen,
        &mut budget,
    )
    .then_some(chosen)
}

/// Candidate steps a sequence's search looks at, at most, before it lets records be shared.
const SEQUENCE_SEARCH_BUDGET: usize = 20_000;

/// Who a sequence step belongs to.
fn join_key(join: Join, record: &serde_json::Value) -> Option<String> {
    let id = &record["userIdentity"];
    let text = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    match join {
        Join::AccessKey => text(&id["accessKeyId"]),
        Join::Principal => text(&id["sessionContext"]["sessionIssuer"]["arn"])
            .or_else(|| text(&id["arn"]))
            .or_else(|| text(&id["principalId"])),
    }
}

/// A chunk's observations and the batches they point into.
struct Observed<'c> {
    batches: &'c [ObservedBatch],
    all: &'c [Observation],
}

impl<'c> Observed<'c> {
    /// The observation at position `i`.
    fn at(&self, i: u32) -> &'c Observation {
        &self.all[i as usize]
    }

    /// The batch an observation points into.
    fn batch(&self, o: &Observation) -> &'c ObservedBatch {
        &self.batches[o.batch]
    }

    /// An observation's event id.
    fn id(&self, o: &Observation) -> &'c str {
        self.batches[o.batch].ids.value(o.row)
    }

    /// Event-time order, the same in every run.
    fn order(&self, a: &Observation, b: &Observation) -> std::cmp::Ordering {
        (a.time, a.rule, a.id_hash)
            .cmp(&(b.time, b.rule, b.id_hash))
            .then_with(|| self.id(a).cmp(self.id(b)))
    }

    /// Puts observations (by position) in event-time order, each event once: duplicate
    /// deliveries count once.
    fn in_order(&self, members: &mut Vec<u32>) {
        members.sort_unstable_by(|a, b| self.order(self.at(*a), self.at(*b)));
        members.dedup_by(|a, b| {
            let (a, b) = (self.at(*a), self.at(*b));
            a.rule == b.rule && a.id_hash == b.id_hash && self.id(a) == self.id(b)
        });
    }
}

/// What a group of observations is about: the detector (its position), the account, the
/// entity and, for a first-seen detector, the value.
type GroupKey<'c> = (usize, &'c str, &'c str, &'c str);

/// A chunk's observations by what they are about. Each group meets the state once, and
/// groups touch different entries, so taking them one after another is the same as taking
/// every observation in time order.
struct Groups<'c> {
    /// Each group's key and its observations (positions), in event-time order.
    list: Vec<(GroupKey<'c>, Vec<u32>)>,
    /// Each key's position in `list`.
    index: HashMap<GroupKey<'c>, usize>,
    /// Observations of signal detectors, each a step on its own, in event-time order.
    lone: Vec<u32>,
}

/// One version of each finding: the one with the most records (a finding made when an object
/// was first learned from, and updated since, may come back with a replay of that object), in
/// order of first event time.
fn newest_versions(found: Vec<Finding>) -> Vec<Finding> {
    let mut newest: HashMap<String, Finding> = HashMap::default();
    for f in found {
        match newest.get(&f.id) {
            Some(have) if have.count >= f.count => {}
            _ => {
                newest.insert(f.id.clone(), f);
            }
        }
    }
    let mut out: Vec<Finding> = newest.into_values().collect();
    out.sort_by(|a, b| {
        a.first_seen
            .cmp(&b.first_seen)
            .then_with(|| a.id.cmp(&b.id))
    });
    out
}

/// Notes a record of a rate bucket in `recent`, which holds the newest bucket's records (at
/// most [`MAX_EVENTS`]), so a finding the bucket makes in a later chunk lists these too.
fn remember(recent: &mut Vec<(i64, String)>, time: i64, width: i64, event_id: &str) {
    let bucket = time - time.rem_euclid(width);
    match recent.first().map(|(t, _)| t - t.rem_euclid(width)) {
        Some(newest) if newest > bucket => return,
        Some(newest) if newest < bucket => recent.clear(),
        _ => {}
    }
    if recent.len() < MAX_EVENTS {
        recent.push((time, event_id.to_string()));
    }
}

/// Puts records (event time, event id) in the order a finding lists them, the order
/// observations are taken in (time, then a fixed hash of the id), each once, at most
/// [`MAX_EVENTS`].
fn in_finding_order(events: &mut Vec<(i64, String)>) {
    events.sort_by_cached_key(|(t, e)| (*t, id_hash(e), e.clone()));
    events.dedup_by(|a, b| a.1 == b.1);
    events.truncate(MAX_EVENTS);
}

/// Gives `finding` the records `events` (in [`in_finding_order`]): its event ids, count,
/// first and last seen, and its description rendered again from `first`.
fn refit(rule: &Rule, finding: &mut Finding, events: &[(i64, String)], first: &Match) {
    finding.event_ids = events.iter().map(|(_, e)| e.clone()).collect();
    finding.count = events.len();
    if let (Some(earliest), Some(latest)) = (
        events.iter().map(|e| e.0).min(),
        events.iter().map(|e| e.0).max(),
    ) {
        finding.first_seen = earliest;
        finding.last_seen = latest;
    }
    finding.description = aggregate::render(
        &rule.description,
        first,
        finding.count,
        finding.first_seen,
        finding.last_seen,
    );
    finding.bound();
}

impl Stats {
    /// The statistical part of `rules` (the engine's rules, in its order).
    pub fn new(rules: &[Rule], state: State, options: &StatsOptions) -> Self {
        let mut step_of: HashMap<String, Vec<usize>> = HashMap::default();
        let mut max_window = 0;
        for (i, rule) in rules.iter().enumerate() {
            if let Some(Stateful::Sequence(s)) = &rule.stateful {
                if !rule.enabled {
                    continue;
                }
                max_window = max_window.max(micros(s.window));
                for step in s.steps.iter().flat_map(|s| s.split('|')) {
                    let seqs = step_of.entry(step.trim().to_string()).or_default();
                    if !seqs.contains(&i) {
                        seqs.push(i);
                    }
                }
            }
        }
        Self {
            rules: rules.to_vec(),
            step_of,
            max_window,
            learning: micros(options.learning),
            state,
            chunk_objects: HashMap::default(),
            clamped: 0,
            evicted: 0,
            replayed: HashSet::default(),
            signals: HashMap::default(),
            chunk: ChunkRecords::default(),
            obs: Vec::new(),
        }
    }

    /// Signals detection `id` gave in this run.
    pub fn signals(&self, id: &str) -> usize {
        self.signals.get(id).copied().unwrap_or(0)
    }

    /// True when detection `id` reports findings (false for signals and detectors with
    /// `report = false`, which only feed sequences).
    pub fn reports(&self, id: &str) -> bool {
        self.rules
            .iter()
            .find(|r| r.id == id)
            .is_some_and(|r| match &r.stateful {
                Some(Stateful::FirstSeen(p)) => p.report,
                Some(Stateful::Rate(p)) => p.report,
                Some(Stateful::Signal) => false,
                _ => true,
            })
    }

    /// True when any loaded detection is statistical.
    pub fn is_active(&self) -> bool {
        self.rules.iter().any(|r| r.stateful.is_some() && r.enabled)
    }

    /// Notes the chunk about to be examined: which objects it holds (and over which event
    /// times), and each account's earliest record. Call before [`Stats::end_chunk`].
    pub fn begin_chunk(&mut self, batches: &[RecordBatch]) {
        self.chunk = ChunkRecords::new(batches);
        self.chunk_objects.clear();
        self.replayed.clear();
        for batch in batches {
            let (Some(times), Some(keys)) = (
                batch
                    .column_by_name("eventtime")
                    .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
                batch.column_by_name(SOURCE_KEY_COLUMN),
            ) else {
                continue;
            };
            let accounts = text_column(batch, "recipientaccountid");
            // Keys are a dictionary: look each distinct key up once.
            let (names, index): (Vec<String>, Vec<usize>) =
                if let Some(dict) = keys.as_any_dictionary_opt() {
                    let Ok(values) = cast(dict.values(), &DataType::Utf8) else {
                        continue;
                    };
                    let values = values.as_string::<i32>();
                    (
                        values
                            .iter()
                            .map(|v| object_name(v.unwrap_or_default()).to_string())
                            .collect(),
                        dict.normalized_keys(),
                    )
                } else {
                    let Ok(values) = cast(keys, &DataType::Utf8) else {
                        continue;
                    };
                    let values = values.as_string::<i32>();
                    (
                        values
                            .iter()
                            .map(|v| object_name(v.unwrap_or_default()).to_string())
                            .collect(),
                        (0..batch.num_rows()).collect(),
                    )
                };
            let mut ranges: Vec<Option<(i64, i64)>> = vec![None; names.len()];
            let mut account_first: HashMap<&str, i64> = HashMap::default();
            for row in 0..batch.num_rows() {
                if times.is_null(row) {
                    continue;
                }
                let t = times.value(row);
                let r = &mut ranges[index[row]];
                *r = Some(r.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
                if let Some(a) = accounts.as_ref().filter(|a| a.is_valid(row)) {
                    let e = account_first.entry(a.value(row)).or_insert(t);
                    *e = (*e).min(t);
                }
            }
            for (name, range) in names.into_iter().zip(ranges) {
                if let Some((a, b)) = range {
                    let e = self.chunk_objects.entry(name).or_insert((a, b));
                    *e = (e.0.min(a), e.1.max(b));
                }
            }
            for (account, t) in account_first {
                let e = self.state.accounts.entry(account, || t);
                if t < *e {
                    *e = t;
                }
            }
        }
        for (name, &(a, b)) in &self.chunk_objects {
            if self
                .state
                .learned
                .get(name)
                .is_some_and(|r| r.iter().any(|&(s, e)| s <= b && a <= e))
            {
                self.replayed.insert(name.clone());
            }
        }
    }

    /// Examines the chunk's observations (`observations[i]` is what rule `i` returned) and
    /// returns the statistical findings: new ones, those that the chunk's records joined, and
    /// those that objects learned from before made then. The phases, in order:
    ///
    /// 1. [`Stats::observe`]: the rows each detector returned, less records learned before;
    /// 2. [`Stats::group`]: by what they are about, each group in event-time order;
    /// 3. [`Stats::note_entities`]: when each entity was first seen, by any detector;
    /// 4. [`Stats::judge`]: first-seen values and rate buckets against the state: what to
    ///    report, and which observations are signals (sequence steps);
    /// 5. [`Stats::take_steps`]: signals become steps, and complete sequences findings;
    /// 6. [`Stats::join_reported`]: records that join findings of earlier chunks;
    /// 7. [`Stats::report`]: findings of what was detected, with their records;
    /// 8. the chunk's objects are marked learned.
    pub fn end_chunk(
        &mut self,
        observations: Vec<Vec<RecordBatch>>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<Finding> {
        let mut out = self.replayed_findings();
        let mut all = std::mem::take(&mut self.obs);
        let batches = self.observe(observations, &mut all);
        let seen = Observed {
            batches: &batches,
            all: &all,
        };
        let groups = self.group(&seen);
        let entity_first = self.note_entities(&groups, &seen);
        let (detected, signalled) = self.judge(&groups, &seen, &entity_first);
        let sequences = self.take_steps(signalled, &seen, now);
        out.extend(self.join_reported(&groups, &seen));
        out.extend(self.report(detected, &groups, &seen, now));
        for (finding, object) in sequences {
            self.keep(object, &finding, finding.last_seen);
            out.push(finding);
        }
        self.chunk = ChunkRecords::default();
        // The observations' memory is reused by the next chunk.
        self.obs = all;
        self.mark_chunk_learned(now);
        newest_versions(out)
    }

    /// The findings that the chunk's objects learned from before made then.
    fn replayed_findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        for name in &self.replayed {
            let (a, b) = self.chunk_objects[name];
            if let Some(kept) = self.state.findings.get(name) {
                out.extend(
                    kept.iter()
                        .filter(|k| a <= k.time && k.time <= b)
                        .map(|k| k.finding.clone()),
                );
            }
        }
        out
    }

    /// The rows the first-seen, rate and signal detectors returned, as observations in
    /// `all` (cleared first), less those of records learned from before; returns the batches
    /// they point into.
    fn observe(
        &self,
        observations: Vec<Vec<RecordBatch>>,
        all: &mut Vec<Observation>,
    ) -> Vec<ObservedBatch> {
        all.clear();
        let mut batches: Vec<ObservedBatch> = Vec::new();
        let mut names = NamesSeen::new();
        for (rule, returned) in observations.into_iter().enumerate() {
            let Some(r) = self.rules.get(rule) else { break };
            if !r.enabled || matches!(r.stateful, None | Some(Stateful::Sequence(_))) {
                continue;
            }
            for batch in returned {
                let Some(c) = ObservedBatch::new(batch, &mut names) else {
                    continue;
                };
                let b = batches.len();
                for row in 0..c.batch.num_rows() {
                    let Some(time) = c.times[row] else { continue };
                    if c.ids.is_null(row) || ObservedBatch::text(&c.entity, row).is_none() {
                        continue;
                    }
                    if let Some(o) = c.object(row) {
                        if self.replayed.contains(o) && self.state.was_learned(o, time) {
                            continue;
                        }
                    }
                    all.push(Observation {
                        rule,
                        batch: b,
                        row,
                        time,
                        id_hash: id_hash(c.ids.value(row)),
                    });
                }
                batches.push(c);
            }
        }
        batches
    }

    /// The observations by what they are about: a first-seen detector's (account, entity,
    /// value), a rate detector's (account, entity); a signal detector's each on its own.
    fn group<'c>(&self, seen: &Observed<'c>) -> Groups<'c> {
        let mut groups = Groups {
            list: Vec::new(),
            index: HashMap::default(),
            lone: Vec::new(),
        };
        for (i, o) in seen.all.iter().enumerate() {
            let c = seen.batch(o);
            let entity = ObservedBatch::text(&c.entity, o.row).unwrap_or_default();
            let value = match self.rules[o.rule].stateful {
                Some(Stateful::FirstSeen(_)) => match ObservedBatch::text(&c.value, o.row) {
                    Some(v) => v,
                    None => continue,
                },
                Some(Stateful::Rate(_)) => "",
                _ => {
                    groups.lone.push(i as u32);
                    continue;
                }
            };
            let k = (o.rule, c.account(o.row), entity, value);
            let list = &mut groups.list;
            let g = *groups.index.entry(k).or_insert_with(|| {
                list.push((k, Vec::new()));
                list.len() - 1
            });
            groups.list[g].1.push(i as u32);
        }
        for (_, members) in &mut groups.list {
            seen.in_order(members);
        }
        seen.in_order(&mut groups.lone);
        groups
    }

    /// Notes the entities (principals, keys, instances...) the groups are about and returns
    /// when each was first seen, by any detector: an entity's age does not depend on which
    /// detector looks at it.
    fn note_entities<'c>(
        &mut self,
        groups: &Groups<'c>,
        seen: &Observed<'c>,
    ) -> HashMap<(&'c str, &'c str), i64> {
        let mut sightings: HashMap<(&str, &str), (i64, i64, u64)> = HashMap::default();
        for ((_, account, entity, _), members) in &groups.list {
            let first = seen.at(members[0]).time;
            let last = seen.at(members[members.len() - 1]).time;
            let e = sightings
                .entry((*account, *entity))
                .or_insert((first, last, 0));
            *e = (e.0.min(first), e.1.max(last), e.2 + members.len() as u64);
        }
        let mut entity_first = HashMap::default();
        for ((account, entity), (first, last, n)) in sightings {
            let s = self
                .state
                .entities
                .entry(&key(&[account, entity]), || Seen {
                    first,
                    last,
                    count: 0,
                });
            s.first = s.first.min(first);
            s.last = s.last.max(last);
            s.count += n;
            entity_first.insert((account, entity), s.first);
        }
        entity_first
    }

    /// Puts each group through its detector against the state: first-seen values and rate
    /// buckets. Returns what to report (with the group, and the position in it of the
    /// observation that made it) and the observations that are signals (sequence steps),
    /// signal detectors' included.
    fn judge<'c>(
        &mut self,
        groups: &Groups<'c>,
        seen: &Observed<'c>,
        entity_first: &HashMap<(&'c str, &'c str), i64>,
    ) -> (Vec<(Detected, usize, usize)>, Vec<u32>) {
        let learning_period = self.learning;
        let mut detected: Vec<(Detected, usize, usize)> = Vec::new();
        let mut signalled: Vec<u32> = Vec::new();
        for (g, ((r, account, entity, value), members)) in groups.list.iter().enumerate() {
            let rule = &self.rules[*r];
            let account_first = self.state.accounts.get(account).copied();
            let learning = |t: i64| account_first.is_none_or(|first| t < first + learning_period);
            let entity_first = entity_first[&(*account, *entity)];
            match rule.stateful.as_ref() {
                Some(Stateful::FirstSeen(p)) => {
                    let vk = key(&[&rule.id, account, entity, value]);
                    let mut sighting = self.state.values.get(&vk).copied();
                    let mut reported = false;
                    // How many new values the entity has shown, each within the lookback of
                    // the one before (three parts: no value's key can be the same).
                    let nk = key(&[&rule.id, account, entity]);
                    let mut novelty = p
                        .volatile_after
                        .and_then(|_| self.state.values.get(&nk).copied());
                    for (pos, i) in members.iter().enumerate() {
                        let o = seen.at(*i);
                        let new = match &mut sighting {
                            Some(s) => {
                                let stale = s.last < o.time - micros(p.lookback);
                                s.saw(o.time);
                                if stale {
                                    s.first = o.time;
                                }
                                stale
                            }
                            None => {
                                sighting = Some(Seen::new(o.time));
                                true
                            }
                        };
                        // An entity whose values are always new: its new ones say nothing.
                        let volatile = new
                            && p.volatile_after.is_some_and(|n| {
                                novelty.is_some_and(|s| {
                                    o.time - s.last <= micros(p.lookback) && s.count >= n
                                })
                            });
                        if new && p.volatile_after.is_some() {
                            match &mut novelty {
                                Some(s) if o.time - s.last <= micros(p.lookback) => s.saw(o.time),
                                _ => novelty = Some(Seen::new(o.time)),
                            }
                        }
                        // A young entity's values are all new: neither a finding nor a step.
                        if new
                            && !volatile
                            && !learning(o.time)
                            && o.time - entity_first >= micros(p.min_entity_age)
                        {
                            signalled.push(*i);
                            if p.report && !reported {
                                reported = true;
                                detected.push((
                                    Detected::FirstSeen {
                                        rule: *r,
                                        entity: entity.to_string(),
                                        value: value.to_string(),
                                        account: account.to_string(),
                                        time: o.time,
                                    },
                                    g,
                                    pos,
                                ));
                            }
                        }
                    }
                    if let Some(s) = sighting {
                        self.state.values.insert(vk, s);
                    }
                    if let Some(s) = novelty {
                        self.state.values.insert(nk, s);
                    }
                }
                Some(Stateful::Rate(p)) => {
                    let width = micros(p.bucket).max(1);
                    let start = seen.at(members[0]).time;
                    let history =
                        self.state
                            .rates
                            .entry(&key(&[&rule.id, account, entity]), || RateHistory {
                                first: start,
                                ..Default::default()
                            });
                    history.first = history.first.min(start);
                    // The threshold of the bucket being counted (buckets come in order).
                    let mut threshold: Option<(i64, (f64, f64))> = None;
                    for (pos, i) in members.iter().enumerate() {
                        let o = seen.at(*i);
                        let bucket = o.time - o.time.rem_euclid(width);
                        let count = if p.distinct {
                            let value = ObservedBatch::text(&seen.batch(o).value, o.row)
                                .unwrap_or_default();
                            let set = history.values.entry(bucket).or_default();
                            if !set.contains(value) {
                                set.insert(value.to_string());
                            }
                            set.len() as u64
                        } else {
                            history.buckets.get(&bucket).copied().unwrap_or(0) + 1
                        };
                        history.buckets.insert(bucket, count);
                        remember(&mut history.recent, o.time, width, seen.id(o));
                        if count < p.floor || history.fired.contains(&bucket) {
                            continue;
                        }
                        let (baseline, limit) = match threshold {
                            Some((b, t)) if b == bucket => t,
                            _ => {
                                let t = rate_threshold(p, history, bucket);
                                threshold = Some((bucket, t));
                                t
                            }
                        };
                        if (count as f64) < limit {
                            continue;
                        }
                        history.fired.insert(bucket);
                        if learning(o.time) {
                            continue;
                        }
                        signalled.push(*i);
                        if p.report && o.time - entity_first >= micros(p.min_entity_age) {
                            detected.push((
                                Detected::Rate {
                                    rule: *r,
                                    entity: entity.to_string(),
                                    account: account.to_string(),
                                    bucket,
                                    count,
                                    baseline,
                                    threshold: limit,
                                },
                                g,
                                pos,
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        for i in &groups.lone {
            let o = seen.at(*i);
            let account = seen.batch(o).account(o.row);
            let learning = self
                .state
                .accounts
                .get(account)
                .is_none_or(|&first| o.time < first + learning_period);
            if !learning {
                signalled.push(*i);
            }
        }
        (detected, signalled)
    }

    /// Signals, in time order, become steps of the sequences they belong to; returns the
    /// findings of the sequences they complete, each with the object of its last step.
    fn take_steps(
        &mut self,
        mut signalled: Vec<u32>,
        seen: &Observed<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<(Finding, Option<String>)> {
        signalled.sort_unstable_by(|a, b| seen.order(seen.at(*a), seen.at(*b)));
        let mut found = Vec::new();
        for i in &signalled {
            let o = seen.at(*i);
            let id = self.rules[o.rule].id.clone();
            *self.signals.entry(id.clone()).or_default() += 1;
            if self.step_of.contains_key(&id) {
                let c = seen.batch(o);
                let m = c.to_match(o.row, &mut self.chunk);
                let object = c.object(o.row).map(str::to_string);
                for f in self.step(&id, c.account(o.row).to_string(), m, now) {
                    found.push((f, object.clone()));
                }
            }
        }
        found
    }

    /// Records of this chunk that join findings made in earlier chunks (a first-seen value's
    /// day, a rate bucket), so a finding holds the same records however the logs were
    /// chunked. Returns the findings they changed, updated, and updates their kept copies.
    fn join_reported<'c>(&mut self, groups: &Groups<'c>, seen: &Observed<'c>) -> Vec<Finding> {
        // (key of the finding in `reported`, its detection's position, its records now)
        type Joined = (String, usize, Vec<(i64, String)>);
        let mut joined: Vec<Joined> = Vec::new();
        if !self.state.reported.is_empty() {
            let index_of: HashMap<&str, usize> = self
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.as_str(), i))
                .collect();
            for (k, r) in self.state.reported.iter() {
                let Some(&rule) = index_of.get(r.detection.as_str()) else {
                    continue;
                };
                let group = (
                    rule,
                    r.account.as_str(),
                    r.entity.as_str(),
                    r.value.as_str(),
                );
                let Some(&g) = groups.index.get(&group) else {
                    continue;
                };
                let joining: Vec<(i64, String)> = groups.list[g]
                    .1
                    .iter()
                    .map(|i| seen.at(*i))
                    .filter(|o| o.time >= r.from && o.time < r.until)
                    .map(|o| (o.time, seen.id(o).to_string()))
                    .collect();
                if joining.is_empty() {
                    continue;
                }
                let mut events = r.events.clone();
                events.extend(joining);
                in_finding_order(&mut events);
                if events != r.events {
                    joined.push((k.clone(), rule, events));
                }
            }
        }
        let mut out = Vec::new();
        for (k, rule, events) in joined {
            let Some(r) = self.state.reported.get_mut(&k) else {
                continue;
            };
            refit(&self.rules[rule], &mut r.finding, &events, &r.first);
            r.events = events;
            let (finding, object) = (r.finding.clone(), r.object.clone());
            if let Some(kept) = object.and_then(|o| self.state.findings.get_mut(&o)) {
                for k in kept.iter_mut().filter(|k| k.finding.id == finding.id) {
                    k.finding = finding.clone();
                }
            }
            out.push(finding);
        }
        out
    }

    /// The findings of what [`Stats::judge`] detected, with the chunk's records of each: the
    /// group's observations from the first new one (a first-seen value's day), or in the
    /// bucket (with the bucket's records that came in earlier chunks). Each is kept for later
    /// records to join, and with its object for replays.
    fn report<'c>(
        &mut self,
        mut detected: Vec<(Detected, usize, usize)>,
        groups: &Groups<'c>,
        seen: &Observed<'c>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<Finding> {
        let made_by = |d: &(Detected, usize, usize)| seen.at(groups.list[d.1].1[d.2]);
        detected.sort_by(|a, b| seen.order(made_by(a), made_by(b)));
        let mut out = Vec::new();
        for (fire, g, pos) in detected {
            let members = &groups.list[g].1;
            let first = seen.at(members[pos]);
            let c = seen.batch(first);
            let object = c.object(first.row).map(str::to_string);
            let (rule_index, key_parts, start, same): (usize, Vec<String>, i64, Vec<&Observation>) =
                match &fire {
                    Detected::FirstSeen {
                        rule,
                        entity,
                        value,
                        account,
                        time,
                    } => (
                        *rule,
                        vec![account.clone(), entity.clone(), value.clone()],
                        time - time.rem_euclid(DAY),
                        members[pos..]
                            .iter()
                            .map(|i| seen.at(*i))
                            .filter(|o| o.time < time + DAY)
                            .take(MAX_EVENTS)
                            .collect(),
                    ),
                    Detected::Rate {
                        rule,
                        entity,
                        account,
                        bucket,
                        ..
                    } => {
                        let width = match &self.rules[*rule].stateful {
                            Some(Stateful::Rate(p)) => micros(p.bucket),
                            _ => DAY,
                        };
                        let same = members
                            .iter()
                            .map(|i| seen.at(*i))
                            .filter(|o| o.time >= *bucket && o.time < bucket + width)
                            .take(MAX_EVENTS)
                            .collect();
                        (*rule, vec![account.clone(), entity.clone()], *bucket, same)
                    }
                };
            let mut events: Vec<Match> = same
                .iter()
                .map(|o| seen.batch(o).to_match(o.row, &mut self.chunk))
                .collect();
            if let Detected::Rate {
                count,
                baseline,
                threshold,
                bucket,
                ..
            } = &fire
            {
                let e = &mut events[0].extra;
                e.insert("bucket_count".into(), count.to_string());
                e.insert("baseline".into(), format!("{baseline:.1}"));
                e.insert("threshold".into(), format!("{threshold:.0}"));
                e.insert("bucket".into(), crate::finding::iso_time(*bucket));
            }
            let mut listed: Vec<(i64, String)> = same
                .iter()
                .map(|o| (o.time, seen.id(o).to_string()))
                .collect();
            let (value, from, until) = match &fire {
                Detected::FirstSeen { value, time, .. } => (value.clone(), *time, time + DAY),
                Detected::Rate { bucket, .. } => {
                    let width = match &self.rules[rule_index].stateful {
                        Some(Stateful::Rate(p)) => micros(p.bucket).max(1),
                        _ => DAY,
                    };
                    let history = self.state.rates.get(&key(&[
                        &self.rules[rule_index].id,
                        &key_parts[0],
                        &key_parts[1],
                    ]));
                    listed.extend(
                        history
                            .into_iter()
                            .flat_map(|h| &h.recent)
                            .filter(|(t, _)| *t >= *bucket && *t < bucket + width)
                            .cloned(),
                    );
                    (String::new(), *bucket, bucket + width)
                }
            };
            in_finding_order(&mut listed);
            let first_match = events[0].clone();
            let rule = &self.rules[rule_index];
            let mut finding = aggregate::build(rule, &key_parts, start, events, now);
            let same_records = listed.len() == finding.event_ids.len()
                && listed
                    .iter()
                    .zip(&finding.event_ids)
                    .all(|((_, a), b)| a == b);
            if !same_records {
                refit(rule, &mut finding, &listed, &first_match);
            }
            let reported = Reported {
                detection: rule.id.clone(),
                account: key_parts[0].clone(),
                entity: key_parts[1].clone(),
                value,
                from,
                until,
                events: listed,
                first: first_match,
                object: object.clone(),
                finding: finding.clone(),
            };
            self.state.reported.insert(
                key(&[
                    &reported.detection,
                    &reported.account,
                    &reported.entity,
                    &reported.value,
                    &from.to_string(),
                ]),
                reported,
            );
            self.keep(object, &finding, first.time);
            out.push(finding);
        }
        out
    }

    /// Marks the chunk's objects learned from (over the event times seen of each), and moves
    /// the state's clock (its horizon, from which expiry counts back) to the latest record.
    /// The clock follows delivery, not the records' word: a record dated after its object's
    /// delivery (the time in a CloudTrail file's name, or `now` for other files) by more than
    /// [`CLOCK_SLACK`] moves it only that far, and is counted in [`Stats::clamped`].
    fn mark_chunk_learned(&mut self, now: chrono::DateTime<chrono::Utc>) {
        for (name, (a, b)) in std::mem::take(&mut self.chunk_objects) {
            self.state.mark_learned(&name, a, b);
            let delivered = crate::source::key::delivery_time(&name)
                .unwrap_or_else(|| now.timestamp_micros())
                .min(now.timestamp_micros());
            let ceiling = delivered.saturating_add(CLOCK_SLACK);
            if b > ceiling {
                self.clamped += 1;
                tracing::warn!(
                    object = name.as_str(),
                    "records dated up to {}, after the object's delivery at {}: the state's \
                     clock stops at {}",
                    crate::finding::iso_time(b),
                    crate::finding::iso_time(delivered),
                    crate::finding::iso_time(ceiling)
                );
            }
            self.state.horizon = self.state.horizon.max(b.min(ceiling));
        }
    }

    /// Objects whose records were dated after their delivery (by more than [`CLOCK_SLACK`]),
    /// so that the state's clock did not follow them, since this value was made.
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// Keeps a finding with the object that triggered it.
    fn keep(&mut self, object: Option<String>, finding: &Finding, time: i64) {
        if let Some(object) = object {
            self.state
                .findings
                .entry(&object, Vec::new)
                .push(KeptFinding {
                    time,
                    finding: finding.clone(),
                });
        }
    }

    /// Records that detection `id` fired or signalled for the principal of `m`, and returns
    /// the sequences this completes.
    fn step(
        &mut self,
        id: &str,
        account: String,
        m: Match,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let sequences = self.step_of.get(id).cloned().unwrap_or_default();
        let mut recorded: HashSet<String> = HashSet::default();
        for s in sequences {
            let rule = &self.rules[s];
            let Some(Stateful::Sequence(seq)) = &rule.stateful else {
                continue;
            };
            let Some(who) = join_key(seq.join, &m.record) else {
                continue;
            };
            let join = match seq.join {
                Join::Principal => "principal",
                Join::AccessKey => "access_key",
            };
            let sk = key(&[&account, join, &who]);
            let horizon = m.time - self.max_window;
            let steps = self.state.steps.entry(&sk, Vec::new);
            if recorded.insert(sk.clone()) {
                steps.retain(|s| s.time >= horizon);
                if !steps
                    .iter()
                    .any(|s| s.detection == id && s.event_ids.first() == Some(&m.event_id))
                {
                    steps.push(Step {
                        detection: id.to_string(),
                        time: m.time,
                        event_ids: vec![m.event_id.clone()],
                        record: m.record.clone(),
                    });
                    if steps.len() > MAX_STEPS {
                        let excess = steps.len() - MAX_STEPS;
                        steps.drain(..excess);
                    }
                }
            }
            let window = micros(seq.window);
            let Some(mut chosen) = choose_steps(seq, steps, m.time - window, m.time) else {
                continue;
            };
            let fk = key(&[&rule.id, &account, &who]);
            if self
                .state
                .sequences
                .get(&fk)
                .is_some_and(|&last| m.time - last <= window)
            {
                continue;
            }
            chosen.sort_by_key(|s| s.time);
            // Each record once, whatever steps it is (`count` is distinct events).
            let mut events: Vec<Match> = Vec::new();
            let mut listed: HashSet<&str> = HashSet::default();
            for s in &chosen {
                for e in &s.event_ids {
                    if !listed.insert(e.as_str()) {
                        continue;
                    }
                    events.push(Match {
                        event_id: e.clone(),
                        time: s.time,
                        record: s.record.clone(),
                        extra: BTreeMap::new(),
                    });
                }
            }
            let names: Vec<&str> = chosen.iter().map(|s| s.detection.as_str()).collect();
            events[0].extra.insert("steps".into(), names.join(", "));
            events[0].extra.insert("entity".into(), who.clone());
            let start = chosen[0].time - chosen[0].time.rem_euclid(DAY);
            let finding = aggregate::build(rule, &[account.clone(), who], start, events, now);
            self.state.sequences.insert(fk, m.time);
            out.push(finding);
        }
        out
    }

    /// Forgets what is older than each detection's lookback (call before saving).
    pub fn expire(&mut self) {
        let horizon = self.state.horizon;
        if horizon == i64::MIN {
            return;
        }
        let mut lookback: HashMap<&str, i64> = HashMap::default();
        let mut longest = 14 * DAY;
        for r in &self.rules {
            let l = match &r.stateful {
                Some(Stateful::FirstSeen(p)) => micros(p.lookback),
                Some(Stateful::Rate(p)) => micros(p.lookback),
                Some(Stateful::Sequence(p)) => micros(p.window),
                _ => continue,
            };
            longest = longest.max(l);
            lookback.insert(r.id.as_str(), l);
        }
        let of = |k: &str| lookback.get(parts(k)[0]).copied().unwrap_or(longest);
        self.state.values.retain(|k, s| s.last >= horizon - of(k));
        self.state
            .entities
            .retain(|_, s| s.last >= horizon - longest);
        let bucket_of: HashMap<&str, (i64, bool)> = self
            .rules
            .iter()
            .filter_map(|r| match &r.stateful {
                Some(Stateful::Rate(p)) => Some((r.id.as_str(), (micros(p.bucket), p.distinct))),
                _ => None,
            })
            .collect();
        self.state.rates.retain(|k, h| {
            let since = horizon - of(k);
            h.buckets.retain(|&b, _| b >= since);
            h.fired.retain(|&b| b >= since);
            let (width, _) = bucket_of.get(parts(k)[0]).copied().unwrap_or((HOUR, false));
            h.values.retain(|&b, _| b >= horizon - 2 * width);
            !h.buckets.is_empty()
        });
        let window = self.max_window;
        self.state.steps.retain(|_, steps| {
            steps.retain(|s| s.time >= horizon - window);
            !steps.is_empty()
        });
        self.state
            .sequences
            .retain(|_, &mut last| last >= horizon - window);
        let forget = horizon - OBJECT_MEMORY;
        let mut gone = Vec::new();
        self.state.learned.retain(|k, ranges| {
            let keep = ranges.iter().any(|&(_, e)| e >= forget);
            if !keep {
                gone.push(k.to_string());
            }
            keep
        });
        let gone: HashSet<String> = gone.into_iter().collect();
        self.state.findings.retain(|k, _| !gone.contains(k));
        // Findings later records may join: their windows are a day at most.
        self.state.reported.retain(|_, r| r.until >= horizon - DAY);
        // Matches carried for threshold detections: a day of event time is longer than any
        // threshold window.
        self.state.pending.retain(|_, matches| {
            matches.retain(|m| m.time >= horizon - 86_400_000_000);
            !matches.is_empty()
        });
        // What a flood of new keys, sessions or addresses could grow: held to its caps.
        let evicted = cap(&mut self.state.values, 2, MAX_ENTRIES_PER_ACCOUNT, |s| {
            s.last
        }) + cap(&mut self.state.entities, 1, MAX_ENTRIES_PER_ACCOUNT, |s| {
            s.last
        }) + cap(&mut self.state.rates, 2, MAX_ENTRIES_PER_ACCOUNT, |h| {
            h.buckets.keys().next_back().copied().unwrap_or(i64::MIN)
        });
        if evicted > 0 {
            self.evicted += evicted as u64;
            tracing::warn!(
                "the state held more than {MAX_ENTRIES_PER_ACCOUNT} entries for one account and \
                 detection: forgot the {evicted} least recently seen"
            );
        }
    }

    /// Entries forgotten because an account (and detection) reached its cap
    /// ([`MAX_ENTRIES_PER_ACCOUNT`]), since this value was made.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The rules in the engine's order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEN_MINUTES: i64 = 600_000_000;

    fn rate(daily_cycle: bool) -> Rate {
        Rate {
            bucket: Duration::from_secs(600),
            lookback: Duration::from_secs(14 * 86_400),
            multiple: 5.0,
            floor: 20,
            mad: 3.0,
            daily_cycle,
            distinct: false,
            min_entity_age: Duration::ZERO,
            report: true,
        }
    }

    /// A history whose bucket `i` (ten minutes each, from 0) holds `count(i)`.
    fn history(buckets: i64, count: impl Fn(i64) -> u64) -> RateHistory {
        RateHistory {
            first: 0,
            buckets: (0..buckets)
                .map(|i| (i * TEN_MINUTES, count(i)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_steady_entity_has_its_own_level_as_baseline() {
        let h = history(14 * 144, |_| 12);
        let (baseline, threshold) = rate_threshold(&rate(false), &h, 14 * DAY);
        assert_eq!(baseline, 12.0);
        assert_eq!(threshold, 60.0);
    }

    #[test]
    fn a_quiet_entity_is_held_to_the_floor() {
        let h = history(14 * 144, |i| u64::from(i % 50 == 0));
        let (baseline, threshold) = rate_threshold(&rate(false), &h, 14 * DAY);
        assert_eq!(baseline, 0.0);
        assert_eq!(threshold, 20.0);
    }

    #[test]
    fn the_daily_cycle_compares_a_bucket_with_the_same_hours_only() {
        // Busy from 09:00 to 17:00 (100 per bucket), nearly idle at night (2).
        let busy = |i: i64| {
            let hour = (i % 144) / 6;
            if (9..17).contains(&hour) {
                100
            } else {
                2
            }
        };
        let h = history(14 * 144, busy);
        let noon = 14 * DAY + 12 * HOUR;
        let three = 14 * DAY + 3 * HOUR;
        let (day_base, day_threshold) = rate_threshold(&rate(true), &h, noon);
        let (night_base, night_threshold) = rate_threshold(&rate(true), &h, three);
        assert_eq!((day_base, day_threshold), (100.0, 500.0));
        // 60 calls at 03:00 is a burst for this entity.
        assert_eq!((night_base, night_threshold), (2.0, 20.0));
        // Without the cycle, the nights dominate the median and an ordinary working hour
        // (100 calls) would pass the threshold.
        let (flat_base, flat_threshold) = rate_threshold(&rate(false), &h, noon);
        assert_eq!((flat_base, flat_threshold), (2.0, 20.0));
    }

    #[test]
    fn the_hour_before_a_bucket_is_not_its_baseline() {
        // Quiet for two weeks, then a burst that began 50 minutes earlier.
        let start = 14 * 144;
        let h = history(start + 6, |i| if i > start { 500 } else { 0 });
        let (baseline, threshold) = rate_threshold(&rate(false), &h, (start + 6) * TEN_MINUTES);
        assert_eq!(baseline, 0.0);
        assert_eq!(threshold, 20.0);
    }

    #[test]
    fn a_flood_of_values_is_held_to_the_cap_forgetting_the_least_recent() {
        let mut state = crate::detect::state::State::default();
        let key = |detection: &str, account: &str, i: usize| {
            format!("{detection}\u{1f}{account}\u{1f}AKIA{i:016}\u{1f}203.0.113.0/24")
        };
        // One account floods one detection; another account stays small.
        for i in 0..120 {
            state.values.insert(key("d", "1", i), Seen::new(i as i64));
        }
        for i in 0..10 {
            state.values.insert(key("d", "2", i), Seen::new(i as i64));
            state.values.insert(key("e", "1", i), Seen::new(i as i64));
        }
        let forgotten = cap(&mut state.values, 2, 100, |s| s.last);
        assert_eq!(forgotten, 20);
        assert_eq!(state.values.len(), 120);
        // The 20 least recently seen of the flooded group went; the rest stayed.
        assert!(state.values.get(&key("d", "1", 19)).is_none());
        assert!(state.values.get(&key("d", "1", 20)).is_some());
        assert!(state.values.get(&key("d", "2", 0)).is_some());
        assert!(state.values.get(&key("e", "1", 0)).is_some());
        assert_eq!(cap(&mut state.values, 2, 100, |s| s.last), 0);
    }

    #[test]
    fn object_names_start_at_the_cloudtrail_layout() {
        assert_eq!(
            object_name("/data/x/AWSLogs/111122223333/CloudTrail/f.json.gz"),
            "AWSLogs/111122223333/CloudTrail/f.json.gz"
        );
        assert_eq!(object_name("f.jsonl"), "f.jsonl");
        // The same key in another bucket is another object.
        assert_eq!(
            object_name("s3://trail/o-1/AWSLogs/111122223333/CloudTrail/f.json.gz"),
            "trail/AWSLogs/111122223333/CloudTrail/f.json.gz"
        );
        assert_ne!(
            object_name("s3://attacker/AWSLogs/1/CloudTrail/f.json.gz"),
            object_name("s3://trail/AWSLogs/1/CloudTrail/f.json.gz")
        );
    }

    proptest! {
        /// Whatever the history, the threshold respects the floor and the multiple, and a
        /// history never above `c` gives a baseline of at most `c` plus its spread.
        #[test]
        fn the_threshold_respects_floor_and_multiple(
            counts in proptest::collection::vec(0u64..40, 1..600),
            cycle in any::<bool>(),
        ) {
            let n = counts.len() as i64;
            let h = history(n, |i| counts[i as usize]);
            let r = rate(cycle);
            let (baseline, threshold) = rate_threshold(&r, &h, (n + 6) * TEN_MINUTES);
            prop_assert!(baseline >= 0.0);
            prop_assert!(threshold >= r.floor as f64);
            prop_assert!(threshold >= r.multiple * baseline.max(1.0) - 1e-9);
            let max = *counts.iter().max().unwrap() as f64;
            // median ≤ max and MAD ≤ max, so the baseline is at most max·(1 + 1.4826·mad).
            prop_assert!(baseline <= max * (1.0 + 1.4826 * r.mad) + 1e-9);
        }

        /// Median and MAD scale with the counts: an entity ten times as busy has ten times
        /// the baseline (so multiples mean the same for a busy and a quiet entity).
        #[test]
        fn the_baseline_scales_with_the_entity(
            counts in proptest::collection::vec(0u64..40, 10..400),
            factor in 2u64..10,
            cycle in any::<bool>(),
        ) {
            let n = counts.len() as i64;
            let r = rate(cycle);
            let bucket = (n + 6) * TEN_MINUTES;
            let (base, _) = rate_threshold(&r, &history(n, |i| counts[i as usize]), bucket);
            let scaled = history(n, |i| counts[i as usize] * factor);
            let (scaled_base, _) = rate_threshold(&r, &scaled, bucket);
            prop_assert!((scaled_base - base * factor as f64).abs() < 1e-6);
        }
    }
}
