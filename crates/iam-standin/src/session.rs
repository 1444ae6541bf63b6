//! One client connection: TLS, the IAM token in place of a password, then the relay to the real
//! PostgreSQL.

use std::sync::{Arc, atomic::Ordering};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpStream, UnixStream},
    sync::watch,
};
use tokio_rustls::TlsAcceptor;

use crate::{
    config::{Config, Upstream},
    dsql, sigv4,
    state::State,
    upstream::UpstreamStream,
    wire::{
        CANCEL_REQUEST, GSSENC_REQUEST, PROTOCOL_3, SSL_REQUEST, fatal, message, read_message, read_startup,
        startup_params,
    },
};

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) token_port: u16,
    pub(crate) tls: TlsAcceptor,
    pub(crate) state: Arc<State>,
    pub(crate) drop_sessions: watch::Sender<u64>,
}

impl Shared {
    pub(crate) async fn serve(self: Arc<Self>, mut tcp: TcpStream) {
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

        if let Some(limits) = &self.config.dsql_rules
            && let Some(why) = self.over_connection_limits(limits)
        {
            self.state.dsql.refused.fetch_add(1, Ordering::SeqCst);
            return client.write_all(&fatal(why.0, why.1)).await;
        }
        let mut upstream = match self.connect_upstream().await {
            Ok(u) => u,
            Err(e) => {
                client.write_all(&fatal("57P03", &format!("the database system is not available: {e}"))).await?;
                return Ok(());
            }
        };
        let startup = match &self.config.dsql_rules {
            Some(limits) => dsql_session(&startup, limits),
            None => startup,
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
        *self.state.last_user.lock().unwrap_or_else(|e| e.into_inner()) = Some(user.clone());

        let mut dropped = self.drop_sessions.subscribe();
        self.state.active.fetch_add(1, Ordering::SeqCst);
        let too_old = async {
            match self.config.max_session_age {
                Some(age) => tokio::time::sleep(age).await,
                None => std::future::pending().await,
            }
        };
        let relay = async {
            if self.config.dsql_rules.is_some() || self.state.conflicts.permille.load(Ordering::SeqCst) > 0 {
                let session = dsql::shared::Session {
                    limits: self.config.dsql_rules.as_ref(),
                    counters: &self.state.dsql,
                    conflicts: &self.state.conflicts,
                };
                dsql::relay::relay(&mut client, &mut upstream, session).await
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

    /// DSQL's connection quotas: connections open at once, and new connections per second
    /// (<https://docs.aws.amazon.com/aurora-dsql/latest/userguide/CHAP_quotas.html>).
    /// The SQLSTATE and message of a refused connection.
    fn over_connection_limits(&self, limits: &dsql::Limits) -> Option<(&'static str, &'static str)> {
        if self.state.active.load(Ordering::SeqCst) >= limits.max_connections {
            return Some(("53300", "Unable to accept connection, too many open connections."));
        }
        let mut rate = self.state.connection_rate.lock().unwrap_or_else(|e| e.into_inner());
        if !rate.admit(limits) {
            return Some(("53400", "Unable to accept connection, rate exceeded."));
        }
        None
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

/// The startup packet with the session settings that make PostgreSQL behave as DSQL does:
/// snapshot isolation (DSQL's only level), and no waiting for row locks (DSQL never waits; the
/// relay answers the timeout as the conflict DSQL would report).
fn dsql_session(startup: &[u8], limits: &dsql::Limits) -> Vec<u8> {
    let mut out = startup[..startup.len().saturating_sub(1)].to_vec();
    let lock_ms = limits.lock_wait.as_millis().max(1);
    for (k, v) in
        [("default_transaction_isolation", "repeatable read".to_string()), ("lock_timeout", format!("{lock_ms}ms"))]
    {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out.push(0);
    out
}
