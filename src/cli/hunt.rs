//! `trailhound hunt [SQL] SOURCE...`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use super::output::{write_results, OutputFormat};
use super::ReadArgs;
use crate::read::ReadReport;
use crate::source::{self, Listing};
use crate::sql::{self, CloudTrailTable};

#[derive(Debug, Args)]
pub struct HuntArgs {
    /// The SQL to run, then one or more sources: files, directories (walked; digest, insight
    /// and other non-log keys are skipped and counted) or glob patterns. Without SQL, an
    /// interactive prompt opens.
    #[arg(value_name = "SQL | SOURCE", required = true)]
    pub args: Vec<String>,

    /// Read the SQL from this file instead (then every argument is a source).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Output format [default: table on a terminal, csv otherwise].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,

    /// Rows shown by the table format.
    #[arg(long, default_value_t = 200)]
    pub max_rows: usize,

    /// Exit with status 3 when any object or record could not be read (it is always reported).
    #[arg(long)]
    pub strict: bool,

    /// Print read statistics (records/s, MB/s) to stderr when done.
    #[arg(long)]
    pub stats: bool,

    /// Query a Parquet lake written by `replay --lake` instead of log files: `cloudtrail`,
    /// `bedrock_invocations` and `findings`, each with `date`, `account` and `region`
    /// partition columns. Conditions on them (and on `eventtime`) choose which partitions are
    /// read. Every argument is then SQL. DIR may be s3://BUCKET/PREFIX (credentials, region
    /// and endpoint from the environment, as for the AWS CLI).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub lake: Option<crate::lake::Location>,

    #[command(flatten)]
    pub read: ReadArgs,

    /// Address lists for `threat_listed(sourceipaddress)` and `trusted_ip(sourceipaddress)`.
    #[command(flatten)]
    pub ip_lists: crate::cli::rules::IpListArgs,
}

/// Splits the positional arguments into SQL (if any) and sources. The first argument is SQL
/// unless it names an existing path or looks like a path pattern rather than a statement.
fn split_args(args: &[String]) -> (Option<String>, Vec<String>) {
    let first = &args[0];
    let looks_like_sql = {
        let lower = first.trim_start().to_ascii_lowercase();
        let keyword = [
            "select", "with", "explain", "show", "describe", "values", "(", "--",
        ]
        .iter()
        .any(|k| lower.starts_with(k));
        keyword || first.trim().contains(char::is_whitespace)
    };
    if looks_like_sql && !Path::new(first).exists() {
        (Some(first.clone()), args[1..].to_vec())
    } else {
        (None, args.to_vec())
    }
}

pub fn run(args: HuntArgs) -> anyhow::Result<i32> {
    if let Some(lake) = &args.lake {
        return hunt_lake(&args, lake);
    }
    let (mut sql, sources) = if args.file.is_some() {
        (None, args.args.clone())
    } else {
        split_args(&args.args)
    };
    if let Some(file) = &args.file {
        sql = Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("reading SQL from {}", file.display()))?,
        );
    }
    if sources.is_empty() {
        bail!("no source given: name files, directories or glob patterns of CloudTrail logs after the SQL");
    }
    let listing = source::list(&sources)?;
    if listing.objects.is_empty() && listing.invocations.is_empty() {
        bail!(
            "no CloudTrail logs found in {} ({listing})",
            sources.join(" ")
        );
    }
    tracing::info!("listed {listing}");
    let threads = args.read.threads();
    let runtime = runtime(threads)?;
    let format = args.format.unwrap_or_else(OutputFormat::default_for_stdout);
    match sql {
        Some(sql) => runtime.block_on(one_shot(&args, &sql, listing, threads, format)),
        None => super::repl::run(
            &runtime,
            &args,
            listing,
            threads,
            args.format.unwrap_or(OutputFormat::Table),
        ),
    }
}

async fn one_shot(
    args: &HuntArgs,
    sql: &str,
    listing: Listing,
    threads: usize,
    format: OutputFormat,
) -> anyhow::Result<i32> {
    let ctx = args.ip_lists.session(threads)?;
    let mut report = ReadReport::for_listing(&listing);
    let invocations = crate::read::read_invocations(
        &listing.invocations,
        args.read.max_object_size,
        threads,
        &mut report,
    );
    sql::register_invocations(&ctx, invocations)?;
    let table = Arc::new(CloudTrailTable::new(
        listing.objects,
        args.read.decode_options(),
        threads,
    ));
    sql::register_objects(&ctx, table.clone())?;
    let (schema, batches) = run_statements(&ctx, sql).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write_results(&mut out, &schema, &batches, format, args.max_rows)?;
    out.flush()?;
    report.merge(&table.report());
    Ok(finish(&report, args.stats, args.strict))
}

/// The runtime a hunt's reading and SQL run on.
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
}

/// `hunt --lake DIR SQL`.
fn hunt_lake(args: &HuntArgs, lake: &crate::lake::Location) -> anyhow::Result<i32> {
    let sql = match &args.file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("reading SQL from {}", file.display()))?,
        None => args.args.join(" "),
    };
    let threads = args.read.threads();
    let runtime = runtime(threads)?;
    let format = args.format.unwrap_or_else(OutputFormat::default_for_stdout);
    runtime.block_on(async {
        let ctx = args.ip_lists.session(threads)?;
        let skipped = crate::lake::read::Skipped::default();
        let ctx = crate::lake::read::register(ctx, lake, skipped.clone())
            .await
            .with_context(|| format!("--lake {lake}"))?;
        let (schema, batches) = run_statements(&ctx, &sql).await?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        write_results(&mut out, &schema, &batches, format, args.max_rows)?;
        out.flush()?;
        let skipped = crate::sync::lock(&skipped).clone();
        for (file, why) in &skipped {
            eprintln!("trailhound: skipped {file}: {why}");
        }
        if !skipped.is_empty() {
            eprintln!("trailhound: {} file(s) of the lake skipped", skipped.len());
            if args.strict {
                return Ok(3);
            }
        }
        Ok(0)
    })
}

/// Runs each statement of `sql`; the last one's result.
async fn run_statements(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> anyhow::Result<(
    datafusion::arrow::datatypes::SchemaRef,
    Vec<datafusion::arrow::record_batch::RecordBatch>,
)> {
    let mut last = None;
    for statement in split_statements(sql) {
        let df = ctx
            .sql(&statement)
            .await
            .map_err(|e| anyhow::anyhow!("SQL: {e}"))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("SQL: {e}"))?;
        last = Some((schema, batches));
    }
    last.ok_or_else(|| anyhow::anyhow!("the SQL holds no statement"))
}

/// Prints the end-of-run summary when there is something to say, and picks the exit code.
pub(super) fn finish(report: &ReadReport, stats: bool, strict: bool) -> i32 {
    let skipped_any = report.has_problems() || !report.skipped_keys.is_empty();
    if stats || skipped_any {
        eprintln!("{report}");
    }
    finish_code(report, strict)
}

/// The exit code after a read: 3 with `--strict` when anything could not be read, else 0.
pub(super) fn finish_code(report: &ReadReport, strict: bool) -> i32 {
    if strict && report.has_problems() {
        eprintln!("trailhound: --strict: some input could not be read (see above)");
        3
    } else {
        0
    }
}

/// Splits a script into statements at semicolons outside quotes and comments.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            current.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    if !current.trim().is_empty() {
                        out.push(current.trim().to_string());
                    }
                    current.clear();
                }
                _ => current.push(c),
            },
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_and_sources_are_told_apart() {
        let args: Vec<String> = vec!["SELECT 1".into(), "logs/".into()];
        assert_eq!(
            split_args(&args),
            (Some("SELECT 1".into()), vec!["logs/".into()])
        );
        let args: Vec<String> = vec!["logs/".into(), "more/".into()];
        assert_eq!(split_args(&args), (None, args.clone()));
        let args: Vec<String> = vec!["select*from cloudtrail".into(), "x".into()];
        assert_eq!(
            split_args(&args).0.as_deref(),
            Some("select*from cloudtrail")
        );
    }

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        assert_eq!(
            split_statements("select ';' as a; -- c;\nselect 2;;"),
            vec!["select ';' as a", "select 2"]
        );
    }
}
