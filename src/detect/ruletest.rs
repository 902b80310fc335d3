//! The tests a detection file carries: sample records and the number of findings they must
//! give. Records are run through the real decoder and the planned query, exactly as logs are.
//!
//! A test record needs only the fields that matter to the detection. These are filled in when
//! absent: `eventVersion`, `eventTime` (a minute apart, from 2026-01-01T12:00:00Z),
//! `eventID`, `awsRegion` (us-east-1), `recipientAccountId` (111122223333), `sourceIPAddress`
//! (203.0.113.10), `userAgent`, `eventType` (AwsApiCall) and `userIdentity` (the IAM user
//! `alice` of that account, with access key AKIAIOSFODNN7EXAMPLE).

use std::sync::Arc;

use serde_json::{json, Value};

use super::examine::{Chunk, Delivery, ExamineOptions, Examiner};
use super::state::Store;
use super::Engine;
use crate::decode::bedrock;
use crate::decode::{DecodeOptions, Decoder};
use crate::finding::Finding;

/// The account test records belong to unless they say otherwise.
pub const TEST_ACCOUNT: &str = "111122223333";

/// The deployment pipeline declared while detections' tests run (`--pipeline`): records of
/// the role `test-pipeline` are the pipeline's.
pub const TEST_PIPELINE: &str = "arn:aws:iam::*:role/test-pipeline";

/// The threat list the tests run with: one address and one network (documentation ranges).
pub const TEST_THREAT_LIST: &str = "198.51.100.66\n2001:db8:bad::/48\n";

/// The trusted ranges the tests run with.
pub const TEST_TRUSTED_IPS: &str = "203.0.113.128/25\n";

/// How the tests' engine runs: one thread, the user's trusted accounts, and the tests' own
/// pipeline, threat list and trusted ranges (a test must pass whatever the user brings).
pub fn engine_options(
    trusted_accounts: std::collections::BTreeSet<String>,
) -> super::EngineOptions {
    let list = |text: &str| {
        let mut l = super::ip_list::IpList::default();
        l.add_text(std::path::Path::new("(tests)"), text)
            .expect("the tests' own list parses");
        l
    };
    super::EngineOptions {
        threads: 1,
        trusted_accounts,
        pipelines: vec![TEST_PIPELINE.to_string()],
        threats: list(TEST_THREAT_LIST),
        trusted_networks: list(TEST_TRUSTED_IPS),
    }
}

/// What one test did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rule: String,
    pub test: String,
    /// `path:line` of the test.
    pub location: String,
    pub expected: usize,
    pub got: Option<usize>,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// A test record with the fields it leaves out filled in.
pub fn complete(record: &mut Value, index: usize) {
    complete_at(record, index, index as i64 * 60);
}

/// A test record with the fields it leaves out filled in, its default time `offset_secs`
/// after the first test record's.
pub fn complete_at(record: &mut Value, index: usize, offset_secs: i64) {
    let defaults = [
        ("eventVersion", json!("1.11")),
        ("eventTime", json!(test_time(offset_secs))),
        (
            "eventID",
            json!(format!("00000000-0000-4000-8000-{index:012}")),
        ),
        ("awsRegion", json!("us-east-1")),
        ("recipientAccountId", json!(TEST_ACCOUNT)),
        ("sourceIPAddress", json!("203.0.113.10")),
        (
            "userAgent",
            json!("aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64"),
        ),
        ("eventType", json!("AwsApiCall")),
        (
            "userIdentity",
            json!({
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEALICE0001",
                "arn": format!("arn:aws:iam::{TEST_ACCOUNT}:user/alice"),
                "accountId": TEST_ACCOUNT,
                "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
                "userName": "alice"
            }),
        ),
    ];
    fill(record, defaults);
}

/// The time of a test record `offset_secs` after the first one's (2026-01-01T12:00:00Z).
fn test_time(offset_secs: i64) -> String {
    chrono::DateTime::from_timestamp(1_767_268_800 + offset_secs, 0)
        .expect("valid time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Puts each default into `record` where the record has no value for its key.
fn fill<const N: usize>(record: &mut Value, defaults: [(&str, Value); N]) {
    if let Value::Object(map) = record {
        for (key, value) in defaults {
            map.entry(key).or_insert(value);
        }
    }
}

/// Runs every test of every rule the engine holds. A rule without both a test that expects
/// findings and one that expects none fails too.
pub async fn run(engine: &Arc<Engine>, only: &[String]) -> Vec<Outcome> {
    let rules: Vec<_> = engine.rules().cloned().collect();
    let mut outcomes = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        if !only.is_empty() && !only.contains(&rule.id) {
            continue;
        }
        let positive = rule.tests.iter().any(|t| t.findings > 0);
        let negative = rule.tests.iter().any(|t| t.findings == 0);
        if !positive || !negative {
            outcomes.push(Outcome {
                rule: rule.id.clone(),
                test: "(coverage)".into(),
                location: rule.origin.to_string(),
                expected: 0,
                got: None,
                failure: Some(format!(
                    "needs at least one test expecting findings and one expecting none (has {})",
                    match (positive, negative) {
                        (false, false) => "neither",
                        (true, false) => "no negative test",
                        _ => "no positive test",
                    }
                )),
            });
        }
        for test in &rule.tests {
            let mut outcome = Outcome {
                rule: rule.id.clone(),
                test: test.name.clone(),
                location: format!("{}:{}", rule.origin, test.line),
                expected: test.findings,
                got: None,
                failure: None,
            };
            let result = if rule.stateful.is_some() {
                run_stateful_test(engine, rule, test).await
            } else {
                run_test(engine, index, rule, &test.records).await
            };
            match result {
                Ok(n) => {
                    outcome.got = Some(n);
                    if n != test.findings {
                        outcome.failure =
                            Some(format!("expected {} finding(s), got {n}", test.findings));
                    }
                }
                Err(e) => outcome.failure = Some(e),
            }
            outcomes.push(outcome);
        }
    }
    outcomes
}

async fn run_test(
    engine: &Arc<Engine>,
    index: usize,
    rule: &super::Rule,
    records: &[String],
) -> Result<usize, String> {
    let mut cloudtrail = Vec::new();
    let mut invocations = Vec::new();
    for (i, text) in records.iter().enumerate() {
        let mut record = parse_record(text, "record", i)?;
        if bedrock::is_invocation_record(&record) {
            complete_invocation(&mut record, i);
            invocations.push(
                bedrock::invocation(&record)
                    .map_err(|e| format!("record {} is not an invocation: {e}", i + 1))?,
            );
            continue;
        }
        complete(&mut record, i);
        cloudtrail.push(record);
    }
    let mut chunk = Chunk::cloudtrail(decode_test_records(
        &format!("test of {}", rule.id),
        cloudtrail,
    )?);
    if !invocations.is_empty() {
        chunk.invocations = vec![
            bedrock::batch_of(&invocations, &format!("test of {}", rule.id))
                .map_err(|e| e.to_string())?,
        ];
    }
    let mut examiner = examiner_for(engine, Some(index))?;
    let findings = examine(&mut examiner, chunk).await?;
    Ok(findings.iter().filter(|f| f.detection == rule.id).count())
}

/// An examiner for one test: a fresh state in memory, every finding as each chunk is
/// examined, whatever its severity.
fn examiner_for(engine: &Arc<Engine>, only: Option<usize>) -> Result<Examiner, String> {
    Examiner::new(
        engine.clone(),
        Store::Memory,
        ExamineOptions {
            delivery: Delivery::EachChunk,
            only,
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())
}

/// The findings of one chunk; any detection failing on it fails the test.
async fn examine(examiner: &mut Examiner, chunk: Chunk) -> Result<Vec<Finding>, String> {
    let examined = examiner.examine(chunk).await.map_err(|e| e.to_string())?;
    match examined.failures.first() {
        Some(e) => Err(e.to_string()),
        None => Ok(examined.findings),
    }
}

/// Test records decoded as one log object named `object`, exactly as logs are.
pub(crate) fn decode_test_records(
    object: &str,
    records: Vec<Value>,
) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>, String> {
    let mut decoder = Decoder::new(DecodeOptions::default());
    let decoded = decoder.decode(object, &body_of(records));
    if let Some(problem) = decoded.problems.first() {
        return Err(format!("the test records do not decode: {problem}"));
    }
    Ok(decoded.batch.into_iter().collect())
}

/// A Bedrock invocation test record with the fields it leaves out filled in (a minute apart,
/// in the test account, by the application's role).
pub fn complete_invocation(record: &mut Value, index: usize) {
    let defaults = [
        ("schemaVersion", json!("1.0")),
        ("timestamp", json!(test_time(index as i64 * 60))),
        (
            "requestId",
            json!(format!("00000000-0000-4000-9000-{index:012}")),
        ),
        ("accountId", json!(TEST_ACCOUNT)),
        ("region", json!("us-east-1")),
        ("operation", json!("InvokeModel")),
        ("modelId", json!("anthropic.claude-3-haiku-20240307-v1:0")),
        (
            "identity",
            json!({"arn": format!("arn:aws:sts::{TEST_ACCOUNT}:assumed-role/AppRole/i-0abc")}),
        ),
    ];
    fill(record, defaults);
}

/// The records of a test as one log object's body, each completed.
fn body_of(records: Vec<Value>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"Records\":[");
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, record).expect("JSON serializes");
    }
    body.extend_from_slice(b"]}");
    body
}

fn parse_record(text: &str, what: &str, i: usize) -> Result<Value, String> {
    let record: Value =
        serde_json::from_str(text).map_err(|e| format!("{what} {} is not JSON: {e}", i + 1))?;
    if !record.is_object() {
        return Err(format!("{what} {} is not a JSON object", i + 1));
    }
    Ok(record)
}

/// A stateful detection's test: its `history` once a day on each of the `history_days` days
/// before, then its `records` (`repeat` times over, each a few seconds apart unless they give
/// their own time), through every statistical detection of the pack with a fresh state; the
/// findings of the records by this detection are counted (its signals, for a detection that
/// only signals sequences).
async fn run_stateful_test(
    engine: &Arc<Engine>,
    rule: &super::Rule,
    test: &super::rule::RuleTest,
) -> Result<usize, String> {
    const DAY: i64 = 86_400_000_000;
    let mut examiner = examiner_for(engine, None)?;
    let mut history = Vec::new();
    for day in (1..=i64::from(test.history_days)).rev() {
        for (i, text) in test.history.iter().enumerate() {
            let mut record = parse_record(text, "history record", i)?;
            complete_at(&mut record, i, i as i64 * 5);
            let time = record["eventTime"]
                .as_str()
                .and_then(crate::decode::time::parse_event_time)
                .ok_or_else(|| format!("history record {} has a bad eventTime", i + 1))?;
            let shifted = crate::finding::iso_time(time - day * DAY);
            record["eventTime"] = Value::String(shifted);
            let id = record["eventID"].as_str().unwrap_or_default().to_string();
            record["eventID"] = Value::String(format!("{id}-history-{day}"));
            history.push(record);
        }
    }
    if !history.is_empty() {
        let batches = decode_test_records("test/history.json", history)?;
        examine(&mut examiner, Chunk::cloudtrail(batches)).await?;
    }
    let mut records = Vec::new();
    for copy in 0..test.repeat as usize {
        for (i, text) in test.records.iter().enumerate() {
            let mut record = parse_record(text, "record", i)?;
            let index = copy * test.records.len() + i;
            complete_at(&mut record, index, index as i64 * 5);
            records.push(record);
        }
    }
    let before = examiner.stats().signals(&rule.id);
    let batches = decode_test_records("test/records.json", records)?;
    let findings = examine(&mut examiner, Chunk::cloudtrail(batches)).await?;
    if examiner.stats().reports(&rule.id) {
        Ok(findings.iter().filter(|f| f.detection == rule.id).count())
    } else {
        // A detection that only signals sequences is judged by its signals.
        Ok(examiner.stats().signals(&rule.id) - before)
    }
}
