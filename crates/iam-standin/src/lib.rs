//! A local stand-in for Aurora PostgreSQL's IAM database authentication, for tests and for
//! trying the IAM path on a laptop. It is what the function sees of Aurora:
//!
//! 1. accepts PostgreSQL's `SSLRequest` and terminates TLS with a certificate for a configurable
//!    host name, issued by a CA it generates at start (rcgen): clients verify it like Aurora's;
//! 2. asks for a cleartext password, as Aurora does for `rds_iam` users, and verifies it as an
//!    RDS IAM token: SigV4 with the known test key, `Action=connect`, `DBUser` equal to the
//!    startup user, the configured host and port and region, not expired, signature intact;
//! 3. only then relays the session to a real PostgreSQL (which must trust the stand-in, e.g.
//!    over its Unix socket); a failure is answered with PostgreSQL's own error format and
//!    Aurora's message, `PAM authentication failed for user "..."`.
//!
//! Knobs for fault tests: delay before answering, refuse logins, refuse connections, drop every
//! established session, and counters of accepted and rejected logins.

mod conflicts;
pub mod sigv4;

use std::{
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use db_auth::{Clock, Credentials};
use rustls::{ServerConfig, pki_types::PrivateKeyDer};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream, UnixStream},
    sync::watch,
};
use tokio_rustls::TlsAcceptor;

/// The access key the stand-in accepts tokens from.
pub const TEST_ACCESS_KEY_ID: &str = "AKIAIAMSTANDINEXAMPLE";
/// Its secret. Only meaningful to the stand-in.
pub const TEST_SECRET_ACCESS_KEY: &str = "standin/Secret+Key/forLocalTestsOnlyEXAMPLE";

/// Credentials that sign tokens the stand-in accepts (with a session token, as on Lambda).
pub fn test_credentials() -> Credentials {
    Credentials::new(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        Some("standin-session-token".into()),
        None,
        "iam-standin",
    )
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The real PostgreSQL behind the stand-in. It must let the stand-in in without a password
/// (trust), since the stand-in has already authenticated the client.
#[derive(Debug, Clone)]
pub enum Upstream {
    Tcp(SocketAddr),
    /// A server's Unix socket file, e.g. `/tmp/sock/.s.PGSQL.5432`.
    Unix(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The name in the server certificate, and the host a token must be signed for.
    pub hostname: String,
    /// The port a token must be signed for; the listening port when `None`.
    pub token_port: Option<u16>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub upstream: Upstream,
    pub clock: Arc<dyn Clock>,
    /// Whose tokens to accept: Aurora's (the default) or Aurora DSQL's.
    pub engine: sigv4::Engine,
    /// Sessions older than this are closed, as Aurora DSQL closes connections at 60 minutes.
    pub max_session_age: Option<Duration>,
}

impl Config {
    pub fn new(hostname: impl Into<String>, region: impl Into<String>, upstream: Upstream) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            hostname: hostname.into(),
            token_port: None,
            region: region.into(),
            access_key_id: TEST_ACCESS_KEY_ID.into(),
            secret_access_key: TEST_SECRET_ACCESS_KEY.into(),
            upstream,
            clock: Arc::new(db_auth::SystemClock),
            engine: sigv4::Engine::Rds,
            max_session_age: None,
        }
    }
}

/// Fault knobs and counters, shared with the running stand-in.
#[derive(Debug, Default)]
struct State {
    delay: Mutex<Duration>,
    refuse_logins: AtomicBool,
    refuse_connections: AtomicBool,
    accepted: AtomicU64,
    rejected: AtomicU64,
    connections: AtomicU64,
    active: AtomicU64,
    last_rejection: Mutex<Option<String>>,
    last_user: Mutex<Option<String>>,
    conflicts: conflicts::Conflicts,
}

/// A running stand-in. Dropping it stops accepting (established sessions end with it too).
#[derive(Debug)]
pub struct Standin {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<State>,
    drop_sessions: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_sessions.send_modify(|g| *g += 1);
    }
}

impl Standin {
    pub async fn start(config: Config) -> Result<Self, Error> {
        let (ca_pem, tls) = make_tls(&config.hostname)?;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let (drop_sessions, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            token_port: config.token_port.unwrap_or(addr.port()),
            config,
            tls: TlsAcceptor::from(tls),
            state: state.clone(),
            drop_sessions: drop_sessions.clone(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                // Small protocol messages must not wait for delayed ACKs (Nagle), as with a
                // real server.
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move { shared.serve(stream).await });
            }
        });
        Ok(Self { addr, ca_pem, state, drop_sessions, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM of the CA that issued the stand-in's certificate: what clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Waits this long before answering a new connection (a database resuming).
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }

    /// Rejects every login, valid token or not (a revoked user).
    pub fn set_refuse_logins(&self, refuse: bool) {
        self.state.refuse_logins.store(refuse, Ordering::SeqCst);
    }

    /// Closes new connections at once (the database is down).
    pub fn set_refuse_connections(&self, refuse: bool) {
        self.state.refuse_connections.store(refuse, Ordering::SeqCst);
    }

    /// Drops every established session, as a failover or a NAT timeout would.
    pub fn drop_sessions(&self) {
        self.drop_sessions.send_modify(|g| *g += 1);
    }

    /// Logins with a valid token that were relayed to PostgreSQL.
    pub fn accepted_logins(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    pub fn rejected_logins(&self) -> u64 {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// TCP connections accepted, whatever became of them.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Sessions relayed right now.
    pub fn active_sessions(&self) -> u64 {
        self.state.active.load(Ordering::SeqCst)
    }

    /// Why the last login was rejected.
    pub fn last_rejection(&self) -> Option<String> {
        self.state.last_rejection.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fails this share (0.0 to 1.0) of the sessions' `COMMIT`s with SQLSTATE 40001 (`OC000`),
    /// rolling them back, as Aurora DSQL does when optimistic concurrency finds a conflict.
    pub fn set_commit_failure_rate(&self, rate: f64) {
        let permille = (rate.clamp(0.0, 1.0) * 1000.0).round() as u64;
        self.state.conflicts.permille.store(permille, Ordering::SeqCst);
    }

    /// Commits failed on purpose so far.
    pub fn failed_commits(&self) -> u64 {
        self.state.conflicts.failed.load(Ordering::SeqCst)
    }

    /// The user of the last accepted login.
    pub fn last_user(&self) -> Option<String> {
        self.state.last_user.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A CA, and a server certificate for `hostname` that it issued.
fn make_tls(hostname: &str) -> Result<(String, Arc<ServerConfig>), Error> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // A name of its own for each CA, as real CAs have: clients tell them apart by name first.
    let id = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(ca_key.public_key_pem())[..6]);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("iam-standin test CA {id}"));
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = rcgen::KeyPair::generate()?;
    let mut leaf_params = rcgen::CertificateParams::new(vec![hostname.to_string()])?;
    leaf_params.distinguished_name.push(rcgen::DnType::CommonName, hostname);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()))?;
    Ok((ca_cert.pem(), Arc::new(config)))
}

struct Shared {
    config: Config,
    token_port: u16,
    tls: TlsAcceptor,
    state: Arc<State>,
    drop_sessions: watch::Sender<u64>,
}

const SSL_REQUEST: i32 = 80877103;
const GSSENC_REQUEST: i32 = 80877104;
const CANCEL_REQUEST: i32 = 80877102;
const PROTOCOL_3: i32 = 196608;

/// Reads one length-prefixed startup-phase packet (no type byte): code and the rest.
async fn read_startup<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<(i32, Vec<u8>)> {
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
async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let kind = s.read_u8().await?;
    let len = s.read_i32().await?;
    if !(4..=1_000_000).contains(&len) {
        return Err(std::io::Error::other("bad message length"));
    }
    let mut body = vec![0; len as usize - 4];
    s.read_exact(&mut body).await?;
    Ok((kind, body))
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 5);
    m.push(kind);
    m.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A FATAL ErrorResponse as PostgreSQL formats it.
fn fatal(code: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', code), (b'M', text)] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(b'E', &body)
}

/// The startup parameters: `user`, `database`, ...
fn startup_params(body: &[u8]) -> Vec<(String, String)> {
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

enum UpstreamStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Shared {
    async fn serve(self: Arc<Self>, mut tcp: TcpStream) {
        self.state.connections.fetch_add(1, Ordering::SeqCst);
        if self.state.refuse_connections.load(Ordering::SeqCst) {
            return;
        }
        let delay = *self.state.delay.lock().unwrap_or_else(|e| e.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Err(e) = self.session(&mut tcp).await {
            tracing::debug!(error = %e, "stand-in session ended");
        }
    }

    async fn session(&self, tcp: &mut TcpStream) -> std::io::Result<()> {
        // SSL negotiation: decline GSS encryption, require TLS (IAM auth needs it).
        loop {
            let (code, _) = read_startup(tcp).await?;
            match code {
                SSL_REQUEST => break,
                GSSENC_REQUEST => tcp.write_all(b"N").await?,
                _ => {
                    tcp.write_all(&fatal("28000", "this server requires TLS for IAM authentication")).await?;
                    return Ok(());
                }
            }
        }
        tcp.write_all(b"S").await?;
        let mut client = self.tls.accept(tcp).await?;
        let (code, startup) = read_startup(&mut client).await?;
        if code == CANCEL_REQUEST {
            // Cancel requests carry the upstream's backend key: pass them on.
            let mut up = self.connect_upstream().await?;
            let mut packet = (startup.len() as i32 + 4).to_be_bytes().to_vec();
            packet.extend_from_slice(&startup);
            up.write_all(&packet).await?;
            return Ok(());
        }
        if code != PROTOCOL_3 {
            client.write_all(&fatal("08P01", "unsupported frontend protocol")).await?;
            return Ok(());
        }
        let params = startup_params(&startup);
        let user = params.iter().find(|(k, _)| k == "user").map(|(_, v)| v.clone()).unwrap_or_default();

        // AuthenticationCleartextPassword, then the client's PasswordMessage.
        client.write_all(&message(b'R', &3i32.to_be_bytes())).await?;
        let (kind, body) = read_message(&mut client).await?;
        let token = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
        let verdict = if kind != b'p' {
            Err("expected a password message".to_string())
        } else if self.state.refuse_logins.load(Ordering::SeqCst) {
            Err("logins are refused (knob)".to_string())
        } else {
            sigv4::verify(
                &token,
                &sigv4::Expect {
                    engine: self.config.engine,
                    host: &self.config.hostname,
                    port: self.token_port,
                    user: &user,
                    region: &self.config.region,
                    access_key_id: &self.config.access_key_id,
                    secret_access_key: &self.config.secret_access_key,
                    now: self.config.clock.now(),
                },
            )
        };
        if let Err(why) = verdict {
            self.state.rejected.fetch_add(1, Ordering::SeqCst);
            tracing::info!(user, reason = %why, "stand-in rejected a login");
            *self.state.last_rejection.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            client.write_all(&fatal("28000", &format!("PAM authentication failed for user \"{user}\""))).await?;
            return client.shutdown().await;
        }

        let mut upstream = match self.connect_upstream().await {
            Ok(u) => u,
            Err(e) => {
                client.write_all(&fatal("57P03", &format!("the database system is not available: {e}"))).await?;
                return Ok(());
            }
        };
        let mut packet = (startup.len() as i32 + 4).to_be_bytes().to_vec();
        packet.extend_from_slice(&startup);
        upstream.write_all(&packet).await?;
        let (kind, body) = read_message(&mut upstream).await?;
        match (kind, body.as_slice()) {
            (b'R', [0, 0, 0, 0]) => client.write_all(&message(kind, &body)).await?,
            (b'E', _) => return client.write_all(&message(kind, &body)).await,
            _ => {
                let text = "the stand-in's upstream PostgreSQL asked for a password: let the stand-in in with trust";
                return client.write_all(&fatal("28000", text)).await;
            }
        }
        self.state.accepted.fetch_add(1, Ordering::SeqCst);
        *self.state.last_user.lock().unwrap_or_else(|e| e.into_inner()) = Some(user);

        let mut dropped = self.drop_sessions.subscribe();
        self.state.active.fetch_add(1, Ordering::SeqCst);
        let too_old = async {
            match self.config.max_session_age {
                Some(age) => tokio::time::sleep(age).await,
                None => std::future::pending().await,
            }
        };
        let relay = async {
            if self.state.conflicts.permille.load(Ordering::SeqCst) > 0 {
                conflicts::relay(&mut client, &mut upstream, &self.state.conflicts).await
            } else {
                tokio::io::copy_bidirectional(&mut client, &mut upstream).await.map(drop)
            }
        };
        let result = tokio::select! {
            r = relay => r,
            _ = dropped.changed() => Ok(()),
            () = too_old => Ok(()),
        };
        self.state.active.fetch_sub(1, Ordering::SeqCst);
        result
    }

    async fn connect_upstream(&self) -> std::io::Result<UpstreamStream> {
        Ok(match &self.config.upstream {
            Upstream::Tcp(addr) => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                UpstreamStream::Tcp(stream)
            }
            Upstream::Unix(path) => UpstreamStream::Unix(UnixStream::connect(path).await?),
        })
    }
}

/// TCP or Unix, one type for the relay.
macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            UpstreamStream::Tcp($s) => $e,
            UpstreamStream::Unix($s) => $e,
        }
    };
}

impl AsyncRead for UpstreamStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, data))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
