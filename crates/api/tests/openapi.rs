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
