//! The dev server answers browsers' preflights like the function does: 204 with the CORS
//! headers for an allowed origin, before any bearer token is asked for.

use std::time::Duration;

use api::{App, Cors, JwtVerifier};
use devserver::Server;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Sends one raw HTTP/1.1 request and returns the response head, lower-cased.
async fn send(addr: std::net::SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap().to_string()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_gets_204_and_the_cors_headers() {
    let db = testkit::pg::db().await;
    let app = App::new(db.runtime_store()).with_cors(Cors::parse("http://localhost:5173").unwrap());
    let verifier = JwtVerifier::hs256(b"a-dev-secret-that-is-32-bytes-long!!", None, None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(devserver::run(Server { app, verifier }, listener, async {
        let _ = stopped.await;
    }));

    let preflight = |origin: &str| {
        format!(
            "OPTIONS /api/tenants HTTP/1.1\r\nhost: x\r\norigin: {origin}\r\naccess-control-request-method: POST\r\n\
             access-control-request-headers: authorization, content-type\r\nconnection: close\r\n\r\n"
        )
    };
    let head = send(addr, &preflight("http://localhost:5173")).await;
    assert!(head.starts_with("http/1.1 204"), "{head}");
    assert!(head.contains("access-control-allow-origin: http://localhost:5173"), "{head}");
    assert!(head.contains("access-control-allow-methods: get, post"), "{head}");
    assert!(head.contains("access-control-allow-headers: authorization, content-type"), "{head}");

    let head = send(addr, &preflight("http://evil.example.com")).await;
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    // Without a token, a real request is 401, and still readable by the allowed page.
    let head =
        send(addr, "GET /api/me HTTP/1.1\r\nhost: x\r\norigin: http://localhost:5173\r\nconnection: close\r\n\r\n")
            .await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("access-control-allow-origin: http://localhost:5173"), "{head}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
