//! Presto/Athena JSON functions, so a hunting query pasted from Athena runs unchanged:
//! `json_extract_scalar(json, '$.path')` and `json_extract(json, '$.path')`.
//!
//! Paths take the JSONPath subset Athena documents for these functions: `$`, `.name`,
//! `["name"]` or `['name']`, and `[index]`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// Parses a JSONPath of the Athena subset into steps.
pub fn parse_path(path: &str) -> std::result::Result<Vec<PathStep>, String> {
    let path = path.trim();
    let rest = path
        .strip_prefix('$')
        .ok_or_else(|| format!("JSON path {path:?} must start with `$`"))?;
    let mut steps = Vec::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                if end == start {
                    return Err(format!("JSON path {path:?} has an empty name"));
                }
                steps.push(PathStep::Key(chars[start..end].iter().collect()));
                i = end;
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .map(|p| p + i)
                    .ok_or_else(|| format!("JSON path {path:?} has an unclosed `[`"))?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if let Some(quoted) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    steps.push(PathStep::Key(quoted.to_string()));
                } else {
                    let index = inner
                        .parse()
                        .map_err(|_| format!("JSON path {path:?}: `[{inner}]` is not an index"))?;
                    steps.push(PathStep::Index(index));
                }
                i = close + 1;
            }
            c => return Err(format!("JSON path {path:?}: unexpected `{c}`")),
        }
    }
    Ok(steps)
}

fn lookup<'v>(value: &'v serde_json::Value, steps: &[PathStep]) -> Option<&'v serde_json::Value> {
    steps.iter().try_fold(value, |v, step| match step {
        PathStep::Key(k) => v.get(k.as_str()),
        PathStep::Index(i) => v.get(*i),
    })
}

/// `json_extract_scalar`: a scalar as text; objects, arrays and JSON null give SQL NULL.
pub fn extract_scalar(json: &str, steps: &[PathStep]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    match lookup(&value, steps)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `json_extract`: the value at the path as JSON text.
pub fn extract_json(json: &str, steps: &[PathStep]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    lookup(&value, steps).map(serde_json::Value::to_string)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonExtract {
    name: &'static str,
    scalar: bool,
    signature: Signature,
}

impl ScalarUDFImpl for JsonExtract {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [json, path] = arrays.as_slice() else {
            return exec_err!("{} takes two arguments: a JSON text and a path", self.name);
        };
        let json = datafusion::arrow::compute::cast(json, &DataType::Utf8)?;
        let path = datafusion::arrow::compute::cast(path, &DataType::Utf8)?;
        let (json, path) = (json.as_string::<i32>(), path.as_string::<i32>());
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        let mut parsed: Option<(String, Vec<PathStep>)> = None;
        for row in 0..json.len() {
            if json.is_null(row) || path.is_null(row) {
                out.append_null();
                continue;
            }
            let p = path.value(row);
            if parsed.as_ref().is_none_or(|(text, _)| text != p) {
                let steps = match parse_path(p) {
                    Ok(steps) => steps,
                    Err(e) => return exec_err!("{}: {e}", self.name),
                };
                parsed = Some((p.to_string(), steps));
            }
            let steps = &parsed.as_ref().expect("parsed above").1;
            let value = if self.scalar {
                extract_scalar(json.value(row), steps)
            } else {
                extract_json(json.value(row), steps)
            };
            out.append_option(value);
        }
        let result: ArrayRef = Arc::new(out.finish());
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(result))
    }
}

fn udf(name: &'static str, scalar: bool) -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonExtract {
        name,
        scalar,
        signature: super::string_signature(2),
    })
}

/// The Athena-compatible functions, for registering on a session.
pub fn functions() -> Vec<ScalarUDF> {
    vec![udf("json_extract_scalar", true), udf("json_extract", false)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("$.a[\"b c\"][2].d").unwrap(),
            vec![
                PathStep::Key("a".into()),
                PathStep::Key("b c".into()),
                PathStep::Index(2),
                PathStep::Key("d".into())
            ]
        );
        assert_eq!(parse_path("$").unwrap(), vec![]);
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$.a[").is_err());
    }

    #[test]
    fn extraction_follows_athena() {
        let doc = r#"{"keyId":"k1","n":3,"ok":true,"obj":{"x":[1,"two"]},"nil":null}"#;
        let at = |p: &str| parse_path(p).unwrap();
        assert_eq!(extract_scalar(doc, &at("$.keyId")).as_deref(), Some("k1"));
        assert_eq!(extract_scalar(doc, &at("$.n")).as_deref(), Some("3"));
        assert_eq!(extract_scalar(doc, &at("$.ok")).as_deref(), Some("true"));
        assert_eq!(
            extract_scalar(doc, &at("$.obj.x[1]")).as_deref(),
            Some("two")
        );
        assert_eq!(extract_scalar(doc, &at("$.obj")), None);
        assert_eq!(extract_scalar(doc, &at("$.nil")), None);
        assert_eq!(extract_scalar(doc, &at("$.missing")), None);
        assert_eq!(
            extract_json(doc, &at("$.obj.x")).as_deref(),
            Some(r#"[1,"two"]"#)
        );
        assert_eq!(extract_scalar("not json", &at("$.a")), None);
    }
}
