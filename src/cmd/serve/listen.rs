//! The listening socket.

use std::net::SocketAddr;

use anyhow::Context as _;
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;

/// The accept queue length asked of the kernel (it caps it at
/// `net.core.somaxconn`): room for connection bursts, such as every client
/// reconnecting after a restart.
const BACKLOG: i32 = 8192;

/// Binds `addr`. With `reuse_port`, several hub processes can listen on the
/// same address (`SO_REUSEPORT`) and the kernel spreads connections over
/// them: that is how one machine holds more subscribers than one process
/// may have open files (they share their events through `--cluster`).
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> anyhow::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .context("cannot create a socket")?;
    socket
        .set_reuse_address(true)
        .context("cannot set SO_REUSEADDR")?;
    if reuse_port {
        #[cfg(unix)]
        socket
            .set_reuse_port(true)
            .context("cannot set SO_REUSEPORT")?;
        #[cfg(not(unix))]
        anyhow::bail!("--reuse-port needs a Unix system");
    }
    socket
        .set_nonblocking(true)
        .context("cannot make the socket non-blocking")?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr}"))?;
    socket
        .listen(BACKLOG)
        .with_context(|| format!("cannot listen on {addr}"))?;
    TcpListener::from_std(socket.into()).context("cannot register the listening socket")
}
