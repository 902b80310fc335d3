//! What the pack covers: the ATT&CK techniques of the cloud (IaaS) matrix as AWS sees them,
//! and the AWS techniques of the public attack-simulation catalogue (Stratus Red Team), each
//! with the detections that find it. `trailhound rules coverage` prints it; the README carries
//! its table.
//!
//! A detection covers the ATT&CK techniques its `mitre` lists (a technique's row also takes
//! the detections of its sub-techniques) and the attack-simulation techniques its `stratus`
//! lists.

use super::Rule;

/// ATT&CK's tactics, in the matrix's order.
pub const TACTICS: &[&str] = &[
    "Initial Access",
    "Execution",
    "Persistence",
    "Privilege Escalation",
    "Defense Evasion",
    "Credential Access",
    "Discovery",
    "Lateral Movement",
    "Collection",
    "Exfiltration",
    "Impact",
];

/// An ATT&CK technique of the cloud matrix: id, name, and the tactics it serves (indexes into
/// [`TACTICS`]).
pub struct Technique {
    pub id: &'static str,
    pub name: &'static str,
    pub tactics: &'static [usize],
}

const IA: usize = 0;
const EX: usize = 1;
const PE: usize = 2;
const PR: usize = 3;
const DE: usize = 4;
const CA: usize = 5;
const DI: usize = 6;
const LM: usize = 7;
const CO: usize = 8;
const XF: usize = 9;
const IM: usize = 10;

const fn t(id: &'static str, name: &'static str, tactics: &'static [usize]) -> Technique {
    Technique { id, name, tactics }
}

/// The techniques of ATT&CK's IaaS matrix that AWS's control plane records, with the few
/// others the pack's detections name.
pub const ATTACK: &[Technique] = &[
    t("T1078", "Valid Accounts", &[IA, PE, PR, DE]),
    t(
        "T1078.001",
        "Valid Accounts: Default Accounts",
        &[IA, PE, PR, DE],
    ),
    t(
        "T1078.004",
        "Valid Accounts: Cloud Accounts",
        &[IA, PE, PR, DE],
    ),
    t("T1190", "Exploit Public-Facing Application", &[IA]),
    t("T1133", "External Remote Services", &[IA, PE]),
    t("T1199", "Trusted Relationship", &[IA]),
    t(
        "T1195.002",
        "Supply Chain Compromise: Software Supply Chain",
        &[IA],
    ),
    t("T1651", "Cloud Administration Command", &[EX]),
    t("T1059", "Command and Scripting Interpreter", &[EX]),
    t(
        "T1059.009",
        "Command and Scripting Interpreter: Cloud API",
        &[EX],
    ),
    t("T1648", "Serverless Execution", &[EX]),
    t("T1204.003", "User Execution: Malicious Image", &[EX]),
    t("T1610", "Deploy Container", &[EX, DE]),
    t("T1098", "Account Manipulation", &[PE, PR]),
    t(
        "T1098.001",
        "Account Manipulation: Additional Cloud Credentials",
        &[PE, PR],
    ),
    t(
        "T1098.003",
        "Account Manipulation: Additional Cloud Roles",
        &[PE, PR],
    ),
    t(
        "T1098.004",
        "Account Manipulation: SSH Authorized Keys",
        &[PE, PR],
    ),
    t("T1136.003", "Create Account: Cloud Account", &[PE]),
    t("T1525", "Implant Internal Image", &[PE]),
    t("T1543", "Create or Modify System Process", &[PE, PR]),
    t("T1546", "Event Triggered Execution", &[PE, PR]),
    t("T1556", "Modify Authentication Process", &[PE, DE, CA]),
    t(
        "T1556.006",
        "Modify Authentication Process: Multi-Factor Authentication",
        &[PE, DE, CA],
    ),
    t("T1548", "Abuse Elevation Control Mechanism", &[PR, DE]),
    t(
        "T1548.005",
        "Abuse Elevation Control Mechanism: Temporary Elevated Cloud Access",
        &[PR, DE],
    ),
    t("T1484", "Domain or Tenant Policy Modification", &[PR, DE]),
    t(
        "T1484.002",
        "Domain or Tenant Policy Modification: Trust Modification",
        &[PR, DE],
    ),
    t("T1562", "Impair Defenses", &[DE]),
    t(
        "T1562.001",
        "Impair Defenses: Disable or Modify Tools",
        &[DE],
    ),
    t("T1562.006", "Impair Defenses: Indicator Blocking", &[DE]),
    t(
        "T1562.007",
        "Impair Defenses: Disable or Modify Cloud Firewall",
        &[DE],
    ),
    t(
        "T1562.008",
        "Impair Defenses: Disable or Modify Cloud Logs",
        &[DE],
    ),
    t("T1578", "Modify Cloud Compute Infrastructure", &[DE]),
    t(
        "T1578.001",
        "Modify Cloud Compute Infrastructure: Create Snapshot",
        &[DE],
    ),
    t(
        "T1578.002",
        "Modify Cloud Compute Infrastructure: Create Cloud Instance",
        &[DE],
    ),
    t(
        "T1578.005",
        "Modify Cloud Compute Infrastructure: Modify Cloud Compute Configurations",
        &[DE],
    ),
    t("T1535", "Unused/Unsupported Cloud Regions", &[DE]),
    t(
        "T1550.001",
        "Use Alternate Authentication Material: Application Access Token",
        &[DE, LM],
    ),
    t("T1070", "Indicator Removal", &[DE]),
    t("T1666", "Modify Cloud Resource Hierarchy", &[DE]),
    t("T1110", "Brute Force", &[CA]),
    t("T1110.003", "Brute Force: Password Spraying", &[CA]),
    t("T1528", "Steal Application Access Token", &[CA]),
    t("T1552", "Unsecured Credentials", &[CA]),
    t(
        "T1552.005",
        "Unsecured Credentials: Cloud Instance Metadata API",
        &[CA],
    ),
    t(
        "T1555.006",
        "Credentials from Password Stores: Cloud Secrets Management Stores",
        &[CA],
    ),
    t("T1606.002", "Forge Web Credentials: SAML Tokens", &[CA]),
    t(
        "T1621",
        "Multi-Factor Authentication Request Generation",
        &[CA],
    ),
    t("T1087.004", "Account Discovery: Cloud Account", &[DI]),
    t(
        "T1069.003",
        "Permission Groups Discovery: Cloud Groups",
        &[DI],
    ),
    t("T1580", "Cloud Infrastructure Discovery", &[DI]),
    t("T1526", "Cloud Service Discovery", &[DI]),
    t("T1538", "Cloud Service Dashboard", &[DI]),
    t("T1619", "Cloud Storage Object Discovery", &[DI]),
    t("T1201", "Password Policy Discovery", &[DI]),
    t(
        "T1518.001",
        "Software Discovery: Security Software Discovery",
        &[DI],
    ),
    t("T1654", "Log Enumeration", &[DI]),
    t("T1021", "Remote Services", &[LM]),
    t("T1021.004", "Remote Services: SSH", &[LM]),
    t("T1021.007", "Remote Services: Cloud Services", &[LM]),
    t(
        "T1021.008",
        "Remote Services: Direct Cloud VM Connections",
        &[LM],
    ),
    t("T1530", "Data from Cloud Storage", &[CO]),
    t("T1119", "Automated Collection", &[CO]),
    t("T1074.002", "Data Staged: Remote Data Staging", &[CO]),
    t("T1537", "Transfer Data to Cloud Account", &[XF]),
    t("T1020", "Automated Exfiltration", &[XF]),
    t("T1048", "Exfiltration Over Alternative Protocol", &[XF]),
    t("T1485", "Data Destruction", &[IM]),
    t("T1486", "Data Encrypted for Impact", &[IM]),
    t("T1489", "Service Stop", &[IM]),
    t("T1490", "Inhibit System Recovery", &[IM]),
    t("T1496", "Resource Hijacking", &[IM]),
    t("T1496.001", "Resource Hijacking: Compute Hijacking", &[IM]),
    t(
        "T1496.004",
        "Resource Hijacking: Cloud Service Hijacking",
        &[IM],
    ),
    t("T1531", "Account Access Removal", &[IM]),
    t(
        "T1565.001",
        "Data Manipulation: Stored Data Manipulation",
        &[IM],
    ),
    t("T1657", "Financial Theft", &[IM]),
];

/// An AWS technique of the attack-simulation catalogue: its id, what it does, and the family
/// of trailhound's it belongs to (`None` for discovery and destruction, which the pack does not
/// claim).
pub struct Simulation {
    pub id: &'static str,
    pub name: &'static str,
    pub family: Option<&'static str>,
}

const fn s(id: &'static str, name: &'static str, family: Option<&'static str>) -> Simulation {
    Simulation { id, name, family }
}

const MODEL: Option<&str> = Some("model access");
const KEYS: Option<&str> = Some("KMS and data exposure");
const CREDS: Option<&str> = Some("credential misuse");
const LOGS: Option<&str> = Some("logging tampering");
const IAM: Option<&str> = Some("IAM");
const COMPUTE: Option<&str> = Some("compute");
const ORG: Option<&str> = Some("organization");

/// Stratus Red Team's AWS techniques.
pub const STRATUS: &[Simulation] = &[
    s(
        "aws.initial-access.console-login-without-mfa",
        "Console login without MFA",
        CREDS,
    ),
    s(
        "aws.execution.ec2-launch-unusual-instances",
        "Launch unusual EC2 instances",
        COMPUTE,
    ),
    s(
        "aws.execution.ec2-user-data",
        "Run commands on an instance through its user data",
        COMPUTE,
    ),
    s(
        "aws.execution.sagemaker-update-lifecycle-config",
        "SageMaker lifecycle configuration for privilege escalation",
        MODEL,
    ),
    s(
        "aws.execution.ssm-send-command",
        "ssm:SendCommand on many instances",
        COMPUTE,
    ),
    s(
        "aws.execution.ssm-start-session",
        "ssm:StartSession on many instances",
        COMPUTE,
    ),
    s(
        "aws.persistence.iam-backdoor-role",
        "Backdoor an IAM role's trust policy",
        IAM,
    ),
    s(
        "aws.persistence.iam-backdoor-user",
        "Create an access key on another IAM user",
        IAM,
    ),
    s(
        "aws.persistence.iam-create-admin-user",
        "Create an administrative IAM user",
        IAM,
    ),
    s(
        "aws.persistence.iam-create-backdoor-role",
        "Create a role trusting another account",
        IAM,
    ),
    s(
        "aws.persistence.iam-create-user-login-profile",
        "Create a console password for an IAM user",
        IAM,
    ),
    s(
        "aws.persistence.lambda-backdoor-function",
        "Open a Lambda function through its resource policy",
        KEYS,
    ),
    s(
        "aws.persistence.lambda-layer-extension",
        "Add a malicious Lambda extension (layer)",
        COMPUTE,
    ),
    s(
        "aws.persistence.lambda-overwrite-code",
        "Overwrite a Lambda function's code",
        COMPUTE,
    ),
    s(
        "aws.persistence.rolesanywhere-create-trust-anchor",
        "Create an IAM Roles Anywhere trust anchor",
        IAM,
    ),
    s(
        "aws.persistence.sts-federation-token",
        "Temporary credentials through GetFederationToken",
        CREDS,
    ),
    s(
        "aws.privilege-escalation.iam-update-user-login-profile",
        "Change an IAM user's console password",
        IAM,
    ),
    s(
        "aws.defense-evasion.cloudtrail-delete",
        "Delete a CloudTrail trail",
        LOGS,
    ),
    s(
        "aws.defense-evasion.cloudtrail-event-selectors",
        "Drop events through CloudTrail event selectors",
        LOGS,
    ),
    s(
        "aws.defense-evasion.cloudtrail-lifecycle-rule",
        "Expire CloudTrail logs with an S3 lifecycle rule",
        LOGS,
    ),
    s(
        "aws.defense-evasion.cloudtrail-stop",
        "Stop a CloudTrail trail",
        LOGS,
    ),
    s(
        "aws.defense-evasion.dns-delete-logs",
        "Delete DNS query logging",
        LOGS,
    ),
    s(
        "aws.defense-evasion.organizations-leave",
        "Leave the AWS organization",
        ORG,
    ),
    s(
        "aws.defense-evasion.vpc-remove-flow-logs",
        "Remove VPC flow logs",
        LOGS,
    ),
    s(
        "aws.defense-evasion.bedrock-guardrail-delete",
        "Delete a Bedrock guardrail",
        MODEL,
    ),
    s(
        "aws.defense-evasion.bedrock-model-invocation-logging-delete",
        "Delete Bedrock model invocation logging",
        MODEL,
    ),
    s(
        "aws.credential-access.ec2-get-password-data",
        "Retrieve EC2 password data",
        CREDS,
    ),
    s(
        "aws.credential-access.ec2-steal-instance-credentials",
        "Use an instance's credentials from outside",
        CREDS,
    ),
    s(
        "aws.credential-access.secretsmanager-batch-retrieve-secrets",
        "Retrieve many secrets in batches",
        CREDS,
    ),
    s(
        "aws.credential-access.secretsmanager-retrieve-secrets",
        "Retrieve many secrets",
        CREDS,
    ),
    s(
        "aws.credential-access.ssm-retrieve-securestring-parameters",
        "Retrieve and decrypt SSM parameters",
        CREDS,
    ),
    s(
        "aws.discovery.ec2-enumerate-from-instance",
        "Discovery calls from an instance",
        None,
    ),
    s(
        "aws.discovery.ec2-download-user-data",
        "Download EC2 user data",
        COMPUTE,
    ),
    s("aws.discovery.ses-enumerate", "Enumerate SES", None),
    s(
        "aws.discovery.bedrock-enumerate-models-multiple-regions",
        "Enumerate Bedrock models in many regions",
        MODEL,
    ),
    s(
        "aws.lateral-movement.ec2-instance-connect",
        "EC2 Instance Connect on many instances",
        COMPUTE,
    ),
    s(
        "aws.lateral-movement.ec2-serial-console-send-ssh-public-key",
        "Push an SSH key through the EC2 serial console",
        COMPUTE,
    ),
    s(
        "aws.exfiltration.ec2-security-group-open-port-22-ingress",
        "Open port 22 to the internet",
        KEYS,
    ),
    s(
        "aws.exfiltration.ec2-share-ami",
        "Share an AMI with another account",
        KEYS,
    ),
    s(
        "aws.exfiltration.ec2-share-ebs-snapshot",
        "Share an EBS snapshot with another account",
        KEYS,
    ),
    s(
        "aws.exfiltration.rds-share-snapshot",
        "Share an RDS snapshot with another account",
        KEYS,
    ),
    s(
        "aws.exfiltration.s3-backdoor-bucket-policy",
        "Open a bucket to another account",
        KEYS,
    ),
    s(
        "aws.impact.bedrock-invoke-model",
        "Invoke Bedrock models",
        MODEL,
    ),
    s(
        "aws.impact.s3-ransomware-batch-deletion",
        "S3 ransomware: batch deletion",
        None,
    ),
    s(
        "aws.impact.s3-ransomware-client-side-encryption",
        "S3 ransomware: objects rewritten under a customer key",
        KEYS,
    ),
    s(
        "aws.impact.s3-ransomware-individual-deletion",
        "S3 ransomware: individual deletion",
        None,
    ),
];

/// One row: what it is and the enabled detections that find it.
pub struct Row<'a> {
    pub id: String,
    pub name: String,
    /// The tactic (ATT&CK) or family (attack simulation).
    pub group: Option<&'static str>,
    pub detections: Vec<&'a Rule>,
}

impl Row<'_> {
    /// Covered by a detection of Medium severity or more.
    pub fn covered_at_medium(&self) -> bool {
        self.detections.iter().any(|r| r.severity.0 >= 4.0)
    }
}

/// The ATT&CK matrix, tactic by tactic (a technique of several tactics appears under each),
/// then a row for each technique the detections name that the matrix does not hold.
pub fn attack<'a>(rules: &'a [Rule]) -> Vec<Row<'a>> {
    let enabled: Vec<&Rule> = rules.iter().filter(|r| r.enabled).collect();
    let covers = |id: &str, r: &Rule| {
        r.mitre
            .iter()
            .any(|m| m == id || (!id.contains('.') && m.split('.').next() == Some(id)))
    };
    let mut rows = Vec::new();
    for (i, tactic) in TACTICS.iter().enumerate() {
        for t in ATTACK.iter().filter(|t| t.tactics.contains(&i)) {
            rows.push(Row {
                id: t.id.to_string(),
                name: t.name.to_string(),
                group: Some(tactic),
                detections: sorted(enabled.iter().copied().filter(|r| covers(t.id, r))),
            });
        }
    }
    let mut others: Vec<&str> = enabled
        .iter()
        .flat_map(|r| r.mitre.iter().map(String::as_str))
        .filter(|m| !ATTACK.iter().any(|t| t.id == *m))
        .collect();
    others.sort_unstable();
    others.dedup();
    for id in others {
        rows.push(Row {
            id: id.to_string(),
            name: "(outside the cloud matrix)".to_string(),
            group: None,
            detections: sorted(
                enabled
                    .iter()
                    .copied()
                    .filter(|r| r.mitre.iter().any(|m| m == id)),
            ),
        });
    }
    rows
}

/// The attack-simulation catalogue, in its order.
pub fn simulations(rules: &[Rule]) -> Vec<Row<'_>> {
    STRATUS
        .iter()
        .map(|s| Row {
            id: s.id.to_string(),
            name: s.name.to_string(),
            group: s.family,
            detections: sorted(
                rules
                    .iter()
                    .filter(|r| r.enabled && r.stratus.iter().any(|x| x == s.id)),
            ),
        })
        .collect()
}

/// Most severe first, then by id.
fn sorted<'a>(rules: impl Iterator<Item = &'a Rule>) -> Vec<&'a Rule> {
    let mut v: Vec<&Rule> = rules.collect();
    v.sort_by(|a, b| {
        b.severity
            .0
            .total_cmp(&a.severity.0)
            .then_with(|| a.id.cmp(&b.id))
    });
    v
}

/// Attack-simulation ids the detections name that the catalogue does not hold (typos).
pub fn unknown_simulations(rules: &[Rule]) -> Vec<(String, String)> {
    rules
        .iter()
        .flat_map(|r| r.stratus.iter().map(move |s| (r.id.clone(), s.clone())))
        .filter(|(_, s)| !STRATUS.iter().any(|x| x.id == s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_technique_is_listed_once_with_known_tactics() {
        let mut ids: Vec<&str> = ATTACK.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "a technique listed twice");
        assert!(ATTACK
            .iter()
            .all(|t| !t.tactics.is_empty() && t.tactics.iter().all(|&i| i < TACTICS.len())));
        let mut sims: Vec<&str> = STRATUS.iter().map(|s| s.id).collect();
        sims.sort_unstable();
        let n = sims.len();
        sims.dedup();
        assert_eq!(sims.len(), n, "a simulation listed twice");
    }
}
