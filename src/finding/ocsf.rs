//! Findings as OCSF 1.1 Detection Findings (category 2 Findings, class 2004), for security
//! lakes and SIEMs that speak OCSF.

use serde_json::{json, Value};

use super::Finding;

/// OCSF's severity_id for a GuardDuty-scale score: 2 Low, 3 Medium, 4 High, 5 Critical.
pub fn severity_id(severity: f64) -> u8 {
    match severity {
        s if s >= 9.0 => 5,
        s if s >= 7.0 => 4,
        s if s >= 4.0 => 3,
        _ => 2,
    }
}

/// The finding as an OCSF Detection Finding.
pub fn to_json(f: &Finding) -> Value {
    let ms = |micros: i64| micros.div_euclid(1000);
    let created_ms = f.created_at.timestamp_millis();
    let attacks: Vec<Value> = f
        .mitre
        .iter()
        .map(|t| json!({ "technique": { "uid": t }, "version": "15" }))
        .collect();
    let mut resources: Vec<Value> = f
        .action
        .affected_resources
        .iter()
        .map(|(kind, arn)| json!({ "uid": arn, "type": kind, "cloud_partition": f.partition(), "region": f.region }))
        .collect();
    if resources.is_empty() {
        resources.push(
            json!({ "uid": f.principal.arn, "type": "AWS::IAM::Principal", "region": f.region }),
        );
    }
    let mut out = json!({
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id(f.severity),
        "severity": f.severity_label(),
        "status_id": 1,
        "status": "New",
        "time": ms(f.last_seen),
        "count": f.count,
        "message": f.description,
        "metadata": {
            "version": "1.1.0",
            "product": { "name": "trailhound", "vendor_name": "trailhound", "version": env!("CARGO_PKG_VERSION") },
            "uid": f.id,
        },
        "finding_info": {
            "uid": f.id,
            "title": f.title,
            "desc": f.description,
            "types": [f.finding_type],
            "created_time": created_ms,
            "first_seen_time": ms(f.first_seen),
            "last_seen_time": ms(f.last_seen),
            "analytic": { "uid": f.detection, "name": f.detection, "type_id": 1, "type": "Rule", "category": f.category },
            "attacks": attacks,
            "related_events": f.event_ids.iter().map(|id| json!({ "uid": id, "product_uid": "cloudtrail" })).collect::<Vec<_>>(),
        },
        "cloud": {
            "provider": "AWS",
            "region": f.region,
            "account": { "uid": f.account, "type": "AWS Account", "type_id": 10 },
        },
        "actor": {
            "user": {
                "uid": f.principal.arn,
                "name": f.principal.user_name,
                "type": f.principal.user_type,
                "credential_uid": f.principal.access_key_id,
            }
        },
        "api": {
            "operation": f.action.api,
            "service": { "name": f.action.service_name },
        },
        "resources": resources,
        "unmapped": { "detection_category": f.category, "group": f.group },
    });
    if let Some(ip) = &f.action.ip_address {
        out["src_endpoint"] = json!({ "ip": ip });
    } else if let Some(domain) = &f.action.domain {
        out["src_endpoint"] = json!({ "domain": domain });
    }
    if let Some(agent) = &f.action.user_agent {
        out["http_request"] = json!({ "user_agent": agent });
    }
    if let Some(code) = &f.action.error_code {
        out["api"]["response"] = json!({ "error": code });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_detection_finding() {
        let v = to_json(&crate::finding::sample());
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["category_uid"], 2);
        assert_eq!(v["type_uid"], 200401);
        assert_eq!(v["severity_id"], 4);
        assert_eq!(
            v["finding_info"]["analytic"]["uid"],
            "kms-key-policy-opened"
        );
        assert_eq!(v["finding_info"]["attacks"][0]["technique"]["uid"], "T1098");
        assert_eq!(v["finding_info"]["first_seen_time"], 1_767_268_800_000i64);
        assert_eq!(v["src_endpoint"]["ip"], "192.0.2.66");
        assert_eq!(v["finding_info"]["related_events"][1]["uid"], "e2");
    }
}
