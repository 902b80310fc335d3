//! Any text as a policy document (and an account, an ARN, an address): the policy and
//! network functions the detections call must not panic.
//! The check itself is `trailhound::fuzz::policy`, shared with the regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound::fuzz::policy(data));
