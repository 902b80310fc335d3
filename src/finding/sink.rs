//! Where the daemon sends findings. Several sinks may be given; a batch of findings is out
//! only when every sink has taken it (and only then are the SQS messages behind it deleted).
//!
//! * `stdout`: JSON Lines.
//! * `file:PATH`: JSON Lines appended to PATH, synced to disk before the batch counts as out.
//! * `s3://BUCKET/PREFIX`: one JSON Lines object per batch, under
//!   `PREFIX/year=YYYY/month=MM/day=DD/` (the date the batch was written).
//! * `sqs:QUEUE_URL`: one message per finding.
//! * `sns:TOPIC_ARN`: one notification per finding.
//! * `eventbridge:BUS` (a bus name or ARN; `eventbridge:default`): `PutEvents` with source
//!   `trailhound`, detail-type `trailhound Finding` and the finding as the detail, as GuardDuty
//!   sends its own; ten to a call.
//! * `securityhub`: `BatchImportFindings` in ASFF, a hundred to a call, whatever `--format`.
//!
//! SQS, SNS, EventBridge and Security Hub answer for each finding. One they refuse for
//! something in the finding itself (too large, a value they do not take) is handed back to
//! the caller as [`Refused`] and does not hold back the rest of the batch; the daemon logs
//! it in full and counts it. A sink that fails as a whole (unreachable, denied, throttled
//! past its retries) fails the batch, and its messages stay on the queue.

use std::io::Write;
use std::path::PathBuf;

use super::{Finding, FindingFormat};

/// A sink as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    Stdout,
    File(PathBuf),
    S3 { bucket: String, prefix: String },
    Sqs(String),
    Sns(String),
    EventBridge(String),
    SecurityHub,
}

impl SinkSpec {
    /// Parses `stdout`, `file:PATH`, `s3://BUCKET/PREFIX` or `sqs:QUEUE_URL`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t == "stdout" || t == "-" {
            return Ok(SinkSpec::Stdout);
        }
        if let Some(path) = t.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: needs a path, as in file:/var/log/findings.jsonl".into());
            }
            return Ok(SinkSpec::File(PathBuf::from(path)));
        }
        if let Some(rest) = t.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket, as in s3://my-findings/trailhound".into());
            }
            return Ok(SinkSpec::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_end_matches('/').to_string(),
            });
        }
        if let Some(url) = t.strip_prefix("sqs:") {
            if !url.starts_with("http") {
                return Err("sqs: needs a queue URL, as in sqs:https://sqs.us-east-1.amazonaws.com/111122223333/findings".into());
            }
            return Ok(SinkSpec::Sqs(url.to_string()));
        }
        if let Some(arn) = t.strip_prefix("sns:") {
            if !arn.starts_with("arn:") {
                return Err(
                    "sns: needs a topic ARN, as in sns:arn:aws:sns:us-east-1:111122223333:findings"
                        .into(),
                );
            }
            return Ok(SinkSpec::Sns(arn.to_string()));
        }
        if let Some(bus) = t.strip_prefix("eventbridge:") {
            if bus.is_empty() {
                return Err(
                    "eventbridge: needs a bus name or ARN, as in eventbridge:default".into(),
                );
            }
            return Ok(SinkSpec::EventBridge(bus.to_string()));
        }
        if t == "securityhub" {
            return Ok(SinkSpec::SecurityHub);
        }
        Err(format!(
            "{t:?} is not a sink: use stdout, file:PATH, s3://BUCKET/PREFIX, sqs:QUEUE_URL, sns:TOPIC_ARN, eventbridge:BUS or securityhub"
        ))
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> String {
        match self {
            SinkSpec::Stdout => "stdout".into(),
            SinkSpec::File(p) => format!("file:{}", p.display()),
            SinkSpec::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            SinkSpec::Sqs(url) => format!("sqs:{url}"),
            SinkSpec::Sns(arn) => format!("sns:{arn}"),
            SinkSpec::EventBridge(bus) => format!("eventbridge:{bus}"),
            SinkSpec::SecurityHub => "securityhub".into(),
        }
    }
}

/// Why a sink did not take a batch; what went wrong (the SDK's error, with its chain) is its
/// source.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink}")]
pub struct SinkError {
    pub sink: String,
    #[source]
    pub source: crate::aws::Cause,
}

/// Where a sink writes, with the client it writes through.
enum Destination {
    Stdout,
    File(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
    },
    Sqs {
        client: aws_sdk_sqs::Client,
        url: String,
    },
    Sns {
        client: aws_sdk_sns::Client,
        topic: String,
    },
    EventBridge {
        client: aws_sdk_eventbridge::Client,
        bus: String,
    },
    SecurityHub(aws_sdk_securityhub::Client),
}

/// A sink, ready to send.
pub struct Sink {
    spec: SinkSpec,
    format: FindingFormat,
    destination: Destination,
    /// Batches written, to name S3 objects uniquely within a process.
    written: u64,
    started: String,
}

impl Sink {
    pub fn new(spec: SinkSpec, format: FindingFormat, config: &aws_config::SdkConfig) -> Self {
        let destination = match &spec {
            SinkSpec::Stdout => Destination::Stdout,
            SinkSpec::File(path) => Destination::File(path.clone()),
            SinkSpec::S3 { bucket, prefix } => Destination::S3 {
                client: crate::aws::s3_client(config),
                bucket: bucket.clone(),
                prefix: prefix.clone(),
            },
            SinkSpec::Sqs(url) => Destination::Sqs {
                client: aws_sdk_sqs::Client::new(config),
                url: url.clone(),
            },
            SinkSpec::Sns(topic) => Destination::Sns {
                client: aws_sdk_sns::Client::new(config),
                topic: topic.clone(),
            },
            SinkSpec::EventBridge(bus) => Destination::EventBridge {
                client: aws_sdk_eventbridge::Client::new(config),
                bus: bus.clone(),
            },
            SinkSpec::SecurityHub => {
                Destination::SecurityHub(aws_sdk_securityhub::Client::new(config))
            }
        };
        Self {
            spec,
            format,
            destination,
            written: 0,
            started: chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string(),
        }
    }

    pub fn name(&self) -> String {
        self.spec.name()
    }

    fn error(&self, cause: impl Into<crate::aws::Cause>) -> SinkError {
        SinkError {
            sink: self.spec.name(),
            source: cause.into(),
        }
    }

    fn lines(&self, findings: &[Finding]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in findings {
            serde_json::to_writer(&mut out, &self.format.render(f)).expect("JSON values serialise");
            out.push(b'\n');
        }
        out
    }

    /// Sends a batch. When this returns `Ok`, every finding is out except those listed as
    /// refused: the destination would not take them for something in the finding itself (too
    /// large, a value it does not accept), which sending again would not change. An `Err` is
    /// the sink failing (unreachable, denied, throttled past its retries, a findings store
    /// that is gone): the batch is not out.
    pub async fn send(&mut self, findings: &[Finding]) -> Result<Vec<Refused>, SinkError> {
        if findings.is_empty() {
            return Ok(Vec::new());
        }
        match &self.destination {
            Destination::Stdout => {
                let lines = self.lines(findings);
                let mut out = std::io::stdout().lock();
                out.write_all(&lines)
                    .and_then(|_| out.flush())
                    .map_err(|e| self.error(e))?;
                Ok(Vec::new())
            }
            Destination::File(path) => {
                let lines = self.lines(findings);
                let write = || -> std::io::Result<()> {
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)?;
                    file.write_all(&lines)?;
                    file.sync_data()
                };
                write().map_err(|e| self.error(e))?;
                Ok(Vec::new())
            }
            Destination::S3 {
                client,
                bucket,
                prefix,
            } => {
                let now = chrono::Utc::now();
                let written = self.written + 1;
                let key = format!(
                    "{}{}year={}/month={}/day={}/{}-{}-{:06}.jsonl",
                    prefix,
                    if prefix.is_empty() { "" } else { "/" },
                    now.format("%Y"),
                    now.format("%m"),
                    now.format("%d"),
                    self.started,
                    std::process::id(),
                    written
                );
                let body = self.lines(findings);
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .content_type("application/x-ndjson")
                    .body(body.into())
                    .send()
                    .await
                    .map_err(|e| self.error(e))?;
                self.written = written;
                Ok(Vec::new())
            }
            Destination::Sqs { .. }
            | Destination::Sns { .. }
            | Destination::EventBridge { .. }
            | Destination::SecurityHub(_) => self.deliver(findings).await,
        }
    }

    /// Sends findings to a destination that answers for each one (SQS, SNS, EventBridge,
    /// Security Hub), in calls of as many as it takes. A finding it refuses for itself is set
    /// aside; a call refused for its content is tried again one finding at a time, so that
    /// one bad finding does not hold back the others; findings refused for a passing cause
    /// (throttling, an internal failure) are sent again, a few times, before the sink counts
    /// as failing.
    async fn deliver(&self, findings: &[Finding]) -> Result<Vec<Refused>, SinkError> {
        let bodies: Vec<String> = findings.iter().map(|f| self.body(f)).collect();
        let sizes: Vec<usize> = bodies.iter().map(String::len).collect();
        let (most, bytes) = match self.destination {
            Destination::Sns { .. } => (1, crate::aws::MAX_CALL_BYTES),
            Destination::SecurityHub(_) => (100, SECURITY_HUB_CALL_BYTES),
            _ => (10, crate::aws::MAX_CALL_BYTES),
        };
        let mut calls: std::collections::VecDeque<Vec<usize>> =
            crate::aws::groups_by_size(&sizes, most, bytes)
                .into_iter()
                .map(|r| r.collect())
                .collect();
        let mut refused = Vec::new();
        while let Some(mut group) = calls.pop_front() {
            let mut tries = 1;
            loop {
                match self.call(&group, findings, &bodies).await {
                    Call::Taken(left) => {
                        let mut again = Vec::new();
                        for (index, item) in left {
                            match item {
                                Left::Refused(reason) => refused.push(Refused { index, reason }),
                                Left::Again(reason) => again.push((index, reason)),
                            }
                        }
                        let Some((_, why)) = again.first() else { break };
                        if tries == ENTRY_ATTEMPTS {
                            return Err(self.error(format!(
                                "{} findings still not taken after {tries} tries: {why}",
                                again.len()
                            )));
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(100 << tries)).await;
                        tries += 1;
                        group = again.into_iter().map(|(i, _)| i).collect();
                    }
                    Call::Refused(reason) => {
                        if let [index] = group[..] {
                            refused.push(Refused { index, reason });
                        } else {
                            calls.extend(group.iter().map(|&i| vec![i]));
                        }
                        break;
                    }
                    Call::Failed(cause) => return Err(self.error(cause)),
                }
            }
        }
        refused.sort_by_key(|r| r.index);
        Ok(refused)
    }

    /// A finding as one message, notification or event: the format's JSON, with the two
    /// characters SQS refuses in a message escaped (U+FFFE and U+FFFF; a record may carry
    /// them anywhere, and they can only stand inside a JSON string).
    fn body(&self, f: &Finding) -> String {
        let text = match self.destination {
            Destination::SecurityHub(_) => super::asff::to_json(f).to_string(),
            _ => self.format.render(f).to_string(),
        };
        message_safe(text)
    }

    /// One call carrying the findings at `group` (positions in `findings`).
    async fn call(&self, group: &[usize], findings: &[Finding], bodies: &[String]) -> Call {
        match &self.destination {
            Destination::Sqs { client, url } => {
                use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
                let mut entries = Vec::with_capacity(group.len());
                for (at, &i) in group.iter().enumerate() {
                    match SendMessageBatchRequestEntry::builder()
                        .id(at.to_string())
                        .message_body(&bodies[i])
                        .build()
                    {
                        Ok(entry) => entries.push(entry),
                        Err(e) => return Call::Failed(e.into()),
                    }
                }
                let out = match client
                    .send_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(e) => return call_error(e),
                };
                let mut left = Vec::new();
                for f in &out.failed {
                    let Some(&index) = f.id.parse::<usize>().ok().and_then(|at| group.get(at))
                    else {
                        return Call::Failed(
                            format!("SQS answered for an entry it was not sent: {:?}", f.id).into(),
                        );
                    };
                    let why = format!("{}: {}", f.code, f.message.as_deref().unwrap_or(""));
                    left.push((index, Left::from(why, f.sender_fault)));
                }
                Call::Taken(left)
            }
            Destination::Sns { client, topic } => {
                let mut left = Vec::new();
                for &i in group {
                    let f = &findings[i];
                    let subject: String = format!("trailhound {}: {}", f.severity_label(), f.title)
                        .chars()
                        .filter(|c| c.is_ascii() && !c.is_ascii_control())
                        .take(100)
                        .collect();
                    let sent = client
                        .publish()
                        .topic_arn(topic)
                        .subject(subject)
                        .message(&bodies[i])
                        .send()
                        .await;
                    match sent {
                        Ok(_) => {}
                        Err(e) => match call_error(e) {
                            Call::Refused(reason) if group.len() == 1 => {
                                left.push((i, Left::Refused(reason)))
                            }
                            other => return other,
                        },
                    }
                }
                Call::Taken(left)
            }
            Destination::EventBridge { client, bus } => {
                let entries = group
                    .iter()
                    .map(|&i| {
                        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                            .event_bus_name(bus)
                            .source("trailhound")
                            .detail_type("trailhound Finding")
                            .detail(&bodies[i])
                            .build()
                    })
                    .collect();
                let out = match client.put_events().set_entries(Some(entries)).send().await {
                    Ok(out) => out,
                    Err(e) => return call_error(e),
                };
                // The answer's entries are in the order sent, one for each.
                let mut left = Vec::new();
                for (&index, entry) in group.iter().zip(out.entries()) {
                    if let Some(code) = &entry.error_code {
                        let why =
                            format!("{code}: {}", entry.error_message.as_deref().unwrap_or(""));
                        left.push((index, Left::from(why, !passing(code))));
                    }
                }
                if out.failed_entry_count as usize > left.len() {
                    return Call::Failed(
                        format!(
                            "EventBridge refused {} events without saying which",
                            out.failed_entry_count
                        )
                        .into(),
                    );
                }
                Call::Taken(left)
            }
            Destination::SecurityHub(client) => {
                let asff: Vec<_> = group
                    .iter()
                    .map(|&i| security_hub_finding(&findings[i]))
                    .collect();
                let out = match client
                    .batch_import_findings()
                    .set_findings(Some(asff))
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(e) => return call_error(e),
                };
                let mut left = Vec::new();
                for failed in out.failed_findings() {
                    let Some(&index) = group
                        .iter()
                        .find(|&&i| Some(findings[i].id.as_str()) == failed.id.as_deref())
                    else {
                        return Call::Failed(
                            format!(
                                "Security Hub refused a finding it was not sent: {:?}",
                                failed.id
                            )
                            .into(),
                        );
                    };
                    let code = failed.error_code.as_deref().unwrap_or("");
                    let why = format!("{code}: {}", failed.error_message.as_deref().unwrap_or(""));
                    left.push((index, Left::from(why, !passing(code))));
                }
                if out.failed_count.unwrap_or(0) as usize > left.len() {
                    return Call::Failed(
                        format!(
                            "Security Hub refused {} findings without saying which",
                            out.failed_count.unwrap_or(0)
                        )
                        .into(),
                    );
                }
                Call::Taken(left)
            }
            Destination::Stdout | Destination::File(_) | Destination::S3 { .. } => {
                Call::Failed("this sink takes a batch whole".into())
            }
        }
    }
}

/// A finding a sink would not take, for something in the finding itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its position in the batch given to [`Sink::send`].
    pub index: usize,
    /// The destination's answer (its error code and message).
    pub reason: String,
}

/// Tries of a finding the destination refused for a passing cause, the first included.
const ENTRY_ATTEMPTS: u32 = 4;

/// Most bytes of findings in one `BatchImportFindings` call (the service takes 6 MB).
const SECURITY_HUB_CALL_BYTES: usize = 5_000_000;

/// How one call went.
enum Call {
    /// The call went through; these findings of it (by position in the batch) were not taken.
    Taken(Vec<(usize, Left)>),
    /// The call was refused for what it carried: its findings go again one to a call, and a
    /// finding refused alone is refused for itself.
    Refused(String),
    /// The sink failed: the batch is not out.
    Failed(crate::aws::Cause),
}

/// A finding a call did not take.
enum Left {
    /// For something in the finding: set aside.
    Refused(String),
    /// For a passing cause: sent again.
    Again(String),
}

impl Left {
    fn from(reason: String, for_itself: bool) -> Self {
        if for_itself {
            Left::Refused(reason)
        } else {
            Left::Again(reason)
        }
    }
}

/// Error codes of a call refused for what it carries rather than where it went: a message
/// too large or with characters the service does not take, a value out of its range. A
/// missing queue or topic, a denied role or throttling is not among them; those fail the sink.
const CONTENT_CODES: &[&str] = &[
    "InvalidParameterValue",
    "InvalidParameter",
    "InvalidMessageContents",
    "MessageTooLong",
    "BatchRequestTooLong",
    "AWS.SimpleQueueService.BatchRequestTooLong",
    "ValidationException",
    "InvalidInputException",
    "InvalidInput",
    "InvalidArgument",
    "MalformedDetail",
];

/// Entry error codes that pass with time (sent again rather than set aside).
fn passing(code: &str) -> bool {
    code.contains("Throttl")
        || code.contains("InternalFailure")
        || code.contains("InternalError")
        || code.contains("LimitExceeded")
        || code.contains("ServiceUnavailable")
}

/// A failed call, told apart as refused for its content or a failing sink.
fn call_error<E, R>(e: aws_sdk_sqs::error::SdkError<E, R>) -> Call
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    match e.code() {
        Some(code) if CONTENT_CODES.contains(&code) => {
            Call::Refused(format!("{code}: {}", e.message().unwrap_or("no message")))
        }
        _ => Call::Failed(Box::new(e)),
    }
}

/// `json` with U+FFFE and U+FFFF written as escapes (the same JSON value; SQS refuses a
/// message that carries them).
fn message_safe(json: String) -> String {
    if !json.contains(['\u{fffe}', '\u{ffff}']) {
        return json;
    }
    json.replace('\u{fffe}', "\\ufffe")
        .replace('\u{ffff}', "\\uffff")
}

/// The finding as the SDK's ASFF finding, from its ASFF JSON (the fields Security Hub
/// requires, and times, product fields and region).
fn security_hub_finding(f: &Finding) -> aws_sdk_securityhub::types::AwsSecurityFinding {
    use aws_sdk_securityhub::types::{
        AwsSecurityFinding, RecordState, Resource, Severity, SeverityLabel, Workflow,
        WorkflowStatus,
    };
    let v = super::asff::to_json(f);
    let text = |p: &str| v[p].as_str().unwrap_or_default().to_string();
    let mut resources = Vec::new();
    for r in v["Resources"].as_array().into_iter().flatten() {
        resources.push(
            Resource::builder()
                .r#type(r["Type"].as_str().unwrap_or("Other"))
                .id(r["Id"].as_str().unwrap_or_default())
                .region(r["Region"].as_str().unwrap_or_default())
                .build(),
        );
    }
    let mut b = AwsSecurityFinding::builder()
        .schema_version(text("SchemaVersion"))
        .id(text("Id"))
        .product_arn(text("ProductArn"))
        .generator_id(text("GeneratorId"))
        .aws_account_id(text("AwsAccountId"))
        .set_types(Some(
            v["Types"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
        ))
        .first_observed_at(text("FirstObservedAt"))
        .last_observed_at(text("LastObservedAt"))
        .created_at(text("CreatedAt"))
        .updated_at(text("UpdatedAt"))
        .severity(
            Severity::builder()
                .label(SeverityLabel::from(
                    v["Severity"]["Label"].as_str().unwrap_or("LOW"),
                ))
                .original(v["Severity"]["Original"].as_str().unwrap_or_default())
                .build(),
        )
        .title(text("Title"))
        .description(text("Description"))
        .region(text("Region"))
        .record_state(RecordState::Active)
        .workflow(Workflow::builder().status(WorkflowStatus::New).build())
        .set_resources(Some(resources));
    for (k, val) in v["ProductFields"].as_object().into_iter().flatten() {
        b = b.product_fields(k, val.as_str().unwrap_or_default());
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_sqs_refuses_are_escaped_and_the_json_is_the_same() {
        let value = serde_json::json!({"userAgent": "a\u{ffff}b\u{fffe}", "n": 1});
        let safe = message_safe(value.to_string());
        assert!(!safe.contains(['\u{fffe}', '\u{ffff}']), "{safe}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).unwrap(),
            value
        );
        let plain = serde_json::json!({"userAgent": "aws-cli/2 ✓"}).to_string();
        assert_eq!(message_safe(plain.clone()), plain);
    }

    #[test]
    fn refusals_for_content_are_told_from_a_failing_sink() {
        for code in [
            "Throttling",
            "ThrottlingException",
            "InternalFailure",
            "ServiceUnavailable",
        ] {
            assert!(passing(code), "{code}");
        }
        for code in [
            "InvalidParameterValue",
            "MalformedDetail",
            "InvalidInput",
            "AccessDenied",
        ] {
            assert!(!passing(code), "{code}");
        }
        assert!(CONTENT_CODES.contains(&"InvalidParameterValue"));
        for code in [
            "AccessDenied",
            "QueueDoesNotExist",
            "NotFound",
            "ResourceNotFoundException",
        ] {
            assert!(!CONTENT_CODES.contains(&code), "{code}");
        }
    }

    #[test]
    fn sinks_are_parsed() {
        assert_eq!(SinkSpec::parse("stdout").unwrap(), SinkSpec::Stdout);
        assert_eq!(
            SinkSpec::parse("file:/tmp/f.jsonl").unwrap(),
            SinkSpec::File("/tmp/f.jsonl".into())
        );
        assert_eq!(
            SinkSpec::parse("s3://b/p/q/").unwrap(),
            SinkSpec::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(
            SinkSpec::parse("sqs:http://127.0.0.1:5000/123/q").unwrap(),
            SinkSpec::Sqs("http://127.0.0.1:5000/123/q".into())
        );
        assert_eq!(
            SinkSpec::parse("eventbridge:default").unwrap(),
            SinkSpec::EventBridge("default".into())
        );
        assert_eq!(
            SinkSpec::parse("sns:arn:aws:sns:us-east-1:1:t").unwrap(),
            SinkSpec::Sns("arn:aws:sns:us-east-1:1:t".into())
        );
        assert_eq!(
            SinkSpec::parse("securityhub").unwrap(),
            SinkSpec::SecurityHub
        );
        for bad in [
            "file:",
            "s3://",
            "sqs:q",
            "kafka:x",
            "sns:topic",
            "eventbridge:",
        ] {
            assert!(SinkSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
