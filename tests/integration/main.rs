//! trailhound's integration tests: the real binary as a user runs it, the library's public
//! API, and the daemon against moto's real S3, SQS, SNS, EventBridge, Security Hub and DynamoDB
//! server. One test binary for them all: the crate is linked once instead of once per file.

mod common;
mod coverage;
mod moto;

mod daemon;
mod dynamodb;
mod dynamodb_lapse;
mod fidelity;
mod fuzz_regressions;
mod hostile;
mod hunt;
mod intel;
mod lake;
mod replay;
mod statistics;
