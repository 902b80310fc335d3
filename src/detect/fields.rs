//! The values a detection can name in its description and `group_by`: the query's own
//! columns, paths into the record (`useridentity.sessioncontext.sessionissuer.arn`,
//! `requestparameters.keyId`) and derived fields such as `actor`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use crate::decode::schema::{FieldDef, Kind, RECORD_FIELDS};
use crate::finding::{ApiCall, Principal};

/// One record a detection's query returned.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Match {
    pub event_id: String,
    /// Event time, microseconds since the epoch.
    pub time: i64,
    /// The CloudTrail record (as CloudTrail wrote it).
    pub record: Value,
    /// Columns the query computed beyond the table's own, as text.
    pub extra: BTreeMap<String, String>,
}

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Who made the call: the ARN, else the invoking service, else the principal id or user name.
pub fn actor(record: &Value) -> String {
    let id = &record["userIdentity"];
    text(id.get("arn"))
        .or_else(|| text(id.get("invokedBy")))
        .or_else(|| text(id.get("principalId")))
        .or_else(|| text(id.get("userName")))
        .or_else(|| text(id.get("accountId")))
        .unwrap_or("unknown")
        .to_string()
}

/// The account the record was logged in.
pub fn account(record: &Value) -> String {
    text(record.get("recipientAccountId"))
        .or_else(|| text(record["userIdentity"].get("accountId")))
        .unwrap_or("unknown")
        .to_string()
}

/// The principal behind a record, as GuardDuty's `accessKeyDetails` describes it.
pub fn principal(record: &Value) -> Principal {
    let id = &record["userIdentity"];
    let s = |v: Option<&Value>| text(v).unwrap_or_default().to_string();
    let user_type = s(id.get("type"));
    let user_name = match user_type.as_str() {
        "AssumedRole" => text(id["sessionContext"]["sessionIssuer"].get("userName"))
            .map(str::to_string)
            .unwrap_or_else(|| s(id.get("principalId"))),
        "Root" => "root".to_string(),
        "AWSService" => s(id.get("invokedBy")),
        _ => text(id.get("userName"))
            .map(str::to_string)
            .unwrap_or_else(|| s(id.get("principalId"))),
    };
    Principal {
        user_type,
        principal_id: s(id.get("principalId")),
        arn: actor(record),
        user_name,
        access_key_id: s(id.get("accessKeyId")),
    }
}

/// The API call a record describes, as GuardDuty's `awsApiCallAction` does.
pub fn api_call(record: &Value) -> ApiCall {
    let source = text(record.get("sourceIPAddress")).unwrap_or_default();
    let ip: Option<IpAddr> = source.parse().ok();
    let by_service = record["userIdentity"]["type"] == "AWSService"
        || source.ends_with(".amazonaws.com")
        || source == "AWS Internal";
    let caller_type = if by_service {
        "AWS Service"
    } else if ip.is_some() {
        "Remote IP"
    } else {
        "Remote Domain"
    };
    let mut affected = BTreeMap::new();
    add_resources(record, &mut affected);
    ApiCall {
        api: text(record.get("eventName"))
            .unwrap_or_default()
            .to_string(),
        service_name: text(record.get("eventSource"))
            .unwrap_or_default()
            .to_string(),
        caller_type: caller_type.to_string(),
        ip_address: ip.map(|ip| ip.to_string()),
        domain: (ip.is_none() && !source.is_empty()).then(|| source.to_string()),
        error_code: text(record.get("errorCode")).map(str::to_string),
        user_agent: text(record.get("userAgent")).map(str::to_string),
        affected_resources: affected,
    }
}

/// Adds a record's `resources` (type → ARN, the first of each type) to `into`.
pub fn add_resources(record: &Value, into: &mut BTreeMap<String, String>) {
    if let Some(items) = record.get("resources").and_then(Value::as_array) {
        for item in items {
            if let (Some(kind), Some(arn)) = (text(item.get("type")), text(item.get("ARN"))) {
                into.entry(kind.to_string())
                    .or_insert_with(|| arn.to_string());
            }
        }
    }
}

fn show(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Follows a column path (lower-case column names, then raw keys inside JSON columns).
fn path_value<'v>(record: &'v Value, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut defs: &[FieldDef] = RECORD_FIELDS;
    let mut def = defs.iter().find(|d| d.column == first)?;
    let mut value = record.get(def.json)?;
    for part in parts {
        match &def.kind {
            Kind::Struct(inner) => {
                defs = inner;
                def = defs.iter().find(|d| d.column == part)?;
                value = value.get(def.json)?;
            }
            Kind::Json => {
                value = match value {
                    Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                    Value::Object(map) => map.get(part).or_else(|| {
                        map.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(part))
                            .map(|(_, v)| v)
                    })?,
                    _ => return None,
                };
            }
            _ => return None,
        }
    }
    Some(value)
}

/// True when `path` names a column of the table (and a field of it, where it has fields).
pub fn is_column_path(path: &str) -> bool {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut def) = RECORD_FIELDS.iter().find(|d| d.column == first) else {
        return false;
    };
    for part in parts {
        match &def.kind {
            Kind::Struct(inner) => match inner.iter().find(|d| d.column == part) {
                Some(d) => def = d,
                None => return false,
            },
            Kind::Json => return true,
            _ => return false,
        }
    }
    true
}

/// The value of a named field for one match: a derived field, a computed column or a path.
/// `None` when the record has no such value.
pub fn resolve(name: &str, m: &Match) -> Option<String> {
    let r = &m.record;
    match name {
        "actor" => return Some(actor(r)),
        "account" => return Some(account(r)),
        "region" => return text(r.get("awsRegion")).map(str::to_string),
        "access_key" => return text(r["userIdentity"].get("accessKeyId")).map(str::to_string),
        "source_ip" => return text(r.get("sourceIPAddress")).map(str::to_string),
        "user_agent" => return text(r.get("userAgent")).map(str::to_string),
        _ => {}
    }
    if let Some(v) = m.extra.get(name) {
        return Some(v.clone());
    }
    path_value(r, name).and_then(show)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(record: Value) -> Match {
        Match {
            event_id: "e".into(),
            time: 0,
            record,
            extra: BTreeMap::from([("key".to_string(), "k1".to_string())]),
        }
    }

    #[test]
    fn names_resolve_to_values() {
        let r = json!({
            "eventName": "PutKeyPolicy",
            "recipientAccountId": "111122223333",
            "sourceIPAddress": "192.0.2.1",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/R/s",
                "accessKeyId": "ASIA1", "sessionContext": {"sessionIssuer": {"userName": "R", "arn": "arn:aws:iam::1:role/R"}}},
            "requestParameters": {"keyId": "k", "list": [{"a": 1}]},
            "resources": [{"ARN": "arn:aws:kms:x", "type": "AWS::KMS::Key"}]
        });
        let m = m(r);
        assert_eq!(
            resolve("actor", &m).unwrap(),
            "arn:aws:sts::1:assumed-role/R/s"
        );
        assert_eq!(resolve("eventname", &m).unwrap(), "PutKeyPolicy");
        assert_eq!(
            resolve("useridentity.sessioncontext.sessionissuer.arn", &m).unwrap(),
            "arn:aws:iam::1:role/R"
        );
        assert_eq!(resolve("requestparameters.keyId", &m).unwrap(), "k");
        assert_eq!(resolve("requestparameters.keyid", &m).unwrap(), "k");
        assert_eq!(resolve("requestparameters.list.0.a", &m).unwrap(), "1");
        assert_eq!(resolve("key", &m).unwrap(), "k1");
        assert_eq!(resolve("errorcode", &m), None);
        assert!(is_column_path(
            "useridentity.sessioncontext.sessionissuer.arn"
        ));
        assert!(is_column_path("requestparameters.anything.at.all"));
        assert!(!is_column_path("useridentity.nope"));
        assert!(!is_column_path("nope"));
        let p = principal(&m.record);
        assert_eq!(
            (p.user_name.as_str(), p.access_key_id.as_str()),
            ("R", "ASIA1")
        );
        let call = api_call(&m.record);
        assert_eq!(call.caller_type, "Remote IP");
        assert_eq!(call.affected_resources["AWS::KMS::Key"], "arn:aws:kms:x");
    }

    #[test]
    fn services_and_names_are_not_addresses() {
        let r = json!({"sourceIPAddress": "lambda.amazonaws.com", "userIdentity": {"type": "AWSService", "invokedBy": "lambda.amazonaws.com"}});
        let call = api_call(&r);
        assert_eq!(call.caller_type, "AWS Service");
        assert_eq!(call.ip_address, None);
        assert_eq!(actor(&r), "lambda.amazonaws.com");
    }
}
