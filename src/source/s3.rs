//! Reading log objects from S3, with memory bounded by the object size limit. Clients,
//! credentials, endpoints and retries are [`crate::aws`]'s.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;

use crate::aws::Cause;

/// Why an object could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The object does not exist (deleted before it was read, or a wrong key): retrying will
    /// not help.
    #[error("s3://{bucket}/{key}: the object does not exist")]
    Gone { bucket: String, key: String },
    /// Reading was refused (permissions, KMS): retrying will not help until it is fixed, but
    /// the message is kept so nothing is lost while it is.
    #[error("s3://{bucket}/{key}: access denied")]
    Denied {
        bucket: String,
        key: String,
        #[source]
        cause: Cause,
    },
    #[error(
        "s3://{bucket}/{key}: the object is over the {limit}-byte limit (see --max-object-size)"
    )]
    TooLarge {
        bucket: String,
        key: String,
        limit: usize,
    },
    /// Anything else (network, 5xx after retries): worth trying again later. `doing` says what
    /// failed ("fetching", "listing", ...).
    #[error("s3://{bucket}/{key}: {doing} failed")]
    Failed {
        bucket: String,
        key: String,
        doing: &'static str,
        #[source]
        cause: Cause,
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

/// Fetches an object's stored bytes, refusing objects larger than `limit` without reading them
/// whole. With `owner`, S3 refuses the read unless that account owns the bucket
/// (`ExpectedBucketOwner`).
pub async fn fetch(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    limit: usize,
    owner: Option<&str>,
) -> Result<Vec<u8>, FetchError> {
    fetch_within(client, bucket, key, limit, owner, None)
        .await
        .map(|(bytes, _)| bytes)
}

/// [`fetch`], reserving the object's stored bytes from `budget` (when given) once S3 has said
/// how many there are and before reading them. An object larger than the budget's share for
/// stored bytes is refused as too large. The reservation comes back with the bytes, to be
/// dropped when they are.
pub async fn fetch_within(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    limit: usize,
    owner: Option<&str>,
    budget: Option<&crate::memory::Budget>,
) -> Result<(Vec<u8>, Option<crate::memory::Reservation>), FetchError> {
    let limit = budget.map_or(limit, |b| limit.min(b.fetch_ceiling()));
    let names = || (bucket.to_string(), key.to_string());
    let response = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_expected_bucket_owner(owner.map(str::to_string))
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
                    let cause = s.err().message().unwrap_or("403 Forbidden").to_string();
                    FetchError::Denied {
                        bucket,
                        key,
                        cause: cause.into(),
                    }
                }
                _ => FetchError::Failed {
                    bucket,
                    key,
                    doing: "fetching",
                    cause: e.into(),
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
    let reserved = match budget {
        Some(budget) => Some(budget.reserve_fetch(length).await),
        None => None,
    };
    // Without a stated length, no more than was reserved.
    let limit = reserved.as_ref().map_or(limit, |r| limit.min(r.bytes()));
    let mut body = response.body;
    let mut out = Vec::with_capacity(length);
    while let Some(part) = body.try_next().await.map_err(|e| {
        let (bucket, key) = names();
        FetchError::Failed {
            bucket,
            key,
            doing: "reading the body",
            cause: e.into(),
        }
    })? {
        if out.len() + part.len() > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&part);
    }
    Ok((out, reserved))
}

/// An `s3://bucket/prefix` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// The key prefix, without a leading or trailing `/`.
    pub prefix: String,
}

impl S3Url {
    pub fn parse(url: &str) -> Option<S3Url> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then(|| S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }
}

/// Which day folders of a trail to list: the days of [since, until], each account and region
/// (all when the lists are empty).
#[derive(Debug, Clone, Default)]
pub struct DayFilter {
    pub since: i64,
    pub until: i64,
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
}

/// One listing of `prefix`, every page: the objects (with sizes), and with a `delimiter` the
/// folders (common prefixes) directly under it.
async fn list(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
) -> Result<(Vec<(String, u64)>, Vec<String>), FetchError> {
    let (mut objects, mut folders) = (Vec::new(), Vec::new());
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_delimiter(delimiter.map(str::to_string))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| FetchError::Failed {
            bucket: bucket.to_string(),
            key: prefix.to_string(),
            doing: "listing",
            cause: e.into(),
        })?;
        objects.extend(
            page.contents()
                .iter()
                .filter_map(|o| Some((o.key()?.to_string(), o.size().unwrap_or(0).max(0) as u64))),
        );
        folders.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
    }
    Ok((objects, folders))
}

/// Folders (common prefixes) directly under `prefix`.
async fn folders(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, FetchError> {
    Ok(list(client, bucket, prefix, Some("/")).await?.1)
}

/// Every object under `prefix`, with its size.
pub async fn list_all(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, u64)>, FetchError> {
    Ok(list(client, bucket, prefix, None).await?.0)
}

/// The last path segment of a folder (`a/b/c/` → `c`).
fn segment(folder: &str) -> &str {
    folder
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// The objects of a trail's day folders: `[prefix/]AWSLogs/[o-org/]ACCOUNT/CloudTrail/REGION/
/// YYYY/MM/DD/`, every day from `since` to `until` and the day after (a file is delivered up to
/// a quarter of an hour after its last event), each listed whole. A whole day is listed, never
/// "keys after the last one seen", so files delivered late are not missed.
pub async fn list_days(
    client: &aws_sdk_s3::Client,
    url: &S3Url,
    filter: &DayFilter,
) -> Result<Vec<(String, u64)>, FetchError> {
    let root = if url.prefix.is_empty() {
        "AWSLogs/".to_string()
    } else if url.prefix.ends_with("AWSLogs") {
        format!("{}/", url.prefix)
    } else {
        format!("{}/AWSLogs/", url.prefix)
    };
    let bucket = url.bucket.as_str();
    let mut accounts = Vec::new();
    for folder in folders(client, bucket, &root).await? {
        let name = segment(&folder);
        if name.starts_with("o-") {
            // An organisation trail: accounts one level down.
            accounts.extend(folders(client, bucket, &folder).await?);
        } else {
            accounts.push(folder);
        }
    }
    accounts.retain(|a| {
        let id = segment(a);
        id.len() == 12
            && id.bytes().all(|b| b.is_ascii_digit())
            && (filter.accounts.is_empty() || filter.accounts.iter().any(|x| x == id))
    });
    let mut regions = Vec::new();
    for account in &accounts {
        for region in folders(client, bucket, &format!("{account}CloudTrail/")).await? {
            if filter.regions.is_empty() || filter.regions.iter().any(|r| r == segment(&region)) {
                regions.push(region);
            }
        }
    }
    let first = chrono::DateTime::from_timestamp_micros(filter.since)
        .unwrap_or_default()
        .date_naive();
    let last = chrono::DateTime::from_timestamp_micros(filter.until)
        .unwrap_or_default()
        .date_naive()
        .succ_opt()
        .unwrap_or(first);
    let mut days = Vec::new();
    let mut day = first;
    while day <= last {
        days.push(day.format("%Y/%m/%d/").to_string());
        day = day.succ_opt().unwrap_or(last);
        if days.len() > 100_000 {
            break;
        }
    }
    let prefixes: Vec<String> = regions
        .iter()
        .flat_map(|r| days.iter().map(move |d| format!("{r}{d}")))
        .collect();
    use futures::StreamExt;
    let listed: Vec<Result<Vec<(String, u64)>, FetchError>> = futures::stream::iter(prefixes)
        .map(|p| async move { list_all(client, bucket, &p).await })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut out = Vec::new();
    for l in listed {
        out.extend(l?);
    }
    out.sort();
    Ok(out)
}

/// S3 for synchronous callers (the readers of `replay` and `hunt`): one client and runtime for
/// the process.
pub struct Blocking {
    runtime: tokio::runtime::Runtime,
    pub client: aws_sdk_s3::Client,
}

impl Blocking {
    /// The process's S3 access, made on first use; an error when no runtime can be started
    /// for it (the system refused a thread).
    pub fn get() -> std::io::Result<&'static Blocking> {
        static BLOCKING: std::sync::OnceLock<Blocking> = std::sync::OnceLock::new();
        static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        if let Some(made) = BLOCKING.get() {
            return Ok(made);
        }
        // One maker at a time, so no second runtime is made only to be dropped.
        let _one = crate::sync::lock(&MAKING);
        if let Some(made) = BLOCKING.get() {
            return Ok(made);
        }
        let runtime = crate::aws::runtime("trailhound-s3", 2)?;
        let config = runtime.block_on(crate::aws::config());
        let made = Blocking {
            client: crate::aws::s3_client(&config),
            runtime,
        };
        Ok(BLOCKING.get_or_init(|| made))
    }

    pub fn fetch(&self, bucket: &str, key: &str, limit: usize) -> Result<Vec<u8>, FetchError> {
        self.runtime
            .block_on(fetch(&self.client, bucket, key, limit, None))
    }

    pub fn list_all(&self, url: &S3Url) -> Result<Vec<(String, u64)>, FetchError> {
        self.runtime
            .block_on(list_all(&self.client, &url.bucket, &url.prefix))
    }

    pub fn list_days(
        &self,
        url: &S3Url,
        filter: &DayFilter,
    ) -> Result<Vec<(String, u64)>, FetchError> {
        self.runtime.block_on(list_days(&self.client, url, filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(
            S3Url::parse("s3://b/p/q/").unwrap(),
            S3Url {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert_eq!(S3Url::parse("s3://b").unwrap().prefix, "");
        assert!(S3Url::parse("s3://").is_none());
        assert!(S3Url::parse("/tmp/x").is_none());
        assert_eq!(segment("AWSLogs/o-abc/111122223333/"), "111122223333");
    }
}
