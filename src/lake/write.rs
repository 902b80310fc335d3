//! Writing the lake's Parquet files: records split by partition, each partition's rows of one
//! group of objects in one file, written under a hidden name and renamed into place.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBufferBuilder, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef, TimestampMicrosecondType};
use datafusion::parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use datafusion::parquet::basic::{Compression, Encoding, Type as PhysicalType, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::s3::S3Lake;
use super::{LakeError, Location, Partition, EXTENSION};
use crate::decode::bedrock;
use crate::decode::schema::cloudtrail_schema;

/// Rows per row group: a few columns of one row group are read in one request or two.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// A record table of the lake and the columns its partitions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordTable {
    CloudTrail,
    Invocations,
}

impl RecordTable {
    /// The table's directory in the lake.
    pub fn dir(self) -> &'static str {
        match self {
            RecordTable::CloudTrail => super::CLOUDTRAIL_DIR,
            RecordTable::Invocations => super::INVOCATIONS_DIR,
        }
    }

    /// Columns holding the event time, the account and the region.
    fn partition_sources(self) -> [&'static str; 3] {
        match self {
            RecordTable::CloudTrail => ["eventtime", "recipientaccountid", "awsregion"],
            RecordTable::Invocations => ["timestamp", "accountid", "region"],
        }
    }

    /// The schema of the table's files: the table's own, less any column a partition stands
    /// for (`bedrock_invocations.region` is its partition's `region`).
    pub fn file_schema(self) -> SchemaRef {
        match self {
            RecordTable::CloudTrail => cloudtrail_schema(),
            RecordTable::Invocations => {
                let full = bedrock::bedrock_schema();
                let fields: Vec<_> = full
                    .fields()
                    .iter()
                    .filter(|f| !super::PARTITION_COLUMNS.contains(&f.name().as_str()))
                    .cloned()
                    .collect();
                Arc::new(Schema::new(fields))
            }
        }
    }
}

/// Which directory `dir` is now (its inode): `lake compact` replaces a partition's directory
/// with another, and what the partition has merged is read again then. `None` when there is
/// none yet.
fn directory_identity(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir).ok().map(|m| m.ino())
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(dir)
            .ok()
            .and_then(|m| m.modified().ok())
            .map(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            })
    }
}

/// What a write put in the lake.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub files: usize,
    pub rows: usize,
    pub bytes: u64,
    /// Rows not written because `lake compact` had already merged them.
    pub already_merged: usize,
}

impl std::ops::AddAssign for Written {
    fn add_assign(&mut self, other: Self) {
        self.files += other.files;
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.already_merged += other.already_merged;
    }
}

/// The groups merged into the `c-*` files of partition `dir` (read from their metadata; a
/// file that cannot be read names none).
pub fn merged_groups(dir: &Path) -> Merged {
    let mut merged = Merged::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return merged;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_merged = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_merged_file);
        if is_merged {
            merged.extend(file_merged_groups(&path));
        }
    }
    merged
}

/// The groups one merged file names.
pub fn file_merged_groups(path: &Path) -> Merged {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let Ok(file) = File::open(path) else {
        return Merged::new();
    };
    let Ok(reader) = SerializedFileReader::new(file) else {
        return Merged::new();
    };
    merged_groups_in(reader.metadata().file_metadata())
}

/// The groups a merged file names, from its metadata.
pub fn merged_groups_in(metadata: &datafusion::parquet::file::metadata::FileMetaData) -> Merged {
    metadata
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == MERGED_GROUPS_KEY))
        .and_then(|k| k.value.as_deref())
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// Key of a merged file's metadata naming the group files it holds: a JSON object of file
/// name (without `.parquet`) to the rows that file had.
pub const MERGED_GROUPS_KEY: &str = "trailhound.merged_groups";

/// Directory under the lake's root where files are written before they are renamed into
/// their partition.
pub const STAGING_DIR: &str = ".staging";

static NEXT_TEMPORARY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Prefix of the files `lake compact` writes.
pub const MERGED_PREFIX: &str = "c-";

/// Whether the file named `name` is one `lake compact` wrote.
pub fn is_merged_file(name: &str) -> bool {
    name.starts_with(MERGED_PREFIX) && name.ends_with(EXTENSION)
}

/// Group files already merged into a partition's `c-*` files, by name, with their rows.
pub type Merged = HashMap<String, u64>;

/// Per partition directory: which directory it was (see [`directory_identity`]) and what its
/// merged files held then.
type MergedByPartition = HashMap<PathBuf, (Option<u64>, Arc<Merged>)>;

/// Per partition of a lake in S3: when its merged files were read, and what they held.
type MergedInS3 = HashMap<PathBuf, (std::time::Instant, Arc<Merged>)>;

/// Writes Parquet files into a lake directory.
#[derive(Debug, Clone)]
pub struct LakeWriter {
    root: PathBuf,
    /// What each partition written to has merged, read again whenever the partition's
    /// directory is another one (`lake compact` swaps in a new directory when it merges).
    merged: Arc<Mutex<MergedByPartition>>,
    /// Whether each file is flushed to disk before it is renamed into place (else
    /// [`LakeWriter::sync`] flushes everything at the end).
    sync_each: bool,
    /// The bucket, for a lake in S3 (`root` is then its `s3://` URL, for joining paths).
    s3: Option<Arc<S3Lake>>,
    /// For a lake in S3: what each partition written to has merged, and when that was read.
    s3_merged: Arc<Mutex<MergedInS3>>,
}

/// How long what a partition in S3 has merged is taken as known.
const S3_MERGED_FRESH: std::time::Duration = std::time::Duration::from_secs(60);

impl LakeWriter {
    /// A writer into the lake at `root` (created if needed).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, LakeError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| LakeError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(Self {
            root,
            merged: Arc::default(),
            sync_each: false,
            s3: None,
            s3_merged: Arc::default(),
        })
    }

    /// A writer into the lake at `location`: a directory (created if needed), or an S3
    /// prefix (credentials from the environment; nothing is checked until the first write).
    pub fn open(location: &Location) -> Result<Self, LakeError> {
        match location {
            Location::Local(dir) => Self::new(dir),
            Location::S3(url) => {
                let s3 = S3Lake::connect(url)?;
                Ok(Self {
                    root: PathBuf::from(s3.url()),
                    merged: Arc::default(),
                    sync_each: false,
                    s3: Some(Arc::new(s3)),
                    s3_merged: Arc::default(),
                })
            }
        }
    }

    /// Where the lake is, as the user gave it.
    pub fn location(&self) -> String {
        match &self.s3 {
            Some(s3) => s3.url(),
            None => self.root.display().to_string(),
        }
    }

    /// Flushes each file to disk before renaming it into place: when the file's being in
    /// the lake is acknowledged to someone (the daemon deleting a message).
    pub fn syncing_each_file(mut self) -> Self {
        self.sync_each = true;
        self
    }

    /// Flushes everything written to the lake's file system to disk.
    pub fn sync(&self) -> Result<(), LakeError> {
        if self.s3.is_some() {
            // Each PutObject returned once S3 held the object.
            return Ok(());
        }
        let dir = File::open(&self.root).map_err(|source| LakeError::Io {
            path: self.root.clone(),
            source,
        })?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is open for the duration of the call.
            if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
                return Err(LakeError::Io {
                    path: self.root.clone(),
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        #[cfg(not(target_os = "linux"))]
        dir.sync_all().map_err(|source| LakeError::Io {
            path: self.root.clone(),
            source,
        })?;
        Ok(())
    }

    /// The lake's directory (for a lake in S3, its `s3://` URL, to join table and partition
    /// paths onto).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `batches` of `table` as one file per partition their rows fall in, each named
    /// `name.parquet`: a file of that name already there is replaced. A group that `lake
    /// compact` has already merged into the partition, with as many rows as now, is not
    /// written again (its rows are there); with other rows, it is written, and the next
    /// compaction drops the records it holds twice.
    pub fn write_records(
        &self,
        table: RecordTable,
        name: &str,
        batches: &[RecordBatch],
    ) -> Result<Written, LakeError> {
        let rows: Vec<(usize, usize)> = batches
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |row| (b, row)))
            .collect();
        self.write_rows(table, name, batches, &rows)
    }

    /// [`LakeWriter::write_records`] of the rows `rows` (`(batch, row)` in `batches`), in
    /// that order.
    pub fn write_rows(
        &self,
        table: RecordTable,
        name: &str,
        batches: &[RecordBatch],
        rows: &[(usize, usize)],
    ) -> Result<Written, LakeError> {
        let mut written = Written::default();
        let schema = table.file_schema();
        // Split by the records' own columns, before the file's schema leaves out those that
        // partitions stand for.
        let partitions = split(table, batches, rows);
        let batches: Vec<RecordBatch> = batches
            .iter()
            .map(|b| conform(b, &schema))
            .collect::<Result<_, _>>()?;
        for (partition, rows) in partitions {
            let dir = self.root.join(table.dir()).join(partition.path());
            if self.merged_into(&dir).get(name) == Some(&(rows.len() as u64)) {
                written.already_merged += rows.len();
                continue;
            }
            let gathered = gather(&batches, &rows)?;
            written += self.write_file(&dir, name, &schema, &gathered)?;
        }
        Ok(written)
    }

    /// The groups merged into `dir`'s files.
    fn merged_into(&self, dir: &Path) -> Arc<Merged> {
        if let Some(s3) = &self.s3 {
            return self.merged_in_s3(s3, dir);
        }
        let identity = directory_identity(dir);
        let mut cache = crate::sync::lock(&self.merged);
        match cache.get(dir) {
            Some((known, merged)) if *known == identity => merged.clone(),
            _ => {
                let merged = Arc::new(merged_groups(dir));
                cache.insert(dir.to_path_buf(), (identity, merged.clone()));
                merged
            }
        }
    }

    /// The groups merged into a partition of a lake in S3, from its merged files' footers
    /// (a listing of the partition, and one ranged GET per merged file), read again once
    /// [`S3_MERGED_FRESH`] old. A merge that finished meanwhile is seen then; until then a
    /// group written again is held twice, and the next merge drops the repeats. A listing or
    /// footer that cannot be read counts as nothing merged (the group is written; the next
    /// merge drops what it holds twice).
    fn merged_in_s3(&self, s3: &S3Lake, dir: &Path) -> Arc<Merged> {
        if let Some((at, merged)) = crate::sync::lock(&self.s3_merged).get(dir) {
            if at.elapsed() < S3_MERGED_FRESH {
                return merged.clone();
            }
        }
        let mut merged = Merged::new();
        match s3.list(&self.relative(dir)) {
            Ok(files) => {
                for file in files {
                    let name = file.relative.rsplit('/').next().unwrap_or_default();
                    if !is_merged_file(name) {
                        continue;
                    }
                    match s3.footer(&file) {
                        Ok(footer) => merged.extend(merged_groups_in(footer.file_metadata())),
                        Err(e) => tracing::warn!("lake: {e}"),
                    }
                }
            }
            Err(e) => tracing::warn!("lake: listing what was merged: {e}"),
        }
        let merged = Arc::new(merged);
        crate::sync::lock(&self.s3_merged).insert(
            dir.to_path_buf(),
            (std::time::Instant::now(), merged.clone()),
        );
        merged
    }

    /// `path`'s path under the lake, `/`-separated.
    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Writes `batches` (of `schema`) to `dir/name.parquet`, whole or not at all.
    pub fn write_file(
        &self,
        dir: &Path,
        name: &str,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<Written, LakeError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LakeError::Io { path, source }
        };
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(Written::default());
        }
        if let Some(s3) = &self.s3 {
            return self.put_file(s3, dir, name, schema, batches, rows);
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(format!("{name}{EXTENSION}"));
        // Written outside the tables, then renamed into the partition: no reader lists it
        // before it is whole, and `lake compact` swapping the partition's directory meanwhile
        // cannot strand it.
        let staging = self.root.join(STAGING_DIR);
        std::fs::create_dir_all(&staging).map_err(io(&staging))?;
        let temporary = staging.join(format!(
            "{}.{}.{}.tmp",
            super::stable_name(&path.display().to_string()),
            std::process::id(),
            NEXT_TEMPORARY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let result = (|| {
            let file = File::create(&temporary).map_err(io(&temporary))?;
            let parquet = |source| LakeError::Parquet {
                path: path.clone(),
                source,
            };
            let properties = properties(schema, rows, Some(batches));
            let mut writer = ArrowWriter::try_new(
                BufWriter::with_capacity(1 << 20, file),
                schema.clone(),
                Some(properties),
            )
            .map_err(parquet)?;
            for batch in batches {
                writer.write(batch).map_err(parquet)?;
            }
            let file = writer.into_inner().map_err(parquet)?;
            let file = file.into_inner().map_err(|e| LakeError::Io {
                path: temporary.clone(),
                source: e.into_error(),
            })?;
            if self.sync_each {
                file.sync_all().map_err(io(&temporary))?;
            }
            let bytes = file.metadata().map_err(io(&temporary))?.len();
            std::fs::rename(&temporary, &path).map_err(io(&path))?;
            Ok(Written {
                files: 1,
                rows,
                bytes,
                already_merged: 0,
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        result
    }

    /// [`LakeWriter::write_file`] into S3: the file made in memory, then put whole under its
    /// key (a PutObject replaces the object at once; no reader sees part of it).
    fn put_file(
        &self,
        s3: &S3Lake,
        dir: &Path,
        name: &str,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        rows: usize,
    ) -> Result<Written, LakeError> {
        let relative = self.relative(&dir.join(format!("{name}{EXTENSION}")));
        let parquet = |source| LakeError::Parquet {
            path: PathBuf::from(s3.key(&relative).as_ref()),
            source,
        };
        let mut writer = ArrowWriter::try_new(
            Vec::new(),
            schema.clone(),
            Some(properties(schema, rows, Some(batches))),
        )
        .map_err(parquet)?;
        for batch in batches {
            writer.write(batch).map_err(parquet)?;
        }
        let bytes = writer.into_inner().map_err(parquet)?;
        let size = bytes.len() as u64;
        s3.put(&relative, bytes)?;
        Ok(Written {
            files: 1,
            rows,
            bytes: size,
            already_merged: 0,
        })
    }
}

/// How the lake's files of `schema` are written:
///
/// * row groups of [`ROW_GROUP_ROWS`];
/// * bloom filters on [`BLOOM_FILTERED`] columns, sized for `rows`;
/// * statistics for every page (so engines skip pages and row groups by min/max) and the page
///   index, except on the free-form JSON documents ([`json_document`]): nobody prunes by the
///   least and greatest request parameters, and comparing every document costs;
/// * no dictionary for the columns that hold one value per event ([`one_per_event`]): the
///   dictionary would only grow until the writer gives it up, hashing every value on the way;
///   the event time delta-encoded (events arrive nearly in order, so the deltas are small);
/// * zstd (level 1: most of level 3's ratio on CloudTrail, for less CPU) on the columns that
///   hold most of a record's bytes ([`worth_compressing`]). The others (mostly null, or a few
///   values that dictionary and run-length encoding already shrink) are left uncompressed:
///   a zstd context per column chunk costs more time than they save space. When the rows
///   are known beforehand (`batches`), a column holding under [`SMALL_COLUMN`] bytes of
///   values in them is left uncompressed too: most of a delivery day's columns are nearly empty.
pub(crate) fn properties(
    schema: &SchemaRef,
    rows: usize,
    batches: Option<&[RecordBatch]>,
) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("trailhound {}", env!("CARGO_PKG_VERSION")));
    let zstd = Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default());
    if let Ok(descriptor) = ArrowSchemaConverter::new().convert(schema) {
        for column in descriptor.columns() {
            let path = column.path().clone();
            let small = || {
                batches.is_some_and(|batches| {
                    let mut bytes = 0;
                    for batch in batches {
                        bytes += leaf_bytes(batch, path.parts());
                        if bytes >= SMALL_COLUMN {
                            return false;
                        }
                    }
                    true
                })
            };
            if worth_compressing(path.parts()) && !small() {
                builder = builder.set_column_compression(path.clone(), zstd);
            }
            if json_document(path.parts()) {
                builder =
                    builder.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
            }
            if one_per_event(path.parts()) {
                builder = builder.set_column_dictionary_enabled(path.clone(), false);
                if column.physical_type() == PhysicalType::INT64 {
                    builder =
                        builder.set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED);
                }
            }
            if BLOOM_FILTERED.iter().any(|b| path.parts() == *b) {
                // Sized for the file (as many distinct values as rows at most, folded down to what the
                // values need once written), 1% false hits.
                builder = builder
                    .set_column_bloom_filter_enabled(path.clone(), true)
                    .set_column_bloom_filter_fpp(path.clone(), 0.01)
                    .set_column_bloom_filter_max_ndv(path, rows.clamp(1, ROW_GROUP_ROWS) as u64);
            }
        }
    }
    builder.build()
}

/// Bytes of values under which a column of a file is not worth a zstd context.
pub const SMALL_COLUMN: usize = 16 * 1024;

/// Bytes of string values in `batch`'s leaf column at `path` (a Parquet column path: a list
/// is `name.list.ITEM`). Leaves that are not strings, or a path not found, count as large.
fn leaf_bytes(batch: &RecordBatch, path: &[String]) -> usize {
    fn of(array: &dyn Array, path: &[String]) -> usize {
        match (path, array.data_type()) {
            ([], DataType::Utf8) => {
                let strings = array.as_string::<i32>();
                let offsets = strings.value_offsets();
                match (offsets.first(), offsets.last()) {
                    (Some(first), Some(last)) => (last - first).max(0) as usize,
                    _ => 0,
                }
            }
            ([name, rest @ ..], DataType::Struct(_)) => array
                .as_struct()
                .column_by_name(name)
                .map_or(usize::MAX, |child| of(child.as_ref(), rest)),
            ([_list, _item, rest @ ..], DataType::List(_)) => {
                of(array.as_list::<i32>().values().as_ref(), rest)
            }
            _ => usize::MAX,
        }
    }
    match path {
        [top, rest @ ..] => batch
            .column_by_name(top)
            .map_or(usize::MAX, |column| of(column.as_ref(), rest)),
        [] => usize::MAX,
    }
}

/// The columns that hold whole JSON documents, as text.
const JSON_DOCUMENTS: &[&str] = &[
    "requestparameters",
    "responseelements",
    "additionaleventdata",
    "serviceeventdetails",
    "edgedevicedetails",
    "insightdetails",
    "unmapped",
];

/// Whether a leaf column (by its path) holds whole JSON documents, as text.
pub fn json_document(path: &[String]) -> bool {
    matches!(path, [top] if JSON_DOCUMENTS.contains(&top.as_str()))
}

/// Columns with a bloom filter in every row group, so that a search for one event, or for
/// what one access key did, skips the files that do not hold it. (DataFusion uses the
/// top-level column's; `hunt --lake` reads the nested one's itself, see [`super::prune`].)
pub const BLOOM_FILTERED: &[&[&str]] = &[&["eventid"], &["useridentity", "accesskeyid"]];

/// Whether a leaf column (by its path) holds a value of its own for nearly every event: ids
/// and times, where a dictionary cannot help.
pub fn one_per_event(path: &[String]) -> bool {
    const UNIQUE: &[&str] = &[
        "eventid",
        "requestid",
        "sharedeventid",
        "eventtime",
        "timestamp",
    ];
    matches!(path, [top] if UNIQUE.contains(&top.as_str()))
}

/// Whether a leaf column (by its path) holds enough bytes, and enough repetition inside them, to
/// be worth compressing: free-form JSON, user agents, ids, ARNs and the like. (Short ids that are
/// mostly distinct, such as access key ids, principal ids and addresses, shrink by under a
/// fifth and are left alone.)
pub fn worth_compressing(path: &[String]) -> bool {
    const HEAVY: &[&str] = &[
        "useragent",
        "eventid",
        "requestid",
        "sharedeventid",
        "errormessage",
        "arn",
        "sourcekey",
        "creationdate",
        "description",
        "eventids",
        "groupjson",
    ];
    path.iter()
        .any(|part| HEAVY.contains(&part.as_str()) || JSON_DOCUMENTS.contains(&part.as_str()))
}

/// `batch` with exactly `schema`'s columns, in its order (a column the batch lacks is
/// all null; one the schema lacks is left out).
pub(crate) fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, LakeError> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            batch
                .column_by_name(field.name())
                .cloned()
                .unwrap_or_else(|| {
                    datafusion::arrow::array::new_null_array(field.data_type(), batch.num_rows())
                })
        })
        .collect();
    let nullable: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            let present = batch.column_by_name(f.name()).is_some();
            Arc::new(
                f.as_ref()
                    .clone()
                    .with_nullable(f.is_nullable() || !present),
            )
        })
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(nullable)),
        columns,
    )?)
}

/// The rows `rows` (`(batch, row)` in `batches`) by partition, in their order.
pub fn split(
    table: RecordTable,
    batches: &[RecordBatch],
    rows: &[(usize, usize)],
) -> BTreeMap<Partition, Vec<(usize, usize)>> {
    let [time, account, region] = table.partition_sources();
    let columns: Vec<_> = batches
        .iter()
        .map(|batch| {
            (
                batch
                    .column_by_name(time)
                    .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
                batch
                    .column_by_name(account)
                    .and_then(|c| c.as_string_opt::<i32>()),
                batch
                    .column_by_name(region)
                    .and_then(|c| c.as_string_opt::<i32>()),
            )
        })
        .collect();
    // Runs of one day, account and region are the rule: the last key is checked first.
    type Key<'a> = (Option<i64>, Option<&'a str>, Option<&'a str>);
    let mut index: ahash::HashMap<Key, usize> = ahash::HashMap::default();
    let mut parts: Vec<(Partition, Vec<(usize, usize)>)> = Vec::new();
    let mut last: Option<(Key, usize)> = None;
    for &(b, row) in rows {
        let Some((times, accounts, regions)) = columns.get(b) else {
            continue;
        };
        let t = times.and_then(|c| c.is_valid(row).then(|| c.value(row)));
        let a = accounts.and_then(|c| c.is_valid(row).then(|| c.value(row)));
        let r = regions.and_then(|c| c.is_valid(row).then(|| c.value(row)));
        let key = (t.map(|t| t.div_euclid(DAY_MICROS)), a, r);
        let at = match last {
            Some((k, at)) if k == key => at,
            _ => {
                let at = *index.entry(key).or_insert_with(|| {
                    parts.push((Partition::of(t, a, r), Vec::new()));
                    parts.len() - 1
                });
                last = Some((key, at));
                at
            }
        };
        parts[at].1.push((b, row));
    }
    let mut out: BTreeMap<Partition, Vec<(usize, usize)>> = BTreeMap::new();
    for (partition, rows) in parts {
        out.entry(partition).or_default().extend(rows);
    }
    out
}

/// Most rows [`gather`] copies into one batch.
const GATHERED_ROWS: usize = 64 * 1024;

/// The rows `rows` (`(batch, row)` in `batches`, conformed to one table) as batches to
/// write: a batch whose every row is wanted, in order, as it is; the others copied together
/// into batches of up to [`GATHERED_ROWS`] rows. Parquet's writer walks every column on
/// each batch it is given, so a few large batches encode much faster than the many runs of
/// a few rows that a group's objects are in.
pub(crate) fn gather(
    batches: &[RecordBatch],
    rows: &[(usize, usize)],
) -> Result<Vec<RecordBatch>, LakeError> {
    let mut out = Vec::new();
    let mut pending: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < rows.len() {
        let (b, row) = rows[at];
        let whole = batches.get(b).map_or(0, |batch| batch.num_rows());
        let is_whole = row == 0
            && whole > 0
            && rows.len() - at >= whole
            && rows[at + whole - 1] == (b, whole - 1)
            && rows[at..at + whole]
                .iter()
                .enumerate()
                .all(|(i, &r)| r == (b, i));
        if is_whole {
            interleaved(batches, &std::mem::take(&mut pending), &mut out)?;
            out.push(batches[b].clone());
            at += whole;
            continue;
        }
        pending.push((b, row));
        if pending.len() == GATHERED_ROWS {
            interleaved(batches, &std::mem::take(&mut pending), &mut out)?;
        }
        at += 1;
    }
    interleaved(batches, &pending, &mut out)?;
    Ok(out)
}

/// Adds `rows` (`(batch, row)` in `batches`) to `out` as one batch (none when there are no
/// rows), or as two halves and so on when their strings are too long for one (the records
/// are the attacker's to write). A column is nullable if it is in any of the batches.
fn interleaved(
    batches: &[RecordBatch],
    rows: &[(usize, usize)],
    out: &mut Vec<RecordBatch>,
) -> Result<(), LakeError> {
    use datafusion::arrow::error::ArrowError;
    let Some(first) = batches.first() else {
        return Ok(());
    };
    if rows.is_empty() {
        return Ok(());
    }
    let schema = first.schema();
    let runs = runs_of(rows);
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
        let nullable = batches.iter().any(|b| b.schema().field(i).is_nullable());
        fields.push(Arc::new(field.as_ref().clone().with_nullable(nullable)));
        match gather_column(&arrays, &runs, Some(rows)) {
            Ok(column) => columns.push(column),
            Err(ArrowError::OffsetOverflowError(_)) if rows.len() > 1 => {
                let (front, back) = rows.split_at(rows.len() / 2);
                interleaved(batches, front, out)?;
                return interleaved(batches, back, out);
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.push(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?);
    Ok(())
}

/// `rows` (`(batch, row)`) as runs of consecutive rows of one batch: `(batch, first row,
/// rows)`. A group's rows are runs of its objects' records in each batch.
fn runs_of(rows: &[(usize, usize)]) -> Vec<(usize, usize, usize)> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for &(b, row) in rows {
        match runs.last_mut() {
            Some((rb, start, len)) if *rb == b && *start + *len == row => *len += 1,
            _ => runs.push((b, row, 1)),
        }
    }
    runs
}

/// The rows `runs` of `arrays`, one column: strings, structs and lists copied a run at a time
/// (one copy of a run's bytes, not one per row); other types by arrow's `interleave`, over
/// `rows` (the same rows one by one) when given.
fn gather_column(
    arrays: &[&dyn Array],
    runs: &[(usize, usize, usize)],
    rows: Option<&[(usize, usize)]>,
) -> Result<ArrayRef, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::array::{new_empty_array, ListArray, StringArray, StructArray};
    use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
    use datafusion::arrow::error::ArrowError;
    let row_by_row = || -> Result<ArrayRef, ArrowError> {
        match rows {
            Some(rows) => datafusion::arrow::compute::interleave(arrays, rows),
            None => {
                let rows: Vec<(usize, usize)> = runs
                    .iter()
                    .flat_map(|&(b, start, len)| (start..start + len).map(move |r| (b, r)))
                    .collect();
                datafusion::arrow::compute::interleave(arrays, &rows)
            }
        }
    };
    let Some(first) = arrays.first() else {
        return row_by_row();
    };
    if runs.is_empty() {
        return Ok(new_empty_array(first.data_type()));
    }
    let rows_out: usize = runs.iter().map(|r| r.2).sum();
    let nulls = || gather_nulls(arrays, runs);
    match first.data_type() {
        DataType::Utf8 => {
            let strings: Option<Vec<&StringArray>> =
                arrays.iter().map(|a| a.as_string_opt::<i32>()).collect();
            let Some(strings) = strings else {
                return row_by_row();
            };
            let mut offsets: Vec<i32> = Vec::with_capacity(rows_out + 1);
            let mut values: Vec<u8> = Vec::new();
            offsets.push(0);
            for &(b, start, len) in runs {
                let o = &strings[b].value_offsets()[start..=start + len];
                let (from, to) = append_offsets(&mut offsets, o, values.len())?;
                values.extend_from_slice(&strings[b].values()[from..to]);
            }
            Ok(Arc::new(StringArray::try_new(
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                Buffer::from_vec(values),
                nulls(),
            )?))
        }
        DataType::Struct(fields) => {
            let structs: Option<Vec<&StructArray>> =
                arrays.iter().map(|a| a.as_struct_opt()).collect();
            let Some(structs) = structs else {
                return row_by_row();
            };
            let mut children = Vec::with_capacity(fields.len());
            for i in 0..fields.len() {
                let child: Vec<&dyn Array> = structs.iter().map(|s| s.column(i).as_ref()).collect();
                children.push(gather_column(&child, runs, rows)?);
            }
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                nulls(),
            )?))
        }
        DataType::List(field) => {
            let lists: Option<Vec<&ListArray>> =
                arrays.iter().map(|a| a.as_list_opt::<i32>()).collect();
            let Some(lists) = lists else {
                return row_by_row();
            };
            // A run of lists is a run of their items.
            let mut offsets: Vec<i32> = Vec::with_capacity(rows_out + 1);
            let mut item_runs = Vec::with_capacity(runs.len());
            let mut items = 0usize;
            offsets.push(0);
            for &(b, start, len) in runs {
                let o = &lists[b].value_offsets()[start..=start + len];
                let (from, to) = append_offsets(&mut offsets, o, items)?;
                if to > from {
                    item_runs.push((b, from, to - from));
                }
                items += to - from;
            }
            let values: Vec<&dyn Array> = lists.iter().map(|l| l.values().as_ref()).collect();
            Ok(Arc::new(ListArray::try_new(
                Arc::clone(field),
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                gather_column(&values, &item_runs, None)?,
                nulls(),
            )?))
        }
        _ => row_by_row(),
    }
}

/// Appends to `offsets` those of a run (`run`, its rows' offsets and the one after the last),
/// moved to start at `at`, where the values gathered so far end. Returns where the run's
/// values are in its own array; an error when they would end past an `i32` offset.
fn append_offsets(
    offsets: &mut Vec<i32>,
    run: &[i32],
    at: usize,
) -> Result<(usize, usize), datafusion::arrow::error::ArrowError> {
    let (from, to) = (run[0] as usize, run[run.len() - 1] as usize);
    if at + (to - from) > i32::MAX as usize {
        return Err(datafusion::arrow::error::ArrowError::OffsetOverflowError(
            at + (to - from),
        ));
    }
    let shift = at as i64 - from as i64;
    offsets.extend(run[1..].iter().map(|&end| (end as i64 + shift) as i32));
    Ok((from, to))
}

/// The validity of the rows `runs` of `arrays`: `None` when every one is valid.
fn gather_nulls(
    arrays: &[&dyn Array],
    runs: &[(usize, usize, usize)],
) -> Option<datafusion::arrow::buffer::NullBuffer> {
    use datafusion::arrow::buffer::NullBuffer;
    if arrays.iter().all(|a| a.nulls().is_none()) {
        return None;
    }
    let rows = runs.iter().map(|r| r.2).sum();
    let mut valid = BooleanBufferBuilder::new(rows);
    for &(b, start, len) in runs {
        match arrays[b].nulls() {
            Some(n) => {
                let at = n.offset() + start;
                valid.append_packed_range(at..at + len, n.buffer().as_slice())
            }
            None => valid.append_n(len, true),
        }
    }
    Some(NullBuffer::new(valid.finish()))
}

const DAY_MICROS: i64 = 86_400_000_000;

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    /// `n` S3 reads by one client, each with about 120 bytes of request parameters.
    fn reads(n: usize) -> RecordBatch {
        let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T0805Z_a.json.gz";
        let records: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"eventVersion":"1.08","eventTime":"2026-10-05T08:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"id-{i}","recipientAccountId":"111122223333","userAgent":"aws-cli/2","requestParameters":{{"bucketName":"training-data","key":"datasets/{i:08}/part-{i}.parquet","x-amz-checksum-mode":"ENABLED"}},"resources":[{{"ARN":"arn:aws:s3:::training-data/k","type":"AWS::S3::Object"}}]}}"#
                )
            })
            .collect();
        crate::lake::tests::decoded(key, &records)
    }

    #[test]
    fn invocations_are_partitioned_by_their_own_region() {
        let line = |region: &str, request: &str| {
            format!(
                r#"{{"schemaType":"ModelInvocationLog","schemaVersion":"1.0","timestamp":"2024-05-01T10:00:00Z","accountId":"111122223333","identity":{{"arn":"arn:aws:sts::111122223333:assumed-role/App/i-1"}},"region":"{region}","requestId":"{request}","operation":"Converse","modelId":"anthropic.claude-3-haiku-20240307-v1:0"}}"#
            )
        };
        let body = [
            line("us-east-1", "r1"),
            line("eu-west-1", "r2"),
            line("us-east-1", "r3"),
        ]
        .join("\n");
        let key =
            "AWSLogs/111122223333/BedrockModelInvocationLogs/us-east-1/2024/05/01/10/a.json.gz";
        let batch = crate::decode::bedrock::decode(key, body.as_bytes(), 1 << 20)
            .batch
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let writer = LakeWriter::new(dir.path()).unwrap();
        let written = writer
            .write_records(RecordTable::Invocations, "inv-test", &[batch])
            .unwrap();
        assert_eq!((written.files, written.rows), (2, 3));
        let table = dir.path().join(super::super::INVOCATIONS_DIR);
        for (region, rows) in [("us-east-1", 2), ("eu-west-1", 1)] {
            let file = table
                .join(format!(
                    "date=2024-05-01/account=111122223333/region={region}"
                ))
                .join("inv-test.parquet");
            let reader = SerializedFileReader::new(File::open(&file).unwrap()).unwrap();
            assert_eq!(
                reader.metadata().file_metadata().num_rows(),
                rows,
                "{region}"
            );
        }
    }

    #[test]
    fn gathered_rows_are_the_rows_asked_for_in_order() {
        let schema = RecordTable::CloudTrail.file_schema();
        let batches = [
            conform(&reads(5), &schema).unwrap(),
            conform(&reads(3), &schema).unwrap(),
        ];
        // A run of the first batch, the whole second one in order, then the first's again.
        let rows = [(0, 3), (0, 4), (1, 0), (1, 1), (1, 2), (0, 0)];
        let out = gather(&batches, &rows).unwrap();
        let ids: Vec<String> = out
            .iter()
            .flat_map(|b| {
                let ids = b.column_by_name("eventid").unwrap().as_string::<i32>();
                ids.iter()
                    .map(|v| v.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ids, ["id-3", "id-4", "id-0", "id-1", "id-2", "id-0"]);
        assert_eq!(
            out.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [2, 3, 1]
        );
        // The whole batch is handed on as it is, not copied.
        assert!(Arc::ptr_eq(out[1].column(0), batches[1].column(0)));
        // Every column comes along with its rows.
        let parameters: Vec<String> = out
            .iter()
            .flat_map(|b| {
                let column = b.column_by_name("requestparameters").unwrap();
                let documents = column.as_string::<i32>();
                documents
                    .iter()
                    .map(|v| v.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(parameters[0].contains("datasets/00000003/part-3.parquet"));
        assert!(parameters[5].contains("datasets/00000000/part-0.parquet"));
        // No rows, no batches.
        assert!(gather(&batches, &[]).unwrap().is_empty());
    }

    #[test]
    fn runs_gather_what_arrow_interleaves() {
        use datafusion::arrow::compute::interleave;
        let schema = RecordTable::CloudTrail.file_schema();
        // Some records with an error and a user name, some without: columns with nulls in
        // some rows, in nested fields too.
        let mixed = |n: usize| {
            let key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/111122223333_CloudTrail_us-east-1_20261005T0805Z_b.json.gz";
            let records: Vec<String> = (0..n)
                .map(|i| {
                    let error = if i % 3 == 0 { r#","errorCode":"AccessDenied""# } else { "" };
                    let user = if i % 2 == 0 { r#","userName":"ana""# } else { "" };
                    format!(
                        r#"{{"eventVersion":"1.08","eventTime":"2026-10-05T08:00:0{}Z","eventSource":"iam.amazonaws.com","eventName":"ListUsers","awsRegion":"us-east-1","eventID":"m-{i}","recipientAccountId":"111122223333","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u{i}"{user}}}{error}}}"#,
                        i % 10
                    )
                })
                .collect();
            crate::lake::tests::decoded(key, &records)
        };
        let batches = [
            conform(&reads(6), &schema).unwrap(),
            conform(&mixed(7), &schema).unwrap(),
            conform(&reads(2).slice(1, 1), &schema).unwrap(),
        ];
        let rows = [
            (1, 2),
            (1, 3),
            (1, 4),
            (0, 0),
            (2, 0),
            (1, 0),
            (0, 5),
            (0, 1),
            (0, 2),
            (1, 6),
            (1, 6),
        ];
        let runs = runs_of(&rows);
        assert_eq!(runs.len(), 8, "{runs:?}");
        for (i, field) in schema.fields().iter().enumerate() {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
            let ours = gather_column(&arrays, &runs, Some(&rows)).unwrap();
            let arrow = interleave(&arrays, &rows).unwrap();
            assert_eq!(ours.to_data(), arrow.to_data(), "{}", field.name());
        }
        let errors = batches[1].column_by_name("errorcode").unwrap();
        assert!(errors.null_count() > 0 && errors.null_count() < errors.len());
    }

    /// Each leaf column of the one file under `dir`: its codec and whether it has statistics.
    fn columns(dir: &Path) -> HashMap<String, (Compression, bool)> {
        let file = walkdir::WalkDir::new(dir)
            .into_iter()
            .map(|e| e.unwrap().into_path())
            .find(|p| p.extension().is_some_and(|e| e == "parquet"))
            .unwrap();
        let reader = SerializedFileReader::new(File::open(file).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        group
            .columns()
            .iter()
            .map(|c| {
                (
                    c.column_path().string(),
                    (c.compression(), c.statistics().is_some()),
                )
            })
            .collect()
    }

    #[test]
    fn a_file_compresses_the_columns_with_bytes_to_save() {
        let dir = tempfile::tempdir().unwrap();
        let writer = LakeWriter::new(dir.path()).unwrap();
        // 400 records: about 48 KB of request parameters, 3.6 KB of user agents.
        let written = writer
            .write_records(RecordTable::CloudTrail, "f", &[reads(400)])
            .unwrap();
        assert_eq!(written.rows, 400);
        let columns = columns(dir.path());
        let (parameters, parameter_statistics) = columns["requestparameters"];
        assert!(matches!(parameters, Compression::ZSTD(_)), "{parameters:?}");
        assert!(
            !parameter_statistics,
            "a JSON document's min/max is not kept"
        );
        assert_eq!(columns["useragent"].0, Compression::UNCOMPRESSED);
        assert_eq!(columns["useridentity.arn"].0, Compression::UNCOMPRESSED);
        assert!(
            columns["eventname"].1,
            "the columns people filter on keep statistics"
        );
        assert!(columns["eventtime"].1);

        // Where the rows are not known beforehand (a merge), every heavy column is compressed.
        let streamed = properties(&cloudtrail_schema(), 400, None);
        let path = |p: &str| {
            datafusion::parquet::schema::types::ColumnPath::new(
                p.split('.').map(String::from).collect(),
            )
        };
        assert!(matches!(
            streamed.compression(&path("useragent")),
            Compression::ZSTD(_)
        ));
        assert_eq!(
            streamed.compression(&path("eventname")),
            Compression::UNCOMPRESSED
        );
    }

    #[test]
    fn string_bytes_are_counted_through_structs_and_lists() {
        let batch = reads(10);
        let parts = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
        let parameters = leaf_bytes(&batch, &parts("requestparameters"));
        assert!((1000..2000).contains(&parameters), "{parameters}");
        assert_eq!(leaf_bytes(&batch, &parts("useragent")), 90);
        assert_eq!(leaf_bytes(&batch, &parts("useridentity.arn")), 0);
        assert_eq!(leaf_bytes(&batch, &parts("nosuchcolumn")), usize::MAX);
        let descriptor = ArrowSchemaConverter::new()
            .convert(&batch.schema())
            .unwrap();
        let arn = descriptor
            .columns()
            .iter()
            .map(|c| c.path().parts().to_vec())
            .find(|p| {
                p.first().is_some_and(|f| f == "resources") && p.ends_with(&["arn".to_string()])
            })
            .unwrap();
        assert_eq!(
            leaf_bytes(&batch, &arn),
            10 * "arn:aws:s3:::training-data/k".len()
        );
    }
}
