//! Runs detections over batches of the `cloudtrail` table.
//!
//! Each detection's SQL is parsed, checked and optimised once, when the engine is built,
//! against a table whose contents change: every [`Engine::run`] puts a new chunk of batches
//! in the table and executes the planned queries over it (only the physical plan, a cheap
//! step, is made per chunk). Rules run concurrently, each on every core.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take};
use datafusion::arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown,
};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::fields::{self, Match};
use super::rule::{placeholders, Rule, RuleError, Stateful, DERIVED_FIELDS};
use crate::decode::roundtrip::record_json_with;
use crate::decode::schema::{self, cloudtrail_schema};
use crate::decode::{bedrock, Projection, SourceProjections};

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Partitions (and concurrent rules) per chunk.
    pub threads: usize,
    /// Accounts that `policy_outside_principals` treats as inside (the organisation's own).
    pub trusted_accounts: BTreeSet<String>,
    /// The deployment pipelines' role or user ARN patterns, for `is_pipeline`.
    pub pipelines: Vec<String>,
    /// The user's threat list, for `threat_listed`.
    pub threats: super::ip_list::IpList,
    /// The user's trusted ranges, for `trusted_ip`.
    pub trusted_networks: super::ip_list::IpList,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: crate::read::default_threads(),
            trusted_accounts: BTreeSet::new(),
            pipelines: Vec::new(),
            threats: Default::default(),
            trusted_networks: Default::default(),
        }
    }
}

/// What one detection made of a chunk.
#[derive(Debug, Default)]
pub struct Output {
    /// A plain detection's matching records.
    pub matches: Vec<Match>,
    /// A stateful detection's query output, its observations, for [`crate::detect::stats`].
    pub observations: Vec<RecordBatch>,
}

impl Output {
    /// Records the detection returned.
    pub fn len(&self) -> usize {
        self.matches.len()
            + self
                .observations
                .iter()
                .map(RecordBatch::num_rows)
                .sum::<usize>()
    }

    /// True when the detection returned nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// The rule's planned query; `None` for a sequence, which reads no records.
    query: Option<Query>,
}

/// What a rate detector's description may name besides its query's columns.
pub const STATS_FIELDS_RATE: &[&str] = &["bucket_count", "baseline", "threshold", "bucket"];

/// What a sequence's description may name.
pub const STATS_FIELDS_SEQUENCE: &[&str] = &["entity", "steps"];

/// Table columns every finding draws on (principal, call, place, resources).
const FINDING_COLUMNS: &[&str] = &[
    "useridentity",
    "eventsource",
    "eventname",
    "awsregion",
    "sourceipaddress",
    "useragent",
    "errorcode",
    "resources",
    "recipientaccountid",
];

/// The table columns a rule's matches must keep.
fn kept_columns(rule: &Rule) -> Vec<&'static str> {
    let mut names: Vec<&str> = placeholders(&rule.description)
        .into_iter()
        .map(|(_, n)| n.trim())
        .chain(rule.group_by.iter().map(String::as_str))
        .chain(
            rule.threshold
                .iter()
                .flat_map(|t| t.distinct.iter().chain(t.sum.iter()))
                .map(String::as_str),
        )
        .collect();
    names.retain(|n| !n.is_empty());
    let mut kept: Vec<&'static str> = FINDING_COLUMNS.to_vec();
    for def in crate::decode::schema::RECORD_FIELDS {
        let named = names
            .iter()
            .any(|n| n.split('.').next() == Some(def.column));
        if named && !kept.contains(&def.column) {
            kept.push(def.column);
        }
    }
    kept
}

/// Planned detections, ready to run over chunks of CloudTrail batches.
pub struct Engine {
    ctx: SessionContext,
    table: Arc<ChunkTable>,
    invocations: Arc<ChunkTable>,
    planned: Vec<Planned>,
    threads: usize,
    /// One run at a time: a run fills the shared table with its chunk.
    running: tokio::sync::Mutex<()>,
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
        let trusted = Arc::new(crate::sql::security::Trust {
            accounts: options.trusted_accounts,
            pipelines: options.pipelines,
            threats: options.threats,
            trusted_networks: options.trusted_networks,
        });
        let ctx = crate::sql::new_session_with(threads, &trusted).map_err(|e| {
            vec![RuleError {
                path: "(engine)".into(),
                line: None,
                message: e.to_string(),
            }]
        })?;
        // Plans are made once and run again for every chunk: dynamic filters, which a join
        // or top-k fills in while it runs, would carry one chunk's values into the next.
        {
            let state = ctx.state_ref();
            let mut state = state.write();
            let optimizer = &mut state.config_mut().options_mut().optimizer;
            optimizer.enable_dynamic_filter_pushdown = false;
            optimizer.enable_join_dynamic_filter_pushdown = false;
            optimizer.enable_topk_dynamic_filter_pushdown = false;
            optimizer.enable_aggregate_dynamic_filter_pushdown = false;
            // The plans are made before any rows are seen, so there are no sizes to choose
            // a join by; repartitioning both sides of every join costs more than building
            // one side whole.
            optimizer.repartition_joins = false;
        }
        let table = Arc::new(ChunkTable::new(cloudtrail_schema(), threads));
        ctx.register_table(schema::TABLE_NAME, table.clone())
            .expect("a fresh session takes the table");
        let invocations = Arc::new(ChunkTable::new(bedrock::bedrock_schema(), threads));
        ctx.register_table(bedrock::TABLE_NAME, invocations.clone())
            .expect("a fresh session takes the table");
        // Planning is CPU work: each rule is its own task, so every core plans.
        let tasks: Vec<_> = rules
            .into_iter()
            .map(|rule| {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let planned = match &rule.sql {
                        Some(sql) => plan(&ctx, &rule, sql).await.map(Some),
                        None => Ok(None),
                    };
                    (rule, planned)
                })
            })
            .collect();
        let mut planned = Vec::with_capacity(tasks.len());
        let mut errors = Vec::new();
        for task in tasks {
            match task.await.expect("planning a rule does not panic") {
                (rule, Ok(query)) => planned.push(Planned { rule, query }),
                (_, Err(e)) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            ctx,
            table,
            invocations,
            planned,
            threads,
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// The columns of `cloudtrail` the planned pack reads of each service's records: what a
    /// reader for these detections needs to decode. Every projection keeps all the table's
    /// columns in its batches (those not read are null), and always decodes the columns a
    /// finding is made from ([`FINDING_COLUMNS`], the event's id, time and source, the
    /// object it came from) and every column a statistical detector's findings name (they
    /// are drawn from the chunk's records, not from the query's output).
    pub fn decode_projections(&self) -> SourceProjections {
        let table = cloudtrail_schema();
        let index = |name: &str| table.index_of(name).ok();
        let mut always: BTreeSet<usize> = FINDING_COLUMNS
            .iter()
            .chain(&[
                "eventid",
                "eventtime",
                "eventsource",
                schema::SOURCE_KEY_COLUMN,
            ])
            .filter_map(|n| index(n))
            .collect();
        for p in &self.planned {
            if matches!(
                p.rule.stateful,
                Some(Stateful::FirstSeen(_) | Stateful::Rate(_))
            ) {
                always.extend(kept_columns(&p.rule).into_iter().filter_map(&index));
            }
        }
        let every: BTreeSet<usize> = (0..table.fields().len()).collect();
        let scans = crate::sync::lock(&self.table.scans).clone();
        let mut otherwise = always.clone();
        let mut services: HashMap<String, BTreeSet<usize>> = HashMap::new();
        for scan in &scans {
            let columns = scan.columns.as_ref().map_or(every.clone(), |c| {
                c.iter().copied().collect::<BTreeSet<usize>>()
            });
            match &scan.sources {
                None => otherwise.extend(columns),
                Some(sources) => {
                    for source in sources {
                        services.entry(source.clone()).or_default().extend(&columns);
                    }
                }
            }
        }
        SourceProjections {
            otherwise: Projection::decoding(otherwise.iter().copied()),
            services: services
                .into_iter()
                .map(|(source, columns)| {
                    let decoded = otherwise.union(&columns).copied();
                    (source, Projection::decoding(decoded))
                })
                .collect(),
        }
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
    pub async fn run(&self, batches: Vec<RecordBatch>) -> Vec<Result<Output, RunError>> {
        self.run_with(batches, Vec::new()).await
    }

    /// Runs every enabled rule over `batches` of `cloudtrail` and `invocations` of
    /// `bedrock_invocations`, as [`Engine::run`] does.
    pub async fn run_with(
        &self,
        batches: Vec<RecordBatch>,
        invocations: Vec<RecordBatch>,
    ) -> Vec<Result<Output, RunError>> {
        self.run_selected(batches, invocations, None).await
    }

    /// As [`Engine::run_with`], but with `only`, only the rule at that position runs, enabled
    /// or not (the others give nothing).
    pub async fn run_selected(
        &self,
        batches: Vec<RecordBatch>,
        invocations: Vec<RecordBatch>,
        only: Option<usize>,
    ) -> Vec<Result<Output, RunError>> {
        let _one_at_a_time = self.running.lock().await;
        let started = std::time::Instant::now();
        self.table.set(batches);
        self.invocations.set_whole(invocations);
        tracing::debug!(
            ms = started.elapsed().as_secs_f64() * 1e3,
            "grouped chunk by event source"
        );
        // The runs are made before they are streamed, so the stream's type holds no closure
        // over borrowed rules (which would keep the whole from being spawned).
        let runs: Vec<RuleRun<'_>> = self
            .planned
            .iter()
            .enumerate()
            .map(|(i, p)| -> RuleRun<'_> {
                Box::pin(async move {
                    // A rule chosen alone runs even when disabled (its own tests).
                    let skip = match only {
                        Some(o) => o != i,
                        None => !p.rule.enabled,
                    };
                    if skip {
                        return (i, Ok(Output::default()));
                    }
                    (i, self.execute(p).await)
                })
            })
            .collect();
        let results: Vec<(usize, Result<Output, RunError>)> = futures::stream::iter(runs)
            .buffer_unordered(self.threads * 8)
            .collect()
            .await;
        self.table.set(Vec::new());
        self.invocations.set_whole(Vec::new());
        let mut ordered: Vec<Option<Result<Output, RunError>>> =
            (0..self.planned.len()).map(|_| None).collect();
        for (i, r) in results {
            ordered[i] = Some(r);
        }
        ordered
            .into_iter()
            .map(|r| r.expect("every rule ran"))
            .collect()
    }

    /// Runs each enabled rule alone, one after another, over `batches`: how long each took
    /// and how many records it matched, in the order of [`Engine::rules`]. For finding the
    /// detections that slow a pack down.
    pub async fn profile(
        &self,
        batches: Vec<RecordBatch>,
    ) -> Vec<(String, std::time::Duration, Result<usize, RunError>)> {
        let _one_at_a_time = self.running.lock().await;
        self.table.set(batches);
        let mut out = Vec::with_capacity(self.planned.len());
        for p in self.planned.iter().filter(|p| p.rule.enabled) {
            let started = std::time::Instant::now();
            let found = self.execute(p).await.map(|m| m.len());
            out.push((p.rule.id.clone(), started.elapsed(), found));
        }
        self.table.set(Vec::new());
        out
    }

    async fn execute(&self, p: &Planned) -> Result<Output, RunError> {
        // A sequence reads no records: its steps are other detections' findings and signals.
        let Some(query) = &p.query else {
            return Ok(Output::default());
        };
        let fail = |e: datafusion::error::DataFusionError| RunError {
            rule: p.rule.id.clone(),
            path: p.rule.origin.to_string(),
            message: e.to_string(),
        };
        let started = std::time::Instant::now();
        let physical = reset_plan_states(Arc::clone(&query.physical)).map_err(fail)?;
        let batches = datafusion::physical_plan::collect(physical, self.ctx.task_ctx())
            .await
            .map_err(fail)?;
        let mut out = Output::default();
        if p.rule.stateful.is_some() {
            out.observations = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        } else {
            for batch in &batches {
                matches_of(batch, query, &mut out.matches);
            }
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

/// One rule's run over a chunk, by its position in the pack. Boxed with its `Send` stated, so
/// that a chunk's run can be spawned on the runtime's workers.
type RuleRun<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (usize, Result<Output, RunError>)> + Send + 'a>,
>;

/// A rule's query, planned.
struct Query {
    /// Made once; [`reset_plan_states`] readies it for each chunk.
    physical: Arc<dyn ExecutionPlan>,
    /// Output columns that are not the table's own, by position.
    extra: Vec<(usize, String)>,
    /// Table columns a match keeps: those findings are built from, and those the rule's
    /// description, grouping and threshold name.
    kept: Vec<&'static str>,
    /// The query reads `bedrock_invocations` (and not `cloudtrail`).
    on_invocations: bool,
}

/// Plans one rule's SQL (to a physical plan) and checks its output and the names it uses.
async fn plan(ctx: &SessionContext, rule: &Rule, sql: &str) -> Result<Query, RuleError> {
    let err = |line: Option<usize>, message: String| RuleError {
        path: rule.origin.to_string(),
        line: Some(rule.sql_line + line.unwrap_or(1) - 1),
        message,
    };
    let state = ctx.state();
    let plan = state.create_logical_plan(sql).await.map_err(|e| {
        let message = e.to_string();
        err(sql_error_line(sql, &message), format!("SQL: {message}"))
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
    let mut tables = BTreeSet::new();
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            tables.insert(scan.table_name.table().to_string());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .map_err(|e| err(None, format!("SQL: {e}")))?;
    if tables.len() == 1 && tables.contains(bedrock::TABLE_NAME) {
        return plan_on_invocations(&state, rule, plan, err).await;
    }
    let table = cloudtrail_schema();
    let output = plan.schema().as_arrow().clone();
    let mut has_extra = Vec::new();
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
            Err(_) => has_extra.push((i, field.name().clone())),
        }
    }
    let extra = &has_extra;
    let kind_fields: &[&str] = match &rule.stateful {
        Some(Stateful::Rate(_)) => STATS_FIELDS_RATE,
        Some(Stateful::Sequence(_)) => STATS_FIELDS_SEQUENCE,
        _ => &[],
    };
    let known = |name: &str| {
        let name = name.trim();
        DERIVED_FIELDS.iter().any(|(d, _)| *d == name)
            || kind_fields.contains(&name)
            || extra.iter().any(|(_, e)| e == name)
            || (fields::is_column_path(name)
                && output
                    .field_with_name(name.split('.').next().unwrap_or_default())
                    .is_ok())
    };
    check_names(rule, &known)?;
    let needs: &[&str] = match &rule.stateful {
        Some(Stateful::FirstSeen(_)) => &["entity", "value"],
        Some(Stateful::Rate(r)) if r.distinct => &["entity", "value"],
        Some(Stateful::Rate(_) | Stateful::Signal) => &["entity"],
        _ => &[],
    };
    for name in needs {
        if !extra.iter().any(|(_, e)| e == name) {
            return Err(err(
                None,
                format!(
                    "a {} detector's query must return a column named {name} (computed, such as `... AS {name}`)",
                    rule.stateful.as_ref().map_or("", Stateful::kind)
                ),
            ));
        }
    }
    // Keep only what matches are made of, so the filter copies no more than that of the
    // matching rows (a rule that matches often would otherwise copy whole records).
    // First-seen and rate detectors observe many records; they carry only what statistics
    // need, and the whole record of the few that make findings is found in the chunk.
    let kept = match &rule.stateful {
        Some(Stateful::FirstSeen(_) | Stateful::Rate(_)) => vec!["recipientaccountid"],
        _ => kept_columns(rule),
    };
    let keep: Vec<Expr> = (0..output.fields().len())
        .filter(|&i| {
            let name = output.field(i).name().as_str();
            kept.contains(&name)
                || (rule.stateful.is_some() && name == "sourcekey")
                || name == "eventid"
                || name == "eventtime"
                || extra.iter().any(|(j, _)| *j == i)
        })
        .map(|i| {
            let (qualifier, field) = plan.schema().qualified_field(i);
            Expr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ))
        })
        .collect();
    let plan = LogicalPlanBuilder::from(plan)
        .project(keep)
        .and_then(|b| b.build())
        .map_err(|e| err(None, format!("SQL: {e}")))?;
    let narrowed = plan.schema().as_arrow().clone();
    let extra: Vec<(usize, String)> = narrowed
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| table.field_with_name(f.name()).is_err())
        .map(|(i, f)| (i, f.name().clone()))
        .collect();
    let optimized = state
        .optimize(&plan)
        .map_err(|e| err(None, format!("SQL: {e}")))?;
    let optimized = fields_below_filter(optimized);
    let physical = state
        .query_planner()
        .create_physical_plan(&optimized, &state)
        .await
        .and_then(filters_in_turn)
        .map_err(|e| err(None, format!("SQL: {e}")))?;
    Ok(Query {
        physical,
        extra,
        kept,
        on_invocations: false,
    })
}

/// Each filter of `plan` becomes a [`ConditionFilterExec`](super::filter::ConditionFilterExec):
/// its conditions taken in turn, each over the columns it reads, and the batch copied once,
/// for the rows kept. Like it, a filter with a row limit hands on the batches it filtered as
/// they are (`FilterExec` joins its smaller outputs into batches of 8,192 rows by default,
/// copying them once more; the chunk table already hands over full batches of each event
/// source, and what a detection keeps of a small source is collected as it is).
fn filters_in_turn(
    plan: Arc<dyn ExecutionPlan>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::physical_plan::filter::FilterExec;
    plan.transform_up(|node| {
        let Some(filter) = node.downcast_ref::<FilterExec>() else {
            return Ok(Transformed::no(node));
        };
        Ok(Transformed::yes(
            match super::filter::ConditionFilterExec::from_filter(filter)? {
                Some(taken) => Arc::new(taken) as Arc<dyn ExecutionPlan>,
                // A target of one row: every non-empty batch is passed on without a copy.
                None => Arc::new(filter.with_batch_size(1)?),
            },
        ))
    })
    .map(|t| t.data)
}

/// Takes the struct fields a filtered scan's query reads out of their structs before the
/// filter, not after it. A query such as `SELECT coalesce(useridentity.arn, ...) AS value ...
/// WHERE useridentity.type IN (...)` is planned as a filter over the scan's whole
/// `useridentity` struct, and the filter copies every field of it for each row it keeps, to
/// read two of them afterwards; a detector that keeps nearly every record spent most of its
/// time there. Rewritten, the scan's structs give only those fields (as columns of a
/// projection below the filter), so the filter copies a few strings. Plans of any other shape,
/// and queries that need a struct whole, are left as they are.
fn fields_below_filter(plan: LogicalPlan) -> LogicalPlan {
    use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
    use datafusion::logical_expr::{Filter, Projection};
    let rewritten = plan.clone().transform_up(|node| {
        let LogicalPlan::Projection(top) = &node else {
            return Ok(Transformed::no(node));
        };
        let LogicalPlan::Filter(filter) = top.input.as_ref() else {
            return Ok(Transformed::no(node));
        };
        if !matches!(filter.input.as_ref(), LogicalPlan::TableScan(_)) {
            return Ok(Transformed::no(node));
        }
        // Every field read out of a column of the scan: `get_field(column, name, ...)`.
        let is_field = |e: &Expr| match e {
            Expr::ScalarFunction(f) => {
                f.func.name() == "get_field" && matches!(f.args.first(), Some(Expr::Column(_)))
            }
            _ => false,
        };
        let mut reads: Vec<Expr> = Vec::new();
        for e in top.expr.iter().chain([&filter.predicate]) {
            e.apply(|e| {
                if is_field(e) {
                    if !reads.contains(e) {
                        reads.push(e.clone());
                    }
                    return Ok(TreeNodeRecursion::Jump);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        if reads.is_empty() {
            return Ok(Transformed::no(node));
        }
        const TAKEN: &str = "__field_";
        let name = |i: usize| format!("{TAKEN}{i}");
        let swap = |e: &Expr| {
            e.clone()
                .transform_down(|e| match reads.iter().position(|r| *r == e) {
                    Some(i) => Ok(Transformed::new(
                        Expr::Column(datafusion::common::Column::from_name(name(i))),
                        true,
                        TreeNodeRecursion::Jump,
                    )),
                    None => Ok(Transformed::no(e)),
                })
                .map(|t| t.data)
        };
        let predicate = swap(&filter.predicate)?;
        let mut exprs = Vec::with_capacity(top.expr.len());
        for e in &top.expr {
            let new = swap(e)?;
            // A computed column keeps the name the query gave it.
            exprs.push(match e {
                Expr::Column(_) | Expr::Alias(_) => new,
                _ => new.alias(e.schema_name().to_string()),
            });
        }
        // The scan's columns still read whole: none may be a struct, or nothing is gained.
        let scan = filter.input.schema();
        let mut whole: Vec<datafusion::common::Column> = Vec::new();
        for e in exprs.iter().chain([&predicate]) {
            for c in e.column_refs() {
                if c.name.starts_with(TAKEN) || whole.contains(c) {
                    continue;
                }
                match scan.field_with_name(c.relation.as_ref(), &c.name) {
                    Ok(f) if f.data_type().is_nested() => return Ok(Transformed::no(node)),
                    Ok(_) => whole.push(c.clone()),
                    Err(_) => return Ok(Transformed::no(node)),
                }
            }
        }
        let below: Vec<Expr> = whole
            .into_iter()
            .map(Expr::Column)
            .chain(
                reads
                    .iter()
                    .enumerate()
                    .map(|(i, r)| r.clone().alias(name(i))),
            )
            .collect();
        let below = Projection::try_new(below, Arc::clone(&filter.input))?;
        let filter = Filter::try_new(predicate, Arc::new(LogicalPlan::Projection(below)))?;
        let top_new = Projection::try_new(exprs, Arc::new(LogicalPlan::Filter(filter)))?;
        // The same output, name for name and type for type, or the plan as it was.
        let same = top_new.schema.fields().len() == top.schema.fields().len()
            && top_new
                .schema
                .iter()
                .zip(top.schema.iter())
                .all(|((_, a), (_, b))| a.name() == b.name() && a.data_type() == b.data_type());
        if !same {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(LogicalPlan::Projection(top_new)))
    });
    match rewritten {
        Ok(t) => t.data,
        Err(_) => plan,
    }
}

/// Checks that every name the rule's description, `group_by` and threshold use is `known`.
fn check_names(rule: &Rule, known: &dyn Fn(&str) -> bool) -> Result<(), RuleError> {
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
    if let Some(t) = &rule.threshold {
        for (what, name) in [
            ("threshold.distinct", &t.distinct),
            ("threshold.sum", &t.sum),
        ] {
            if let Some(name) = name.as_ref().filter(|n| !known(n)) {
                return Err(unknown(what, name));
            }
        }
    }
    Ok(())
}

/// Plans a rule over `bedrock_invocations`: its matches are made from the query's columns,
/// every one of which the description and `group_by` may name.
async fn plan_on_invocations(
    state: &datafusion::execution::SessionState,
    rule: &Rule,
    plan: LogicalPlan,
    err: impl Fn(Option<usize>, String) -> RuleError,
) -> Result<Query, RuleError> {
    if rule.stateful.is_some() {
        return Err(err(
            None,
            "statistical detectors read the cloudtrail table; a detection over bedrock_invocations is a plain one (with a threshold if it needs one)".into(),
        ));
    }
    let output = plan.schema().as_arrow().clone();
    for (name, wanted) in [
        ("requestid", "the invocation's id"),
        ("timestamp", "its time"),
    ] {
        let table = bedrock::bedrock_schema();
        let ok = output.field_with_name(name).is_ok_and(|f| {
            f.data_type() == table.field_with_name(name).expect("own column").data_type()
        });
        if !ok {
            return Err(err(
                None,
                format!("a query over bedrock_invocations must return the column {name} ({wanted}): start with SELECT *"),
            ));
        }
    }
    let named: Vec<String> = output.fields().iter().map(|f| f.name().clone()).collect();
    let known = |name: &str| {
        let name = name.trim();
        DERIVED_FIELDS.iter().any(|(d, _)| *d == name) || named.iter().any(|n| n == name)
    };
    check_names(rule, &known)?;
    let physical = state
        .create_physical_plan(&plan)
        .await
        .map_err(|e| err(None, format!("SQL: {e}")))?;
    Ok(Query {
        physical,
        extra: named.into_iter().enumerate().collect(),
        kept: Vec::new(),
        on_invocations: true,
    })
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
    let last = name
        .trim_end_matches('.')
        .rsplit('.')
        .next()?
        .to_ascii_lowercase();
    if last.is_empty() {
        return None;
    }
    let lower = sql.to_ascii_lowercase();
    lower.find(&last).map(|at| super::rule::line_of(sql, at))
}

/// Appends the rows of a rule's output batch as matches: each row's id and time from
/// `eventid` and `eventtime` (from `requestid` and `timestamp` over `bedrock_invocations`),
/// the `extra` columns as named values, and its record: the kept columns of a CloudTrail row;
/// for an invocation, the invocation told as CloudTrail tells an API call (so findings name
/// its principal, account, region and operation the same way).
fn matches_of(batch: &RecordBatch, query: &Query, out: &mut Vec<Match>) {
    let (id, time) = if query.on_invocations {
        ("requestid", "timestamp")
    } else {
        ("eventid", "eventtime")
    };
    let (Some(ids), Some(times)) = (batch.column_by_name(id), batch.column_by_name(time)) else {
        return;
    };
    let ids = ids.as_string::<i32>();
    let times = times.as_primitive::<TimestampMicrosecondType>();
    let options = FormatOptions::default();
    let formatters: Vec<(usize, &String, ArrayFormatter<'_>)> = query
        .extra
        .iter()
        .filter_map(|(i, name)| {
            ArrayFormatter::try_new(batch.column(*i).as_ref(), &options)
                .ok()
                .map(|f| (*i, name, f))
        })
        .collect();
    let arns = batch
        .column_by_name("identity")
        .and_then(|c| c.as_struct_opt())
        .and_then(|c| c.column_by_name("arn"))
        .map(|c| c.as_string::<i32>());
    for row in 0..batch.num_rows() {
        if ids.is_null(row) || times.is_null(row) {
            continue;
        }
        let extra = formatters
            .iter()
            .filter(|(i, _, _)| batch.column(*i).is_valid(row))
            .map(|(_, name, f)| ((*name).clone(), f.value(row).to_string()))
            .collect();
        let record = if query.on_invocations {
            let arn = arns.filter(|a| a.is_valid(row)).map(|a| a.value(row));
            bedrock::as_api_call(ids.value(row), times.value(row), arn, &extra)
        } else {
            record_json_with(batch, row, |c| query.kept.contains(&c), false)
        };
        out.push(Match {
            event_id: ids.value(row).to_string(),
            time: times.value(row),
            record,
            extra,
        });
    }
}

/// Rows per batch handed to the rules.
const TARGET_ROWS: usize = 8192;

/// Rows joined before they are split by event source.
const RUN_ROWS: usize = 8 * TARGET_ROWS;

/// Memory joined before it is split by event source (well below the 2 GiB a text array holds).
const RUN_BYTES: usize = 256 << 20;

/// A chunk's rows by event source.
type BySource = HashMap<String, Vec<RecordBatch>>;

/// The `cloudtrail` table of a detection session: whatever chunk is being examined, its rows
/// grouped by `eventsource`. Most detections begin with `eventsource = '...'` (or `IN`);
/// that filter is pushed down to the scan, which then hands over only that service's rows
/// (DataFusion still applies the filter itself, so the result is the same either way).
///
/// The scan reads the chunk when it runs, not when it is planned, so a rule's physical plan
/// is made once and runs again over every chunk.
#[derive(Debug)]
///
/// `bedrock_invocations` is a chunk table too, its batches kept as they come (under one
/// empty source).
struct ChunkTable {
    schema: SchemaRef,
    current: Arc<RwLock<Arc<BySource>>>,
    partitions: usize,
    /// Every scan planned over the table: the sources it reads (`None` for all) and the
    /// columns (`None` for all), so the reader decodes no more than the plans read.
    scans: std::sync::Mutex<Vec<Scan>>,
}

/// What one planned scan of a [`ChunkTable`] reads.
#[derive(Debug, Clone)]
struct Scan {
    sources: Option<Vec<String>>,
    columns: Option<Vec<usize>>,
}

impl ChunkTable {
    fn new(schema: SchemaRef, partitions: usize) -> Self {
        Self {
            schema,
            current: Arc::new(RwLock::new(Arc::new(HashMap::new()))),
            partitions: partitions.max(1),
            scans: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Puts `batches` in the table, their rows regrouped by event source into batches of at
    /// most [`TARGET_ROWS`] rows (one log object is often a batch of a few records, and every
    /// batch costs each rule a little). The work is shared among the table's threads.
    fn set(&self, batches: Vec<RecordBatch>) {
        let by_source = group_by_source(&batches, self.partitions);
        *crate::sync::write(&self.current) = Arc::new(by_source);
    }

    /// Puts `batches` in the table as they are.
    fn set_whole(&self, batches: Vec<RecordBatch>) {
        let whole = HashMap::from([(String::new(), batches)]);
        *crate::sync::write(&self.current) = Arc::new(whole);
    }
}

/// One partition of a scan of [`ChunkTable`]: every `of`-th batch of the allowed sources,
/// starting at `index`, of whatever chunk is in the table when the plan runs.
#[derive(Debug)]
struct ChunkPartition {
    current: Arc<RwLock<Arc<BySource>>>,
    /// Sources to read; `None` for all.
    sources: Option<Vec<String>>,
    index: usize,
    of: usize,
    schema: SchemaRef,
}

impl PartitionStream for ChunkPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let chunk = Arc::clone(&crate::sync::read(&self.current));
        let chosen: Vec<RecordBatch> = match &self.sources {
            Some(sources) => sources
                .iter()
                .filter_map(|s| chunk.get(s))
                .flatten()
                .skip(self.index)
                .step_by(self.of)
                .cloned()
                .collect(),
            None => chunk
                .values()
                .flatten()
                .skip(self.index)
                .step_by(self.of)
                .cloned()
                .collect(),
        };
        Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            futures::stream::iter(chosen.into_iter().map(Ok)),
        ))
    }
}

/// The rows of `batches` by event source, in batches of at most [`TARGET_ROWS`] rows. A batch
/// whose rows share one source is kept as it is. Runs of the other batches are first joined into batches of about [`RUN_ROWS`] rows, each then split by
/// source (so a source gets few, full batches however small the log objects were); the runs
/// are shared among `threads` threads.
fn group_by_source(batches: &[RecordBatch], threads: usize) -> HashMap<String, Vec<RecordBatch>> {
    // Batches of one source (as `read_all_by_source` makes) are taken as they are.
    let mut out = HashMap::<String, Vec<RecordBatch>>::new();
    let mut mixed = Vec::new();
    for batch in batches {
        match single_source(batch) {
            Some(source) => {
                let pieces = out.entry(source.to_string()).or_default();
                let mut at = 0;
                while at < batch.num_rows() {
                    let len = TARGET_ROWS.min(batch.num_rows() - at);
                    pieces.push(batch.slice(at, len));
                    at += len;
                }
            }
            None => mixed.push(batch.clone()),
        }
    }
    let batches = &mixed[..];
    let mut runs: Vec<&[RecordBatch]> = Vec::new();
    let (mut begin, mut rows, mut bytes) = (0, 0, 0);
    for (i, batch) in batches.iter().enumerate() {
        rows += batch.num_rows();
        bytes += batch.get_array_memory_size();
        if rows >= RUN_ROWS || bytes >= RUN_BYTES {
            runs.push(&batches[begin..=i]);
            (begin, rows, bytes) = (i + 1, 0, 0);
        }
    }
    if begin < batches.len() {
        runs.push(&batches[begin..]);
    }
    let schema = cloudtrail_schema();
    let next = AtomicUsize::new(0);
    let out = Mutex::new(out);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, runs.len().max(1)) {
            scope.spawn(|| {
                let mut mine: Vec<(String, RecordBatch)> = Vec::new();
                while let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match concat_batches(&schema, run.iter()) {
                        Ok(joined) => split_by_source(&joined, &mut mine),
                        // Text too long for one array: split the batches one by one.
                        Err(_) => run.iter().for_each(|b| split_by_source(b, &mut mine)),
                    }
                }
                let mut out = crate::sync::lock(&out);
                for (source, batch) in mine {
                    let pieces = out.entry(source).or_default();
                    let mut at = 0;
                    while at < batch.num_rows() {
                        let len = TARGET_ROWS.min(batch.num_rows() - at);
                        pieces.push(batch.slice(at, len));
                        at += len;
                    }
                }
            });
        }
    });
    crate::sync::into_inner(out)
}

/// The event source of every row of `batch`, when they all have the same one.
fn single_source(batch: &RecordBatch) -> Option<&str> {
    let sources = batch.column_by_name("eventsource")?.as_string::<i32>();
    if sources.is_empty() || sources.null_count() > 0 {
        return None;
    }
    let first = sources.value(0);
    (1..sources.len())
        .all(|row| sources.value(row) == first)
        .then_some(first)
}

/// Appends `batch`'s rows, one batch per event source, to `out`.
fn split_by_source(batch: &RecordBatch, out: &mut Vec<(String, RecordBatch)>) {
    let Some(sources) = batch.column_by_name("eventsource") else {
        return;
    };
    let sources = sources.as_string::<i32>();
    let mut rows: HashMap<&str, Vec<u32>> = HashMap::new();
    for row in 0..batch.num_rows() {
        let source = if sources.is_null(row) {
            ""
        } else {
            sources.value(row)
        };
        rows.entry(source).or_default().push(row as u32);
    }
    if rows.len() == 1 {
        let source = rows.into_keys().next().expect("one source");
        out.push((source.to_string(), batch.clone()));
        return;
    }
    for (source, indices) in rows {
        let indices = UInt32Array::from(indices);
        let columns = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<Result<Vec<_>, _>>()
            .expect("indices are in range");
        let piece = RecordBatch::try_new(batch.schema(), columns).expect("same schema");
        out.push((source.to_string(), piece));
    }
}

/// The event sources a filter restricts rows to: `eventsource = 'x'`, `eventsource IN (...)`
/// and ORs of those; `None` for any other filter.
fn source_values(expr: &Expr) -> Option<Vec<String>> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let is_source = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "eventsource");
    let text = |e: &Expr| match e {
        Expr::Literal(v, _) => v.try_as_str().flatten().map(str::to_string),
        _ => None,
    };
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            if is_source(left) {
                text(right).map(|v| vec![v])
            } else if is_source(right) {
                text(left).map(|v| vec![v])
            } else {
                None
            }
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut values = source_values(left)?;
            values.extend(source_values(right)?);
            Some(values)
        }
        Expr::InList(list) if !list.negated && is_source(&list.expr) => {
            list.list.iter().map(text).collect()
        }
        _ => None,
    }
}

#[async_trait]
impl TableProvider for ChunkTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if source_values(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        // Every source filter must hold, so only sources all of them allow are read.
        let mut allowed: Option<Vec<String>> = None;
        for values in filters.iter().filter_map(source_values) {
            allowed = Some(match allowed {
                None => values,
                Some(previous) => previous
                    .into_iter()
                    .filter(|v| values.contains(v))
                    .collect(),
            });
        }
        crate::sync::lock(&self.scans).push(Scan {
            sources: allowed.clone(),
            columns: projection.cloned(),
        });
        let schema = self.schema.clone();
        let partitions: Vec<Arc<dyn PartitionStream>> = (0..self.partitions)
            .map(|index| {
                Arc::new(ChunkPartition {
                    current: Arc::clone(&self.current),
                    sources: allowed.clone(),
                    index,
                    of: self.partitions,
                    schema: schema.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            partitions,
            projection,
            Vec::new(),
            false,
            None,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_filters_are_recognised() {
        use datafusion::prelude::{col, lit};
        let eq = col("eventsource").eq(lit("kms.amazonaws.com"));
        assert_eq!(
            source_values(&eq),
            Some(vec!["kms.amazonaws.com".to_string()])
        );
        let any = col("eventsource").in_list(vec![lit("a"), lit("b")], false);
        assert_eq!(
            source_values(&any),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        let or = col("eventsource")
            .eq(lit("a"))
            .or(col("eventsource").eq(lit("c")));
        assert_eq!(
            source_values(&or),
            Some(vec!["a".to_string(), "c".to_string()])
        );
        let not_in = col("eventsource").in_list(vec![lit("a")], true);
        assert_eq!(source_values(&not_in), None);
        let other = col("eventname").eq(lit("a"));
        assert_eq!(source_values(&other), None);
        let mixed = col("eventsource")
            .eq(lit("a"))
            .or(col("eventname").eq(lit("b")));
        assert_eq!(source_values(&mixed), None);
    }

    fn rule(id: &str, sql: &str) -> Rule {
        let text = format!(
            "id = \"{id}\"\ntitle = \"T\"\ndescription = \"{{actor}}\"\n\
             type = \"Stealth:IAMUser/Test\"\nseverity = 5\ncategory = \"c\"\n\
             sql = \"\"\"\n{sql}\n\"\"\"\n"
        );
        Rule::parse(
            &text,
            super::super::rule::Origin {
                path: format!("{id}.toml").into(),
                builtin: false,
            },
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_service_is_decoded_as_far_as_the_detections_read_it() {
        let engine = Engine::new(
            vec![
                rule(
                    "kms-policy",
                    "SELECT * FROM cloudtrail WHERE eventsource = 'kms.amazonaws.com' \
                     AND json_get_str(requestparameters, 'policy') IS NOT NULL",
                ),
                rule(
                    "agents",
                    "SELECT * FROM cloudtrail WHERE useragent LIKE '%sqlmap%'",
                ),
                rule(
                    "tls",
                    "SELECT eventid, eventtime FROM cloudtrail \
                     WHERE eventsource IN ('s3.amazonaws.com', 'kms.amazonaws.com') \
                     AND tlsdetails.tlsversion = 'TLSv1'",
                ),
            ],
            EngineOptions {
                threads: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let p = engine.decode_projections();
        let table = cloudtrail_schema();
        let decodes = |projection: &Projection, name: &str| {
            let i = table.index_of(name).unwrap();
            projection.decoded().any(|d| d == i)
        };
        // Every batch keeps every column, decoded or not.
        for projection in p.services.values().chain([&p.otherwise]) {
            assert_eq!(projection.indices().len(), table.fields().len());
        }
        let kms = p.of("kms.amazonaws.com");
        let s3 = p.of("s3.amazonaws.com");
        let other = p.of("sts.amazonaws.com");
        assert_eq!(other, &p.otherwise);
        // What a finding is made of, and what a detection over every service reads.
        for projection in [kms, s3, other] {
            for name in [
                "eventid",
                "eventtime",
                "eventsource",
                "sourcekey",
                "useridentity",
                "useragent",
            ] {
                assert!(decodes(projection, name), "{name}");
            }
        }
        assert!(decodes(kms, "requestparameters"));
        assert!(!decodes(s3, "requestparameters"));
        assert!(!decodes(other, "requestparameters"));
        assert!(decodes(kms, "tlsdetails") && decodes(s3, "tlsdetails"));
        assert!(!decodes(other, "tlsdetails"));
        for projection in [kms, s3, other] {
            assert!(!decodes(projection, "addendum"));
            assert!(!decodes(projection, "unmapped"));
        }
    }

    /// The struct fields a filtered query reads are taken out below its filter, which then
    /// copies no struct, and the query still returns what it would have.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn struct_fields_are_read_before_the_filter() {
        use datafusion::arrow::datatypes::DataType;
        let sql = "SELECT eventid, eventtime, \
                   coalesce(useridentity.sessioncontext.sessionissuer.arn, useridentity.arn) AS who \
                   FROM cloudtrail WHERE useridentity.type IN ('AssumedRole', 'IAMUser') \
                   AND coalesce(useridentity.sessioncontext.sessionissuer.arn, useridentity.arn) \
                   LIKE '%:role/%'";
        let engine = Engine::new(
            vec![rule("roles", sql)],
            EngineOptions {
                threads: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let physical = Arc::clone(&engine.planned[0].query.as_ref().unwrap().physical);
        let mut filters = Vec::new();
        physical
            .apply(|node| {
                // DataFusion's filter is replaced by one that takes conditions in turn.
                assert!(node
                    .downcast_ref::<datafusion::physical_plan::filter::FilterExec>()
                    .is_none());
                if node
                    .downcast_ref::<super::super::filter::ConditionFilterExec>()
                    .is_some()
                {
                    filters.push(node.children()[0].schema());
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })
            .unwrap();
        assert_eq!(filters.len(), 1, "{physical:?}");
        for field in filters[0].fields() {
            assert!(
                !matches!(field.data_type(), DataType::Struct(_)),
                "the filter is handed the struct {}",
                field.name()
            );
        }
        let record = |n: usize, identity: serde_json::Value| {
            serde_json::json!({
                "eventVersion": "1.08", "eventTime": "2026-01-01T00:00:00Z",
                "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets",
                "awsRegion": "us-east-1", "eventID": format!("id-{n}"),
                "recipientAccountId": "111122223333", "userIdentity": identity
            })
        };
        let role = |n: usize, issuer: &str| {
            record(
                n,
                serde_json::json!({
                    "type": "AssumedRole", "arn": format!("arn:aws:sts::1:assumed-role/{issuer}/s"),
                    "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::1:role/{issuer}")}}
                }),
            )
        };
        let user = |n: usize, name: &str| {
            record(
                n,
                serde_json::json!({"type": "IAMUser", "arn": format!("arn:aws:iam::1:user/{name}")}),
            )
        };
        let records = vec![
            role(1, "builder"),
            user(2, "alice"),
            role(3, "deployer"),
            user(4, "role-named/x"),
            serde_json::json!({"eventID": "id-5", "eventTime": "2026-01-01T00:00:00Z",
                "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets",
                "userIdentity": {"type": "AWSService", "invokedBy": "s3.amazonaws.com"}}),
        ];
        let batches = super::super::ruletest::decode_test_records(
            "AWSLogs/111122223333/CloudTrail/us-east-1/2026/01/01/t.json.gz",
            records,
        )
        .unwrap();
        let out = engine.run(batches).await.remove(0).unwrap();
        let mut got: Vec<(String, String)> = out
            .matches
            .iter()
            .map(|m| (m.event_id.clone(), m.extra["who"].clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (
                    "id-1".to_string(),
                    "arn:aws:iam::1:role/builder".to_string()
                ),
                (
                    "id-3".to_string(),
                    "arn:aws:iam::1:role/deployer".to_string()
                ),
            ]
        );
    }

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
