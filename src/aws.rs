//! How trailhound talks to AWS, in one place: the SDK configuration (the standard credential
//! and region chain, the ECS task role in production; `AWS_ENDPOINT_URL` honoured, as the AWS
//! CLI honours it), one retry policy for every client, S3's addressing on endpoints other than
//! AWS's, error text with its causes, and a runtime for callers that are not async.
//!
//! The S3 and SQS sources, every sink and the DynamoDB store build their clients from
//! [`config`]; none builds a configuration of its own.

/// The cause under an error of ours: the SDK's own error (with its chain), or what was wrong.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Attempts per request, the first included, before a throttled or failing call gives up.
/// The SDK's standard retry mode backs off between them.
pub const MAX_ATTEMPTS: u32 = 6;

/// The shared AWS configuration: the standard chain, `AWS_ENDPOINT_URL` honoured, and
/// [`MAX_ATTEMPTS`] attempts with backoff.
pub async fn config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await
}

/// An S3 client for `config`: keys are addressed path-style (`endpoint/bucket/key`) when the
/// endpoint is not AWS's own, as other S3 servers expect.
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom = config.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// A runtime for synchronous callers of the SDK (the readers of `replay` and `hunt`, the
/// DynamoDB store, the daemon's heartbeat): `threads` workers, or the current thread for 0.
pub fn runtime(name: &str, threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.thread_name(name).enable_all().build()
}

/// An error and every cause under it, in one line (the SDK's own message names only the
/// operation).
pub fn describe<E: std::error::Error + ?Sized>(e: &E) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Why SQS did not take every message (the caller names the queue).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The call itself failed (network, permissions, throttling after retries).
    #[error("the call failed after {sent} messages were sent")]
    Call {
        sent: usize,
        #[source]
        cause: Cause,
    },
    /// SQS answered but refused some of the messages (too large, malformed).
    #[error("{refused} of {tried} messages refused after {sent} were sent: {reason}")]
    Refused {
        sent: usize,
        refused: usize,
        tried: usize,
        reason: String,
    },
}

/// Sends each body as a message to the queue at `url`, ten to a call (SQS's most); fails at
/// the first refusal, saying how many were sent before it. For the SQS source's `--enqueue`
/// and the SQS sink alike.
pub async fn send_messages(
    client: &aws_sdk_sqs::Client,
    url: &str,
    bodies: &[String],
) -> Result<(), SendError> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let mut sent = 0;
    for group in bodies.chunks(10) {
        let call_failed = |sent: usize, cause: Cause| SendError::Call { sent, cause };
        let entries = group
            .iter()
            .enumerate()
            .map(|(i, b)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(b)
                    .build()
                    .map_err(|e| call_failed(sent, e.into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| call_failed(sent, e.into()))?;
        if let Some(f) = out.failed.first() {
            return Err(SendError::Refused {
                sent,
                refused: out.failed.len(),
                tried: group.len(),
                reason: f.message.clone().unwrap_or_else(|| f.code.clone()),
            });
        }
        sent += group.len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_description_holds_every_cause() {
        let e = Outer(std::io::Error::other("the cause"));
        assert_eq!(describe(&e), "outer: the cause");
    }
}
