//! The bytes of an API connection: [`Watched`], the accepted stream as
//! hyper reads and writes it, and [`Guarded`], an answer's body that marks
//! its request ended when it is written to the end (or dropped).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::activity::{Activity, RequestGuard};
use super::{canned, Slot};

/// An answer's body, holding its request's [`RequestGuard`].
pub(super) struct Guarded {
    pub(super) body: Body,
    pub(super) _guard: RequestGuard,
}

impl hyper::body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An accepted stream as the connection reads and writes it: reads mark
/// the start of a request head, hyper's own error answers are made
/// Docker-shaped on their way out, and the connection's [`Slot`] is
/// given back when the stream (or its upgraded remainder) is dropped.
pub(super) struct Watched<S> {
    pub(super) inner: S,
    pub(super) activity: Arc<Activity>,
    /// A rewritten answer being written: its bytes, how many went out,
    /// and the length of the original it stands for.
    pub(super) rewriting: Option<(Vec<u8>, usize, usize)>,
    pub(super) _slot: Slot,
}

impl<S: AsyncWrite + Unpin> Watched<S> {
    /// Writes the rewritten answer out; `Ready(len of the original)` once
    /// all of it went.
    fn poll_rewriting(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, original)) = &mut self.rewriting {
            if *written == bytes.len() {
                let original = *original;
                self.rewriting = None;
                return Poll::Ready(Ok(original));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }

    /// Starts writing a Docker-shaped replacement if `buf` is one of
    /// hyper's own error answers.
    fn start_rewrite(&mut self, buf: &[u8]) -> bool {
        if !canned::may_be_canned(buf) || self.activity.is_upgraded() {
            return false;
        }
        match canned::rewrite(buf) {
            Some(bytes) => {
                self.rewriting = Some((bytes, 0, buf.len()));
                true
            }
            None => false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.rewriting.is_some() || self.start_rewrite(buf) {
            return self.poll_rewriting(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.rewriting.is_some() {
            return self.poll_rewriting(cx);
        }
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            if self.start_rewrite(only) {
                return self.poll_rewriting(cx);
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.rewriting.is_some() {
            match self.poll_rewriting(cx) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
