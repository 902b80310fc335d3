//! trailhound finds attacks on AI workloads in AWS CloudTrail.
//!
//! The data flows through the modules in this order:
//!
//! * [`source`]: where log objects come from (local files and directories, S3 listings, the
//!   SQS queue of notifications and their envelopes), and what each key holds.
//! * [`decode`]: object bytes (gzip or plain; `{"Records":[...]}`, arrays, JSON Lines) into
//!   Arrow record batches of the `cloudtrail` table ([`decode::schema`]) or of
//!   `bedrock_invocations` ([`decode::bedrock`]).
//! * [`read`]: the parallel read path from listed objects to batches, with a report of what
//!   was skipped and why; replay's delivery-order chunks and read-ahead.
//! * [`sql`]: DataFusion with the `cloudtrail` table, JSON functions and the policy and
//!   decoding functions detections use.
//! * [`detect`]: detections as data (`detections/*.toml`), planned once; the
//!   [`Examiner`](detect::Examiner) is where a chunk of decoded batches meets every detection
//!   and the statistics and becomes findings, for replay, the daemon, `bench` and rule tests
//!   alike.
//! * [`finding`]: findings, written as GuardDuty JSON, Security Hub ASFF or OCSF, and the
//!   sinks that take them.
//! * [`daemon`]: the long-running service: SQS in, findings out, each message acknowledged
//!   once its findings are safely out.
//! * [`lake`]: every decoded record kept as partitioned Parquet, and SQL and Athena DDL over it.
//! * [`simulate`]: realistic synthetic CloudTrail with labelled attacks, and scoring against
//!   the labels.
//! * [`aws`]: how every part talks to AWS (configuration, retries, endpoints, runtimes).
//! * [`cli`]: the `trailhound` command.

pub mod aws;
pub mod cli;
pub mod daemon;
pub mod decode;
pub mod detect;
pub mod finding;
#[doc(hidden)]
pub mod fuzz;
pub mod lake;
pub mod memory;
pub mod read;
pub mod simulate;
pub mod source;
pub mod sql;
pub mod sync;
