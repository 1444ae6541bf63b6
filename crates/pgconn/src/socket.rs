//! The database socket's settings: no Nagle delay, and a peer that vanished noticed in seconds.

use std::time::Duration;

use tokio::net::TcpStream;

/// TCP keepalive probes after this much silence...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// ...every this often...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// ...this many times before the connection is given up.
const KEEPALIVE_PROBES: u32 = 3;
/// Data sent but not acknowledged for this long ends the connection (Linux `TCP_USER_TIMEOUT`).
const USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Small messages go out at once (no Nagle delay), and a peer that vanished silently (a NAT or
/// a failover that drops the flow) is noticed within seconds, not at the request's deadline.
pub fn tune_socket(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let sock = socket2::SockRef::from(tcp);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "TCP keepalive not set");
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = sock.set_tcp_user_timeout(Some(USER_TIMEOUT)) {
        tracing::debug!(error = %e, "TCP_USER_TIMEOUT not set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn database_sockets_notice_a_silent_peer_in_seconds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        tune_socket(&tcp);
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(sock.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
        #[cfg(target_os = "linux")]
        assert_eq!(sock.tcp_user_timeout().unwrap(), Some(USER_TIMEOUT));
        assert!(tcp.nodelay().unwrap());
    }
}
