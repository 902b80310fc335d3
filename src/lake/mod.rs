//! The lake: every decoded record kept as Parquet under Hive partitions, for hunts that read a
//! few columns of a few partitions instead of every gzip object again.
//!
//! ```text
//! DEST/cloudtrail/date=2026-10-05/account=111122223333/region=us-east-1/<file>.parquet
//! DEST/bedrock_invocations/date=.../account=.../region=.../<file>.parquet
//! DEST/findings/date=.../<file>.parquet
//! ```
//!
//! * Files hold the `cloudtrail` and `bedrock_invocations` tables' columns, as the
//!   detections see them (nested structs kept); the partition values are in the path only.
//! * `date` is the record's event date (UTC), `account` its `recipientAccountId`, `region` its
//!   `awsRegion`. A value that is not a well-formed date, 12-digit account or region name
//!   (the records are the attacker's to write) goes to the partition `unknown`, so no record
//!   can name a directory.
//! * Files are named after the objects they came from ([`group`]), and written whole under a
//!   hidden name then renamed: writing the same objects again replaces their files, and a
//!   reader never sees half a file.

pub mod compact;
pub mod ddl;
pub mod findings;
pub mod group;
pub mod prune;
pub mod read;
pub mod s3;
pub mod write;

use std::path::PathBuf;

pub use group::{GroupsThread, ReplayGroups};
pub use write::{LakeWriter, Written};

/// The directory of the `cloudtrail` table in a lake.
pub const CLOUDTRAIL_DIR: &str = "cloudtrail";
/// The directory of the `bedrock_invocations` table in a lake.
pub const INVOCATIONS_DIR: &str = "bedrock_invocations";
/// The directory of the `findings` table in a lake.
pub const FINDINGS_DIR: &str = "findings";
/// The partition columns of the record tables, outermost first.
pub const PARTITION_COLUMNS: [&str; 3] = ["date", "account", "region"];
/// The partition value of a date, account or region that is missing or not well formed.
pub const UNKNOWN: &str = "unknown";
/// Extension of the lake's data files; anything else under the tables is not read.
pub const EXTENSION: &str = ".parquet";

/// Why the lake could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: Parquet: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("lake {0}")]
    BadLocation(String),
    #[error("{url}: {source}")]
    S3 {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("lake {0}: no such directory")]
    Missing(PathBuf),
}

/// Where a lake is: a local directory, or `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(String),
}

impl Location {
    /// `dest` as a lake location: `s3://BUCKET/PREFIX`, or a directory (any other scheme is
    /// refused rather than taken for a directory named `gs:`).
    pub fn parse(dest: &str) -> Result<Self, LakeError> {
        if dest.starts_with("s3://") {
            s3::parse_url(dest)?;
            return Ok(Self::S3(dest.trim_end_matches('/').to_string()));
        }
        if let Some((scheme, _)) = dest.split_once("://") {
            return Err(LakeError::BadLocation(format!(
                "{dest:?}: {scheme}:// is not supported; give a directory or s3://BUCKET/PREFIX"
            )));
        }
        if dest.is_empty() {
            return Err(LakeError::BadLocation(
                "\"\": give a directory or s3://BUCKET/PREFIX".into(),
            ));
        }
        Ok(Self::Local(PathBuf::from(dest)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(dir) => write!(f, "{}", dir.display()),
            Self::S3(url) => f.write_str(url),
        }
    }
}

impl std::str::FromStr for Location {
    type Err = LakeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One partition of a record table: the directory path below the table's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    pub date: String,
    pub account: String,
    pub region: String,
}

impl Partition {
    /// The partition of a record from its event time (microseconds), account and region, each
    /// checked ([`date_value`], [`account_value`], [`region_value`]).
    pub fn of(time: Option<i64>, account: Option<&str>, region: Option<&str>) -> Self {
        Self {
            date: date_value(time),
            account: account_value(account).to_string(),
            region: region_value(region).to_string(),
        }
    }

    /// `date=D/account=A/region=R`.
    pub fn path(&self) -> String {
        format!(
            "date={}/account={}/region={}",
            self.date, self.account, self.region
        )
    }
}

/// The UTC date of an event time, `YYYY-MM-DD`; [`UNKNOWN`] without one (or past year 9999).
pub fn date_value(micros: Option<i64>) -> String {
    micros
        .and_then(chrono::DateTime::from_timestamp_micros)
        .filter(|t| (1970..=9999).contains(&chrono::Datelike::year(&t.date_naive())))
        .map_or_else(
            || UNKNOWN.to_string(),
            |t| t.date_naive().format("%Y-%m-%d").to_string(),
        )
}

/// An account id as a partition value: twelve digits, or [`UNKNOWN`].
pub fn account_value(account: Option<&str>) -> &str {
    match account {
        Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => a,
        _ => UNKNOWN,
    }
}

/// A region name as a partition value (`us-east-1`, `us-gov-west-1`, `eu-isoe-west-1`: lower
/// case letters, digits and dashes, starting with a letter, at most 32 characters), or
/// [`UNKNOWN`].
pub fn region_value(region: Option<&str>) -> &str {
    match region {
        Some(r)
            if (4..=32).contains(&r.len())
                && r.starts_with(|c: char| c.is_ascii_lowercase())
                && r.contains('-')
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            r
        }
        _ => UNKNOWN,
    }
}

/// A short, stable name for `text`: the first 16 hex digits of its SHA-256.
pub fn stable_name(text: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `records` (CloudTrail records as JSON) decoded as the object `key` would be.
    pub(crate) fn decoded(key: &str, records: &[String]) -> datafusion::arrow::array::RecordBatch {
        let body = format!(r#"{{"Records":[{}]}}"#, records.join(","));
        crate::decode::decode_object(
            crate::source::classify(key),
            key,
            body.as_bytes(),
            &crate::decode::DecodeOptions::default(),
        )
        .batch
        .unwrap()
    }

    #[test]
    fn partition_values_cannot_name_a_directory() {
        let p = Partition::of(
            Some(1_759_622_400_000_000),
            Some("111122223333"),
            Some("us-east-1"),
        );
        assert_eq!(
            p.path(),
            "date=2025-10-05/account=111122223333/region=us-east-1"
        );
        for bad in ["../../etc", "1111222233334", "11112222333a", "", "a/b"] {
            assert_eq!(account_value(Some(bad)), UNKNOWN, "{bad}");
        }
        for bad in [
            "../x",
            "US-EAST-1",
            "us_east_1",
            "useast1",
            "-us-east-1",
            "us-east-1/..",
            "",
        ] {
            assert_eq!(region_value(Some(bad)), UNKNOWN, "{bad}");
        }
        assert_eq!(region_value(Some("us-gov-west-1")), "us-gov-west-1");
        assert_eq!(date_value(None), UNKNOWN);
        assert_eq!(date_value(Some(i64::MAX)), UNKNOWN);
        assert_eq!(date_value(Some(-1)), UNKNOWN);
        assert_eq!(
            Partition::of(None, None, None).path(),
            "date=unknown/account=unknown/region=unknown"
        );
    }

    #[test]
    fn stable_names_are_stable() {
        assert_eq!(stable_name("a"), stable_name("a"));
        assert_ne!(stable_name("a"), stable_name("b"));
        assert_eq!(stable_name("a").len(), 16);
    }

    #[test]
    fn a_lake_is_a_directory_or_an_s3_prefix() {
        assert_eq!(
            Location::parse("s3://bucket/lake/").unwrap(),
            Location::S3("s3://bucket/lake".into())
        );
        assert_eq!(
            Location::parse("lake").unwrap(),
            Location::Local(PathBuf::from("lake"))
        );
        for bad in ["gs://bucket/lake", "s3://B/lake", "s3://bucket/../x", ""] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
