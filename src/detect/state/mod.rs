//! What stateful detections remember: when each account, entity and value was first and last
//! seen, each entity's counts per time bucket, recent sequence steps, the log objects already
//! learned from, and the statistical findings those objects produced.
//!
//! A [`State`] lives in memory while a run works and is saved to a [`Store`] after the run's
//! findings are out: an embedded [redb](https://docs.rs/redb) file by default. Entries older
//! than their detection's lookback expire when it is saved, so the store stays small.
//!
//! Learning from the same records twice would count them twice. The state therefore keeps,
//! per log object, the event-time ranges it has learned from; records inside them are not
//! learned again, and the statistical findings they produced the first time are reported again
//! instead (same ids). A crash before the save loses nothing: the next run learns the objects
//! anew and reports the same findings.

use std::collections::{BTreeMap, BTreeSet};

use ahash::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub mod dynamodb;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::finding::Finding;

/// Version of the stored layout; a store of another version is refused, not misread. (Tables
/// added since, `reported` and `sent`, are read as empty from an older store.)
pub const FORMAT_VERSION: u32 = 1;

/// Where layouts before the `sent` table kept the daemon's sent findings: in `findings`, under
/// this prefix and the finding's id.
const LEGACY_SENT: &str = "sent\u{1f}";

/// The cause under a [`StateError`]: the store's own error, or what was wrong.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the state could not be read or written. The cause is kept as the error's source, so
/// a caller printing the chain (the CLI does) shows why.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state {path}")]
    Store {
        path: String,
        #[source]
        source: Cause,
    },
    #[error("state {path}: entry {key:?} of {table} is unreadable")]
    Corrupt {
        path: String,
        table: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StateError {
    /// The store at `path` failed because of `cause` (an error, or a message).
    pub fn store(path: impl Into<String>, cause: impl Into<Cause>) -> Self {
        StateError::Store {
            path: path.into(),
            source: cause.into(),
        }
    }
}

/// First and last sighting of something, and how often it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub first: i64,
    pub last: i64,
    pub count: u64,
}

impl Seen {
    pub fn new(time: i64) -> Self {
        Self {
            first: time,
            last: time,
            count: 1,
        }
    }

    pub fn saw(&mut self, time: i64) {
        self.first = self.first.min(time);
        self.last = self.last.max(time);
        self.count += 1;
    }
}

/// An entity's counts per bucket for one rate detector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateHistory {
    /// Event time the entity was first counted.
    pub first: i64,
    /// Bucket start → count (events, or distinct values).
    pub buckets: BTreeMap<i64, u64>,
    /// Buckets that already made a finding or a signal.
    pub fired: BTreeSet<i64>,
    /// Distinct values of the recent buckets (distinct-counting detectors only).
    pub values: BTreeMap<i64, BTreeSet<String>>,
    /// The newest bucket's records (event time, event id), at most as many as a finding
    /// lists: when the bucket makes a finding in a later chunk, these are in it too.
    #[serde(default)]
    pub recent: Vec<(i64, String)>,
}

/// One step of a sequence that happened: a detection fired or signalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub detection: String,
    pub time: i64,
    pub event_ids: Vec<String>,
    /// The first record behind the step, as a finding describes it.
    pub record: serde_json::Value,
}

/// A statistical finding kept with the object that triggered it, to be reported again when
/// the object is replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptFinding {
    /// Event time of the triggering record.
    pub time: i64,
    pub finding: Finding,
}

/// A statistical finding that records of later chunks may still join: those of its first-seen
/// value within a day of the first, or those of its rate bucket. So a finding holds the same
/// records however the logs were cut into chunks (replay's) or batches (the daemon's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reported {
    /// The detection and the group: account, entity, and a first-seen detector's value (empty
    /// for a rate detector).
    pub detection: String,
    pub account: String,
    pub entity: String,
    pub value: String,
    /// Records from `from` (inclusive) to `until` (exclusive) join it.
    pub from: i64,
    pub until: i64,
    /// (event time, event id) of its records, in the finding's order.
    pub events: Vec<(i64, String)>,
    /// The record its description is drawn from.
    pub first: crate::detect::Match,
    /// The object whose record made it, where it is kept for replays of that object.
    pub object: Option<String>,
    pub finding: Finding,
}

/// One kind of entry: a map that remembers which keys changed since the last save.
#[derive(Debug, Clone)]
pub struct Table<V> {
    pub name: &'static str,
    map: HashMap<String, V>,
    changed: HashSet<String>,
}

impl<V> Table<V> {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            map: HashMap::default(),
            changed: HashSet::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    /// The entry, marked as changed.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let v = self.map.get_mut(key)?;
        if !self.changed.contains(key) {
            self.changed.insert(key.to_string());
        }
        Some(v)
    }

    /// The entry, made with `make` when absent, marked as changed.
    pub fn entry(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        if !self.changed.contains(key) {
            self.changed.insert(key.to_string());
        }
        if !self.map.contains_key(key) {
            self.map.insert(key.to_string(), make());
        }
        self.map.get_mut(key).expect("inserted above")
    }

    pub fn insert(&mut self, key: String, value: V) {
        self.changed.insert(key.clone());
        self.map.insert(key, value);
    }

    /// Drops the entries `keep` refuses (and changes those it edits).
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        let changed = &mut self.changed;
        self.map.retain(|k, v| {
            let kept = keep(k, v);
            if !kept {
                changed.insert(k.clone());
            }
            kept
        });
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.map.iter()
    }

    fn clear(&mut self) {
        self.changed.extend(self.map.keys().cloned());
        self.map.clear();
    }
}

/// One stored entry: its table, key, and value as JSON (`None` when it was removed).
pub type Entry = (&'static str, String, Option<Vec<u8>>);

impl<V: Serialize + DeserializeOwned> Table<V> {
    /// Takes the entries changed since the last call, serialized.
    fn drain_changes(&mut self, out: &mut Vec<Entry>) {
        for k in self.changed.drain() {
            let bytes = self
                .map
                .get(&k)
                .map(|v| serde_json::to_vec(v).expect("state entries serialize"));
            out.push((self.name, k, bytes));
        }
    }

    /// Puts a stored entry back (unchanged).
    fn restore(&mut self, key: String, bytes: &[u8]) -> Result<(), serde_json::Error> {
        self.map.insert(key, serde_json::from_slice(bytes)?);
        Ok(())
    }
}

/// Joins the parts of a state key (detection, account, entity, value).
pub fn key(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

/// The parts of a state key.
pub fn parts(key: &str) -> Vec<&str> {
    key.split('\u{1f}').collect()
}

/// Everything stateful detections have learned.
#[derive(Debug, Clone)]
pub struct State {
    /// Account → event time of its first record seen.
    pub accounts: Table<i64>,
    /// (account, entity) → sightings of the entity by any detector.
    pub entities: Table<Seen>,
    /// (detection, account, entity, value) → sightings of the value for the entity.
    pub values: Table<Seen>,
    /// (detection, account, entity) → counts per bucket.
    pub rates: Table<RateHistory>,
    /// (account, join kind, join key) → recent sequence steps.
    pub steps: Table<Vec<Step>>,
    /// (sequence, account, join key) → event time it last fired.
    pub sequences: Table<i64>,
    /// Object key → event-time ranges [start, end] already learned from it.
    pub learned: Table<Vec<(i64, i64)>>,
    /// Object key → statistical findings it triggered.
    pub findings: Table<Vec<KeptFinding>>,
    /// Finding id → statistical finding that later records may still join.
    pub reported: Table<Reported>,
    /// Finding id → the version the daemon last sent: a later chunk's version is sent again,
    /// as an update, only when it adds records.
    pub sent: Table<KeptFinding>,
    /// Threshold detection → its recent matches (within its window), judged again with the
    /// next batch's, so a burst split between batches of the daemon is still seen whole.
    pub pending: Table<Vec<crate::detect::Match>>,
    /// Latest event time learned.
    pub horizon: i64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            accounts: Table::new("accounts"),
            entities: Table::new("entities"),
            values: Table::new("values"),
            rates: Table::new("rates"),
            steps: Table::new("steps"),
            sequences: Table::new("sequences"),
            learned: Table::new("learned"),
            findings: Table::new("findings"),
            pending: Table::new("pending"),
            reported: Table::new("reported"),
            sent: Table::new("sent"),
            horizon: i64::MIN,
        }
    }
}

impl State {
    /// True when a record of `object` at `time` was learned from before.
    pub fn was_learned(&self, object: &str, time: i64) -> bool {
        self.learned
            .get(object)
            .is_some_and(|ranges| ranges.iter().any(|&(s, e)| s <= time && time <= e))
    }

    /// Records that `object`'s records from `start` to `end` have been learned from.
    pub fn mark_learned(&mut self, object: &str, start: i64, end: i64) {
        let ranges = self.learned.entry(object, Vec::new);
        ranges.push((start, end));
        ranges.sort_unstable();
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for &(s, e) in ranges.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *ranges = merged;
    }

    /// The names of the tables, in the order they are stored.
    pub const TABLES: [&'static str; 11] = [
        "accounts",
        "entities",
        "values",
        "rates",
        "steps",
        "sequences",
        "learned",
        "findings",
        "pending",
        "reported",
        "sent",
    ];

    /// Takes every entry changed since the last call, serialized, for a store to write.
    pub fn drain_changes(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        self.accounts.drain_changes(&mut out);
        self.entities.drain_changes(&mut out);
        self.values.drain_changes(&mut out);
        self.rates.drain_changes(&mut out);
        self.steps.drain_changes(&mut out);
        self.sequences.drain_changes(&mut out);
        self.learned.drain_changes(&mut out);
        self.findings.drain_changes(&mut out);
        self.pending.drain_changes(&mut out);
        self.reported.drain_changes(&mut out);
        self.sent.drain_changes(&mut out);
        out
    }

    /// Forgets which entries changed (a store that keeps nothing).
    pub fn forget_changes(&mut self) {
        self.accounts.changed.clear();
        self.entities.changed.clear();
        self.values.changed.clear();
        self.rates.changed.clear();
        self.steps.changed.clear();
        self.sequences.changed.clear();
        self.learned.changed.clear();
        self.findings.changed.clear();
        self.pending.changed.clear();
        self.reported.changed.clear();
        self.sent.changed.clear();
    }

    /// Puts an entry a store read back into `table`.
    pub fn restore(
        &mut self,
        table: &str,
        key: String,
        bytes: &[u8],
    ) -> Result<(), serde_json::Error> {
        match table {
            "accounts" => self.accounts.restore(key, bytes),
            "entities" => self.entities.restore(key, bytes),
            "values" => self.values.restore(key, bytes),
            "rates" => self.rates.restore(key, bytes),
            "steps" => self.steps.restore(key, bytes),
            "sequences" => self.sequences.restore(key, bytes),
            "learned" => self.learned.restore(key, bytes),
            // Layouts before the `sent` table kept sent findings here, under a prefix.
            "findings" if key.starts_with(LEGACY_SENT) => {
                let kept: Vec<KeptFinding> = serde_json::from_slice(bytes)?;
                if let Some(last) = kept.into_iter().last() {
                    self.sent.insert(key[LEGACY_SENT.len()..].to_string(), last);
                }
                // Stored again under the new table; removed from the old at the next save.
                self.findings.changed.insert(key);
                Ok(())
            }
            "findings" => self.findings.restore(key, bytes),
            "pending" => self.pending.restore(key, bytes),
            "reported" => self.reported.restore(key, bytes),
            "sent" => self.sent.restore(key, bytes),
            // A table a newer layout added: the format version check refuses such stores.
            _ => Ok(()),
        }
    }

    /// Entries in the state, by table.
    pub fn sizes(&self) -> Vec<(&'static str, usize)> {
        vec![
            (self.accounts.name, self.accounts.len()),
            (self.entities.name, self.entities.len()),
            (self.values.name, self.values.len()),
            (self.rates.name, self.rates.len()),
            (self.steps.name, self.steps.len()),
            (self.sequences.name, self.sequences.len()),
            (self.learned.name, self.learned.len()),
            (self.findings.name, self.findings.len()),
            (self.pending.name, self.pending.len()),
            (self.reported.name, self.reported.len()),
            (self.sent.name, self.sent.len()),
        ]
    }

    /// Forgets everything (saved as removals).
    pub fn clear(&mut self) {
        self.accounts.clear();
        self.entities.clear();
        self.values.clear();
        self.rates.clear();
        self.steps.clear();
        self.sequences.clear();
        self.learned.clear();
        self.findings.clear();
        self.pending.clear();
        self.reported.clear();
        self.sent.clear();
        self.horizon = i64::MIN;
    }

    /// The state as one JSON document (for `state export`), entries sorted by key.
    pub fn to_json(&self, only: Option<&str>) -> serde_json::Value {
        fn table<V: Serialize>(t: &Table<V>, only: Option<&str>) -> serde_json::Value {
            let sorted: BTreeMap<String, &V> = t
                .iter()
                .filter(|(k, _)| only.is_none_or(|o| k.contains(o)))
                .map(|(k, v)| (k.replace('\u{1f}', " | "), v))
                .collect();
            serde_json::to_value(sorted).expect("state entries serialize")
        }
        serde_json::json!({
            "formatVersion": FORMAT_VERSION,
            "horizon": (self.horizon != i64::MIN).then(|| crate::finding::iso_time(self.horizon)),
            "accounts": table(&self.accounts, only),
            "entities": table(&self.entities, only),
            "values": table(&self.values, only),
            "rates": table(&self.rates, only),
            "steps": table(&self.steps, only),
            "sequences": table(&self.sequences, only),
            "learned": table(&self.learned, only),
            "findings": table(&self.findings, only),
            "pending": table(&self.pending, only),
            "reported": table(&self.reported, only),
            "sent": table(&self.sent, only),
        })
    }
}

/// Where a [`State`] is kept between runs.
pub enum Store {
    /// Nothing is kept: every run starts afresh.
    Memory,
    /// An embedded redb file.
    Redb { path: PathBuf, db: Database },
    /// A DynamoDB table shared by a fleet (`dynamodb://TABLE`).
    DynamoDb(Box<dynamodb::DynamoStore>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

fn definition(name: &'static str) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}

/// The file a state is kept in when `--state` is not given: `trailhound/state.redb` in the
/// user's data directory (`$XDG_DATA_HOME`, `~/.local/share`, `~/Library/Application Support`).
pub fn default_path() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("trailhound")
        .join("state.redb")
}

impl Store {
    /// Opens (or creates) the store at `path`: a file, `:memory:` (keeps nothing) or
    /// `dynamodb://TABLE`.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        if path.as_os_str() == ":memory:" {
            return Ok(Store::Memory);
        }
        if let Some(table) = path.to_str().and_then(|p| p.strip_prefix("dynamodb://")) {
            if table.is_empty() || table.contains('/') {
                return Err(StateError::store(
                    path.display().to_string(),
                    "name a table: dynamodb://TABLE",
                ));
            }
            return Ok(Store::DynamoDb(Box::new(dynamodb::DynamoStore::open(
                table,
            )?)));
        }
        let fail = |message: String| StateError::store(path.display().to_string(), message);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
        }
        let db = Database::create(path).map_err(|e| {
            let text = e.to_string();
            if text.contains("already open") || text.contains("lock") {
                fail(format!(
                    "{text} (another trailhound is using this state; give each its own --state)"
                ))
            } else {
                fail(text)
            }
        })?;
        let store = Store::Redb {
            path: path.to_path_buf(),
            db,
        };
        store.check_version()?;
        Ok(store)
    }

    /// What the store is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Store::Memory => "in memory (not kept)".into(),
            Store::Redb { path, .. } => path.display().to_string(),
            Store::DynamoDb(d) => d.describe(),
        }
    }

    /// True when several processes share the store (their findings are claimed).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::DynamoDb(_))
    }

    /// The statistical findings among `ids` this process may emit: all of them, except in a
    /// shared store, where each finding goes to the one process that claims it first.
    pub fn claim(&self, ids: &[String]) -> Result<std::collections::HashSet<String>, StateError> {
        match self {
            Store::DynamoDb(d) => d.claim(ids),
            _ => Ok(ids.iter().cloned().collect()),
        }
    }

    /// Forgets which findings were claimed (a shared store's reset); returns how many.
    pub fn forget_claims(&self) -> Result<usize, StateError> {
        match self {
            Store::DynamoDb(d) => d.forget_claims(),
            _ => Ok(0),
        }
    }

    /// Notes that claimed findings were emitted.
    pub fn confirm(&self, ids: &[String]) -> Result<(), StateError> {
        match self {
            Store::DynamoDb(d) => d.confirm(ids),
            _ => Ok(()),
        }
    }

    fn fail(&self, e: impl Into<Cause>) -> StateError {
        StateError::store(self.describe(), e)
    }

    fn check_version(&self) -> Result<(), StateError> {
        let Store::Redb { db, .. } = self else {
            return Ok(());
        };
        let read = db.begin_read().map_err(|e| self.fail(e))?;
        let meta = match read.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.fail(e)),
        };
        if let Some(v) = meta.get("format").map_err(|e| self.fail(e))? {
            let version: u32 = serde_json::from_slice(v.value()).unwrap_or(0);
            if version != FORMAT_VERSION {
                return Err(self.fail(format!(
                    "made by another version of trailhound (layout {version}, this one reads {FORMAT_VERSION}); reset it with `trailhound state reset`"
                )));
            }
        }
        Ok(())
    }

    /// Reads the whole state.
    pub fn load(&self) -> Result<State, StateError> {
        let mut state = State::default();
        let db = match self {
            Store::Memory => return Ok(state),
            Store::DynamoDb(d) => return d.load(),
            Store::Redb { db, .. } => db,
        };
        let read = db.begin_read().map_err(|e| self.fail(e))?;
        let path = self.describe();
        for name in State::TABLES {
            let t = match read.open_table(definition(name)) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(self.fail(e)),
            };
            for item in t.iter().map_err(|e| self.fail(e))? {
                let (k, v) = item.map_err(|e| self.fail(e))?;
                state
                    .restore(name, k.value().to_string(), v.value())
                    .map_err(|source| StateError::Corrupt {
                        path: path.clone(),
                        table: name,
                        key: k.value().to_string(),
                        source,
                    })?;
            }
        }
        if let Ok(meta) = read.open_table(META) {
            if let Some(h) = meta.get("horizon").map_err(|e| self.fail(e))? {
                state.horizon = serde_json::from_slice(h.value()).unwrap_or(i64::MIN);
            }
        }
        Ok(state)
    }

    /// Writes what changed since the state was loaded or last saved, in one transaction: all
    /// of it is stored, or (after a crash) none of it.
    pub fn save(&self, state: &mut State) -> Result<(), StateError> {
        let db = match self {
            Store::Memory => {
                state.forget_changes();
                return Ok(());
            }
            Store::DynamoDb(d) => return d.save(state),
            Store::Redb { db, .. } => db,
        };
        let write = db.begin_write().map_err(|e| self.fail(e))?;
        let mut changes = state.drain_changes();
        changes.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for name in State::TABLES {
            let mut t = write
                .open_table(definition(name))
                .map_err(|e| self.fail(e))?;
            for (_, k, bytes) in changes.iter().filter(|c| c.0 == name) {
                match bytes {
                    Some(v) => t.insert(k.as_str(), v.as_slice()).map(|_| ()),
                    None => t.remove(k.as_str()).map(|_| ()),
                }
                .map_err(|e| self.fail(e))?;
            }
        }
        {
            let mut meta = write.open_table(META).map_err(|e| self.fail(e))?;
            let version = serde_json::to_vec(&FORMAT_VERSION).expect("serializes");
            meta.insert("format", version.as_slice())
                .map_err(|e| self.fail(e))?;
            let horizon = serde_json::to_vec(&state.horizon).expect("serializes");
            meta.insert("horizon", horizon.as_slice())
                .map_err(|e| self.fail(e))?;
        }
        write.commit().map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Size of the store's file in bytes (0 in memory).
    pub fn file_size(&self) -> u64 {
        match self {
            Store::Memory | Store::DynamoDb(_) => 0,
            Store::Redb { path, .. } => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        }
    }

    /// Shrinks the file to what it holds.
    pub fn compact(&mut self) -> Result<(), StateError> {
        if let Store::Redb { db, .. } = self {
            db.compact().map_err(|e| StateError::store("state", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_loads_back_with_removals_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Store::open(&path).unwrap();
        let mut state = State::default();
        state.accounts.insert("111".into(), 5);
        state
            .values
            .insert(key(&["d", "111", "alice", "InvokeModel"]), Seen::new(7));
        state
            .values
            .insert(key(&["d", "111", "bob", "x"]), Seen::new(8));
        state.mark_learned("AWSLogs/a.json.gz", 10, 20);
        state.mark_learned("AWSLogs/a.json.gz", 15, 30);
        state.horizon = 30;
        store.save(&mut state).unwrap();
        state.values.retain(|k, _| !k.contains("bob"));
        store.save(&mut state).unwrap();
        drop(store);

        let loaded = Store::open(&path).unwrap().load().unwrap();
        assert_eq!(loaded.accounts.get("111"), Some(&5));
        assert_eq!(loaded.values.len(), 1);
        assert_eq!(
            loaded
                .values
                .get(&key(&["d", "111", "alice", "InvokeModel"])),
            Some(&Seen::new(7))
        );
        assert_eq!(
            loaded.learned.get("AWSLogs/a.json.gz"),
            Some(&vec![(10, 30)])
        );
        assert!(loaded.was_learned("AWSLogs/a.json.gz", 12));
        assert!(!loaded.was_learned("AWSLogs/a.json.gz", 31));
        assert_eq!(loaded.horizon, 30);
    }

    #[test]
    fn a_state_in_use_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let _first = Store::open(&path).unwrap();
        let second = Store::open(&path).unwrap_err().to_string();
        assert!(second.contains("s.redb"), "{second}");
    }
}
