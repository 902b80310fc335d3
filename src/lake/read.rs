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
use super::write::RecordTable;
use super::{date_value, LakeError, FINDINGS_DIR, PARTITION_COLUMNS, UNKNOWN};

/// Files a query passed over, with the reason.
pub type Skipped = Arc<Mutex<BTreeMap<String, String>>>;

/// The tables of the lake at `root` registered on `ctx` (`cloudtrail`, `bedrock_invocations`
/// and `findings`; a table the lake does not hold yet is registered empty). Returns the
/// session to query them with: `ctx`'s, with the optimizer rules that push nested field
/// lookups down into the Parquet scan.
pub async fn register(
    ctx: SessionContext,
    root: &Path,
    skipped: Skipped,
) -> Result<SessionContext, LakeError> {
    if !root.is_dir() {
        return Err(LakeError::Missing(root.to_path_buf()));
    }
    let ctx = with_nested_pushdown(ctx);
    ctx.runtime_env().register_object_store(
        ObjectStoreUrl::local_filesystem().as_ref(),
        Arc::new(CheckedFiles::new(skipped.clone())),
    );
    let partitions: Vec<(String, DataType)> = PARTITION_COLUMNS
        .iter()
        .map(|c| (c.to_string(), DataType::Utf8))
        .collect();
    for table in [RecordTable::CloudTrail, RecordTable::Invocations] {
        let provider = listing(
            &ctx,
            &root.join(table.dir()),
            table.file_schema(),
            partitions.clone(),
        )
        .await?;
        let provider: Arc<dyn TableProvider> = match (table, provider) {
            (RecordTable::CloudTrail, Some(p)) => Arc::new(DatePruned {
                inner: p,
                time_column: "eventtime",
            }),
            (RecordTable::Invocations, Some(p)) => Arc::new(DatePruned {
                inner: p,
                time_column: "timestamp",
            }),
            (_, None) => empty(table.file_schema(), &partitions)?,
        };
        ctx.register_table(table_name(table), provider)?;
    }
    let date = vec![("date".to_string(), DataType::Utf8)];
    let findings = match listing(
        &ctx,
        &root.join(FINDINGS_DIR),
        findings_schema(),
        date.clone(),
    )
    .await?
    {
        Some(p) => p,
        None => empty(findings_schema(), &date)?,
    };
    ctx.register_table(FINDINGS_DIR, findings)?;
    Ok(ctx)
}

/// The SQL name of a record table.
pub fn table_name(table: RecordTable) -> &'static str {
    match table {
        RecordTable::CloudTrail => crate::decode::schema::TABLE_NAME,
        RecordTable::Invocations => crate::decode::bedrock::TABLE_NAME,
    }
}

/// `ctx` with DataFusion's full optimizer: the in-memory sessions leave out the two rules
/// that lift nested field lookups below filters, which over Parquet is what lets a scan read
/// `useridentity.accesskeyid` without the rest of `useridentity`.
fn with_nested_pushdown(ctx: SessionContext) -> SessionContext {
    let full = SessionStateBuilder::new().with_default_features().build();
    let state = SessionStateBuilder::new_from_existing(ctx.state())
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

async fn listing(
    ctx: &SessionContext,
    dir: &Path,
    schema: SchemaRef,
    partitions: Vec<(String, DataType)>,
) -> Result<Option<Arc<ListingTable>>, LakeError> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let absolute = std::fs::canonicalize(dir).map_err(|source| LakeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let url = ListingTableUrl::parse(format!("{}/", absolute.display()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(super::EXTENSION)
        .with_table_partition_cols(partitions);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(nullable(schema));
    let _ = ctx;
    Ok(Some(Arc::new(ListingTable::try_new(config)?)))
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

/// Why a local file named like Parquet cannot be one, judged from its first and last bytes
/// (Parquet's magic at both ends, a footer no longer than the file). Such a file is passed
/// over: engines trust the footer's length, and one that lies can bring a reader down.
pub fn not_parquet(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let check = || -> std::io::Result<Option<String>> {
        let mut file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        if size < 12 {
            return Ok(Some(format!("not Parquet: {size} bytes is too short")));
        }
        let mut head = [0u8; 4];
        file.read_exact(&mut head)?;
        let mut tail = [0u8; 8];
        file.seek(SeekFrom::End(-8))?;
        file.read_exact(&mut tail)?;
        if &head != b"PAR1" || &tail[4..] != b"PAR1" {
            return Ok(Some("not Parquet: no magic at its start and end".into()));
        }
        let footer = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
        if footer + 12 > size {
            return Ok(Some(format!(
                "not Parquet: its footer claims {footer} bytes of a {size}-byte file"
            )));
        }
        Ok(None)
    };
    check().unwrap_or_else(|e| Some(e.to_string()))
}

/// The local file system, listing only files that can be Parquet (see [`not_parquet`]);
/// the others are noted in the shared [`Skipped`].
#[derive(Debug)]
struct CheckedFiles {
    inner: Arc<LocalFileSystem>,
    skipped: Skipped,
}

impl CheckedFiles {
    fn new(skipped: Skipped) -> Self {
        Self {
            inner: Arc::new(LocalFileSystem::new()),
            skipped,
        }
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
fn admit(meta: &ObjectMeta, skipped: &Skipped) -> bool {
    let location = meta.location.as_ref();
    if !location.ends_with(super::EXTENSION) {
        return true;
    }
    let path = Path::new("/").join(location);
    if let Some(why) = not_a_partition(location) {
        crate::sync::lock(skipped).insert(path.display().to_string(), why);
        return false;
    }
    match not_parquet(&path) {
        None => true,
        Some(why) => {
            crate::sync::lock(skipped).insert(path.display().to_string(), why);
            false
        }
    }
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
        self.inner
            .list(prefix)
            .filter(move |m| std::future::ready(m.as_ref().map_or(true, |m| admit(m, &skipped))))
            .boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|m| admit(m, &self.skipped));
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

/// A record table whose time conditions also select `date` partitions: `eventtime >= X`
/// reads only partitions from X's date on (and `date=unknown`, which holds records whose
/// time could not be given a date).
#[derive(Debug)]
struct DatePruned {
    inner: Arc<ListingTable>,
    time_column: &'static str,
}

#[async_trait]
impl TableProvider for DatePruned {
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
        self.inner.scan(state, projection, &all, limit).await
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
