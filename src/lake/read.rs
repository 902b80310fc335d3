//! Reading the lake with SQL: its tables registered as partitioned listing tables, so a query
//! reads only the partitions its `date`, `account` and `region` conditions allow (and, for
//! `cloudtrail`, those an `eventtime` range allows), and only the columns, row groups and
//! pages it needs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::config::TableParquetOptions;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::object_store::{
    self, local::LocalFileSystem, path::Path as ObjectPath, CopyOptions, GetOptions, GetResult,
    ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{col, lit, SessionContext};
use futures::stream::{BoxStream, StreamExt};

use super::findings::findings_schema;
use super::s3::S3Lake;
use super::write::RecordTable;
use super::{date_value, LakeError, Location, FINDINGS_DIR, PARTITION_COLUMNS, UNKNOWN};

/// Files a query passed over, with the reason.
pub type Skipped = Arc<Mutex<BTreeMap<String, String>>>;

/// The tables of the lake at `lake` registered on `ctx` (`cloudtrail`, `bedrock_invocations`
/// and `findings`; a table the lake does not hold yet is registered empty). Returns the
/// session to query them with: `ctx`'s, with the optimizer rules that push nested field
/// lookups down into the Parquet scan.
pub async fn register(
    ctx: SessionContext,
    lake: &Location,
    skipped: Skipped,
) -> Result<SessionContext, LakeError> {
    let ctx = lake_session(ctx);
    let place = match lake {
        Location::Local(root) => {
            if !root.is_dir() {
                return Err(LakeError::Missing(root.to_path_buf()));
            }
            ctx.runtime_env().register_object_store(
                ObjectStoreUrl::local_filesystem().as_ref(),
                Arc::new(CheckedFiles::new(
                    Arc::new(LocalFileSystem::new()),
                    skipped.clone(),
                )),
            );
            Place::Local(root.clone())
        }
        Location::S3(url) => {
            let s3 = S3Lake::connect(url)?;
            let bucket = ObjectStoreUrl::parse(s3.bucket_url())?;
            ctx.runtime_env().register_object_store(
                bucket.as_ref(),
                Arc::new(CheckedFiles::new(s3.store(), skipped.clone())),
            );
            Place::S3(s3)
        }
    };
    let mut found = 0;
    let partitions: Vec<(String, DataType)> = PARTITION_COLUMNS
        .iter()
        .map(|c| (c.to_string(), DataType::Utf8))
        .collect();
    for table in [RecordTable::CloudTrail, RecordTable::Invocations] {
        let provider = match place.table_url(table.dir()).await? {
            Some(url) => {
                found += 1;
                Some(listing(url, table.file_schema(), partitions.clone())?)
            }
            None => None,
        };
        let provider: Arc<dyn TableProvider> = match (table, provider) {
            (RecordTable::CloudTrail, Some(p)) => Arc::new(PrunedTable {
                inner: p,
                time_column: "eventtime",
            }),
            (RecordTable::Invocations, Some(p)) => Arc::new(PrunedTable {
                inner: p,
                time_column: "timestamp",
            }),
            (_, None) => empty(table.file_schema(), &partitions)?,
        };
        ctx.register_table(table_name(table), provider)?;
    }
    let date = vec![("date".to_string(), DataType::Utf8)];
    let findings: Arc<dyn TableProvider> = match place.table_url(FINDINGS_DIR).await? {
        Some(url) => {
            found += 1;
            listing(url, findings_schema(), date)?
        }
        None => empty(findings_schema(), &date)?,
    };
    ctx.register_table(FINDINGS_DIR, findings)?;
    if found == 0 {
        if let Place::S3(s3) = &place {
            return Err(LakeError::BadLocation(format!(
                "{}: nothing there (no {}/, {}/ or {}/)",
                s3.url(),
                super::CLOUDTRAIL_DIR,
                super::INVOCATIONS_DIR,
                FINDINGS_DIR
            )));
        }
    }
    Ok(ctx)
}

/// Where a lake being read is.
enum Place {
    Local(std::path::PathBuf),
    S3(S3Lake),
}

impl Place {
    /// The listing URL of one of the lake's tables (by its directory), or `None` when the
    /// lake holds none of it.
    async fn table_url(&self, table: &str) -> Result<Option<ListingTableUrl>, LakeError> {
        match self {
            Place::Local(root) => {
                let dir = root.join(table);
                if !dir.is_dir() {
                    return Ok(None);
                }
                let absolute = std::fs::canonicalize(&dir).map_err(|source| LakeError::Io {
                    path: dir.clone(),
                    source,
                })?;
                Ok(Some(ListingTableUrl::parse(format!(
                    "{}/",
                    absolute.display()
                ))?))
            }
            Place::S3(s3) => {
                if !s3.holds(table).await? {
                    return Ok(None);
                }
                Ok(Some(ListingTableUrl::parse(format!(
                    "{}/{table}/",
                    s3.url()
                ))?))
            }
        }
    }
}

/// The SQL name of a record table.
pub fn table_name(table: RecordTable) -> &'static str {
    match table {
        RecordTable::CloudTrail => crate::decode::schema::TABLE_NAME,
        RecordTable::Invocations => crate::decode::bedrock::TABLE_NAME,
    }
}

/// `ctx` made for reading the lake:
/// * DataFusion's full optimizer: the in-memory sessions leave out the two rules that lift
///   nested field lookups below filters, which over Parquet is what lets a scan read
///   `useridentity.accesskeyid` without the rest of `useridentity`;
/// * no statistics gathered from every file while planning: DataFusion would merge each
///   column's min and max (nested structs included) over every file a question may read,
///   which cost more than the scan of a narrow question. Each file's footer still prunes its
///   row groups when the file is opened.
fn lake_session(ctx: SessionContext) -> SessionContext {
    let full = SessionStateBuilder::new().with_default_features().build();
    let mut config = ctx.copied_config();
    config.options_mut().execution.collect_statistics = false;
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_config(config)
        .with_optimizer_rules(full.optimizers().to_vec())
        .build();
    SessionContext::new_with_state(state)
}

/// Every column nullable: a file written before a column was added has none of it.
fn nullable(schema: SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
            .collect::<Vec<_>>(),
    ))
}

fn listing(
    url: ListingTableUrl,
    schema: SchemaRef,
    partitions: Vec<(String, DataType)>,
) -> Result<Arc<ListingTable>, LakeError> {
    // Filters are applied while the files are decoded (late materialization): a question
    // for a few records decodes the other columns only for the pages that hold them.
    let mut parquet = TableParquetOptions::default();
    parquet.global.pushdown_filters = true;
    parquet.global.reorder_filters = true;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(parquet)))
        .with_file_extension(super::EXTENSION)
        .with_table_partition_cols(partitions);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(nullable(schema));
    Ok(Arc::new(ListingTable::try_new(config)?))
}

fn empty(schema: SchemaRef, partitions: &[(String, DataType)]) -> Result<Arc<dyn TableProvider>> {
    let mut fields: Vec<Field> = nullable(schema)
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (name, data_type) in partitions {
        fields.push(Field::new(name, data_type.clone(), false));
    }
    Ok(Arc::new(MemTable::try_new(
        Arc::new(Schema::new(fields)),
        vec![vec![]],
    )?))
}

/// Why an object named like Parquet cannot be one, judged from its size, its first four
/// bytes and its last eight (Parquet's magic at both ends, a footer no longer than the file).
/// Such a file is passed over: engines trust the footer's length, and one that lies can bring
/// a reader down.
pub fn not_parquet(size: u64, head: &[u8], tail: &[u8]) -> Option<String> {
    if size < 12 {
        return Some(format!("not Parquet: {size} bytes is too short"));
    }
    if head != b"PAR1" || tail.len() != 8 || &tail[4..] != b"PAR1" {
        return Some("not Parquet: no magic at its start and end".into());
    }
    let footer = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if footer + 12 > size {
        return Some(format!(
            "not Parquet: its footer claims {footer} bytes of a {size}-byte file"
        ));
    }
    None
}

/// [`not_parquet`] for an object of `store`, reading its two ends.
async fn object_not_parquet(store: &dyn ObjectStore, meta: &ObjectMeta) -> Option<String> {
    let size = meta.size;
    if size < 12 {
        return not_parquet(size, &[], &[]);
    }
    match store
        .get_ranges(&meta.location, &[0..4, size - 8..size])
        .await
    {
        Ok(parts) if parts.len() == 2 => not_parquet(size, &parts[0], &parts[1]),
        Ok(_) => Some("could not read its two ends".into()),
        Err(e) => Some(e.to_string()),
    }
}

/// An object store (the local file system, or the lake's bucket) listing only files that can
/// be Parquet (see [`not_parquet`]) in the lake's partitions; the others are noted in the
/// shared [`Skipped`].
#[derive(Debug)]
struct CheckedFiles {
    inner: Arc<dyn ObjectStore>,
    skipped: Skipped,
}

impl CheckedFiles {
    fn new(inner: Arc<dyn ObjectStore>, skipped: Skipped) -> Self {
        Self { inner, skipped }
    }
}

impl std::fmt::Display for CheckedFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckedFiles({})", self.inner)
    }
}

/// Why a data file's place in the lake is not a partition this lake writes: a directory
/// that is not `date=`/`account=`/`region=` (or `date=` alone under `findings`), or a value
/// that is not a well-formed date, account or region (nor `unknown`). `None` when it is one,
/// or when the path is not under a lake table.
pub fn not_a_partition(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let table = parts
        .iter()
        .rposition(|p| [super::CLOUDTRAIL_DIR, super::INVOCATIONS_DIR, FINDINGS_DIR].contains(p))?;
    let dirs = &parts[table + 1..parts.len().saturating_sub(1)];
    let expected: &[&str] = if parts[table] == FINDINGS_DIR {
        &["date"]
    } else {
        &PARTITION_COLUMNS
    };
    if dirs.len() != expected.len() {
        return Some(format!(
            "not in a partition directory ({} expected)",
            expected
                .iter()
                .map(|c| format!("{c}="))
                .collect::<Vec<_>>()
                .join("/")
        ));
    }
    for (dir, column) in dirs.iter().zip(expected) {
        let Some(value) = dir.strip_prefix(&format!("{column}=")) else {
            return Some(format!("{dir:?} is not a {column}= directory"));
        };
        let well_formed = value == UNKNOWN
            || match *column {
                "date" => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                    .is_ok_and(|d| d.format("%Y-%m-%d").to_string() == value),
                "account" => super::account_value(Some(value)) == value,
                _ => super::region_value(Some(value)) == value,
            };
        if !well_formed {
            return Some(format!("{column} {value:?} is not well formed"));
        }
    }
    None
}

/// False (and noted) for a `.parquet` object that cannot be Parquet, or that lies outside the
/// lake's partitions.
async fn admit(store: &dyn ObjectStore, meta: &ObjectMeta, skipped: &Skipped) -> bool {
    let location = meta.location.as_ref();
    if !location.ends_with(super::EXTENSION) {
        return true;
    }
    let why = match not_a_partition(location) {
        Some(why) => Some(why),
        None => object_not_parquet(store, meta).await,
    };
    match why {
        None => true,
        Some(why) => {
            crate::sync::lock(skipped)
                .insert(format!("{}", Path::new("/").join(location).display()), why);
            false
        }
    }
}

/// The Parquet footer of `m` in `store`, or `None` when it cannot be read.
fn footer_of(
    store: &Arc<dyn ObjectStore>,
    m: &ObjectMeta,
) -> impl std::future::Future<Output = Option<datafusion::parquet::file::metadata::ParquetMetaData>>
       + Send
       + 'static {
    let (store, location, size) = (store.clone(), m.location.clone(), m.size);
    async move {
        match super::s3::read_footer(store, location, size).await {
            Ok(Ok(footer)) => Some(footer),
            _ => None,
        }
    }
}

/// `objects` less the group files that a merged file in the same partition holds, with as
/// many rows. A merge in S3 puts its files before it deletes the small ones it merged: a
/// reader in between, or after a merge that stopped there, would count their records twice.
/// (A group file written again with other rows is kept; the next merge drops what it holds
/// twice.) A footer that cannot be read keeps the file.
async fn without_merged(store: &Arc<dyn ObjectStore>, objects: Vec<ObjectMeta>) -> Vec<ObjectMeta> {
    use super::write::{is_merged_file as merged, merged_groups_in, Merged, MERGED_PREFIX};
    let split = |m: &ObjectMeta| {
        let location = m.location.as_ref().to_string();
        match location.rsplit_once('/') {
            Some((dir, name)) => (dir.to_string(), name.to_string()),
            None => (String::new(), location),
        }
    };
    // Only partitions holding both merged files and others (a merged partition holds none
    // but its merged files: nothing is read for it).
    let mut kinds: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for m in &objects {
        let (dir, name) = split(m);
        let kind = kinds.entry(dir).or_default();
        if merged(&name) {
            kind.0 = true;
        } else {
            kind.1 = true;
        }
    }
    let mixed: Vec<&ObjectMeta> = objects
        .iter()
        .filter(|m| {
            let (dir, name) = split(m);
            merged(&name) && kinds.get(&dir) == Some(&(true, true))
        })
        .collect();
    if mixed.is_empty() {
        return objects;
    }
    let reads: Vec<_> = mixed.iter().map(|m| footer_of(store, m)).collect();
    let footers: Vec<_> = futures::stream::iter(reads).buffered(16).collect().await;
    let mut held: BTreeMap<String, Merged> = BTreeMap::new();
    for (m, footer) in mixed.iter().zip(footers) {
        if let Some(footer) = footer {
            held.entry(split(m).0)
                .or_default()
                .extend(merged_groups_in(footer.file_metadata()));
        }
    }
    let mut kept = Vec::with_capacity(objects.len());
    for m in objects {
        let (dir, name) = split(&m);
        let merged_rows = name
            .strip_suffix(super::EXTENSION)
            .filter(|stem| !stem.starts_with(MERGED_PREFIX))
            .and_then(|stem| held.get(&dir)?.get(stem).copied());
        if let Some(merged_rows) = merged_rows {
            let rows = footer_of(store, &m)
                .await
                .map(|f| f.file_metadata().num_rows().max(0) as u64);
            if rows == Some(merged_rows) {
                tracing::debug!("{}: held by a merged file beside it; not read", m.location);
                continue;
            }
        }
        kept.push(m);
    }
    kept
}

#[async_trait]
impl ObjectStore for CheckedFiles {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let skipped = self.skipped.clone();
        let store = self.inner.clone();
        let reader = self.inner.clone();
        let admitted = self
            .inner
            .list(prefix)
            .map(move |m| {
                let (store, skipped) = (store.clone(), skipped.clone());
                async move {
                    match m {
                        Ok(meta) => admit(store.as_ref(), &meta, &skipped)
                            .await
                            .then_some(Ok(meta)),
                        Err(e) => Some(Err(e)),
                    }
                }
            })
            .buffered(16)
            .filter_map(std::future::ready);
        futures::stream::once(async move {
            let listed: Vec<object_store::Result<ObjectMeta>> = admitted.collect().await;
            let (found, failed): (Vec<_>, Vec<_>) = listed.into_iter().partition(|m| m.is_ok());
            let found = without_merged(&reader, found.into_iter().flatten().collect()).await;
            futures::stream::iter(found.into_iter().map(Ok).chain(failed))
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        let mut kept = Vec::with_capacity(listed.objects.len());
        for meta in listed.objects {
            if admit(self.inner.as_ref(), &meta, &self.skipped).await {
                kept.push(meta);
            }
        }
        listed.objects = without_merged(&self.inner, kept).await;
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A record table that reads fewer files than its listing alone would:
/// * its time conditions also select `date` partitions: `eventtime >= X` reads only
///   partitions from X's date on (and `date=unknown`, which holds records whose time could
///   not be given a date);
/// * a condition on a nested field (`useridentity.accesskeyid = 'AKIA...'`) passes over the
///   files whose footers show they cannot hold the value ([`prune`](super::prune)).
#[derive(Debug)]
struct PrunedTable {
    inner: Arc<ListingTable>,
    time_column: &'static str,
}

#[async_trait]
impl TableProvider for PrunedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut all = filters.to_vec();
        all.extend(
            filters
                .iter()
                .filter_map(|f| date_condition(f, self.time_column)),
        );
        let plan = self.inner.scan(state, projection, &all, limit).await?;
        let nested = super::prune::field_conditions(filters);
        super::prune::without_files_that_cannot_match(state, plan, &nested).await
    }
}

/// The `date` partitions a condition on `time_column` allows, as a condition on `date`.
pub fn date_condition(filter: &Expr, time_column: &str) -> Option<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
        return None;
    };
    let (op, value) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) if c.name == time_column => (*op, v),
        (Expr::Literal(v, _), Expr::Column(c)) if c.name == time_column => (op.swap()?, v),
        _ => return None,
    };
    let micros = match value.cast_to(&DataType::Timestamp(TimeUnit::Microsecond, None)) {
        Ok(ScalarValue::TimestampMicrosecond(Some(m), _)) => m,
        _ => return None,
    };
    let date = date_value(Some(micros));
    if date == UNKNOWN {
        return None;
    }
    let on_date = match op {
        Operator::Gt | Operator::GtEq => col("date").gt_eq(lit(date)),
        Operator::Lt | Operator::LtEq => col("date").lt_eq(lit(date)),
        Operator::Eq => col("date").eq(lit(date)),
        _ => return None,
    };
    Some(on_date.or(col("date").eq(lit(UNKNOWN))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_partitions_are_read() {
        let ok =
            "tmp/lake/cloudtrail/date=2026-10-05/account=111122223333/region=us-east-1/f.parquet";
        assert_eq!(not_a_partition(ok), None);
        assert_eq!(
            not_a_partition("l/cloudtrail/date=unknown/account=unknown/region=unknown/f.parquet"),
            None
        );
        assert_eq!(
            not_a_partition("l/findings/date=2026-10-05/f.parquet"),
            None
        );
        for bad in [
            "l/cloudtrail/date=garbage/account=111122223333/region=us-east-1/f.parquet",
            "l/cloudtrail/date=2026-13-05/account=111122223333/region=us-east-1/f.parquet",
            "l/cloudtrail/date=2026-10-05/account=../region=us-east-1/f.parquet",
            "l/cloudtrail/date=2026-10-05/account=111122223333/region=X/f.parquet",
            "l/cloudtrail/junk/f.parquet",
            "l/cloudtrail/date=2026-10-05/region=us-east-1/account=111122223333/f.parquet",
            "l/findings/f.parquet",
        ] {
            assert!(not_a_partition(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn time_conditions_become_date_conditions() {
        let t = |s: &str| {
            lit(ScalarValue::TimestampMicrosecond(
                crate::decode::time::parse_event_time(s),
                Some("UTC".into()),
            ))
        };
        let from = col("eventtime").gt_eq(t("2026-10-05T08:00:00Z"));
        assert_eq!(
            date_condition(&from, "eventtime"),
            Some(
                col("date")
                    .gt_eq(lit("2026-10-05"))
                    .or(col("date").eq(lit(UNKNOWN)))
            )
        );
        let before = t("2026-10-07T00:00:00Z").gt(col("eventtime"));
        assert_eq!(
            date_condition(&before, "eventtime"),
            Some(
                col("date")
                    .lt_eq(lit("2026-10-07"))
                    .or(col("date").eq(lit(UNKNOWN)))
            )
        );
        assert_eq!(
            date_condition(&col("eventname").eq(lit("x")), "eventtime"),
            None
        );
        assert_eq!(
            date_condition(
                &col("eventtime").not_eq(t("2026-10-05T00:00:00Z")),
                "eventtime"
            ),
            None
        );
    }
}
