//! The HTTP server around the router, and the three clocks that keep a slow
//! or silent client from holding it: a connection that sends nothing for a
//! while is closed, a request not answered in time is a 408, and shutdown
//! waits for in-flight requests only so long.
//!
//! Kept apart from the router because these are properties of connections,
//! not of routes.

use std::convert::Infallible;
use std::future::{Future, IntoFuture, pending};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::ServiceExt;
use axum::extract::Request;
use axum::response::Response;
use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_io_timeout::TimeoutStream;
use tower::Service;

/// How long the server waits on clients, and on itself at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A connection whose client sends nothing (or reads nothing of the
    /// answer) for this long is closed, an idle keep-alive one included.
    pub idle: Duration,
    /// A request not answered within this, body upload included, is a 408.
    pub request: Duration,
    /// After the shutdown signal, in-flight requests get this long to
    /// finish; then [`crate::serve`] returns regardless.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30),
            request: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then for at most
/// the shutdown grace. Connections still open after the grace are left to
/// their idle timeout, or to the end of the process, which follows.
pub(crate) async fn run<S>(
    listener: TcpListener,
    app: S,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let (signalled, on_signal) = oneshot::channel();
    let signal = async move {
        shutdown.await;
        let _ = signalled.send(());
    };
    let listener = IdleClosing {
        listener,
        idle: timeouts.idle,
    };
    let server = axum::serve(listener, ServiceExt::<Request>::into_make_service(app))
        .with_graceful_shutdown(signal);
    let grace_over = async move {
        // An error means the server ended before any signal: nothing to time.
        match on_signal.await {
            Ok(()) => tokio::time::sleep(timeouts.shutdown_grace).await,
            Err(_) => pending().await,
        }
    };

    tokio::select! {
        outcome = server.into_future() => outcome,
        () = grace_over => {
            tracing::warn!(
                grace_secs = timeouts.shutdown_grace.as_secs(),
                "requests still in flight after the shutdown grace; stopping without them"
            );
            Ok(())
        }
    }
}

/// A TCP listener whose connections fail their next read or write once it
/// has waited `idle` for the client.
struct IdleClosing {
    listener: TcpListener,
    idle: Duration,
}

impl Listener for IdleClosing {
    // Boxed: the timeout stream holds timers and so must stay pinned.
    type Io = Pin<Box<TimeoutStream<TcpStream>>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // TcpListener's own `Listener::accept` retries and logs failures.
        let (stream, address) = Listener::accept(&mut self.listener).await;
        let mut stream = TimeoutStream::new(stream);
        stream.set_read_timeout(Some(self.idle));
        stream.set_write_timeout(Some(self.idle));
        (Box::pin(stream), address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}
