//! The public port of a test server, held for the server's whole life.
//!
//! A server that picks a free port, releases it and binds it again later
//! (to resume after an outage) races every other process on the machine
//! for it; CI lost that race with `AddrInUse`. The front binds port 0 once
//! and keeps the listener; the server behind it may stop, restart on
//! another port, or be cut off mid-call, and clients never notice the
//! port change.

use super::ServiceError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use tokio::sync::watch;

pub struct TcpFront {
    port: u16,
    /// The server's own port; 0 while it is down.
    backend: Arc<AtomicU16>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
}

impl TcpFront {
    /// Binds a free loopback port now and forwards it to `backend` (0:
    /// down until [`TcpFront::up`]).
    pub fn start(backend: u16) -> Result<TcpFront, ServiceError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(ServiceError::io("binding the front's port"))?;
        listener
            .set_nonblocking(true)
            .map_err(ServiceError::io("setting the front's listener nonblocking"))?;
        let port = listener
            .local_addr()
            .map_err(ServiceError::io("reading the front's port"))?
            .port();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ServiceError::io("starting the front's runtime"))?;
        let front = TcpFront {
            port,
            backend: Arc::new(AtomicU16::new(backend)),
            cut: watch::channel(0).0,
        };
        let (target, cut) = (front.backend.clone(), front.cut.clone());
        std::thread::spawn(move || runtime.block_on(serve(listener, target, cut)));
        Ok(front)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's own port; 0 while it is down.
    #[cfg(test)]
    pub fn backend(&self) -> u16 {
        self.backend.load(Ordering::SeqCst)
    }

    /// Forwards new connections to the server on `backend`.
    pub fn up(&self, backend: u16) {
        self.backend.store(backend, Ordering::SeqCst);
    }

    /// An outage: open connections are cut and new ones closed at once.
    pub fn down(&self) {
        self.backend.store(0, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }
}

async fn serve(listener: std::net::TcpListener, target: Arc<AtomicU16>, cut: watch::Sender<u64>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let backend = target.load(Ordering::SeqCst);
        if backend == 0 {
            // Down: reset at once, as a host with nothing on the port does.
            let _ = socket2::SockRef::from(&client).set_linger(Some(std::time::Duration::ZERO));
            continue;
        }
        let mut cut = cut.subscribe();
        cut.mark_unchanged();
        tokio::spawn(async move {
            let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
            else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {}
            }
        });
    }
}
