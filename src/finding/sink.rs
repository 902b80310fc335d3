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

    /// Sends a batch; it is out when this returns `Ok`.
    pub async fn send(&mut self, findings: &[Finding]) -> Result<(), SinkError> {
        if findings.is_empty() {
            return Ok(());
        }
        match &self.destination {
            Destination::Stdout => {
                let lines = self.lines(findings);
                let mut out = std::io::stdout().lock();
                out.write_all(&lines)
                    .and_then(|_| out.flush())
                    .map_err(|e| self.error(e))
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
                write().map_err(|e| self.error(e))
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
                Ok(())
            }
            Destination::Sqs { client, url } => {
                let bodies: Vec<String> = findings
                    .iter()
                    .map(|f| self.format.render(f).to_string())
                    .collect();
                crate::aws::send_messages(client, url, &bodies)
                    .await
                    .map_err(|e| self.error(e))
            }
            Destination::Sns { client, topic } => {
                for f in findings {
                    let subject: String = format!("trailhound {}: {}", f.severity_label(), f.title)
                        .chars()
                        .filter(|c| c.is_ascii() && !c.is_ascii_control())
                        .take(100)
                        .collect();
                    client
                        .publish()
                        .topic_arn(topic)
                        .subject(subject)
                        .message(self.format.render(f).to_string())
                        .send()
                        .await
                        .map_err(|e| self.error(e))?;
                }
                Ok(())
            }
            Destination::EventBridge { client, bus } => {
                let details: Vec<String> = findings
                    .iter()
                    .map(|f| self.format.render(f).to_string())
                    .collect();
                let sizes: Vec<usize> = details.iter().map(String::len).collect();
                for range in crate::aws::groups_by_size(&sizes, 10, crate::aws::MAX_CALL_BYTES) {
                    let group = &details[range];
                    let entries = group
                        .iter()
                        .map(|detail| {
                            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                                .event_bus_name(bus)
                                .source("trailhound")
                                .detail_type("trailhound Finding")
                                .detail(detail)
                                .build()
                        })
                        .collect();
                    let out = client
                        .put_events()
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .map_err(|e| self.error(e))?;
                    if out.failed_entry_count > 0 {
                        let why = out
                            .entries()
                            .iter()
                            .find_map(|e| e.error_message.clone())
                            .unwrap_or_default();
                        return Err(self.error(format!(
                            "{} of {} events refused: {why}",
                            out.failed_entry_count,
                            group.len()
                        )));
                    }
                }
                Ok(())
            }
            Destination::SecurityHub(client) => {
                // BatchImportFindings takes at most 100 findings a call.
                for group in findings.chunks(100) {
                    let asff: Vec<_> = group.iter().map(security_hub_finding).collect();
                    let out = client
                        .batch_import_findings()
                        .set_findings(Some(asff))
                        .send()
                        .await
                        .map_err(|e| self.error(e))?;
                    if out.failed_count.unwrap_or(0) > 0 {
                        let why = out
                            .failed_findings()
                            .first()
                            .and_then(|f| f.error_message.clone())
                            .unwrap_or_default();
                        return Err(self.error(format!(
                            "{} of {} findings refused: {why}",
                            out.failed_count.unwrap_or(0),
                            group.len()
                        )));
                    }
                }
                Ok(())
            }
        }
    }
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
