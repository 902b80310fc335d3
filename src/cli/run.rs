//! `trailhound run --queue-url URL`: the daemon (see [`crate::daemon`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::rules::PackArgs;
use super::ReadArgs;
use crate::daemon::{AllowedPlace, Daemon, Metrics, Options};
use crate::detect::state::{self, Store};
use crate::detect::stats::StatsOptions;
use crate::detect::{Delivery, ExamineOptions, Examiner, Severity};
use crate::finding::sink::{Sink, SinkSpec};
use crate::finding::FindingFormat;
use crate::source::sqs::Queue;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The SQS queue S3 (directly, through SNS or EventBridge) or CloudTrail notifies of new
    /// log objects.
    #[arg(long, env = "TRAILHOUND_QUEUE_URL", value_name = "URL")]
    pub queue_url: String,

    /// Where findings go; repeat for several (each batch must reach all of them before its
    /// messages are deleted): stdout, file:PATH, s3://BUCKET/PREFIX, sqs:QUEUE_URL,
    /// sns:TOPIC_ARN, eventbridge:BUS (name or ARN) or securityhub (ASFF, whatever --format).
    #[arg(
        long = "sink",
        env = "TRAILHOUND_SINKS",
        value_delimiter = ',',
        default_value = "stdout",
        value_parser = SinkSpec::parse,
        value_name = "SINK"
    )]
    pub sinks: Vec<SinkSpec>,

    /// Finding format: GuardDuty JSON, Security Hub ASFF or OCSF Detection Finding.
    #[arg(long, value_enum, default_value_t = FindingFormat::Guardduty, env = "TRAILHOUND_FORMAT")]
    pub format: FindingFormat,

    /// Leave out findings below this severity: a number 1-10, or low, medium, high, critical.
    #[arg(long, value_parser = Severity::parse, default_value = "low", env = "TRAILHOUND_MIN_SEVERITY", value_name = "SEVERITY")]
    pub min_severity: Severity,

    /// Where statistical detections keep what they learn: a file, dynamodb://TABLE for a
    /// fleet, or :memory: [default: state.redb in trailhound's data directory].
    #[arg(long, value_name = "PATH", env = "TRAILHOUND_STATE")]
    pub state: Option<PathBuf>,

    /// History an account needs before statistical detections report on it (until then they
    /// only learn), such as 7d, or 0s to report from the first record.
    #[arg(long, default_value = "7d", value_parser = super::parse_learning, env = "TRAILHOUND_LEARNING", value_name = "DURATION")]
    pub learning: Duration,

    /// Concurrent long polls of the queue.
    #[arg(long, default_value_t = 2, env = "TRAILHOUND_POLLERS")]
    pub pollers: usize,

    /// How long a received message stays hidden from other readers; renewed every third of
    /// it while the message is in work (at least 1s).
    #[arg(long, default_value = "2m", value_parser = crate::detect::rule::parse_duration, env = "TRAILHOUND_VISIBILITY", value_name = "DURATION")]
    pub visibility: Duration,

    /// How long a message waits before it is handed back when its object could not be read
    /// (S3 errors, access denied, an archived object) or a sink failed. Each hand-back counts
    /// toward the queue's maxReceiveCount, after which SQS moves the message to the
    /// dead-letter queue.
    #[arg(long, default_value = "10s", value_parser = crate::detect::rule::parse_duration, env = "TRAILHOUND_RETRY_AFTER", value_name = "DURATION")]
    pub retry_after: Duration,

    /// Most messages examined together.
    #[arg(long, default_value_t = 100, env = "TRAILHOUND_BATCH_MESSAGES")]
    pub batch_messages: usize,

    /// After SIGTERM, time allowed to finish the batch in work before its messages are
    /// handed back (keep it under ECS's stopTimeout, 30 s by default).
    #[arg(long, default_value = "25s", value_parser = crate::detect::rule::parse_duration, env = "TRAILHOUND_DRAIN", value_name = "DURATION")]
    pub drain: Duration,

    /// Buckets the daemon may read, each as BUCKET or BUCKET/PREFIX (comma-separated or
    /// repeated). A notification naming an object anywhere else is refused, counted
    /// (trailhound_errors_total{kind="bucket-not-allowed"}) and deleted, so that whoever can
    /// write to the queue cannot make the daemon read, or learn from, a bucket of their own.
    /// Without it every bucket is read (and a warning says so).
    #[arg(long, env = "TRAILHOUND_ALLOWED_BUCKETS", value_delimiter = ',', value_parser = AllowedPlace::parse, value_name = "BUCKET[/PREFIX]")]
    pub allowed_buckets: Vec<AllowedPlace>,

    /// The account that must own every bucket read: sent as ExpectedBucketOwner with each
    /// GetObject, so S3 refuses objects in anyone else's bucket.
    #[arg(
        long,
        env = "TRAILHOUND_EXPECTED_BUCKET_OWNER",
        value_name = "ACCOUNT_ID"
    )]
    pub expected_bucket_owner: Option<String>,

    /// The role cannot list the trail bucket (no s3:ListBucket): S3 then answers 403 rather
    /// than 404 for an object that no longer exists, so a 403 is taken to mean "gone" (the
    /// message is deleted, counted as outcome="access-denied") instead of being retried until
    /// the dead-letter queue. The shipped policy grants ListBucket, which keeps a real denial
    /// (a broken policy) apart from a missing key; leave this off with it.
    #[arg(long, env = "TRAILHOUND_CANNOT_LIST")]
    pub cannot_list: bool,

    /// Also keep every record read, and every finding, in a Parquet lake in this directory or
    /// S3 prefix (s3://BUCKET/PREFIX), as `replay --lake` does: a file per object (merge a
    /// local lake's with `trailhound lake compact`) and one per finding. A message is deleted
    /// only once its records are on disk, or in S3, there.
    #[arg(long, env = "TRAILHOUND_LAKE", value_name = "DIR|s3://BUCKET/PREFIX")]
    pub lake: Option<crate::lake::Location>,

    /// Objects fetched and decoded at once (all of them within --memory-budget).
    #[arg(long, default_value_t = 16, env = "TRAILHOUND_FETCH_CONCURRENCY")]
    pub fetch_concurrency: usize,

    /// Serve /healthz and /metrics (Prometheus) on this address.
    #[arg(long, env = "TRAILHOUND_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    #[command(flatten)]
    pub pack: PackArgs,

    #[command(flatten)]
    pub read: ReadArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let threads = args.read.threads();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(2))
        .enable_all()
        .build()?;
    let engine = args.pack.engine(&runtime, threads)?;
    let path = args.state.clone().unwrap_or_else(state::default_path);
    let store = Store::open(&path)?;
    tracing::info!("state in {}", store.describe());
    let examiner = Examiner::new(
        std::sync::Arc::new(engine),
        store,
        ExamineOptions {
            delivery: Delivery::EachChunk,
            min_severity: args.min_severity.0,
            stats: StatsOptions {
                learning: args.learning,
            },
            only: None,
        },
    )?;
    if args.allowed_buckets.is_empty() {
        tracing::warn!(
            "no --allowed-buckets: any bucket a notification names will be read; whoever can \
             send to the queue can make trailhound read their own objects"
        );
    }
    let config = runtime.block_on(crate::aws::config());
    let sinks = args
        .sinks
        .iter()
        .map(|s| Sink::new(s.clone(), args.format, &config))
        .collect();
    let daemon = Daemon::new(
        Queue::new(&config, &args.queue_url),
        crate::aws::s3_client(&config),
        examiner,
        sinks,
        Options {
            pollers: args.pollers.max(1),
            visibility: args.visibility.max(Duration::from_secs(1)),
            retry_after: args.retry_after,
            batch_messages: args.batch_messages.max(1),
            drain: args.drain,
            listen: args.listen,
            decode: args.read.decode_options(),
            fetch_concurrency: args.fetch_concurrency.max(1),
            allowed: args.allowed_buckets.clone(),
            expected_bucket_owner: args.expected_bucket_owner.clone(),
            denied_is_gone: args.cannot_list,
            lake: match &args.lake {
                Some(location) => Some(
                    crate::lake::LakeWriter::open(location)
                        .map_err(|e| anyhow::anyhow!("--lake {location}: {e}"))?
                        .syncing_each_file(),
                ),
                None => None,
            },
        },
        std::sync::Arc::new(Metrics::default()),
    );
    let shutdown = async {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    daemon.run(&runtime, shutdown)?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(0)
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The daemon's health address (its --listen).
    #[arg(
        default_value = "127.0.0.1:9464",
        env = "TRAILHOUND_HEALTHCHECK",
        value_name = "ADDR"
    )]
    pub addr: SocketAddr,
}

/// Asks a running daemon's `/healthz`: exit 0 when healthy, 1 with the reason when not. For
/// container health checks where no HTTP client is installed.
pub fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<i32> {
    use std::io::{Read, Write};
    let timeout = Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&args.addr, timeout)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.addr))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        args.addr
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.lines().next().unwrap_or_default();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("{body}");
        Ok(0)
    } else {
        eprintln!("trailhound: unhealthy: {status}: {body}");
        Ok(1)
    }
}
