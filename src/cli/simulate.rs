//! `trailhound simulate --out DIR`

use std::path::PathBuf;
use std::time::Instant;

use chrono::NaiveDate;
use clap::Args;

use crate::simulate::{simulate, SimConfig};

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Directory to write into (created if missing).
    #[arg(long, short = 'o')]
    pub out: PathBuf,

    /// Seed: the same seed and options give the same files.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Days of activity; the attacks are on the last day.
    #[arg(long, default_value_t = 3)]
    pub days: u32,

    /// Number of AWS accounts in the organisation.
    #[arg(long, default_value_t = 3)]
    pub accounts: u32,

    /// Volume: 1.0 is about 10-15k events per account per day (roughly 1 MB of gzip);
    /// 0.1 makes a small sample, 50 makes gigabytes for benchmarks.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,

    /// First simulated day (UTC), as YYYY-MM-DD.
    #[arg(long, default_value = "2026-10-05")]
    pub start: NaiveDate,

    /// Leave the attacks out (benign traffic only).
    #[arg(long)]
    pub no_attacks: bool,

    /// Worker threads [default: every core].
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<i32> {
    let config = SimConfig {
        seed: args.seed,
        days: args.days,
        accounts: args.accounts,
        scale: args.scale,
        start: args.start,
        attacks: !args.no_attacks,
        threads: args.threads.unwrap_or_else(crate::read::default_threads),
    };
    let started = Instant::now();
    let summary = simulate(&config, &args.out)?;
    eprintln!(
        "wrote {} records ({} in {} attacks) in {} files to {} ({:.1} MB gzip, {:.1} MB JSON) in {:.1}s",
        summary.records,
        summary.attack_records,
        summary.labels.len(),
        summary.files,
        args.out.display(),
        summary.stored_bytes as f64 / 1e6,
        summary.body_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    eprintln!("labels: {}", args.out.join("labels.json").display());
    Ok(0)
}
