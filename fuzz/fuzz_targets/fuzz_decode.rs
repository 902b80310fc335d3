//! Any bytes as a stored log object: decoding must not panic, and every row it keeps must
//! rebuild into a record.
//! The check itself is `trailhound::fuzz::decode`, shared with the regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound::fuzz::decode(data));
