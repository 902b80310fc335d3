//! The routine activity of a simulated organisation: people, pipelines, applications, services,
//! and the noise that fools naive detectors.

use chrono::{Datelike, NaiveDate, Weekday};
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::json;

use super::call::{Call, Record};
use super::identity::{access_key, Actor, Principal};

pub const MAIN_REGION: &str = "us-east-1";
pub const SECOND_REGION: &str = "eu-west-1";

pub const CONSOLE_UA: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36";
pub const TERRAFORM_UA: &str = "APN/1.0 HashiCorp/1.0 Terraform/1.9.8 (+https://www.terraform.io) terraform-provider-aws/5.72.1 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.32.2 ua/2.1 os/linux lang/go#1.23.2 md/GOOS#linux md/GOARCH#amd64 api/kms#1.37.2";
pub const JAVA_SDK_UA: &str = "aws-sdk-java/2.28.16 Linux/5.10.226-214.880.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/21.0.4+7-LTS Java/21.0.4 vendor/Amazon.com_Inc. md/internal exec-env/AWS_ECS_FARGATE io/sync http/Apache cfg/retry-mode#legacy";
pub const PYTHON_SDK_UA: &str = "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#5.10.226-214.880.amzn2.x86_64 md/arch#x86_64 lang/python#3.12.7 md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.35.36";
pub const SSM_AGENT_UA: &str =
    "aws-sdk-go/1.55.5 (go1.22.7; linux; amd64) amazon-ssm-agent/3.3.987.0";
pub const CLI_UA: &str = "aws-cli/2.18.9 md/awscrt#0.22.0 ua/2.0 os/linux#6.8.0-1016-aws md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.24 md/prompt#off md/command#";
pub const AUDIT_UA: &str = "aws-cli/2.18.9 md/awscrt#0.22.0 ua/2.0 os/linux#6.8.0 md/arch#x86_64 lang/python#3.12.6 md/command#audit-sweep cfg/retry-mode#adaptive";

pub const MODELS: &[&str] = &[
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "anthropic.claude-3-haiku-20240307-v1:0",
    "amazon.titan-embed-text-v2:0",
];

/// One account of the organisation, with its people and workloads.
pub struct Account {
    pub id: String,
    pub name: &'static str,
    pub humans: Vec<Actor>,
    pub ci: Actor,
    pub app: Actor,
    pub functions: Vec<Actor>,
    pub instances: Vec<Actor>,
    pub services: Vec<Actor>,
    pub auditor: Actor,
    pub backup: Actor,
    pub scientists: Vec<Actor>,
    /// A service summarising the day's tickets with Bedrock every night, with an IAM user's
    /// long-term key, from the data centre.
    pub nightly: Actor,
    /// Where each person works from at night when on call (their home network).
    pub homes: Vec<String>,
    /// A new employee's first day, and the employee (console, then a key of their own).
    pub hire: Option<(NaiveDate, Actor, Actor)>,
    pub key_arn: String,
    pub buckets: Vec<String>,
    pub secrets: Vec<String>,
}

pub const ACCOUNT_NAMES: &[&str] = &[
    "prod",
    "ml-platform",
    "staging",
    "data",
    "shared-services",
    "sandbox",
];
const PEOPLE: &[&str] = &[
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory-not",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "yolanda",
];

impl Account {
    /// A new employee joins on `day`: a console user who, from the next day, also works
    /// with an access key of their own.
    pub fn hire(&mut self, rng: &mut impl Rng, day: NaiveDate) {
        let name = "new-hire-quinn".to_string();
        let office = self
            .humans
            .first()
            .map_or_else(|| "203.0.113.20".to_string(), |h| h.source_ip.clone());
        let console = Actor::user(
            &self.id,
            name.clone(),
            access_key(rng, "ASIA"),
            office.clone(),
            CONSOLE_UA.into(),
            true,
        );
        let cli = Actor::user(
            &self.id,
            name,
            access_key(rng, "AKIA"),
            office,
            CLI_UA.to_string() + "bedrock-runtime.converse",
            false,
        );
        self.hire = Some((day, console, cli));
    }

    pub fn new(rng: &mut impl Rng, index: usize, scale: f64) -> Self {
        let id = format!(
            "{:012}",
            100_000_000_000u64 + rng.random_range(0..899_999_999_999u64)
        );
        let name = ACCOUNT_NAMES[index % ACCOUNT_NAMES.len()];
        let office_ip =
            |rng: &mut dyn rand::RngCore| format!("203.0.113.{}", 10 + rng.random_range(0..40));
        let pool = |base: f64| ((base * scale.sqrt()).round() as usize).clamp(1, 400);
        let humans = (0..pool(4.0))
            .map(|i| {
                let name = if i < PEOPLE.len() {
                    PEOPLE[i].to_string()
                } else {
                    format!("{}{}", PEOPLE[i % PEOPLE.len()], i / PEOPLE.len())
                };
                Actor::user(
                    &id,
                    name,
                    access_key(rng, "ASIA"),
                    office_ip(rng),
                    CONSOLE_UA.into(),
                    true,
                )
            })
            .collect();
        let role = |role: &str,
                    session: String,
                    ip: String,
                    ua: &str,
                    vpce: bool,
                    rng: &mut dyn rand::RngCore| Actor {
            account: id.clone(),
            principal: Principal::Role {
                role: role.into(),
                session,
                key: access_key(rng, "ASIA"),
                ec2: false,
                issued_to: None,
                mfa: false,
            },
            source_ip: ip,
            user_agent: ua.into(),
            vpc_endpoint: vpce.then(|| format!("vpce-0{:016x}", rng.random::<u64>())),
            console: false,
        };
        let ci = role(
            "github-actions-deploy",
            "GitHubActions".into(),
            format!("198.51.100.{}", rng.random_range(1..250)),
            TERRAFORM_UA,
            false,
            rng,
        );
        let app = role(
            "chat-api-task",
            format!("{:032x}", rng.random::<u128>()),
            format!(
                "10.0.{}.{}",
                rng.random_range(0..4),
                rng.random_range(2..250)
            ),
            JAVA_SDK_UA,
            true,
            rng,
        );
        let functions = (0..pool(3.0))
            .map(|i| {
                let fname = format!("ingest-worker-{i}");
                let mut a = role(
                    &format!("{fname}-role"),
                    fname.clone(),
                    "10.0.8.17".into(),
                    PYTHON_SDK_UA,
                    false,
                    rng,
                );
                a.source_ip = format!("10.0.8.{}", 10 + i % 200);
                if let Principal::Role { issued_to, .. } = &mut a.principal {
                    *issued_to = Some((
                        "AWS::Lambda::Function".into(),
                        format!("arn:aws:lambda:{MAIN_REGION}:{id}:function:{fname}"),
                    ));
                }
                a
            })
            .collect();
        let instances = (0..pool(4.0))
            .map(|_| {
                let instance = format!("i-0{:016x}", rng.random::<u64>());
                let mut a = role(
                    "batch-worker-instance",
                    instance.clone(),
                    format!(
                        "10.0.{}.{}",
                        16 + rng.random_range(0..4),
                        rng.random_range(2..250)
                    ),
                    SSM_AGENT_UA,
                    false,
                    rng,
                );
                if let Principal::Role { ec2, issued_to, .. } = &mut a.principal {
                    *ec2 = true;
                    *issued_to = Some((
                        "AWS::EC2::Instance".into(),
                        format!("arn:aws:ec2:{MAIN_REGION}:{id}:instance/{instance}"),
                    ));
                }
                a
            })
            .collect();
        let services = [
            "config.amazonaws.com",
            "cloudformation.amazonaws.com",
            "autoscaling.amazonaws.com",
            "guardduty.amazonaws.com",
            "access-analyzer.amazonaws.com",
        ]
        .iter()
        .map(|s| Actor {
            account: id.clone(),
            principal: Principal::Service { name: (*s).into() },
            source_ip: (*s).into(),
            user_agent: (*s).into(),
            vpc_endpoint: None,
            console: false,
        })
        .collect();
        let auditor = role(
            "OrganizationSecurityAudit",
            "audit-sweep".into(),
            format!("198.51.100.{}", 200 + rng.random_range(0..50)),
            AUDIT_UA,
            false,
            rng,
        );
        let backup = Actor::user(
            &id,
            "svc-backup".into(),
            access_key(rng, "AKIA"),
            format!("198.51.100.{}", rng.random_range(20..60)),
            CLI_UA.to_string() + "rds.describe-db-snapshots",
            false,
        );
        let scientists = (0..pool(2.0))
            .map(|i| {
                let person = PEOPLE[(i + 7) % PEOPLE.len()];
                let mut a = role(
                    "AWSReservedSSO_DataScientist_5c2a9e1b7f3d4a60",
                    format!("{person}@example.com"),
                    office_ip(rng),
                    CONSOLE_UA,
                    false,
                    rng,
                );
                a.console = true;
                if let Principal::Role { mfa, .. } = &mut a.principal {
                    *mfa = true;
                }
                a
            })
            .collect();
        let nightly = Actor::user(
            &id,
            "svc-ticket-summaries".into(),
            access_key(rng, "AKIA"),
            format!("198.51.100.{}", rng.random_range(60..90)),
            "Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#5.15.0-124-generic md/arch#x86_64 lang/python#3.11.10 md/pyimpl#CPython cfg/retry-mode#standard Botocore/1.35.36".into(),
            false,
        );
        let homes = (0..pool(4.0))
            .map(|_| format!("192.0.2.{}", rng.random_range(100..250)))
            .collect();
        let key_arn = format!(
            "arn:aws:kms:{MAIN_REGION}:{id}:key/{}",
            super::identity::uuid(rng)
        );
        let buckets = (0..4)
            .map(|i| {
                format!(
                    "{name}-{}-{i}",
                    ["assets", "models", "datasets", "reports"][i % 4]
                )
            })
            .collect();
        let secrets = (0..6).map(|i| format!("{name}/app/secret-{i}")).collect();
        Self {
            id,
            name,
            humans,
            ci,
            app,
            functions,
            instances,
            services,
            auditor,
            backup,
            scientists,
            nightly,
            homes,
            hire: None,
            key_arn,
            buckets,
            secrets,
        }
    }
}

/// Expected count to an integer, with the fraction drawn at random.
fn draw(rng: &mut impl Rng, expected: f64) -> usize {
    let jittered = expected * rng.random_range(0.75..1.25);
    let base = jittered.floor();
    base as usize + usize::from(rng.random_bool((jittered - base).clamp(0.0, 1.0)))
}

/// A time within the given hour of `day`, in microseconds since the epoch.
fn at(rng: &mut impl Rng, day: NaiveDate, hour: u32) -> i64 {
    let start = day
        .and_hms_opt(hour, 0, 0)
        .expect("valid hour")
        .and_utc()
        .timestamp_micros();
    start + rng.random_range(0..3_600_000_000)
}

/// Daily rhythm of an application: low at night, peaking mid-afternoon (UTC).
fn app_rhythm(hour: u32) -> f64 {
    let x = (hour as f64 - 14.0) / 24.0 * std::f64::consts::TAU;
    0.15 + 0.85 * (0.5 + 0.5 * x.cos())
}

fn working_hour(hour: u32) -> bool {
    (8..18).contains(&hour) && hour != 12
}

/// One account-day of routine activity.
pub fn benign_day(rng: &mut impl Rng, acct: &Account, day: NaiveDate, scale: f64) -> Vec<Record> {
    let weekday = !matches!(day.weekday(), Weekday::Sat | Weekday::Sun);
    let mut out = Vec::new();
    let kms = "kms.amazonaws.com";
    for hour in 0..24 {
        // People: sign in with MFA in the morning, then work in the console.
        if weekday && working_hour(hour) {
            for human in &acct.humans {
                if hour == 8 || (hour == 13 && rng.random_bool(0.3)) {
                    let t = at(rng, day, hour);
                    let login = Call::new(human, "signin.amazonaws.com", "ConsoleLogin", MAIN_REGION)
                        .write()
                        .event_type("AwsConsoleSignIn")
                        .resp(json!({"ConsoleLogin": "Success"}))
                        .additional(json!({"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAIdentifier": format!("arn:aws:iam::{}:mfa/{}", acct.id, name_of(human)), "MFAUsed": "Yes"}));
                    out.push(login.render(t, rng));
                }
                for _ in 0..draw(rng, 30.0 * scale.min(1.0)) {
                    out.push(console_call(rng, human, acct).render(at(rng, day, hour), rng));
                }
            }
        }
        // CI: Terraform applies nightly and on weekday deploys; re-applies the same key policy.
        let ci_runs = if hour == 2 || (weekday && matches!(hour, 10 | 14 | 16)) {
            1
        } else {
            0
        };
        for _ in 0..ci_runs {
            let t0 = at(rng, day, hour);
            // Hosted runners: a fresh machine from a cloud provider's large ranges each run.
            let mut runner = acct.ci.clone();
            runner.source_ip = runner_address(rng);
            let runner = &runner;
            out.push(
                Call::new(runner, "sts.amazonaws.com", "AssumeRoleWithWebIdentity", MAIN_REGION)
                    .write()
                    .req(json!({"roleArn": format!("arn:aws:iam::{}:role/github-actions-deploy", acct.id), "roleSessionName": "GitHubActions", "durationSeconds": 3600}))
                    .resp(json!({"subjectFromWebIdentityToken": "repo:example-org/platform:ref:refs/heads/main", "audience": "sts.amazonaws.com", "provider": format!("arn:aws:iam::{}:oidc-provider/token.actions.githubusercontent.com", acct.id)}))
                    .render(t0, rng),
            );
            for i in 0..draw(rng, 250.0 * scale.sqrt()) {
                out.push(terraform_call(rng, acct, runner, i).render(t0 + i as i64 * 150_000, rng));
            }
        }
        // The application: Bedrock invocations with a daily rhythm, KMS and secrets.
        let invocations = draw(rng, 220.0 * scale * app_rhythm(hour));
        for _ in 0..invocations {
            let model = if rng.random_bool(0.7) {
                MODELS[0]
            } else {
                *MODELS[1..].choose(rng).expect("models")
            };
            let region = if rng.random_bool(0.8) {
                MAIN_REGION
            } else {
                SECOND_REGION
            };
            let name = if rng.random_bool(0.6) {
                "InvokeModel"
            } else {
                "Converse"
            };
            let mut call = Call::new(&acct.app, "bedrock.amazonaws.com", name, region)
                .req(json!({"modelId": model}))
                .resource(
                    format!("arn:aws:bedrock:{region}::foundation-model/{model}"),
                    "AWS::Bedrock::FoundationModel",
                );
            call.read_only = true;
            if rng.random_bool(0.002) {
                call = call.error(
                    "ThrottlingException",
                    "Too many requests, please wait before trying again.",
                );
            }
            out.push(call.render(at(rng, day, hour), rng));
        }
        for _ in 0..draw(rng, invocations as f64 / 12.0 + 1.0) {
            out.push(
                Call::new(&acct.app, kms, "Decrypt", MAIN_REGION)
                    .req(json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "keyId": acct.key_arn}))
                    .resource(acct.key_arn.clone(), "AWS::KMS::Key")
                    .render(at(rng, day, hour), rng),
            );
        }
        if hour % 6 == 0 {
            for secret in acct.secrets.iter().take(2) {
                out.push(
                    Call::new(&acct.app, "secretsmanager.amazonaws.com", "GetSecretValue", MAIN_REGION)
                        .req(json!({"secretId": format!("arn:aws:secretsmanager:{MAIN_REGION}:{}:secret:{secret}", acct.id)}))
                        .render(at(rng, day, hour), rng),
                );
            }
        }
        // Functions and instances.
        for f in &acct.functions {
            for _ in 0..draw(rng, 8.0 * scale.sqrt()) {
                let call = match rng.random_range(0..3) {
                    0 => Call::new(f, "logs.amazonaws.com", "CreateLogStream", MAIN_REGION).write().req(json!({"logGroupName": format!("/aws/lambda/{}", name_of(f)), "logStreamName": format!("2024/01/01/[$LATEST]{:032x}", rng.random::<u128>())})),
                    1 => Call::new(f, kms, "Decrypt", MAIN_REGION).req(json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": {"LambdaFunctionName": name_of(f)}})).resource(acct.key_arn.clone(), "AWS::KMS::Key"),
                    _ => Call::new(f, "secretsmanager.amazonaws.com", "GetSecretValue", MAIN_REGION).req(json!({"secretId": acct.secrets[0]})),
                };
                out.push(call.render(at(rng, day, hour), rng));
            }
        }
        for inst in &acct.instances {
            for n in 0..draw(rng, 12.0) {
                let call = if n % 4 == 3 {
                    Call::new(
                        inst,
                        "ssm.amazonaws.com",
                        "ListInstanceAssociations",
                        MAIN_REGION,
                    )
                    .req(json!({"instanceId": name_of(inst), "maxResults": 20}))
                } else {
                    Call::new(inst, "ssm.amazonaws.com", "UpdateInstanceInformation", MAIN_REGION).write().req(json!({"instanceId": name_of(inst), "agentVersion": "3.3.987.0", "agentStatus": "Active", "platformType": "Linux", "platformName": "Amazon Linux", "platformVersion": "2023", "iPAddress": inst.source_ip}))
                };
                out.push(call.render(at(rng, day, hour), rng));
            }
        }
        // AWS services working on the account's behalf.
        for _ in 0..draw(rng, 20.0 * scale.sqrt()) {
            let svc = acct.services.choose(rng).expect("services");
            let call = match rng.random_range(0..4) {
                0 => Call::new(svc, "ec2.amazonaws.com", "DescribeInstances", MAIN_REGION).req(json!({"instancesSet": {}, "filterSet": {}})),
                1 => Call::new(svc, "iam.amazonaws.com", "GetRole", MAIN_REGION).req(json!({"roleName": "chat-api-task"})),
                2 => Call::new(svc, "s3.amazonaws.com", "GetBucketAcl", MAIN_REGION).req(json!({"bucketName": acct.buckets.choose(rng).expect("buckets"), "Host": "s3.amazonaws.com", "acl": ""})),
                _ => Call::new(svc, kms, "DescribeKey", MAIN_REGION).req(json!({"keyId": acct.key_arn})),
            };
            out.push(call.render(at(rng, day, hour), rng));
        }
        // The backup user: nightly, from the data centre, with a long-term key.
        if hour == 1 {
            for i in 0..draw(rng, 40.0) {
                let call = if i % 2 == 0 {
                    Call::new(
                        &acct.backup,
                        "rds.amazonaws.com",
                        "DescribeDBSnapshots",
                        MAIN_REGION,
                    )
                    .req(json!({"dBInstanceIdentifier": format!("{}-db", acct.name)}))
                } else {
                    Call::new(&acct.backup, "s3.amazonaws.com", "ListBuckets", MAIN_REGION)
                        .req(json!({"Host": "s3.amazonaws.com"}))
                };
                out.push(call.render(at(rng, day, hour), rng));
            }
        }
        // Data scientists: notebooks, training jobs, the Bedrock playground.
        if weekday && working_hour(hour) && acct.name == "ml-platform" {
            for sci in &acct.scientists {
                if hour == 9 {
                    out.push(
                        Call::new(sci, "sagemaker.amazonaws.com", "CreatePresignedNotebookInstanceUrl", MAIN_REGION)
                            .req(json!({"notebookInstanceName": format!("nb-{}", name_of(sci).split('@').next().unwrap_or("x"))}))
                            .render(at(rng, day, hour), rng),
                    );
                }
                for _ in 0..draw(rng, 6.0) {
                    let call = match rng.random_range(0..4) {
                        0 => Call::new(sci, "sagemaker.amazonaws.com", "DescribeTrainingJob", MAIN_REGION).req(json!({"trainingJobName": format!("churn-model-{}", day.format("%Y%m%d"))})),
                        1 => Call::new(sci, "sagemaker.amazonaws.com", "ListEndpoints", MAIN_REGION).req(json!({"maxResults": 10})),
                        2 => Call::new(sci, "bedrock.amazonaws.com", "Converse", MAIN_REGION).req(json!({"modelId": MODELS[1]})),
                        _ => Call::new(sci, "sagemaker.amazonaws.com", "DescribeNotebookInstance", MAIN_REGION).req(json!({"notebookInstanceName": "nb-shared"})),
                    };
                    out.push(call.render(at(rng, day, hour), rng));
                }
                if hour == 11 && rng.random_bool(0.3) {
                    out.push(
                        Call::new(sci, "sagemaker.amazonaws.com", "CreateTrainingJob", MAIN_REGION)
                            .write()
                            .req(json!({
                                "trainingJobName": format!("churn-model-{}", day.format("%Y%m%d")),
                                "algorithmSpecification": {"trainingImage": format!("{}.dkr.ecr.{MAIN_REGION}.amazonaws.com/churn-train:1.4", acct.id), "trainingInputMode": "File"},
                                "roleArn": format!("arn:aws:iam::{}:role/SageMakerExecution", acct.id),
                                "outputDataConfig": {"kmsKeyId": acct.key_arn, "s3OutputPath": format!("s3://{}/output/", acct.buckets[1])},
                                "vpcConfig": {"securityGroupIds": ["sg-0a1b2c3d4e5f60718"], "subnets": ["subnet-0123456789abcdef0"]},
                                "enableNetworkIsolation": true,
                                "enableInterContainerTrafficEncryption": true
                            }))
                            .resp(json!({"trainingJobArn": format!("arn:aws:sagemaker:{MAIN_REGION}:{}:training-job/churn-model-{}", acct.id, day.format("%Y%m%d"))}))
                            .render(at(rng, day, hour), rng),
                    );
                }
            }
        }
        // A service summarising tickets with Bedrock every night, with a long-term key.
        if hour == 3 {
            for _ in 0..draw(rng, 30.0) {
                let mut call = Call::new(
                    &acct.nightly,
                    "bedrock.amazonaws.com",
                    "InvokeModel",
                    MAIN_REGION,
                )
                .req(json!({"modelId": MODELS[1]}))
                .resource(
                    format!(
                        "arn:aws:bedrock:{MAIN_REGION}::foundation-model/{}",
                        MODELS[1]
                    ),
                    "AWS::Bedrock::FoundationModel",
                );
                call.read_only = true;
                out.push(call.render(at(rng, day, hour), rng));
            }
        }
        // On call: now and then someone is paged at night and works from home in the
        // console: restarts, scaling, a look at the alarms.
        if matches!(hour, 2 | 3) && rng.random_bool(0.1) && !acct.humans.is_empty() {
            let i = rng.random_range(0..acct.humans.len());
            let mut engineer = acct.humans[i].clone();
            engineer.source_ip = acct.homes[i % acct.homes.len()].clone();
            let t0 = at(rng, day, hour);
            out.push(
                Call::new(&engineer, "signin.amazonaws.com", "ConsoleLogin", MAIN_REGION)
                    .write()
                    .event_type("AwsConsoleSignIn")
                    .resp(json!({"ConsoleLogin": "Success"}))
                    .additional(json!({"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAIdentifier": format!("arn:aws:iam::{}:mfa/{}", acct.id, name_of(&engineer)), "MFAUsed": "Yes"}))
                    .render(t0, rng),
            );
            for n in 0..draw(rng, 25.0) {
                let t = t0 + 30_000_000 + n as i64 * 45_000_000;
                let call = match n % 6 {
                    0 => Call::new(&engineer, "cloudwatch.amazonaws.com", "DescribeAlarms", MAIN_REGION).req(json!({"stateValue": "ALARM"})),
                    1 => Call::new(&engineer, "ecs.amazonaws.com", "UpdateService", MAIN_REGION).write().req(json!({"cluster": "prod", "service": "chat-api", "forceNewDeployment": true})),
                    2 => Call::new(&engineer, "logs.amazonaws.com", "FilterLogEvents", MAIN_REGION).req(json!({"logGroupName": "/ecs/chat-api", "filterPattern": "ERROR"})),
                    3 => Call::new(&engineer, "autoscaling.amazonaws.com", "SetDesiredCapacity", MAIN_REGION).write().req(json!({"autoScalingGroupName": "batch-workers", "desiredCapacity": 6})),
                    4 => Call::new(&engineer, "ec2.amazonaws.com", "RebootInstances", MAIN_REGION).write().req(json!({"instancesSet": {"items": [{"instanceId": "i-0123456789abcdef0"}]}})),
                    _ => Call::new(&engineer, "ecs.amazonaws.com", "DescribeServices", MAIN_REGION).req(json!({"cluster": "prod", "services": ["chat-api"]})),
                };
                out.push(call.render(t, rng));
            }
        }
        // A new employee's first week: the console on the first day, a key of their own from
        // the second, the Bedrock playground and the CLI as they find their way.
        if let Some((first, console, cli)) = &acct.hire {
            let since = (day - *first).num_days();
            if (0..7).contains(&since) && weekday && working_hour(hour) {
                if hour == 9 {
                    out.push(
                        Call::new(console, "signin.amazonaws.com", "ConsoleLogin", MAIN_REGION)
                            .write()
                            .event_type("AwsConsoleSignIn")
                            .resp(json!({"ConsoleLogin": "Success"}))
                            .additional(json!({"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No", "MFAIdentifier": format!("arn:aws:iam::{}:mfa/{}", acct.id, name_of(console)), "MFAUsed": "Yes"}))
                            .render(at(rng, day, hour), rng),
                    );
                }
                if since == 1 && hour == 10 {
                    let key = match &cli.principal {
                        Principal::User { key, .. } => key.clone(),
                        _ => String::new(),
                    };
                    out.push(
                        Call::new(console, "iam.amazonaws.com", "CreateAccessKey", MAIN_REGION)
                            .write()
                            .req(json!({"userName": name_of(console)}))
                            .resp(json!({"accessKey": {"accessKeyId": key, "status": "Active", "userName": name_of(console), "createDate": "now"}}))
                            .render(at(rng, day, hour), rng),
                    );
                }
                for _ in 0..draw(rng, 15.0) {
                    out.push(console_call(rng, console, acct).render(at(rng, day, hour), rng));
                }
                if since >= 1 && hour > 10 {
                    for n in 0..draw(rng, 6.0) {
                        let call = match n % 4 {
                            0 => Call::new(cli, "s3.amazonaws.com", "ListBuckets", MAIN_REGION)
                                .req(json!({"Host": "s3.amazonaws.com"})),
                            1 => Call::new(
                                cli,
                                "bedrock.amazonaws.com",
                                "ListFoundationModels",
                                MAIN_REGION,
                            )
                            .req(json!({})),
                            2 => {
                                let mut c = Call::new(
                                    cli,
                                    "bedrock.amazonaws.com",
                                    "Converse",
                                    MAIN_REGION,
                                )
                                .req(json!({"modelId": MODELS[1]}));
                                c.read_only = true;
                                c
                            }
                            _ => Call::new(
                                cli,
                                "ec2.amazonaws.com",
                                "DescribeInstances",
                                MAIN_REGION,
                            )
                            .req(json!({"instancesSet": {}, "filterSet": {}})),
                        };
                        out.push(call.render(at(rng, day, hour), rng));
                    }
                }
            }
        }
        // Auditors sweep every account on Monday mornings: they read everything.
        if day.weekday() == Weekday::Mon && hour == 7 {
            let t0 = at(rng, day, hour);
            for i in 0..draw(rng, 600.0 * scale.sqrt()) {
                let mut call = audit_call(rng, acct, i);
                if rng.random_bool(0.04) {
                    call = call.error("AccessDenied", format!("User: arn:aws:sts::{}:assumed-role/OrganizationSecurityAudit/audit-sweep is not authorized to perform this action", acct.id));
                }
                out.push(call.render(t0 + i as i64 * 40_000, rng));
            }
        }
    }
    out
}

pub fn name_of(actor: &Actor) -> String {
    match &actor.principal {
        Principal::User { name, .. } => name.clone(),
        Principal::Role { session, .. } => session.clone(),
        Principal::Service { name } => name.clone(),
        Principal::Root => "root".into(),
    }
}

fn console_call<'a>(rng: &mut impl Rng, human: &'a Actor, acct: &Account) -> Call<'a> {
    let bucket = acct.buckets.choose(rng).expect("buckets").clone();
    let call = match rng.random_range(0..10) {
        0 => Call::new(human, "ec2.amazonaws.com", "DescribeInstances", MAIN_REGION).req(json!({"maxResults": 1000, "instancesSet": {}, "filterSet": {}})),
        1 => Call::new(human, "s3.amazonaws.com", "GetBucketPolicy", MAIN_REGION).req(json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com"), "policy": ""})).resource(format!("arn:aws:s3:::{bucket}"), "AWS::S3::Bucket"),
        2 => Call::new(human, "cloudwatch.amazonaws.com", "DescribeAlarms", MAIN_REGION).req(json!({"maxRecords": 100})),
        3 => Call::new(human, "iam.amazonaws.com", "ListRoles", MAIN_REGION).req(json!({"maxItems": 100})),
        4 => Call::new(human, "lambda.amazonaws.com", "ListFunctions20150331", MAIN_REGION).req(json!({"maxItems": 50})),
        5 => Call::new(human, "logs.amazonaws.com", "DescribeLogGroups", MAIN_REGION).req(json!({"limit": 50})),
        6 => Call::new(human, "bedrock.amazonaws.com", "ListFoundationModels", MAIN_REGION).req(json!({})),
        7 => Call::new(human, "kms.amazonaws.com", "ListAliases", MAIN_REGION).req(json!({"limit": 100})),
        8 => Call::new(human, "ecs.amazonaws.com", "DescribeServices", MAIN_REGION).req(json!({"cluster": "prod", "services": ["chat-api"]})),
        _ => Call::new(human, "ec2.amazonaws.com", "ModifyInstanceAttribute", MAIN_REGION).write().req(json!({"instanceId": "i-0123456789abcdef0", "disableApiTermination": {"value": true}})).resp(json!({"_return": true})),
    };
    if rng.random_bool(0.02) {
        let action = call.name;
        call.error(
            "AccessDenied",
            format!(
                "User: arn:aws:iam::{}:user/{} is not authorized to perform: {action}",
                acct.id,
                name_of(human)
            ),
        )
    } else {
        call
    }
}

const ROLES: [&str; 3] = [
    "chat-api-task",
    "batch-worker-instance",
    "SageMakerExecution",
];

/// An address of a hosted CI runner: anywhere in a cloud provider's large public ranges.
fn runner_address(rng: &mut impl Rng) -> String {
    let first = *[4u8, 13, 20, 40, 52, 104].choose(rng).expect("ranges");
    format!(
        "{first}.{}.{}.{}",
        rng.random_range(0..=255),
        rng.random_range(0..=255),
        rng.random_range(1..=254)
    )
}

fn terraform_call<'a>(rng: &mut impl Rng, acct: &Account, ci: &'a Actor, i: usize) -> Call<'a> {
    let bucket = acct.buckets[i % acct.buckets.len()].clone();
    match i % 25 {
        0 => Call::new(ci, "kms.amazonaws.com", "PutKeyPolicy", MAIN_REGION)
            .write()
            .req(json!({"keyId": acct.key_arn, "policyName": "default", "policy": key_policy(&acct.id), "bypassPolicyLockoutSafetyCheck": false}))
            .resource(acct.key_arn.clone(), "AWS::KMS::Key"),
        1 => Call::new(ci, "s3.amazonaws.com", "PutBucketEncryption", MAIN_REGION)
            .write()
            .req(json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com"), "encryption": "", "ServerSideEncryptionConfiguration": {"Rule": {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": acct.key_arn}, "BucketKeyEnabled": true}}}))
            .resource(format!("arn:aws:s3:::{bucket}"), "AWS::S3::Bucket"),
        2 => Call::new(ci, "iam.amazonaws.com", "PutRolePolicy", MAIN_REGION)
            .write()
            .req(json!({"roleName": "chat-api-task", "policyName": "bedrock-invoke", "policyDocument": format!("{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Action\":[\"bedrock:InvokeModel\",\"bedrock:Converse\"],\"Resource\":\"arn:aws:bedrock:*::foundation-model/anthropic.*\"}}]}}")})),
        3 => Call::new(ci, "lambda.amazonaws.com", "UpdateFunctionCode20150331v2", MAIN_REGION)
            .write()
            .req(json!({"functionName": format!("ingest-worker-{}", rng.random_range(0..acct.functions.len()))}))
            .resp(json!({"codeSha256": format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>()), "lastUpdateStatus": "InProgress"})),
        4 => Call::new(ci, "logs.amazonaws.com", "PutRetentionPolicy", MAIN_REGION).write().req(json!({"logGroupName": "/ecs/chat-api", "retentionInDays": 90})),
        5..=9 => Call::new(ci, "iam.amazonaws.com", "GetRole", MAIN_REGION).req(json!({"roleName": ROLES[i % 3]})),
        10..=14 => Call::new(ci, "s3.amazonaws.com", "GetBucketVersioning", MAIN_REGION).req(json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com"), "versioning": ""})),
        15..=17 => Call::new(ci, "kms.amazonaws.com", "GetKeyPolicy", MAIN_REGION).req(json!({"keyId": acct.key_arn, "policyName": "default"})),
        18..=20 => Call::new(ci, "ec2.amazonaws.com", "DescribeSecurityGroups", MAIN_REGION).req(json!({"securityGroupIdSet": {"items": [{"groupId": "sg-0a1b2c3d4e5f60718"}]}})),
        _ => Call::new(ci, "ecs.amazonaws.com", "DescribeTaskDefinition", MAIN_REGION).req(json!({"taskDefinition": "chat-api"})),
    }
}

fn audit_call<'a>(rng: &mut impl Rng, acct: &'a Account, i: usize) -> Call<'a> {
    let a = &acct.auditor;
    let bucket = acct.buckets.choose(rng).expect("buckets").clone();
    match i % 12 {
        0 => Call::new(a, "iam.amazonaws.com", "GetAccountAuthorizationDetails", MAIN_REGION).req(json!({"maxItems": 100})),
        1 => Call::new(a, "kms.amazonaws.com", "GetKeyPolicy", MAIN_REGION).req(json!({"keyId": acct.key_arn, "policyName": "default"})),
        2 => Call::new(a, "s3.amazonaws.com", "GetBucketPolicy", MAIN_REGION).req(json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com"), "policy": ""})),
        3 => Call::new(a, "s3.amazonaws.com", "GetBucketEncryption", MAIN_REGION).req(json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com"), "encryption": ""})),
        4 => Call::new(a, "cloudtrail.amazonaws.com", "DescribeTrails", MAIN_REGION).req(json!({"includeShadowTrails": true})),
        5 => Call::new(a, "cloudtrail.amazonaws.com", "GetEventSelectors", MAIN_REGION).req(json!({"trailName": "org-trail"})),
        6 => Call::new(a, "guardduty.amazonaws.com", "ListDetectors", MAIN_REGION).req(json!({})),
        7 => Call::new(a, "bedrock.amazonaws.com", "GetModelInvocationLoggingConfiguration", MAIN_REGION).req(json!({})),
        8 => Call::new(a, "secretsmanager.amazonaws.com", "ListSecrets", MAIN_REGION).req(json!({"maxResults": 100})),
        9 => Call::new(a, "ec2.amazonaws.com", "DescribeFlowLogs", MAIN_REGION).req(json!({"flowLogIdSet": {}})),
        10 => Call::new(a, "sagemaker.amazonaws.com", "ListNotebookInstances", MAIN_REGION).req(json!({})),
        _ => Call::new(a, "config.amazonaws.com", "DescribeConfigurationRecorders", MAIN_REGION).req(json!({})),
    }
}

/// The account's usual key policy (what Terraform keeps re-applying).
pub fn key_policy(account: &str) -> String {
    format!("{{\"Version\":\"2012-10-17\",\"Id\":\"key-default-1\",\"Statement\":[{{\"Sid\":\"Enable IAM User Permissions\",\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"arn:aws:iam::{account}:root\"}},\"Action\":\"kms:*\",\"Resource\":\"*\"}},{{\"Sid\":\"Allow use by the application\",\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"arn:aws:iam::{account}:role/chat-api-task\"}},\"Action\":[\"kms:Decrypt\",\"kms:GenerateDataKey\"],\"Resource\":\"*\"}}]}}")
}
