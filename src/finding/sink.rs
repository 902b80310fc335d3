//! Where the daemon sends findings. Several sinks may be given; a batch of findings is out
//! only when every sink has taken it (and only then are the SQS messages behind it deleted).
//!
//! * `stdout`: JSON Lines.
//! * `file:PATH`: JSON Lines appended to PATH, synced to disk before the batch counts as out.
//! * `s3://BUCKET/PREFIX`: one JSON Lines object per batch, under
//!   `PREFIX/year=YYYY/month=MM/day=DD/` (the date the batch was written).
//! * `sqs:QUEUE_URL`: one message per finding.

use std::io::Write;
use std::path::PathBuf;

use super::{Finding, FindingFormat};
use crate::source::s3::describe;

/// A sink as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    Stdout,
    File(PathBuf),
    S3 { bucket: String, prefix: String },
    Sqs(String),
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
        Err(format!(
            "{t:?} is not a sink: use stdout, file:PATH, s3://BUCKET/PREFIX or sqs:QUEUE_URL"
        ))
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> String {
        match self {
            SinkSpec::Stdout => "stdout".into(),
            SinkSpec::File(p) => format!("file:{}", p.display()),
            SinkSpec::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            SinkSpec::Sqs(url) => format!("sqs:{url}"),
        }
    }
}

/// Why a sink did not take a batch.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink}: {detail}")]
pub struct SinkError {
    pub sink: String,
    pub detail: String,
}

/// A sink, ready to send.
pub struct Sink {
    spec: SinkSpec,
    format: FindingFormat,
    s3: Option<aws_sdk_s3::Client>,
    sqs: Option<aws_sdk_sqs::Client>,
    /// Batches written, to name S3 objects uniquely within a process.
    written: u64,
    started: String,
}

impl Sink {
    pub fn new(spec: SinkSpec, format: FindingFormat, config: &aws_config::SdkConfig) -> Self {
        let s3 = matches!(spec, SinkSpec::S3 { .. }).then(|| crate::source::s3::client(config));
        let sqs = matches!(spec, SinkSpec::Sqs(_)).then(|| aws_sdk_sqs::Client::new(config));
        Self {
            spec,
            format,
            s3,
            sqs,
            written: 0,
            started: chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string(),
        }
    }

    pub fn name(&self) -> String {
        self.spec.name()
    }

    fn error(&self, detail: impl std::fmt::Display) -> SinkError {
        SinkError {
            sink: self.spec.name(),
            detail: detail.to_string(),
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
        match self.spec.clone() {
            SinkSpec::Stdout => {
                let lines = self.lines(findings);
                let mut out = std::io::stdout().lock();
                out.write_all(&lines)
                    .and_then(|_| out.flush())
                    .map_err(|e| self.error(e))
            }
            SinkSpec::File(path) => {
                let lines = self.lines(findings);
                let write = || -> std::io::Result<()> {
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)?;
                    file.write_all(&lines)?;
                    file.sync_data()
                };
                write().map_err(|e| self.error(e))
            }
            SinkSpec::S3 { bucket, prefix } => {
                let now = chrono::Utc::now();
                self.written += 1;
                let key = format!(
                    "{}{}year={}/month={}/day={}/{}-{}-{:06}.jsonl",
                    prefix,
                    if prefix.is_empty() { "" } else { "/" },
                    now.format("%Y"),
                    now.format("%m"),
                    now.format("%d"),
                    self.started,
                    std::process::id(),
                    self.written
                );
                let body = self.lines(findings);
                let client = self.s3.as_ref().expect("made for S3 sinks");
                client
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .content_type("application/x-ndjson")
                    .body(body.into())
                    .send()
                    .await
                    .map_err(|e| self.error(describe(&e)))?;
                Ok(())
            }
            SinkSpec::Sqs(url) => {
                let client = self.sqs.as_ref().expect("made for SQS sinks");
                for group in findings.chunks(10) {
                    let entries = group
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .message_body(self.format.render(f).to_string())
                                .build()
                                .expect("id and body are set")
                        })
                        .collect();
                    let out = client
                        .send_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .map_err(|e| self.error(describe(&e)))?;
                    if let Some(f) = out.failed.first() {
                        return Err(self.error(format!(
                            "{} of {} findings refused: {}",
                            out.failed.len(),
                            group.len(),
                            f.message.clone().unwrap_or_default()
                        )));
                    }
                }
                Ok(())
            }
        }
    }
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
        for bad in ["file:", "s3://", "sqs:q", "kafka:x"] {
            assert!(SinkSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
