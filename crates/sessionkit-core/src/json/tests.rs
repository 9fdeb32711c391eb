//! The JSON layer against `serde_json`, the reference it replaces: the same values read from the
//! same text, the same inputs refused, the same bytes written.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ErrorKind, from_slice, from_str, to_string};

/// The same value, but for the last bits of a float: `serde_json` (without its
/// `float_roundtrip` feature) may round one off by an ulp; this layer rounds correctly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() && b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            (a - b).abs() <= a.abs().max(b.abs()) * 1e-15
        }
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b)),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

/// Both parsers' verdicts on `text` agree: the same value, or both refuse it.
fn agree(text: &str) {
    let reference = serde_json::from_str::<Value>(text);
    let ours = from_str::<Value>(text);
    match (&reference, &ours) {
        (Ok(expected), Ok(got)) => assert!(same(got, expected), "{text:?}: {got:?} / {expected:?}"),
        (Err(_), Err(_)) => {}
        _ => panic!("{text:?}: serde_json {reference:?}, ours {ours:?}"),
    }
}

/// JSON values without floats (which this layer does not write).
fn values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[\"\\\\/\u{0}-\u{1f}\u{7f}é€😀a-z]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_\"\\\\]{0,6}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn writes_the_bytes_serde_json_writes_and_reads_them_back(value in values()) {
        let ours = to_string(&value).unwrap();
        prop_assert_eq!(&ours, &serde_json::to_string(&value).unwrap());
        prop_assert_eq!(from_str::<Value>(&ours).unwrap(), value.clone());
        agree(&serde_json::to_string_pretty(&value).unwrap());
    }

    #[test]
    fn a_damaged_document_gets_the_same_verdict(
        value in values(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), "[\\[\\]{}\",:\\\\ 0-9eE.+\\-a-zu]{0,2}", 0..3usize), 1..4),
    ) {
        let mut text = serde_json::to_string(&value).unwrap();
        for (at, insert, remove) in edits {
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + remove).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(at..end, &insert);
        }
        agree(&text);
    }

    #[test]
    fn short_texts_get_the_same_verdict(text in "[\\[\\]{}\",:\\\\ 0-9eE.+\\-a-z]{0,16}") {
        agree(&text);
    }

    #[test]
    fn numbers_read_as_serde_json_reads_them(text in "-?(0|[1-9][0-9]{0,22})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?") {
        agree(&text);
    }
}

#[test]
fn edge_cases_get_the_same_verdict() {
    for text in [
        "",
        " ",
        "null",
        "nul",
        "true ",
        " false",
        "0",
        "-0",
        "-",
        "01",
        "1.",
        ".5",
        "1e",
        "1e+",
        "1E-2",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "1e400",
        "-1e400",
        "1e-400",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{a:1}",
        "{\"a\":1}x",
        "\"\\u00e9\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\ud83dx\"",
        "\"\\u12\"",
        "\"\\x\"",
        "\"a\nb\"",
        "\"\u{7f}\"",
        "{\"a\":1,\"a\":2}",
        "[\"unterminated",
        "\u{feff}{}",
    ] {
        agree(text);
    }
}

#[test]
fn nesting_is_limited_where_serde_json_limits_it() {
    for depth in 120..136 {
        agree(&format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        agree(&format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)));
    }
    let deep = "[".repeat(100_000);
    assert_eq!(from_str::<Value>(&deep).unwrap_err().kind(), ErrorKind::TooDeep, "no stack overflow");
}

#[test]
fn bytes_that_are_not_utf8_are_refused() {
    assert_eq!(from_slice::<Value>(b"\"\xff\"").unwrap_err().kind(), ErrorKind::NotUtf8);
    assert_eq!(from_slice::<Value>(b"{\"a\":\"\xc3\xa9\"}").unwrap(), serde_json::json!({"a": "é"}));
}

/// The derives the core uses: options, defaults, renames, skipped fields, unknown fields,
/// unit-variant enums, transparent newtypes, borrowed strings, sequences in place of structs.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    FirstKind,
    Other,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct Name(String);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Shape {
    id: u32,
    #[serde(rename = "use")]
    use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(default)]
    count: i64,
    kind: Kind,
    name: Name,
    tags: Vec<String>,
}

#[test]
fn typed_documents_read_and_write_as_with_serde_json() {
    let texts = [
        r#"{"id":1,"use":"sig","kind":"first_kind","name":"n","tags":["a","b\u0000"],"extra":{"x":[1,2,{"y":null}]}}"#,
        r#"{"id":1,"use":null,"kind":"other","name":"n","tags":[],"count":-5,"note":"x"}"#,
        r#"[7,"sig",null,3,"other","n",[]]"#,
        r#"{"id":1,"kind":"other","name":"n","tags":[]}"#,
        r#"{"id":1,"use":"sig","kind":"third","name":"n","tags":[]}"#,
        r#"{"id":-1,"use":"sig","kind":"other","name":"n","tags":[]}"#,
        r#"{"id":1.5,"use":"sig","kind":"other","name":"n","tags":[]}"#,
        r#"{"id":1,"id":2,"use":"sig","kind":"other","name":"n","tags":[]}"#,
        r#"{"id":"1","use":"sig","kind":"other","name":"n","tags":[]}"#,
        r#"{"use":"sig","kind":"other","name":"n","tags":[]}"#,
    ];
    for text in texts {
        let reference = serde_json::from_str::<Shape>(text);
        let ours = from_str::<Shape>(text);
        assert_eq!(ours.is_ok(), reference.is_ok(), "{text}: {ours:?} / {reference:?}");
        if let (Ok(ours), Ok(reference)) = (ours, reference) {
            assert_eq!(ours, reference);
            assert_eq!(to_string(&ours).unwrap(), serde_json::to_string(&reference).unwrap());
        }
    }
    let missing = from_str::<Shape>(r#"{"use":"sig","kind":"other","name":"n","tags":[]}"#).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::MissingField("id"));
    assert_eq!(missing.to_string(), "the field id is missing");

    #[derive(Deserialize)]
    struct Borrowing<'a> {
        text: &'a str,
    }
    assert_eq!(from_str::<Borrowing<'_>>(r#"{"text":"plain"}"#).unwrap().text, "plain");
    assert!(from_str::<Borrowing<'_>>(r#"{"text":"esc\"aped"}"#).is_err(), "as serde_json: not borrowable");
}

#[test]
fn errors_never_carry_the_input() {
    let secret = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln";
    for text in [
        format!(r#"{{"id":"{secret}","use":"sig","kind":"other","name":"n","tags":[]}}"#),
        format!(r#"{{"id":1,"use":"sig","kind":"{secret}","name":"n","tags":[]}}"#),
        format!(r#"{{"id":1,"use":"sig","kind":"other","name":"n","tags":[]}}{secret}"#),
        format!(r#"{{"id":1,"use":"{secret}\x"}}"#),
    ] {
        let error = from_str::<Shape>(&text).unwrap_err();
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains("eyJ") && !shown.contains("c2Vj"), "{shown}");
        }
    }
}

#[test]
fn floats_and_keys_that_are_not_strings_are_not_written() {
    assert_eq!(to_string(&1.5f64).unwrap_err().kind(), ErrorKind::Unsupported);
    let map: std::collections::BTreeMap<u8, u8> = [(1, 2)].into_iter().collect();
    assert_eq!(to_string(&map).unwrap_err().kind(), ErrorKind::Unsupported);
    let map: std::collections::BTreeMap<&str, Kind> = [("k", Kind::FirstKind)].into_iter().collect();
    assert_eq!(to_string(&map).unwrap(), r#"{"k":"first_kind"}"#);
}
