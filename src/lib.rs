//! trailhound finds attacks on AI workloads in AWS CloudTrail.
//!
//! The data flows through the modules in this order:
//!
//! * [`source`]: where log objects come from (local files and directories; S3 and SQS later),
//!   and what each key holds.
//! * [`decode`]: object bytes (gzip or plain; `{"Records":[...]}`, arrays, JSON Lines) into
//!   Arrow record batches of the `cloudtrail` table ([`decode::schema`]).
//! * [`read`]: the parallel read path from listed objects to batches, with a report of what
//!   was skipped and why.
//! * [`sql`]: DataFusion with the `cloudtrail` table, JSON functions and the policy and
//!   decoding functions detections use.
//! * [`detect`]: detections as data (`detections/*.toml`): SQL rules planned once and run
//!   over chunks of batches, their matches aggregated into findings.
//! * [`finding`]: findings, written as GuardDuty JSON, Security Hub ASFF or OCSF.
//! * [`simulate`]: realistic synthetic CloudTrail with labelled attacks.
//! * [`cli`]: the `trailhound` command.

pub mod cli;
pub mod daemon;
pub mod decode;
pub mod detect;
pub mod finding;
pub mod read;
pub mod simulate;
pub mod source;
pub mod sql;
