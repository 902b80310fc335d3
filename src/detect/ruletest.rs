//! The tests a detection file carries: sample records and the number of findings they must
//! give. Records are run through the real decoder and the planned query, exactly as logs are.
//!
//! A test record needs only the fields that matter to the detection. These are filled in when
//! absent: `eventVersion`, `eventTime` (a minute apart, from 2026-01-01T12:00:00Z),
//! `eventID`, `awsRegion` (us-east-1), `recipientAccountId` (111122223333), `sourceIPAddress`
//! (203.0.113.10), `userAgent`, `eventType` (AwsApiCall) and `userIdentity` (the IAM user
//! `alice` of that account, with access key AKIAIOSFODNN7EXAMPLE).

use serde_json::{json, Value};

use super::{aggregate, Engine};
use crate::decode::{DecodeOptions, Decoder};

/// The account test records belong to unless they say otherwise.
pub const TEST_ACCOUNT: &str = "111122223333";

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
    let Value::Object(map) = record else { return };
    let base = 1_767_268_800i64 + index as i64 * 60;
    let time = chrono::DateTime::from_timestamp(base, 0).expect("valid time");
    let defaults = [
        ("eventVersion", json!("1.11")),
        (
            "eventTime",
            json!(time.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ),
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
    for (key, value) in defaults {
        map.entry(key).or_insert(value);
    }
}

/// Runs every test of every rule the engine holds. A rule without both a test that expects
/// findings and one that expects none fails too.
pub async fn run(engine: &Engine, only: &[String]) -> Vec<Outcome> {
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
            match run_test(engine, index, rule, &test.records).await {
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
    engine: &Engine,
    index: usize,
    rule: &super::Rule,
    records: &[String],
) -> Result<usize, String> {
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"Records\":[");
    for (i, text) in records.iter().enumerate() {
        let mut record: Value =
            serde_json::from_str(text).map_err(|e| format!("record {} is not JSON: {e}", i + 1))?;
        if !record.is_object() {
            return Err(format!("record {} is not a JSON object", i + 1));
        }
        complete(&mut record, i);
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &record).expect("JSON serializes");
    }
    body.extend_from_slice(b"]}");
    let mut decoder = Decoder::new(DecodeOptions::default());
    let decoded = decoder.decode(&format!("test of {}", rule.id), &body);
    if let Some(problem) = decoded.problems.first() {
        return Err(format!("the test records do not decode: {problem}"));
    }
    let batches: Vec<_> = decoded.batch.into_iter().collect();
    let matches = engine
        .run_one(index, batches)
        .await
        .map_err(|e| e.to_string())?;
    Ok(aggregate::findings(rule, matches, chrono::Utc::now()).len())
}
