//! The `cloudtrail` table as a DataFusion table provider over log objects.
//!
//! Objects are decoded while the query runs, one stream per partition, and only the columns
//! the query uses are built (projection pushdown), so `SELECT eventname, count(*)` costs far
//! less than reading whole records.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;

use crate::decode::{schema, DecodeOptions, Projection};
use crate::read::{ReadQueue, ReadReport};
use crate::source::ObjectRef;

/// The `cloudtrail` table over a fixed set of objects.
pub struct CloudTrailTable {
    objects: Arc<Vec<ObjectRef>>,
    /// Limits and budget for every scan (each scan sets its own projection).
    options: DecodeOptions,
    partitions: usize,
    report: Arc<Mutex<ReadReport>>,
    queues: Mutex<Vec<Arc<ReadQueue>>>,
}

impl fmt::Debug for CloudTrailTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudTrailTable")
            .field("objects", &self.objects.len())
            .field("partitions", &self.partitions)
            .finish()
    }
}

impl CloudTrailTable {
    /// A table reading `objects` on `partitions` parallel streams, with the limits and memory
    /// budget of `options`.
    pub fn new(objects: Vec<ObjectRef>, options: DecodeOptions, partitions: usize) -> Self {
        Self {
            objects: Arc::new(objects),
            options,
            partitions: partitions.max(1),
            report: Arc::new(Mutex::new(ReadReport::default())),
            queues: Mutex::new(Vec::new()),
        }
    }

    /// What the scans so far have read and skipped. Each scan reads the objects once.
    pub fn report(&self) -> ReadReport {
        let mut report = crate::sync::lock(&self.report).clone();
        for queue in crate::sync::lock(&self.queues).iter() {
            report.merge(&queue.report());
        }
        report
    }
}

#[async_trait]
impl TableProvider for CloudTrailTable {
    fn schema(&self) -> SchemaRef {
        schema::cloudtrail_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection = match projection {
            Some(columns) => Projection::columns(columns),
            None => Projection::all(),
        };
        let schema = projection.schema();
        let queue = Arc::new(ReadQueue::new(
            self.objects.as_ref().clone(),
            DecodeOptions {
                projection,
                ..self.options.clone()
            },
        ));
        crate::sync::lock(&self.queues).push(queue.clone());
        let partitions: Vec<Arc<dyn PartitionStream>> = (0..self.partitions)
            .map(|_| {
                Arc::new(QueuePartition {
                    queue: queue.clone(),
                    schema: schema.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            partitions,
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

/// One partition: a blocking worker that takes objects from the shared queue.
struct QueuePartition {
    queue: Arc<ReadQueue>,
    schema: SchemaRef,
}

impl fmt::Debug for QueuePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueuePartition")
    }
}

impl PartitionStream for QueuePartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), 2);
        let tx = builder.tx();
        let queue = self.queue.clone();
        builder.spawn_blocking(move || {
            let mut decoder = queue.decoder();
            queue.work(&mut decoder, |batch| tx.blocking_send(Ok(batch)).is_ok());
            Ok(())
        });
        builder.build()
    }
}
