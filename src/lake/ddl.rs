//! Athena (Glue) DDL for a lake: the three tables, typed from the files' own schemas, with
//! partition projection, so that no crawler or `MSCK REPAIR TABLE` is needed as days and
//! accounts are added.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

use datafusion::arrow::datatypes::{DataType, SchemaRef};

use super::findings::findings_schema;
use super::write::RecordTable;
use super::{read::table_name, FINDINGS_DIR, UNKNOWN};

/// What the DDL needs to know beyond the schemas.
#[derive(Debug, Clone)]
pub struct DdlOptions {
    /// The lake's S3 location, `s3://bucket/prefix` (no trailing slash).
    pub location: String,
    /// The Athena database the tables go in.
    pub database: String,
    /// Accounts the `account` partition may take.
    pub accounts: Vec<String>,
    /// Regions the `region` partition may take.
    pub regions: Vec<String>,
    /// First date of the `date` projection, `YYYY-MM-DD`.
    pub since: String,
}

/// Every commercial region CloudTrail logs in, for the `region` projection when the lake
/// names none.
pub const REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
];

/// The Hive (Athena) type of an Arrow type.
pub fn hive_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Dictionary(_, value) => hive_type(value),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::List(item) | DataType::LargeList(item) => {
            format!("array<{}>", hive_type(item.data_type()))
        }
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), hive_type(f.data_type())))
                .collect();
            format!("struct<{}>", inner.join(","))
        }
        _ => "string".into(),
    }
}

/// The accounts and regions the lake's partitions name (from its directories).
pub fn partition_values(root: &Path) -> (Vec<String>, Vec<String>) {
    let mut accounts = BTreeSet::new();
    let mut regions = BTreeSet::new();
    for table in [RecordTable::CloudTrail, RecordTable::Invocations] {
        let dir = root.join(table.dir());
        for entry in walkdir::WalkDir::new(&dir)
            .min_depth(2)
            .max_depth(3)
            .into_iter()
            .flatten()
        {
            if !entry.file_type().is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy();
            if let Some(a) = name.strip_prefix("account=") {
                if a != UNKNOWN {
                    accounts.insert(a.to_string());
                }
            } else if let Some(r) = name.strip_prefix("region=") {
                if r != UNKNOWN {
                    regions.insert(r.to_string());
                }
            }
        }
    }
    (
        accounts.into_iter().collect(),
        regions.into_iter().collect(),
    )
}

fn columns(schema: &SchemaRef) -> String {
    let lines: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("  `{}` {}", f.name(), hive_type(f.data_type())))
        .collect();
    lines.join(",\n")
}

/// Table properties projecting `date` as days from `since` to today.
fn date_projection(since: &str) -> String {
    format!(
        "  'projection.enabled'='true',\n  'projection.date.type'='date',\n  \
         'projection.date.format'='yyyy-MM-dd',\n  'projection.date.range'='{since},NOW',\n  \
         'projection.date.interval'='1',\n  'projection.date.interval.unit'='DAYS',\n"
    )
}

/// `CREATE DATABASE` and the three `CREATE EXTERNAL TABLE` statements.
pub fn athena_ddl(options: &DdlOptions) -> String {
    let mut out = String::new();
    let db = &options.database;
    let location = options.location.trim_end_matches('/');
    let mut accounts = options.accounts.clone();
    accounts.push(UNKNOWN.into());
    let mut regions = if options.regions.is_empty() {
        REGIONS.iter().map(|r| r.to_string()).collect()
    } else {
        options.regions.clone()
    };
    regions.push(UNKNOWN.into());
    let _ = writeln!(out, "CREATE DATABASE IF NOT EXISTS {db};\n");
    for table in [RecordTable::CloudTrail, RecordTable::Invocations] {
        let name = table_name(table);
        let dir = table.dir();
        let _ = writeln!(
            out,
            "CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{name} (\n{}\n)\n\
             PARTITIONED BY (`date` string, `account` string, `region` string)\n\
             STORED AS PARQUET\n\
             LOCATION '{location}/{dir}/'\n\
             TBLPROPERTIES (\n\
             \x20 'parquet.compression'='ZSTD',\n\
             {}\
             \x20 'projection.account.type'='enum',\n\
             \x20 'projection.account.values'='{}',\n\
             \x20 'projection.region.type'='enum',\n\
             \x20 'projection.region.values'='{}',\n\
             \x20 'storage.location.template'='{location}/{dir}/date=${{date}}/account=${{account}}/region=${{region}}/'\n\
             );\n",
            columns(&table.file_schema()),
            date_projection(&options.since),
            accounts.join(","),
            regions.join(","),
        );
    }
    let _ = writeln!(
        out,
        "CREATE EXTERNAL TABLE IF NOT EXISTS {db}.{FINDINGS_DIR} (\n{}\n)\n\
         PARTITIONED BY (`date` string)\n\
         STORED AS PARQUET\n\
         LOCATION '{location}/{FINDINGS_DIR}/'\n\
         TBLPROPERTIES (\n\
         {}\
         \x20 'storage.location.template'='{location}/{FINDINGS_DIR}/date=${{date}}/'\n\
         );",
        columns(&findings_schema()),
        date_projection(&options.since),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ddl() -> String {
        athena_ddl(&DdlOptions {
            location: "s3://lake-bucket/trailhound".into(),
            database: "trailhound".into(),
            accounts: vec!["111122223333".into()],
            regions: vec![],
            since: "2024-01-01".into(),
        })
    }

    #[test]
    fn nested_types_are_hive_types() {
        let schema = RecordTable::CloudTrail.file_schema();
        let identity = schema.field_with_name("useridentity").unwrap();
        let t = hive_type(identity.data_type());
        assert!(
            t.starts_with("struct<type:string,principalid:string,"),
            "{t}"
        );
        assert!(t.contains("sessioncontext:struct<attributes:struct<creationdate:string"));
        let resources = schema.field_with_name("resources").unwrap();
        assert_eq!(
            hive_type(resources.data_type()),
            "array<struct<arn:string,accountid:string,type:string>>"
        );
        assert_eq!(
            hive_type(schema.field_with_name("eventtime").unwrap().data_type()),
            "timestamp"
        );
        assert_eq!(
            hive_type(schema.field_with_name("sourcekey").unwrap().data_type()),
            "string"
        );
    }

    #[test]
    fn the_ddl_parses_as_hive_sql_and_projects_every_partition() {
        use datafusion::sql::sqlparser::dialect::HiveDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let text = ddl();
        // sqlparser reads Hive's statements but not its nested type syntax: each column type
        // is checked against Hive's type grammar here, then the statements with plain types.
        let mut plain = String::new();
        for line in text.lines() {
            match line.strip_prefix("  `").and_then(|l| l.split_once("` ")) {
                Some((name, rest)) => {
                    let ty = rest.trim_end_matches(',');
                    assert!(is_hive_type(ty), "column {name}: {ty:?} is not a Hive type");
                    let comma = if rest.ends_with(',') { "," } else { "" };
                    plain.push_str(&format!("  `{name}` string{comma}\n"));
                }
                None => {
                    plain.push_str(line);
                    plain.push('\n');
                }
            }
        }
        let statements =
            Parser::parse_sql(&HiveDialect {}, &plain).unwrap_or_else(|e| panic!("{e}\n{plain}"));
        assert_eq!(statements.len(), 4);
        assert!(text.contains(
            "'storage.location.template'='s3://lake-bucket/trailhound/cloudtrail/date=${date}/account=${account}/region=${region}/'"
        ));
        assert!(text.contains("'projection.account.values'='111122223333,unknown'"));
        assert!(text.contains("'projection.region.values'='us-east-1,us-east-2,"));
        assert!(text.contains("LOCATION 's3://lake-bucket/trailhound/findings/'"));
        // The Bedrock table's region is its partition's, not a column of the files.
        let bedrock = text.split("bedrock_invocations (").nth(1).unwrap();
        let columns = bedrock.split("PARTITIONED").next().unwrap();
        assert!(!columns.contains("`region`"), "{columns}");
    }

    /// Hive's type grammar: a primitive, `array<T>` or `struct<name:T,...>`.
    fn is_hive_type(text: &str) -> bool {
        fn parse(s: &str) -> Option<&str> {
            let primitives = [
                "string",
                "bigint",
                "int",
                "double",
                "float",
                "boolean",
                "timestamp",
                "date",
            ];
            for p in primitives {
                if let Some(rest) = s.strip_prefix(p) {
                    if !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                        return Some(rest);
                    }
                }
            }
            if let Some(rest) = s.strip_prefix("array<") {
                return parse(rest)?.strip_prefix('>');
            }
            let mut rest = s.strip_prefix("struct<")?;
            loop {
                let (name, after) = rest.split_once(':')?;
                let well_named = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !well_named {
                    return None;
                }
                rest = parse(after)?;
                match rest.strip_prefix(',') {
                    Some(r) => rest = r,
                    None => return rest.strip_prefix('>'),
                }
            }
        }
        parse(text) == Some("")
    }

    #[test]
    fn the_type_grammar_check_rejects_what_hive_would() {
        assert!(is_hive_type("struct<a:string,b:array<struct<c:bigint>>>"));
        assert!(!is_hive_type("struct<a string>"));
        assert!(!is_hive_type("array<string"));
        assert!(!is_hive_type("struct<a:string,>"));
        assert!(!is_hive_type("varchar"));
    }

    #[test]
    fn accounts_and_regions_come_from_the_directories() {
        let dir = tempfile::tempdir().unwrap();
        for p in [
            "cloudtrail/date=2026-10-05/account=111122223333/region=us-east-1",
            "cloudtrail/date=2026-10-05/account=444455556666/region=eu-west-1",
            "cloudtrail/date=2026-10-06/account=unknown/region=unknown",
        ] {
            std::fs::create_dir_all(dir.path().join(p)).unwrap();
        }
        let (accounts, regions) = partition_values(dir.path());
        assert_eq!(accounts, vec!["111122223333", "444455556666"]);
        assert_eq!(regions, vec!["eu-west-1", "us-east-1"]);
    }
}
