//! A state shared by a fleet of trailhound processes, in one DynamoDB table
//! (`--state dynamodb://TABLE`).
//!
//! Every entry of the [`State`] is an item: `pk` is `TABLE/KEY` (a digest of the key when it is
//! long), `t` the state table, `k` the key, `v` the entry as JSON. Each process loads the items
//! when it starts and writes back the entries it changed; two processes that change one entry
//! at once keep the later write.
//!
//! What must not happen twice is a statistical finding: two daemons that read the same new
//! value at once would both call it "first seen". Before a finding is emitted its id is
//! *claimed* with a conditional write (`claim/ID` must not exist, or be an unconfirmed claim
//! whose owner let it lapse), and only the process whose write succeeds emits it. The claim is
//! confirmed once the finding is out; a process that dies between claim and confirmation
//! leaves a claim that lapses after [`CLAIM_LEASE`] (or `TRAILHOUND_CLAIM_LEASE`, such as
//! `90s`), so the finding is emitted by whoever reads those records again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
    PutRequest, ScalarAttributeType, TableStatus, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};

use super::{State, StateError, FORMAT_VERSION};

/// How long an unconfirmed claim holds before another process may take it over, unless
/// `TRAILHOUND_CLAIM_LEASE` says otherwise. Longer than it takes to write a chunk's findings.
pub const CLAIM_LEASE: Duration = Duration::from_secs(300);
/// Items per BatchWriteItem call (DynamoDB's limit).
const BATCH: usize = 25;
/// The largest item DynamoDB stores is 400 KB; entries are refused well before.
const MAX_ENTRY: usize = 350 * 1024;
/// Longest key kept in `pk` as it is (DynamoDB allows 2,048 bytes).
const MAX_PK: usize = 1024;

/// A state kept in a DynamoDB table.
pub struct DynamoStore {
    table: String,
    client: Client,
    runtime: tokio::runtime::Runtime,
    /// Who claims findings: host, process and start time.
    owner: String,
    /// How long this process's unconfirmed claims hold.
    lease: Duration,
}

fn pk(table: &str, key: &str) -> String {
    if table.len() + key.len() < MAX_PK {
        format!("{table}/{key}")
    } else {
        format!("{table}/sha256:{:x}", Sha256::digest(key.as_bytes()))
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl DynamoStore {
    /// Connects with the standard AWS configuration (environment, profile, ECS task role;
    /// `AWS_ENDPOINT_URL` for a local server) and creates the table when it does not exist.
    pub fn open(table: &str) -> Result<Self, StateError> {
        let lease = match std::env::var("TRAILHOUND_CLAIM_LEASE") {
            Ok(text) => crate::detect::rule::parse_duration(&text).map_err(|e| {
                StateError::store(
                    format!("dynamodb://{table}"),
                    format!("TRAILHOUND_CLAIM_LEASE {text:?}: {e}"),
                )
            })?,
            Err(_) => CLAIM_LEASE,
        };
        Self::open_with_lease(table, lease)
    }

    /// [`DynamoStore::open`] with the lease of this process's claims given.
    pub fn open_with_lease(table: &str, lease: Duration) -> Result<Self, StateError> {
        let runtime = crate::aws::runtime("trailhound-dynamodb", 0)
            .map_err(|e| StateError::store(format!("dynamodb://{table}"), e))?;
        let config = runtime.block_on(crate::aws::config());
        let owner = format!(
            "{}:{}:{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        );
        let store = Self {
            table: table.to_string(),
            client: Client::new(&config),
            runtime,
            owner,
            lease,
        };
        store.ensure_table()?;
        store.check_version()?;
        Ok(store)
    }

    /// `dynamodb://TABLE`, for messages.
    pub fn describe(&self) -> String {
        format!("dynamodb://{}", self.table)
    }

    fn fail(&self, cause: impl Into<super::Cause>) -> StateError {
        StateError::store(self.describe(), cause)
    }

    /// An SDK error as the service's code and message, or (for a connection failure and
    /// the like) the whole chain of causes.
    fn sdk<E: std::error::Error + ProvideErrorMetadata + 'static>(
        &self,
        what: &str,
        e: E,
    ) -> StateError {
        match e.code() {
            Some(code) => self.fail(format!(
                "{what}: {code}: {}",
                e.message().unwrap_or("(no message)")
            )),
            None => self.fail(format!("{what}: {}", DisplayErrorContext(e))),
        }
    }

    fn ensure_table(&self) -> Result<(), StateError> {
        self.runtime.block_on(async {
            match self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
            {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) => {}
                Err(e) => return Err(self.sdk("DescribeTable", e)),
            }
            let attribute = AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| self.fail(e))?;
            let key = KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| self.fail(e))?;
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .attribute_definitions(attribute)
                .key_schema(key)
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await;
            match created {
                Ok(_) => {}
                // Another process is creating it at the same moment.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_in_use_exception()) => {}
                Err(e) => {
                    return Err(self.sdk(
                        "the table does not exist and could not be created (CreateTable)",
                        e,
                    ))
                }
            }
            for _ in 0..120 {
                let described = self
                    .client
                    .describe_table()
                    .table_name(&self.table)
                    .send()
                    .await
                    .map_err(|e| self.sdk("DescribeTable", e))?;
                if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(self.fail("the table it created did not become active within a minute"))
        })
    }

    fn check_version(&self) -> Result<(), StateError> {
        let item = self.runtime.block_on(async {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S("meta/format".into()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| self.sdk("GetItem", e))
        })?;
        let version = item
            .item()
            .and_then(|i| i.get("v"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u32>().ok());
        match version {
            Some(v) if v != FORMAT_VERSION => Err(self.fail(format!(
                "made by another version of trailhound (layout {v}, this one reads {FORMAT_VERSION}); reset it with `trailhound state reset`"
            ))),
            _ => Ok(()),
        }
    }

    /// Reads every entry.
    pub fn load(&self) -> Result<State, StateError> {
        let mut state = State::default();
        self.runtime.block_on(async {
            let mut items = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .into_paginator()
                .items()
                .send();
            while let Some(item) = items.next().await {
                let item = item.map_err(|e| self.sdk("Scan", e))?;
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
                if text("pk") == Some(&"meta/horizon".to_string()) {
                    if let Some(n) = item.get("v").and_then(|v| v.as_n().ok()) {
                        state.horizon = n.parse().unwrap_or(i64::MIN);
                    }
                    continue;
                }
                let (Some(table), Some(key), Some(value)) = (
                    text("t"),
                    text("k"),
                    item.get("v").and_then(|v| v.as_b().ok()),
                ) else {
                    continue; // claims and meta items
                };
                let Some(&name) = State::TABLES.iter().find(|t| *t == table) else {
                    continue;
                };
                state
                    .restore(name, key.clone(), value.as_ref())
                    .map_err(|source| StateError::Corrupt {
                        path: self.describe(),
                        table: name,
                        key: key.clone(),
                        source,
                    })?;
            }
            Ok::<_, StateError>(())
        })?;
        Ok(state)
    }

    /// Writes the entries that changed (in batches of 25; not one transaction: a crash
    /// part-way leaves some entries newer than others, which the next run's learning
    /// corrects).
    pub fn save(&self, state: &mut State) -> Result<(), StateError> {
        let mut requests = Vec::new();
        for (table, key, bytes) in state.drain_changes() {
            let id = AttributeValue::S(pk(table, &key));
            let request = match bytes {
                Some(v) => {
                    if v.len() > MAX_ENTRY {
                        return Err(self.fail(format!(
                            "entry {key:?} of {table} is {} bytes, more than DynamoDB stores",
                            v.len()
                        )));
                    }
                    let put = PutRequest::builder()
                        .item("pk", id)
                        .item("t", AttributeValue::S(table.into()))
                        .item("k", AttributeValue::S(key))
                        .item("v", AttributeValue::B(Blob::new(v)))
                        .build()
                        .map_err(|e| self.fail(e))?;
                    WriteRequest::builder().put_request(put).build()
                }
                None => {
                    let delete = DeleteRequest::builder()
                        .key("pk", id)
                        .build()
                        .map_err(|e| self.fail(e))?;
                    WriteRequest::builder().delete_request(delete).build()
                }
            };
            requests.push(request);
        }
        for (name, value) in [
            ("meta/format", FORMAT_VERSION.to_string()),
            ("meta/horizon", state.horizon.to_string()),
        ] {
            let put = PutRequest::builder()
                .item("pk", AttributeValue::S(name.into()))
                .item("v", AttributeValue::N(value))
                .build()
                .map_err(|e| self.fail(e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.runtime.block_on(self.write_all(requests))
    }

    /// Writes `requests` in batches of DynamoDB's limit.
    async fn write_all(&self, requests: Vec<WriteRequest>) -> Result<(), StateError> {
        for chunk in requests.chunks(BATCH) {
            self.write_batch(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// One BatchWriteItem, retrying what DynamoDB left unprocessed (throttling) with backoff.
    async fn write_batch(&self, mut batch: Vec<WriteRequest>) -> Result<(), StateError> {
        let mut delay = Duration::from_millis(50);
        for _ in 0..10 {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(|e| self.sdk("BatchWriteItem", e))?;
            batch = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.table))
                .cloned()
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Err(self.fail("BatchWriteItem: items still unprocessed after 10 tries (throttled)"))
    }

    /// Claims the findings `ids` for this process: returns those it won. A finding claimed
    /// and confirmed by any process, or claimed by another within its lease, is not won.
    pub fn claim(&self, ids: &[String]) -> Result<HashSet<String>, StateError> {
        let now = now_secs();
        let lapse = now + self.lease.as_secs().max(1) as i64;
        self.runtime.block_on(async {
            let mut won = HashSet::new();
            for id in ids {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", AttributeValue::S(format!("claim/{id}")))
                    .item("status", AttributeValue::S("claimed".into()))
                    .item("owner", AttributeValue::S(self.owner.clone()))
                    .item("lapses", AttributeValue::N(lapse.to_string()))
                    .condition_expression(
                        "attribute_not_exists(pk) OR (#s = :claimed AND (#o = :me OR #l < :now))",
                    )
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_names("#o", "owner")
                    .expression_attribute_names("#l", "lapses")
                    .expression_attribute_values(":claimed", AttributeValue::S("claimed".into()))
                    .expression_attribute_values(":me", AttributeValue::S(self.owner.clone()))
                    .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                    .send()
                    .await;
                match result {
                    Ok(_) => {
                        won.insert(id.clone());
                    }
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                    Err(e) => return Err(self.sdk("PutItem (claim)", e)),
                }
            }
            Ok(won)
        })
    }

    /// Forgets every claim (with a reset of the whole state: findings may be emitted again).
    pub fn forget_claims(&self) -> Result<usize, StateError> {
        self.runtime.block_on(async {
            let mut items = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :claim)")
                .expression_attribute_values(":claim", AttributeValue::S("claim/".into()))
                .projection_expression("pk")
                .into_paginator()
                .items()
                .send();
            let mut requests = Vec::new();
            while let Some(item) = items.next().await {
                let item = item.map_err(|e| self.sdk("Scan", e))?;
                if let Some(pk) = item.get("pk") {
                    let delete = DeleteRequest::builder()
                        .key("pk", pk.clone())
                        .build()
                        .map_err(|e| self.fail(e))?;
                    requests.push(WriteRequest::builder().delete_request(delete).build());
                }
            }
            let n = requests.len();
            self.write_all(requests).await?;
            Ok(n)
        })
    }

    /// Marks claimed findings as emitted: no process emits them again.
    pub fn confirm(&self, ids: &[String]) -> Result<(), StateError> {
        let mut requests = Vec::new();
        for id in ids {
            let mut item = HashMap::new();
            item.insert("pk".to_string(), AttributeValue::S(format!("claim/{id}")));
            item.insert("status".to_string(), AttributeValue::S("emitted".into()));
            item.insert("owner".to_string(), AttributeValue::S(self.owner.clone()));
            item.insert(
                "emitted".to_string(),
                AttributeValue::N(now_secs().to_string()),
            );
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| self.fail(e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.runtime.block_on(self.write_all(requests))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_digested_to_fit_dynamodb() {
        assert_eq!(pk("values", "a\u{1f}b"), "values/a\u{1f}b");
        let long = "x".repeat(5000);
        let p = pk("values", &long);
        assert!(p.starts_with("values/sha256:") && p.len() < 100);
        assert_ne!(p, pk("values", &"y".repeat(5000)));
    }
}
