//! A TCP stream wrapper that counts network round trips: every time the client writes after it
//! has read, it had to wait for the server first. A pipelined request (BEGIN, scope, statement,
//! COMMIT sent together) costs one; a request that waits between statements costs more. The
//! count is exact, independent of the machine's speed, so tests can assert it.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug, Default)]
pub struct Counters {
    pub round_trips: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
}

#[derive(Debug)]
pub struct CountingStream<S> {
    inner: S,
    counters: Arc<Counters>,
    /// True when the last thing seen was data from the server (or nothing yet).
    awaiting_write: bool,
}

impl<S> CountingStream<S> {
    pub fn new(inner: S, counters: Arc<Counters>) -> Self {
        Self { inner, counters, awaiting_write: true }
    }

    fn record_write(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.counters.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
        if self.awaiting_write {
            self.awaiting_write = false;
            self.counters.round_trips.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counters.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
            self.awaiting_write = true;
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = res {
            self.record_write(n);
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            self.record_write(n);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
