//! PostgreSQL's wire protocol, as much as the stand-in speaks: startup packets, typed messages,
//! and FATAL errors.

use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) const SSL_REQUEST: i32 = 80877103;
pub(crate) const GSSENC_REQUEST: i32 = 80877104;
pub(crate) const CANCEL_REQUEST: i32 = 80877102;
pub(crate) const PROTOCOL_3: i32 = 196608;

/// Reads one length-prefixed startup-phase packet (no type byte): code and the rest.
pub(crate) async fn read_startup<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<(i32, Vec<u8>)> {
    let len = s.read_i32().await?;
    if !(8..=10_000).contains(&len) {
        return Err(std::io::Error::other("bad startup packet length"));
    }
    let mut body = vec![0; len as usize - 4];
    s.read_exact(&mut body).await?;
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    Ok((code, body))
}

/// Reads one typed protocol message: type byte and body.
pub(crate) async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let kind = s.read_u8().await?;
    let len = s.read_i32().await?;
    if !(4..=1_000_000).contains(&len) {
        return Err(std::io::Error::other("bad message length"));
    }
    let mut body = vec![0; len as usize - 4];
    s.read_exact(&mut body).await?;
    Ok((kind, body))
}

pub(crate) fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 5);
    m.push(kind);
    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A FATAL ErrorResponse as PostgreSQL formats it.
pub(crate) fn fatal(code: &str, text: &str) -> Vec<u8> {
    error_response("FATAL", code, text)
}

/// An ErrorResponse of `severity` (`ERROR`, `FATAL`) with SQLSTATE `code` and message `text`.
pub(crate) fn error_response(severity: &str, code: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [(b'S', severity), (b'V', severity), (b'C', code), (b'M', text)] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(b'E', &body)
}

/// The startup parameters: `user`, `database`, ...
pub(crate) fn startup_params(body: &[u8]) -> Vec<(String, String)> {
    let mut fields = body[4..].split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned());
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        if k.is_empty() {
            break;
        }
        out.push((k, v));
    }
    out
}
