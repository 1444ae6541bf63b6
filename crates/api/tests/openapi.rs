//! The OpenAPI document served at /openapi.json tells the truth about the router: every route
//! and method is documented, and nothing is documented that does not exist.

mod common;

use std::collections::BTreeSet;

use api::routes::ROUTES;
use common::TestApp;
use http::{Method, StatusCode};
use serde_json::Value;

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().unwrap() {
            if ["get", "put", "post", "patch", "delete", "head", "options", "trace"].contains(&method.as_str()) {
                ops.insert((path.clone(), method.to_uppercase()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_document_matches_the_router() {
    let t = TestApp::new().await;
    let r = t.call(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.0.3");
    let routed: BTreeSet<(String, String)> =
        ROUTES.iter().flat_map(|s| s.methods.iter().map(|m| (s.path.to_string(), m.as_str().to_string()))).collect();
    let documented = documented(&r.body);
    let missing: Vec<_> = routed.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&routed).collect();
    assert!(missing.is_empty(), "routes without documentation: {missing:?}");
    assert!(phantom.is_empty(), "documented but not routed: {phantom:?}");

    // Every path parameter is declared, and every $ref resolves.
    let text = r.body.to_string();
    for (path, _) in &documented {
        for name in path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
            let item = &r.body["paths"][path];
            let params = item["parameters"].as_array().cloned().unwrap_or_default();
            let declared = params.iter().any(|p| {
                let key = p["$ref"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("");
                r.body["components"]["parameters"][key]["name"] == name
            });
            assert!(declared, "{path}: parameter {name} is not declared");
        }
    }
    for reference in text.split("\"$ref\":\"#/").skip(1).map(|s| &s[..s.find('"').unwrap()]) {
        let target = reference.split('/').fold(&r.body, |v, k| &v[k]);
        assert!(!target.is_null(), "unresolved $ref #/{reference}");
    }
}

fn document() -> Value {
    serde_json::from_str(api::OPENAPI).expect("the document is JSON")
}

/// Follows `$ref`s within the document.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v["$ref"].as_str() {
        v = r.trim_start_matches("#/").split('/').fold(doc, |v, k| &v[k]);
    }
    v
}

/// Every operation: (operation id, path item, operation).
fn operations(doc: &Value) -> Vec<(String, &Value, &Value)> {
    let mut ops = Vec::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for (method, op) in item.as_object().unwrap() {
            if method != "parameters" {
                ops.push((op["operationId"].as_str().expect("every operation has an id").to_string(), item, op));
            }
        }
    }
    ops
}

/// The parameters of an operation, as (location, name).
fn parameters(doc: &Value, item: &Value, op: &Value) -> Vec<(String, String)> {
    let listed =
        item["parameters"].as_array().into_iter().flatten().chain(op["parameters"].as_array().into_iter().flatten());
    listed
        .map(|p| resolve(doc, p))
        .map(|p| (p["in"].as_str().unwrap().to_string(), p["name"].as_str().unwrap().to_string()))
        .collect()
}

/// Where `#/a/0/b` leads in a JSON schema, if anywhere.
fn schema_at<'a>(doc: &'a Value, schema: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut s = resolve(doc, schema);
    for key in pointer.trim_start_matches('/').split('/').filter(|k| !k.is_empty()) {
        s = if key.parse::<usize>().is_ok() && s["type"] == "array" {
            resolve(doc, &s["items"])
        } else {
            resolve(doc, s["properties"].get(key)?)
        };
    }
    Some(s)
}

/// The stateful phase of schemathesis follows the links: each must name an operation that
/// exists, parameters and body fields that operation has, and response fields the source
/// operation returns; a constant must be a value the API reads.
#[test]
fn links_lead_to_real_operations_parameters_and_fields() {
    let doc = document();
    let ops = operations(&doc);
    let by_id: std::collections::BTreeMap<_, _> =
        ops.iter().map(|(id, item, op)| (id.as_str(), (*item, *op))).collect();
    assert_eq!(by_id.len(), ops.len(), "operation ids are unique");
    let mut count = 0;
    for (source, _, op) in &ops {
        for (status, response) in op["responses"].as_object().unwrap() {
            let Some(links) = response["links"].as_object() else { continue };
            let returned = &resolve(&doc, response)["content"]["application/json"]["schema"];
            let check_expression = |what: &str, expr: &str| {
                let pointer = expr.strip_prefix("$response.body#").unwrap_or_else(|| panic!("{what}: {expr}"));
                assert!(schema_at(&doc, returned, pointer).is_some(), "{what}: {source} {status} has no {pointer}");
            };
            for (name, link) in links {
                count += 1;
                let what = format!("{source} {status} link {name}");
                let target = link["operationId"].as_str().unwrap();
                let (item, target_op) = by_id.get(target).unwrap_or_else(|| panic!("{what}: no operation {target}"));
                let params = parameters(&doc, item, target_op);
                for (key, value) in link["parameters"].as_object().into_iter().flatten() {
                    let (location, param) = key.split_once('.').map_or((None, key.as_str()), |(l, n)| (Some(l), n));
                    assert!(
                        params.iter().any(|(l, n)| n == param && location.is_none_or(|loc| loc == l)),
                        "{what}: {target} has no parameter {key}"
                    );
                    let value = value.as_str().unwrap();
                    if value.starts_with('$') {
                        check_expression(&what, value);
                    } else if param == "cursor" {
                        assert!(store::Cursor::decode(value).is_ok(), "{what}: {value} is not a cursor");
                    }
                }
                if let Some(body) = link.get("requestBody") {
                    let schema = &target_op["requestBody"]["content"]["application/json"]["schema"];
                    for (field, expr) in body.as_object().expect("a body of fields") {
                        assert!(schema_at(&doc, schema, field).is_some(), "{what}: {target}'s body has no {field}");
                        check_expression(&what, expr.as_str().unwrap());
                    }
                }
            }
        }
    }
    assert!(count > 50, "{count} links");
    // The routes that need ids someone else returned are reachable with real ones.
    let targets: BTreeSet<&str> = ops
        .iter()
        .flat_map(|(_, _, op)| op["responses"].as_object().unwrap().values())
        .filter_map(|r| r["links"].as_object())
        .flat_map(|links| links.values().map(|l| l["operationId"].as_str().unwrap()))
        .collect();
    for (id, item, op) in &ops {
        let needs_ids = parameters(&doc, item, op).iter().any(|(l, _)| l == "path");
        if needs_ids || id == "acceptInvitation" {
            assert!(targets.contains(id.as_str()), "no link leads to {id}");
        }
    }
}

/// Strings drawn from the document's patterns, which schemathesis sends expecting them to be
/// accepted, are accepted by the parsers the handlers use.
#[test]
fn what_the_patterns_allow_the_parsers_accept() {
    use proptest::{
        strategy::{Strategy, ValueTree},
        string::string_regex,
        test_runner::TestRunner,
    };

    let doc = document();
    let schemas = &doc["components"]["schemas"];
    type Parser = fn(&str) -> bool;
    let cases: Vec<(&str, &Value, Parser)> = vec![
        ("tenant name", &schemas["NewTenant"]["properties"]["name"], |s| store::TenantName::parse(s).is_ok()),
        ("new tenant name", &schemas["RenameTenant"]["properties"]["name"], |s| store::TenantName::parse(s).is_ok()),
        ("display name", &schemas["Profile"]["properties"]["name"], |s| store::DisplayName::parse(s).is_ok()),
        ("profile email", &schemas["Profile"]["properties"]["email"], |s| store::Email::parse(s).is_ok()),
        ("invitation email", &schemas["NewInvitation"]["properties"]["email"], |s| store::Email::parse(s).is_ok()),
        ("todo title", &schemas["NewTodo"]["properties"]["title"], |s| store::TodoTitle::parse(s).is_ok()),
        ("title patch", &schemas["TodoPatch"]["properties"]["title"], |s| store::TodoTitle::parse(s).is_ok()),
        ("cursor", &doc["components"]["parameters"]["Cursor"]["schema"], |s| store::Cursor::decode(s).is_ok()),
        ("invitation code", &schemas["AcceptInvitation"]["properties"]["code"], |s| {
            store::InvitationCode::parse(s).is_ok()
        }),
        // The value after HTTP has dropped the spaces and tabs around it.
        ("idempotency key", &doc["components"]["parameters"]["IdempotencyKey"]["schema"], |s| {
            let key = s.trim_matches([' ', '\t']);
            store::Idempotency::new(key, None, "POST", "/api/tenants", b"{}", std::time::Duration::from_secs(60))
                .is_some()
        }),
    ];
    let mut runner = TestRunner::deterministic();
    for (what, schema, parses) in cases {
        let pattern = schema["pattern"].as_str().unwrap_or_else(|| panic!("{what} has a pattern"));
        let inner = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).expect("anchored at both ends");
        let strings = string_regex(inner).unwrap_or_else(|e| panic!("{what}: {e}"));
        let (min, max) = (schema["minLength"].as_u64().unwrap_or(0), schema["maxLength"].as_u64().unwrap_or(u64::MAX));
        let mut tried = 0;
        while tried < 2000 {
            let s = strings.new_tree(&mut runner).unwrap().current();
            let len = s.chars().count() as u64;
            if len < min || len > max {
                continue;
            }
            tried += 1;
            assert!(parses(&s), "{what}: the document allows {s:?}, which is refused");
        }
    }
}
