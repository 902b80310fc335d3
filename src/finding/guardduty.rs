//! Findings as GuardDuty writes them (`schemaVersion` 2.0), so that whatever consumes
//! GuardDuty findings (EventBridge rules, SIEM parsers, Security Hub) reads trailhound's too.
//!
//! Fields follow GuardDuty's finding format: `resource.accessKeyDetails` for the principal,
//! `service.action.awsApiCallAction` for the call, `service.count` and
//! `service.eventFirstSeen/LastSeen` for aggregation. trailhound's own details (the detection,
//! its category and ATT&CK techniques, and the eventIDs behind the finding) are under
//! `service.additionalInfo`.

use serde_json::{json, Map, Value};

use super::{iso_time, Finding};

/// The finding as GuardDuty finding JSON.
pub fn to_json(f: &Finding) -> Value {
    let partition = f.partition();
    let mut call = Map::new();
    call.insert("api".into(), json!(f.action.api));
    call.insert("serviceName".into(), json!(f.action.service_name));
    call.insert("callerType".into(), json!(f.action.caller_type));
    if let Some(ip) = &f.action.ip_address {
        let key = if ip.contains(':') {
            "ipAddressV6"
        } else {
            "ipAddressV4"
        };
        call.insert("remoteIpDetails".into(), json!({ key: ip }));
    }
    if let Some(domain) = &f.action.domain {
        call.insert("domainDetails".into(), json!({ "domain": domain }));
    }
    if let Some(code) = &f.action.error_code {
        call.insert("errorCode".into(), json!(code));
    }
    if let Some(agent) = &f.action.user_agent {
        call.insert("userAgent".into(), json!(agent));
    }
    call.insert(
        "affectedResources".into(),
        json!(f.action.affected_resources),
    );
    let created = f
        .created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "schemaVersion": "2.0",
        "accountId": f.account,
        "region": f.region,
        "partition": partition,
        "id": f.id,
        "arn": format!(
            "arn:{partition}:guardduty:{}:{}:detector/trailhound/finding/{}",
            f.region, f.account, f.id
        ),
        "type": f.finding_type,
        "resource": {
            "resourceType": "AccessKey",
            "accessKeyDetails": {
                "accessKeyId": f.principal.access_key_id,
                "principalId": f.principal.principal_id,
                "userName": f.principal.user_name,
                "userType": f.principal.user_type,
            },
        },
        "service": {
            "serviceName": "trailhound",
            "detectorId": "trailhound",
            "action": {
                "actionType": "AWS_API_CALL",
                "awsApiCallAction": Value::Object(call),
            },
            "resourceRole": "TARGET",
            "additionalInfo": {
                "type": "default",
                "detection": f.detection,
                "category": f.category,
                "mitre": f.mitre,
                "principalArn": f.principal.arn,
                "group": f.group,
                "eventIds": f.event_ids,
                "eventIdsTruncated": f.event_ids_truncated(),
            },
            "eventFirstSeen": iso_time(f.first_seen),
            "eventLastSeen": iso_time(f.last_seen),
            "archived": false,
            "count": f.count,
        },
        "severity": f.severity,
        "createdAt": created,
        "updatedAt": created,
        "title": f.title,
        "description": f.description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_guardduty_fields() {
        let v = to_json(&crate::finding::sample());
        assert_eq!(v["schemaVersion"], "2.0");
        assert_eq!(v["partition"], "aws");
        assert_eq!(v["type"], "Persistence:IAMUser/KMSKeyPolicyOpened");
        assert_eq!(v["resource"]["resourceType"], "AccessKey");
        assert_eq!(
            v["resource"]["accessKeyDetails"]["accessKeyId"],
            "ASIAEXAMPLE"
        );
        let call = &v["service"]["action"]["awsApiCallAction"];
        assert_eq!(call["api"], "PutKeyPolicy");
        assert_eq!(call["remoteIpDetails"]["ipAddressV4"], "192.0.2.66");
        assert_eq!(
            call["affectedResources"]["AWS::KMS::Key"],
            "arn:aws:kms:eu-west-1:111122223333:key/k"
        );
        assert_eq!(v["service"]["count"], 2);
        assert_eq!(v["service"]["eventFirstSeen"], "2026-01-01T12:00:00.000Z");
        assert_eq!(v["service"]["additionalInfo"]["eventIds"][1], "e2");
        assert_eq!(
            v["arn"],
            "arn:aws:guardduty:eu-west-1:111122223333:detector/trailhound/finding/0123456789abcdef0123456789abcdef"
        );
    }
}
