//! `export.schema.json` against what the Writer produces, with a small validator for exactly
//! the subset of JSON Schema 2020-12 the file uses: an unknown keyword or pattern fails the
//! test, so the file cannot say more than is checked here.

mod common;

use audit::{Actor, Audit, Item, Remap, Writer, hash};
use common::{TENANT, header, items};
use serde_json::{Map, Value, json};
use uuid::Uuid;

fn schema() -> Value {
    serde_json::from_str(include_str!("../export.schema.json")).unwrap()
}

/// Validates `v` against `s` (`root` holds the `$defs`); `Err` says where it failed.
fn validate(root: &Value, s: &Value, v: &Value, at: &str) -> Result<(), String> {
    let s = s.as_object().unwrap_or_else(|| panic!("{at}: a schema must be an object"));
    for (k, arg) in s {
        let ok = match k.as_str() {
            "$schema" | "title" | "description" | "$defs" | "format" => true,
            "$ref" => {
                let name = arg.as_str().unwrap().strip_prefix("#/$defs/").expect("local $refs only");
                validate(root, &root["$defs"][name], v, at)?;
                true
            }
            "type" => match arg {
                Value::String(t) => has_type(v, t),
                Value::Array(ts) => ts.iter().any(|t| has_type(v, t.as_str().unwrap())),
                _ => panic!("{at}: bad type"),
            },
            "const" => v == arg,
            "enum" => arg.as_array().unwrap().contains(v),
            "minLength" => v.as_str().is_none_or(|x| x.chars().count() as u64 >= arg.as_u64().unwrap()),
            "maxLength" => v.as_str().is_none_or(|x| x.chars().count() as u64 <= arg.as_u64().unwrap()),
            "minimum" => v.as_f64().is_none_or(|x| x >= arg.as_f64().unwrap()),
            "pattern" => v.as_str().is_none_or(|x| matches_pattern(arg.as_str().unwrap(), x)),
            "required" => v
                .as_object()
                .is_none_or(|o| arg.as_array().unwrap().iter().all(|r| o.contains_key(r.as_str().unwrap()))),
            "properties" => {
                if let Some(o) = v.as_object() {
                    for (name, sub) in arg.as_object().unwrap() {
                        if let Some(x) = o.get(name) {
                            validate(root, sub, x, &format!("{at}.{name}"))?;
                        }
                    }
                }
                true
            }
            "additionalProperties" => match v.as_object() {
                None => true,
                Some(o) => {
                    let known = s.get("properties").and_then(Value::as_object).cloned().unwrap_or_else(Map::new);
                    for (name, x) in o.iter().filter(|(name, _)| !known.contains_key(*name)) {
                        match arg {
                            Value::Bool(false) => return Err(format!("{at}: property {name:?} is not allowed")),
                            sub => validate(root, sub, x, &format!("{at}.{name}"))?,
                        }
                    }
                    true
                }
            },
            "propertyNames" => match v.as_object() {
                None => true,
                Some(o) => o.keys().all(|name| validate(root, arg, &json!(name), at).is_ok()),
            },
            "items" => match v.as_array() {
                None => true,
                Some(a) => {
                    for (i, x) in a.iter().enumerate() {
                        validate(root, arg, x, &format!("{at}[{i}]"))?;
                    }
                    true
                }
            },
            "not" => validate(root, arg, v, at).is_err(),
            "anyOf" => arg.as_array().unwrap().iter().any(|sub| validate(root, sub, v, at).is_ok()),
            "oneOf" => arg.as_array().unwrap().iter().filter(|sub| validate(root, sub, v, at).is_ok()).count() == 1,
            other => panic!("{at}: the test's validator does not know the keyword {other:?}"),
        };
        if !ok {
            return Err(format!("{at}: fails {k}: {arg}"));
        }
    }
    Ok(())
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        other => panic!("unknown type {other}"),
    }
}

/// The schema's patterns, each checked by hand.
fn matches_pattern(pattern: &str, s: &str) -> bool {
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match pattern {
        "^[0-9a-f]{64}$" => s.len() == 64 && hex(s),
        "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" => {
            let parts: Vec<&str> = s.split('-').collect();
            parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| hex(p))
        }
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$" => {
            let shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
            s.len() == shape.len()
                && s.bytes().zip(shape.bytes()).all(|(c, p)| if p == b'd' { c.is_ascii_digit() } else { c == p })
        }
        other => panic!("the test's validator does not know the pattern {other:?}"),
    }
}

fn check(line: &Value) -> Result<(), String> {
    let root = schema();
    validate(&root, &root, line, "line")
}

/// An export with every kind of line: both actors, imported history, nulls and values.
fn sample_lines() -> Vec<Value> {
    let mut items = items(TENANT, 3, 12);
    let remap = Remap { from: TENANT, to: Uuid::from_u128(9) };
    let header = remap.header(header(TENANT));
    items = items.into_iter().map(|i| remap.item(i)).collect();
    let mut w = Writer::new(Vec::new(), &header).unwrap();
    for item in &items {
        w.write(item).unwrap();
    }
    let bytes = w.finish().unwrap();
    std::str::from_utf8(&bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn the_schema_is_draft_2020_12() {
    assert_eq!(schema()["$schema"], "https://json-schema.org/draft/2020-12/schema");
}

#[test]
fn every_line_the_writer_produces_validates() {
    let lines = sample_lines();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap_or("header")).collect();
    for kind in ["header", "tenant", "plan", "member", "invitation", "todo", "audit", "end"] {
        assert!(kinds.contains(&kind), "{kind}");
    }
    let actors: Vec<&Value> = lines.iter().filter_map(|l| l.pointer("/record/actor/kind")).collect();
    assert!(actors.contains(&&json!("user")) && actors.contains(&&json!("operator")));
    for line in &lines {
        check(line).unwrap_or_else(|e| panic!("{e}\n{line}"));
    }
}

#[test]
fn the_schema_refuses_what_the_reader_refuses() {
    let lines = sample_lines();
    let find = |kind: &str| lines.iter().find(|l| l["type"] == kind).unwrap().clone();
    let refused = |mut line: Value, edit: &dyn Fn(&mut Value)| {
        edit(&mut line);
        assert!(check(&line).is_err(), "accepted: {line}");
    };
    refused(find("invitation"), &|v| v["code"] = json!("inv_ZCsZpSHpTD200e9"));
    refused(find("invitation"), &|v| v["code_hash"] = json!("00"));
    refused(find("invitation"), &|v| v["role"] = json!("owner"));
    refused(lines[0].clone(), &|v| v["version"] = json!(2));
    refused(lines[0].clone(), &|v| v["format"] = json!("other"));
    refused(find("todo"), &|v| v["created_at"] = json!("2026-12-03T08:47:03Z"));
    refused(find("todo"), &|v| v["type"] = json!("task"));
    refused(find("end"), &|v| v["sha256"] = json!("ABC"));
    refused(find("audit"), &|v| v["record"]["action"] = json!("tenant.exploded"));
    refused(find("audit"), &|v| v["record"]["after"] = json!({"list": [{"password": "x"}]}));
    refused(find("audit"), &|v| v["record"]["after"] = json!({"rate": 2.5}));
    refused(find("audit"), &|v| v["record"]["seq"] = json!(0));
    refused(find("audit"), &|v| v["record"]["actor"] = json!({"kind": "user", "name": "x"}));
    // And a secret under a valid hash, made by hand: the schema refuses it like the Reader.
    let mut a: Audit = serde_json::from_value({
        let mut l = find("audit");
        l.as_object_mut().unwrap().remove("type");
        l
    })
    .unwrap();
    a.record.actor = Actor::Operator { name: "x".into() };
    a.record.before = Some(json!({"secret": 1}));
    a.record.hash = hash(&a.record);
    assert!(check(&serde_json::to_value(Item::Audit(a)).unwrap()).is_err());
}
