//! Text search for detections:
//!
//! * `icontains_any(text, needle, ...)`: true when `text` holds any of the needles, ignoring
//!   ASCII case; NULL when `text` is NULL. The needles must be constants. One pass over each
//!   value finds them all, where `strpos(lower(text), ...)` for each needle makes a lower-cased
//!   copy of the column and a pass per needle: the way to match a user agent against a list of
//!   tools.

use std::sync::{Arc, Mutex, OnceLock};

use ahash::HashMap;

use aho_corasick::AhoCorasick;
use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
struct IContainsAny {
    signature: Signature,
}

impl IContainsAny {
    fn new() -> Self {
        Self {
            signature: Signature::one_of(vec![TypeSignature::VariadicAny], Volatility::Immutable),
        }
    }
}

/// The needles: every argument after the first, each a constant string.
fn needles(args: &[ColumnarValue]) -> Result<Vec<String>> {
    if args.len() < 2 {
        return exec_err!("icontains_any(text, needle, ...) needs at least one needle");
    }
    args[1..]
        .iter()
        .map(|a| match a {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
            ) => Ok(s.clone()),
            _ => exec_err!("icontains_any: each needle must be a constant string"),
        })
        .collect()
}

/// The searcher for `needles`, built once per list (a query calls the function per batch).
fn finder(needles: Vec<String>) -> Result<Arc<AhoCorasick>> {
    static BUILT: OnceLock<Mutex<HashMap<Vec<String>, Arc<AhoCorasick>>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(f) = built.get(&needles) {
        return Ok(f.clone());
    }
    let f = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(&needles)
        .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?;
    let f = Arc::new(f);
    built.insert(needles, f.clone());
    Ok(f)
}

impl ScalarUDFImpl for IContainsAny {
    fn name(&self) -> &str {
        "icontains_any"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if args.len() < 2 {
            return exec_err!("icontains_any(text, needle, ...) needs at least one needle");
        }
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let finder = finder(needles(&args.args)?)?;
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let text = args.args[0].to_array(args.number_rows)?;
        let text = datafusion::arrow::compute::cast(&text, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        // A column holds few distinct user agents: each is searched once per batch.
        let mut seen: HashMap<&str, bool> = HashMap::default();
        let found: BooleanArray = text
            .iter()
            .map(|t| t.map(|t| *seen.entry(t).or_insert_with(|| finder.is_match(t))))
            .collect();
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &found, 0,
            )?));
        }
        Ok(ColumnarValue::Array(Arc::new(found)))
    }
}

/// The text functions, for registering on a session.
pub fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(IContainsAny::new())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn query(sql: &str) -> Vec<Option<bool>> {
        let ctx = SessionContext::new();
        for f in functions() {
            ctx.register_udf(f);
        }
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches
            .iter()
            .flat_map(|b| b.column(0).as_boolean().iter().collect::<Vec<_>>())
            .collect()
    }

    #[tokio::test]
    async fn finds_any_needle_in_any_case() {
        let got = query(
            "SELECT icontains_any(t, 'prowler', 'scout suite') FROM (VALUES \
             ('Prowler/3.0'), ('aws-cli/2 Scout Suite/5'), ('boto3/1.34'), (NULL)) AS v(t)",
        )
        .await;
        assert_eq!(got, vec![Some(true), Some(true), Some(false), None]);
    }

    #[tokio::test]
    async fn a_needle_must_be_a_constant() {
        let ctx = SessionContext::new();
        for f in functions() {
            ctx.register_udf(f);
        }
        let err = ctx
            .sql("SELECT icontains_any(t, t) FROM (VALUES ('a')) AS v(t)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("constant string"), "{err}");
    }
}
