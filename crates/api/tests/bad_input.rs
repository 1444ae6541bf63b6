//! Bad input never yields a 5xx: each malformed request gets its 4xx with the JSON error shape,
//! and the database is unchanged afterwards.

mod common;

use bytes::Bytes;
use common::TestApp;
use http::{Method, StatusCode};
use serde_json::json;

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Bytes,
    status: StatusCode,
    code: &'static str,
}

fn case(what: &'static str, method: Method, path: &str, body: &str, status: u16, code: &'static str) -> Case {
    Case {
        what,
        method,
        path: path.to_string(),
        content_type: Some("application/json"),
        body: Bytes::from(body.to_string()),
        status: StatusCode::from_u16(status).unwrap(),
        code,
    }
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_its_4xx_and_changes_nothing() {
    let t = TestApp::new().await;
    let tenant = t.tenant("alice", "Acme").await;
    let todo = t.post("alice", &format!("/api/tenants/{tenant}/todos"), json!({ "title": "keep me" })).await.id();
    let alice = t.user_id("alice").await;
    let todos = format!("/api/tenants/{tenant}/todos");
    let one = format!("{todos}/{todo}");
    let members = format!("/api/tenants/{tenant}/members");
    let member = format!("{members}/{alice}");
    let me_user = format!("/api/users/{alice}");
    let tenant_path = format!("/api/tenants/{tenant}");
    let huge = "x".repeat(1024 * 1024);
    let long_title = format!(r#"{{"title":"{}"}}"#, "t".repeat(257));
    let long_name = format!(r#"{{"name":"{}"}}"#, "n".repeat(201));

    // Every route that takes a body, with each kind of bad body.
    let body_routes: Vec<(Method, String, &str)> = vec![
        (Method::POST, "/api/users".into(), r#"{"name":"A","email":"a@example.com"}"#),
        (Method::PUT, me_user.clone(), r#"{"name":"A","email":"a@example.com"}"#),
        (Method::POST, "/api/tenants".into(), r#"{"name":"T"}"#),
        (Method::PATCH, tenant_path.clone(), r#"{"name":"T"}"#),
        (Method::PUT, member.clone(), r#"{"role":"admin"}"#),
        (Method::POST, todos.clone(), r#"{"title":"x"}"#),
        (Method::PATCH, one.clone(), r#"{"title":"x"}"#),
    ];
    let mut cases = Vec::new();
    for (m, p, good) in &body_routes {
        cases.push(case("malformed JSON", m.clone(), p, r#"{"title": "#, 400, "bad_request"));
        cases.push(case("not JSON at all", m.clone(), p, "title=x", 400, "bad_request"));
        cases.push(case("empty body", m.clone(), p, "", 400, "bad_request"));
        cases.push(case("raw NUL byte", m.clone(), p, "{\"title\":\"a\u{0}b\"}", 400, "bad_request"));
        cases.push(case("array instead of object", m.clone(), p, "[]", 422, "invalid_field"));
        cases.push(case(
            "wrong JSON types",
            m.clone(),
            p,
            r#"{"title":5,"name":true,"email":[],"role":1}"#,
            422,
            "invalid_field",
        ));
        cases.push(case("missing fields", m.clone(), p, r#"{}"#, 422, "invalid_field"));
        let unknown = format!("{},\"extra\":1}}", good.trim_end_matches('}'));
        cases
            .push(Case { body: Bytes::from(unknown), ..case("unknown field", m.clone(), p, "", 422, "invalid_field") });
        cases.push(case("1 MB body", m.clone(), p, &huge, 413, "payload_too_large"));
        cases.push(Case {
            content_type: Some("text/plain"),
            ..case("text/plain", m.clone(), p, good, 415, "unsupported_media_type")
        });
        cases.push(Case {
            content_type: None,
            ..case("no content type", m.clone(), p, good, 415, "unsupported_media_type")
        });
        cases.push(Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case("form encoded", m.clone(), p, good, 415, "unsupported_media_type")
        });
    }
    // Field values that parse as JSON but are not acceptable.
    for (m, p, body) in [
        (Method::POST, todos.as_str(), r#"{"title":"a\u0000b"}"#),
        (Method::POST, todos.as_str(), r#"{"title":""}"#),
        (Method::POST, todos.as_str(), long_title.as_str()),
        (Method::POST, todos.as_str(), r#"{"title":"x","id":"not-a-uuid"}"#),
        (Method::POST, todos.as_str(), r#"{"title":"x","id":null}"#),
        (Method::POST, todos.as_str(), r#"{"title":"x","complete":null}"#),
        (Method::PATCH, one.as_str(), r#"{"title":null}"#),
        (Method::PATCH, one.as_str(), r#"{"complete":null,"title":"x"}"#),
        (Method::POST, "/api/tenants", r#"{"name":"x","id":null}"#),
        (Method::PATCH, one.as_str(), r#"{"title":"a\u0000b"}"#),
        (Method::PATCH, one.as_str(), r#"{}"#),
        (Method::POST, "/api/tenants", r#"{"name":"   "}"#),
        (Method::POST, "/api/tenants", long_name.as_str()),
        (Method::POST, "/api/tenants", r#"{"name":"x","id":"108124a5"}"#),
        (Method::PATCH, tenant_path.as_str(), r#"{"name":"a\nb"}"#),
        (Method::POST, "/api/users", r#"{"name":"A","email":"not an email"}"#),
        (Method::POST, "/api/users", r#"{"name":"","email":"a@example.com"}"#),
        (Method::PUT, me_user.as_str(), r#"{"name":"A","email":"a@b"}"#),
        (Method::PUT, member.as_str(), r#"{"role":"owner"}"#),
    ] {
        cases.push(case("invalid field value", m, p, body, 422, "invalid_field"));
    }
    // Paths, query parameters and methods.
    let bad_uuid = "not-a-uuid";
    for (m, p) in [
        (Method::GET, format!("/api/tenants/{bad_uuid}")),
        (Method::GET, format!("/api/tenants/{bad_uuid}/todos")),
        (Method::GET, format!("/api/tenants/{tenant}/todos/{bad_uuid}")),
        (Method::DELETE, format!("/api/tenants/{tenant}/members/{bad_uuid}")),
        (Method::GET, format!("/api/users/{bad_uuid}")),
        (Method::GET, format!("/api/tenants/{}/todos", "1".repeat(5000))),
        (Method::GET, format!("{todos}?limit=0")),
        (Method::GET, format!("{todos}?limit=-1")),
        (Method::GET, format!("{todos}?limit=201")),
        (Method::GET, format!("{todos}?limit=99999999999999999999")),
        (Method::GET, format!("{todos}?limit=abc")),
        (Method::GET, format!("{todos}?cursor=forged")),
        (Method::GET, format!("{todos}?cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
        (Method::GET, "/api/todos?cursor=Afzyks0NOCAAAAAAAAAAAAAAAAAAAAAAAA".to_string()),
        (Method::GET, format!("{todos}?complete=yes")),
        (Method::GET, "/api/todos?limit=1000".to_string()),
        (Method::GET, "/api/tenants?cursor=%00".to_string()),
        (Method::GET, "/api/users?limit=-5".to_string()),
        (Method::GET, format!("{members}?cursor=x")),
    ] {
        cases.push(case("bad path or query", m, &p, "", 400, "bad_request"));
    }
    for p in ["/", "/api", "/api/nope", "/api/tenants/x/y/z", "/health/", "/api/me/"] {
        cases.push(case("unknown route", Method::GET, p, "", 404, "not_found"));
    }
    for (m, p) in [
        (Method::DELETE, "/api/me".to_string()),
        (Method::PUT, "/api/tenants".to_string()),
        (Method::POST, tenant_path.clone()),
        (Method::GET, member.clone()),
        (Method::PUT, todos.clone()),
        (Method::POST, one.clone()),
        (Method::POST, "/api/todos".to_string()),
        (Method::from_bytes(b"BREW").unwrap(), "/api/todos".to_string()),
        (Method::OPTIONS, "/health".to_string()),
    ] {
        cases.push(case("wrong method", m, &p, "", 405, "method_not_allowed"));
    }

    let before = t.snapshot().await;
    for c in &cases {
        let r = t.raw(Some("alice"), c.method.clone(), &c.path, c.content_type, c.body.clone()).await;
        let label = format!("{} {} ({})", c.method, &c.path[..c.path.len().min(80)], c.what);
        assert_eq!(r.status, c.status, "{label}: {}", r.body);
        assert_eq!(r.error_code(), c.code, "{label}");
        assert_eq!(r.headers["content-type"], "application/json", "{label}");
        if c.status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(r.headers.contains_key("allow"), "{label}: 405 carries Allow");
        }
    }
    assert_eq!(t.snapshot().await, before, "no rejected request changed the database");
    assert!(cases.len() > 120, "{} cases", cases.len());
}

#[tokio::test]
async fn allow_lists_the_methods_of_the_route() {
    let t = TestApp::new().await;
    let r = t.call(Some("alice"), Method::DELETE, "/api/tenants", None).await;
    assert_eq!(r.headers["allow"], "GET, POST");
    let r = t.call(Some("alice"), Method::POST, "/api/tenants/108124a5-2e34-418a-9735-b93082e9fbf2", None).await;
    assert_eq!(r.headers["allow"], "GET, PATCH, DELETE");
}
