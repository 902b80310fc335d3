//! Any text as an SQS message body: parsing the envelope (S3, SNS, EventBridge, CloudTrail
//! notices) must not panic, and every key it names must be one the key decoder accepts.
//! The check itself is `trailhound::fuzz::envelope`, shared with the regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound::fuzz::envelope(data));
