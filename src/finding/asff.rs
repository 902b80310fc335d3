//! Findings in the AWS Security Finding Format (ASFF), as Security Hub's
//! `BatchImportFindings` takes them: the custom-product form with `ProductArn`
//! `arn:<partition>:securityhub:<region>:<account>:product/<account>/default`.

use serde_json::{json, Value};

use super::{iso_time, Finding};

/// ASFF's finding type (`namespace/category/classifier`) for a GuardDuty-style type.
pub fn asff_type(finding_type: &str) -> String {
    let purpose = finding_type.split(':').next().unwrap_or_default();
    let category = match purpose {
        "Backdoor" | "Trojan" | "CryptoCurrency" => "TTPs/Command and Control",
        "Behavior" => "Unusual Behaviors/User",
        "CredentialAccess" => "TTPs/Credential Access",
        "DefenseEvasion" | "Stealth" => "TTPs/Defense Evasion",
        "Discovery" | "Recon" => "TTPs/Discovery",
        "Execution" => "TTPs/Execution",
        "Exfiltration" => "Effects/Data Exfiltration",
        "Impact" => "Effects/Data Destruction",
        "InitialAccess" | "UnauthorizedAccess" => "TTPs/Initial Access",
        "PenTest" => "TTPs/Discovery",
        "Persistence" => "TTPs/Persistence",
        "Policy" => "Software and Configuration Checks/Industry and Regulatory Standards",
        "PrivilegeEscalation" => "TTPs/Privilege Escalation",
        _ => "Unusual Behaviors/User",
    };
    format!("{category}/{finding_type}")
}

/// The finding as an ASFF finding.
pub fn to_json(f: &Finding) -> Value {
    let partition = f.partition();
    let created = f
        .created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut resources = vec![json!({
        "Type": "AwsIamAccessKey",
        "Id": if f.principal.access_key_id.is_empty() { f.principal.arn.clone() } else { f.principal.access_key_id.clone() },
        "Partition": partition,
        "Region": f.region,
        "Details": {
            "AwsIamAccessKey": {
                "PrincipalId": f.principal.principal_id,
                "PrincipalName": f.principal.user_name,
                "PrincipalType": f.principal.user_type,
            }
        }
    })];
    for (kind, arn) in &f.action.affected_resources {
        resources.push(json!({
            "Type": "Other",
            "Id": arn,
            "Partition": partition,
            "Region": f.region,
            "Details": { "Other": { "resourceType": kind } },
        }));
    }
    let mut call = json!({
        "Api": f.action.api,
        "ServiceName": f.action.service_name,
        "CallerType": f.action.caller_type,
        "AffectedResources": f.action.affected_resources,
        "FirstSeen": iso_time(f.first_seen),
        "LastSeen": iso_time(f.last_seen),
    });
    if let Some(ip) = &f.action.ip_address {
        call["RemoteIpDetails"] = json!({ "IpAddressV4": ip });
    }
    if let Some(domain) = &f.action.domain {
        call["DomainDetails"] = json!({ "Domain": domain });
    }
    let mut finding = json!({
        "SchemaVersion": "2018-10-08",
        "Id": f.id,
        "ProductArn": format!("arn:{partition}:securityhub:{}:{}:product/{}/default", f.region, f.account, f.account),
        "GeneratorId": format!("trailhound/{}", f.detection),
        "AwsAccountId": f.account,
        "Types": [asff_type(&f.finding_type)],
        "FirstObservedAt": iso_time(f.first_seen),
        "LastObservedAt": iso_time(f.last_seen),
        "CreatedAt": created,
        "UpdatedAt": created,
        "Severity": {
            "Label": f.severity_label().to_ascii_uppercase(),
            "Original": format!("{}", f.severity),
        },
        "Title": truncate(&f.title, 256),
        "Description": truncate(&f.description, 1024),
        "ProductFields": {
            "trailhound/detection": f.detection,
            "trailhound/type": f.finding_type,
            "trailhound/category": f.category,
            "trailhound/mitre": f.mitre.join(","),
            "trailhound/count": f.count.to_string(),
            "trailhound/eventIds": truncate(&f.event_ids.join(","), 2048),
            "aws/securityhub/ProductName": "trailhound",
            "aws/securityhub/CompanyName": "trailhound",
        },
        "Resources": resources,
        "Action": { "ActionType": "AWS_API_CALL", "AwsApiCallAction": call },
        "Region": f.region,
        "RecordState": "ACTIVE",
        "Workflow": { "Status": "NEW" },
    });
    if let Some(ip) = &f.action.ip_address {
        let key = if ip.contains(':') {
            "SourceIpV6"
        } else {
            "SourceIpV4"
        };
        finding["Network"] = json!({ "Direction": "IN", key: ip });
    }
    finding
}

/// Cuts `s` to at most `max` characters (ASFF limits some fields).
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_fields_security_hub_requires() {
        let v = to_json(&crate::finding::sample());
        for field in [
            "SchemaVersion",
            "Id",
            "ProductArn",
            "GeneratorId",
            "AwsAccountId",
            "Types",
            "CreatedAt",
            "UpdatedAt",
            "Severity",
            "Title",
            "Description",
            "Resources",
        ] {
            assert!(!v[field].is_null(), "missing {field}");
        }
        assert_eq!(v["Severity"]["Label"], "HIGH");
        assert_eq!(
            v["Types"][0],
            "TTPs/Persistence/Persistence:IAMUser/KMSKeyPolicyOpened"
        );
        assert_eq!(
            v["ProductArn"],
            "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default"
        );
        assert_eq!(v["Resources"][0]["Id"], "ASIAEXAMPLE");
        assert_eq!(
            v["Resources"][1]["Id"],
            "arn:aws:kms:eu-west-1:111122223333:key/k"
        );
        assert_eq!(v["Network"]["SourceIpV4"], "192.0.2.66");
    }
}
