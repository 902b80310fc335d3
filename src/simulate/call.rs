//! One API call, rendered as a CloudTrail record.

use rand::Rng;
use serde_json::{json, Map, Value};

use super::identity::{uuid, Actor};
use crate::decode::time::format_event_time;

/// An API call about to be written as a record.
pub struct Call<'a> {
    pub actor: &'a Actor,
    pub source: &'static str,
    pub name: &'static str,
    pub region: &'a str,
    pub request: Value,
    pub response: Value,
    pub read_only: bool,
    pub error: Option<(&'static str, String)>,
    pub resources: Vec<(String, &'static str)>,
    pub event_type: &'static str,
    pub additional: Option<Value>,
}

/// A rendered record with what the writer needs to place it.
#[derive(Debug, Clone)]
pub struct Record {
    pub micros: i64,
    pub account: String,
    pub region: String,
    pub event_id: String,
    pub json: Value,
}

impl<'a> Call<'a> {
    /// A read-only call with empty parameters and response; adjust with the builder methods.
    pub fn new(
        actor: &'a Actor,
        source: &'static str,
        name: &'static str,
        region: &'a str,
    ) -> Self {
        let read_only = [
            "Get", "List", "Describe", "Head", "Lookup", "Search", "BatchGet",
        ]
        .iter()
        .any(|p| name.starts_with(p));
        Self {
            actor,
            source,
            name,
            region,
            request: Value::Null,
            response: Value::Null,
            read_only,
            error: None,
            resources: Vec::new(),
            event_type: "AwsApiCall",
            additional: None,
        }
    }

    pub fn req(mut self, request: Value) -> Self {
        self.request = request;
        self
    }

    pub fn resp(mut self, response: Value) -> Self {
        self.response = response;
        self
    }

    pub fn write(mut self) -> Self {
        self.read_only = false;
        self
    }

    pub fn error(mut self, code: &'static str, message: impl Into<String>) -> Self {
        self.error = Some((code, message.into()));
        self.response = Value::Null;
        self
    }

    pub fn resource(mut self, arn: impl Into<String>, kind: &'static str) -> Self {
        self.resources.push((arn.into(), kind));
        self
    }

    pub fn additional(mut self, data: Value) -> Self {
        self.additional = Some(data);
        self
    }

    pub fn event_type(mut self, event_type: &'static str) -> Self {
        self.event_type = event_type;
        self
    }

    /// Renders the record at `micros` (microseconds since the epoch).
    pub fn render(self, micros: i64, rng: &mut impl Rng) -> Record {
        let at = format_event_time(micros - micros % 1_000_000);
        let actor = self.actor;
        let event_id = uuid(rng);
        let mut r = Map::new();
        let version = if self.source == "signin.amazonaws.com" {
            "1.09"
        } else {
            "1.11"
        };
        r.insert("eventVersion".into(), json!(version));
        r.insert("userIdentity".into(), actor.identity(&at));
        r.insert("eventTime".into(), json!(at));
        r.insert("eventSource".into(), json!(self.source));
        r.insert("eventName".into(), json!(self.name));
        r.insert("awsRegion".into(), json!(self.region));
        r.insert("sourceIPAddress".into(), json!(actor.source_ip));
        r.insert("userAgent".into(), json!(actor.user_agent));
        if let Some((code, message)) = &self.error {
            r.insert("errorCode".into(), json!(code));
            r.insert("errorMessage".into(), json!(message));
        }
        r.insert("requestParameters".into(), self.request);
        r.insert("responseElements".into(), self.response);
        if let Some(data) = self.additional {
            r.insert("additionalEventData".into(), data);
        }
        if self.event_type != "AwsConsoleSignIn" {
            r.insert("requestID".into(), json!(uuid(rng)));
        }
        r.insert("eventID".into(), json!(event_id));
        r.insert("readOnly".into(), json!(self.read_only));
        if !self.resources.is_empty() {
            let resources: Vec<Value> = self
                .resources
                .iter()
                .map(|(arn, kind)| json!({"accountId": actor.account, "type": kind, "ARN": arn}))
                .collect();
            r.insert("resources".into(), Value::Array(resources));
        }
        r.insert("eventType".into(), json!(self.event_type));
        r.insert("managementEvent".into(), json!(true));
        r.insert("recipientAccountId".into(), json!(actor.account));
        if let Some(endpoint) = &actor.vpc_endpoint {
            r.insert("vpcEndpointId".into(), json!(endpoint));
            r.insert("vpcEndpointAccountId".into(), json!(actor.account));
        }
        r.insert("eventCategory".into(), json!("Management"));
        if actor.console && self.event_type == "AwsApiCall" {
            r.insert("sessionCredentialFromConsole".into(), json!("true"));
        }
        if !matches!(actor.principal, super::identity::Principal::Service { .. }) {
            let host = format!(
                "{}.{}.amazonaws.com",
                self.source.trim_end_matches(".amazonaws.com"),
                self.region
            );
            r.insert(
                "tlsDetails".into(),
                json!({"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": host}),
            );
        }
        Record {
            micros: micros - micros % 1_000_000,
            account: actor.account.clone(),
            region: self.region.to_string(),
            event_id,
            json: Value::Object(r),
        }
    }
}
