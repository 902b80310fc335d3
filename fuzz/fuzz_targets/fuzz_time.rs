//! Any text as an `eventTime`: parsing must not panic, and a parsed time formats into text
//! that parses back to the same instant.
//! The check itself is `trailhound::fuzz::time`, shared with the regression test.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailhound::fuzz::time(data));
