//! Runs detections over batches of the `cloudtrail` table.
//!
//! Each detection's SQL is parsed, checked and optimised once, when the engine is built,
//! against a table whose contents change: every [`Engine::run`] puts a new chunk of batches
//! in the table and executes the planned queries over it (only the physical plan, a cheap
//! step, is made per chunk). Rules run concurrently, each on every core.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::fields::{self, Match};
use super::rule::{placeholders, Rule, RuleError, DERIVED_FIELDS};
use crate::decode::roundtrip::record_json;
use crate::decode::schema::{self, cloudtrail_schema};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Partitions (and concurrent rules) per chunk.
    pub threads: usize,
    /// Accounts that `policy_outside_principals` treats as inside (the organisation's own).
    pub trusted_accounts: BTreeSet<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: crate::read::default_threads(),
            trusted_accounts: BTreeSet::new(),
        }
    }
}

/// A detection whose query failed while running over a chunk.
#[derive(Debug, thiserror::Error)]
#[error("detection {rule} ({path}) failed: {message}")]
pub struct RunError {
    pub rule: String,
    pub path: String,
    pub message: String,
}

struct Planned {
    rule: Rule,
    plan: LogicalPlan,
    /// Output columns that are not the table's own.
    extra: Vec<(usize, String)>,
}

/// Planned detections, ready to run over chunks of CloudTrail batches.
pub struct Engine {
    ctx: SessionContext,
    table: Arc<ChunkTable>,
    planned: Vec<Planned>,
    threads: usize,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.planned.len())
            .finish()
    }
}

impl Engine {
    /// Plans every rule. All problems are returned together, each naming its file and line.
    pub async fn new(rules: Vec<Rule>, options: EngineOptions) -> Result<Self, Vec<RuleError>> {
        let threads = options.threads.max(1);
        let trusted = Arc::new(options.trusted_accounts);
        let ctx = crate::sql::new_session_with(threads, &trusted).map_err(|e| {
            vec![RuleError {
                path: "(engine)".into(),
                line: None,
                message: e.to_string(),
            }]
        })?;
        let table = Arc::new(ChunkTable::new(threads));
        ctx.register_table(schema::TABLE_NAME, table.clone())
            .expect("a fresh session takes the table");
        let mut planned = Vec::with_capacity(rules.len());
        let mut errors = Vec::new();
        for rule in rules {
            match plan(&ctx, &rule).await {
                Ok((plan, extra)) => planned.push(Planned { rule, plan, extra }),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            ctx,
            table,
            planned,
            threads,
        })
    }

    /// The planned rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.planned.iter().map(|p| &p.rule)
    }

    /// Number of planned rules.
    pub fn len(&self) -> usize {
        self.planned.len()
    }

    /// True when no rule is planned.
    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }

    /// Runs every enabled rule over `batches`; the result holds each rule's matches (or its
    /// error), in the order of [`Engine::rules`].
    pub async fn run(&self, batches: Vec<RecordBatch>) -> Vec<Result<Vec<Match>, RunError>> {
        self.table.set(batches, self.threads);
        let results: Vec<(usize, Result<Vec<Match>, RunError>)> =
            futures::stream::iter(self.planned.iter().enumerate())
                .map(|(i, p)| async move {
                    if !p.rule.enabled {
                        return (i, Ok(Vec::new()));
                    }
                    (i, self.execute(p).await)
                })
                .buffer_unordered(self.threads * 2)
                .collect()
                .await;
        self.table.set(Vec::new(), 1);
        let mut ordered: Vec<Option<Result<Vec<Match>, RunError>>> =
            (0..self.planned.len()).map(|_| None).collect();
        for (i, r) in results {
            ordered[i] = Some(r);
        }
        ordered
            .into_iter()
            .map(|r| r.expect("every rule ran"))
            .collect()
    }

    /// Runs one rule (by its position) over `batches`.
    pub async fn run_one(
        &self,
        index: usize,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<Match>, RunError> {
        self.table.set(batches, self.threads);
        let out = self.execute(&self.planned[index]).await;
        self.table.set(Vec::new(), 1);
        out
    }

    async fn execute(&self, p: &Planned) -> Result<Vec<Match>, RunError> {
        let fail = |e: datafusion::error::DataFusionError| RunError {
            rule: p.rule.id.clone(),
            path: p.rule.origin.to_string(),
            message: e.to_string(),
        };
        let started = std::time::Instant::now();
        let state = self.ctx.state();
        let physical = state
            .query_planner()
            .create_physical_plan(&p.plan, &state)
            .await
            .map_err(fail)?;
        let batches = datafusion::physical_plan::collect(physical, state.task_ctx())
            .await
            .map_err(fail)?;
        let mut out = Vec::new();
        for batch in &batches {
            matches_of(batch, &p.extra, &mut out);
        }
        tracing::debug!(
            detection = p.rule.id.as_str(),
            matches = out.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "ran detection"
        );
        Ok(out)
    }
}

/// Plans one rule's SQL and checks its output and the names it uses.
async fn plan(
    ctx: &SessionContext,
    rule: &Rule,
) -> Result<(LogicalPlan, Vec<(usize, String)>), RuleError> {
    let err = |line: Option<usize>, message: String| RuleError {
        path: rule.origin.to_string(),
        line: Some(rule.sql_line + line.unwrap_or(1) - 1),
        message,
    };
    let state = ctx.state();
    let plan = state.create_logical_plan(&rule.sql).await.map_err(|e| {
        let message = e.to_string();
        err(
            sql_error_line(&rule.sql, &message),
            format!("SQL: {message}"),
        )
    })?;
    if matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
    ) {
        return Err(err(
            None,
            "the SQL must be one SELECT query over cloudtrail".into(),
        ));
    }
    let table = cloudtrail_schema();
    let output = plan.schema().as_arrow().clone();
    let mut extra = Vec::new();
    for (i, field) in output.fields().iter().enumerate() {
        match table.field_with_name(field.name()) {
            Ok(own) if own.data_type() == field.data_type() => {}
            Ok(own) => {
                return Err(err(
                    None,
                    format!(
                        "the query returns a column named {} of type {}, but the table's {} is {}: give the computed column another name",
                        field.name(),
                        field.data_type(),
                        own.name(),
                        own.data_type()
                    ),
                ))
            }
            Err(_) => extra.push((i, field.name().clone())),
        }
    }
    for required in ["eventid", "eventtime"] {
        if output.field_with_name(required).is_err() {
            return Err(err(
                None,
                format!("the query must return the matching records with their {required} column: start it with SELECT * (computed columns may follow)"),
            ));
        }
    }
    let known = |name: &str| {
        let name = name.trim();
        DERIVED_FIELDS.iter().any(|(d, _)| *d == name)
            || extra.iter().any(|(_, e)| e == name)
            || (fields::is_column_path(name)
                && output
                    .field_with_name(name.split('.').next().unwrap_or_default())
                    .is_ok())
    };
    let unknown = |what: &str, name: &str| RuleError {
        path: rule.origin.to_string(),
        line: None,
        message: format!(
            "{what} names {name:?}, which is neither a column the query returns nor one of {}",
            DERIVED_FIELDS
                .iter()
                .map(|(d, _)| *d)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    for (_, name) in placeholders(&rule.description) {
        if !known(name) {
            return Err(unknown("the description", name));
        }
    }
    for name in &rule.group_by {
        if !known(name) || matches!(name.as_str(), "count" | "first_seen" | "last_seen") {
            return Err(unknown("group_by", name));
        }
    }
    if let Some(distinct) = rule.threshold.as_ref().and_then(|t| t.distinct.as_ref()) {
        if !known(distinct) {
            return Err(unknown("threshold.distinct", distinct));
        }
    }
    let plan = state
        .optimize(&plan)
        .map_err(|e| err(None, format!("SQL: {e}")))?;
    Ok((plan, extra))
}

/// The line (1-based, within the SQL) an error message points at, where it says.
fn sql_error_line(sql: &str, message: &str) -> Option<usize> {
    if let Some(at) = message.find("Line: ") {
        let digits: String = message[at + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        return digits.parse().ok();
    }
    let name_at = message.find("No field named ")?;
    let name: String = message[name_at + 15..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let last = name.trim_end_matches('.').rsplit('.').next()?.to_ascii_lowercase();
    if last.is_empty() {
        return None;
    }
    let lower = sql.to_ascii_lowercase();
    lower.find(&last).map(|at| super::rule::line_of(sql, at))
}

/// Appends the records in a rule's output batch as matches.
fn matches_of(batch: &RecordBatch, extra: &[(usize, String)], out: &mut Vec<Match>) {
    let (Some(ids), Some(times)) = (
        batch.column_by_name("eventid"),
        batch.column_by_name("eventtime"),
    ) else {
        return;
    };
    let ids = ids.as_string::<i32>();
    let times = times.as_primitive::<TimestampMicrosecondType>();
    let options = FormatOptions::default();
    let formatters: Vec<(String, ArrayFormatter<'_>)> = extra
        .iter()
        .filter_map(|(i, name)| {
            ArrayFormatter::try_new(batch.column(*i).as_ref(), &options)
                .ok()
                .map(|f| (name.clone(), f))
        })
        .collect();
    for row in 0..batch.num_rows() {
        if ids.is_null(row) || times.is_null(row) {
            continue;
        }
        let mut m = Match {
            event_id: ids.value(row).to_string(),
            time: times.value(row),
            record: record_json(batch, row),
            extra: Default::default(),
        };
        for ((i, _), (name, formatter)) in extra.iter().zip(&formatters) {
            if batch.column(*i).is_valid(row) {
                m.extra
                    .insert(name.clone(), formatter.value(row).to_string());
            }
        }
        out.push(m);
    }
}

/// Rows per batch handed to the rules.
const TARGET_ROWS: usize = 8192;

/// The `cloudtrail` table of a detection session: whatever chunk is being examined.
#[derive(Debug)]
struct ChunkTable {
    partitions: RwLock<Vec<Vec<RecordBatch>>>,
}

impl ChunkTable {
    fn new(partitions: usize) -> Self {
        Self {
            partitions: RwLock::new(vec![Vec::new(); partitions.max(1)]),
        }
    }

    /// Puts `batches` in the table, joined into batches of about [`TARGET_ROWS`] rows (one
    /// log object is often a batch of a few records, and every batch costs each rule a
    /// little) and spread over `partitions`.
    fn set(&self, batches: Vec<RecordBatch>, partitions: usize) {
        let n = partitions.max(1);
        let mut parts = vec![Vec::new(); n];
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut rows = 0;
        let mut next = 0;
        let mut flush = |pending: &mut Vec<RecordBatch>, parts: &mut Vec<Vec<RecordBatch>>| {
            if pending.is_empty() {
                return;
            }
            let joined = if pending.len() == 1 {
                pending.pop().expect("one batch")
            } else {
                concat_batches(&cloudtrail_schema(), pending.iter()).expect("batches of one schema")
            };
            pending.clear();
            parts[next % n].push(joined);
            next += 1;
        };
        for b in batches {
            rows += b.num_rows();
            pending.push(b);
            if rows >= TARGET_ROWS {
                flush(&mut pending, &mut parts);
                rows = 0;
            }
        }
        flush(&mut pending, &mut parts);
        *self.partitions.write().expect("chunk lock") = parts;
    }
}

#[async_trait]
impl TableProvider for ChunkTable {
    fn schema(&self) -> SchemaRef {
        cloudtrail_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let parts = self.partitions.read().expect("chunk lock").clone();
        Ok(MemorySourceConfig::try_new_exec(
            &parts,
            cloudtrail_schema(),
            projection.cloned(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_found() {
        let sql = "SELECT *\nFROM cloudtrail\nWHERE evntname = 'x'";
        assert_eq!(
            sql_error_line(
                sql,
                "Schema error: No field named evntname. Valid fields are ..."
            ),
            Some(3)
        );
        assert_eq!(
            sql_error_line(
                sql,
                "sql parser error: Expected: end of statement, found: x at Line: 2, Column: 6"
            ),
            Some(2)
        );
        assert_eq!(sql_error_line(sql, "something else"), None);
    }
}
