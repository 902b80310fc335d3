//! The `trailhound` command line.

mod bench;
mod hunt;
mod lake;
mod output;
mod repl;
mod replay;
mod rules;
mod run;
mod simulate;
mod state;

use std::io::IsTerminal;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use output::OutputFormat;

/// Finds attacks on AI workloads in AWS CloudTrail.
///
/// trailhound reads CloudTrail log files (gzip or plain; `{"Records":[...]}`, JSON arrays or
/// JSON Lines exports) into Apache Arrow at high speed and lets you hunt through them with SQL.
#[derive(Debug, Parser)]
#[command(
    name = "trailhound",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "TRAILHOUND_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log level filter, in tracing's syntax (for example `debug` or `trailhound=trace`).
    #[arg(long, default_value = "warn", global = true, env = "TRAILHOUND_LOG")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// True for `trailhound run`, the long-lived daemon.
    pub fn is_daemon(&self) -> bool {
        matches!(self.command, Command::Run(_))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Query CloudTrail with SQL, as the table `cloudtrail`.
    ///
    /// With SQL, runs it and prints the result; without, opens an interactive prompt.
    /// Column names are Athena's CloudTrail names in lower case (`eventname`, `useridentity`,
    /// `requestparameters`, …). Free-form fields are JSON text: query them with
    /// `requestparameters->>'keyId'`, `json_get_str(...)`, or Athena's
    /// `json_extract_scalar(requestparameters, '$.keyId')`.
    ///
    /// Examples:
    ///
    ///   trailhound hunt "SELECT eventname, count(*) AS n FROM cloudtrail GROUP BY 1 ORDER BY n DESC" sample/
    ///
    ///   trailhound hunt --format json "SELECT eventtime, useridentity.arn, requestparameters->>'keyId' AS key FROM cloudtrail WHERE eventname = 'PutKeyPolicy'" logs/
    ///
    ///   trailhound hunt logs/    (interactive; `\d` shows the table)
    #[command(verbatim_doc_comment)]
    Hunt(hunt::HuntArgs),

    /// Run every detection over historical logs and write the findings.
    ///
    /// Findings go to stdout as JSON Lines (GuardDuty's finding format unless --format says
    /// otherwise), or to --output; a summary (counts by severity and type, and a table of the
    /// findings when a person is watching) goes to stderr.
    ///
    /// Examples:
    ///
    ///   trailhound replay sample/
    ///
    ///   trailhound replay --since 2026-10-01 --until 2026-11-01 -o findings.jsonl logs/
    ///
    ///   trailhound replay --format asff --min-severity medium --detections my-rules/ logs/
    #[command(verbatim_doc_comment)]
    Replay(replay::ReplayArgs),

    /// Detections as code: list them, or run the tests each one carries.
    Rules(rules::RulesArgs),

    /// Run as a service: read S3 notifications from SQS, examine each new log, send findings.
    ///
    /// Long-polls the queue; accepts S3 notifications sent directly, through SNS or through
    /// EventBridge, and CloudTrail's own SNS notices. Each message is deleted only after the
    /// findings of its objects reached every sink. AWS credentials come from the standard
    /// chain; AWS_ENDPOINT_URL points at another endpoint, as with the AWS CLI.
    ///
    /// Examples:
    ///
    ///   trailhound run --queue-url https://sqs.eu-west-1.amazonaws.com/111122223333/trail-notices
    ///
    ///   trailhound run --queue-url $QUEUE --sink file:/var/log/findings.jsonl --sink s3://findings/trailhound --listen 0.0.0.0:9464
    #[command(verbatim_doc_comment)]
    Run(run::RunArgs),

    /// Ask a running `trailhound run` whether it is healthy (its /healthz): exit 0 or 1.
    ///
    /// For container health checks, where the image has no HTTP client.
    Healthcheck(run::HealthcheckArgs),

    /// Write realistic synthetic CloudTrail, with labelled attacks on the last day.
    ///
    /// Files are laid out as CloudTrail writes them to S3. The same seed gives the same files.
    /// `labels.json` in the output directory names each attack and the eventIDs of its records.
    Simulate(simulate::SimulateArgs),

    /// What statistical detections have learned: show it, export it, or forget it.
    ///
    /// Statistical detections (first-seen, rates, sequences) keep their memory in a state file
    /// (replay --state). `state show PRINCIPAL` tells why something was new or too much.
    State(state::StateArgs),

    /// Measure read speed on your own logs: decompression, decoding to Arrow, and a query.
    ///
    /// Reads the objects into memory first, so disk speed is left out, then reports records/s
    /// and decompressed MB/s for each stage.
    Bench(bench::BenchArgs),

    /// The Parquet lake `replay --lake` writes: Athena DDL for it, and what it holds.
    ///
    /// Query a lake with `trailhound hunt --lake DIR "SQL"`, or with DuckDB, Athena, Trino or
    /// Spark (see the README).
    Lake(lake::LakeArgs),
}

/// Options shared by the commands that read logs.
#[derive(Debug, Args, Clone)]
pub struct ReadArgs {
    /// Worker threads for decoding and queries [default: every core].
    #[arg(long, short = 't', env = "TRAILHOUND_THREADS")]
    pub threads: Option<usize>,

    /// Largest object accepted, decompressed, as bytes or with a unit (`512MiB`, `2GB`).
    #[arg(long, default_value = "1GiB", value_parser = parse_size, env = "TRAILHOUND_MAX_OBJECT_SIZE")]
    pub max_object_size: usize,

    /// Memory for reading, shared by every reader: stored objects, their decompressed bodies
    /// and the parse of those bodies. An object waits until its share is free; one that needs
    /// more than the whole budget is read a record at a time. The detections' own work comes
    /// on top (the default leaves room for it in 4 GB).
    #[arg(long, default_value = crate::memory::DEFAULT_BUDGET_TEXT, value_parser = parse_size, env = "TRAILHOUND_MEMORY_BUDGET")]
    pub memory_budget: usize,
}

impl ReadArgs {
    /// Decoding options for every column, with these limits and one shared budget.
    pub fn decode_options(&self) -> crate::decode::DecodeOptions {
        crate::decode::DecodeOptions {
            max_object_bytes: self.max_object_size,
            budget: crate::memory::Budget::new(self.memory_budget),
            ..Default::default()
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
            .unwrap_or_else(crate::read::default_threads)
            .max(1)
    }
}

/// A learning period: a duration, or 0.
pub fn parse_learning(text: &str) -> Result<std::time::Duration, String> {
    if text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        == "0"
    {
        return Ok(std::time::Duration::ZERO);
    }
    crate::detect::rule::parse_duration(text)
}

/// Parses `1024`, `64KiB`, `512MiB`, `1GiB`, `2GB`, `10MB` into bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (try 512MiB or 2GB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KB, KiB, MB, MiB, GB or GiB)"
            ))
        }
    };
    Ok((num * mult) as usize)
}

/// True when stdout is a terminal (a person is reading).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// True when stderr is a terminal (progress bars make sense).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A progress bar of `len` steps drawn with `template` on stderr, when stderr is a terminal.
pub fn progress_bar(len: u64, template: &str) -> Option<indicatif::ProgressBar> {
    stderr_is_terminal().then(|| {
        indicatif::ProgressBar::new(len).with_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    })
}

/// Runs the parsed command; the exit code is returned.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Hunt(args) => hunt::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Rules(args) => rules::run(args),
        Command::Run(args) => run::run(args),
        Command::Healthcheck(args) => run::healthcheck(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::State(args) => state::run(args),
        Command::Lake(args) => lake::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
