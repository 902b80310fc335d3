//! From a row of the `cloudtrail` table back to the record's JSON.
//!
//! Proves that decoding loses nothing (modelled columns plus `unmapped` rebuild the record),
//! and gives tools a way to show a row as the CloudTrail record it came from.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use super::schema::{FieldDef, Kind, RECORD_FIELDS, UNMAPPED_COLUMN};
use super::time::{format_event_time, parse_event_time};

/// The CloudTrail record behind `row` of a batch of the table. Columns the batch lacks are
/// left out of the record; with every column (and `unmapped`) the record is complete.
pub fn record_json(batch: &RecordBatch, row: usize) -> Value {
    record_json_with(batch, row, |_| true, true)
}

/// The part of the record behind `row` made of the top-level fields `keep` accepts (by
/// column name), and of `unmapped` when `with_unmapped` is set. Parsing free-form JSON
/// columns is the costly part of rebuilding a record; this skips the ones not wanted.
pub fn record_json_with(
    batch: &RecordBatch,
    row: usize,
    keep: impl Fn(&str) -> bool,
    with_unmapped: bool,
) -> Value {
    let mut record = Map::new();
    for def in RECORD_FIELDS {
        if !keep(def.column) {
            continue;
        }
        let Some(column) = batch.column_by_name(def.column) else {
            continue;
        };
        if let Some(value) = value_at(column, row, &def.kind) {
            record.insert(def.json.to_string(), value);
        }
    }
    let mut record = Value::Object(record);
    if !with_unmapped {
        return record;
    }
    if let Some(column) = batch.column_by_name(UNMAPPED_COLUMN) {
        let column = column.as_string::<i32>();
        // The decoder writes JSON here; text that does not parse back (nesting deeper than
        // serde_json reads, say) is left out rather than trusted.
        if column.is_valid(row) {
            if let Ok(unmapped) = serde_json::from_str::<Value>(column.value(row)) {
                merge(&mut record, unmapped);
            }
        }
    }
    record
}

fn value_at(column: &ArrayRef, row: usize, kind: &Kind) -> Option<Value> {
    if column.is_null(row) {
        return None;
    }
    Some(match kind {
        Kind::Text => Value::String(column.as_string::<i32>().value(row).to_string()),
        // JSON text that does not parse back (nested deeper than serde_json reads, say) is
        // given as the text itself.
        Kind::Json => {
            let text = column.as_string::<i32>().value(row);
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
        }
        Kind::Bool => Value::Bool(column.as_string::<i32>().value(row) == "true"),
        Kind::Time => Value::String(format_event_time(
            column.as_primitive::<TimestampMicrosecondType>().value(row),
        )),
        Kind::Struct(defs) => struct_at(column, row, defs),
        Kind::ListOfStruct(defs) => {
            let list = column.as_list::<i32>();
            let items = list.value(row);
            Value::Array(
                (0..items.len())
                    .map(|i| {
                        if items.is_null(i) {
                            Value::Null
                        } else {
                            struct_at(&items, i, defs)
                        }
                    })
                    .collect(),
            )
        }
    })
}

fn struct_at(column: &ArrayRef, row: usize, defs: &[FieldDef]) -> Value {
    let s = column.as_struct();
    let mut map = Map::new();
    for (def, child) in defs.iter().zip(s.columns()) {
        if let Some(v) = value_at(child, row, &def.kind) {
            map.insert(def.json.to_string(), v);
        }
    }
    Value::Object(map)
}

/// Puts `unmapped` back into `record`; object keys that are numbers address list items.
fn merge(target: &mut Value, unmapped: Value) {
    let Value::Object(fields) = unmapped else {
        *target = unmapped;
        return;
    };
    for (key, value) in fields {
        match target {
            Value::Array(items) => {
                let Ok(index) = key.parse::<usize>() else {
                    continue; // not a list position: nothing it could address
                };
                if index < items.len() && items[index].is_object() && value.is_object() {
                    merge(&mut items[index], value);
                } else if index < items.len() {
                    items[index] = value;
                }
            }
            Value::Object(map) => match map.get_mut(&key) {
                Some(existing)
                    if value.is_object() && (existing.is_object() || existing.is_array()) =>
                {
                    merge(existing, value)
                }
                // A field the columns hold and `unmapped` holds too (a key the record had
                // twice): both are kept, the other under the next free `KEY#N`.
                Some(existing) if !existing.is_null() => {
                    let free = (2..)
                        .map(|n| format!("{key}#{n}"))
                        .find(|k| !map.contains_key(k));
                    if let Some(free) = free {
                        map.insert(free, value);
                    }
                }
                _ => {
                    map.insert(key, value);
                }
            },
            _ => *target = Value::Object(Map::from_iter([(key, value)])),
        }
    }
}

/// The form of a record that decoding preserves: JSON `null` in a modelled field is the same
/// as the field being absent, and `eventTime` is written in CloudTrail's canonical form.
pub fn normalize(record: &Value) -> Value {
    let mut out = record.clone();
    strip_nulls(&mut out, RECORD_FIELDS);
    if let Some(Value::String(t)) = out.get("eventTime") {
        if let Some(micros) = parse_event_time(t) {
            out["eventTime"] = Value::String(format_event_time(micros));
        }
    }
    out
}

fn strip_nulls(value: &mut Value, defs: &[FieldDef]) {
    let Value::Object(map) = value else { return };
    for def in defs {
        let remove = matches!(map.get(def.json), Some(Value::Null));
        if remove {
            map.remove(def.json);
            continue;
        }
        match (&def.kind, map.get_mut(def.json)) {
            (Kind::Struct(inner), Some(v)) => strip_nulls(v, inner),
            (Kind::ListOfStruct(inner), Some(Value::Array(items))) => {
                for item in items {
                    strip_nulls(item, inner);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn text_that_is_not_json_does_not_stop_a_record_being_rebuilt() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let schema = Arc::new(Schema::new(vec![
            Field::new("requestparameters", DataType::Utf8, true),
            Field::new(UNMAPPED_COLUMN, DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![deep.as_str()])),
                Arc::new(StringArray::from(vec!["{not json"])),
            ],
        )
        .unwrap();
        let record = record_json(&batch, 0);
        assert_eq!(record["requestParameters"], Value::String(deep.clone()));
        let mut list = serde_json::json!([1, 2]);
        merge(&mut list, serde_json::json!({"x": 3, "1": 4}));
        assert_eq!(list, serde_json::json!([1, 4]));
    }
}
