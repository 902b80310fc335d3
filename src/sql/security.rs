//! SQL functions for detections that need to read inside request parameters:
//!
//! * `policy_outside_principals(policy, account)`: the principals an IAM policy document
//!   (key policy, trust policy, resource policy) allows that are outside `account`, comma
//!   separated, or NULL when there are none. `*` (or `{"AWS": "*"}`) counts as outside unless
//!   the statement's condition pins the caller's account, ARN or organisation to `account` or
//!   to what `--trusted-accounts` declares (accounts and `o-` organisation ids); a condition
//!   naming anyone else's, a negated one or `Null` keeps nobody out.
//! * `policy_allows_all(policy)`: true when an `Allow` statement grants every action, or all of
//!   IAM (any case), on every resource (`*`, `arn:*`, `NotResource`, ...).
//! * `from_base64_text(text)`: base64 decoded as UTF-8 text (invalid bytes replaced), NULL
//!   when it is not base64.
//! * `s3_bucket(uri)`: the bucket of `s3://bucket/key`, `https://bucket.s3…/key`,
//!   `https://s3…/bucket/key` or `arn:aws:s3:::bucket/key`.
//! * `ip_network(address)`, `is_private_ip(address)`: an address's /24 (IPv4) or /48 (IPv6),
//!   and whether it is off the internet.
//! * `is_pipeline(arn, issuer_arn)`: whether the caller is a declared deployment pipeline.
//! * `threat_listed(address)`, `trusted_ip(address)`: whether an address is on the user's
//!   threat list (`--threat-list`) or in their trusted ranges (`--trusted-ips`); false for
//!   anything that is not an address and when no list was given.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use serde_json::Value;

/// What the user tells the detections about their own estate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Trust {
    /// Accounts that are not "outside" for `policy_outside_principals` (the organisation's
    /// own).
    pub accounts: BTreeSet<String>,
    /// The deployment pipelines' identities, as ARN patterns (`*` matches any run of
    /// characters): IAM roles (`arn:aws:iam::*:role/github-actions-*`) or users. For
    /// `is_pipeline`.
    pub pipelines: Vec<String>,
    /// `--threat-list`: addresses any call from is a finding, for `threat_listed`.
    pub threats: crate::detect::ip_list::IpList,
    /// `--trusted-ips`: ranges the network-based detections leave out, for `trusted_ip`.
    pub trusted_networks: crate::detect::ip_list::IpList,
}

impl Trust {
    /// True when `arn` (a role's or a user's) matches one of the pipeline patterns.
    pub fn is_pipeline(&self, arn: &str) -> bool {
        self.pipelines.iter().any(|p| wildcard_match(p, arn))
    }
}

/// `pattern` against `text`, `*` matching any run of characters (none included) and `?` any
/// one, case-sensitively, as IAM matches ARNs.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and how much of the text it has taken.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The user's [`Trust`], shared by the functions that use it.
pub type TrustedAccounts = Arc<Trust>;

fn as_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other],
    }
}

fn statements(policy: &Value) -> Vec<&Value> {
    as_list(policy.get("Statement"))
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    as_list(v).into_iter().filter_map(Value::as_str).collect()
}

/// The account a principal string names, if any: a 12-digit id or an IAM/STS ARN.
fn principal_account(p: &str) -> Option<&str> {
    if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Some(p);
    }
    let mut parts = p.split(':');
    if parts.next() != Some("arn") {
        return None;
    }
    let _partition = parts.next()?;
    let service = parts.next()?;
    let _region = parts.next()?;
    let account = parts.next()?;
    (matches!(service, "iam" | "sts") && !account.is_empty()).then_some(account)
}

/// Whether a statement's condition keeps the callers it allows inside `account` (or the
/// accounts and organisations of `trust`): a matching operator (`StringEquals`, `StringLike`,
/// `ArnEquals`, `ArnLike`, their `IgnoreCase`, `IfExists` and `ForAnyValue:` forms) on a key
/// that names the caller's account, organisation or ARN, every value of which is inside.
/// Negated operators, `Null` = false and `ForAllValues:` keep nobody out, nor does a key
/// compared with a wildcard (`arn:aws:iam::*:role/x`, `o-*`), nor `...IfExists` on the
/// organisation (absent for an account in none): those pass for outsiders too.
fn condition_scopes(statement: &Value, account: &str, trust: &Trust) -> bool {
    let Some(operators) = statement.get("Condition").and_then(Value::as_object) else {
        return false;
    };
    // Keys every AWS principal's request carries: `...IfExists` on them is as strict as
    // without, and `Null` = true on them lets nobody in.
    const ALWAYS_PRESENT: &[&str] = &[
        "aws:principalaccount",
        "aws:principalarn",
        "kms:calleraccount",
    ];
    operators.iter().any(|(operator, keys)| {
        let operator = operator.to_ascii_lowercase();
        let operator = operator.strip_prefix("foranyvalue:").unwrap_or(&operator);
        let (operator, if_exists) = match operator.strip_suffix("ifexists") {
            Some(base) => (base, true),
            None => (operator, false),
        };
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().any(|(key, values)| {
            let key = key.to_ascii_lowercase();
            let values = strings(Some(values));
            let present = ALWAYS_PRESENT.contains(&key.as_str());
            match operator {
                "null" => present && !values.is_empty() && values.iter().all(|v| *v == "true"),
                "stringequals"
                | "stringequalsignorecase"
                | "stringlike"
                | "arnequals"
                | "arnlike" => {
                    let like = matches!(operator, "stringlike" | "arnequals" | "arnlike");
                    (present || !if_exists)
                        && !values.is_empty()
                        && values
                            .iter()
                            .all(|v| value_inside(&key, v, like, account, trust))
                }
                _ => false,
            }
        })
    })
}

/// Whether requiring the condition key `key` to be `value` keeps callers inside. With `like`
/// (`StringLike`, `ArnLike`, `ArnEquals`) `*` and `?` are wildcards, which outsiders may match;
/// otherwise they are literal. A value no outsider can have (not an account id, not an
/// organisation id, an ARN of no account) lets no outsider in either.
fn value_inside(key: &str, value: &str, like: bool, account: &str, trust: &Trust) -> bool {
    let open = |v: &str| like && v.contains(['*', '?']);
    let own = |a: &str| a == account || trust.accounts.contains(a);
    let account_id = |a: &str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
    let org_id = |o: &str| {
        o.strip_prefix("o-").is_some_and(|id| {
            (10..=32).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
    };
    match key {
        "aws:principalaccount" | "aws:sourceaccount" | "kms:calleraccount" => {
            !open(value) && (own(value) || !account_id(value))
        }
        "aws:principalarn" | "aws:sourcearn" => match arn_part(value, 4) {
            // Wildcards only after the account (a role path or name) stay in that account.
            Some(a) => {
                let before_account: String = value.splitn(6, ':').take(5).collect();
                !open(&before_account) && (own(a) || !account_id(a))
            }
            None => !open(value),
        },
        "aws:principalorgid" | "aws:sourceorgid" => {
            !open(value) && (trust.accounts.contains(value) || !org_id(value))
        }
        "aws:principalorgpaths" | "aws:sourceorgpaths" => {
            let org = value.split('/').next().unwrap_or_default();
            !open(org) && (trust.accounts.contains(org) || !org_id(org))
        }
        // Traffic only through a VPC or VPC endpoint: trailhound cannot tell whose it is, and
        // takes it for the account's own.
        "aws:sourcevpce" | "aws:sourcevpc" => !open(value),
        _ => false,
    }
}

/// Part `index` of an ARN (`arn:partition:service:region:account:resource`).
fn arn_part(arn: &str, index: usize) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    (parts.next()? == "arn").then_some(())?;
    parts.nth(index - 1)
}

/// The principals `policy` allows that are outside `account` (and not trusted): a principal of
/// another account, or everyone (`*`, `NotPrincipal`), unless a condition keeps the callers
/// inside (see `condition_scopes`).
pub fn outside_principals(policy: &str, account: &str, trust: &Trust) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for st in statements(&doc) {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let mut names: Vec<String> = Vec::new();
        if st.get("NotPrincipal").is_some() {
            names.push("*".into());
        }
        match st.get("Principal") {
            Some(Value::String(s)) => names.push(s.clone()),
            Some(Value::Object(map)) => {
                for (kind, v) in map {
                    if kind == "AWS" || kind == "CanonicalUser" || kind == "Federated" {
                        names.extend(strings(Some(v)).into_iter().map(str::to_string));
                    }
                }
            }
            _ => {}
        }
        let scoped = condition_scopes(st, account, trust);
        for name in names {
            let foreign = if name == "*" {
                true
            } else {
                match principal_account(&name) {
                    Some(a) => a != account && !trust.accounts.contains(a),
                    None => false,
                }
            };
            if foreign && !scoped && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Whether an `Allow` statement of `policy` grants every action, every IAM action (which is
/// as much: a principal with all of IAM grants itself the rest) or every action but IAM's, on
/// every resource. Actions
/// are matched without regard to case, as IAM matches them; `NotAction` grants what it does
/// not name, `NotResource` every resource but those it names, and `arn:*`, `arn:aws:*` or
/// `*:*:*:*` count as every resource.
pub fn allows_all(policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    statements(&doc).into_iter().any(|st| {
        st.get("Effect").and_then(Value::as_str) == Some("Allow")
            && (grants_all_of_iam(st) || grants_all_but_iam(st))
            && on_every_resource(st)
    })
}

fn all_wildcard(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c == '*')
}

/// Whether an action pattern covers every IAM action (every action included).
fn covers_iam(pattern: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.split_once(':') {
        None => all_wildcard(&pattern),
        Some((service, action)) => wildcard_match(service, "iam") && all_wildcard(action),
    }
}

/// Whether an action pattern names some IAM action.
fn touches_iam(pattern: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.split_once(':') {
        None => pattern.contains('*'),
        Some((service, _)) => wildcard_match(service, "iam"),
    }
}

fn grants_all_of_iam(st: &Value) -> bool {
    if st.get("NotAction").is_some() {
        return !strings(st.get("NotAction")).iter().any(|p| touches_iam(p));
    }
    strings(st.get("Action")).iter().any(|p| covers_iam(p))
}

/// Whether a statement grants every action but (some of) IAM's: a `NotAction` that names IAM
/// actions only, as AWS's PowerUserAccess does. As good as everything: it reaches every
/// secret, key and instance.
fn grants_all_but_iam(st: &Value) -> bool {
    let named = strings(st.get("NotAction"));
    !named.is_empty()
        && named.iter().all(|p| {
            p.to_ascii_lowercase()
                .split_once(':')
                .is_some_and(|(service, _)| service == "iam")
        })
}

/// Whether a resource pattern covers every ARN: `*`, `*:*` and the like (each part all
/// wildcards, at most six), or `arn:` + a partition pattern that matches `aws` + parts that
/// are all wildcards (`arn:*`, `arn:aws:*`, `arn:aws:*:*:*:*`).
fn covers_every_resource(pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split(':').collect();
    if parts.len() > 6 {
        return false;
    }
    if parts.iter().all(|p| all_wildcard(p)) {
        return true;
    }
    parts[0] == "arn"
        && match parts.len() {
            1 => false,
            2 => all_wildcard(parts[1]),
            _ => wildcard_match(parts[1], "aws") && parts[2..].iter().all(|p| all_wildcard(p)),
        }
}

fn on_every_resource(st: &Value) -> bool {
    if st.get("NotResource").is_some() {
        // Every resource but those named: only a NotResource that names everything leaves
        // nothing.
        return !strings(st.get("NotResource"))
            .iter()
            .any(|r| covers_every_resource(r));
    }
    strings(st.get("Resource"))
        .iter()
        .any(|r| covers_every_resource(r))
}

/// Base64 (standard or URL-safe, padded or not) decoded as text.
pub fn base64_text(text: &str) -> Option<String> {
    use base64::Engine;
    let cleaned: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(cleaned.as_bytes()).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// The bucket named by an S3 URI, URL or ARN.
pub fn s3_bucket(uri: &str) -> Option<String> {
    let uri = uri.trim();
    if let Some(rest) = uri
        .strip_prefix("s3://")
        .or_else(|| uri.strip_prefix("s3a://"))
    {
        return rest
            .split('/')
            .next()
            .filter(|b| !b.is_empty())
            .map(str::to_string);
    }
    if let Some(rest) = uri.strip_prefix("arn:") {
        let mut parts = rest.splitn(5, ':');
        let (_p, service, _r, _a, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        return (service == "s3")
            .then(|| resource.split('/').next().unwrap_or_default().to_string())
            .filter(|b| !b.is_empty());
    }
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.starts_with("s3.") || host.starts_with("s3-") {
        return path
            .split('/')
            .next()
            .filter(|b| !b.is_empty())
            .map(str::to_string);
    }
    host.split_once(".s3").map(|(bucket, _)| bucket.to_string())
}

/// Calls `f` with each row's arguments (NULL as `None`), reusing one buffer.
fn for_each_row<'a>(
    columns: &[&'a StringArray],
    rows: usize,
    mut f: impl FnMut(&[Option<&'a str>]),
) {
    let mut args = Vec::with_capacity(columns.len());
    for row in 0..rows {
        args.clear();
        args.extend(
            columns
                .iter()
                .map(|c| (!c.is_null(row)).then(|| c.value(row))),
        );
        f(&args);
    }
}

type TextFn = fn(&[Option<&str>], &Trust) -> Option<String>;
type BoolFn = fn(&[Option<&str>], &Trust) -> Option<bool>;

#[derive(Debug, Clone, Copy)]
enum Body {
    Text(TextFn),
    Bool(BoolFn),
}

/// A SQL function over strings; two are the same function when their names are.
#[derive(Debug)]
struct StringFunction {
    name: &'static str,
    signature: Signature,
    body: Body,
    trusted: TrustedAccounts,
}

impl PartialEq for StringFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.trusted == other.trusted
    }
}

impl Eq for StringFunction {}

impl std::hash::Hash for StringFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.trusted.hash(state);
    }
}

impl ScalarUDFImpl for StringFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.body {
            Body::Text(_) => DataType::Utf8,
            Body::Bool(_) => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut casted = Vec::with_capacity(arrays.len());
        for a in &arrays {
            casted.push(datafusion::arrow::compute::cast(a, &DataType::Utf8)?);
        }
        let columns: Vec<_> = casted.iter().map(|a| a.as_string::<i32>()).collect();
        if columns.iter().any(|c| c.len() != rows && !scalar) {
            return exec_err!("{}: arguments of unequal length", self.name);
        }
        let n = columns.first().map_or(rows, |c| c.len());
        let result: ArrayRef = match self.body {
            Body::Text(f) => {
                let mut out = StringBuilder::with_capacity(n, n * 8);
                for_each_row(&columns, n, |args| {
                    out.append_option(f(args, &self.trusted))
                });
                Arc::new(out.finish())
            }
            Body::Bool(f) => {
                let mut out = BooleanBuilder::with_capacity(n);
                for_each_row(&columns, n, |args| {
                    out.append_option(f(args, &self.trusted))
                });
                Arc::new(out.finish())
            }
        };
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

fn function(name: &'static str, arity: usize, body: Body, trusted: &TrustedAccounts) -> ScalarUDF {
    ScalarUDF::new_from_impl(StringFunction {
        name,
        signature: super::string_signature(arity),
        body,
        trusted: trusted.clone(),
    })
}

/// The detection functions, for registering on a session.
pub fn functions(trusted: &TrustedAccounts) -> Vec<ScalarUDF> {
    vec![
        function(
            "policy_outside_principals",
            2,
            Body::Text(|a, trust| {
                let list = outside_principals(a[0]?, a[1].unwrap_or_default(), trust);
                (!list.is_empty()).then(|| list.join(","))
            }),
            trusted,
        ),
        function(
            "policy_allows_all",
            1,
            Body::Bool(|a, _| Some(allows_all(a[0]?))),
            trusted,
        ),
        function(
            "from_base64_text",
            1,
            Body::Text(|a, _| base64_text(a[0]?)),
            trusted,
        ),
        function("s3_bucket", 1, Body::Text(|a, _| s3_bucket(a[0]?)), trusted),
        function(
            "ip_network",
            1,
            Body::Text(|a, _| ip_network(a[0]?)),
            trusted,
        ),
        function(
            "is_private_ip",
            1,
            Body::Bool(|a, _| Some(is_private_ip(a[0]?))),
            trusted,
        ),
        function(
            "threat_listed",
            1,
            Body::Bool(|a, trust| Some(trust.threats.contains_text(a[0]?))),
            trusted,
        ),
        function(
            "trusted_ip",
            1,
            Body::Bool(|a, trust| {
                Some(a[0].is_some_and(|ip| trust.trusted_networks.contains_text(ip)))
            }),
            trusted,
        ),
        function(
            "is_pipeline",
            2,
            Body::Bool(|a, trust| Some(pipeline_identity(a[0], a[1], trust))),
            trusted,
        ),
    ]
}

/// `ip_network(sourceipaddress)`: the network an address belongs to, as detections group
/// "where a call came from": the /24 of an IPv4 address (`192.0.2.0/24`), the /48 of an IPv6
/// one (`2001:db8:1::/48`, an IPv4-mapped address as IPv4); NULL for anything that is not an
/// address (a service's name, `AWS Internal`).
pub fn ip_network(text: &str) -> Option<String> {
    match text.trim().parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => Some(v4_network(v4)),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(v4_network(v4)),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                Some(format!("{net}/48"))
            }
        },
    }
}

fn v4_network(v4: std::net::Ipv4Addr) -> String {
    let [a, b, c, _] = v4.octets();
    format!("{a}.{b}.{c}.0/24")
}

/// `is_private_ip(sourceipaddress)`: true for addresses that are not on the internet: IPv4
/// private, loopback, link-local and shared (100.64/10) ranges, IPv6 unique-local (fc00::/7),
/// link-local (fe80::/10) and loopback, and IPv4-mapped forms of those. False for public
/// addresses and for text that is not an address.
pub fn is_private_ip(text: &str) -> bool {
    let v4_private = |v4: std::net::Ipv4Addr| {
        let [a, b, ..] = v4.octets();
        v4.is_private()
            || v4.is_loopback()
            || v4.is_link_local()
            || v4.is_unspecified()
            || (a == 100 && (64..128).contains(&b))
    };
    match text.trim().parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4_private(v4),
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_private(v4),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
        Err(_) => false,
    }
}

/// `is_pipeline(useridentity.arn, useridentity.sessioncontext.sessionissuer.arn)`: whether the
/// caller is one of the deployment pipelines the user named (`--pipeline`). A role's session
/// is judged by the role that issued it (AWS writes the issuer; the session name is the
/// caller's to choose), anything else by its own ARN. Never by the user agent, which whoever
/// holds the credentials writes.
fn pipeline_identity(arn: Option<&str>, issuer: Option<&str>, trust: &Trust) -> bool {
    match issuer.filter(|i| !i.is_empty()) {
        Some(issuer) => trust.is_pipeline(issuer),
        None => arn.is_some_and(|a| !a.contains(":assumed-role/") && trust.is_pipeline(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn pipelines_are_known_by_who_they_are() {
        let trust = Trust {
            pipelines: vec![
                "arn:aws:iam::*:role/github-actions-*".into(),
                "arn:aws:iam::111122223333:user/terraform".into(),
            ],
            ..Default::default()
        };
        let role = "arn:aws:iam::111122223333:role/github-actions-deploy";
        let session = "arn:aws:sts::111122223333:assumed-role/github-actions-deploy/GitHubActions";
        assert!(pipeline_identity(Some(session), Some(role), &trust));
        // Another role, whatever its session is called.
        let other = "arn:aws:iam::111122223333:role/admin";
        let dressed = "arn:aws:sts::111122223333:assumed-role/admin/github-actions-deploy";
        assert!(!pipeline_identity(Some(dressed), Some(other), &trust));
        // A session ARN is never matched by itself (its last part is the caller's to choose).
        let lookalike = "arn:aws:sts::1:assumed-role/x/arn:aws:iam::1:role/github-actions-x";
        assert!(!pipeline_identity(Some(lookalike), None, &trust));
        assert!(pipeline_identity(
            Some("arn:aws:iam::111122223333:user/terraform"),
            None,
            &trust
        ));
        assert!(!pipeline_identity(
            Some("arn:aws:iam::111122223333:user/terraform2"),
            None,
            &trust
        ));
        assert!(!pipeline_identity(None, None, &trust));
        assert!(!pipeline_identity(
            Some(session),
            Some(role),
            &Trust::default()
        ));
    }

    #[test]
    fn networks_group_ipv4_by_24_and_ipv6_by_48() {
        assert_eq!(ip_network("192.0.2.66").as_deref(), Some("192.0.2.0/24"));
        assert_eq!(
            ip_network("2001:db8:1:2:3:4:5:6").as_deref(),
            Some("2001:db8:1::/48")
        );
        assert_eq!(
            ip_network("2001:db8:1:ffff::1"),
            ip_network("2001:db8:1:2::9"),
            "one /48"
        );
        assert_ne!(ip_network("2001:db8:1::1"), ip_network("2001:db8:2::1"));
        assert_eq!(
            ip_network("::ffff:198.51.100.7").as_deref(),
            Some("198.51.100.0/24")
        );
        assert_eq!(ip_network("s3.amazonaws.com"), None);
        assert_eq!(ip_network("AWS Internal"), None);
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private_ip(private), "{private}");
        }
        for public in [
            "192.0.2.66",
            "8.8.8.8",
            "2001:db8::1",
            "2600:1f18::1",
            "::ffff:8.8.8.8",
            "s3.amazonaws.com",
            "",
        ] {
            assert!(!is_private_ip(public), "{public}");
        }
    }

    #[test]
    fn wildcards_match_like_iam() {
        for (pattern, text, expected) in [
            ("a*c", "abbbc", true),
            ("a*c", "ac", true),
            ("a*c", "acb", false),
            ("*", "", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*x*y", "axxbyy", true),
            ("arn:aws:iam::*:role/ci", "arn:aws:iam::1:role/ci", true),
            (
                "arn:aws:iam::*:role/ci",
                "arn:aws:iam::1:role/ci-evil",
                false,
            ),
        ] {
            assert_eq!(wildcard_match(pattern, text), expected, "{pattern} {text}");
        }
    }

    const OWN: &str = "111122223333";

    fn outside(policy: &str) -> Vec<String> {
        outside_principals(policy, OWN, &Trust::default())
    }

    #[test]
    fn outside_principals_are_found() {
        let own = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;
        assert!(outside(own).is_empty());
        let foreign = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::999988887777:root","*"]},"Action":"kms:Decrypt","Resource":"*"}]}"#;
        assert_eq!(
            outside(foreign),
            vec!["arn:aws:iam::999988887777:root", "*"]
        );
        let bare = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}}"#;
        assert_eq!(outside(bare), vec!["*"]);
        let id_only = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"sts:AssumeRole"}]}"#;
        assert_eq!(outside(id_only), vec!["444455556666"]);
        let denied =
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}"#;
        assert!(outside(denied).is_empty());
        let service = r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert!(outside(service).is_empty());
        let not_json = "not a policy";
        assert!(outside(not_json).is_empty());
    }

    #[test]
    fn scoped_wildcards_and_trusted_accounts_are_inside() {
        let scoped = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":"111122223333","kms:ViaService":"s3.eu-west-1.amazonaws.com"}}}]}"#;
        assert!(outside(scoped).is_empty());
        // An organisation is inside only when it is declared (`--trusted-accounts o-...`):
        // anyone can name their own.
        let org = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-abc1234567"}}}]}"#;
        assert_eq!(outside(org), vec!["*"]);
        let ours = Trust {
            accounts: BTreeSet::from(["o-abc1234567".to_string()]),
            ..Default::default()
        };
        assert!(outside_principals(org, OWN, &ours).is_empty());
        let weak = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#;
        assert_eq!(outside(weak), vec!["*"]);
        let partner = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
        let trusted = Trust {
            accounts: BTreeSet::from(["444455556666".to_string()]),
            ..Default::default()
        };
        assert!(outside_principals(partner, OWN, &trusted).is_empty());
    }

    #[test]
    fn admin_policies_are_recognised() {
        assert!(allows_all(
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
        ));
        assert!(allows_all(
            r#"{"Statement":{"Effect":"Allow","Action":["*:*"],"Resource":["*"]}}"#
        ));
        assert!(allows_all(
            r#"{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#
        ));
        assert!(!allows_all(
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
        ));
        assert!(!allows_all(
            r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#
        ));
    }

    #[test]
    fn base64_and_buckets() {
        assert_eq!(
            base64_text("IyEvYmluL2Jhc2gKY3VybCB4IHwgYmFzaAo=").unwrap(),
            "#!/bin/bash\ncurl x | bash\n"
        );
        assert_eq!(base64_text("@@@"), None);
        assert_eq!(s3_bucket("s3://my-bucket/a/b").unwrap(), "my-bucket");
        assert_eq!(s3_bucket("arn:aws:s3:::my-bucket/x").unwrap(), "my-bucket");
        assert_eq!(
            s3_bucket("https://my-bucket.s3.eu-west-1.amazonaws.com/k").unwrap(),
            "my-bucket"
        );
        assert_eq!(
            s3_bucket("https://s3.amazonaws.com/my-bucket/k").unwrap(),
            "my-bucket"
        );
        assert_eq!(s3_bucket("nothing"), None);
    }

    /// A small reference evaluator: does a statement allow `action` on `resource` for a caller
    /// of `account` in `org`, by IAM's rules for the elements and operators used below?
    mod reference {
        use super::super::wildcard_match;
        use serde_json::Value;

        fn list(v: Option<&Value>) -> Vec<String> {
            match v {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            }
        }

        fn matches_any(patterns: &[String], text: &str, fold: bool) -> bool {
            patterns.iter().any(|p| {
                if fold {
                    wildcard_match(&p.to_ascii_lowercase(), &text.to_ascii_lowercase())
                } else {
                    wildcard_match(p, text)
                }
            })
        }

        pub fn allows_request(st: &Value, action: &str, resource: &str) -> bool {
            let allow = st["Effect"] == "Allow";
            let action_ok = if st.get("NotAction").is_some() {
                !matches_any(&list(st.get("NotAction")), action, true)
            } else {
                matches_any(&list(st.get("Action")), action, true)
            };
            let resource_ok = if st.get("NotResource").is_some() {
                !matches_any(&list(st.get("NotResource")), resource, false)
            } else {
                matches_any(&list(st.get("Resource")), resource, false)
            };
            allow && action_ok && resource_ok
        }

        /// The request context of a caller (one role of `account`, in `org`).
        fn context(key: &str, account: &str, org: Option<&str>) -> Option<String> {
            match key.to_ascii_lowercase().as_str() {
                "aws:principalaccount" | "kms:calleraccount" => Some(account.into()),
                "aws:principalorgid" => org.map(String::from),
                "aws:principalarn" => Some(format!("arn:aws:iam::{account}:role/r")),
                _ => None,
            }
        }

        pub fn allows_caller(st: &Value, account: &str, org: Option<&str>) -> bool {
            if st["Effect"] != "Allow" {
                return false;
            }
            let principal_ok = match st.get("Principal") {
                Some(Value::String(s)) => s == "*",
                Some(Value::Object(m)) => list(m.get("AWS"))
                    .iter()
                    .any(|p| p == "*" || p == account || p.split(':').nth(4) == Some(account)),
                _ => false,
            };
            let conditions_ok = st
                .get("Condition")
                .and_then(Value::as_object)
                .is_none_or(|ops| {
                    ops.iter().all(|(op, keys)| {
                        keys.as_object().is_some_and(|keys| {
                            keys.iter().all(|(key, values)| {
                                let values = list(Some(values));
                                let x = context(key, account, org);
                                let op = op.as_str();
                                match op {
                                    "Null" => {
                                        let absent = x.is_none();
                                        values.iter().all(|v| (v == "true") == absent)
                                    }
                                    _ => {
                                        // An absent key: IAM's negated operators and
                                        // `...IfExists` pass, the others fail.
                                        let Some(x) = x else {
                                            return op.ends_with("IfExists") || op.contains("Not");
                                        };
                                        let base = op
                                            .trim_start_matches("ForAnyValue:")
                                            .trim_end_matches("IfExists");
                                        let equal = values.iter().any(|v| v == &x);
                                        let like = values.iter().any(|v| wildcard_match(v, &x));
                                        match base {
                                            "StringEquals" | "ArnEquals" => equal,
                                            "StringLike" | "ArnLike" => like,
                                            "StringNotEquals" => !equal,
                                            "StringNotLike" => !like,
                                            _ => false,
                                        }
                                    }
                                }
                            })
                        })
                    })
                });
            principal_ok && conditions_ok
        }
    }

    const ATTACKER: &str = "999988887777";
    const PARTNER: &str = "444455556666";

    fn trust() -> Trust {
        Trust {
            accounts: BTreeSet::from([PARTNER.to_string(), "o-own1234567".to_string()]),
            ..Default::default()
        }
    }

    fn one_of(items: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
        proptest::sample::select(items)
    }

    fn some_of(items: &'static [&'static str]) -> impl Strategy<Value = Value> {
        proptest::sample::subsequence(items, 1..=2).prop_map(|v| {
            if v.len() == 1 {
                json!(v[0])
            } else {
                json!(v)
            }
        })
    }

    fn statement_strategy() -> impl Strategy<Value = Value> {
        const ACTIONS: &[&str] = &[
            "*",
            "*:*",
            "iam:*",
            "IAM:*",
            "i*:*",
            "iam:Attach*",
            "s3:*",
            "iam:AttachUserPolicy",
            "iam:PassRole",
            "s3:GetObject",
            "kms:Decrypt",
            "ec2:*",
        ];
        const RESOURCES: &[&str] = &[
            "*",
            "arn:*",
            "arn:aws:*",
            "arn:aws:*:*:*:*",
            "*:*",
            "arn:aws:s3:::*",
            "arn:aws:iam::*:role/*",
            "arn:aws:s3:::b/k",
            "arn:*:*",
        ];
        const NOT_RESOURCES: &[&str] = &["*", "arn:aws:s3:::secret/*", "arn:*"];
        const NOT_ACTIONS: &[&str] = &[
            "iam:*",
            "IAM:*",
            "iam:Attach*",
            "iam:PassRole",
            "s3:*",
            "kms:Decrypt",
            "*",
        ];
        (
            one_of(&["Allow", "Allow", "Deny"]),
            any::<bool>(),
            (some_of(ACTIONS), some_of(NOT_ACTIONS)),
            any::<bool>(),
            some_of(RESOURCES),
            some_of(NOT_RESOURCES),
        )
            .prop_map(
                |(
                    effect,
                    not_action,
                    (actions, not_actions),
                    not_resource,
                    resources,
                    not_resources,
                )| {
                    let mut st = json!({"Effect": effect});
                    if not_action {
                        st["NotAction"] = not_actions;
                    } else {
                        st["Action"] = actions;
                    }
                    if not_resource {
                        st["NotResource"] = not_resources;
                    } else {
                        st["Resource"] = resources;
                    }
                    st
                },
            )
    }

    fn principal_statement_strategy() -> impl Strategy<Value = Value> {
        const PRINCIPALS: &[&str] = &[
            "*",
            "AWS:*",
            "AWS:111122223333",
            "AWS:999988887777",
            "AWS:444455556666",
            "AWS:arn:aws:iam::999988887777:root",
            "AWS:arn:aws:iam::111122223333:role/r",
        ];
        const OPERATORS: &[&str] = &[
            "StringEquals",
            "StringEqualsIfExists",
            "StringLike",
            "StringNotEquals",
            "ForAnyValue:StringEquals",
            "ArnLike",
        ];
        const ACCOUNTS: &[&str] = &["111122223333", "999988887777", "444455556666", "*", "9999*"];
        const ORGS: &[&str] = &["o-own1234567", "o-attacker99", "o-*", "*"];
        const ARNS: &[&str] = &[
            "arn:aws:iam::111122223333:role/r",
            "arn:aws:iam::*:role/r",
            "arn:aws:iam::999988887777:role/r",
            "arn:aws:iam::111122223333:role/*",
            "*",
        ];
        let key_values = prop_oneof![
            (
                one_of(&["aws:PrincipalAccount", "kms:CallerAccount"]),
                some_of(ACCOUNTS)
            ),
            (Just("aws:PrincipalOrgID"), some_of(ORGS)),
            (Just("aws:PrincipalArn"), some_of(ARNS)),
        ];
        let condition = prop_oneof![
            (one_of(OPERATORS), key_values)
                .prop_map(|(op, (key, values))| json!({ op: { key: values } })),
            (
                one_of(&["aws:PrincipalAccount", "aws:PrincipalOrgID"]),
                one_of(&["true", "false"])
            )
                .prop_map(|(key, v)| json!({"Null": { key: v }})),
        ];
        (
            one_of(&["Allow", "Allow", "Deny"]),
            one_of(PRINCIPALS),
            proptest::option::of(condition),
        )
            .prop_map(|(effect, principal, condition)| {
                let principal = match principal.split_once(':') {
                    Some(("AWS", p)) => json!({"AWS": p}),
                    _ => json!(principal),
                };
                let mut st = json!({"Effect": effect, "Principal": principal,
                    "Action": "kms:Decrypt", "Resource": "*"});
                if let Some(c) = condition {
                    st["Condition"] = c;
                }
                st
            })
    }

    proptest! {
        #[test]
        fn allows_all_agrees_with_the_reference_evaluator(
            statements in proptest::collection::vec(statement_strategy(), 1..3)
        ) {
            let policy = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
            const IAM: &[&str] = &["iam:AttachUserPolicy", "iam:CreatePolicyVersion", "iam:PassRole"];
            const ANYWHERE: &[&str] = &[
                "arn:aws:iam::111122223333:role/x",
                "arn:aws:s3:::b/k",
                "arn:aws:ec2:us-east-1:111122223333:instance/i-1",
            ];
            const OTHER: &[&str] = &["s3:GetObject", "ec2:RunInstances", "kms:Decrypt", "sts:AssumeRole"];
            // All of IAM, or everything else, on every resource.
            let reference = statements.iter().any(|st| {
                let all = |actions: &[&str]| {
                    actions.iter().all(|a| ANYWHERE.iter().all(|r| reference::allows_request(st, a, r)))
                };
                all(IAM) || all(OTHER)
            });
            prop_assert_eq!(allows_all(&policy), reference, "{}", policy);
        }

        #[test]
        fn outside_principals_agrees_with_the_reference_evaluator(
            statements in proptest::collection::vec(principal_statement_strategy(), 1..3)
        ) {
            let policy = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
            // Outside: an account neither the policy's own nor trusted is let in.
            let reference = statements.iter().any(|st| {
                // Any outsider, in an organisation or not (an account can leave one).
                [ATTACKER, "555566667777"].iter().any(|account| {
                    [Some("o-attacker99"), None]
                        .iter()
                        .any(|org| reference::allows_caller(st, account, *org))
                })
            });
            let found = !outside_principals(&policy, OWN, &trust()).is_empty();
            // Never an outsider missed. A policy that names another account's principal and
            // then excludes it by a condition is reported all the same (naming it is worth a
            // look); with only `*` principals the two agree exactly.
            if reference {
                prop_assert!(found, "missed: {}", policy);
            }
            let only_everyone = statements
                .iter()
                .all(|st| st["Effect"] != "Allow" || st["Principal"] == "*" || st["Principal"]["AWS"] == "*");
            if only_everyone {
                prop_assert_eq!(found, reference, "{}", policy);
            }
        }
    }

    #[test]
    fn the_issues_evasions_are_caught() {
        let t = trust();
        let outside = |policy: &str| !outside_principals(policy, OWN, &t).is_empty();
        for condition in [
            r#"{"StringEquals":{"aws:PrincipalAccount":"999988887777"}}"#,
            r#"{"StringEquals":{"aws:PrincipalOrgID":"o-attacker99"}}"#,
            r#"{"StringNotEquals":{"aws:PrincipalAccount":"111122223333"}}"#,
            r#"{"Null":{"aws:PrincipalOrgID":"false"}}"#,
        ] {
            let policy = format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{condition}}}]}}"#
            );
            assert!(outside(&policy), "{policy}");
        }
        for (action, resource) in [
            (r#""Action":"*""#, r#""NotResource":"arn:aws:s3:::x/*""#),
            (r#""Action":"*""#, r#""Resource":"arn:*""#),
            (
                r#""NotAction":"s3:*""#,
                r#""NotResource":"arn:aws:s3:::x/*""#,
            ),
            (r#""Action":"IAM:*""#, r#""Resource":"*""#),
        ] {
            let policy = format!(r#"{{"Statement":[{{"Effect":"Allow",{action},{resource}}}]}}"#);
            assert!(allows_all(&policy), "{policy}");
        }
    }
}
