//! A TCP proxy a test can cut and restore, to take a service away without stopping it.
//!
//! Stopping the shared Redis or PostgreSQL would break every other test using
//! it; a proxy per test, on port 0, lets one test lose its server alone.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs, lookup_host};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Forwards every connection on [`TcpProxy::addr`] to one upstream address,
/// until cut.
///
/// Dropping the proxy stops it and closes its connections.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    accepting: JoinHandle<()>,
}

/// Whether new connections are let through, and a count of cuts so that a
/// connection can tell it has been cut even if the proxy was restored since.
#[derive(Clone, Copy, Debug)]
struct State {
    open: bool,
    cuts: u64,
}

impl TcpProxy {
    /// Starts a proxy on 127.0.0.1 (a free port) in front of `upstream`.
    ///
    /// # Panics
    ///
    /// When the upstream does not resolve or no local port can be bound: a
    /// test cannot go on without its proxy.
    pub async fn start(upstream: impl ToSocketAddrs) -> Self {
        match Self::try_start(upstream).await {
            Ok(proxy) => proxy,
            Err(error) => panic!("the test proxy could not start: {error}"),
        }
    }

    /// Like [`TcpProxy::start`], returning the error instead.
    pub async fn try_start(upstream: impl ToSocketAddrs) -> io::Result<Self> {
        let upstream = lookup_host(upstream)
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "upstream has no address"))?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;

        let (state, watcher) = watch::channel(State {
            open: true,
            cuts: 0,
        });
        let accepting = tokio::spawn(accept(listener, upstream, watcher));

        Ok(Self {
            addr,
            state,
            accepting,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every live connection and closes new ones as soon as they are
    /// accepted, so clients fail at once instead of waiting on a timeout.
    pub fn cut(&self) {
        self.state.send_modify(|state| {
            state.open = false;
            state.cuts += 1;
        });
    }

    /// Lets new connections through again.
    pub fn restore(&self) {
        self.state.send_modify(|state| state.open = true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        // Connections end by themselves once the state's sender is gone.
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, state: watch::Receiver<State>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of file descriptors and the like: pause, do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };

        let now = *state.borrow();
        if !now.open {
            // Accepted only to be closed: the client sees its connection end
            // at once rather than waiting for a connect timeout.
            drop(inbound);
            continue;
        }
        tokio::spawn(forward(inbound, upstream, state.clone(), now.cuts));
    }
}

/// Copies both ways until either side closes or the proxy is cut (or dropped).
async fn forward(
    mut inbound: TcpStream,
    upstream: SocketAddr,
    mut state: watch::Receiver<State>,
    cuts: u64,
) {
    let cut = async move {
        // An error means the proxy was dropped, which ends the connection too.
        let _ = state.wait_for(|now| now.cuts != cuts).await;
    };

    tokio::select! {
        () = relay(&mut inbound, upstream) => {}
        () = cut => {}
    }
}

async fn relay(inbound: &mut TcpStream, upstream: SocketAddr) {
    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
        return;
    };

    // Either side's error only means the connection is over.
    let _ = tokio::io::copy_bidirectional(inbound, &mut outbound).await;
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An upstream that echoes whatever it receives.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();

        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut reader, mut writer) = stream.split();
                    let _ = tokio::io::copy(&mut reader, &mut writer).await;
                });
            }
        });
        addr
    }

    async fn echoes(stream: &mut TcpStream) -> bool {
        let mut reply = [0; 4];

        stream.write_all(b"ping").await.is_ok()
            && stream.read_exact(&mut reply).await.is_ok()
            && &reply == b"ping"
    }

    /// Whether the peer closes the connection within a second.
    async fn closes_promptly(stream: &mut TcpStream) -> bool {
        let mut buffer = [0; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await;

        matches!(read, Ok(Ok(0) | Err(_)))
    }

    #[tokio::test]
    async fn bytes_pass_through_both_ways() {
        let proxy = TcpProxy::start(echo_server().await).await;

        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();

        assert!(echoes(&mut client).await);
    }

    #[tokio::test]
    async fn a_cut_closes_live_connections() {
        let proxy = TcpProxy::start(echo_server().await).await;
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(echoes(&mut client).await);

        proxy.cut();

        assert!(closes_promptly(&mut client).await);
    }

    #[tokio::test]
    async fn a_cut_proxy_closes_new_connections_at_once() {
        let proxy = TcpProxy::start(echo_server().await).await;

        proxy.cut();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();

        assert!(closes_promptly(&mut client).await);
    }

    #[tokio::test]
    async fn a_restored_proxy_forwards_new_connections_again() {
        let proxy = TcpProxy::start(echo_server().await).await;
        proxy.cut();

        proxy.restore();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();

        assert!(echoes(&mut client).await);
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_connections() {
        let proxy = TcpProxy::start(echo_server().await).await;
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(echoes(&mut client).await);

        drop(proxy);

        assert!(closes_promptly(&mut client).await);
    }

    #[tokio::test]
    async fn an_upstream_given_as_host_and_port_resolves() {
        let upstream = echo_server().await;

        let proxy = TcpProxy::try_start(format!("localhost:{}", upstream.port())).await;

        assert!(proxy.is_ok());
    }
}
