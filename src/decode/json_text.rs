//! Writing a parsed JSON value (a slice of simd-json's tape) back out as JSON text.
//!
//! Free-form CloudTrail fields (`requestParameters`, `responseElements`, …) are kept as JSON
//! text. simd-json unescapes strings in place while parsing, so the original text is gone by
//! the time a field is reached; this module re-serializes the subtree instead. The output
//! parses to the same value as the input.

use simd_json::{Node, StaticNode};

/// Number of tape nodes taken by the value that starts at `nodes[0]` (its whole subtree).
#[inline]
pub fn value_len(nodes: &[Node<'_>]) -> usize {
    match nodes[0] {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

/// How deeply the value at `nodes[0]` nests: 0 for a string, number, `true`, `false` or
/// `null`, 1 for an object or array of those, and so on. Walks the tape without recursion.
pub fn depth(nodes: &[Node<'_>]) -> usize {
    let end = value_len(nodes).min(nodes.len());
    // The tape positions where the containers open so far end, innermost last.
    let mut open: Vec<usize> = Vec::new();
    let mut deepest = 0;
    for (i, node) in nodes[..end].iter().enumerate() {
        while open.last().is_some_and(|&close| close <= i) {
            open.pop();
        }
        if let Node::Object { count, .. } | Node::Array { count, .. } = node {
            open.push(i + 1 + count);
            deepest = deepest.max(open.len());
        }
    }
    deepest
}

/// Appends the JSON text of the value at `nodes[0]` to `out`.
pub fn write_value(nodes: &[Node<'_>], out: &mut Vec<u8>) {
    write_at(nodes, 0, out);
}

fn write_at(nodes: &[Node<'_>], at: usize, out: &mut Vec<u8>) -> usize {
    // A slice cut short of its containers' contents (a caller's defect) ends in nulls rather
    // than out of bounds.
    let Some(&node) = nodes.get(at) else {
        out.extend_from_slice(b"null");
        return at + 1;
    };
    match node {
        Node::String(s) => {
            write_string(s, out);
            at + 1
        }
        Node::Static(value) => {
            write_static(value, out);
            at + 1
        }
        Node::Object { len, .. } => {
            out.push(b'{');
            let mut i = at + 1;
            for n in 0..len {
                if n > 0 {
                    out.push(b',');
                }
                if let Some(Node::String(key)) = nodes.get(i) {
                    write_string(key, out);
                }
                out.push(b':');
                i = write_at(nodes, i + 1, out);
            }
            out.push(b'}');
            i
        }
        Node::Array { len, .. } => {
            out.push(b'[');
            let mut i = at + 1;
            for n in 0..len {
                if n > 0 {
                    out.push(b',');
                }
                i = write_at(nodes, i, out);
            }
            out.push(b']');
            i
        }
    }
}

fn write_static(value: StaticNode, out: &mut Vec<u8>) {
    match value {
        StaticNode::Null => out.extend_from_slice(b"null"),
        StaticNode::Bool(true) => out.extend_from_slice(b"true"),
        StaticNode::Bool(false) => out.extend_from_slice(b"false"),
        StaticNode::I64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        StaticNode::U64(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        StaticNode::F64(x) => {
            if x.is_finite() {
                out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
            } else {
                out.extend_from_slice(b"null");
            }
        }
    }
}

/// Appends `s` as a JSON string literal, escaping what JSON requires.
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(text: &str) -> serde_json::Value {
        let mut input = text.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut input).expect("valid JSON");
        let mut out = Vec::new();
        write_value(&tape.0, &mut out);
        assert_eq!(value_len(&tape.0), tape.0.len());
        serde_json::from_slice(&out).expect("output is JSON")
    }

    #[test]
    fn depth_counts_nesting() {
        for (text, expected) in [
            ("1", 0),
            ("[]", 1),
            ("{\"a\":[1,{\"b\":2}],\"c\":{}}", 3),
            ("[[[[]]],[]]", 4),
        ] {
            let mut input = text.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut input).expect("valid JSON");
            assert_eq!(depth(&tape.0), expected, "{text}");
        }
    }

    #[test]
    fn nested_values_survive() {
        let text = r#"{"a":[1,-2,3.5,1.0,true,null,"x\"y\\z\n\u0001é"],"b":{},"c":[],"d":{"e":{"f":18446744073709551615}}}"#;
        let original: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(round_trip(text), original);
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<u64>().prop_map(|n| serde_json::json!(n)),
            (-1e15f64..1e15).prop_map(|x| serde_json::json!(x)),
            any::<String>().prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_round_trips(value in json_value()) {
            let text = serde_json::to_string(&value).unwrap();
            prop_assert_eq!(round_trip(&text), value);
        }
    }
}
