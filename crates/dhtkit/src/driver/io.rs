//! Socket I/O of the driver: batched reads (`recvmmsg` through quinn-udp) into the core, and
//! sends that wait only when a socket buffer is full.

use std::net::SocketAddr;

use dhtkit_proto::{Event, Instant, Node};
use tokio::net::UdpSocket;
use tokio::sync::broadcast;

use super::{Driver, RECV_BATCH};

/// Receive buffers for one batched read (`recvmmsg` on Linux): slots of [`RECV_SLOT`] bytes.
/// A slot may hold several datagrams of one sender when the kernel coalesces them (GRO).
pub(super) const RECV_SLOTS: usize = 32;
pub(super) const RECV_SLOT: usize = 16 * 1024;

impl Driver {
    /// Reads what the first socket holds, a batch of up to [`RECV_SLOTS`] buffers per system
    /// call, until it is empty or [`RECV_BATCH`] datagrams were handled; returns how many,
    /// and whether the socket was left empty.
    pub(super) fn recv_batches(
        &mut self,
        slots: &mut [u8],
        meta: &mut [quinn_udp::RecvMeta; RECV_SLOTS],
    ) -> (usize, bool) {
        let Some(udp) = &self.udp else {
            return (0, true);
        };
        let now = self.now();
        read_batched(
            &mut self.node,
            &self.events,
            &self.socket,
            udp,
            now,
            slots,
            meta,
        )
    }

    /// Reads what the second (IPv6) socket holds, up to [`RECV_BATCH`] datagrams: in batches
    /// when it has batched receive, one by one otherwise.
    pub(super) fn recv_second(
        &mut self,
        slots: &mut [u8],
        meta: &mut [quinn_udp::RecvMeta; RECV_SLOTS],
    ) {
        let Some(second) = &self.second else {
            return;
        };
        let now = self.now();
        match &second.udp {
            Some(udp) => {
                read_batched(
                    &mut self.node,
                    &self.events,
                    &second.socket,
                    udp,
                    now,
                    slots,
                    meta,
                );
            }
            None => {
                for _ in 0..RECV_BATCH {
                    let Ok((n, from)) = second.socket.try_recv_from(slots) else {
                        break;
                    };
                    self.node.handle_datagram(now, from, &slots[..n]);
                }
            }
        }
    }
}

/// Reads what `socket` holds into `node`, a batch of up to [`RECV_SLOTS`] buffers per
/// system call, until it is empty or [`RECV_BATCH`] datagrams were handled; returns how many,
/// and whether the socket was left empty.
#[allow(clippy::too_many_arguments)]
fn read_batched(
    node: &mut Node,
    events: &broadcast::Sender<Event>,
    socket: &UdpSocket,
    udp: &quinn_udp::UdpSocketState,
    now: Instant,
    slots: &mut [u8],
    meta: &mut [quinn_udp::RecvMeta; RECV_SLOTS],
) -> (usize, bool) {
    let mut handled = 0;
    let mut drained = false;
    while handled < RECV_BATCH {
        let mut chunks = slots.chunks_exact_mut(RECV_SLOT);
        let mut bufs: [std::io::IoSliceMut<'_>; RECV_SLOTS] = std::array::from_fn(|_| {
            std::io::IoSliceMut::new(chunks.next().expect("RECV_SLOTS slots"))
        });
        let r = socket.try_io(tokio::io::Interest::READABLE, || {
            udp.recv(socket.into(), &mut bufs, meta)
        });
        let n = match r {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                drained = true;
                break;
            }
            Err(e) => {
                // ICMP port-unreachable surfaces here on Linux; the node carries on.
                let _ = events.send(Event::SocketError {
                    message: e.to_string(),
                });
                break;
            }
        };
        for (m, b) in meta.iter().zip(bufs.iter()).take(n) {
            let data = &b[..m.len.min(b.len())];
            // Coalesced datagrams (GRO) sit `stride` bytes apart.
            for d in data.chunks(m.stride.max(1)) {
                node.handle_datagram(now, m.addr, d);
                handled += 1;
            }
        }
        if n < RECV_SLOTS {
            drained = true;
            break;
        }
    }
    (handled, drained)
}

/// Sends one datagram: straight to the socket, waiting for room only when its buffer is full.
pub(super) async fn send_one(socket: &UdpSocket, payload: &[u8], dest: SocketAddr) {
    let r = match socket.try_send_to(payload, dest) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => socket.send_to(payload, dest).await,
        r => r,
    };
    if let Err(e) = r {
        tracing::debug!("send to {dest} failed: {e}");
    }
}
