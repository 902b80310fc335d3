//! Where log objects come from: local files, directories and globs, and S3 (`s3://bucket/prefix`
//! listings, and the objects SQS notifications name).

pub mod envelope;
pub mod key;
mod local;
pub mod s3;
pub mod sqs;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use key::{classify, KeyKind, LogTable};

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file on the local file system.
    File(PathBuf),
    /// An S3 object.
    S3 { bucket: String, key: String },
}

/// One log object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub location: Location,
    /// Size as stored, in bytes.
    pub size: u64,
    pub kind: KeyKind,
}

impl ObjectRef {
    /// The key or path, as shown to users and stored in the `sourcekey` column.
    pub fn key(&self) -> String {
        match &self.location {
            Location::File(path) => path.display().to_string(),
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }

    /// Reads the object's stored bytes, refusing objects larger than `limit`.
    pub fn fetch(&self, limit: usize) -> Result<Vec<u8>, SourceError> {
        if self.size > limit as u64 {
            return Err(SourceError::TooLarge {
                key: self.key(),
                size: self.size,
                limit,
            });
        }
        match &self.location {
            Location::File(path) => std::fs::read(path).map_err(|source| SourceError::Io {
                path: path.clone(),
                source,
            }),
            Location::S3 { bucket, key } => s3::Blocking::get()
                .map_err(SourceError::S3Runtime)?
                .fetch(bucket, key, limit)
                .map_err(SourceError::S3),
        }
    }
}

/// Why a source could not be listed or an object fetched.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },
    #[error("{pattern}: the pattern matches no file")]
    NoMatch { pattern: String },
    #[error("{pattern}: not a valid glob pattern: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: not an S3 URL; use s3://BUCKET/PREFIX")]
    BadS3Url { url: String },
    #[error(transparent)]
    S3(#[from] s3::FetchError),
    #[error("cannot start the runtime that reads S3: {0}")]
    S3Runtime(#[source] std::io::Error),
    #[error(
        "{key}: the object is {size} bytes, over the {limit}-byte limit (see --max-object-size)"
    )]
    TooLarge {
        key: String,
        size: u64,
        limit: usize,
    },
}

impl SourceError {
    /// A short, stable name for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::TooLarge { .. } => "too-large",
            _ => "unreadable",
        }
    }
}

/// The objects found under a set of sources, and what was passed over.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectRef>,
    /// Bedrock model invocation logs, for the `bedrock_invocations` table.
    pub invocations: Vec<ObjectRef>,
    /// Keys passed over because they hold no events, counted by kind.
    pub skipped: BTreeMap<KeyKind, usize>,
}

impl Listing {
    /// Files `object` under the table it is read into, or counts it as passed over.
    pub fn add(&mut self, object: ObjectRef, table: Option<LogTable>) {
        match table {
            Some(LogTable::CloudTrail) => self.objects.push(object),
            Some(LogTable::BedrockInvocations) => self.invocations.push(object),
            None => *self.skipped.entry(object.kind).or_default() += 1,
        }
    }

    /// Total stored bytes of the listed objects.
    pub fn total_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} objects ({} bytes)",
            self.objects.len(),
            self.total_bytes()
        )?;
        if !self.invocations.is_empty() {
            write!(f, ", {} Bedrock invocation logs", self.invocations.len())?;
        }
        for (kind, n) in &self.skipped {
            write!(f, ", {n} skipped ({kind})")?;
        }
        Ok(())
    }
}

/// Lists the objects named by `sources`: files, directories (walked), glob patterns, and
/// `s3://bucket/prefix` (everything under the prefix).
pub fn list(sources: &[String]) -> Result<Listing, SourceError> {
    list_with(sources, None)
}

/// Like [`list`]; with `days`, an S3 source is listed a trail day folder at a time (see
/// [`s3::list_days`]) instead of everything under its prefix.
pub fn list_with(sources: &[String], days: Option<&s3::DayFilter>) -> Result<Listing, SourceError> {
    let mut listing = Listing::default();
    for source in sources {
        if source.starts_with("s3://") {
            let url = s3::S3Url::parse(source).ok_or_else(|| SourceError::BadS3Url {
                url: source.clone(),
            })?;
            let s3 = s3::Blocking::get().map_err(SourceError::S3Runtime)?;
            let objects = match days {
                Some(filter) => s3.list_days(&url, filter)?,
                None => s3.list_all(&url)?,
            };
            for (key, size) in objects {
                let kind = classify(&key);
                let object = |key| ObjectRef {
                    location: Location::S3 {
                        bucket: url.bucket.clone(),
                        key,
                    },
                    size,
                    kind,
                };
                listing.add(object(key), kind.table());
            }
            continue;
        }
        local::list(source, &mut listing)?;
    }
    Ok(listing)
}

/// True when any source is in S3 (reading it wants more threads than cores: most of the time
/// goes in waiting for answers).
pub fn any_remote(sources: &[String]) -> bool {
    sources.iter().any(|s| s.starts_with("s3://"))
}
