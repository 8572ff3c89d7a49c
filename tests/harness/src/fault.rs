//! A TCP proxy that can be told to misbehave, for faults a real node only
//! shows by accident: it sits between a client and a real endpoint (anvil)
//! and, depending on its mode, passes traffic through, refuses connections
//! (closed at once, so the client sees a reset or an empty reply) or stalls
//! them (accepted, never answered, so the client times out).
//!
//! The proxy is a mock of the network only; everything behind it is real.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// What the proxy does with the next connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward bytes both ways.
    Pass,
    /// Close every connection at once.
    Refuse,
    /// Hold every connection open without answering.
    Stall,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    mode: watch::Sender<FaultMode>,
    connections: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (mode, watcher) = watch::channel(FaultMode::Pass);
        let connections = Arc::new(AtomicU64::new(0));
        let task = {
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::Relaxed);
                    let mut watcher = watcher.clone();
                    let current = *watcher.borrow_and_update();
                    // Each connection lives until the mode changes, so kept-alive client
                    // connections see the new mode on their next request.
                    tokio::spawn(async move {
                        match current {
                            FaultMode::Refuse => drop(inbound),
                            FaultMode::Stall => {
                                let _ = watcher.changed().await;
                            }
                            FaultMode::Pass => {
                                if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                                    tokio::select! {
                                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                                        _ = watcher.changed() => {}
                                    }
                                }
                            }
                        }
                    });
                }
            })
        };
        Ok(Self {
            address,
            mode,
            connections,
            task,
        })
    }

    /// The proxy's URL for HTTP JSON-RPC clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Switches the mode; open connections are closed so that every request after the switch sees it.
    pub fn set(&self, mode: FaultMode) {
        self.mode.send_replace(mode);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
