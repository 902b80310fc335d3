//! The `bedrock_invocations` table: Bedrock model invocation logs, one row per invocation.
//!
//! Bedrock writes these logs (when model invocation logging is on) under
//! `AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/`, gzipped JSON
//! Lines, one record per invocation with `schemaType: ModelInvocationLog`. The table keeps
//! who invoked which model how, the token counts and what the guardrail did; prompt and
//! completion bodies are not kept (they are large and are the data the logs protect).
//!
//! | column | type | from |
//! |---|---|---|
//! | `timestamp` | `Timestamp(µs, UTC)` | `timestamp` |
//! | `accountid`, `region`, `requestid` | text | `accountId`, `region`, `requestId` |
//! | `identity` | struct `{arn}` | `identity` |
//! | `operation`, `modelid` | text | `operation` (`InvokeModel`, `Converse`, …), `modelId` |
//! | `inputtokencount`, `outputtokencount` | `Int64` | `input.inputTokenCount`, `output.outputTokenCount` |
//! | `guardrailaction` | text | `INTERVENED` when a guardrail stepped in, `NONE` when one ran and let it pass, NULL when none reported |
//! | `stopreason` | text | the model's stop reason (`stopReason`, `stop_reason`, `completionReason`) |
//! | `errorcode` | text | `errorCode`, for failed invocations |
//! | `schemaversion`, `sourcekey` | text | `schemaVersion`; the object the record came from |

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, StringArray, StructArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

use super::time::parse_event_time;
use super::{inflate, is_gzip, DecodedObject, ObjectError, Problem, RecordProblem};

/// The table's name in SQL.
pub const TABLE_NAME: &str = "bedrock_invocations";

/// The schema of the `bedrock_invocations` table.
pub fn bedrock_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let count = |name: &str| Field::new(name, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("accountid"),
        text("region"),
        Field::new("requestid", DataType::Utf8, false),
        Field::new("identity", DataType::Struct(identity_fields()), true),
        text("operation"),
        text("modelid"),
        count("inputtokencount"),
        count("outputtokencount"),
        text("guardrailaction"),
        text("stopreason"),
        text("errorcode"),
        text("schemaversion"),
        text("sourcekey"),
    ]))
}

fn identity_fields() -> Fields {
    Fields::from(vec![Field::new("arn", DataType::Utf8, true)])
}

/// True when a JSON record is a Bedrock model invocation log record.
pub fn is_invocation_record(record: &Value) -> bool {
    record.get("schemaType").and_then(Value::as_str) == Some("ModelInvocationLog")
}

/// One invocation, as the table holds it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Invocation {
    pub timestamp: i64,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub request_id: String,
    pub identity_arn: Option<String>,
    pub operation: Option<String>,
    pub model_id: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub guardrail_action: Option<String>,
    pub stop_reason: Option<String>,
    pub error_code: Option<String>,
    pub schema_version: Option<String>,
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The output body, which Bedrock logs as JSON (`outputBodyJson`) or, for streams, as a list
/// of chunks; the last chunk carries the stop reason and guardrail verdict.
fn output_bodies(record: &Value) -> Vec<&Value> {
    let output = &record["output"];
    match output.get("outputBodyJson") {
        Some(Value::Array(chunks)) => chunks.iter().collect(),
        Some(body) => vec![body],
        None => Vec::new(),
    }
}

/// What a guardrail did, from the output body: Bedrock's `amazon-bedrock-guardrailAction`
/// for `InvokeModel`, the stop reason `guardrail_intervened` for `Converse`.
fn guardrail_action(bodies: &[&Value], stop_reason: Option<&str>) -> Option<String> {
    if stop_reason == Some("guardrail_intervened") {
        return Some("INTERVENED".into());
    }
    let mut found = None;
    for body in bodies {
        if let Some(action) = body
            .get("amazon-bedrock-guardrailAction")
            .and_then(Value::as_str)
        {
            if action.eq_ignore_ascii_case("INTERVENED") {
                return Some("INTERVENED".into());
            }
            found = Some(action.to_ascii_uppercase());
        }
        if body
            .pointer("/amazon-bedrock-trace/guardrail")
            .is_some_and(intervened)
        {
            return Some("INTERVENED".into());
        }
    }
    found
}

/// True when a guardrail trace holds `"action": "INTERVENED"` at any depth.
fn intervened(trace: &Value) -> bool {
    match trace {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| (k == "action" && v == "INTERVENED") || intervened(v)),
        Value::Array(items) => items.iter().any(intervened),
        _ => false,
    }
}

fn stop_reason(bodies: &[&Value]) -> Option<String> {
    bodies.iter().rev().find_map(|b| {
        ["stopReason", "stop_reason", "completionReason"]
            .iter()
            .find_map(|k| text(b.get(*k)))
            .or_else(|| text(b.pointer("/results/0/completionReason")))
            .or_else(|| text(b.pointer("/choices/0/finish_reason")))
    })
}

/// Reads one record. The missing required field is the error.
pub fn invocation(record: &Value) -> Result<Invocation, RecordProblem> {
    if !record.is_object() {
        return Err(RecordProblem::NotAnObject);
    }
    let time = record
        .get("timestamp")
        .ok_or(RecordProblem::Missing("timestamp"))?;
    let timestamp = time
        .as_str()
        .and_then(parse_event_time)
        .ok_or_else(|| RecordProblem::BadTimestamp(time.to_string()))?;
    let request_id = text(record.get("requestId")).ok_or(RecordProblem::Missing("requestId"))?;
    let bodies = output_bodies(record);
    let stop = stop_reason(&bodies);
    let count = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    };
    Ok(Invocation {
        timestamp,
        account_id: text(record.get("accountId")),
        region: text(record.get("region")),
        request_id,
        identity_arn: text(record["identity"].get("arn")),
        operation: text(record.get("operation")),
        model_id: text(record.get("modelId")),
        input_tokens: record["input"].get("inputTokenCount").and_then(count),
        output_tokens: record["output"].get("outputTokenCount").and_then(count),
        guardrail_action: guardrail_action(&bodies, stop.as_deref()),
        stop_reason: stop,
        error_code: text(record.get("errorCode")),
        schema_version: text(record.get("schemaVersion")),
    })
}

/// An invocation told as CloudTrail tells an API call, for findings: the caller's identity
/// (its type and name read from the ARN), account, region, operation and model, with the
/// invocation's own fields (`values`, by column name) under `additionalEventData`.
pub fn as_api_call(
    request_id: &str,
    time: i64,
    arn: Option<&str>,
    values: &std::collections::BTreeMap<String, String>,
) -> Value {
    let get = |k: &str| values.get(k).cloned();
    let account = get("accountid");
    let mut identity = serde_json::Map::new();
    if let Some(arn) = arn {
        let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
        let mut parts = resource.split('/');
        let (kind, name) = (parts.next().unwrap_or_default(), parts.next());
        let user_type = match kind {
            "assumed-role" => "AssumedRole",
            "user" => "IAMUser",
            "root" => "Root",
            "federated-user" => "FederatedUser",
            _ => "Unknown",
        };
        identity.insert("type".into(), user_type.into());
        identity.insert("arn".into(), arn.into());
        if let (Some(name), "assumed-role") = (name, kind) {
            identity.insert(
                "sessionContext".into(),
                serde_json::json!({"sessionIssuer": {"type": "Role", "userName": name}}),
            );
        } else if let Some(name) = name {
            identity.insert("userName".into(), name.into());
        }
    }
    if let Some(a) = &account {
        identity.insert("accountId".into(), a.clone().into());
    }
    let mut own = serde_json::Map::new();
    for (k, v) in values {
        if !matches!(k.as_str(), "timestamp" | "requestid" | "identity") {
            own.insert(k.clone(), v.clone().into());
        }
    }
    serde_json::json!({
        "eventTime": super::time::format_event_time(time),
        "eventID": request_id,
        "eventSource": "bedrock.amazonaws.com",
        "eventName": get("operation"),
        "eventType": "ModelInvocationLog",
        "awsRegion": get("region"),
        "recipientAccountId": account,
        "userIdentity": identity,
        "requestParameters": {"modelId": get("modelid")},
        "errorCode": get("errorcode"),
        "additionalEventData": own,
    })
}

/// Builds a `bedrock_invocations` batch. Every column is one value per row, so an error here
/// is a fault of trailhound's own.
pub fn batch_of(
    rows: &[Invocation],
    source_key: &str,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let text = |f: fn(&Invocation) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let count = |f: fn(&Invocation) -> Option<i64>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int64Array>())
    };
    let times = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.timestamp))
        .with_timezone("UTC");
    let identity = StructArray::try_new(
        identity_fields(),
        vec![text(|r| r.identity_arn.as_deref())],
        None,
    )?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(times),
        text(|r| r.account_id.as_deref()),
        text(|r| r.region.as_deref()),
        text(|r| Some(r.request_id.as_str())),
        Arc::new(identity),
        text(|r| r.operation.as_deref()),
        text(|r| r.model_id.as_deref()),
        count(|r| r.input_tokens),
        count(|r| r.output_tokens),
        text(|r| r.guardrail_action.as_deref()),
        text(|r| r.stop_reason.as_deref()),
        text(|r| r.error_code.as_deref()),
        text(|r| r.schema_version.as_deref()),
        Arc::new(StringArray::from(vec![source_key; rows.len()])),
    ];
    RecordBatch::try_new(bedrock_schema(), columns)
}

/// Decodes one Bedrock invocation log object (gzip or plain JSON Lines; a JSON array or a
/// `{"Records": [...]}` body is accepted too). Bad lines are skipped and reported by line;
/// a corrupt or truncated gzip stream yields the lines before the fault.
pub fn decode(source_key: &str, stored: &[u8], max_object_bytes: usize) -> DecodedObject {
    let mut out = DecodedObject {
        stored_bytes: stored.len(),
        ..Default::default()
    };
    let mut inflated = Vec::new();
    let body: &[u8] = if is_gzip(stored) {
        if let Err(e) = inflate(stored, &mut inflated, max_object_bytes) {
            out.note(Problem::Object(ObjectError::Inflate(e)));
        }
        &inflated
    } else if stored.len() > max_object_bytes {
        out.note(Problem::Object(ObjectError::TooLarge {
            limit: max_object_bytes,
        }));
        return out;
    } else {
        stored
    };
    out.body_bytes = body.len();
    let mut rows = Vec::new();
    let mut take =
        |out: &mut DecodedObject, index: usize, line: Option<usize>, v: &Value| match invocation(v)
        {
            Ok(r) => rows.push(r),
            Err(problem) => out.record_problem(index, line, problem),
        };
    let trimmed = body.trim_ascii_start();
    let whole: Option<Vec<Value>> = match trimmed.first() {
        Some(b'[') => serde_json::from_slice::<Vec<Value>>(body).ok(),
        Some(b'{') if trimmed.starts_with(b"{\"Records\"") => {
            serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                v.get("Records")
                    .and_then(Value::as_array)
                    .map(|a| a.to_vec())
            })
        }
        _ => None,
    };
    match whole {
        Some(records) => {
            for (i, v) in records.iter().enumerate() {
                take(&mut out, i, None, v);
            }
        }
        None => {
            let mut index = 0;
            for (n, line) in body.split(|&b| b == b'\n').enumerate() {
                if line.trim_ascii().is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Value>(line) {
                    Ok(v) => take(&mut out, index, Some(n + 1), &v),
                    Err(e) => out.record_problem(
                        index,
                        Some(n + 1),
                        RecordProblem::InvalidJson(e.to_string()),
                    ),
                }
                index += 1;
            }
        }
    }
    if !rows.is_empty() {
        match batch_of(&rows, source_key) {
            Ok(batch) => {
                out.records = rows.len();
                out.batch = Some(batch);
            }
            Err(e) => out.note(Problem::Object(ObjectError::Internal {
                detail: e.to_string(),
                dropped: rows.len(),
            })),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use serde_json::json;

    fn record(request: &str, output_body: Value) -> Value {
        json!({
            "schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
            "timestamp": "2024-05-01T10:00:00Z", "accountId": "111122223333",
            "identity": {"arn": "arn:aws:sts::111122223333:assumed-role/App/i-1"},
            "region": "us-east-1", "requestId": request, "operation": "Converse",
            "modelId": "anthropic.claude-3-haiku-20240307-v1:0",
            "input": {"inputContentType": "application/json", "inputBodyJson": {"messages": []}, "inputTokenCount": 120},
            "output": {"outputContentType": "application/json", "outputBodyJson": output_body, "outputTokenCount": 30}
        })
    }

    #[test]
    fn reads_identity_model_tokens_and_guardrail() {
        let passed = record("r1", json!({"stopReason": "end_turn"}));
        let blocked = record("r2", json!({"stopReason": "guardrail_intervened"}));
        let invoke = record(
            "r3",
            json!({"amazon-bedrock-guardrailAction": "INTERVENED", "stop_reason": "end_turn"}),
        );
        let r = invocation(&passed).unwrap();
        assert_eq!(r.input_tokens, Some(120));
        assert_eq!(r.output_tokens, Some(30));
        assert_eq!(r.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(r.guardrail_action, None);
        assert_eq!(
            r.identity_arn.as_deref(),
            Some("arn:aws:sts::111122223333:assumed-role/App/i-1")
        );
        assert_eq!(
            invocation(&blocked).unwrap().guardrail_action.as_deref(),
            Some("INTERVENED")
        );
        assert_eq!(
            invocation(&invoke).unwrap().guardrail_action.as_deref(),
            Some("INTERVENED")
        );
    }

    #[test]
    fn bad_lines_are_reported_and_the_rest_kept() {
        let body = format!(
            "{}\nnot json\n{}\n{{\"schemaType\":\"ModelInvocationLog\",\"timestamp\":\"2024-05-01T10:00:00Z\"}}\n",
            record("r1", json!({})),
            record("r2", json!({}))
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
        let decoded = decode("k.json.gz", &gz.finish().unwrap(), 1 << 20);
        assert_eq!(decoded.records, 2);
        assert_eq!(decoded.skipped_records, 2);
        let lines: Vec<String> = decoded.problems.iter().map(|p| p.to_string()).collect();
        assert!(lines[0].contains("line 2"), "{lines:?}");
        assert!(
            lines[1].contains("line 4") && lines[1].contains("requestId"),
            "{lines:?}"
        );
        let batch = decoded.batch.unwrap();
        assert_eq!(batch.schema(), bedrock_schema());
        let tokens = batch
            .column_by_name("inputtokencount")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(tokens.value(1), 120);
        let key = batch
            .column_by_name("sourcekey")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(key.value(0), "k.json.gz");
    }

    #[test]
    fn a_truncated_gzip_keeps_the_lines_before_the_fault() {
        let body: String = (0..200)
            .map(|i| format!("{}\n", record(&format!("r{i}"), json!({}))))
            .collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let decoded = decode("k", &gz[..gz.len() / 2], 1 << 20);
        assert!(decoded.records > 0 && decoded.records < 200);
        assert!(decoded.problems.iter().any(|p| p.kind() == "corrupt-gzip"));
    }
}
