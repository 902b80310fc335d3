//! Telling log objects apart by their key, following the layout CloudTrail and Bedrock use in S3:
//! `[prefix/]AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>.json.gz`, with
//! `CloudTrail-Digest/` and `CloudTrail-Insight/` beside `CloudTrail/`.

use std::fmt;

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// A CloudTrail log file (`.../CloudTrail/...`).
    CloudTrailLog,
    /// A CloudTrail digest file (integrity validation), not events.
    Digest,
    /// A CloudTrail Insights file, not events.
    Insight,
    /// A Bedrock model invocation log.
    BedrockInvocationLog,
    /// Not in CloudTrail's layout but named like JSON (`.json`, `.jsonl`, `.ndjson`, maybe
    /// `.gz`): an export from CloudTrail Lake, Athena or `lookup-events`.
    JsonFile,
    /// Anything else.
    Other,
}

/// The table an object's records are read into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogTable {
    /// `cloudtrail`: CloudTrail events.
    CloudTrail,
    /// `bedrock_invocations`: Bedrock model invocation log records.
    BedrockInvocations,
}

impl KeyKind {
    /// The table objects of this kind are read into; `None` for kinds that hold no records
    /// trailhound reads (digests, insights, anything else), which are passed over.
    pub fn table(self) -> Option<LogTable> {
        match self {
            KeyKind::CloudTrailLog | KeyKind::JsonFile => Some(LogTable::CloudTrail),
            KeyKind::BedrockInvocationLog => Some(LogTable::BedrockInvocations),
            KeyKind::Digest | KeyKind::Insight | KeyKind::Other => None,
        }
    }

    /// Whether objects of this kind are read at all.
    pub fn is_examined(self) -> bool {
        self.table().is_some()
    }

    /// Whether the key holds CloudTrail events this tool reads.
    pub fn holds_events(self) -> bool {
        self.table() == Some(LogTable::CloudTrail)
    }

    /// A short name for counts and messages.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::CloudTrailLog => "cloudtrail log",
            KeyKind::Digest => "cloudtrail digest",
            KeyKind::Insight => "cloudtrail insight",
            KeyKind::BedrockInvocationLog => "bedrock invocation log",
            KeyKind::JsonFile => "json file",
            KeyKind::Other => "not a log",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Classifies an S3 key or a local path (with `/` or `\` separators).
pub fn classify(key: &str) -> KeyKind {
    let key = key.replace('\\', "/");
    let has_dir =
        |dir: &str| key.contains(&format!("/{dir}/")) || key.starts_with(&format!("{dir}/"));
    let file = key.rsplit('/').next().unwrap_or(&key);
    if has_dir("CloudTrail-Digest") || file.contains("_CloudTrail-Digest_") {
        return KeyKind::Digest;
    }
    if has_dir("CloudTrail-Insight") || file.contains("_CloudTrail-Insight_") {
        return KeyKind::Insight;
    }
    if has_dir("BedrockModelInvocationLogs") {
        return KeyKind::BedrockInvocationLog;
    }
    let lower = file.to_ascii_lowercase();
    let stem = lower.strip_suffix(".gz").unwrap_or(&lower);
    let jsonish = stem.ends_with(".json") || stem.ends_with(".jsonl") || stem.ends_with(".ndjson");
    if (has_dir("CloudTrail") || file.contains("_CloudTrail_")) && jsonish {
        return KeyKind::CloudTrailLog;
    }
    if jsonish || lower.ends_with(".gz") {
        return KeyKind::JsonFile;
    }
    KeyKind::Other
}

/// The delivery time in a CloudTrail log file's name (`..._20240102T0305Z_...`), in
/// microseconds since the epoch. Events in the file happened before it.
pub fn delivery_time(key: &str) -> Option<i64> {
    let file = key.rsplit(['/', '\\']).next()?;
    file.split('_').find_map(|part| {
        if part.len() != 14 || part.as_bytes()[8] != b'T' || !part.ends_with('Z') {
            return None;
        }
        chrono::NaiveDateTime::parse_from_str(part, "%Y%m%dT%H%MZ")
            .ok()
            .map(|t| t.and_utc().timestamp_micros())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_recognised() {
        let cases = [
            ("AWSLogs/111122223333/CloudTrail/us-east-1/2024/01/02/111122223333_CloudTrail_us-east-1_20240102T0000Z_abcdefgh12345678.json.gz", KeyKind::CloudTrailLog),
            ("logs/AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/2024/01/02/x_CloudTrail_eu-west-1_20240102T0005Z_0123456789abcdef.json.gz", KeyKind::CloudTrailLog),
            ("AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/01/02/111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20240102T000000Z.json.gz", KeyKind::Digest),
            ("AWSLogs/111122223333/CloudTrail-Insight/us-east-1/2024/01/02/111122223333_CloudTrail-Insight_us-east-1_20240102T0000Z_abc.json.gz", KeyKind::Insight),
            ("AWSLogs/111122223333/BedrockModelInvocationLogs/us-east-1/2024/01/02/10/x.json.gz", KeyKind::BedrockInvocationLog),
            ("exports/lake-2024-01.jsonl", KeyKind::JsonFile),
            ("exports/events.ndjson.gz", KeyKind::JsonFile),
            ("C:\\logs\\AWSLogs\\1\\CloudTrail\\us-east-1\\f.json", KeyKind::CloudTrailLog),
            ("AWSLogs/111122223333/CloudTrail/README.md", KeyKind::Other),
            ("notes.txt", KeyKind::Other),
        ];
        for (key, kind) in cases {
            assert_eq!(classify(key), kind, "{key}");
        }
        assert!(KeyKind::CloudTrailLog.holds_events());
        assert_eq!(
            delivery_time("AWSLogs/1/CloudTrail/us-east-1/2024/01/02/1_CloudTrail_us-east-1_20240102T0305Z_abcdefgh12345678.json.gz"),
            Some(1_704_164_700_000_000)
        );
        assert_eq!(delivery_time("exports/events.jsonl"), None);
        assert!(!KeyKind::Digest.holds_events());
    }
}
