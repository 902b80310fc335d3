//! One detection as written in a `detections/*.toml` file: what it finds (the SQL), how its
//! matches become findings (grouping, threshold, window), what a finding says, and the tests
//! that prove it.
//!
//! ```toml
//! id = "kms-key-deletion-scheduled"
//! title = "KMS key scheduled for deletion"
//! description = "{actor} scheduled KMS key {key} for deletion"
//! type = "Impact:KMS/KeyDeletionScheduled"
//! severity = 7
//! category = "key-policy"
//! mitre = ["T1485"]
//! sql = """
//! SELECT *, requestparameters->>'keyId' AS key
//! FROM cloudtrail
//! WHERE eventsource = 'kms.amazonaws.com' AND eventname = 'ScheduleKeyDeletion'
//! """
//!
//! [[tests]]
//! name = "a key scheduled for deletion"
//! findings = 1
//! records = ['''{"eventSource": "kms.amazonaws.com", "eventName": "ScheduleKeyDeletion"}''']
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// GuardDuty's threat purposes: the part of a finding type before the colon.
pub const THREAT_PURPOSES: &[&str] = &[
    "AttackSequence",
    "Backdoor",
    "Behavior",
    "CredentialAccess",
    "CryptoCurrency",
    "DefenseEvasion",
    "Discovery",
    "Execution",
    "Exfiltration",
    "Impact",
    "InitialAccess",
    "PenTest",
    "Persistence",
    "Policy",
    "PrivilegeEscalation",
    "Recon",
    "Stealth",
    "Trojan",
    "UnauthorizedAccess",
];

/// The names a description or `group_by` may use besides the query's columns.
pub const DERIVED_FIELDS: &[(&str, &str)] = &[
    (
        "actor",
        "who acted: the principal's ARN, the AWS service, or the principal id",
    ),
    (
        "account",
        "the account the events were recorded in (recipientaccountid)",
    ),
    ("region", "the region of the first event"),
    ("access_key", "the access key id used"),
    ("source_ip", "sourceipaddress of the first event"),
    ("user_agent", "useragent of the first event"),
    ("count", "how many distinct events are behind the finding"),
    ("first_seen", "event time of the earliest event"),
    ("last_seen", "event time of the latest event"),
];

/// Where a detection came from: a file (built in or the user's) and its text.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The path shown in messages (`detections/kms/x.toml` for built-ins).
    pub path: PathBuf,
    pub builtin: bool,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

/// A problem with a detection file, located at a line where one is known.
#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct RuleError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

pub use crate::finding::Severity;

/// A threshold: fire only when a group reaches `count` matching events (or distinct values
/// of a field) within `window`.
#[derive(Debug, Clone)]
pub struct Threshold {
    pub count: usize,
    pub window: Duration,
    /// Count distinct values of this field instead of events.
    pub distinct: Option<String>,
    /// Add up this numeric field (token counts, bytes) instead of counting events: the
    /// threshold is reached when the sum within the window is at least `count`.
    pub sum: Option<String>,
}

/// What kind of detection a file declares. A plain detection (`kind = "match"`, the default)
/// reports what its query returns; the others keep memory between chunks and runs (see
/// [`crate::detect::stats`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Stateful {
    /// A value never seen for an entity within the lookback (the query returns `entity` and
    /// `value` columns).
    FirstSeen(FirstSeen),
    /// An entity's count of events (or of distinct `value`s) in a time bucket far above its
    /// own history (the query returns an `entity` column).
    Rate(Rate),
    /// Records that are no finding alone but a step of a sequence.
    Signal,
    /// Steps (other detections' findings or signals) by one principal or key within a window.
    Sequence(Sequence),
}

impl Stateful {
    /// The `kind` as written in a detection file.
    pub fn kind(&self) -> &'static str {
        match self {
            Stateful::FirstSeen(_) => "first-seen",
            Stateful::Rate(_) => "rate",
            Stateful::Signal => "signal",
            Stateful::Sequence(_) => "sequence",
        }
    }
}

/// Parameters of a first-seen detector.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstSeen {
    /// A value not seen for this long is new again.
    pub lookback: Duration,
    /// An entity must have been known this long before a new value of it is reported (so a new
    /// principal or key does not make a finding of everything it does).
    pub min_entity_age: Duration,
    /// Report findings; when false the detector only signals sequences.
    pub report: bool,
    /// An entity that keeps showing new values (this many, each within the lookback of the
    /// one before) is volatile: its new values are neither findings nor sequence steps. A CI
    /// role on hosted runners comes from a new network every run; a person does not.
    pub volatile_after: Option<u64>,
}

/// Parameters of a rate detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// Length of a counting bucket.
    pub bucket: Duration,
    /// History the baseline is made of.
    pub lookback: Duration,
    /// Fire when a bucket's count is at least this many times the baseline...
    pub multiple: f64,
    /// ...and at least this many.
    pub floor: u64,
    /// The baseline is the median plus this many (scaled) median absolute deviations.
    pub mad: f64,
    /// Compare only with the same hours of the day (±1 h) on earlier days.
    pub daily_cycle: bool,
    /// Count distinct values of the `value` column instead of events.
    pub distinct: bool,
    /// An entity needs this much history of its own before a finding (a newer one still
    /// signals bursts above the floor to sequences).
    pub min_entity_age: Duration,
    /// Report findings; when false the detector only signals sequences.
    pub report: bool,
}

/// What joins the steps of a sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Join {
    /// The principal: the role (not the session) for assumed roles, else the ARN.
    Principal,
    /// The access key id.
    AccessKey,
}

/// Parameters of a sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub window: Duration,
    pub join: Join,
    /// Detection ids; each must have fired or signalled within the window. A step may name
    /// alternatives, `a|b`.
    pub steps: Vec<String>,
    /// The steps must happen in the order listed.
    pub ordered: bool,
    /// One record may be more than one step (an `AttachUserPolicy` that is also the key's
    /// first call from a new network). Off by default: each step is its own record, and a
    /// finding counts each record once.
    pub shared_events: bool,
}

/// A sample record set and what the detection must make of it.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub name: String,
    /// Findings expected.
    pub findings: usize,
    /// Records as JSON text; missing `eventID`, `eventTime` and the like are filled in.
    pub records: Vec<String>,
    /// Stateful detections: records seen before `records`, once a day on each of the
    /// `history_days` days before (their findings are not counted).
    pub history: Vec<String>,
    pub history_days: u32,
    /// Stateful detections: `records` are given this many times over.
    pub repeat: u32,
    pub line: usize,
}

/// A parsed, validated detection (its SQL is checked when an engine plans it).
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub description: String,
    pub finding_type: String,
    pub severity: Severity,
    pub category: String,
    pub mitre: Vec<String>,
    /// Attack-simulation techniques the detection finds (Stratus Red Team ids such as
    /// `aws.defense-evasion.cloudtrail-stop`), for `rules coverage`.
    pub stratus: Vec<String>,
    /// The detection's query over the table; `None` for a sequence, which is made of other
    /// detections' findings and signals, not of records.
    pub sql: Option<String>,
    /// Line of the file on which the SQL text begins.
    pub sql_line: usize,
    /// Fields whose values tell one finding's subject from another (default: `actor`).
    pub group_by: Vec<String>,
    pub threshold: Option<Threshold>,
    /// Matches of one group within this window (aligned to UTC midnight) are one finding.
    pub aggregate_window: Duration,
    pub enabled: bool,
    /// `None` for a plain detection.
    pub stateful: Option<Stateful>,
    pub tests: Vec<RuleTest>,
    pub origin: Origin,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    title: String,
    description: Spanned<String>,
    #[serde(rename = "type")]
    finding_type: Spanned<String>,
    severity: Spanned<toml::Value>,
    category: Spanned<String>,
    #[serde(default)]
    mitre: Vec<String>,
    #[serde(default)]
    stratus: Vec<String>,
    #[serde(default)]
    sql: Option<Spanned<String>>,
    #[serde(default)]
    kind: Option<Spanned<String>>,
    #[serde(default)]
    first_seen: Option<Spanned<RawFirstSeen>>,
    #[serde(default)]
    rate: Option<Spanned<RawRate>>,
    #[serde(default)]
    sequence: Option<Spanned<RawSequence>>,
    #[serde(default)]
    group_by: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    threshold: Option<Spanned<RawThreshold>>,
    #[serde(default)]
    aggregate_window: Option<Spanned<String>>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    tests: Vec<Spanned<RawTest>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    count: usize,
    window: String,
    #[serde(default)]
    distinct: Option<String>,
    #[serde(default)]
    sum: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFirstSeen {
    lookback: Option<String>,
    min_entity_age: Option<String>,
    report: Option<bool>,
    volatile_after: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRate {
    bucket: Option<String>,
    lookback: Option<String>,
    multiple: Option<f64>,
    floor: Option<u64>,
    mad: Option<f64>,
    daily_cycle: Option<bool>,
    distinct: Option<bool>,
    min_entity_age: Option<String>,
    report: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSequence {
    window: String,
    join: String,
    steps: Vec<String>,
    #[serde(default)]
    ordered: bool,
    #[serde(default)]
    shared_events: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    findings: usize,
    records: Vec<String>,
    #[serde(default)]
    history: Vec<String>,
    #[serde(default)]
    history_days: u32,
    #[serde(default)]
    repeat: Option<u32>,
}

/// Parses a duration such as `10m`, `1h`, `24h`, `7d`, `30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 10m, 1h or 7d)"))?;
    let secs = match unit.trim() {
        "s" | "sec" | "secs" => n,
        "m" | "min" | "mins" => n * 60,
        "h" | "hr" | "hours" => n * 3600,
        "d" | "day" | "days" => n * 86_400,
        _ => return Err(format!("{text:?} is not a duration: use s, m, h or d")),
    };
    if secs == 0 {
        return Err(format!("{text:?}: a duration must be above zero"));
    }
    Ok(Duration::from_secs(secs))
}

/// Line (1-based) of byte offset `at` in `text`.
pub fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The placeholders `{name}` in a template, with their byte offsets.
pub fn placeholders(template: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push((offset + open, &rest[open + 1..open + close]));
        offset += open + close + 1;
        rest = &rest[open + close + 1..];
    }
    out
}

impl Rule {
    /// Parses and checks one detection file (everything but the SQL's meaning).
    pub fn parse(text: &str, origin: Origin) -> Result<Rule, RuleError> {
        let path = origin.to_string();
        let err = |at: Option<usize>, message: String| RuleError {
            path: path.clone(),
            line: at.map(|a| line_of(text, a)),
            message,
        };
        let raw: RawRule = toml::from_str(text)
            .map_err(|e| err(e.span().map(|s| s.start), e.message().to_string()))?;

        let id = raw.id.get_ref().trim().to_string();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(err(
                Some(raw.id.span().start),
                format!("id {id:?} must be lower-case letters, digits and dashes"),
            ));
        }
        check_type(raw.finding_type.get_ref())
            .map_err(|m| err(Some(raw.finding_type.span().start), m))?;
        let severity = match raw.severity.get_ref() {
            toml::Value::Integer(n) => Severity::parse(&n.to_string()),
            toml::Value::Float(n) => Severity::parse(&n.to_string()),
            toml::Value::String(s) => Severity::parse(s),
            other => Err(format!(
                "severity must be a number or a label, not {}",
                other.type_str()
            )),
        }
        .map_err(|m| err(Some(raw.severity.span().start), m))?;
        let category = raw.category.get_ref().trim().to_string();
        if category.is_empty() {
            return Err(err(
                Some(raw.category.span().start),
                "category is empty".into(),
            ));
        }
        for m in &raw.mitre {
            let ok = m.starts_with('T')
                && m[1..]
                    .split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            if !ok {
                return Err(err(
                    None,
                    format!("mitre {m:?} is not an ATT&CK technique id such as T1098 or T1562.008"),
                ));
            }
        }
        for t in &raw.stratus {
            let ok = t.starts_with("aws.")
                && t.split('.').count() == 3
                && t.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                });
            if !ok {
                return Err(err(
                    None,
                    format!("stratus {t:?} is not an attack-simulation technique id such as aws.defense-evasion.cloudtrail-stop"),
                ));
            }
        }
        let stateful = stateful_of(&raw, &err)?;
        let (sql, sql_line) = match (raw.sql, &stateful) {
            (Some(_), Some(Stateful::Sequence(_))) => {
                return Err(err(
                    None,
                    "a sequence has no sql: it is made of its steps".into(),
                ))
            }
            (None, Some(Stateful::Sequence(_))) => (None, 1),
            (None, _) => return Err(err(None, "missing field `sql`".into())),
            (Some(raw_sql), _) => {
                let sql_span = raw_sql.span();
                let sql = raw_sql.into_inner();
                if sql.trim().is_empty() {
                    return Err(err(Some(sql_span.start), "sql is empty".into()));
                }
                // A multi-line string starts on the line after its opening quotes.
                let opener = &text[sql_span.start..sql_span.end.min(text.len())];
                let line = line_of(text, sql_span.start)
                    + usize::from(
                        opener.starts_with("\"\"\"\n")
                            || opener.starts_with("'''\n")
                            || opener.starts_with("\"\"\"\r\n")
                            || opener.starts_with("'''\r\n"),
                    );
                (Some(sql), line)
            }
        };
        let group_by = match raw.group_by {
            Some(g) if g.get_ref().is_empty() => {
                return Err(err(
                    Some(g.span().start),
                    "group_by is empty; leave it out to group by actor".into(),
                ))
            }
            Some(g) if stateful.is_some() => {
                return Err(err(
                    Some(g.span().start),
                    "group_by is for plain detections; a stateful one is grouped by its entity"
                        .into(),
                ))
            }
            Some(g) => g.into_inner(),
            None => match &stateful {
                Some(Stateful::FirstSeen(_)) => vec!["entity".to_string(), "value".to_string()],
                Some(Stateful::Rate(_) | Stateful::Signal) => vec!["entity".to_string()],
                Some(Stateful::Sequence(_)) => vec!["actor".to_string()],
                None => vec!["actor".to_string()],
            },
        };
        if stateful.is_some() && raw.threshold.is_some() {
            return Err(err(
                None,
                "a threshold is for plain detections; a rate detector has its [rate] table".into(),
            ));
        }
        let threshold = match raw.threshold {
            None => None,
            Some(t) => {
                let at = t.span().start;
                let t = t.into_inner();
                if t.distinct.is_some() && t.sum.is_some() {
                    return Err(err(
                        Some(at),
                        "a threshold counts distinct values or adds up a field, not both".into(),
                    ));
                }
                if t.count < 2 {
                    return Err(err(Some(at), "threshold.count must be 2 or more (leave the threshold out to fire on every match)".into()));
                }
                Some(Threshold {
                    count: t.count,
                    window: parse_duration(&t.window)
                        .map_err(|m| err(Some(at), format!("threshold.window: {m}")))?,
                    distinct: t.distinct,
                    sum: t.sum,
                })
            }
        };
        let aggregate_window = match raw.aggregate_window {
            None => Duration::from_secs(86_400),
            Some(w) => parse_duration(w.get_ref())
                .map_err(|m| err(Some(w.span().start), format!("aggregate_window: {m}")))?,
        };
        let description_at = raw.description.span().start;
        let description = raw.description.into_inner();
        for (at, name) in placeholders(&description) {
            if name.trim().is_empty() {
                return Err(err(
                    Some(description_at + at),
                    "the description has an empty {} placeholder".into(),
                ));
            }
        }
        let tests = raw
            .tests
            .into_iter()
            .map(|t| {
                let line = line_of(text, t.span().start);
                let t = t.into_inner();
                RuleTest {
                    name: t.name,
                    findings: t.findings,
                    records: t.records,
                    history: t.history,
                    history_days: t.history_days,
                    repeat: t.repeat.unwrap_or(1).max(1),
                    line,
                }
            })
            .collect();
        Ok(Rule {
            id,
            title: raw.title.trim().to_string(),
            description: description.trim().to_string(),
            finding_type: raw.finding_type.into_inner(),
            severity,
            category,
            mitre: raw.mitre,
            stratus: raw.stratus,
            sql,
            sql_line,
            group_by,
            threshold,
            aggregate_window,
            enabled: raw.enabled,
            stateful,
            tests,
            origin,
        })
    }
}

/// The stateful part of a detection file: its `kind` and that kind's parameter table.
fn stateful_of(
    raw: &RawRule,
    err: &dyn Fn(Option<usize>, String) -> RuleError,
) -> Result<Option<Stateful>, RuleError> {
    let kind_at = raw.kind.as_ref().map(|k| k.span().start);
    let kind = raw.kind.as_ref().map_or("match", |k| k.get_ref().as_str());
    let duration = |text: &Option<String>, name: &str, default: &str, at: usize| {
        parse_duration(text.as_deref().unwrap_or(default))
            .map_err(|m| err(Some(at), format!("{name}: {m}")))
    };
    let stray = |present: bool, table: &str| -> Result<(), RuleError> {
        if present {
            Err(err(
                kind_at,
                format!(
                    "a [{table}] table belongs to kind = \"{}\" (this is {kind:?})",
                    table.replace('_', "-")
                ),
            ))
        } else {
            Ok(())
        }
    };
    let out = match kind {
        "match" => None,
        "first-seen" => {
            let default = RawFirstSeen::default();
            let (t, at) = raw
                .first_seen
                .as_ref()
                .map(|t| (t.get_ref(), t.span().start))
                .unwrap_or((&default, 0));
            Some(Stateful::FirstSeen(FirstSeen {
                lookback: duration(&t.lookback, "first_seen.lookback", "14d", at)?,
                min_entity_age: duration_or_zero(&t.min_entity_age, "1d")
                    .map_err(|m| err(Some(at), format!("first_seen.min_entity_age: {m}")))?,
                report: t.report.unwrap_or(true),
                volatile_after: t.volatile_after,
            }))
        }
        "rate" => {
            let default = RawRate::default();
            let (t, at) = raw
                .rate
                .as_ref()
                .map(|t| (t.get_ref(), t.span().start))
                .unwrap_or((&default, 0));
            let multiple = t.multiple.unwrap_or(10.0);
            if multiple.is_nan() || multiple < 1.0 {
                return Err(err(Some(at), "rate.multiple must be 1 or more".into()));
            }
            let mad = t.mad.unwrap_or(3.0);
            if mad.is_nan() || mad < 0.0 {
                return Err(err(Some(at), "rate.mad must be 0 or more".into()));
            }
            Some(Stateful::Rate(Rate {
                bucket: duration(&t.bucket, "rate.bucket", "10m", at)?,
                lookback: duration(&t.lookback, "rate.lookback", "14d", at)?,
                multiple,
                floor: t.floor.unwrap_or(20).max(1),
                mad,
                daily_cycle: t.daily_cycle.unwrap_or(true),
                distinct: t.distinct.unwrap_or(false),
                min_entity_age: duration_or_zero(&t.min_entity_age, "2d")
                    .map_err(|m| err(Some(at), format!("rate.min_entity_age: {m}")))?,
                report: t.report.unwrap_or(true),
            }))
        }
        "signal" => Some(Stateful::Signal),
        "sequence" => {
            let Some(t) = raw.sequence.as_ref() else {
                return Err(err(
                    kind_at,
                    "a sequence needs a [sequence] table with window, join and steps".into(),
                ));
            };
            let at = t.span().start;
            let t = t.get_ref();
            let join = match t.join.as_str() {
                "principal" => Join::Principal,
                "access_key" | "access-key" => Join::AccessKey,
                other => {
                    return Err(err(
                        Some(at),
                        format!("sequence.join {other:?}: use principal or access_key"),
                    ))
                }
            };
            if t.steps.len() < 2 {
                return Err(err(Some(at), "a sequence needs two steps or more".into()));
            }
            Some(Stateful::Sequence(Sequence {
                window: parse_duration(&t.window)
                    .map_err(|m| err(Some(at), format!("sequence.window: {m}")))?,
                join,
                steps: t.steps.clone(),
                ordered: t.ordered,
                shared_events: t.shared_events,
            }))
        }
        other => {
            return Err(err(
                kind_at,
                format!("kind {other:?}: use match, first-seen, rate, signal or sequence"),
            ))
        }
    };
    stray(
        raw.first_seen.is_some() && !matches!(out, Some(Stateful::FirstSeen(_))),
        "first_seen",
    )?;
    stray(
        raw.rate.is_some() && !matches!(out, Some(Stateful::Rate(_))),
        "rate",
    )?;
    stray(
        raw.sequence.is_some() && !matches!(out, Some(Stateful::Sequence(_))),
        "sequence",
    )?;
    Ok(out)
}

/// A duration that may be `0` (or `0s`), with a default.
fn duration_or_zero(text: &Option<String>, default: &str) -> Result<Duration, String> {
    let t = text.as_deref().unwrap_or(default).trim();
    if t.trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(t)
}

/// Checks a finding type against GuardDuty's `ThreatPurpose:ResourceType/ThreatFamily.Mechanism`.
fn check_type(t: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "type {t:?} must follow GuardDuty's ThreatPurpose:ResourceType/ThreatFamilyName(.Mechanism), for example Stealth:IAMUser/CloudTrailLoggingDisabled"
        )
    };
    let (purpose, rest) = t.split_once(':').ok_or_else(bad)?;
    let (resource, family) = rest.split_once('/').ok_or_else(bad)?;
    if !THREAT_PURPOSES.contains(&purpose) {
        return Err(format!(
            "type {t:?}: {purpose:?} is not one of GuardDuty's threat purposes ({})",
            THREAT_PURPOSES.join(", ")
        ));
    }
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    let family_ok = family
        .split('.')
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '!'));
    if !word(resource) || !family_ok {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            path: "detections/test.toml".into(),
            builtin: false,
        }
    }

    const GOOD: &str = r#"id = "x-y"
title = "T"
description = "{actor} did {eventname}"
type = "Stealth:IAMUser/CloudTrailLoggingDisabled"
severity = "high"
category = "logging-tampering"
mitre = ["T1562.008"]
sql = """
SELECT * FROM cloudtrail
WHERE eventname = 'StopLogging'
"""

[threshold]
count = 3
window = "10m"

[[tests]]
name = "fires"
findings = 1
records = ['{"eventName": "StopLogging"}']
"#;

    #[test]
    fn a_good_rule_parses() {
        let rule = Rule::parse(GOOD, origin()).unwrap();
        assert_eq!(rule.id, "x-y");
        assert_eq!(rule.severity.label(), "High");
        assert_eq!(rule.sql_line, 9);
        assert_eq!(rule.group_by, vec!["actor"]);
        let t = rule.threshold.unwrap();
        assert_eq!((t.count, t.window.as_secs()), (3, 600));
        assert_eq!(rule.tests[0].line, 17);
        assert_eq!(rule.aggregate_window.as_secs(), 86_400);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let bad = GOOD.replace("Stealth:IAMUser", "Sneaky:IAMUser");
        let e = Rule::parse(&bad, origin()).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.to_string().starts_with("detections/test.toml:4: "), "{e}");
        assert!(e.message.contains("threat purposes"), "{e}");

        let bad = GOOD.replace("severity = \"high\"", "severity = 11");
        let e = Rule::parse(&bad, origin()).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");

        let bad = GOOD.replace("count = 3", "count = 3\nspeed = 1");
        let e = Rule::parse(&bad, origin()).unwrap_err();
        assert!(e.message.contains("speed"), "{e}");
        assert_eq!(e.line, Some(15), "{e}");

        let bad = GOOD.replace("window = \"10m\"", "window = \"soon\"");
        assert!(Rule::parse(&bad, origin())
            .unwrap_err()
            .message
            .contains("duration"));
    }

    #[test]
    fn durations_and_placeholders() {
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604_800);
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        let p: Vec<&str> = placeholders("{a} x {b.c} {")
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(p, vec!["a", "b.c"]);
    }
}
