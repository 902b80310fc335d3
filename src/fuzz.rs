//! What the fuzz targets check, one function per target, so that the fuzzers (`fuzz/`) and
//! the regression test that replays every input they ever found (`tests/fuzz-regressions/`)
//! run the same code. Each function takes any bytes and panics only on a defect.

use std::collections::BTreeSet;

use crate::decode::roundtrip::{normalize, record_json};
use crate::decode::time::{format_event_time, parse_event_time};
use crate::decode::{DecodeOptions, Decoder};
use crate::source::envelope;
use crate::sql::security::{
    allows_all, base64_text, ip_network, is_private_ip, outside_principals, s3_bucket,
    wildcard_match, Trust,
};

/// A target's check: any bytes in, a panic only on a defect.
pub type Check = fn(&[u8]);

/// The targets, by name.
pub const TARGETS: [(&str, Check); 4] = [
    ("fuzz_decode", decode),
    ("fuzz_envelope", envelope),
    ("fuzz_policy", policy),
    ("fuzz_time", time),
];

/// Any bytes as a stored log object: decoding must not panic, and every row it keeps must
/// rebuild into a record.
pub fn decode(data: &[u8]) {
    let mut decoder = Decoder::new(DecodeOptions {
        // Small enough that a gzip bomb ends as an error, not as the fuzzer's memory limit.
        max_object_bytes: 4 << 20,
        ..DecodeOptions::default()
    });
    let decoded = decoder.decode("fuzz/object.json.gz", data);
    if let Some(batch) = decoded.batch {
        for row in 0..batch.num_rows() {
            let record = record_json(&batch, row);
            assert!(record.is_object());
            normalize(&record);
        }
    }
}

/// Any bytes as an SQS message body: parsing the envelope (S3, SNS, EventBridge, CloudTrail
/// notices) must not panic, and a key as S3 form-encodes it decodes back to itself.
pub fn envelope(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    let _ = envelope::parse(&body);
    if let Ok(key) = envelope::decode_key(&body) {
        let again = envelope::decode_key(&envelope::encode_key(&key));
        assert_eq!(again.ok().as_deref(), Some(key.as_str()));
    }
}

/// Any bytes as a policy document, with an account, a trusted account or pattern, an address
/// (the first line is the account, the second the trusted one, the rest the document, also
/// read as an address list): the policy and network functions the detections call, and the
/// threat-list reader, must not panic.
pub fn policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let account = lines.next().unwrap_or_default();
    let trusted = lines.next().unwrap_or_default();
    let policy = lines.next().unwrap_or_default();
    // The document read as a threat list too (plain or STIX): an error is fine, a panic not.
    let mut threats = crate::detect::ip_list::IpList::default();
    let _ = threats.add_text(std::path::Path::new("fuzz"), policy);
    let trust = Trust {
        accounts: BTreeSet::from([trusted.to_string()]),
        pipelines: vec![trusted.to_string()],
        threats,
        trusted_networks: Default::default(),
    };
    let _ = trust.threats.contains_text(account);
    for principal in outside_principals(policy, account, &trust) {
        assert!(!principal.is_empty());
    }
    allows_all(policy);
    let _ = trust.is_pipeline(account);
    let _ = wildcard_match(trusted, account);
    let _ = ip_network(account);
    let _ = is_private_ip(account);
    let _ = base64_text(policy);
    let _ = s3_bucket(account);
}

/// Any bytes as an `eventTime`: parsing must not panic, and a parsed time formats into text
/// that parses back to the same instant. Any number formats without panicking.
pub fn time(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(micros) = parse_event_time(&text) {
        let formatted = format_event_time(micros);
        assert_eq!(
            parse_event_time(&formatted),
            Some(micros),
            "{text:?} -> {formatted}"
        );
    }
    if let Some(bytes) = data.first_chunk::<8>() {
        format_event_time(i64::from_le_bytes(*bytes));
    }
}
