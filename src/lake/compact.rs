//! `lake compact`: each partition's small files merged into files of a target size, duplicate
//! records dropped, the partition swapped whole so that a reader sees either the files before
//! or the files after, never both and never half.
//!
//! How a partition `P` is merged:
//!
//! 1. Its data files are listed. Those under half the target size are the *inputs*; the others
//!    are kept as they are (their record ids seed the duplicate check).
//! 2. A staging directory under the lake's `.staging/` gets a hard link to every kept file and the merged files,
//!    written a row group at a time (memory holds one row group and the partition's record
//!    ids, not the partition).
//! 3. The staging directory and `P` are exchanged in one `renameat2(RENAME_EXCHANGE)`: readers
//!    listing `P` see the old set or the new set.
//! 4. A file that a writer (the daemon, a replay) renamed into `P` while the merge ran is in
//!    the old directory now: it is moved into `P`, then the old directory is removed. Writers
//!    name their hidden files inside `P`; one whose rename into place lost the race is
//!    reported by the writer and written again, never lost.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::{ArrowWriter, ProjectionMask};

use super::group::is_data_file;
use super::s3::{Listed, S3Lake};
use super::write::{
    merged_groups_in, properties, Merged, RecordTable, MERGED_GROUPS_KEY, MERGED_PREFIX,
    STAGING_DIR,
};
use super::{stable_name, LakeError};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::reader::ChunkReader;

/// What `compact` does.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Size a merged file is closed at, in bytes.
    pub target_bytes: u64,
    /// Only partitions of these dates (`YYYY-MM-DD`, inclusive); `None` for no bound.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Ticked once per partition looked at (its length grows as tables are listed).
    pub progress: Option<indicatif::ProgressBar>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            target_bytes: 128 << 20,
            since: None,
            until: None,
            progress: None,
        }
    }
}

/// What `compact` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    pub partitions: usize,
    pub files_in: usize,
    pub files_out: usize,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Records dropped because a record with the same id was already kept.
    pub duplicates: u64,
    /// Partitions left as they were because a file in them could not be read or the merged
    /// files not written (each is logged with the reason).
    pub unreadable: usize,
}

impl Compacted {
    /// Adds what merging one partition did.
    fn add_partition(&mut self, one: Compacted) {
        if one.files_in > 0 {
            self.partitions += 1;
        }
        self.files_in += one.files_in;
        self.files_out += one.files_out;
        self.rows_in += one.rows_in;
        self.rows_out += one.rows_out;
        self.duplicates += one.duplicates;
        self.unreadable += one.unreadable;
    }
}

/// Merges the small files of every partition of `root`'s record tables in the date range.
pub fn compact(root: &Path, options: &CompactOptions) -> Result<Compacted, LakeError> {
    if !root.is_dir() {
        return Err(LakeError::Missing(root.to_path_buf()));
    }
    let mut done = Compacted::default();
    for table in [RecordTable::CloudTrail, RecordTable::Invocations] {
        let partitions = partitions(&root.join(table.dir()), options);
        if let Some(bar) = &options.progress {
            bar.inc_length(partitions.len() as u64);
        }
        for partition in partitions {
            let one = compact_partition(root, &partition, table, options)?;
            done.add_partition(one);
            if let Some(bar) = &options.progress {
                bar.inc(1);
            }
        }
    }
    Ok(done)
}

/// The partition directories (`date=/account=/region=`) of a table in the date range.
fn partitions(table: &Path, options: &CompactOptions) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(dates) = std::fs::read_dir(table) else {
        return out;
    };
    for date in dates.flatten() {
        let name = date.file_name().to_string_lossy().to_string();
        let Some(day) = name.strip_prefix("date=") else {
            continue;
        };
        if options.since.as_deref().is_some_and(|s| day < s)
            || options.until.as_deref().is_some_and(|u| day > u)
        {
            continue;
        }
        for leaf in walkdir::WalkDir::new(date.path())
            .min_depth(2)
            .max_depth(2)
            .into_iter()
            .flatten()
        {
            let leaf_name = leaf.file_name().to_string_lossy();
            if leaf.file_type().is_dir() && leaf_name.starts_with("region=") {
                out.push(leaf.into_path());
            }
        }
    }
    out.sort();
    out
}

/// The column that identifies a record of `table`.
fn id_column(table: RecordTable) -> &'static str {
    match table {
        RecordTable::CloudTrail => "eventid",
        RecordTable::Invocations => "requestid",
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LakeError {
    let path = path.to_path_buf();
    move |source| LakeError::Io { path, source }
}

fn parquet_error(
    path: &Path,
) -> impl FnOnce(datafusion::parquet::errors::ParquetError) -> LakeError {
    let path = path.to_path_buf();
    move |source| LakeError::Parquet { path, source }
}

fn data_files(dir: &Path) -> Result<Vec<(PathBuf, u64)>, LakeError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(io(&path))?.is_file() && is_data_file(&path) {
            let size = entry.metadata().map_err(io(&path))?.len();
            files.push((path, size));
        }
    }
    files.sort();
    Ok(files)
}

/// Merges one partition.
pub fn compact_partition(
    root: &Path,
    dir: &Path,
    table: RecordTable,
    options: &CompactOptions,
) -> Result<Compacted, LakeError> {
    let mut done = Compacted::default();
    let files = data_files(dir)?;
    // What each file was when listed: one replaced during the merge is not the one merged.
    let listed: HashMap<PathBuf, (u64, Option<std::time::SystemTime>)> = files
        .iter()
        .filter_map(|(p, _)| Some((PathBuf::from(p.file_name()?), stamp(p)?)))
        .collect();
    let (inputs, kept): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(_, size)| *size < options.target_bytes / 2);
    if inputs.len() < 2 {
        return Ok(done);
    }
    let id = id_column(table);
    let mut seen: HashSet<String> = HashSet::new();
    for (path, _) in &kept {
        if let Err(e) = read_ids(path, id, &mut seen) {
            tracing::warn!("lake compact: {e}");
        }
    }
    // Outside the tables, where no reader (nor a glob such as DuckDB's) looks.
    let staging = root.join(STAGING_DIR).join(format!(
        "compact-{}-{}",
        std::process::id(),
        stable_name(&dir.display().to_string())
    ));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    let result = (|| {
        for (path, _) in &kept {
            if let Some(name) = path.file_name() {
                std::fs::hard_link(path, staging.join(name)).map_err(io(path))?;
            }
        }
        let base = merged_base(
            inputs
                .iter()
                .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().to_string())),
        );
        let stem = |path: &Path| {
            path.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
        };
        let mut held = HeldGroups::default();
        for (path, _) in &inputs {
            use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
            let file = File::open(path).map_err(io(path))?;
            let reader = SerializedFileReader::new(file).map_err(parquet_error(path))?;
            held.add(stem(path), reader.metadata().file_metadata());
        }
        let (groups, rows) = held.finish();
        let schema = table.file_schema();
        let mut out = MergedFiles::new(
            MergedInto::Dir(staging.clone()),
            &base,
            schema,
            options.target_bytes,
            groups,
            rows as usize,
        );
        for (path, _) in &inputs {
            let file = File::open(path).map_err(io(path))?;
            merge_records(file, path, id, &mut seen, &mut out, &mut done)?;
        }
        done.files_out = out.finish()?;
        done.files_in = inputs.len();
        Ok::<_, LakeError>(())
    })();
    if let Err(e) = result {
        // Nothing of the partition has changed: it is left as it was, and said so.
        let _ = std::fs::remove_dir_all(&staging);
        tracing::warn!("lake compact: {} left as it was: {e}", dir.display());
        return Ok(Compacted {
            unreadable: 1,
            ..Compacted::default()
        });
    }
    exchange(dir, &staging)?;
    // `staging` now holds the old set: files written there since the listing (new, or
    // rewritten in place) move across.
    for (path, _) in data_files(&staging)? {
        let Some(name) = path.file_name() else {
            continue;
        };
        let now = stamp(&path);
        if now.is_none() || listed.get(Path::new(name)) != now.as_ref() {
            std::fs::rename(&path, dir.join(name)).map_err(io(&path))?;
        }
    }
    std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    Ok(done)
}

/// Merges the small files of every partition of an S3 lake's record tables in the date range.
///
/// S3 has no rename: a partition cannot be swapped whole. Each partition's merged files are
/// put first, then its merged small files deleted, one request each; between the two a
/// reader listing the partition sees records twice (for as long as the deletes take), and
/// after a crash there they stay twice until the next `compact` (which drops them: the small
/// files' ids are in the merged files). A small file written again while the merge ran
/// (another version than the one listed) is not deleted: its records are merged the next
/// time. Memory holds one small file, the merged file being made (up to the target size)
/// and the partition's ids.
pub fn compact_s3(lake: &S3Lake, options: &CompactOptions) -> Result<Compacted, LakeError> {
    // A merge whose small files then could not be deleted would leave their records twice:
    // deleting is tried first (a key that is not there; S3 answers 204 when allowed).
    lake.delete(DELETE_CHECK).map_err(|e| {
        LakeError::BadLocation(format!(
            "{}: cannot delete there (merging needs s3:DeleteObject as well as s3:ListBucket, \
             s3:GetObject and s3:PutObject): {e}",
            lake.url()
        ))
    })?;
    let mut done = Compacted::default();
    for table in [RecordTable::CloudTrail, RecordTable::Invocations] {
        let mut partitions: std::collections::BTreeMap<String, Vec<Listed>> = Default::default();
        // The table's `date=` folders in the range, each listed (not the whole table).
        let mut objects = Vec::new();
        for folder in lake.folders(table.dir())? {
            let Some(day) = folder.strip_prefix("date=") else {
                continue;
            };
            if options.since.as_deref().is_some_and(|s| day < s)
                || options.until.as_deref().is_some_and(|u| day > u)
            {
                continue;
            }
            objects.extend(lake.list(&format!("{}/{folder}", table.dir()))?);
        }
        for object in objects {
            let Some((dir, name)) = object.relative.rsplit_once('/') else {
                continue;
            };
            if !is_data_file(Path::new(name)) {
                continue;
            }
            let parts: Vec<&str> = dir.split('/').collect();
            let [_, date, account, region] = parts[..] else {
                continue;
            };
            let Some(day) = date.strip_prefix("date=") else {
                continue;
            };
            if !account.starts_with("account=")
                || !region.starts_with("region=")
                || options.since.as_deref().is_some_and(|s| day < s)
                || options.until.as_deref().is_some_and(|u| day > u)
            {
                continue;
            }
            partitions.entry(dir.to_string()).or_default().push(object);
        }
        if let Some(bar) = &options.progress {
            bar.inc_length(partitions.len() as u64);
        }
        for (dir, files) in partitions {
            let one = compact_s3_partition(lake, &dir, files, table, options)?;
            done.add_partition(one);
            if let Some(bar) = &options.progress {
                bar.inc(1);
            }
        }
    }
    Ok(done)
}

/// A key under an S3 lake that nothing writes: deleting it checks that deleting is allowed.
const DELETE_CHECK: &str = ".trailhound-delete-check";

/// Merges one partition of a lake in S3 (`dir`, its path under the lake; `files`, its data
/// files as listed).
fn compact_s3_partition(
    lake: &S3Lake,
    dir: &str,
    files: Vec<Listed>,
    table: RecordTable,
    options: &CompactOptions,
) -> Result<Compacted, LakeError> {
    let mut done = Compacted::default();
    let (inputs, kept): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|f| f.size < options.target_bytes / 2);
    if inputs.len() < 2 {
        return Ok(done);
    }
    let name_of = |f: &Listed| {
        f.relative
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let stem_of = |f: &Listed| {
        name_of(f)
            .strip_suffix(super::EXTENSION)
            .map(String::from)
            .unwrap_or_else(|| name_of(f))
    };
    let id = id_column(table);
    let base = merged_base(inputs.iter().map(name_of));
    let result = (|| {
        let mut seen: HashSet<String> = HashSet::new();
        for file in &kept {
            let data = lake.get(&file.relative)?;
            if let Err(e) = ids_into(data, Path::new(&file.relative), id, &mut seen) {
                tracing::warn!("lake compact: {e}");
            }
        }
        let mut held = HeldGroups::default();
        for file in &inputs {
            held.add(stem_of(file), lake.footer(file)?.file_metadata());
        }
        let (groups, rows) = held.finish();
        let mut out = MergedFiles::new(
            MergedInto::S3 {
                lake,
                dir: dir.to_string(),
            },
            &base,
            table.file_schema(),
            options.target_bytes,
            groups,
            rows as usize,
        );
        for file in &inputs {
            let data = lake.get(&file.relative)?;
            merge_records(
                data,
                Path::new(&file.relative),
                id,
                &mut seen,
                &mut out,
                &mut done,
            )?;
        }
        done.files_out = out.finish()?;
        done.files_in = inputs.len();
        Ok::<_, LakeError>(())
    })();
    if let Err(e) = result {
        // Merged files put before the failure would hold records twice: taken away.
        let stale = format!("{base}-");
        for file in lake.list(dir).unwrap_or_default() {
            if name_of(&file).starts_with(&stale) {
                if let Err(e) = lake.delete(&file.relative) {
                    tracing::warn!("lake compact: {e}");
                }
            }
        }
        tracing::warn!("lake compact: s3 {dir} left as it was: {e}");
        return Ok(Compacted {
            unreadable: 1,
            ..Compacted::default()
        });
    }
    for file in &inputs {
        match lake.head(&file.relative)? {
            Some(now) if now.version == file.version => lake.delete(&file.relative)?,
            Some(_) => tracing::info!(
                "lake compact: {} was written again during the merge; kept for the next one",
                file.relative
            ),
            None => {}
        }
    }
    Ok(done)
}

/// The name the merged files of inputs named `names` begin with (`-0.parquet` and so on
/// follow): the same inputs give the same name.
fn merged_base(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.collect();
    format!("{MERGED_PREFIX}{}", stable_name(&names.join(",")))
}

/// What the inputs of a merge hold, from their footers: the group files among them by name
/// with their rows, over the groups that the merged files among them held (a group file
/// written after an earlier merge counts over what that merge noted); and their rows in all.
/// Merged files carry it, so that writing a group again does not add its rows twice.
#[derive(Default)]
struct HeldGroups {
    merged: Merged,
    groups: Vec<(String, u64)>,
    rows: u64,
}

impl HeldGroups {
    /// Notes the input named `stem` (without `.parquet`), with footer `footer`.
    fn add(&mut self, stem: String, footer: &datafusion::parquet::file::metadata::FileMetaData) {
        let rows = footer.num_rows().max(0) as u64;
        self.rows += rows;
        if stem.starts_with(MERGED_PREFIX) {
            self.merged.extend(merged_groups_in(footer));
        } else {
            self.groups.push((stem, rows));
        }
    }

    /// The JSON the merged files carry, and the inputs' rows.
    fn finish(mut self) -> (String, u64) {
        self.merged.extend(self.groups);
        (
            serde_json::to_string(&self.merged).unwrap_or_default(),
            self.rows,
        )
    }
}

/// A file's size and modification time.
fn stamp(path: &Path) -> Option<(u64, Option<std::time::SystemTime>)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

/// Adds the ids in `path`'s `column` to `seen`.
fn read_ids(path: &Path, column: &str, seen: &mut HashSet<String>) -> Result<(), LakeError> {
    let file = File::open(path).map_err(io(path))?;
    ids_into(file, path, column, seen)
}

/// Adds the ids in `column` of the Parquet file `data` (known as `path`) to `seen`.
fn ids_into<R: ChunkReader + 'static>(
    data: R,
    path: &Path,
    column: &str,
    seen: &mut HashSet<String>,
) -> Result<(), LakeError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data).map_err(parquet_error(path))?;
    let Some(index) = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == column)
    else {
        return Ok(());
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(parquet_error(path))?;
    for batch in reader {
        let batch = batch?;
        if let Some(ids) = batch.column(0).as_string_opt::<i32>() {
            seen.extend(ids.iter().flatten().map(String::from));
        }
    }
    Ok(())
}

/// Copies the records of the Parquet file `data` (known as `path`) not seen before into
/// `out`.
fn merge_records<R: ChunkReader + 'static>(
    data: R,
    path: &Path,
    column: &str,
    seen: &mut HashSet<String>,
    out: &mut MergedFiles,
    done: &mut Compacted,
) -> Result<(), LakeError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)
        .map_err(parquet_error(path))?
        .with_batch_size(8192)
        .build()
        .map_err(parquet_error(path))?;
    for batch in reader {
        let batch = batch?;
        let keep: BooleanArray = match batch
            .column_by_name(column)
            .and_then(|c| c.as_string_opt::<i32>())
        {
            // `insert` is false for an id already kept: that record is a duplicate.
            Some(ids) => ids
                .iter()
                .map(|id| {
                    Some(id.is_none_or(|id| !seen.contains(id) && seen.insert(id.to_string())))
                })
                .collect(),
            None => BooleanArray::from(vec![true; batch.num_rows()]),
        };
        done.rows_in += batch.num_rows() as u64;
        let kept = filter_record_batch(&batch, &keep)?;
        done.duplicates += (batch.num_rows() - kept.num_rows()) as u64;
        done.rows_out += kept.num_rows() as u64;
        out.write(&kept)?;
    }
    Ok(())
}

/// Where merged files go.
enum MergedInto<'a> {
    /// A local directory, each file synced before it is closed.
    Dir(PathBuf),
    /// A partition of a lake in S3 (its path under the lake): each file made in memory, then
    /// put whole.
    S3 { lake: &'a S3Lake, dir: String },
}

/// The merged file being written.
enum Open {
    File(PathBuf, ArrowWriter<BufWriter<File>>),
    Memory(String, ArrowWriter<Vec<u8>>),
}

/// Merged files of about a target size each, written one after another.
struct MergedFiles<'a> {
    into: MergedInto<'a>,
    base: String,
    schema: SchemaRef,
    target: u64,
    current: Option<Open>,
    files: usize,
    /// JSON of the group files merged.
    groups: String,
    /// Rows expected in a file (sizes its bloom filters).
    rows: usize,
}

impl<'a> MergedFiles<'a> {
    fn new(
        into: MergedInto<'a>,
        base: &str,
        schema: SchemaRef,
        target: u64,
        groups: String,
        rows: usize,
    ) -> Self {
        Self {
            rows,
            into,
            base: base.to_string(),
            schema,
            target,
            current: None,
            files: 0,
            groups,
        }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = super::write::conform(batch, &self.schema)?;
        if self.current.is_none() {
            let name = format!("{}-{}{}", self.base, self.files, super::EXTENSION);
            let properties = Some(properties(&self.schema, self.rows, None));
            self.current = Some(match &self.into {
                MergedInto::Dir(dir) => {
                    let path = dir.join(name);
                    let file = File::create(&path).map_err(io(&path))?;
                    let writer = ArrowWriter::try_new(
                        BufWriter::with_capacity(1 << 20, file),
                        self.schema.clone(),
                        properties,
                    )
                    .map_err(parquet_error(&path))?;
                    Open::File(path, writer)
                }
                MergedInto::S3 { dir, .. } => {
                    let relative = format!("{dir}/{name}");
                    let writer = ArrowWriter::try_new(Vec::new(), self.schema.clone(), properties)
                        .map_err(parquet_error(Path::new(&relative)))?;
                    Open::Memory(relative, writer)
                }
            });
            self.files += 1;
        }
        let size = match &mut self.current {
            Some(Open::File(path, writer)) => {
                writer.write(&batch).map_err(parquet_error(path))?;
                writer.bytes_written() + writer.in_progress_size()
            }
            Some(Open::Memory(relative, writer)) => {
                writer
                    .write(&batch)
                    .map_err(parquet_error(Path::new(relative)))?;
                writer.bytes_written() + writer.in_progress_size()
            }
            None => 0,
        };
        if size as u64 >= self.target {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), LakeError> {
        let groups = KeyValue::new(MERGED_GROUPS_KEY.to_string(), self.groups.clone());
        match self.current.take() {
            Some(Open::File(path, mut writer)) => {
                writer.append_key_value_metadata(groups);
                let file = writer.into_inner().map_err(parquet_error(&path))?;
                let file = file.into_inner().map_err(|e| LakeError::Io {
                    path: path.clone(),
                    source: e.into_error(),
                })?;
                file.sync_all().map_err(io(&path))?;
            }
            Some(Open::Memory(relative, mut writer)) => {
                writer.append_key_value_metadata(groups);
                let bytes = writer
                    .into_inner()
                    .map_err(parquet_error(Path::new(&relative)))?;
                if let MergedInto::S3 { lake, .. } = &self.into {
                    lake.put(&relative, bytes)?;
                }
            }
            None => {}
        }
        Ok(())
    }

    fn finish(mut self) -> Result<usize, LakeError> {
        self.close()?;
        Ok(self.files)
    }
}

/// Swaps two directories in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<(), LakeError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| LakeError::Io {
            path: p.to_path_buf(),
            source: std::io::Error::other("path holds a NUL byte"),
        })
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(LakeError::Io {
            path: a.to_path_buf(),
            source: std::io::Error::last_os_error(),
        })
    }
}

/// Swaps two directories: two renames where the system has no atomic exchange (a reader may
/// find the partition missing for that moment).
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> Result<(), LakeError> {
    let aside = a.with_extension("exchange");
    std::fs::rename(a, &aside).map_err(io(a))?;
    std::fs::rename(b, a).map_err(io(b))?;
    std::fs::rename(&aside, b).map_err(io(&aside))?;
    Ok(())
}
