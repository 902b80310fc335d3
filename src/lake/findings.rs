//! The lake's `findings` table: one row per finding, flat enough to join with `cloudtrail`
//! (`JOIN cloudtrail ON array_has(f.eventids, c.eventid)`, or `UNNEST(eventids)`).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::write::{LakeWriter, Written};
use super::{date_value, stable_name, LakeError, FINDINGS_DIR};
use crate::finding::Finding;

/// The schema of the lake's `findings` files (partitioned by `date`, the first event's).
pub fn findings_schema() -> SchemaRef {
    let time = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let list = |name: &str| {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        )
    };
    Arc::new(Schema::new(vec![
        text("id"),
        text("detection"),
        text("type"),
        Field::new("severity", DataType::Float64, true),
        text("title"),
        text("description"),
        text("category"),
        list("mitre"),
        text("accountid"),
        text("awsregion"),
        Field::new("firstseen", time(), true),
        Field::new("lastseen", time(), true),
        Field::new("count", DataType::Int64, true),
        list("eventids"),
        text("principaltype"),
        text("principalarn"),
        text("username"),
        text("accesskeyid"),
        text("eventname"),
        text("eventsource"),
        text("sourceipaddress"),
        text("useragent"),
        text("groupjson"),
        Field::new("createdat", time(), true),
    ]))
}

/// `findings` as rows of [`findings_schema`].
pub fn findings_batch(findings: &[Finding]) -> Result<RecordBatch, LakeError> {
    let text = |f: &dyn Fn(&Finding) -> Option<String>| -> ArrayRef {
        Arc::new(findings.iter().map(f).collect::<StringArray>())
    };
    let list = |f: &dyn Fn(&Finding) -> &[String]| -> ArrayRef {
        let mut builder = ListBuilder::new(StringBuilder::new());
        for finding in findings {
            for value in f(finding) {
                builder.values().append_value(value);
            }
            builder.append(true);
        }
        Arc::new(builder.finish())
    };
    let time = |f: &dyn Fn(&Finding) -> i64| -> ArrayRef {
        Arc::new(
            findings
                .iter()
                .map(|x| Some(f(x)))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        text(&|f| Some(f.id.clone())),
        text(&|f| Some(f.detection.clone())),
        text(&|f| Some(f.finding_type.clone())),
        Arc::new(
            findings
                .iter()
                .map(|f| Some(f.severity))
                .collect::<Float64Array>(),
        ),
        text(&|f| Some(f.title.clone())),
        text(&|f| Some(f.description.clone())),
        text(&|f| Some(f.category.clone())),
        list(&|f| &f.mitre),
        text(&|f| Some(f.account.clone())),
        text(&|f| Some(f.region.clone())),
        time(&|f| f.first_seen),
        time(&|f| f.last_seen),
        Arc::new(
            findings
                .iter()
                .map(|f| Some(f.count as i64))
                .collect::<Int64Array>(),
        ),
        list(&|f| &f.event_ids),
        text(&|f| Some(f.principal.user_type.clone())),
        text(&|f| Some(f.principal.arn.clone())),
        text(&|f| Some(f.principal.user_name.clone())),
        text(&|f| Some(f.principal.access_key_id.clone())),
        text(&|f| Some(f.action.api.clone())),
        text(&|f| Some(f.action.service_name.clone())),
        text(&|f| {
            f.action
                .ip_address
                .clone()
                .or_else(|| f.action.domain.clone())
        }),
        text(&|f| f.action.user_agent.clone()),
        text(&|f| serde_json::to_string(&f.group).ok()),
        time(&|f| f.created_at.timestamp_micros()),
    ];
    Ok(RecordBatch::try_new(findings_schema(), columns)?)
}

/// Writes `findings` under `findings/date=D/`, by the date of each one's first event, one file
/// per date named after the findings in it (the same findings again replace the file).
pub fn write_findings(writer: &LakeWriter, findings: &[Finding]) -> Result<Written, LakeError> {
    let mut by_date: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    for f in findings {
        by_date
            .entry(date_value(Some(f.first_seen)))
            .or_default()
            .push(f.clone());
    }
    let mut written = Written::default();
    for (date, mut day) in by_date {
        day.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = day.iter().map(|f| f.id.as_str()).collect();
        let name = format!("findings-{}", stable_name(&ids.join(",")));
        let dir = writer
            .root()
            .join(FINDINGS_DIR)
            .join(format!("date={date}"));
        let batch = findings_batch(&day)?;
        written += writer.write_file(&dir, &name, &findings_schema(), &[batch])?;
    }
    Ok(written)
}

/// Writes each of `findings` to a file of its own under `findings/date=D/` (the date of its
/// first event), named after its id: the daemon's way, where a finding is written again, with
/// more records, by each batch that adds to it. The new version replaces the old one, so the
/// table holds one row per finding. (Only if a later record moves a finding's first event to an
/// earlier day does its older version stay under the later date: keep the row with the greatest
/// `lastseen` for an id.)
pub fn write_each_finding(writer: &LakeWriter, findings: &[Finding]) -> Result<Written, LakeError> {
    let mut written = Written::default();
    for f in findings {
        let dir = writer
            .root()
            .join(FINDINGS_DIR)
            .join(format!("date={}", date_value(Some(f.first_seen))));
        let name = format!("finding-{}", stable_name(&f.id));
        let batch = findings_batch(std::slice::from_ref(f))?;
        written += writer.write_file(&dir, &name, &findings_schema(), &[batch])?;
    }
    Ok(written)
}
