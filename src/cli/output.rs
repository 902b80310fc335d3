//! Printing query results: a table for people, CSV and JSON Lines for programs.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use clap::ValueEnum;
use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::json::LineDelimitedWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An aligned table (the default on a terminal).
    Table,
    /// CSV with a header; nested values as JSON text (the default when piped).
    Csv,
    /// JSON Lines: one object per row.
    Json,
}

impl OutputFormat {
    /// The format to use when none is asked for: a table for people, CSV for pipes.
    pub fn default_for_stdout() -> Self {
        if super::stdout_is_terminal() {
            OutputFormat::Table
        } else {
            OutputFormat::Csv
        }
    }
}

/// Writes `batches` to `out`. A table shows at most `max_rows` rows and says how many there were.
pub fn write_results(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: OutputFormat,
    max_rows: usize,
) -> anyhow::Result<()> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    match format {
        OutputFormat::Table => {
            let mut shown = Vec::new();
            let mut left = max_rows;
            for b in batches {
                if left == 0 {
                    break;
                }
                let take = b.num_rows().min(left);
                shown.push(b.slice(0, take));
                left -= take;
            }
            if shown.is_empty() {
                shown.push(RecordBatch::new_empty(schema.clone()));
            }
            writeln!(out, "{}", pretty_format_batches(&shown)?)?;
            if rows > max_rows {
                writeln!(
                    out,
                    "{rows} rows (showing the first {max_rows}; see --max-rows, or --format csv|json for all)"
                )?;
            } else {
                writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
            }
        }
        OutputFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.fZ".to_string())
                .build(&mut *out);
            let flat_schema = flat_schema(schema);
            if batches.is_empty() {
                writer.write(&RecordBatch::new_empty(flat_schema.clone()))?;
            }
            for b in batches {
                writer.write(&flatten(b, &flat_schema)?)?;
            }
        }
        OutputFormat::Json => {
            let mut writer = LineDelimitedWriter::new(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
    }
    out.flush().context("writing results")?;
    Ok(())
}

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Struct(_)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::Map(_, _)
            | DataType::Dictionary(_, _)
            | DataType::FixedSizeList(_, _)
    )
}

fn flat_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                if is_nested(f.data_type()) {
                    Field::new(f.name(), DataType::Utf8, true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
    ))
}

/// Nested columns become JSON text (dictionaries their values), for CSV.
fn flatten(batch: &RecordBatch, flat: &SchemaRef) -> anyhow::Result<RecordBatch> {
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (i, column) in batch.columns().iter().enumerate() {
        let field = batch.schema_ref().field(i).clone();
        columns.push(match field.data_type() {
            DataType::Dictionary(_, _) => cast(column, &DataType::Utf8)?,
            t if is_nested(t) => json_text(&field, column)?,
            _ => column.clone(),
        });
    }
    Ok(RecordBatch::try_new(flat.clone(), columns)?)
}

/// Each value of a nested column as JSON text (NULL stays NULL).
fn json_text(field: &Field, column: &ArrayRef) -> anyhow::Result<ArrayRef> {
    let name = "v";
    let one = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            name,
            field.data_type().clone(),
            true,
        )])),
        vec![column.clone()],
    )?;
    let mut buf = Vec::new();
    {
        let mut writer = LineDelimitedWriter::new(&mut buf);
        writer.write(&one)?;
        writer.finish()?;
    }
    let text = String::from_utf8(buf)?;
    let prefix = "{\"v\":";
    let values: Vec<Option<&str>> = text
        .lines()
        .enumerate()
        .map(|(row, line)| {
            if column.is_null(row) {
                None
            } else {
                line.strip_prefix(prefix).and_then(|l| l.strip_suffix('}'))
            }
        })
        .collect();
    Ok(Arc::new(StringArray::from(values)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StructArray};

    fn sample() -> (SchemaRef, RecordBatch) {
        let inner = StructArray::from(vec![(
            Arc::new(Field::new("arn", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![Some("arn:x"), None])) as ArrayRef,
        )]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("who", inner.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(inner)],
        )
        .unwrap();
        (schema, batch)
    }

    #[test]
    fn csv_writes_nested_values_as_json() {
        let (schema, batch) = sample();
        let mut out = Vec::new();
        write_results(&mut out, &schema, &[batch], OutputFormat::Csv, 10).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "n,who\n1,\"{\"\"arn\"\":\"\"arn:x\"\"}\"\n2,{}\n");
    }

    #[test]
    fn json_is_one_object_per_row_and_table_counts_rows() {
        let (schema, batch) = sample();
        let mut out = Vec::new();
        write_results(
            &mut out,
            &schema,
            std::slice::from_ref(&batch),
            OutputFormat::Json,
            10,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            rows[0],
            serde_json::json!({"n": 1, "who": {"arn": "arn:x"}})
        );
        assert_eq!(rows.len(), 2);
        let mut out = Vec::new();
        write_results(&mut out, &schema, &[batch], OutputFormat::Table, 1).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("arn:x"));
        assert!(text.contains("2 rows (showing the first 1"));
    }
}
