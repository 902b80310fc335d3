//! What an SQS message says: which S3 objects were written. A queue fed by S3, SNS, EventBridge
//! or CloudTrail itself carries one of these bodies:
//!
//! * **S3 direct**: `{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
//!   "s3": {"bucket": {"name"}, "object": {"key", "size"}}}]}`. The key is form-encoded: `+` is
//!   a space and `%2B` a plus.
//! * **S3 test event**: `{"Service": "Amazon S3", "Event": "s3:TestEvent", ...}`, sent when a
//!   bucket's notifications are set up.
//! * **SNS-wrapped**: `{"Type": "Notification", "Message": "<one of these bodies, as text>"}`.
//! * **EventBridge**: `{"detail-type": "Object Created", "source": "aws.s3", "detail":
//!   {"bucket": {"name"}, "object": {"key", "size"}}}`, the key as it is.
//! * **CloudTrail's notice** (SNS from the trail): `{"s3Bucket": "...", "s3ObjectKey": ["...",
//!   ...]}`, several keys, as they are.
//! * **CloudTrail's validation message**: the text `CloudTrail validation message.`, sent when
//!   a trail's topic is set up.

use serde_json::Value;

/// An object a notification names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    pub bucket: String,
    pub key: String,
    /// Size in bytes, when the notification gives it.
    pub size: Option<u64>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Objects were written.
    Objects(Vec<Notified>),
    /// A notification that names no object to read (a test event, a validation message, a
    /// deletion): acknowledged and counted by `kind`.
    Nothing { kind: &'static str },
}

/// Why a message body could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the body is not JSON ({reason}); it starts {start:?}")]
    NotJson { reason: String, start: String },
    #[error("the body is JSON of no known notification shape (keys: {keys})")]
    UnknownShape { keys: String },
    #[error("the notification lacks {field}")]
    Missing { field: &'static str },
    #[error("the key {key:?} is not valid percent-encoding: {reason}")]
    BadKey { key: String, reason: String },
}

const VALIDATION_MESSAGE: &str = "CloudTrail validation message.";

/// Reads an SQS message body.
pub fn parse(body: &str) -> Result<Notice, EnvelopeError> {
    let text = body.trim();
    if text == VALIDATION_MESSAGE {
        return Ok(Notice::Nothing {
            kind: "cloudtrail validation message",
        });
    }
    let value: Value = serde_json::from_str(text).map_err(|e| EnvelopeError::NotJson {
        reason: e.to_string(),
        start: text.chars().take(60).collect(),
    })?;
    from_value(&value, 0)
}

fn text<'a>(v: &'a Value, field: &'static str) -> Result<&'a str, EnvelopeError> {
    v.as_str().ok_or(EnvelopeError::Missing { field })
}

fn from_value(v: &Value, depth: usize) -> Result<Notice, EnvelopeError> {
    // SNS: the message is the text of another body.
    if v["Type"] == "Notification" && v.get("Message").is_some() && depth == 0 {
        let inner = text(&v["Message"], "Message")?;
        if inner.trim() == VALIDATION_MESSAGE {
            return Ok(Notice::Nothing {
                kind: "cloudtrail validation message",
            });
        }
        let value: Value = serde_json::from_str(inner).map_err(|e| EnvelopeError::NotJson {
            reason: format!("in the SNS Message: {e}"),
            start: inner.chars().take(60).collect(),
        })?;
        return from_value(&value, depth + 1);
    }
    if v["Event"] == "s3:TestEvent" {
        return Ok(Notice::Nothing {
            kind: "s3 test event",
        });
    }
    if let Some(records) = v.get("Records").and_then(Value::as_array) {
        return s3_records(records);
    }
    if v.get("detail-type").is_some() && v.get("detail").is_some() {
        return eventbridge(v);
    }
    if let Some(bucket) = v.get("s3Bucket") {
        let bucket = text(bucket, "s3Bucket")?;
        let keys = v["s3ObjectKey"].as_array().ok_or(EnvelopeError::Missing {
            field: "s3ObjectKey",
        })?;
        let objects = keys
            .iter()
            .map(|k| {
                Ok(Notified {
                    bucket: bucket.to_string(),
                    key: text(k, "s3ObjectKey")?.to_string(),
                    size: None,
                })
            })
            .collect::<Result<Vec<_>, EnvelopeError>>()?;
        return Ok(Notice::Objects(objects));
    }
    let keys = v
        .as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "not an object".to_string());
    Err(EnvelopeError::UnknownShape { keys })
}

fn s3_records(records: &[Value]) -> Result<Notice, EnvelopeError> {
    let mut objects = Vec::new();
    for r in records {
        let name = r["eventName"].as_str().unwrap_or_default();
        if !name.starts_with("ObjectCreated:") && !name.starts_with("s3:ObjectCreated:") {
            continue;
        }
        let s3 = &r["s3"];
        let bucket = text(&s3["bucket"]["name"], "s3.bucket.name")?;
        let raw = text(&s3["object"]["key"], "s3.object.key")?;
        objects.push(Notified {
            bucket: bucket.to_string(),
            key: decode_key(raw)?,
            size: s3["object"]["size"].as_u64(),
        });
    }
    if objects.is_empty() {
        return Ok(Notice::Nothing {
            kind: "s3 event not object created",
        });
    }
    Ok(Notice::Objects(objects))
}

fn eventbridge(v: &Value) -> Result<Notice, EnvelopeError> {
    if v["detail-type"] != "Object Created" {
        return Ok(Notice::Nothing {
            kind: "eventbridge event not object created",
        });
    }
    let d = &v["detail"];
    Ok(Notice::Objects(vec![Notified {
        bucket: text(&d["bucket"]["name"], "detail.bucket.name")?.to_string(),
        key: text(&d["object"]["key"], "detail.object.key")?.to_string(),
        size: d["object"]["size"].as_u64(),
    }]))
}

/// Encodes a key as S3 event notifications do (the inverse of [`decode_key`]): a space is
/// `+`; letters, digits, `/` and `-_.~*` stay; every other byte is `%XX`.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' | b'*' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An object that cannot be sent as an S3 notification: it is not in S3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} is not in S3: only S3 objects can be sent to a queue as notifications")]
pub struct NotInS3 {
    pub key: String,
}

/// S3 notification bodies, one per object, for daemons reading a queue to share the objects'
/// examination (`replay --enqueue`).
pub fn notifications<'a>(
    objects: impl IntoIterator<Item = &'a super::ObjectRef>,
) -> Result<Vec<String>, NotInS3> {
    objects
        .into_iter()
        .map(|o| match &o.location {
            super::Location::S3 { bucket, key } => Ok(s3_notification(bucket, key, o.size)),
            super::Location::File(_) => Err(NotInS3 { key: o.key() }),
        })
        .collect()
}

/// An S3 `ObjectCreated:Put` notification body for one object, as `replay --enqueue` sends it.
pub fn s3_notification(bucket: &str, key: &str, size: u64) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encode_key(key), "size": size}},
    }]})
    .to_string()
}

/// Decodes a key from an S3 event notification: form encoding, so `+` is a space, then
/// percent-decoding (`%2B` is a plus, `%2F` a slash).
pub fn decode_key(raw: &str) -> Result<String, EnvelopeError> {
    let bad = |reason: &str| EnvelopeError::BadKey {
        key: raw.to_string(),
        reason: reason.to_string(),
    };
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad("a % not followed by two hex digits"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad("the decoded key is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bucket: &str, key: &str, size: Option<u64>) -> Notice {
        Notice::Objects(vec![Notified {
            bucket: bucket.into(),
            key: key.into(),
            size,
        }])
    }

    #[test]
    fn keys_are_form_decoded() {
        assert_eq!(decode_key("a+b%2Bc%3Dd").unwrap(), "a b+c=d");
        assert_eq!(
            decode_key("AWSLogs%2F1%2Fx.json.gz").unwrap(),
            "AWSLogs/1/x.json.gz"
        );
        assert_eq!(decode_key("caf%C3%A9").unwrap(), "café");
        assert!(decode_key("bad%2").is_err());
        assert!(decode_key("bad%zz").is_err());
        assert!(decode_key("%FF").is_err());
    }

    #[test]
    fn encoded_keys_decode_to_themselves() {
        for key in [
            "a b+c=d/é~x",
            "AWSLogs/1/CloudTrail/us-east-1/2024/01/02/f.json.gz",
            "%2B",
        ] {
            assert_eq!(decode_key(&encode_key(key)).unwrap(), key);
        }
        assert_eq!(encode_key("a b+c"), "a+b%2Bc");
        assert_eq!(
            parse(&s3_notification("b", "x y+z", 3)).unwrap(),
            one("b", "x y+z", Some(3))
        );
    }

    #[test]
    fn s3_direct_with_any_2x_version() {
        let body = r#"{"Records":[{"eventVersion":"2.2","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"trail"},"object":{"key":"AWSLogs/1/CloudTrail/us-east-1/2024/01/02/my+file%2B1.json.gz","size":42}}}]}"#;
        assert_eq!(
            parse(body).unwrap(),
            one(
                "trail",
                "AWSLogs/1/CloudTrail/us-east-1/2024/01/02/my file+1.json.gz",
                Some(42)
            )
        );
    }

    #[test]
    fn deletions_name_nothing() {
        let body = r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        assert!(matches!(parse(body).unwrap(), Notice::Nothing { .. }));
    }

    #[test]
    fn test_events_and_validation_messages_name_nothing() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-01-02T00:00:00.000Z","Bucket":"b","RequestId":"r","HostId":"h"}"#;
        assert_eq!(
            parse(test).unwrap(),
            Notice::Nothing {
                kind: "s3 test event"
            }
        );
        assert_eq!(
            parse("CloudTrail validation message.").unwrap(),
            Notice::Nothing {
                kind: "cloudtrail validation message"
            }
        );
        let sns = r#"{"Type":"Notification","MessageId":"m","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"CloudTrail validation message."}"#;
        assert!(matches!(parse(sns).unwrap(), Notice::Nothing { .. }));
    }

    #[test]
    fn sns_wraps_s3_and_cloudtrail_notices() {
        let inner = r#"{"Records":[{"eventName":"ObjectCreated:CompleteMultipartUpload","s3":{"bucket":{"name":"b"},"object":{"key":"a+b","size":1}}}]}"#;
        let sns = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        assert_eq!(parse(&sns).unwrap(), one("b", "a b", Some(1)));
        let trail = r#"{"s3Bucket":"b","s3ObjectKey":["AWSLogs/1/CloudTrail/us-east-1/2024/01/02/x+1.json.gz","AWSLogs/1/CloudTrail/us-east-1/2024/01/02/y.json.gz"]}"#;
        let sns = serde_json::json!({"Type": "Notification", "Message": trail}).to_string();
        let Notice::Objects(objects) = parse(&sns).unwrap() else {
            panic!("objects expected")
        };
        // CloudTrail's keys are not encoded: a plus stays a plus.
        assert_eq!(
            objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
            [
                "AWSLogs/1/CloudTrail/us-east-1/2024/01/02/x+1.json.gz",
                "AWSLogs/1/CloudTrail/us-east-1/2024/01/02/y.json.gz"
            ]
        );
    }

    #[test]
    fn eventbridge_object_created() {
        let body = r#"{"version":"0","id":"i","detail-type":"Object Created","source":"aws.s3","account":"1","detail":{"version":"0","bucket":{"name":"b"},"object":{"key":"x/y z.json.gz","size":7}}}"#;
        assert_eq!(parse(body).unwrap(), one("b", "x/y z.json.gz", Some(7)));
        let deleted = body.replace("Object Created", "Object Deleted");
        assert!(matches!(parse(&deleted).unwrap(), Notice::Nothing { .. }));
    }

    #[test]
    fn garbage_is_an_error_that_says_why() {
        let e = parse("hello").unwrap_err();
        assert!(e.to_string().contains("not JSON"), "{e}");
        let e = parse(r#"{"foo": 1}"#).unwrap_err();
        assert!(e.to_string().contains("foo"), "{e}");
        let e = parse(r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{}}]}"#).unwrap_err();
        assert!(e.to_string().contains("s3.bucket.name"), "{e}");
    }
}
