//! `trailhound rules list|test`: the detection pack as code.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};

use crate::detect::{self, ruletest, Engine, EngineOptions, PackOptions, Rule};

/// Which detections a command uses.
#[derive(Debug, Args, Clone)]
pub struct PackArgs {
    /// A directory (walked for *.toml) or file of your own detections; repeat for more. A
    /// detection with a built-in's id replaces the built-in one.
    #[arg(long = "detections", short = 'd', value_name = "DIR")]
    pub detections: Vec<PathBuf>,

    /// Leave out the built-in detections (use only those of --detections).
    #[arg(long)]
    pub no_builtin: bool,

    /// Accounts of your own organisation, and the organisation's id (o-...), comma
    /// separated: policies granting them access are not "outside the account". A policy
    /// scoped to an organisation by aws:PrincipalOrgID counts as inside only for an
    /// organisation named here (anyone can name their own).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "ACCOUNT,...",
        env = "TRAILHOUND_TRUSTED_ACCOUNTS"
    )]
    pub trusted_accounts: Vec<String>,

    /// Your deployment pipelines, as role or user ARN patterns (`*` matches anything),
    /// comma separated, such as arn:aws:iam::*:role/github-actions-deploy. Detections of
    /// changes made "outside the pipeline" leave these identities out. A role's sessions are
    /// known by the role that issued them; the user agent is never trusted (whoever holds a
    /// key writes it).
    #[arg(
        long = "pipeline",
        value_delimiter = ',',
        value_name = "ARN_PATTERN,...",
        env = "TRAILHOUND_PIPELINES"
    )]
    pub pipelines: Vec<String>,

    #[command(flatten)]
    pub ip_lists: IpListArgs,
}

impl PackArgs {
    /// Loads the detections, with every error in one message.
    pub fn load(&self) -> anyhow::Result<Vec<Rule>> {
        let rules = detect::load(&PackOptions {
            dirs: self.detections.clone(),
            no_builtin: self.no_builtin,
        })
        .map_err(|errors| anyhow::anyhow!(detect::describe_errors(&errors)))?;
        if rules.is_empty() {
            bail!("no detections to run: --no-builtin was given and --detections holds none");
        }
        for account in &self.trusted_accounts {
            let is_account = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
            let is_org = account.strip_prefix("o-").is_some_and(|id| {
                (10..=32).contains(&id.len())
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
            if !is_account && !is_org {
                bail!(
                    "--trusted-accounts: {account:?} is neither a 12-digit AWS account id nor an \
                     organisation id (o-...)"
                );
            }
        }
        for pattern in &self.pipelines {
            if !pattern.starts_with("arn:") || pattern.contains(":assumed-role/") {
                bail!(
                    "--pipeline: {pattern:?} is not a role or user ARN pattern \
                     (such as arn:aws:iam::*:role/deploy); name a role, not its sessions"
                );
            }
        }
        Ok(rules)
    }

    /// Loads and plans the detections on a runtime.
    pub fn engine(
        &self,
        runtime: &tokio::runtime::Runtime,
        threads: usize,
    ) -> anyhow::Result<Engine> {
        self.start_engine(runtime, threads)?.wait(runtime)
    }

    /// Loads the detections now (so a broken file is reported at once) and plans them in the
    /// background on `runtime`, while the caller gets on with reading logs.
    pub fn start_engine(
        &self,
        runtime: &tokio::runtime::Runtime,
        threads: usize,
    ) -> anyhow::Result<PendingEngine> {
        let rules = self.load()?;
        let (threats, trusted_networks) = self.ip_lists.load()?;
        let options = EngineOptions {
            threads,
            trusted_accounts: self.trusted_accounts.iter().cloned().collect(),
            pipelines: self.pipelines.clone(),
            threats,
            trusted_networks,
        };
        Ok(PendingEngine {
            rules: rules.clone(),
            task: runtime.spawn(Engine::new(rules, options)),
        })
    }
}

/// The user's own address lists, as GuardDuty takes them.
#[derive(Debug, Args, Clone, Default)]
pub struct IpListArgs {
    /// A threat list, as GuardDuty takes one: plain text with one IP address or CIDR network a
    /// line (`#` comments), or STIX 2.1 JSON (indicators whose patterns compare
    /// ipv4-addr:value or ipv6-addr:value, and ipv4-addr/ipv6-addr objects). Any API call
    /// from a listed address is a finding (threat-list-caller). Repeat for more lists.
    #[arg(
        long = "threat-list",
        value_name = "FILE",
        value_delimiter = ',',
        env = "TRAILHOUND_THREAT_LISTS"
    )]
    pub threat_lists: Vec<PathBuf>,

    /// Trusted IP ranges, in the same forms as --threat-list: the detections whose signal is
    /// where a call came from (new networks, instance credentials used elsewhere, the threat
    /// list itself) leave these addresses out; every other detection still sees them.
    #[arg(
        long = "trusted-ips",
        value_name = "FILE",
        value_delimiter = ',',
        env = "TRAILHOUND_TRUSTED_IPS"
    )]
    pub trusted_ips: Vec<PathBuf>,
}

impl IpListArgs {
    /// The threat list and the trusted ranges, each file's contents logged.
    pub fn load(&self) -> anyhow::Result<(detect::ip_list::IpList, detect::ip_list::IpList)> {
        Ok((
            load_ip_lists("--threat-list", &self.threat_lists)?,
            load_ip_lists("--trusted-ips", &self.trusted_ips)?,
        ))
    }

    /// A SQL session on which `threat_listed` and `trusted_ip` know the lists (for `hunt`).
    pub fn session(&self, threads: usize) -> anyhow::Result<datafusion::prelude::SessionContext> {
        let (threats, trusted_networks) = self.load()?;
        let trust = crate::sql::security::Trust {
            threats,
            trusted_networks,
            ..Default::default()
        };
        Ok(crate::sql::new_session_with(
            threads,
            &std::sync::Arc::new(trust),
        )?)
    }
}

/// The lists given to `option`, in one; what each held is logged.
fn load_ip_lists(option: &str, paths: &[PathBuf]) -> anyhow::Result<detect::ip_list::IpList> {
    let mut list = detect::ip_list::IpList::default();
    for path in paths {
        let loaded = list
            .load(path)
            .map_err(|e| anyhow::anyhow!("{option}: {e}"))?;
        tracing::info!(
            list = %path.display(),
            form = loaded.form,
            networks = loaded.networks,
            skipped_indicators = loaded.skipped,
            "{option} loaded"
        );
    }
    Ok(list)
}

/// Detections being planned in the background.
pub struct PendingEngine {
    /// The detections, in the order the engine will hold them.
    pub rules: Vec<Rule>,
    task: tokio::task::JoinHandle<Result<Engine, Vec<detect::RuleError>>>,
}

impl PendingEngine {
    /// Waits for the planning to finish; any errors come together in one message.
    pub fn wait(self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Engine> {
        runtime
            .block_on(self.task)
            .map_err(|e| anyhow::anyhow!("planning the detections failed: {e}"))?
            .map_err(|errors| anyhow::anyhow!(detect::describe_errors(&errors)))
    }
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the detections: id, severity, category, finding type and title.
    List(ListArgs),
    /// Check every detection (SQL, names, type, severity) and run the tests each carries.
    ///
    /// Exits 1 when any detection fails to load or any test fails.
    Test(TestArgs),
    /// Which ATT&CK techniques (the cloud matrix, AWS) and which attack-simulation
    /// techniques (Stratus Red Team's AWS catalogue) the detections find, and which they do
    /// not.
    ///
    /// A detection covers the techniques its `mitre` and `stratus` fields name; a technique
    /// counts as covered at Medium when one of its detections is Medium (4) or more.
    Coverage(CoverageArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CoverageFormat {
    /// Tactic by tactic, for reading.
    Text,
    /// Tables, as the README carries them.
    Markdown,
    /// One JSON document.
    Json,
}

#[derive(Debug, Args)]
pub struct CoverageArgs {
    #[command(flatten)]
    pub pack: PackArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = CoverageFormat::Text)]
    pub format: CoverageFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub pack: PackArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Test only these detections (by id) [default: all].
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,

    #[command(flatten)]
    pub pack: PackArgs,

    /// Print every test, not only the failures.
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

pub fn run(args: RulesArgs) -> anyhow::Result<i32> {
    match args.command {
        RulesCommand::List(a) => list(a),
        RulesCommand::Test(a) => test(a),
        RulesCommand::Coverage(a) => coverage(a),
    }
}

fn coverage(args: CoverageArgs) -> anyhow::Result<i32> {
    use crate::detect::coverage::{self, Row};
    let rules = args.pack.load()?;
    for (rule, id) in coverage::unknown_simulations(&rules) {
        eprintln!("trailhound: warning: {rule} names {id:?}, which the attack-simulation catalogue does not hold");
    }
    let attack = coverage::attack(&rules);
    let simulations = coverage::simulations(&rules);
    let names = |row: &Row, most: usize| -> String {
        let mut parts: Vec<String> = row
            .detections
            .iter()
            .take(most)
            .map(|r| format!("{} ({})", r.id, r.severity.label()))
            .collect();
        if row.detections.len() > most {
            parts.push(format!("+{} more", row.detections.len() - most));
        }
        if parts.is_empty() {
            "not covered".to_string()
        } else {
            parts.join(", ")
        }
    };
    // Techniques, once each (a technique of several tactics is one technique).
    let matrix: Vec<&Row> = {
        let mut seen = std::collections::BTreeSet::new();
        attack
            .iter()
            .filter(|r| r.group.is_some() && seen.insert(r.id.clone()))
            .collect()
    };
    let attack_summary = format!(
        "ATT&CK cloud matrix (AWS): {} of {} techniques covered, {} at Medium or more",
        matrix.iter().filter(|r| !r.detections.is_empty()).count(),
        matrix.len(),
        matrix.iter().filter(|r| r.covered_at_medium()).count()
    );
    let in_scope: Vec<&Row> = simulations.iter().filter(|r| r.group.is_some()).collect();
    let simulation_summary = format!(
        "Attack simulation (Stratus Red Team, AWS): {} of {} techniques in trailhound's families covered at Medium or more; {} of {} outside them covered",
        in_scope.iter().filter(|r| r.covered_at_medium()).count(),
        in_scope.len(),
        simulations
            .iter()
            .filter(|r| r.group.is_none() && !r.detections.is_empty())
            .count(),
        simulations.iter().filter(|r| r.group.is_none()).count()
    );
    match args.format {
        CoverageFormat::Json => {
            let row = |r: &Row| {
                serde_json::json!({
                    "id": r.id,
                    "name": r.name,
                    "group": r.group,
                    "coveredAtMedium": r.covered_at_medium(),
                    "detections": r.detections.iter().map(|d| serde_json::json!({"id": d.id, "severity": d.severity.0})).collect::<Vec<_>>(),
                })
            };
            let doc = serde_json::json!({
                "attack": attack.iter().map(row).collect::<Vec<_>>(),
                "simulations": simulations.iter().map(row).collect::<Vec<_>>(),
            });
            println!("{doc:#}");
        }
        CoverageFormat::Markdown => {
            println!("{attack_summary}.\n");
            println!("| tactic | technique | detections |\n|---|---|---|");
            for r in &attack {
                println!(
                    "| {} | {} {} | {} |",
                    r.group.unwrap_or("(other)"),
                    r.id,
                    r.name,
                    names(r, 6)
                );
            }
            println!("\n{simulation_summary}.\n");
            println!("| technique | family | detections |\n|---|---|---|");
            for r in &simulations {
                println!(
                    "| `{}` | {} | {} |",
                    r.id,
                    r.group.unwrap_or("(not claimed)"),
                    names(r, 6)
                );
            }
        }
        CoverageFormat::Text => {
            println!("{attack_summary}");
            let width = attack
                .iter()
                .map(|r| r.id.len() + r.name.len() + 1)
                .max()
                .unwrap_or(0);
            let mut tactic = None;
            for r in &attack {
                if r.group != tactic {
                    tactic = r.group;
                    println!(
                        "\n{}",
                        r.group.unwrap_or("Other techniques the detections name")
                    );
                }
                let label = format!("{} {}", r.id, r.name);
                println!("  {label:width$}  {}", names(r, 4));
            }
            println!("\n{simulation_summary}\n");
            let width = simulations.iter().map(|r| r.id.len()).max().unwrap_or(0);
            for r in &simulations {
                let mark = match (r.group, r.covered_at_medium()) {
                    (None, _) => " ",
                    (Some(_), true) => "+",
                    (Some(_), false) => "!",
                };
                println!("{mark} {:width$}  {}", r.id, names(r, 4));
            }
            println!("\n(+ covered at Medium or more; ! in a family trailhound claims and not covered at Medium)");
        }
    }
    Ok(0)
}

fn list(args: ListArgs) -> anyhow::Result<i32> {
    let rules = args.pack.load()?;
    match args.format {
        ListFormat::Json => {
            for r in &rules {
                let v = serde_json::json!({
                    "id": r.id,
                    "title": r.title,
                    "kind": r.stateful.as_ref().map_or("match", |s| s.kind()),
                    "type": r.finding_type,
                    "severity": r.severity.0,
                    "severityLabel": r.severity.label(),
                    "category": r.category,
                    "mitre": r.mitre,
                    "threshold": r.threshold.as_ref().map(|t| serde_json::json!({"count": t.count, "windowSeconds": t.window.as_secs(), "distinct": t.distinct})),
                    "groupBy": r.group_by,
                    "enabled": r.enabled,
                    "tests": r.tests.len(),
                    "path": r.origin.to_string(),
                    "builtin": r.origin.builtin,
                });
                println!("{v}");
            }
        }
        ListFormat::Table => {
            let id_w = rules.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
            let cat_w = rules
                .iter()
                .map(|r| r.category.len())
                .max()
                .unwrap_or(8)
                .max(8);
            println!(
                "{:<id_w$}  {:<12}  {:<cat_w$}  TITLE",
                "ID", "SEVERITY", "CATEGORY"
            );
            for r in &rules {
                let sev = format!("{} {}", r.severity.label(), r.severity.0);
                let mut title = r.title.clone();
                if !r.origin.builtin {
                    title.push_str(&format!("  [{}]", r.origin));
                }
                if !r.enabled {
                    title.push_str("  (disabled)");
                }
                println!(
                    "{:<id_w$}  {:<12}  {:<cat_w$}  {title}",
                    r.id, sev, r.category
                );
            }
            let mut by_cat = std::collections::BTreeMap::<&str, usize>::new();
            for r in &rules {
                *by_cat.entry(r.category.as_str()).or_default() += 1;
            }
            let parts: Vec<String> = by_cat.iter().map(|(c, n)| format!("{n} {c}")).collect();
            println!("{} detections: {}", rules.len(), parts.join(", "));
        }
    }
    Ok(0)
}

fn test(args: TestArgs) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The tests' own pipeline and address lists are declared, whatever the user's are.
    let pack = &args.pack;
    let engine = std::sync::Arc::new(
        runtime
            .block_on(Engine::new(
                pack.load()?,
                ruletest::engine_options(pack.trusted_accounts.iter().cloned().collect()),
            ))
            .map_err(|errors| anyhow::anyhow!(detect::describe_errors(&errors)))?,
    );
    for id in &args.ids {
        if !engine.rules().any(|r| &r.id == id) {
            bail!("no detection has the id {id:?} (see `trailhound rules list`)");
        }
    }
    let outcomes = runtime.block_on(ruletest::run(&engine, &args.ids));
    let mut failed = 0;
    for o in &outcomes {
        if let Some(why) = &o.failure {
            failed += 1;
            println!("FAIL {} / {} ({}): {why}", o.rule, o.test, o.location);
        } else if args.verbose {
            println!(
                "ok   {} / {} ({} finding{})",
                o.rule,
                o.test,
                o.expected,
                if o.expected == 1 { "" } else { "s" }
            );
        }
    }
    let rules = outcomes
        .iter()
        .map(|o| &o.rule)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    println!("{} tests of {} detections", outcomes.len(), rules);
    println!("{} passed, {} failed", outcomes.len() - failed, failed);
    Ok(if failed > 0 { 1 } else { 0 })
}
