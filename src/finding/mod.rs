//! Findings: what a detection reports, and the formats it is written in.
//!
//! A [`Finding`] is format-neutral. [`guardduty`] writes it as GuardDuty's finding JSON (the
//! default), [`asff`] as a Security Hub finding (ASFF) and [`ocsf`] as an OCSF Detection
//! Finding (class 2004).

pub mod asff;
pub mod guardduty;
pub mod ocsf;
pub mod sink;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::ValueEnum;
use serde_json::Value;

/// Who acted: the identity behind the records of a finding.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    /// `userIdentity.type`: IAMUser, AssumedRole, Root, AWSService, …
    pub user_type: String,
    pub principal_id: String,
    pub arn: String,
    /// The user name, the role name (for assumed roles) or the service name.
    pub user_name: String,
    pub access_key_id: String,
}

/// The API call a finding is about (the earliest of its records).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApiCall {
    pub api: String,
    pub service_name: String,
    /// `Remote IP`, `Remote Domain` or `AWS Service`, as GuardDuty says.
    pub caller_type: String,
    /// The caller's address when it is an IP address.
    pub ip_address: Option<String>,
    /// `sourceIPAddress` when it is a name rather than an address.
    pub domain: Option<String>,
    pub error_code: Option<String>,
    pub user_agent: Option<String>,
    /// Resource type (`AWS::KMS::Key`, …) to resource ARN, from the records' `resources`.
    pub affected_resources: BTreeMap<String, String>,
}

/// One finding: a detection's matches by one group within one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// Deterministic: a hash of the detection, the group and the window.
    pub id: String,
    /// The detection's id.
    pub detection: String,
    pub finding_type: String,
    pub severity: f64,
    pub title: String,
    pub description: String,
    pub category: String,
    pub mitre: Vec<String>,
    pub account: String,
    pub region: String,
    /// Event time of the earliest and latest record, in microseconds since the epoch.
    pub first_seen: i64,
    pub last_seen: i64,
    /// Distinct events behind the finding.
    pub count: usize,
    /// The eventID of every record behind the finding, in event-time order.
    pub event_ids: Vec<String>,
    pub principal: Principal,
    pub action: ApiCall,
    /// The values that define the finding's subject (`group_by`).
    pub group: BTreeMap<String, String>,
    /// When trailhound produced the finding.
    #[serde(with = "micros")]
    pub created_at: DateTime<Utc>,
}

/// A time stored as microseconds since the epoch.
mod micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_micros())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let micros = i64::deserialize(d)?;
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| serde::de::Error::custom("time out of range"))
    }
}

/// Most eventIDs a finding lists; `count` holds the total. 500 ids are about 20 KB, so a
/// finding fits in one SQS, SNS or EventBridge message (256 KB) whatever the volume of events
/// behind it.
pub const MAX_LISTED_EVENT_IDS: usize = 500;

/// Most characters of any one text of a finding (a description, a user agent, a group value):
/// the records' text is the attacker's to choose, the finding's size is not.
pub const MAX_TEXT_CHARS: usize = 1024;

/// Cuts `text` to [`MAX_TEXT_CHARS`], marking the cut with `…`.
fn bound_text(text: &mut String) {
    if let Some((at, _)) = text.char_indices().nth(MAX_TEXT_CHARS) {
        text.truncate(at);
        text.push('…');
    }
}

impl Finding {
    /// True when `count` is more than the eventIDs listed (at most [`MAX_LISTED_EVENT_IDS`]).
    pub fn event_ids_truncated(&self) -> bool {
        self.count > self.event_ids.len()
    }

    /// Holds the finding to its size bounds: the first [`MAX_LISTED_EVENT_IDS`] eventIDs
    /// (`count` keeps the total) and texts of at most [`MAX_TEXT_CHARS`].
    pub fn bound(&mut self) {
        self.event_ids.truncate(MAX_LISTED_EVENT_IDS);
        bound_text(&mut self.description);
        self.group.values_mut().for_each(bound_text);
        let p = &mut self.principal;
        for text in [
            &mut p.user_type,
            &mut p.principal_id,
            &mut p.arn,
            &mut p.user_name,
            &mut p.access_key_id,
        ] {
            bound_text(text);
        }
        let a = &mut self.action;
        for text in [&mut a.api, &mut a.service_name, &mut a.caller_type] {
            bound_text(text);
        }
        for text in [
            &mut a.ip_address,
            &mut a.domain,
            &mut a.error_code,
            &mut a.user_agent,
        ]
        .into_iter()
        .flatten()
        {
            bound_text(text);
        }
        a.affected_resources.values_mut().for_each(bound_text);
        if a.affected_resources
            .keys()
            .any(|k| k.chars().count() > MAX_TEXT_CHARS)
        {
            a.affected_resources = std::mem::take(&mut a.affected_resources)
                .into_iter()
                .map(|(mut k, v)| {
                    bound_text(&mut k);
                    (k, v)
                })
                .collect();
        }
    }

    /// GuardDuty's label for the severity: Low, Medium, High or Critical.
    pub fn severity_label(&self) -> &'static str {
        Severity(self.severity).label()
    }

    /// The AWS partition of the finding's region.
    pub fn partition(&self) -> &'static str {
        partition_of(&self.region)
    }
}

/// The AWS partition a region belongs to.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Microseconds since the epoch as an ISO-8601 UTC time with milliseconds, as AWS writes them.
pub fn iso_time(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// How findings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FindingFormat {
    /// GuardDuty finding JSON (schemaVersion 2.0).
    #[default]
    Guardduty,
    /// AWS Security Finding Format, as Security Hub's BatchImportFindings takes it.
    Asff,
    /// OCSF 1.1 Detection Finding (class_uid 2004).
    Ocsf,
}

impl FindingFormat {
    /// The finding in this format.
    pub fn render(self, finding: &Finding) -> Value {
        match self {
            FindingFormat::Guardduty => guardduty::to_json(finding),
            FindingFormat::Asff => asff::to_json(finding),
            FindingFormat::Ocsf => ocsf::to_json(finding),
        }
    }
}

/// Severity on GuardDuty's scale: Low 1–3.9, Medium 4–6.9, High 7–8.9, Critical 9–10.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Severity(pub f64);

impl Severity {
    pub fn label(self) -> &'static str {
        match self.0 {
            s if s >= 9.0 => "Critical",
            s if s >= 7.0 => "High",
            s if s >= 4.0 => "Medium",
            _ => "Low",
        }
    }

    /// Parses a number or a label (`low`, `medium`, `high`, `critical`: the lowest score of it).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "low" => Ok(Severity(1.0)),
            "medium" => Ok(Severity(4.0)),
            "high" => Ok(Severity(7.0)),
            "critical" => Ok(Severity(9.0)),
            other => other
                .parse::<f64>()
                .ok()
                .filter(|s| (1.0..=10.0).contains(s))
                .map(Severity)
                .ok_or_else(|| {
                    format!(
                        "{text:?} is not a severity: use 1 to 10, or low, medium, high, critical"
                    )
                }),
        }
    }
}

/// An ARN without its `arn:aws:` prefix, for tables a person reads.
pub fn short_arn(arn: &str) -> &str {
    arn.strip_prefix("arn:aws:").unwrap_or(arn)
}

#[cfg(test)]
pub(crate) fn sample() -> Finding {
    Finding {
        id: "0123456789abcdef0123456789abcdef".into(),
        detection: "kms-key-policy-opened".into(),
        finding_type: "Persistence:IAMUser/KMSKeyPolicyOpened".into(),
        severity: 8.0,
        title: "KMS key policy opened".into(),
        description: "x opened key k".into(),
        category: "key-policy".into(),
        mitre: vec!["T1098".into()],
        account: "111122223333".into(),
        region: "eu-west-1".into(),
        first_seen: 1_767_268_800_000_000,
        last_seen: 1_767_268_860_000_000,
        count: 2,
        event_ids: vec!["e1".into(), "e2".into()],
        principal: Principal {
            user_type: "AssumedRole".into(),
            principal_id: "AROAEXAMPLE:maint".into(),
            arn: "arn:aws:sts::111122223333:assumed-role/AdminRole/maint".into(),
            user_name: "AdminRole".into(),
            access_key_id: "ASIAEXAMPLE".into(),
        },
        action: ApiCall {
            api: "PutKeyPolicy".into(),
            service_name: "kms.amazonaws.com".into(),
            caller_type: "Remote IP".into(),
            ip_address: Some("192.0.2.66".into()),
            domain: None,
            error_code: None,
            user_agent: Some("Boto3/1.34".into()),
            affected_resources: BTreeMap::from([(
                "AWS::KMS::Key".to_string(),
                "arn:aws:kms:eu-west-1:111122223333:key/k".to_string(),
            )]),
        },
        group: BTreeMap::from([(
            "actor".to_string(),
            "arn:aws:sts::111122223333:assumed-role/AdminRole/maint".to_string(),
        )]),
        created_at: DateTime::from_timestamp(1_767_300_000, 0).unwrap(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_is_held_to_its_bounds() {
        let mut f = sample();
        f.count = 30_000;
        f.event_ids = (0..30_000).map(|i| format!("event-{i:05}")).collect();
        f.description = "é".repeat(100_000);
        f.action.user_agent = Some("A".repeat(5000));
        f.group.insert("userAgent".into(), "B".repeat(5000));
        f.bound();
        assert_eq!(f.event_ids.len(), MAX_LISTED_EVENT_IDS);
        assert_eq!(f.event_ids[0], "event-00000");
        assert_eq!(f.count, 30_000);
        assert!(f.event_ids_truncated());
        assert_eq!(f.description.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(f.description.ends_with('…'));
        assert_eq!(f.group["userAgent"].chars().count(), MAX_TEXT_CHARS + 1);
        for format in [
            FindingFormat::Guardduty,
            FindingFormat::Asff,
            FindingFormat::Ocsf,
        ] {
            let size = format.render(&f).to_string().len();
            assert!(size < 100_000, "{format:?}: {size} bytes");
        }
        // A finding within bounds is left as it is.
        let mut small = sample();
        small.bound();
        assert_eq!(small, sample());
        assert!(!small.event_ids_truncated());
    }
}
