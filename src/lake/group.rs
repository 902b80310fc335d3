//! Which objects' records share a lake file, and so what a file is named after.
//!
//! A file holds the records of one *group* of objects, in one partition, and is named after
//! the group: writing the group again (the same day replayed twice, a run restarted) replaces
//! the file instead of adding a second copy of its rows.
//!
//! * A CloudTrail log's group is its folder (trail prefix, account, region) and the day of its
//!   delivery time (in its name): one file per partition, and a small second one for the
//!   events of the day before delivered after midnight. A replay that starts or ends inside a
//!   day reads that day's objects whole ([`widen_to_groups`]), so a group is always written
//!   whole.
//! * A Bedrock invocation log's group is its day's hour folders.
//! * Any other object (an export, a file outside CloudTrail's layout) is a group of its own.
//!
//! Replay reads objects in delivery order; a group is written as soon as its last object has
//! been read, so what waits in memory is about a day of logs. Past a memory cap, the groups
//! holding most are written early, as parts (`NAME-pK`): still whole records, but a later run
//! that splits differently can leave records twice, which `lake compact` drops.

use ahash::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int32Type;

use super::write::{LakeWriter, RecordTable, Written};
use super::{stable_name, LakeError};
use crate::source::{KeyKind, Location, ObjectRef};

/// An object's group: what it is known by, and how its file is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOf {
    identity: String,
    kind: GroupKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GroupKind {
    /// A Bedrock invocation log's day.
    Invocations,
    /// A CloudTrail folder's delivery day (`YYYYMMDD`).
    Delivered(String),
    /// An object of its own.
    Object,
}

impl GroupOf {
    /// The name of the group's file (a hash of its identity, after its day where it has one).
    pub fn file_name(&self) -> String {
        let hash = stable_name(&self.identity);
        match &self.kind {
            GroupKind::Invocations => format!("inv-{hash}"),
            GroupKind::Delivered(day) => format!("{day}-{hash}"),
            GroupKind::Object => format!("obj-{hash}"),
        }
    }
}

/// Finds objects' groups. A local object is known by its folder's real path (links resolved)
/// and its name; each folder is resolved once, not each of its objects: a month of logs is
/// tens of thousands of objects in a few hundred folders.
#[derive(Debug, Default)]
pub struct Grouper {
    real_folders: HashMap<PathBuf, String>,
}

impl Grouper {
    /// `object`'s group.
    pub fn group(&mut self, object: &ObjectRef) -> GroupOf {
        let key = match &object.location {
            Location::File(path) => self.real_path(path),
            Location::S3 { .. } => object.key(),
        };
        let key = key.replace('\\', "/");
        let dir = key.rsplit_once('/').map_or("", |(dir, _)| dir);
        if object.kind == KeyKind::BedrockInvocationLog {
            // `.../YYYY/MM/DD/HH/`: the day's folders together.
            let day = match dir.rsplit_once('/') {
                Some((day, hour))
                    if hour.len() == 2 && hour.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    day
                }
                _ => dir,
            };
            return GroupOf {
                identity: format!("{day}/"),
                kind: GroupKind::Invocations,
            };
        }
        if let Some(delivered) = crate::source::key::delivery_time(&key) {
            let day = chrono::DateTime::from_timestamp_micros(delivered)
                .map(|t| t.format("%Y%m%d").to_string())
                .unwrap_or_default();
            return GroupOf {
                identity: format!("{dir}/#{day}"),
                kind: GroupKind::Delivered(day),
            };
        }
        GroupOf {
            identity: key,
            kind: GroupKind::Object,
        }
    }

    /// `path` with its folder's links resolved (the folder's real path is asked for once).
    fn real_path(&mut self, path: &Path) -> String {
        let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
            return std::fs::canonicalize(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string();
        };
        let real = self
            .real_folders
            .entry(folder.to_path_buf())
            .or_insert_with(|| {
                let folder = if folder.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    folder
                };
                std::fs::canonicalize(folder)
                    .unwrap_or_else(|_| folder.to_path_buf())
                    .display()
                    .to_string()
            });
        format!("{real}/{}", name.to_string_lossy())
    }
}

/// `objects` less those `keep` refuses, except that an object is kept when any object of its
/// group is: a group is read whole or not at all.
pub fn widen_to_groups(objects: &mut Vec<ObjectRef>, keep: impl Fn(&ObjectRef) -> bool) {
    let mut grouper = Grouper::default();
    let groups: Vec<String> = objects.iter().map(|o| grouper.group(o).identity).collect();
    let kept: HashSet<&String> = objects
        .iter()
        .zip(&groups)
        .filter(|(o, _)| keep(o))
        .map(|(_, g)| g)
        .collect();
    let keep_at: Vec<bool> = groups.iter().map(|g| kept.contains(g)).collect();
    let mut at = 0;
    objects.retain(|_| {
        at += 1;
        keep_at[at - 1]
    });
}

/// Default most bytes of records waiting for their group to be whole.
pub const DEFAULT_CAP: usize = 1 << 30;

struct Group {
    name: String,
    /// Parts written early, under the memory cap.
    parts: usize,
    /// Bytes of the rows waiting.
    bytes: usize,
    /// Position of its last object in the reading order.
    last: usize,
    /// The batches its rows are in, and which batch the last of them is (by [`ReplayGroups`]'
    /// count of batches added).
    batches: Vec<RecordBatch>,
    last_batch: Option<usize>,
    /// Its rows: `(batch, row)` in `batches`.
    rows: Vec<(usize, usize)>,
}

impl Group {
    fn new(name: String, last: usize) -> Self {
        Self {
            name,
            parts: 0,
            bytes: 0,
            last,
            batches: Vec::new(),
            last_batch: None,
            rows: Vec::new(),
        }
    }
}

/// The objects of a replay, in the order they are read, grouped for the lake; records are
/// added as they are read and each group's are written once its last object has been read.
pub struct ReplayGroups {
    table: RecordTable,
    by_key: HashMap<String, usize>,
    groups: Vec<Group>,
    /// Groups in the order their last object comes.
    by_last: Vec<usize>,
    next_to_write: usize,
    read: usize,
    /// Batches added so far.
    batches_added: usize,
    /// Records whose `sourcekey` names no listed object (none are expected).
    strays: Vec<RecordBatch>,
    written: Written,
    /// Bytes of rows waiting in every group, and the most they may hold.
    waiting: usize,
    cap: usize,
}

impl std::fmt::Debug for ReplayGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGroups")
            .field("groups", &self.groups.len())
            .field("read", &self.read)
            .finish()
    }
}

impl ReplayGroups {
    /// Groups `objects`, which will be read in this order, for `table`.
    pub fn plan(table: RecordTable, objects: &[ObjectRef]) -> Self {
        let mut index: HashMap<String, usize> = HashMap::default();
        let mut groups: Vec<Group> = Vec::new();
        let mut by_key = HashMap::with_capacity_and_hasher(objects.len(), Default::default());
        let mut grouper = Grouper::default();
        for (at, object) in objects.iter().enumerate() {
            let group = grouper.group(object);
            let g = *index.entry(group.identity.clone()).or_insert_with(|| {
                groups.push(Group::new(group.file_name(), at));
                groups.len() - 1
            });
            groups[g].last = at;
            by_key.insert(object.key(), g);
        }
        Self::of_groups(table, by_key, groups, DEFAULT_CAP)
    }

    /// Groups found for `by_key`'s objects, written in the order of their last object.
    fn of_groups(
        table: RecordTable,
        by_key: HashMap<String, usize>,
        groups: Vec<Group>,
        cap: usize,
    ) -> Self {
        let mut by_last: Vec<usize> = (0..groups.len()).collect();
        by_last.sort_by_key(|&g| groups[g].last);
        Self {
            table,
            by_key,
            groups,
            by_last,
            next_to_write: 0,
            read: 0,
            batches_added: 0,
            strays: Vec::new(),
            written: Written::default(),
            waiting: 0,
            cap,
        }
    }

    /// Each of `keys` (objects' `sourcekey`s) a group of its own, named after it: the daemon's
    /// grouping, where an object delivered again is written again under the same name.
    pub fn each_object(table: RecordTable, keys: impl IntoIterator<Item = String>) -> Self {
        let mut groups = Vec::new();
        let mut by_key = HashMap::default();
        for (at, key) in keys.into_iter().enumerate() {
            groups.push(Group::new(format!("obj-{}", stable_name(&key)), at));
            by_key.insert(key, at);
        }
        Self::of_groups(table, by_key, groups, usize::MAX)
    }

    /// Sets the most bytes of records waiting for their group to be whole.
    pub fn with_cap(mut self, bytes: usize) -> Self {
        self.cap = bytes.max(1);
        self
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when there are no objects.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// What has been written so far.
    pub fn written(&self) -> Written {
        self.written
    }

    /// Records of the objects being read, in batches with a `sourcekey` column. A group
    /// holds the batches its rows are in and which rows are its own; the rows are copied
    /// once, into the batches its files are written from. A batch stays in memory until the
    /// last group with rows in it is written; a group's objects are about a day of reading
    /// (one folder's delivery day), so that is about the batches of the day being read, and
    /// what waits is counted as each group's share of its batches' bytes.
    pub fn add(&mut self, batches: &[RecordBatch]) -> Result<(), LakeError> {
        for batch in batches {
            let seq = self.batches_added;
            self.batches_added += 1;
            let groups = self.row_groups(batch);
            let bytes = batch.get_array_memory_size();
            let rows = batch.num_rows().max(1);
            // An object's records are together in a batch: runs of one group are the rule.
            for (start, len, g) in runs(&groups) {
                let Some(g) = g else {
                    self.strays.push(batch.slice(start, len));
                    continue;
                };
                let group = &mut self.groups[g];
                if group.last_batch != Some(seq) {
                    group.last_batch = Some(seq);
                    group.batches.push(batch.clone());
                }
                let b = group.batches.len() - 1;
                group.rows.extend((start..start + len).map(|row| (b, row)));
                // The batch's bytes shared out by rows.
                let share = (bytes as u128 * len as u128 / rows as u128) as usize;
                group.bytes += share;
                self.waiting += share;
            }
        }
        Ok(())
    }

    /// Writes parts of the groups holding most until what waits is under the cap.
    fn relieve(&mut self, writer: &LakeWriter) -> Result<Written, LakeError> {
        let mut written = Written::default();
        while self.waiting > self.cap {
            let Some(g) = (0..self.groups.len()).max_by_key(|&g| self.groups[g].bytes) else {
                break;
            };
            if self.groups[g].bytes == 0 {
                break;
            }
            if self.groups[g].parts == 0 {
                tracing::warn!(
                    "lake: records waiting for their group passed {} MB: writing parts early \
                     (run `trailhound lake compact` after replays that overlap)",
                    self.cap >> 20
                );
            }
            let name = format!("{}-p{}", self.groups[g].name, self.groups[g].parts);
            self.groups[g].parts += 1;
            written += self.write_rows(g, &name, writer)?;
        }
        Ok(written)
    }

    /// The group of each row of `batch`, by its `sourcekey`.
    fn row_groups(&self, batch: &RecordBatch) -> Vec<Option<usize>> {
        let Some(column) = batch.column_by_name(crate::decode::schema::SOURCE_KEY_COLUMN) else {
            return vec![None; batch.num_rows()];
        };
        if let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() {
            let values = dictionary.values().as_string_opt::<i32>();
            let of_value: Vec<Option<usize>> = (0..dictionary.values().len())
                .map(|v| values.and_then(|s| self.by_key.get(s.value(v)).copied()))
                .collect();
            return dictionary
                .keys()
                .iter()
                .map(|k| k.and_then(|k| of_value.get(k as usize).copied().flatten()))
                .collect();
        }
        match column.as_string_opt::<i32>() {
            Some(keys) => keys
                .iter()
                .map(|k| k.and_then(|k| self.by_key.get(k).copied()))
                .collect(),
            None => vec![None; batch.num_rows()],
        }
    }

    /// Notes that `objects` more objects have been read (their records added) and writes the
    /// groups that are now whole.
    pub fn read(&mut self, objects: usize, writer: &LakeWriter) -> Result<Written, LakeError> {
        self.read += objects;
        let mut written = self.relieve(writer)?;
        while let Some(&g) = self.by_last.get(self.next_to_write) {
            if self.groups[g].last >= self.read {
                break;
            }
            written += self.write_group(g, writer)?;
            self.next_to_write += 1;
        }
        self.written += written;
        Ok(written)
    }

    /// Writes every group not yet written, and any records of objects not listed.
    pub fn finish(&mut self, writer: &LakeWriter) -> Result<Written, LakeError> {
        let mut written = Written::default();
        while let Some(&g) = self.by_last.get(self.next_to_write) {
            written += self.write_group(g, writer)?;
            self.next_to_write += 1;
        }
        if !self.strays.is_empty() {
            let strays = std::mem::take(&mut self.strays);
            tracing::warn!("lake: records of objects not in the listing, written apart");
            written += writer.write_records(self.table, "strays", &strays)?;
        }
        self.written += written;
        Ok(written)
    }

    fn write_group(&mut self, g: usize, writer: &LakeWriter) -> Result<Written, LakeError> {
        let name = match self.groups[g].parts {
            0 => self.groups[g].name.clone(),
            k => format!("{}-p{k}", self.groups[g].name),
        };
        self.write_rows(g, &name, writer)
    }

    fn write_rows(
        &mut self,
        g: usize,
        name: &str,
        writer: &LakeWriter,
    ) -> Result<Written, LakeError> {
        let group = &mut self.groups[g];
        let rows = std::mem::take(&mut group.rows);
        let batches = std::mem::take(&mut group.batches);
        group.last_batch = None;
        self.waiting -= group.bytes;
        group.bytes = 0;
        writer.write_rows(self.table, name, &batches, &rows)
    }
}

/// The runs of equal values in `values`: where each starts, its length, and the value.
fn runs<T: PartialEq + Copy>(values: &[T]) -> Vec<(usize, usize, T)> {
    let mut out: Vec<(usize, usize, T)> = Vec::new();
    for (at, &value) in values.iter().enumerate() {
        match out.last_mut() {
            Some((_, len, last)) if *last == value => *len += 1,
            _ => out.push((at, 1, value)),
        }
    }
    out
}

/// Writes `batches` of `table` as a file per object (by `sourcekey`) and partition: what the
/// daemon keeps of a batch.
pub fn write_each_object(
    writer: &LakeWriter,
    table: RecordTable,
    batches: &[RecordBatch],
) -> Result<Written, LakeError> {
    let mut keys = std::collections::BTreeSet::new();
    for batch in batches {
        keys.extend(source_keys(batch));
    }
    let mut groups = ReplayGroups::each_object(table, keys);
    groups.add(batches)?;
    groups.finish(writer)?;
    Ok(groups.written())
}

/// The distinct `sourcekey`s of `batch`.
fn source_keys(batch: &RecordBatch) -> Vec<String> {
    let Some(column) = batch.column_by_name(crate::decode::schema::SOURCE_KEY_COLUMN) else {
        return Vec::new();
    };
    if let Some(dictionary) = column.as_dictionary_opt::<Int32Type>() {
        return dictionary
            .values()
            .as_string_opt::<i32>()
            .map(|v| v.iter().flatten().map(String::from).collect())
            .unwrap_or_default();
    }
    let mut keys: Vec<String> = column
        .as_string_opt::<i32>()
        .map(|v| v.iter().flatten().map(String::from).collect())
        .unwrap_or_default();
    keys.sort();
    keys.dedup();
    keys
}

/// [`ReplayGroups`] on a thread of its own, so that encoding Parquet overlaps reading and
/// examining the next chunk.
pub struct GroupsThread {
    sender: Option<std::sync::mpsc::SyncSender<(Vec<RecordBatch>, usize)>>,
    thread: std::thread::JoinHandle<Result<Written, LakeError>>,
}

impl std::fmt::Debug for GroupsThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupsThread")
    }
}

impl GroupsThread {
    /// Starts writing `groups` with `writer`.
    pub fn spawn(mut groups: ReplayGroups, writer: LakeWriter) -> Result<Self, LakeError> {
        // One chunk waiting, one being written: memory stays two chunks at most.
        let (sender, received) = std::sync::mpsc::sync_channel::<(Vec<RecordBatch>, usize)>(1);
        let thread = std::thread::Builder::new()
            .name("trailhound-lake".into())
            .spawn(move || {
                for (batches, objects) in received {
                    groups.add(&batches)?;
                    groups.read(objects, &writer)?;
                }
                groups.finish(&writer)?;
                Ok(groups.written())
            })
            .map_err(|source| LakeError::Io {
                path: PathBuf::from("(thread)"),
                source,
            })?;
        Ok(Self {
            sender: Some(sender),
            thread,
        })
    }

    /// Hands on the records of the next `objects` objects read; false when the thread has
    /// stopped (call [`finish`](Self::finish) for why).
    pub fn send(&self, batches: Vec<RecordBatch>, objects: usize) -> bool {
        self.sender
            .as_ref()
            .is_some_and(|s| s.send((batches, objects)).is_ok())
    }

    /// Writes what is left and waits: what was written, or why writing stopped.
    pub fn finish(mut self) -> Result<Written, LakeError> {
        drop(self.sender.take());
        self.thread.join().unwrap_or_else(|_| {
            Err(LakeError::Io {
                path: PathBuf::from("(lake thread)"),
                source: std::io::Error::other("the thread writing the lake failed"),
            })
        })
    }
}

/// True when `path` is one of the lake's data files (not a file being written).
pub fn is_data_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.starts_with('.') && n.ends_with(super::EXTENSION))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn object(key: &str) -> ObjectRef {
        ObjectRef {
            location: Location::S3 {
                bucket: "trail".into(),
                key: key.into(),
            },
            size: 1,
            kind: crate::source::classify(key),
        }
    }

    /// The identity of `object`'s group, and the file name it gives.
    fn group_of(object: &ObjectRef) -> (String, String) {
        let group = Grouper::default().group(object);
        let name = group.file_name();
        (group.identity, name)
    }

    /// The key of a log delivered on 2026-10-`day` at `time` (HHMM).
    fn log_key(account: &str, day: &str, time: &str, id: &str) -> String {
        format!(
            "AWSLogs/{account}/CloudTrail/us-east-1/2026/10/{day}/{account}_CloudTrail_us-east-1_202610{day}T{time}Z_{id}.json.gz"
        )
    }

    #[test]
    fn a_day_of_one_folder_is_one_group() {
        let a = group_of(&object(&log_key("111122223333", "05", "0805", "a")));
        let b = group_of(&object(&log_key("111122223333", "05", "2355", "b")));
        let c = group_of(&object(&log_key("111122223333", "06", "0005", "c")));
        let d = group_of(&object(&log_key("444455556666", "05", "0805", "d")));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.1.starts_with("20261005-"), "{}", a.1);
        let export = group_of(&object("exports/events.jsonl"));
        assert!(export.1.starts_with("obj-"));
        let hour = |h: &str| {
            group_of(&object(&format!(
                "AWSLogs/111122223333/BedrockModelInvocationLogs/us-east-1/2026/10/05/{h}/x{h}.json.gz"
            )))
        };
        assert_eq!(hour("08"), hour("09"));
    }

    #[test]
    fn a_local_object_is_known_by_its_folders_real_path() {
        let root = tempfile::tempdir().unwrap();
        let folder = root
            .path()
            .join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05");
        std::fs::create_dir_all(&folder).unwrap();
        let name = "111122223333_CloudTrail_us-east-1_20261005T0805Z_a.json.gz";
        std::fs::write(folder.join(name), b"").unwrap();
        std::os::unix::fs::symlink(root.path().join("AWSLogs"), root.path().join("link")).unwrap();
        let file = |path: PathBuf| ObjectRef {
            location: Location::File(path),
            size: 0,
            kind: crate::source::classify(name),
        };
        let mut grouper = Grouper::default();
        let real = grouper.group(&file(folder.join(name)));
        let linked = grouper.group(&file(
            root.path()
                .join("link/111122223333/CloudTrail/us-east-1/2026/10/05")
                .join(name),
        ));
        assert_eq!(real, linked);
        assert_eq!(grouper.real_folders.len(), 2, "one lookup per folder");
        let again = grouper.group(&file(
            folder.join("111122223333_CloudTrail_us-east-1_20261005T2355Z_b.json.gz"),
        ));
        assert_eq!(real, again, "a folder's day is one group");
        assert_eq!(grouper.real_folders.len(), 2);
        assert!(
            real.file_name().starts_with("20261005-"),
            "{}",
            real.file_name()
        );
        // A grouper of its own names it the same.
        assert_eq!(group_of(&file(folder.join(name))).1, real.file_name());
    }

    #[test]
    fn a_window_keeps_whole_groups() {
        let mut objects: Vec<ObjectRef> = [
            ("05", "2305"),
            ("06", "0005"),
            ("06", "0835"),
            ("06", "0905"),
        ]
        .iter()
        .map(|(d, t)| object(&log_key("111122223333", d, t, t)))
        .collect();
        // Only 08:35 on the 6th and later are wanted: the 6th comes whole, the 5th not at all.
        widen_to_groups(&mut objects, |o| {
            o.key().contains("T0835") || o.key().contains("T0905")
        });
        let kept: Vec<String> = objects.iter().map(|o| o.key()).collect();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(!kept.iter().any(|k| k.contains("T2305")));
    }

    fn records(key: &str, events: &[(&str, &str)]) -> RecordBatch {
        let records: Vec<String> = events
            .iter()
            .map(|(id, time)| {
                format!(
                    r#"{{"eventVersion":"1.08","eventTime":"{time}","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"{id}","recipientAccountId":"111122223333","userIdentity":{{"type":"IAMUser","accessKeyId":"AKIA{id}"}}}}"#
                )
            })
            .collect();
        crate::lake::tests::decoded(key, &records)
    }

    fn parquet_rows(dir: &Path) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                let file = std::fs::File::open(entry.path()).unwrap();
                let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
                let rows = reader.metadata().file_metadata().num_rows() as usize;
                let path = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string();
                out.push((path, rows));
            }
        }
        out
    }

    #[test]
    fn groups_are_written_once_whole_and_again_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let writer = LakeWriter::new(dir.path()).unwrap();
        let keys = [
            log_key("111122223333", "05", "0005", "a"),
            log_key("111122223333", "05", "0010", "b"),
            log_key("111122223333", "06", "0105", "c"),
        ];
        let objects: Vec<ObjectRef> = keys.iter().map(|k| object(k)).collect();
        let batches = [
            // Late events of the day before, delivered just after midnight.
            records(
                &objects[0].key(),
                &[("1", "2026-10-04T23:58:00Z"), ("2", "2026-10-05T00:01:00Z")],
            ),
            records(&objects[1].key(), &[("3", "2026-10-05T00:07:00Z")]),
            records(&objects[2].key(), &[("4", "2026-10-06T01:01:00Z")]),
        ];
        let run = |chunks: &[usize]| {
            let mut groups = ReplayGroups::plan(RecordTable::CloudTrail, &objects);
            assert_eq!(groups.len(), 2);
            let mut at = 0;
            let mut after = Vec::new();
            for &n in chunks {
                groups.add(&batches[at..at + n]).unwrap();
                at += n;
                after.push(groups.read(n, &writer).unwrap().files);
            }
            groups.finish(&writer).unwrap();
            after
        };
        // Object by object: the 5th's group is written once both its objects are read.
        assert_eq!(run(&[1, 1, 1]), vec![0, 2, 1]);
        let first = parquet_rows(dir.path());
        assert_eq!(first.len(), 3, "{first:?}");
        assert!(first[0].0.starts_with(
            "cloudtrail/date=2026-10-04/account=111122223333/region=us-east-1/20261005-"
        ));
        let rows: usize = first.iter().map(|(_, n)| n).sum();
        assert_eq!(rows, 4);
        // In other chunks, the same files again: replaced, not added to.
        assert_eq!(run(&[3]), vec![3]);
        assert_eq!(parquet_rows(dir.path()), first);

        // Under a tiny memory cap, groups are written early, in parts; no record is lost.
        let parts = tempfile::tempdir().unwrap();
        let writer = LakeWriter::new(parts.path()).unwrap();
        let mut groups = ReplayGroups::plan(RecordTable::CloudTrail, &objects).with_cap(1);
        for (at, batch) in batches.iter().enumerate() {
            groups.add(std::slice::from_ref(batch)).unwrap();
            groups.read(1, &writer).unwrap();
            assert!(groups.waiting <= 1, "after object {at}");
        }
        groups.finish(&writer).unwrap();
        let written = parquet_rows(parts.path());
        assert_eq!(written.iter().map(|(_, n)| n).sum::<usize>(), 4);
        assert!(
            written.iter().any(|(p, _)| p.contains("-p0")),
            "{written:?}"
        );
    }

    #[test]
    fn a_writer_sees_what_a_merge_made_since_it_last_looked() {
        // The daemon's case: an object's file written, merged by `lake compact`, then the
        // object's message delivered again to the same running writer.
        let dir = tempfile::tempdir().unwrap();
        let writer = LakeWriter::new(dir.path()).unwrap();
        let keys = [
            log_key("111122223333", "05", "0005", "a"),
            log_key("111122223333", "05", "0010", "b"),
        ];
        let batches: Vec<RecordBatch> = keys
            .iter()
            .zip(["1", "2"])
            .map(|(k, id)| records(k, &[(id, "2026-10-05T00:01:00Z")]))
            .collect();
        let write_each = || {
            write_each_object(&writer, RecordTable::CloudTrail, &batches[..1])
                .unwrap()
                .files
                + write_each_object(&writer, RecordTable::CloudTrail, &batches[1..])
                    .unwrap()
                    .files
        };
        assert_eq!(write_each(), 2);
        let merged = super::super::compact::compact(dir.path(), &Default::default()).unwrap();
        assert_eq!((merged.files_in, merged.files_out), (2, 1));
        // Delivered again: already merged, nothing written, each record once.
        assert_eq!(write_each(), 0);
        let files = parquet_rows(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].1, 2);
    }
}
