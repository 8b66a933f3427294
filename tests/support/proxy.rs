//! [`FaultProxy`]: a TCP proxy between the code under test and a
//! `redis-server` that makes Redis slow, silent or unreachable on command,
//! with no root and no `tc`/`iptables` (issue 6).
//!
//! ## Behavior
//!
//! - Listens on a free loopback port; each connection accepted gets its own
//!   connection to `127.0.0.1:<upstream port>` and a pump per direction.
//!   When the upstream refuses (the server was killed), the client's
//!   connection is reset at once, as a refused connection would be.
//! - Latency ([`FaultProxy::set_latency`], or one direction with
//!   [`FaultProxy::set_latency_toward`]): each chunk read is written that long
//!   after it was read. It is a delay line, not a sleep per chunk, so it adds
//!   latency without capping throughput; the latency in force when a chunk
//!   arrives is the one it gets.
//! - Blackhole ([`FaultProxy::blackhole`]): connections are still accepted
//!   and chunks still read, but nothing is forwarded or answered, and no
//!   socket is closed: a client waiting for a reply times out. The chunks
//!   are held, and [`FaultProxy::heal`] forwards them in order, as TCP does
//!   across a partition that heals. Bytes are never dropped from the middle
//!   of a stream: no network does that, and a client would then pair later
//!   replies with the wrong requests. To lose them, [`FaultProxy::reset_all`]
//!   too.
//! - [`FaultProxy::reset_all`]: every open connection is closed with an RST
//!   (`SO_LINGER` 0) on both sides, held chunks and all.
//! - [`FaultProxy::refuse`]: new connections are reset as soon as they are
//!   accepted; open ones carry on.
//! - [`FaultProxy::heal`]: no latency, forwarding on, accepting.
//! - Dropping the proxy stops its listener and closes every connection.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks held per direction of a connection (delayed or blackholed) before
/// the pump stops reading and lets TCP push back.
const HELD_CHUNKS: usize = 1024;

/// One direction of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Requests: client to Redis.
    ToServer,
    /// Replies and pushes: Redis to client.
    ToClient,
}

/// The faults in force; every connection watches them.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    to_server: Duration,
    to_client: Duration,
    blackhole: bool,
    refuse: bool,
    /// Bumped by each `reset_all`: connections open before it are reset.
    resets: u64,
}

impl Faults {
    fn latency(&self, direction: Direction) -> Duration {
        match direction {
            Direction::ToServer => self.to_server,
            Direction::ToClient => self.to_client,
        }
    }
}

/// A fault-injecting TCP proxy in front of a `redis-server`; see the
/// [module docs](self) for its behaviour.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    upstream_port: u16,
    faults: watch::Sender<Faults>,
    open: Arc<AtomicUsize>,
    listener: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a free loopback port, forwarding to `127.0.0.1:upstream_port`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|e| panic!("FaultProxy: cannot bind 127.0.0.1:0: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("FaultProxy: cannot read the bound port: {e}"))
            .port();
        let (faults, watching) = watch::channel(Faults::default());
        let open = Arc::new(AtomicUsize::new(0));
        let listener = tokio::spawn(accept_loop(
            listener,
            upstream_port,
            watching,
            Arc::clone(&open),
        ));
        FaultProxy {
            port,
            upstream_port,
            faults,
            open,
            listener,
        }
    }

    /// `redis://127.0.0.1:<proxy port>`, for the code under test.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The proxy's own port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port it forwards to.
    pub fn upstream_port(&self) -> u16 {
        self.upstream_port
    }

    /// Adds `latency` to each direction: a round trip takes twice as long
    /// more. `Duration::ZERO` removes it.
    pub fn set_latency(&self, latency: Duration) {
        self.faults.send_modify(|f| {
            f.to_server = latency;
            f.to_client = latency;
        });
    }

    /// Adds `latency` to one direction only.
    pub fn set_latency_toward(&self, direction: Direction, latency: Duration) {
        self.faults.send_modify(|f| match direction {
            Direction::ToServer => f.to_server = latency,
            Direction::ToClient => f.to_client = latency,
        });
    }

    /// Stops forwarding, both ways, without closing anything: reads go on,
    /// nothing is answered, chunks are held until [`heal`](Self::heal).
    pub fn blackhole(&self) {
        self.faults.send_modify(|f| f.blackhole = true);
    }

    /// Closes every open connection with an RST, on both sides.
    pub fn reset_all(&self) {
        self.faults.send_modify(|f| f.resets += 1);
    }

    /// With `true`, new connections are reset as soon as they are accepted;
    /// with `false`, they are proxied again. Open connections are untouched.
    pub fn refuse(&self, on: bool) {
        self.faults.send_modify(|f| f.refuse = on);
    }

    /// Back to normal: no latency, forwarding (held chunks go out in
    /// order), accepting.
    pub fn heal(&self) {
        self.faults.send_modify(|f| {
            f.to_server = Duration::ZERO;
            f.to_client = Duration::ZERO;
            f.blackhole = false;
            f.refuse = false;
        });
    }

    /// Connections open through the proxy now.
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept loop owns the connections' JoinSet: aborting it drops
        // the set, which aborts every connection task and closes its sockets.
        self.listener.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream_port: u16,
    faults: watch::Receiver<Faults>,
    open: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = listener.accept().await;
        while connections.try_join_next().is_some() {}
        let client = match accepted {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of file descriptors, say: back off rather than spin.
                eprintln!("FaultProxy: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if faults.borrow().refuse {
            reset(client);
            continue;
        }
        connections.spawn(serve(
            client,
            upstream_port,
            faults.clone(),
            Arc::clone(&open),
        ));
    }
}

/// Proxies one connection until both directions end, one fails, or a reset
/// is asked for.
async fn serve(
    mut client: TcpStream,
    upstream_port: u16,
    mut faults: watch::Receiver<Faults>,
    open: Arc<AtomicUsize>,
) {
    let epoch = faults.borrow().resets;
    let mut server = match TcpStream::connect((Ipv4Addr::LOCALHOST, upstream_port)).await {
        Ok(server) => server,
        Err(_) => return reset(client),
    };
    // Small Redis frames must not wait for Nagle.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _counted = Counted::new(&open);
    let reset_asked = {
        let (from_client, to_client) = client.split();
        let (from_server, to_server) = server.split();
        let up = pump(from_client, to_server, Direction::ToServer, faults.clone());
        let down = pump(from_server, to_client, Direction::ToClient, faults.clone());
        tokio::select! {
            _ = async { tokio::try_join!(up, down) } => false,
            _ = faults.wait_for(|f| f.resets != epoch) => true,
        }
    };
    if reset_asked {
        reset(client);
        reset(server);
    }
}

/// Copies `from` to `to` through a delay line; the writer side waits out
/// each chunk's latency, then any blackhole. Ends at EOF (passed on as a
/// half-close) or at the first error.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    direction: Direction,
    faults: watch::Receiver<Faults>,
) -> std::io::Result<()> {
    let (held, mut due) = mpsc::channel::<(Instant, Vec<u8>)>(HELD_CHUNKS);
    let read_faults = faults.clone();
    let read = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            let at = Instant::now() + read_faults.borrow().latency(direction);
            if held.send((at, buf[..n].to_vec())).await.is_err() {
                return Ok(());
            }
        }
    };
    let mut write_faults = faults;
    let write = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            // Err only when the proxy is gone, and its tasks with it.
            let _ = write_faults.wait_for(|f| !f.blackhole).await;
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(read, write).map(|_| ())
}

/// Closes `stream` with an RST rather than a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Counts an open connection while it lives.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(open: &'a AtomicUsize) -> Self {
        open.fetch_add(1, Ordering::AcqRel);
        Self(open)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
