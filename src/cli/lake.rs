//! `trailhound lake ...`: what a Parquet lake written by `replay --lake` holds, and the DDL
//! that lets Athena read it.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::lake::{self, ddl};

#[derive(Debug, Args)]
pub struct LakeArgs {
    #[command(subcommand)]
    pub command: LakeCommand,
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Print Athena (Glue) DDL for the lake's three tables, with partition projection.
    ///
    /// The accounts of the `account` projection are those the lake's partitions name (run it
    /// again when accounts are added, or give --accounts); regions default to every
    /// commercial region.
    ///
    /// Example:
    ///
    ///   trailhound lake ddl ./lake --location s3://my-lake/trailhound > lake.sql
    #[command(verbatim_doc_comment)]
    Ddl(DdlArgs),

    /// Count the lake's files, rows and bytes, table by table (rows from the files' footers:
    /// in S3, one ranged GET per file).
    Stats(StatsArgs),

    /// Merge each partition's small files into files of a target size, dropping duplicate
    /// records (by eventid; requestid for Bedrock).
    ///
    /// A local partition is swapped whole: a query sees its files before or after the merge,
    /// never both. In S3 (no rename) the merged files are put first and the small files then
    /// deleted: for that moment a query may count a record twice. Safe while `replay --lake`
    /// or `run --lake` writes: files written during the merge are kept.
    ///
    /// Examples:
    ///
    ///   trailhound lake compact ./lake --since 2026-10-01 --until 2026-10-31
    ///   trailhound lake compact s3://my-lake/trailhound --since 2026-10-01
    #[command(verbatim_doc_comment)]
    Compact(CompactArgs),
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The lake: a directory or s3://BUCKET/PREFIX.
    #[arg(value_name = "LAKE")]
    pub lake: lake::Location,

    /// Only partitions of this date or later (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<String>,

    /// Only partitions of this date or earlier (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<String>,

    /// Size at which a merged file is closed; files of half this size or more are left as
    /// they are.
    #[arg(long, default_value = "128MiB", value_parser = super::parse_size, value_name = "SIZE")]
    pub target_size: usize,
}

fn parse_date(text: &str) -> Result<String, String> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"))
}

#[derive(Debug, Args)]
pub struct DdlArgs {
    /// The lake: a directory written by `replay --lake` (read for its accounts), or the
    /// s3://BUCKET/PREFIX it was written to.
    #[arg(value_name = "LAKE")]
    pub lake: lake::Location,

    /// Where the lake is in S3, as Athena will read it: s3://BUCKET/PREFIX [default: LAKE,
    /// when that is in S3].
    #[arg(long, value_name = "S3_URI")]
    pub location: Option<String>,

    /// The Athena database (created if needed).
    #[arg(long, default_value = "trailhound")]
    pub database: String,

    /// Accounts of the `account` projection [default: those in the lake].
    #[arg(long, value_delimiter = ',', value_name = "ACCOUNT,...")]
    pub accounts: Vec<String>,

    /// Regions of the `region` projection [default: every commercial region].
    #[arg(long, value_delimiter = ',', value_name = "REGION,...")]
    pub regions: Vec<String>,

    /// First date of the `date` projection (YYYY-MM-DD).
    #[arg(long, default_value = "2020-01-01", value_name = "DATE")]
    pub since: String,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The lake: a directory or s3://BUCKET/PREFIX.
    #[arg(value_name = "LAKE")]
    pub lake: lake::Location,
}

pub fn run(args: LakeArgs) -> anyhow::Result<i32> {
    match args.command {
        LakeCommand::Ddl(args) => ddl_command(args),
        LakeCommand::Stats(args) => stats(args),
        LakeCommand::Compact(args) => compact(args),
    }
}

fn compact(args: CompactArgs) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    let options = lake::compact::CompactOptions {
        target_bytes: args.target_size.max(1 << 20) as u64,
        since: args.since,
        until: args.until,
        progress: super::progress_bar(
            0,
            "merging {pos}/{len} partitions {wide_bar} {elapsed_precise} (eta {eta})",
        ),
    };
    let done = match &args.lake {
        lake::Location::Local(dir) => lake::compact::compact(dir, &options),
        lake::Location::S3(url) => {
            lake::s3::S3Lake::connect(url).and_then(|s3| lake::compact::compact_s3(&s3, &options))
        }
    }
    .with_context(|| format!("lake compact {}", args.lake))?;
    if let Some(bar) = &options.progress {
        bar.finish_and_clear();
    }
    eprintln!(
        "merged {} files into {} in {} partitions: {} records, {} duplicates dropped, {:.1} s",
        done.files_in,
        done.files_out,
        done.partitions,
        done.rows_out,
        done.duplicates,
        started.elapsed().as_secs_f64()
    );
    if done.unreadable > 0 {
        eprintln!(
            "trailhound: {} partition(s) left as they were (see the warnings above)",
            done.unreadable
        );
        return Ok(3);
    }
    Ok(0)
}

fn ddl_command(args: DdlArgs) -> anyhow::Result<i32> {
    let location = match (&args.location, &args.lake) {
        (Some(location), _) => location.trim_end_matches('/').to_string(),
        (None, lake::Location::S3(url)) => url.clone(),
        (None, lake::Location::Local(_)) => {
            bail!("--location is needed: the s3://BUCKET/PREFIX Athena will read the lake from")
        }
    };
    if !location.starts_with("s3://") {
        bail!("--location {location:?}: Athena reads from S3; give s3://BUCKET/PREFIX");
    }
    if chrono::NaiveDate::parse_from_str(&args.since, "%Y-%m-%d").is_err() {
        bail!("--since {:?} is not a date (YYYY-MM-DD)", args.since);
    }
    let database_ok = !args.database.is_empty()
        && args
            .database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !database_ok {
        bail!(
            "--database {:?}: use lower-case letters, digits and _",
            args.database
        );
    }
    let (found_accounts, found_regions) = match &args.lake {
        lake::Location::Local(dir) => ddl::partition_values(dir),
        lake::Location::S3(_) => (Vec::new(), Vec::new()),
    };
    let accounts = if args.accounts.is_empty() {
        found_accounts
    } else {
        args.accounts.clone()
    };
    for a in &accounts {
        if lake::account_value(Some(a)) != a {
            bail!("{a:?} is not an account id (twelve digits)");
        }
    }
    for r in &args.regions {
        if lake::region_value(Some(r)) != r {
            bail!("{r:?} is not a region name");
        }
    }
    if accounts.is_empty() {
        eprintln!(
            "trailhound: {} names no account: the `account` projection holds only `unknown` (give --accounts)",
            args.lake
        );
    }
    let _ = found_regions;
    print!(
        "{}",
        ddl::athena_ddl(&ddl::DdlOptions {
            location,
            database: args.database,
            accounts,
            regions: args.regions,
            since: args.since,
        })
    );
    println!();
    Ok(0)
}

fn stats(args: StatsArgs) -> anyhow::Result<i32> {
    let s3 = match &args.lake {
        lake::Location::Local(root) => {
            if !root.is_dir() {
                bail!("{}: no such directory", root.display());
            }
            None
        }
        lake::Location::S3(url) => Some(lake::s3::S3Lake::connect(url)?),
    };
    println!(
        "{:<20} {:>10} {:>8} {:>14} {:>14}",
        "table", "partitions", "files", "rows", "bytes"
    );
    for table in [
        lake::CLOUDTRAIL_DIR,
        lake::INVOCATIONS_DIR,
        lake::FINDINGS_DIR,
    ] {
        let mut partitions = std::collections::BTreeSet::new();
        let (mut files, mut rows, mut bytes) = (0usize, 0i64, 0u64);
        match (&s3, &args.lake) {
            (Some(s3), _) => {
                for object in s3.list(table)? {
                    let path = std::path::Path::new(&object.relative);
                    if !lake::group::is_data_file(path) {
                        continue;
                    }
                    let footer = s3.footer(&object).context("not a readable Parquet file")?;
                    rows += footer.file_metadata().num_rows();
                    bytes += object.size;
                    files += 1;
                    if let Some(parent) = path.parent() {
                        partitions.insert(parent.to_path_buf());
                    }
                }
            }
            (None, lake::Location::Local(root)) => {
                let dir = root.join(table);
                for entry in walkdir::WalkDir::new(&dir).into_iter().flatten() {
                    let path = entry.path();
                    if !entry.file_type().is_file() || !lake::group::is_data_file(path) {
                        continue;
                    }
                    let file = std::fs::File::open(path)
                        .with_context(|| format!("opening {}", path.display()))?;
                    bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
                    let reader = datafusion::parquet::file::reader::SerializedFileReader::new(file)
                        .with_context(|| {
                            format!("{}: not a readable Parquet file", path.display())
                        })?;
                    use datafusion::parquet::file::reader::FileReader;
                    rows += reader.metadata().file_metadata().num_rows();
                    files += 1;
                    if let Some(parent) = path.parent() {
                        partitions.insert(parent.to_path_buf());
                    }
                }
            }
            // An S3 lake was connected above.
            (None, lake::Location::S3(_)) => {}
        }
        println!(
            "{:<20} {:>10} {:>8} {:>14} {:>14}",
            table,
            partitions.len(),
            files,
            rows,
            bytes
        );
    }
    Ok(0)
}
