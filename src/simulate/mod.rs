//! `trailhound simulate`: CloudTrail for a believable organisation, laid out exactly as S3
//! holds it, with labelled attacks on the last day.
//!
//! * Several accounts; people signing in with MFA and working weekdays; CI deploying with
//!   Terraform nightly and on weekday afternoons; Lambda functions and EC2 instances; AWS
//!   services; an application calling Bedrock models with a daily rhythm; data scientists
//!   using SageMaker; auditors sweeping every account on Monday mornings; a service calling
//!   Bedrock every night with an IAM user's long-term key; CI on hosted runners whose
//!   addresses come from a cloud provider's large ranges, a new one each run; engineers on call
//!   working from home at night; a new employee's first week (with nine days or more).
//! * The noise that fools naive detectors: auditors reading everything, occasional
//!   AccessDenied, Terraform re-applying the same key policy, a nightly long-term key.
//! * Files of about five minutes per account and region, gzip, records in no order, under
//!   `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<time>_<id>.json.gz`.
//! * `labels.json` names each attack and the eventIDs of its records.
//! * With nine days or more, attacks that only a learned baseline can tell from routine are
//!   added: a CI role's key used for LLMjacking, an instance's credentials used from outside,
//!   an application invoking a new model at fifty times its rate, a key from a new place
//!   granting itself more.
//!
//! Output depends only on the configuration: the same seed gives the same bytes.

pub mod activity;
pub mod attacks;
pub mod call;
pub mod identity;
pub mod score;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate};
use flate2::{write::GzEncoder, Compression};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use attacks::Label;
use call::Record;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Days of activity; attacks are on the last one.
    pub days: u32,
    pub accounts: u32,
    /// Volume multiplier: 1.0 is about 10–15k events per account per day.
    pub scale: f64,
    /// First simulated day.
    pub start: NaiveDate,
    /// Inject the attacks on the last day.
    pub attacks: bool,
    pub threads: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            days: 3,
            accounts: 3,
            scale: 1.0,
            start: NaiveDate::from_ymd_opt(2026, 10, 5).expect("valid date"),
            attacks: true,
            threads: crate::read::default_threads(),
        }
    }
}

/// What was written.
#[derive(Debug, Default)]
pub struct SimSummary {
    pub files: usize,
    pub records: usize,
    pub attack_records: usize,
    pub stored_bytes: u64,
    pub body_bytes: u64,
    pub labels: Vec<Label>,
}

/// Why a simulation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the simulated organisation's logs under `out`.
pub fn simulate(config: &SimConfig, out: &Path) -> Result<SimSummary, SimError> {
    if config.days == 0 || config.accounts == 0 || config.scale.is_nan() || config.scale <= 0.0 {
        return Err(SimError::Config(
            "--days, --accounts and --scale must be above zero".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut accounts: Vec<activity::Account> = (0..config.accounts as usize)
        .map(|i| activity::Account::new(&mut rng, i, config.scale))
        .collect();
    // With time to learn first, someone joins the first account halfway through.
    if config.days >= 9 {
        let day = config.start + Duration::days(i64::from(config.days / 2));
        let mut hire_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6869_7265);
        accounts[0].hire(&mut hire_rng, day);
    }
    let last_day = config.start + Duration::days(i64::from(config.days) - 1);
    let (attack_records, labels) = if config.attacks {
        attacks::attacks(&mut rng, &accounts, last_day, config.days, config.scale)
    } else {
        (Vec::new(), Vec::new())
    };
    std::fs::create_dir_all(out).map_err(io_err(out))?;

    // One unit of work per account-day, each with its own seeded generator, so output does
    // not depend on how many threads share the work.
    let units: Vec<(usize, u32)> = (0..accounts.len())
        .flat_map(|a| (0..config.days).map(move |d| (a, d)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    let attack_by_unit = std::sync::Mutex::new({
        let mut m: BTreeMap<(String, NaiveDate), Vec<Record>> = BTreeMap::new();
        for r in &attack_records {
            let day = DateTime::from_timestamp_micros(r.micros)
                .expect("time")
                .date_naive();
            m.entry((r.account.clone(), day))
                .or_default()
                .push(r.clone());
        }
        m
    });
    std::thread::scope(|scope| {
        for _ in 0..config.threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(a, d)) = units.get(i) else { break };
                let acct = &accounts[a];
                let day = config.start + Duration::days(i64::from(d));
                let mut rng = ChaCha8Rng::seed_from_u64(
                    config.seed
                        ^ (a as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        ^ (u64::from(d) + 1) << 32,
                );
                let mut records = activity::benign_day(&mut rng, acct, day, config.scale);
                // Now and then CloudTrail delivers an event twice.
                let dupes: Vec<Record> = records
                    .iter()
                    .filter(|_| rng.random_bool(0.0005))
                    .cloned()
                    .collect();
                records.extend(dupes);
                if let Some(extra) = attack_by_unit
                    .lock()
                    .expect("attack lock")
                    .remove(&(acct.id.clone(), day))
                {
                    records.extend(extra);
                }
                let written = write_files(&mut rng, out, acct, records);
                results.lock().expect("results lock").push(written);
            });
        }
    });
    let mut summary = SimSummary {
        attack_records: attack_records.len(),
        labels,
        ..Default::default()
    };
    for written in results.into_inner().expect("results lock") {
        let (files, records, stored, body) = written?;
        summary.files += files;
        summary.records += records;
        summary.stored_bytes += stored;
        summary.body_bytes += body;
    }
    let labels_path = out.join("labels.json");
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "seed": config.seed,
        "start": config.start.to_string(),
        "days": config.days,
        "accounts": accounts.iter().map(|a| serde_json::json!({"id": a.id, "name": a.name})).collect::<Vec<_>>(),
        "attacks": summary.labels,
    }))
    .expect("labels serialize");
    std::fs::write(&labels_path, text + "\n").map_err(io_err(&labels_path))?;
    Ok(summary)
}

/// Groups one account-day's records into five-minute files per region and writes them.
fn write_files(
    rng: &mut impl Rng,
    out: &Path,
    acct: &activity::Account,
    records: Vec<Record>,
) -> Result<(usize, usize, u64, u64), SimError> {
    const WINDOW: i64 = 5 * 60 * 1_000_000;
    let mut buckets: BTreeMap<(String, i64), Vec<Record>> = BTreeMap::new();
    for r in records {
        let window = r.micros - r.micros.rem_euclid(WINDOW);
        buckets
            .entry((r.region.clone(), window))
            .or_default()
            .push(r);
    }
    let (mut files, mut count, mut stored, mut body_total) = (0, 0, 0u64, 0u64);
    for ((region, window), mut records) in buckets {
        records.shuffle(rng);
        // Delivery comes a few minutes after the window closes; the key carries delivery time.
        let delivered =
            DateTime::from_timestamp_micros(window + WINDOW + rng.random_range(0..WINDOW))
                .expect("time");
        let suffix: String = (0..16)
            .map(|_| {
                const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
                A[rng.random_range(0..A.len())] as char
            })
            .collect();
        let dir = out.join(format!(
            "AWSLogs/{}/CloudTrail/{region}/{}",
            acct.id,
            delivered.format("%Y/%m/%d")
        ));
        let name = format!(
            "{}_CloudTrail_{region}_{}_{suffix}.json.gz",
            acct.id,
            delivered.format("%Y%m%dT%H%MZ")
        );
        let mut body = Vec::with_capacity(records.len() * 1200);
        body.extend_from_slice(b"{\"Records\":[");
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &r.json).expect("record serializes");
        }
        body.extend_from_slice(b"]}");
        let mut gz = GzEncoder::new(Vec::with_capacity(body.len() / 8), Compression::default());
        gz.write_all(&body).expect("in-memory write");
        let gz = gz.finish().expect("in-memory write");
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(name);
        std::fs::write(&path, &gz).map_err(io_err(&path))?;
        files += 1;
        count += records.len();
        stored += gz.len() as u64;
        body_total += body.len() as u64;
    }
    Ok((files, count, stored, body_total))
}
