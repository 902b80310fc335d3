//! Building the `cloudtrail` columns from parsed records.
//!
//! A [`RecordsBuilder`] takes one record at a time, as a slice of simd-json's tape, and appends
//! it to Arrow builders shaped by [`schema::RECORD_FIELDS`]. Anything the schema does not model
//! (or a modelled field whose JSON type is not the expected one) goes to the `unmapped` column,
//! so a record can always be rebuilt in full from its row.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, ArrayRef, DictionaryArray, Int32Array, ListArray, NullBufferBuilder,
    StringArray, StringBuilder, StructArray, TimestampMicrosecondBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use simd_json::{Node, StaticNode};

use super::json_text::{depth, value_len, write_value};
use super::schema::{self, FieldDef, Kind, RECORD_FIELDS};
use super::time::parse_event_time;

/// Which columns of the `cloudtrail` table to build (by index in [`schema::cloudtrail_schema`]).
/// Columns left out are skipped while decoding, which is most of the cost of a narrow query.
///
/// A projection may also keep a column in its batches without decoding it ([`Projection::decoding`]):
/// the column is there, every value null. Batches of one table then share one schema
/// whatever each decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    wanted: Vec<usize>,
    /// `decoded[i]`: column `i` is built from the records (else it is all null, or absent).
    decoded: Vec<bool>,
}

impl Projection {
    /// Every column.
    pub fn all() -> Self {
        Self::decoding(0..schema::COLUMN_COUNT)
    }

    /// The given columns, in the given order. Indices must be below [`schema::COLUMN_COUNT`].
    pub fn columns(indices: &[usize]) -> Self {
        assert!(indices.iter().all(|&i| i < schema::COLUMN_COUNT));
        Self {
            wanted: indices.to_vec(),
            decoded: Self::flags(indices.iter().copied()),
        }
    }

    /// Every column in its batches, but only `indices` decoded: the others are null in every
    /// row. Indices at or past [`schema::COLUMN_COUNT`] are ignored.
    pub fn decoding(indices: impl IntoIterator<Item = usize>) -> Self {
        Self {
            wanted: (0..schema::COLUMN_COUNT).collect(),
            decoded: Self::flags(indices),
        }
    }

    /// One flag per column, set for `indices` (those in range).
    fn flags(indices: impl IntoIterator<Item = usize>) -> Vec<bool> {
        let mut decoded = vec![false; schema::COLUMN_COUNT];
        for i in indices {
            if let Some(d) = decoded.get_mut(i) {
                *d = true;
            }
        }
        decoded
    }

    /// The column indices, in output order.
    pub fn indices(&self) -> &[usize] {
        &self.wanted
    }

    /// The columns built from the records, in table order.
    pub fn decoded(&self) -> impl Iterator<Item = usize> + '_ {
        (0..schema::COLUMN_COUNT).filter(|&i| self.decoded[i])
    }

    /// The schema of batches built with this projection.
    pub fn schema(&self) -> SchemaRef {
        // Every constructor keeps indices below COLUMN_COUNT, so no field is left out here.
        let table = schema::cloudtrail_schema();
        let fields: Vec<_> = self
            .wanted
            .iter()
            .filter_map(|&i| table.fields().get(i).cloned())
            .collect();
        Arc::new(Schema::new_with_metadata(fields, table.metadata().clone()))
    }

    fn contains(&self, index: usize) -> bool {
        self.decoded.get(index).copied().unwrap_or(false)
    }
}

/// Outcome of offering a JSON value to a column.
#[derive(PartialEq, Eq)]
enum Offer {
    /// The column took the value.
    Taken,
    /// The value is JSON `null`: the column stays null.
    Null,
    /// The value's JSON type does not fit the column: it goes to `unmapped`.
    Refused,
}

/// One step of the path from a record's root to a field, for `unmapped`.
#[derive(Clone, Copy, Debug)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Deepest nesting of `unmapped` kept as JSON, the path to a field included. A field nested
/// deeper is kept whole as its JSON text (a string), and the record is flagged: serde_json,
/// which reads `unmapped` back, stops at 128 levels.
pub const MAX_UNMAPPED_DEPTH: usize = 64;

/// Fields of one record that the schema does not hold, with where they were found.
#[derive(Default)]
struct Unmapped<'a> {
    enabled: bool,
    path: Vec<Step<'a>>,
    found: Vec<(Vec<Step<'a>>, Step<'a>, serde_json::Value)>,
    /// What was odd about the record (the record is kept).
    problem: Option<RecordProblem>,
}

impl<'a> Unmapped<'a> {
    fn add(&mut self, last: Step<'a>, nodes: &[Node<'_>]) {
        if !self.enabled {
            return;
        }
        let mut text = Vec::new();
        write_value(nodes, &mut text);
        let parsed = if self.path.len() + 1 + depth(nodes) > MAX_UNMAPPED_DEPTH {
            None
        } else {
            serde_json::from_slice(&text).ok()
        };
        let value = parsed.unwrap_or_else(|| {
            self.flag(RecordProblem::TooDeep {
                limit: MAX_UNMAPPED_DEPTH,
            });
            serde_json::Value::String(String::from_utf8_lossy(&text).into_owned())
        });
        self.found.push((self.path.clone(), last, value));
    }

    fn flag(&mut self, problem: RecordProblem) {
        self.problem.get_or_insert(problem);
    }

    /// The record's unmapped fields as one JSON object, nested by path. List positions
    /// become object keys (`{"resources":{"0":{...}}}`). A key the record holds more than once
    /// keeps every value: the second under `KEY#2`, the third under `KEY#3`, and so on (the
    /// record is flagged).
    fn take_json(&mut self) -> Option<String> {
        if self.found.is_empty() {
            return None;
        }
        let mut root = serde_json::Map::new();
        for (parents, last, value) in std::mem::take(&mut self.found) {
            if let Some(key) = insert_at(&mut root, &parents, &last, value) {
                self.flag(RecordProblem::DuplicateKey(key));
            }
        }
        Some(serde_json::Value::Object(root).to_string())
    }
}

/// Puts `value` at `parents` + `last` under `root`, making the objects on the way. Where a
/// key is taken (a duplicate key in the record), the next free `KEY#N` is used and the key
/// is returned.
fn insert_at(
    root: &mut serde_json::Map<String, serde_json::Value>,
    parents: &[Step<'_>],
    last: &Step<'_>,
    value: serde_json::Value,
) -> Option<String> {
    let mut duplicate = None;
    let mut map = root;
    for step in parents {
        let key = step_key(step);
        // The first of KEY, KEY#2, ... that is an object or free.
        let (slot, n) = (1..)
            .map(|n| (duplicate_key(&key, n), n))
            .find(|(k, _)| map.get(k).is_none_or(serde_json::Value::is_object))?;
        if n > 1 {
            duplicate.get_or_insert(key);
        }
        map = map
            .entry(slot)
            .or_insert_with(|| serde_json::Value::Object(Default::default()))
            .as_object_mut()?;
    }
    let key = step_key(last);
    let (slot, n) = (1..)
        .map(|n| (duplicate_key(&key, n), n))
        .find(|(k, _)| !map.contains_key(k))?;
    if n > 1 {
        duplicate.get_or_insert(key);
    }
    map.insert(slot, value);
    duplicate
}

/// `key` for the first value of a key, `key#N` for its N-th.
fn duplicate_key(key: &str, n: usize) -> String {
    if n == 1 {
        key.to_string()
    } else {
        format!("{key}#{n}")
    }
}

fn step_key(step: &Step<'_>) -> String {
    match step {
        Step::Key(k) => (*k).to_string(),
        Step::Index(i) => i.to_string(),
    }
}

enum Column {
    Text(StringBuilder),
    Json(StringBuilder, Vec<u8>),
    /// JSON booleans as Athena's `'true'` / `'false'` strings.
    Bool(StringBuilder),
    Time(TimestampMicrosecondBuilder),
    Struct(StructColumn),
    List(ListColumn),
    /// Not projected: values are accepted and dropped.
    Skipped,
}

struct StructColumn {
    defs: &'static [FieldDef],
    children: Vec<Column>,
    validity: NullBufferBuilder,
    /// Index of the field expected next; CloudTrail writes keys in a stable order.
    hint: usize,
}

struct ListColumn {
    offsets: Vec<i32>,
    validity: NullBufferBuilder,
    item: StructColumn,
    item_validity_len: usize,
}

impl Column {
    fn new(kind: &Kind, capacity: usize) -> Self {
        match kind {
            Kind::Text => Column::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            Kind::Json => Column::Json(
                StringBuilder::with_capacity(capacity, capacity * 64),
                Vec::with_capacity(1024),
            ),
            Kind::Bool => Column::Bool(StringBuilder::with_capacity(capacity, capacity * 5)),
            Kind::Time => Column::Time(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            Kind::Struct(defs) => Column::Struct(StructColumn::new(defs, capacity)),
            Kind::ListOfStruct(defs) => Column::List(ListColumn {
                offsets: {
                    let mut v = Vec::with_capacity(capacity + 1);
                    v.push(0);
                    v
                },
                validity: NullBufferBuilder::new(capacity),
                item: StructColumn::new(defs, capacity),
                item_validity_len: 0,
            }),
        }
    }

    fn offer<'a>(
        &mut self,
        nodes: &[Node<'a>],
        unmapped: &mut Unmapped<'a>,
        step: Step<'a>,
    ) -> Offer {
        if let Node::Static(StaticNode::Null) = nodes[0] {
            return Offer::Null;
        }
        match self {
            Column::Skipped => Offer::Taken,
            Column::Text(b) => match nodes[0] {
                Node::String(s) => {
                    b.append_value(s);
                    Offer::Taken
                }
                _ => Offer::Refused,
            },
            Column::Json(b, scratch) => {
                scratch.clear();
                write_value(nodes, scratch);
                // The writer emits UTF-8 (simd-json validated the strings), so this borrows.
                b.append_value(String::from_utf8_lossy(scratch));
                Offer::Taken
            }
            Column::Bool(b) => match nodes[0] {
                Node::Static(StaticNode::Bool(v)) => {
                    b.append_value(if v { "true" } else { "false" });
                    Offer::Taken
                }
                _ => Offer::Refused,
            },
            Column::Time(b) => match nodes[0] {
                Node::String(s) => match parse_event_time(s) {
                    Some(micros) => {
                        b.append_value(micros);
                        Offer::Taken
                    }
                    None => Offer::Refused,
                },
                _ => Offer::Refused,
            },
            Column::Struct(s) => match nodes[0] {
                Node::Object { .. } => {
                    unmapped.path.push(step);
                    s.append_object(nodes, unmapped);
                    unmapped.path.pop();
                    Offer::Taken
                }
                _ => Offer::Refused,
            },
            Column::List(l) => match nodes[0] {
                Node::Array { len, .. } => {
                    unmapped.path.push(step);
                    let mut i = 1;
                    for index in 0..len {
                        let item = &nodes[i..];
                        let size = value_len(item);
                        let item = &item[..size];
                        match item[0] {
                            Node::Object { .. } => {
                                unmapped.path.push(Step::Index(index));
                                l.item.append_object(item, unmapped);
                                unmapped.path.pop();
                            }
                            _ => {
                                l.item.append_null();
                                unmapped.add(Step::Index(index), item);
                            }
                        }
                        l.item_validity_len += 1;
                        i += size;
                    }
                    unmapped.path.pop();
                    l.offsets.push(l.item_validity_len as i32);
                    l.validity.append_non_null();
                    Offer::Taken
                }
                _ => Offer::Refused,
            },
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Skipped => {}
            Column::Text(b) | Column::Json(b, _) | Column::Bool(b) => b.append_null(),
            Column::Time(b) => b.append_null(),
            Column::Struct(s) => s.append_null(),
            Column::List(l) => {
                l.offsets.push(l.item_validity_len as i32);
                l.validity.append_null();
            }
        }
    }

    fn finish(&mut self, kind: &Kind) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Column::Skipped => {
                return Err(ArrowError::InvalidArgumentError(
                    "a column outside the projection was asked for".into(),
                ))
            }
            Column::Text(b) | Column::Json(b, _) | Column::Bool(b) => Arc::new(b.finish()),
            Column::Time(b) => Arc::new(b.finish()),
            Column::Struct(s) => Arc::new(s.finish()?),
            Column::List(l) => {
                let Kind::ListOfStruct(defs) = kind else {
                    return Err(ArrowError::InvalidArgumentError(
                        "a list column without a list kind".into(),
                    ));
                };
                let items = l.item.finish()?;
                let offsets = std::mem::replace(&mut l.offsets, vec![0]);
                l.item_validity_len = 0;
                let field = Arc::new(Field::new(
                    "item",
                    DataType::Struct(schema::struct_fields(defs)),
                    true,
                ));
                Arc::new(ListArray::try_new(
                    field,
                    OffsetBuffer::new(offsets.into()),
                    Arc::new(items),
                    l.validity.finish(),
                )?)
            }
        })
    }
}

impl StructColumn {
    fn new(defs: &'static [FieldDef], capacity: usize) -> Self {
        Self {
            defs,
            children: defs
                .iter()
                .map(|d| Column::new(&d.kind, capacity))
                .collect(),
            validity: NullBufferBuilder::new(capacity),
            hint: 0,
        }
    }

    #[inline]
    fn find(&mut self, key: &str) -> Option<usize> {
        if let Some(d) = self.defs.get(self.hint) {
            if d.json == key {
                let found = self.hint;
                self.hint += 1;
                return Some(found);
            }
        }
        let found = self.defs.iter().position(|d| d.json == key)?;
        self.hint = found + 1;
        Some(found)
    }

    /// Appends the object at `nodes[0]`; fields are matched to children by JSON key.
    fn append_object<'a>(&mut self, nodes: &[Node<'a>], unmapped: &mut Unmapped<'a>) {
        // The caller checked for an object; anything else is a null, never a panic.
        let Some(&Node::Object { len, .. }) = nodes.first() else {
            self.append_null();
            return;
        };
        debug_assert!(self.defs.len() <= 64);
        let mut filled: u64 = 0;
        self.hint = 0;
        let mut i = 1;
        for _ in 0..len {
            // simd-json's tape holds a string for every key; should it not, the fields read
            // so far stand and the rest are null, as for a record that lacks them.
            let Some(&Node::String(key)) = nodes.get(i) else {
                break;
            };
            let value = &nodes[i + 1..];
            let size = value_len(value);
            let value = &value[..size];
            match self.find(key) {
                Some(c) if filled & (1 << c) == 0 => {
                    match self.children[c].offer(value, unmapped, Step::Key(key)) {
                        Offer::Taken => filled |= 1 << c,
                        Offer::Null => {}
                        Offer::Refused => unmapped.add(Step::Key(key), value),
                    }
                }
                Some(_) => {
                    unmapped.flag(RecordProblem::DuplicateKey(key.to_string()));
                    unmapped.add(Step::Key(key), value);
                }
                None => unmapped.add(Step::Key(key), value),
            }
            i += 1 + size;
        }
        for (c, child) in self.children.iter_mut().enumerate() {
            if filled & (1 << c) == 0 {
                child.append_null();
            }
        }
        self.validity.append_non_null();
    }

    fn append_null(&mut self) {
        for child in &mut self.children {
            child.append_null();
        }
        self.validity.append_null();
    }

    fn finish(&mut self) -> Result<StructArray, ArrowError> {
        let arrays = self
            .children
            .iter_mut()
            .zip(self.defs)
            .map(|(c, d)| c.finish(&d.kind))
            .collect::<Result<Vec<_>, _>>()?;
        StructArray::try_new(
            schema::struct_fields(self.defs),
            arrays,
            self.validity.finish(),
        )
    }
}

/// A batch whose columns did not assemble: a fault of trailhound's own, never of the input.
/// Its records are dropped and reported against the objects they came from.
#[derive(Debug, thiserror::Error)]
#[error("assembling a batch of {records} records failed ({detail}); they were dropped (please report this)")]
pub struct BatchError {
    pub detail: String,
    /// Records dropped with the batch.
    pub records: usize,
    /// Keys of the objects they came from.
    pub sources: Vec<String>,
}

/// Why a record was not added to the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    #[error("the record is not a JSON object")]
    NotAnObject,
    #[error("the record has no `{0}` field")]
    Missing(&'static str),
    #[error("`eventTime` is not an ISO-8601 UTC time: {0:?}")]
    BadEventTime(String),
    #[error("`eventID` is not a string")]
    BadEventId,
    #[error("`timestamp` is not an ISO-8601 UTC time: {0:?}")]
    BadTimestamp(String),
    #[error("the record is not valid JSON: {0}")]
    InvalidJson(String),
    /// Its parse alone would need more memory than its object's allowance leaves
    /// (`--memory-budget`).
    #[error("reading the record needs {needed} bytes of memory; the memory budget leaves {room}")]
    OverBudget { needed: usize, room: usize },
    /// Kept: the field is held whole as its JSON text in `unmapped`.
    #[error("a field outside the schema nests deeper than {limit} levels; it is kept as text")]
    TooDeep { limit: usize },
    /// Kept: the first value is in its column, the others in `unmapped` as `KEY#2`, ...
    #[error("the key `{0}` appears more than once in one object; every value is kept")]
    DuplicateKey(String),
}

impl RecordProblem {
    /// True for problems of a record that is kept in the table (flagged, not skipped).
    pub fn keeps_record(&self) -> bool {
        matches!(
            self,
            RecordProblem::TooDeep { .. } | RecordProblem::DuplicateKey(_)
        )
    }
}

/// Builds `cloudtrail` record batches, one record at a time.
pub struct RecordsBuilder {
    projection: Projection,
    schema: SchemaRef,
    top: StructColumn,
    unmapped_column: Option<StringBuilder>,
    rows: usize,
    /// The objects the rows came from: each key with the row count once its rows were in.
    sources: Vec<(String, usize)>,
}

impl RecordsBuilder {
    /// A builder for the given columns; `capacity` is a hint of the number of records.
    pub fn new(projection: Projection, capacity: usize) -> Self {
        let mut top = StructColumn::new(RECORD_FIELDS, capacity);
        for (i, child) in top.children.iter_mut().enumerate() {
            if !projection.contains(i) {
                *child = Column::Skipped;
            }
        }
        let unmapped_column = projection
            .contains(schema::UNMAPPED_INDEX)
            .then(|| StringBuilder::with_capacity(capacity, 0));
        Self {
            schema: projection.schema(),
            projection,
            top,
            unmapped_column,
            rows: 0,
            sources: Vec::new(),
        }
    }

    /// Number of records appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no record has been appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends the record at `nodes[0]` (the whole record's tape), or says why it cannot.
    /// A refused record leaves the builder unchanged. A record that is appended but odd
    /// (see [`RecordProblem::keeps_record`]) comes back with what was odd.
    pub fn append(&mut self, nodes: &[Node<'_>]) -> Result<Option<RecordProblem>, RecordProblem> {
        check_required(nodes)?;
        let mut unmapped = Unmapped {
            enabled: self.unmapped_column.is_some(),
            ..Default::default()
        };
        self.top.append_object(nodes, &mut unmapped);
        if let Some(col) = &mut self.unmapped_column {
            match unmapped.take_json() {
                Some(text) => col.append_value(text),
                None => col.append_null(),
            }
        }
        self.rows += 1;
        Ok(unmapped.problem)
    }

    /// Notes that the records appended since the last call came from the object `source_key`.
    pub fn end_object(&mut self, source_key: &str) {
        let done = self.sources.last().map_or(0, |(_, end)| *end);
        if self.rows > done {
            self.sources.push((source_key.to_string(), self.rows));
        }
    }

    /// Takes the records appended so far as a batch, tagging those not yet assigned to an
    /// object with `source_key`.
    pub fn finish(&mut self, source_key: &str) -> Result<RecordBatch, BatchError> {
        self.end_object(source_key);
        self.finish_objects()
    }

    /// Takes the records appended so far as a batch, each tagged with the key of the object
    /// it came from (as told by [`end_object`](Self::end_object)). Should the columns not
    /// assemble (a fault of trailhound's own: every record appends to every column), the
    /// records are dropped, the builder starts empty, and the error names their objects.
    pub fn finish_objects(&mut self) -> Result<RecordBatch, BatchError> {
        self.end_object("");
        let rows = std::mem::take(&mut self.rows);
        let sources = std::mem::take(&mut self.sources);
        self.assemble(rows, &sources).map_err(|e| {
            *self = RecordsBuilder::new(self.projection.clone(), 256);
            BatchError {
                detail: e.to_string(),
                records: rows,
                sources: sources.into_iter().map(|(key, _)| key).collect(),
            }
        })
    }

    fn assemble(
        &mut self,
        rows: usize,
        sources: &[(String, usize)],
    ) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.indices().len());
        for (at, &index) in self.projection.indices().iter().enumerate() {
            let array: ArrayRef = if !self.projection.contains(index) {
                new_null_array(self.schema.field(at).data_type(), rows)
            } else if index < RECORD_FIELDS.len() {
                self.top.children[index].finish(&RECORD_FIELDS[index].kind)?
            } else if index == schema::UNMAPPED_INDEX {
                let Some(unmapped) = self.unmapped_column.as_mut() else {
                    return Err(ArrowError::InvalidArgumentError(
                        "the unmapped column was not built".into(),
                    ));
                };
                Arc::new(unmapped.finish())
            } else {
                let mut keys = Vec::with_capacity(rows);
                let mut start = 0;
                for (i, (_, end)) in sources.iter().enumerate() {
                    keys.extend(std::iter::repeat_n(i as i32, end - start));
                    start = *end;
                }
                let values = StringArray::from_iter_values(sources.iter().map(|(k, _)| k));
                Arc::new(DictionaryArray::try_new(
                    Int32Array::from(keys),
                    Arc::new(values),
                )?)
            };
            columns.push(array);
        }
        // Children of the top struct were finished column by column; reset its own state.
        self.top.validity = NullBufferBuilder::new(0);
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }

    /// The schema of the batches this builder makes.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// The record's `eventSource`, when it has a string one.
pub fn event_source<'a>(nodes: &[Node<'a>]) -> Option<&'a str> {
    let Node::Object { len, .. } = nodes[0] else {
        return None;
    };
    let mut i = 1;
    for _ in 0..len {
        let value = &nodes[i + 1..];
        if let (Node::String("eventSource"), Node::String(source)) = (nodes[i], value[0]) {
            return Some(source);
        }
        i += 1 + value_len(value);
    }
    None
}

/// A record must be an object with a usable `eventTime` and `eventID`: without them it can be
/// neither placed in time nor told apart from a duplicate.
fn check_required(nodes: &[Node<'_>]) -> Result<(), RecordProblem> {
    let Node::Object { len, .. } = nodes[0] else {
        return Err(RecordProblem::NotAnObject);
    };
    let mut time = None;
    let mut id = None;
    let mut i = 1;
    for _ in 0..len {
        let value = &nodes[i + 1..];
        match nodes[i] {
            Node::String("eventTime") => time = Some(value),
            Node::String("eventID") => id = Some(value[0]),
            _ => {}
        }
        i += 1 + value_len(value);
    }
    match time.map(|value| (value[0], value)) {
        None | Some((Node::Static(StaticNode::Null), _)) => {
            return Err(RecordProblem::Missing("eventTime"))
        }
        Some((Node::String(s), _)) if parse_event_time(s).is_some() => {}
        Some((Node::String(s), _)) => return Err(RecordProblem::BadEventTime(preview(s))),
        Some((_, value)) => {
            // The whole value (an object or array is more than its first node).
            let mut text = Vec::new();
            write_value(&value[..value_len(value).min(value.len())], &mut text);
            return Err(RecordProblem::BadEventTime(preview(
                &String::from_utf8_lossy(&text),
            )));
        }
    }
    match id {
        None | Some(Node::Static(StaticNode::Null)) => Err(RecordProblem::Missing("eventID")),
        Some(Node::String(_)) => Ok(()),
        Some(_) => Err(RecordProblem::BadEventId),
    }
}

/// At most [`PREVIEW_CHARS`] characters of `text`, for a problem report: the value is the
/// attacker's to make as long as they like.
fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Characters of a bad value a problem report shows.
const PREVIEW_CHARS: usize = 120;

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;

    fn build(
        records: &[&str],
        projection: Projection,
    ) -> (
        RecordBatch,
        Vec<Result<Option<RecordProblem>, RecordProblem>>,
    ) {
        let mut builder = RecordsBuilder::new(projection, 4);
        let mut outcomes = Vec::new();
        for r in records {
            let mut bytes = r.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut bytes).unwrap();
            outcomes.push(builder.append(&tape.0));
        }
        (builder.finish("a/key.json.gz").unwrap(), outcomes)
    }

    #[test]
    fn columns_not_decoded_are_kept_all_null() {
        let table = schema::cloudtrail_schema();
        let name = table.index_of("eventname").unwrap();
        let agent = table.index_of("useragent").unwrap();
        let mut builder =
            RecordsBuilder::new(Projection::decoding([name, schema::SOURCE_KEY_INDEX]), 4);
        let mut text = br#"{"eventTime":"2026-01-02T03:04:05Z","eventID":"e1","eventName":"GetObject","userAgent":"aws-cli","brandNew":{"a":1}}"#.to_vec();
        let tape = simd_json::to_tape(&mut text).unwrap();
        builder.append(&tape.0).unwrap();
        builder.end_object("k1");
        let batch = builder.finish_objects().unwrap();
        assert_eq!(batch.schema(), table);
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.column(name).as_string::<i32>().value(0), "GetObject");
        assert_eq!(batch.column(agent).null_count(), 1);
        assert_eq!(batch.column(schema::UNMAPPED_INDEX).null_count(), 1);
        let keys = batch.column(schema::SOURCE_KEY_INDEX);
        assert_eq!(keys.null_count(), 0);
    }

    #[test]
    fn a_batch_that_does_not_assemble_is_an_error_naming_its_objects() {
        let mut builder = RecordsBuilder::new(Projection::all(), 4);
        let append = |builder: &mut RecordsBuilder, id: &str| {
            let mut bytes =
                format!(r#"{{"eventTime":"2024-01-01T00:00:00Z","eventID":"{id}"}}"#).into_bytes();
            let tape = simd_json::to_tape(&mut bytes).unwrap();
            builder.append(&tape.0).unwrap();
        };
        append(&mut builder, "a");
        builder.end_object("first.json.gz");
        append(&mut builder, "b");
        builder.end_object("second.json.gz");
        // A column one value longer than the others: the fault the error stands for.
        builder.top.children[0].append_null();
        let err = builder.finish_objects().unwrap_err();
        assert_eq!(err.records, 2);
        assert_eq!(err.sources, ["first.json.gz", "second.json.gz"]);
        assert!(err.to_string().contains("2 records"), "{err}");
        // The builder starts again whole: the next records make a batch.
        append(&mut builder, "c");
        let batch = builder.finish("third.json.gz").unwrap();
        assert_eq!(batch.num_rows(), 1);
    }

    #[test]
    fn missing_or_bad_required_fields_are_refused() {
        let (batch, outcomes) = build(
            &[
                r#"{"eventID":"1"}"#,
                r#"{"eventTime":"2024-01-01T00:00:00Z"}"#,
                r#"{"eventTime":"yesterday","eventID":"1"}"#,
                r#"[1,2]"#,
                r#"{"eventTime":"2024-01-01T00:00:00Z","eventID":"ok"}"#,
            ],
            Projection::all(),
        );
        assert_eq!(
            outcomes,
            vec![
                Err(RecordProblem::Missing("eventTime")),
                Err(RecordProblem::Missing("eventID")),
                Err(RecordProblem::BadEventTime("yesterday".into())),
                Err(RecordProblem::NotAnObject),
                Ok(None),
            ]
        );
        assert_eq!(batch.num_rows(), 1);
    }

    #[test]
    fn unknown_and_mistyped_fields_go_to_unmapped() {
        let (batch, _) = build(
            &[
                r#"{"eventTime":"2024-01-01T00:00:00Z","eventID":"e","readOnly":"yes",
                 "newTopLevel":{"x":1},"userIdentity":{"type":"IAMUser","futureField":[1]},
                 "resources":[{"ARN":"arn:a","extra":true},"odd"]}"#,
            ],
            Projection::all(),
        );
        let schema = batch.schema();
        let col = batch
            .column(schema.index_of("unmapped").unwrap())
            .as_string::<i32>();
        let unmapped: serde_json::Value = serde_json::from_str(col.value(0)).unwrap();
        assert_eq!(
            unmapped,
            serde_json::json!({
                "readOnly": "yes",
                "newTopLevel": {"x": 1},
                "userIdentity": {"futureField": [1]},
                "resources": {"0": {"extra": true}, "1": "odd"}
            })
        );
        let readonly = batch.column(schema.index_of("readonly").unwrap());
        assert!(readonly.is_null(0));
    }

    #[test]
    fn projection_builds_only_wanted_columns() {
        let name = schema::cloudtrail_schema().index_of("eventname").unwrap();
        let (batch, _) = build(
            &[r#"{"eventTime":"2024-01-01T00:00:00Z","eventID":"e","eventName":"GetObject"}"#],
            Projection::columns(&[name, schema::SOURCE_KEY_INDEX]),
        );
        assert_eq!(batch.num_columns(), 2);
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "GetObject");
        assert_eq!(batch.schema().field(1).name(), "sourcekey");
    }
}
