//! SQL over CloudTrail: a DataFusion session with the `cloudtrail` table, the JSON functions
//! of `datafusion-functions-json` (`json_get_str`, `->`, `->>`, …) and Athena's
//! `json_extract_scalar` / `json_extract`.

pub mod athena;
pub mod security;
pub mod table;
pub mod text;

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{Signature, TypeSignature, Volatility};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::decode::schema;
pub use table::CloudTrailTable;

/// A session ready for CloudTrail SQL, running on `threads` partitions.
pub fn new_session(threads: usize) -> Result<SessionContext> {
    new_session_with(threads, &security::TrustedAccounts::default())
}

/// A session as [`new_session`] makes it, whose policy functions treat `trusted` accounts as
/// the organisation's own.
pub fn new_session_with(
    threads: usize,
    trusted: &security::TrustedAccounts,
) -> Result<SessionContext> {
    // PostgreSQL's dialect gives `->` and `->>` PostgreSQL's precedence, above `=`, so
    // `requestparameters->>'keyId' = 'k'` means what it says.
    let config = SessionConfig::new()
        .with_target_partitions(threads.max(1))
        .with_information_schema(true)
        .set_str("datafusion.sql_parser.dialect", "PostgreSQL");
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    // These two rules lift field and JSON lookups into a projection below filters (for
    // pruning nested Parquet columns). Over in-memory CloudTrail they make `json_as_text`
    // run on every row instead of only on rows the cheap predicates kept.
    let rules: Vec<_> = state
        .optimizers()
        .iter()
        .filter(|r| {
            !matches!(
                r.name(),
                "extract_leaf_expressions" | "push_down_leaf_projections"
            )
        })
        .cloned()
        .collect();
    let state = SessionStateBuilder::new_from_existing(state)
        .with_optimizer_rules(rules)
        .build();
    let mut ctx = SessionContext::new_with_state(state);
    datafusion_functions_json::register_all(&mut ctx)?;
    for udf in athena::functions()
        .into_iter()
        .chain(security::functions(trusted))
        .chain(text::functions())
    {
        ctx.register_udf(udf);
    }
    Ok(ctx)
}

/// Registers `table` as `cloudtrail`, streaming from its objects at query time.
pub fn register_objects(ctx: &SessionContext, table: Arc<CloudTrailTable>) -> Result<()> {
    ctx.register_table(schema::TABLE_NAME, table)?;
    Ok(())
}

/// Registers batches already in memory as `cloudtrail` (full schema), spread over as many
/// partitions as the session has threads.
pub fn register_batches(ctx: &SessionContext, batches: Vec<RecordBatch>) -> Result<()> {
    let n = ctx.copied_config().target_partitions().max(1);
    let mut partitions = vec![Vec::new(); n];
    for (i, batch) in batches.into_iter().enumerate() {
        partitions[i % n].push(batch);
    }
    let table = MemTable::try_new(schema::cloudtrail_schema(), partitions)?;
    ctx.register_table(schema::TABLE_NAME, Arc::new(table))?;
    Ok(())
}

/// Registers Bedrock invocation batches as `bedrock_invocations` (empty when there are none,
/// so a query naming it still plans).
pub fn register_invocations(ctx: &SessionContext, batches: Vec<RecordBatch>) -> Result<()> {
    let table = MemTable::try_new(crate::decode::bedrock::bedrock_schema(), vec![batches])?;
    ctx.register_table(crate::decode::bedrock::TABLE_NAME, Arc::new(table))?;
    Ok(())
}

/// A signature taking `arity` string arguments, each any of DataFusion's string types.
pub(crate) fn string_signature(arity: usize) -> Signature {
    let strings = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View];
    let mut variants: Vec<Vec<DataType>> = vec![Vec::new()];
    for _ in 0..arity {
        variants = variants
            .into_iter()
            .flat_map(|v| {
                strings.iter().map(move |t| {
                    let mut v = v.clone();
                    v.push(t.clone());
                    v
                })
            })
            .collect();
    }
    Signature::one_of(
        variants.into_iter().map(TypeSignature::Exact).collect(),
        Volatility::Immutable,
    )
}

/// Names of the functions a user can call, for `--help` and `\functions`.
pub fn function_names(ctx: &SessionContext) -> Vec<String> {
    let mut names: Vec<String> = ctx.udfs().into_iter().collect();
    names.sort();
    names
}
