//! The `cloudtrail` table: one fixed Arrow schema for every CloudTrail record.
//!
//! Column names are the lower-case names of Athena's CloudTrail table, so a query written for
//! Athena or CloudTrail Lake runs unchanged. The schema is described once, as data
//! ([`RECORD_FIELDS`]); the Arrow schema, the decoder and the round trip back to JSON are all
//! derived from that description, so they cannot drift apart.
//!
//! | kind | Arrow type | holds |
//! |---|---|---|
//! | text | `Utf8` | a JSON string |
//! | JSON text | `Utf8` | any JSON value, serialized (free-form fields such as `requestparameters`) |
//! | boolean | `Utf8` | a JSON `true`/`false`, as `'true'`/`'false'` (Athena's type for it) |
//! | timestamp | `Timestamp(µs, UTC)` | `eventTime` |
//! | struct | `Struct` | a JSON object with known keys |
//! | list of struct | `List<Struct>` | `resources` |
//!
//! Columns trailhound adds to Athena's set:
//!
//! * `unmapped`: JSON text of every field the schema does not model (at any depth, under its
//!   original path and spelling), and of any modelled field whose JSON type was unexpected.
//!   Nothing in a record is lost.
//! * `sourcekey`: the object key or file path the record was read from.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// What a modelled JSON field becomes in Arrow.
#[derive(Debug)]
pub enum Kind {
    /// A JSON string, as `Utf8`.
    Text,
    /// Any JSON value, serialized as JSON text in a `Utf8` column.
    Json,
    /// A JSON boolean, held as Athena does: the string `'true'` or `'false'`.
    Bool,
    /// An ISO-8601 UTC time string, as a microsecond UTC timestamp.
    Time,
    /// A JSON object with known keys.
    Struct(&'static [FieldDef]),
    /// A JSON array of objects with known keys.
    ListOfStruct(&'static [FieldDef]),
}

/// One modelled field: its key in CloudTrail's JSON and its column name in the table.
#[derive(Debug)]
pub struct FieldDef {
    pub json: &'static str,
    pub column: &'static str,
    pub kind: Kind,
}

const fn f(json: &'static str, column: &'static str, kind: Kind) -> FieldDef {
    FieldDef { json, column, kind }
}

use Kind::{Bool, Json, ListOfStruct, Struct, Text, Time};

const SESSION_ISSUER: &[FieldDef] = &[
    f("type", "type", Text),
    f("principalId", "principalid", Text),
    f("arn", "arn", Text),
    f("accountId", "accountid", Text),
    f("userName", "username", Text),
];

const SESSION_ATTRIBUTES: &[FieldDef] = &[
    f("creationDate", "creationdate", Text),
    f("mfaAuthenticated", "mfaauthenticated", Text),
];

const WEB_ID_FEDERATION: &[FieldDef] = &[
    f("federatedProvider", "federatedprovider", Text),
    f("attributes", "attributes", Json),
];

const SESSION_CONTEXT: &[FieldDef] = &[
    f("attributes", "attributes", Struct(SESSION_ATTRIBUTES)),
    f("sessionIssuer", "sessionissuer", Struct(SESSION_ISSUER)),
    f(
        "webIdFederationData",
        "webidfederationdata",
        Struct(WEB_ID_FEDERATION),
    ),
    f("sourceIdentity", "sourceidentity", Text),
    f("ec2RoleDelivery", "ec2roledelivery", Text),
    f("assumedRoot", "assumedroot", Text),
];

const ON_BEHALF_OF: &[FieldDef] = &[
    f("userId", "userid", Text),
    f("identityStoreArn", "identitystorearn", Text),
];

const IN_SCOPE_OF: &[FieldDef] = &[
    f("sourceArn", "sourcearn", Text),
    f("sourceAccount", "sourceaccount", Text),
    f("issuerType", "issuertype", Text),
    f("credentialsIssuedTo", "credentialsissuedto", Text),
];

const USER_IDENTITY: &[FieldDef] = &[
    f("type", "type", Text),
    f("principalId", "principalid", Text),
    f("arn", "arn", Text),
    f("accountId", "accountid", Text),
    f("accessKeyId", "accesskeyid", Text),
    f("userName", "username", Text),
    f("sessionContext", "sessioncontext", Struct(SESSION_CONTEXT)),
    f("invokedBy", "invokedby", Text),
    f("identityProvider", "identityprovider", Text),
    f("credentialId", "credentialid", Text),
    f("onBehalfOf", "onbehalfof", Struct(ON_BEHALF_OF)),
    f("inScopeOf", "inscopeof", Struct(IN_SCOPE_OF)),
];

const RESOURCE: &[FieldDef] = &[
    f("ARN", "arn", Text),
    f("accountId", "accountid", Text),
    f("type", "type", Text),
];

const ADDENDUM: &[FieldDef] = &[
    f("reason", "reason", Text),
    f("updatedFields", "updatedfields", Text),
    f("originalRequestID", "originalrequestid", Text),
    f("originalEventID", "originaleventid", Text),
];

const TLS_DETAILS: &[FieldDef] = &[
    f("tlsVersion", "tlsversion", Text),
    f("cipherSuite", "ciphersuite", Text),
    f("clientProvidedHostHeader", "clientprovidedhostheader", Text),
];

/// Every modelled top-level field of a CloudTrail record, in CloudTrail's usual order.
pub const RECORD_FIELDS: &[FieldDef] = &[
    f("eventVersion", "eventversion", Text),
    f("userIdentity", "useridentity", Struct(USER_IDENTITY)),
    f("eventTime", "eventtime", Time),
    f("eventSource", "eventsource", Text),
    f("eventName", "eventname", Text),
    f("awsRegion", "awsregion", Text),
    f("sourceIPAddress", "sourceipaddress", Text),
    f("userAgent", "useragent", Text),
    f("errorCode", "errorcode", Text),
    f("errorMessage", "errormessage", Text),
    f("requestParameters", "requestparameters", Json),
    f("responseElements", "responseelements", Json),
    f("additionalEventData", "additionaleventdata", Json),
    f("requestID", "requestid", Text),
    f("eventID", "eventid", Text),
    f("readOnly", "readonly", Bool),
    f("resources", "resources", ListOfStruct(RESOURCE)),
    f("eventType", "eventtype", Text),
    f("apiVersion", "apiversion", Text),
    f("managementEvent", "managementevent", Bool),
    f("recipientAccountId", "recipientaccountid", Text),
    f("serviceEventDetails", "serviceeventdetails", Json),
    f("sharedEventID", "sharedeventid", Text),
    f("vpcEndpointId", "vpcendpointid", Text),
    f("vpcEndpointAccountId", "vpcendpointaccountid", Text),
    f("eventCategory", "eventcategory", Text),
    f("addendum", "addendum", Struct(ADDENDUM)),
    f(
        "sessionCredentialFromConsole",
        "sessioncredentialfromconsole",
        Text,
    ),
    f("edgeDeviceDetails", "edgedevicedetails", Json),
    f("tlsDetails", "tlsdetails", Struct(TLS_DETAILS)),
    f("insightDetails", "insightdetails", Json),
];

/// Name of the column holding fields the schema does not model, as JSON text.
pub const UNMAPPED_COLUMN: &str = "unmapped";
/// Name of the column holding the object key or path a record came from.
pub const SOURCE_KEY_COLUMN: &str = "sourcekey";
/// The table's name in SQL.
pub const TABLE_NAME: &str = "cloudtrail";

/// Index of the `unmapped` column in [`cloudtrail_schema`].
pub const UNMAPPED_INDEX: usize = RECORD_FIELDS.len();
/// Index of the `sourcekey` column in [`cloudtrail_schema`].
pub const SOURCE_KEY_INDEX: usize = RECORD_FIELDS.len() + 1;
/// Number of columns in [`cloudtrail_schema`].
pub const COLUMN_COUNT: usize = RECORD_FIELDS.len() + 2;

/// Arrow type of a modelled field.
pub fn data_type(kind: &Kind) -> DataType {
    match kind {
        Kind::Text | Kind::Json | Kind::Bool => DataType::Utf8,
        Kind::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Kind::Struct(defs) => DataType::Struct(struct_fields(defs)),
        Kind::ListOfStruct(defs) => DataType::List(Arc::new(Field::new(
            "item",
            DataType::Struct(struct_fields(defs)),
            true,
        ))),
    }
}

/// Arrow fields of a struct described by `defs`.
pub fn struct_fields(defs: &[FieldDef]) -> Fields {
    defs.iter()
        .map(|d| Field::new(d.column, data_type(&d.kind), true))
        .collect()
}

/// The Arrow schema of the `cloudtrail` table.
pub fn cloudtrail_schema() -> SchemaRef {
    static SCHEMA: std::sync::OnceLock<SchemaRef> = std::sync::OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields: Vec<Field> = RECORD_FIELDS
                .iter()
                .map(|d| Field::new(d.column, data_type(&d.kind), true))
                .collect();
            fields.push(Field::new(UNMAPPED_COLUMN, DataType::Utf8, true));
            fields.push(Field::new(
                SOURCE_KEY_COLUMN,
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                false,
            ));
            Arc::new(Schema::new(fields))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_lower_case_and_unique() {
        let schema = cloudtrail_schema();
        let mut seen = std::collections::HashSet::new();
        for field in schema.fields() {
            assert_eq!(field.name(), &field.name().to_lowercase());
            assert!(
                seen.insert(field.name().clone()),
                "duplicate {}",
                field.name()
            );
        }
        assert_eq!(schema.fields().len(), COLUMN_COUNT);
        assert_eq!(schema.field(UNMAPPED_INDEX).name(), UNMAPPED_COLUMN);
        assert_eq!(schema.field(SOURCE_KEY_INDEX).name(), SOURCE_KEY_COLUMN);
    }

    #[test]
    fn athena_columns_are_present() {
        let schema = cloudtrail_schema();
        for name in [
            "eventversion",
            "useridentity",
            "eventtime",
            "eventsource",
            "eventname",
            "awsregion",
            "sourceipaddress",
            "useragent",
            "errorcode",
            "errormessage",
            "requestparameters",
            "responseelements",
            "additionaleventdata",
            "requestid",
            "eventid",
            "readonly",
            "resources",
            "eventtype",
            "apiversion",
            "managementevent",
            "recipientaccountid",
            "serviceeventdetails",
            "sharedeventid",
            "vpcendpointid",
            "vpcendpointaccountid",
            "eventcategory",
            "addendum",
            "sessioncredentialfromconsole",
            "tlsdetails",
            "insightdetails",
            "edgedevicedetails",
        ] {
            assert!(
                schema.field_with_name(name).is_ok(),
                "missing column {name}"
            );
        }
    }
}
