//! Decoding loses nothing: every record, rebuilt from its row, equals what a plain JSON parser
//! reads from the file. Checked on `simulate` output and, where it is present beside the
//! checkout, on real CloudTrail from a public attack-simulation dataset.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use trailhound::decode::roundtrip::{normalize, record_json};
use trailhound::decode::{DecodeOptions, Decoder};
use trailhound::source;

/// Decodes every log under `dir` and compares each record with serde_json's reading of it.
/// Returns the number of records compared.
fn check_tree(dir: &Path) -> usize {
    let listing = source::list(&[dir.display().to_string()]).expect("listing");
    assert!(
        !listing.objects.is_empty(),
        "no logs under {}",
        dir.display()
    );
    let mut decoder = Decoder::new(DecodeOptions::default());
    let mut compared = 0;
    for object in &listing.objects {
        let stored = object.fetch(usize::MAX).expect("readable");
        let decoded = decoder.decode(&object.key(), &stored);
        assert!(
            decoded.problems.is_empty(),
            "{}: {:?}",
            object.key(),
            decoded.problems
        );

        let mut body = Vec::new();
        flate2::read::MultiGzDecoder::new(&stored[..])
            .read_to_end(&mut body)
            .unwrap();
        let file: serde_json::Value = serde_json::from_slice(&body).expect("file is JSON");
        let expected = file["Records"].as_array().expect("Records array");
        let batch = decoded.batch.expect("records");
        assert_eq!(batch.num_rows(), expected.len(), "{}", object.key());

        // Rows keep the file's order.
        for (row, original) in expected.iter().enumerate() {
            let rebuilt = record_json(&batch, row);
            assert_eq!(
                rebuilt,
                normalize(original),
                "{} record {row} differs after decoding",
                object.key()
            );
            compared += 1;
        }
    }
    compared
}

#[test]
fn simulated_records_decode_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let config = trailhound::simulate::SimConfig {
        days: 1,
        accounts: 2,
        scale: 0.05,
        threads: 2,
        ..Default::default()
    };
    let summary = trailhound::simulate::simulate(&config, dir.path()).unwrap();
    let compared = check_tree(dir.path());
    assert_eq!(compared, summary.records);
    assert!(compared > 1000, "only {compared} records");
}

/// The real dataset lives in the team's shared folder beside the checkout; a clone without it
/// skips this test (CI has it).
#[test]
fn real_cloudtrail_decodes_without_loss() {
    let dir = std::env::var_os("TRAILHOUND_REAL_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/invictus-aws-dataset")
        });
    if !dir.exists() {
        eprintln!("skipped: {} is not present", dir.display());
        return;
    }
    assert_eq!(check_tree(&dir), 2900);
}

#[test]
fn every_field_reaches_its_column() {
    // A record using every modelled field, plus some the schema does not know.
    let record = serde_json::json!({
        "eventVersion": "1.11",
        "userIdentity": {
            "type": "AssumedRole", "principalId": "AROAX:i-0abc", "arn": "arn:aws:sts::1:assumed-role/r/i-0abc",
            "accountId": "1", "accessKeyId": "ASIAX", "userName": "u", "invokedBy": "ec2.amazonaws.com",
            "identityProvider": "idp", "credentialId": "cred-1",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": "AROAX", "arn": "arn:aws:iam::1:role/r", "accountId": "1", "userName": "r"},
                "webIdFederationData": {"federatedProvider": "arn:aws:iam::1:oidc-provider/x", "attributes": {"aud": "sts"}},
                "attributes": {"creationDate": "2024-01-01T00:00:00Z", "mfaAuthenticated": "false"},
                "sourceIdentity": "alice", "ec2RoleDelivery": "2.0", "assumedRoot": "true"
            },
            "onBehalfOf": {"userId": "u-1", "identityStoreArn": "arn:aws:identitystore::1:identitystore/d-1"},
            "inScopeOf": {"sourceArn": "arn:aws:ec2:us-east-1:1:instance/i-0abc", "sourceAccount": "1", "issuerType": "AWS::EC2::Instance", "credentialsIssuedTo": "arn:aws:ec2:us-east-1:1:instance/i-0abc"},
            "brandNewField": {"x": [1, 2]}
        },
        "eventTime": "2024-01-01T00:00:01Z", "eventSource": "kms.amazonaws.com", "eventName": "PutKeyPolicy",
        "awsRegion": "us-east-1", "sourceIPAddress": "AWS Internal", "userAgent": "ua",
        "errorCode": "AccessDenied", "errorMessage": "no",
        "requestParameters": {"keyId": "k", "policy": "{\"a\":1}", "n": [1.5, null, true]},
        "responseElements": null, "additionalEventData": {"x": "y"},
        "requestID": "r", "eventID": "e", "readOnly": false,
        "resources": [{"ARN": "arn:aws:kms:us-east-1:1:key/k", "accountId": "1", "type": "AWS::KMS::Key"}],
        "eventType": "AwsApiCall", "apiVersion": "2014-11-01", "managementEvent": true, "recipientAccountId": "1",
        "serviceEventDetails": {"a": 1}, "sharedEventID": "s", "vpcEndpointId": "vpce-1", "vpcEndpointAccountId": "1",
        "eventCategory": "Management",
        "addendum": {"reason": "DELIVERY_DELAY", "updatedFields": "f", "originalRequestID": "o", "originalEventID": "oe"},
        "sessionCredentialFromConsole": "true", "edgeDeviceDetails": {"d": 1},
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "kms.us-east-1.amazonaws.com"},
        "insightDetails": {"state": "Start"},
        "somethingNew": "kept"
    });
    let body = serde_json::json!({"Records": [record.clone()]}).to_string();
    let decoded = Decoder::new(DecodeOptions::default()).decode("k", body.as_bytes());
    let batch = decoded.batch.unwrap();
    assert_eq!(record_json(&batch, 0), normalize(&record));
    let unmapped = batch.column_by_name("unmapped").unwrap();
    let unmapped = datafusion::arrow::array::AsArray::as_string::<i32>(unmapped.as_ref()).value(0);
    let unmapped: HashMap<String, serde_json::Value> = serde_json::from_str(unmapped).unwrap();
    let mut keys: Vec<_> = unmapped.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["somethingNew", "userIdentity"]);
}
