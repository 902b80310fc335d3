//! Reading log objects from S3, with memory bounded by the object size limit.
//!
//! Credentials and region come from the standard chain (the ECS task role in production);
//! `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) points the client elsewhere, as the AWS CLI
//! does, and then keys are addressed path-style (`endpoint/bucket/key`), which servers other
//! than AWS expect. The SDK's standard retry mode backs off and retries throttling and 5xx
//! answers.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;

/// Attempts per request, the first included, before a throttled or failing call gives up.
const MAX_ATTEMPTS: u32 = 6;

/// Why an object could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The object does not exist (deleted before it was read, or a wrong key): retrying will
    /// not help.
    #[error("s3://{bucket}/{key}: the object does not exist")]
    Gone { bucket: String, key: String },
    /// Reading was refused (permissions, KMS): retrying will not help until it is fixed, but
    /// the message is kept so nothing is lost while it is.
    #[error("s3://{bucket}/{key}: access denied ({detail})")]
    Denied {
        bucket: String,
        key: String,
        detail: String,
    },
    #[error(
        "s3://{bucket}/{key}: the object is over the {limit}-byte limit (see --max-object-size)"
    )]
    TooLarge {
        bucket: String,
        key: String,
        limit: usize,
    },
    /// Anything else (network, 5xx after retries): worth trying again later.
    #[error("s3://{bucket}/{key}: {detail}")]
    Failed {
        bucket: String,
        key: String,
        detail: String,
    },
}

impl FetchError {
    /// A short, stable name for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Gone { .. } => "object-gone",
            FetchError::Denied { .. } => "access-denied",
            FetchError::TooLarge { .. } => "too-large",
            FetchError::Failed { .. } => "fetch-failed",
        }
    }

    /// True when a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Failed { .. } | FetchError::Denied { .. })
    }
}

/// The shared AWS configuration: the standard chain, `AWS_ENDPOINT_URL` honoured, and retries
/// with backoff.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await
}

/// An S3 client for `config`: path-style addressing when the endpoint is not AWS's own.
pub fn client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom = config.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Fetches an object's stored bytes, refusing objects larger than `limit` without reading them
/// whole.
pub async fn fetch(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let names = || (bucket.to_string(), key.to_string());
    let response = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            let (bucket, key) = names();
            match &e {
                SdkError::ServiceError(s) if matches!(s.err(), GetObjectError::NoSuchKey(_)) => {
                    FetchError::Gone { bucket, key }
                }
                SdkError::ServiceError(s) if s.raw().status().as_u16() == 404 => {
                    FetchError::Gone { bucket, key }
                }
                SdkError::ServiceError(s) if s.raw().status().as_u16() == 403 => {
                    FetchError::Denied {
                        bucket,
                        key,
                        detail: s.err().message().unwrap_or("403").to_string(),
                    }
                }
                _ => FetchError::Failed {
                    bucket,
                    key,
                    detail: describe(&e),
                },
            }
        })?;
    let too_large = || {
        let (bucket, key) = names();
        FetchError::TooLarge { bucket, key, limit }
    };
    let length = response.content_length().unwrap_or(0).max(0) as usize;
    if length > limit {
        return Err(too_large());
    }
    let mut body = response.body;
    let mut out = Vec::with_capacity(length);
    while let Some(part) = body.try_next().await.map_err(|e| {
        let (bucket, key) = names();
        FetchError::Failed {
            bucket,
            key,
            detail: format!("reading the body: {e}"),
        }
    })? {
        if out.len() + part.len() > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&part);
    }
    Ok(out)
}

/// An SDK error with its causes, in one line.
pub fn describe<E: std::error::Error>(e: &E) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
