//! The filter the detections' plans run, in place of DataFusion's `FilterExec`.
//!
//! A detection's filter keeps few rows of most batches, and none of many. `FilterExec`
//! evaluates the whole predicate and copies every column of the batch through the filter
//! even when no row is kept (building an empty array for each column, nested fields
//! included), and its `AND` copies every column of the batch again to evaluate a
//! condition on the rows the conditions before it kept. [`ConditionFilterExec`] takes the
//! predicate's conditions (its `AND`ed parts) one after another, each over only the columns
//! it reads (over only the rows still kept, when they are few), stops at the first that
//! keeps nothing, and copies the batch's columns once, for the rows kept in the end.
//!
//! SQL's `WHERE a AND b` keeps a row when every condition is true: taking them in turn, and
//! evaluating one only on the rows the others kept, keeps the same rows.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::{filter_record_batch, prep_null_mask_filter};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{split_conjunction, PhysicalExpr};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

/// A condition is evaluated on the kept rows alone (copied out first) when they are at most
/// this fraction of the batch; on the whole batch otherwise.
const FEW_ROWS: f64 = 0.2;

/// One of the predicate's `AND`ed conditions.
#[derive(Debug)]
struct Condition {
    /// The input columns it reads, by position.
    columns: Vec<usize>,
    /// The batch of only those columns.
    schema: SchemaRef,
    /// The condition over that batch.
    expr: Arc<dyn PhysicalExpr>,
}

impl Condition {
    fn new(expr: &Arc<dyn PhysicalExpr>, input: &Schema) -> Result<Self> {
        let mut columns: Vec<usize> = collect_columns(expr).iter().map(Column::index).collect();
        columns.sort_unstable();
        let schema = Arc::new(input.project(&columns)?);
        let expr = Arc::clone(expr)
            .transform_down(|e| {
                let Some(c) = e.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(e));
                };
                let at = columns.binary_search(&c.index()).map_err(|_| {
                    DataFusionError::Internal(format!("column {} not collected", c.name()))
                })?;
                Ok(Transformed::yes(
                    Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>
                ))
            })?
            .data;
        Ok(Self {
            columns,
            schema,
            expr,
        })
    }

    /// `batch`'s columns that the condition reads, as the batch it is evaluated on.
    fn narrow(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            self.columns
                .iter()
                .map(|&i| Arc::clone(batch.column(i)))
                .collect(),
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?)
    }

    /// Where the condition is true on `narrow`'s rows (null is not true).
    fn truth(&self, narrow: &RecordBatch) -> Result<BooleanBuffer> {
        let values = self.expr.evaluate(narrow)?.into_array(narrow.num_rows())?;
        truth(&values)
    }
}

/// The rows where `values` (a boolean array) is true.
fn truth(values: &ArrayRef) -> Result<BooleanBuffer> {
    let values = values.as_boolean_opt().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "a filter condition gave {}, not booleans",
            values.data_type()
        ))
    })?;
    Ok(if values.null_count() > 0 {
        prep_null_mask_filter(values).values().clone()
    } else {
        values.values().clone()
    })
}

/// The rows of `batch` every condition keeps (`None` when there is no condition).
fn kept(conditions: &[Condition], batch: &RecordBatch) -> Result<Option<BooleanBuffer>> {
    let rows = batch.num_rows();
    let mut keep: Option<BooleanBuffer> = None;
    for condition in conditions {
        let next = match keep {
            None => condition.truth(&condition.narrow(batch)?)?,
            Some(so_far) => {
                let selected = so_far.count_set_bits();
                if selected == 0 {
                    return Ok(Some(so_far));
                }
                let narrow = condition.narrow(batch)?;
                if (selected as f64) <= FEW_ROWS * rows as f64 {
                    // Only the kept rows: copied out, evaluated, put back in place.
                    let few =
                        filter_record_batch(&narrow, &BooleanArray::new(so_far.clone(), None))?;
                    let values = condition.truth(&few)?;
                    let mut back = BooleanBufferBuilder::new(rows);
                    back.append_n(rows, false);
                    for (j, row) in so_far.set_indices().enumerate() {
                        if values.value(j) {
                            back.set_bit(row, true);
                        }
                    }
                    back.finish()
                } else {
                    &so_far & &condition.truth(&narrow)?
                }
            }
        };
        keep = Some(next);
    }
    Ok(keep)
}

/// `batch` filtered by the conditions and projected; `None` when no row is kept.
fn filtered(
    conditions: &[Condition],
    projection: Option<&[usize]>,
    batch: RecordBatch,
) -> Result<Option<RecordBatch>> {
    let keep = kept(conditions, &batch)?;
    let rows = batch.num_rows();
    let batch = match projection {
        Some(p) => batch.project(p)?,
        None => batch,
    };
    match keep {
        None => Ok((rows > 0).then_some(batch)),
        Some(keep) => match keep.count_set_bits() {
            0 => Ok(None),
            n if n == rows => Ok(Some(batch)),
            _ => Ok(Some(filter_record_batch(
                &batch,
                &BooleanArray::new(keep, None),
            )?)),
        },
    }
}

/// A filter that takes its predicate's conditions in turn (see the module's documentation).
#[derive(Debug)]
pub struct ConditionFilterExec {
    input: Arc<dyn ExecutionPlan>,
    predicate: Arc<dyn PhysicalExpr>,
    conditions: Arc<[Condition]>,
    projection: Option<Arc<[usize]>>,
    properties: Arc<PlanProperties>,
    /// The output's.
    schema: SchemaRef,
}

impl ConditionFilterExec {
    /// The same filter as `filter`; `None` for one with a row limit (kept as it is).
    pub fn from_filter(filter: &FilterExec) -> Result<Option<Self>> {
        if filter.fetch().is_some() {
            return Ok(None);
        }
        let input = Arc::clone(filter.input());
        let schema = input.schema();
        let conditions = split_conjunction(filter.predicate())
            .into_iter()
            .map(|c| Condition::new(c, &schema))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Self {
            input,
            predicate: Arc::clone(filter.predicate()),
            conditions: conditions.into(),
            projection: filter.projection().clone(),
            properties: Arc::clone(filter.properties()),
            schema: filter.schema(),
        }))
    }
}

impl DisplayAs for ConditionFilterExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ConditionFilterExec: {}", self.predicate)
    }
}

impl ExecutionPlan for ConditionFilterExec {
    fn name(&self) -> &str {
        "ConditionFilterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.predicate)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children).map_err(|c| {
            DataFusionError::Internal(format!("a filter has one input, not {}", c.len()))
        })?;
        Ok(Arc::new(Self {
            input,
            predicate: Arc::clone(&self.predicate),
            conditions: Arc::clone(&self.conditions),
            projection: self.projection.clone(),
            properties: Arc::clone(&self.properties),
            schema: Arc::clone(&self.schema),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let conditions = Arc::clone(&self.conditions);
        let projection = self.projection.clone();
        let stream = input.filter_map(move |batch| {
            let out = batch
                .and_then(|b| filtered(&conditions, projection.as_deref(), b))
                .transpose();
            futures::future::ready(out)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    /// Rows as text, sorted: what a query returned, whatever its batches.
    fn rows(batches: &[RecordBatch]) -> Vec<String> {
        let text = pretty_format_batches(batches).unwrap().to_string();
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(1)
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    #[tokio::test]
    async fn conditions_in_turn_keep_what_the_whole_predicate_keeps() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Int32, false),
        ]));
        let batch = |from: i32| {
            let range = from..from + 500;
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int32Array::from_iter(
                        range.clone().map(|i| (i % 11 != 0).then_some(i % 7)),
                    )),
                    Arc::new(StringArray::from_iter(
                        range
                            .clone()
                            .map(|i| (i % 13 != 0).then(|| format!("x{}", i % 3))),
                    )),
                    Arc::new(Int32Array::from_iter_values(range)),
                ],
            )
            .unwrap()
        };
        let table =
            MemTable::try_new(Arc::clone(&schema), vec![vec![batch(0)], vec![batch(500)]]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let queries = [
            // The first condition keeps a seventh: the others see the kept rows only.
            "SELECT * FROM t WHERE a = 3 AND b <> 'x1' AND c > 10",
            // Most rows pass each condition: evaluated on whole batches.
            "SELECT c FROM t WHERE c >= 0 AND a IS NOT NULL AND b = 'x2'",
            // Nothing passes the first: no batch comes out.
            "SELECT * FROM t WHERE a = 100 AND c > 1",
            // Nulls are not true; an OR is one condition.
            "SELECT b, c FROM t WHERE (a = 1 OR b IS NULL) AND NOT (c % 2 = 0)",
            // Every row passes.
            "SELECT a FROM t WHERE c < 5000",
        ];
        for sql in queries {
            let plan = ctx
                .sql(sql)
                .await
                .unwrap()
                .create_physical_plan()
                .await
                .unwrap();
            let expected = datafusion::physical_plan::collect(Arc::clone(&plan), ctx.task_ctx())
                .await
                .unwrap();
            let mut replaced = 0;
            let ours = plan
                .transform_up(|node| match node.downcast_ref::<FilterExec>() {
                    Some(filter) => {
                        replaced += 1;
                        let ours = ConditionFilterExec::from_filter(filter)?.unwrap();
                        Ok(Transformed::yes(Arc::new(ours) as Arc<dyn ExecutionPlan>))
                    }
                    None => Ok(Transformed::no(node)),
                })
                .unwrap()
                .data;
            assert_eq!(replaced, 1, "{sql}");
            let got = datafusion::physical_plan::collect(ours, ctx.task_ctx())
                .await
                .unwrap();
            assert!(
                got.iter().all(|b| b.num_rows() > 0),
                "{sql}: an empty batch"
            );
            assert_eq!(rows(&got), rows(&expected), "{sql}");
        }
        // The queries are not all empty: the comparison compares something.
        let some = ctx.sql(queries[0]).await.unwrap().collect().await.unwrap();
        assert!(some.iter().map(RecordBatch::num_rows).sum::<usize>() > 10);
    }
}
