//! Files of a lake table passed over by a condition on a nested field, such as
//! `useridentity.accesskeyid = 'AKIA...'`, judged from each file's footer: the field's
//! minimum and maximum in every row group, then its bloom filters.
//!
//! DataFusion prunes files and row groups by top-level columns only. Without this, a question
//! about one access key opens and scans every file the partitions allow, though most of them
//! cannot hold the key. The footers read here go into DataFusion's metadata cache, so the
//! files that are kept are not read twice.

use std::ops::Range;
use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use datafusion::parquet::basic::{SortOrder, Type as PhysicalType};
use datafusion::parquet::bloom_filter::Sbbf;
use datafusion::parquet::file::metadata::{ColumnChunkMetaData, PageIndexPolicy};
use datafusion::parquet::file::statistics::Statistics;
use datafusion::physical_plan::ExecutionPlan;
use futures::stream::{self, StreamExt};

/// A condition that every row of a scan meets: a nested string field equals one of `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIn {
    /// The field's Parquet column path: the top-level column, then the fields inside it.
    pub path: Vec<String>,
    pub values: Vec<String>,
}

/// The conditions on nested string fields among a scan's `filters` (each of which every row
/// must meet): `field = 'v'` either way round, and `field IN ('v', 'w')`, alone or joined by
/// `AND`. Anything else (an `OR`, a function of the field, a top-level column) gives none.
pub fn field_conditions(filters: &[Expr]) -> Vec<FieldIn> {
    fn collect(e: &Expr, out: &mut Vec<FieldIn>) {
        match e {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                collect(left, out);
                collect(right, out);
            }
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) => {
                let pair = match (field_path(left), text(right)) {
                    (Some(path), Some(value)) => Some((path, value)),
                    _ => field_path(right).zip(text(left)),
                };
                if let Some((path, value)) = pair {
                    out.push(FieldIn {
                        path,
                        values: vec![value],
                    });
                }
            }
            Expr::InList(list) if !list.negated => {
                let values: Option<Vec<String>> = list.list.iter().map(text).collect();
                if let (Some(path), Some(values)) = (field_path(&list.expr), values) {
                    out.push(FieldIn { path, values });
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for filter in filters {
        collect(filter, &mut out);
    }
    out
}

/// `get_field(column, 'a', 'b')` (or the same as nested calls) as the path `[column, a, b]`.
fn field_path(e: &Expr) -> Option<Vec<String>> {
    let Expr::ScalarFunction(f) = e else {
        return None;
    };
    if f.func.name() != "get_field" {
        return None;
    }
    let (first, names) = f.args.split_first()?;
    let mut path = match first {
        Expr::Column(c) => vec![c.name.clone()],
        inner => field_path(inner)?,
    };
    for name in names {
        path.push(text(name)?);
    }
    (path.len() >= 2).then_some(path)
}

/// A string literal's value.
fn text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(value, _) => value.try_as_str().flatten().map(str::to_string),
        _ => None,
    }
}

/// Footers read at once while pruning.
const AT_ONCE: usize = 16;

/// The largest bloom filter read (the writer's are a few KiB); a footer that claims more is
/// not trusted and the file is kept.
const LARGEST_BLOOM_FILTER: u64 = 16 << 20;

/// `plan`, a listing table's scan, without the files whose footers show that no row meets
/// `conditions`. The files kept are dealt round the scan's partitions again. A file whose
/// footer cannot be read is kept: opening it reports the error as it would have.
pub async fn without_files_that_cannot_match(
    state: &dyn Session,
    plan: Arc<dyn ExecutionPlan>,
    conditions: &[FieldIn],
) -> Result<Arc<dyn ExecutionPlan>> {
    if conditions.is_empty() {
        return Ok(plan);
    }
    let Some(config) = plan
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
    else {
        return Ok(plan);
    };
    let store = state.runtime_env().object_store(&config.object_store_url)?;
    let cache = state.runtime_env().cache_manager.get_file_metadata_cache();
    let files: Vec<PartitionedFile> = config
        .file_groups
        .iter()
        .flat_map(|group| group.files().iter().cloned())
        .collect();
    let total = files.len();
    let kept: Vec<PartitionedFile> = stream::iter(files)
        .map(|file| {
            let (store, cache) = (store.clone(), cache.clone());
            async move {
                may_match(store.as_ref(), &file, cache, conditions)
                    .await
                    .then_some(file)
            }
        })
        .buffered(AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await;
    tracing::debug!(
        files = total,
        kept = kept.len(),
        "files pruned by nested fields' statistics and bloom filters"
    );
    if kept.len() == total {
        return Ok(plan);
    }
    let partitions = config.file_groups.len().max(1);
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
    for (i, file) in kept.into_iter().enumerate() {
        groups[i % partitions].push(file);
    }
    let mut pruned = config.clone();
    pruned.file_groups = groups.into_iter().map(FileGroup::new).collect();
    Ok(DataSourceExec::from_data_source(pruned))
}

/// Whether some row of `file` may meet every condition, by its footer.
async fn may_match(
    store: &dyn ObjectStore,
    file: &PartitionedFile,
    cache: Arc<FileMetadataCache>,
    conditions: &[FieldIn],
) -> bool {
    let Ok(metadata) = DFParquetMetadata::new(store, &file.object_meta)
        .with_file_metadata_cache(Some(cache))
        .with_page_index_policy(Some(PageIndexPolicy::Skip))
        .fetch_metadata()
        .await
    else {
        return true;
    };
    let schema = metadata.file_metadata().schema_descr();
    for condition in conditions {
        let Some(column) = schema
            .columns()
            .iter()
            .position(|c| c.path().parts() == condition.path.as_slice())
        else {
            continue;
        };
        if schema.column(column).physical_type() != PhysicalType::BYTE_ARRAY {
            continue;
        }
        let ordered =
            metadata.file_metadata().column_order(column).sort_order() == SortOrder::UNSIGNED;
        let mut any = false;
        for row_group in metadata.row_groups() {
            let chunk = row_group.column(column);
            if (!ordered || in_range(chunk, row_group.num_rows(), &condition.values))
                && in_bloom_filter(store, file, chunk, &condition.values).await
            {
                any = true;
                break;
            }
        }
        if !any {
            return false;
        }
    }
    true
}

/// Whether a column chunk's statistics allow one of `values`: false when it holds only nulls,
/// or when every value lies outside its least and greatest (compared as bytes, the order of
/// Parquet's strings). True when it has no statistics.
fn in_range(chunk: &ColumnChunkMetaData, rows: i64, values: &[String]) -> bool {
    let Some(Statistics::ByteArray(stats)) = chunk.statistics() else {
        return true;
    };
    if stats.null_count_opt() == u64::try_from(rows).ok() {
        return false;
    }
    match (stats.min_opt(), stats.max_opt()) {
        (Some(min), Some(max)) => values
            .iter()
            .any(|v| min.data() <= v.as_bytes() && v.as_bytes() <= max.data()),
        _ => true,
    }
}

/// Whether a column chunk's bloom filter may hold one of `values`. True when it has none, or
/// it cannot be read.
async fn in_bloom_filter(
    store: &dyn ObjectStore,
    file: &PartitionedFile,
    chunk: &ColumnChunkMetaData,
    values: &[String],
) -> bool {
    let Some(range) = bloom_filter_range(chunk, file.object_meta.size) else {
        return true;
    };
    let Ok(bytes) = store.get_range(&file.object_meta.location, range).await else {
        return true;
    };
    bloom_may_hold(&bytes, values)
}

/// Whether the bloom filter in `bytes` (header and bits, as Parquet stores it) may hold one
/// of `values`. True when the bytes are not a usable filter: one with no blocks at all would
/// make the check index an empty array.
fn bloom_may_hold(bytes: &[u8], values: &[String]) -> bool {
    match Sbbf::from_bytes(bytes) {
        Ok(filter) if filter.num_blocks() > 0 => values.iter().any(|v| filter.check(v.as_str())),
        _ => true,
    }
}

/// Where a column chunk's bloom filter lies in a file of `size` bytes, if the footer says and
/// the place is plausible.
fn bloom_filter_range(chunk: &ColumnChunkMetaData, size: u64) -> Option<Range<u64>> {
    let offset = u64::try_from(chunk.bloom_filter_offset()?).ok()?;
    let length = u64::try_from(chunk.bloom_filter_length()?).ok()?;
    let end = offset.checked_add(length)?;
    (length > 0 && length <= LARGEST_BLOOM_FILTER && end <= size).then_some(offset..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::functions::core::expr_fn::get_field;
    use datafusion::prelude::{col, lit};

    fn key() -> Expr {
        get_field(col("useridentity"), "accesskeyid")
    }

    #[test]
    fn conditions_on_nested_fields_are_found() {
        let path = vec!["useridentity".to_string(), "accesskeyid".to_string()];
        assert_eq!(
            field_conditions(&[key().eq(lit("AKIA1"))]),
            vec![FieldIn {
                path: path.clone(),
                values: vec!["AKIA1".into()]
            }]
        );
        assert_eq!(
            field_conditions(&[lit("AKIA1").eq(key()).and(col("eventname").eq(lit("x")))]),
            vec![FieldIn {
                path: path.clone(),
                values: vec!["AKIA1".into()]
            }]
        );
        assert_eq!(
            field_conditions(&[key().in_list(vec![lit("A"), lit("B")], false)]),
            vec![FieldIn {
                path,
                values: vec!["A".into(), "B".into()]
            }]
        );
        let issuer = get_field(
            get_field(
                get_field(col("useridentity"), "sessioncontext"),
                "sessionissuer",
            ),
            "arn",
        );
        assert_eq!(
            field_conditions(&[issuer.eq(lit("arn:aws:iam::1:role/r"))])[0].path,
            ["useridentity", "sessioncontext", "sessionissuer", "arn"]
        );
    }

    #[test]
    fn a_bloom_filter_rules_out_values_and_a_broken_one_rules_out_none() {
        let mut filter = Sbbf::new_with_ndv_fpp(100, 0.01).unwrap();
        for i in 0..100 {
            filter.insert(format!("AKIA{i:016}").as_str());
        }
        let mut bytes = Vec::new();
        filter.write(&mut bytes).unwrap();
        let one = |v: &str| vec![v.to_string()];
        assert!(bloom_may_hold(&bytes, &one("AKIA0000000000000042")));
        let absent = (0..100)
            .filter(|i| !bloom_may_hold(&bytes, &one(&format!("ASIA{i:016}"))))
            .count();
        assert!(absent >= 90, "{absent} of 100 absent keys ruled out");
        assert!(bloom_may_hold(
            &bytes,
            &["ASIA0000000000000001".into(), "AKIA0000000000000007".into()]
        ));
        // No blocks, garbage, nothing: kept, never a panic.
        let mut empty = Vec::new();
        Sbbf::new(&[]).write(&mut empty).unwrap();
        assert!(bloom_may_hold(&empty, &one("x")));
        assert!(bloom_may_hold(b"not a bloom filter", &one("x")));
        assert!(bloom_may_hold(&[], &one("x")));
    }

    #[test]
    fn conditions_that_do_not_bound_every_row_are_not_used() {
        for filter in [
            key().eq(lit("A")).or(col("eventname").eq(lit("x"))),
            key().not_eq(lit("A")),
            key().in_list(vec![lit("A")], true),
            key().in_list(vec![lit("A"), col("eventname")], false),
            col("eventname").eq(lit("x")),
            key().like(lit("AKIA%")),
        ] {
            assert_eq!(
                field_conditions(std::slice::from_ref(&filter)),
                vec![],
                "{filter}"
            );
        }
    }
}
