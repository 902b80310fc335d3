//! SQL functions for detections that need to read inside request parameters:
//!
//! * `policy_outside_principals(policy, account)`: the principals an IAM policy document
//!   (key policy, trust policy, resource policy) allows that are outside `account`, comma
//!   separated, or NULL when there are none. `*` (or `{"AWS": "*"}`) counts as outside unless
//!   the statement's condition pins it to the account or organisation. Accounts named with
//!   `--trusted-accounts` are not outside.
//! * `policy_allows_all(policy)`: true when an `Allow` statement grants every action on every
//!   resource (`"Action": "*"` with `"Resource": "*"`, or `NotAction` with `"Resource": "*"`).
//! * `from_base64_text(text)`: base64 decoded as UTF-8 text (invalid bytes replaced), NULL
//!   when it is not base64.
//! * `s3_bucket(uri)`: the bucket of `s3://bucket/key`, `https://bucket.s3…/key`,
//!   `https://s3…/bucket/key` or `arn:aws:s3:::bucket/key`.
//! * `ip_network(address)`, `is_private_ip(address)`: an address's /24 (IPv4) or /48 (IPv6),
//!   and whether it is off the internet.
//! * `is_pipeline(arn, issuer_arn)`: whether the caller is a declared deployment pipeline.

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

/// Whether a statement's condition keeps a wildcard principal inside the account or
/// organisation (a condition on the caller's account, organisation, ARN or source).
fn condition_scopes(statement: &Value, account: &str) -> bool {
    let Some(condition) = statement.get("Condition") else {
        return false;
    };
    const SCOPING_KEYS: &[&str] = &[
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:sourcevpce",
        "aws:sourcevpc",
        "kms:calleraccount",
        "aws:userid",
    ];
    let Some(ops) = condition.as_object() else {
        return false;
    };
    ops.values().filter_map(Value::as_object).any(|keys| {
        keys.iter().any(|(k, v)| {
            let k = k.to_ascii_lowercase();
            SCOPING_KEYS.contains(&k.as_str())
                && strings(Some(v))
                    .iter()
                    .all(|s| !s.contains('*') || s.contains(account) || s.starts_with("o-"))
        })
    })
}

/// The principals `policy` allows that are outside `account` (and not trusted).
pub fn outside_principals(policy: &str, account: &str, trusted: &BTreeSet<String>) -> Vec<String> {
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
        for name in names {
            let outside = if name == "*" {
                !condition_scopes(st, account)
            } else {
                match principal_account(&name) {
                    Some(a) => a != account && !trusted.contains(a),
                    None => false,
                }
            };
            if outside && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Whether an `Allow` statement of `policy` grants every action on every resource.
pub fn allows_all(policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    statements(&doc).into_iter().any(|st| {
        let allow = st.get("Effect").and_then(Value::as_str) == Some("Allow");
        let every_action = strings(st.get("Action"))
            .iter()
            .any(|a| *a == "*" || *a == "*:*")
            || st.get("NotAction").is_some();
        let every_resource = strings(st.get("Resource")).contains(&"*");
        allow && every_action && every_resource
    })
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
                let list = outside_principals(a[0]?, a[1].unwrap_or_default(), &trust.accounts);
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
        outside_principals(policy, OWN, &BTreeSet::new())
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
        let org = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalOrgID":"o-abc123"}}}]}"#;
        assert!(outside(org).is_empty());
        let weak = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#;
        assert_eq!(outside(weak), vec!["*"]);
        let partner = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Decrypt","Resource":"*"}]}"#;
        let trusted = BTreeSet::from(["444455556666".to_string()]);
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
}
