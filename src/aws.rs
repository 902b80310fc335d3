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

/// Most bytes sent in one call to SQS, SNS or EventBridge (each takes 256 KiB a call, all
/// entries together), with room to spare.
pub const MAX_CALL_BYTES: usize = 250_000;

/// Consecutive groups of items, by position, each of at most `max_count` items and
/// `max_bytes` bytes together (an item larger than that alone is a group of its own, for the
/// service to refuse by itself).
pub fn groups_by_size(
    sizes: &[usize],
    max_count: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && (i - start == max_count || bytes + size > max_bytes) {
            groups.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        groups.push(start..sizes.len());
    }
    groups
}

/// Sends each body as a message to the queue at `url`, ten to a call (SQS's most) and within
/// [`MAX_CALL_BYTES`]; fails at the first refusal, saying how many were sent before it. For
/// the SQS source's `--enqueue` and the SQS sink alike.
pub async fn send_messages(
    client: &aws_sdk_sqs::Client,
    url: &str,
    bodies: &[String],
) -> Result<(), SendError> {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    let mut sent = 0;
    let sizes: Vec<usize> = bodies.iter().map(String::len).collect();
    for range in groups_by_size(&sizes, 10, MAX_CALL_BYTES) {
        let group = &bodies[range];
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
    fn groups_hold_to_count_and_size() {
        assert_eq!(
            groups_by_size(&[], 10, 100),
            Vec::<std::ops::Range<usize>>::new()
        );
        assert_eq!(groups_by_size(&[1; 25], 10, 100), [0..10, 10..20, 20..25]);
        assert_eq!(
            groups_by_size(&[60, 60, 30, 10, 200, 5], 10, 100),
            [0..1, 1..4, 4..5, 5..6]
        );
    }

    #[test]
    fn a_description_holds_every_cause() {
        let e = Outer(std::io::Error::other("the cause"));
        assert_eq!(describe(&e), "outer: the cause");
    }
}
