//! The SQS queue the daemon reads notifications from: long polls, deletes what was handled,
//! and holds on to (or lets go of) what is in work by changing its visibility.

use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};

/// Longest wait SQS allows for a receive.
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// Most messages SQS returns for one receive.
pub const MAX_MESSAGES: i32 = 10;

/// One received message.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub receipt: String,
    pub body: String,
    /// Times SQS has handed this message out, this time included.
    pub receives: u32,
    /// When it was sent, in milliseconds since the epoch.
    pub sent_ms: Option<i64>,
}

/// Why a queue call failed; the SDK's error is its source.
#[derive(Debug, thiserror::Error)]
#[error("{queue}: {action}")]
pub struct QueueError {
    pub queue: String,
    pub action: &'static str,
    #[source]
    pub source: crate::aws::Cause,
}

/// A queue, by URL.
#[derive(Clone)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    pub url: String,
}

impl Queue {
    /// Sends each body as a message, ten to a call; fails at the first refusal, saying how
    /// many were sent before it.
    pub async fn send_all(&self, bodies: &[String]) -> Result<(), QueueError> {
        crate::aws::send_messages(&self.client, &self.url, bodies)
            .await
            .map_err(|e| QueueError {
                queue: self.url.clone(),
                action: "sending messages",
                source: e.into(),
            })
    }

    pub fn new(config: &aws_config::SdkConfig, url: &str) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(config),
            url: url.to_string(),
        }
    }

    fn error(&self, action: &'static str, e: impl Into<crate::aws::Cause>) -> QueueError {
        QueueError {
            queue: self.url.clone(),
            action,
            source: e.into(),
        }
    }

    /// Long-polls for up to `max` messages, each hidden from other readers for `visibility`.
    pub async fn receive(
        &self,
        max: i32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, MAX_MESSAGES))
            .wait_time_seconds(wait.min(MAX_WAIT).as_secs() as i32)
            .visibility_timeout(visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| self.error("receiving messages", e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let attrs = m.attributes.unwrap_or_default();
                let attr = |name: MessageSystemAttributeName| {
                    attrs.get(&name).and_then(|v| v.parse::<i64>().ok())
                };
                Some(Message {
                    id: m.message_id.unwrap_or_default(),
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    receives: attr(MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(1)
                        as u32,
                    sent_ms: attr(MessageSystemAttributeName::SentTimestamp),
                })
            })
            .collect())
    }

    /// Deletes messages (ten to a call); returns the ids of those that could not be deleted.
    pub async fn delete(&self, messages: &[&Message]) -> Result<Vec<String>, QueueError> {
        let mut failed = Vec::new();
        for group in messages.chunks(MAX_MESSAGES as usize) {
            let entries: Vec<_> = group
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&m.receipt)
                        .build()
                })
                .collect::<Result<_, _>>()
                .map_err(|e| self.error("DeleteMessageBatch", e))?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error("deleting messages", e))?;
            for f in out.failed {
                if let Some(m) = f.id.parse::<usize>().ok().and_then(|i| group.get(i)) {
                    tracing::warn!(
                        message = m.id.as_str(),
                        "SQS did not delete the message: {}",
                        f.message.unwrap_or_default()
                    );
                    failed.push(m.id.clone());
                }
            }
        }
        Ok(failed)
    }

    /// Sets how long a message stays hidden from now: longer to keep it while in work (a
    /// heartbeat), zero to hand it back at once.
    pub async fn set_visibility(
        &self,
        message: &Message,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&message.receipt)
            .visibility_timeout(visibility.as_secs() as i32)
            .send()
            .await
            .map_err(|e| self.error("changing visibility", e))?;
        Ok(())
    }
}
