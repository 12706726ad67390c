//! Batched sends on Linux: the datagrams the core queued in one wake-up are copied into fixed
//! slots and go out in one `sendmmsg` system call per [`SLOTS`] (up to 32 replies for the
//! price of one call, where `send_to` costs one each). Nothing is allocated per send: the
//! slots and addresses are allocated once with the driver.
//!
//! This is the one `unsafe` block in the driver; BENCHMARKS.md has the load runs that show it
//! pays (replies per CPU-second with and without it).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;

use socket2::SockAddr;

/// Datagrams per system call.
pub(crate) const SLOTS: usize = 32;
/// Largest datagram a slot holds; larger ones are sent on their own.
pub(crate) const SLOT: usize = 1536;

/// Datagrams waiting to go out together.
pub(crate) struct SendBatch {
    bufs: Box<[u8]>,
    lens: [usize; SLOTS],
    addrs: Box<[SockAddr]>,
    dests: [SocketAddr; SLOTS],
    /// Queued datagrams are `start..end`.
    start: usize,
    end: usize,
}

impl SendBatch {
    pub(crate) fn new() -> SendBatch {
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        SendBatch {
            bufs: vec![0u8; SLOTS * SLOT].into_boxed_slice(),
            lens: [0; SLOTS],
            addrs: (0..SLOTS).map(|_| SockAddr::from(unspecified)).collect(),
            dests: [unspecified; SLOTS],
            start: 0,
            end: 0,
        }
    }

    /// Queues a datagram; false (and nothing queued) if the batch is full or the datagram
    /// does not fit a slot.
    pub(crate) fn push(&mut self, payload: &[u8], dest: SocketAddr) -> bool {
        if self.end == SLOTS || payload.len() > SLOT {
            return false;
        }
        let i = self.end;
        self.bufs[i * SLOT..i * SLOT + payload.len()].copy_from_slice(payload);
        self.lens[i] = payload.len();
        self.addrs[i] = SockAddr::from(dest);
        self.dests[i] = dest;
        self.end += 1;
        true
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(crate) fn is_full(&self) -> bool {
        self.end == SLOTS
    }

    /// The first queued datagram and its destination.
    pub(crate) fn first(&self) -> Option<(&[u8], SocketAddr)> {
        (!self.is_empty()).then(|| {
            let i = self.start;
            (&self.bufs[i * SLOT..i * SLOT + self.lens[i]], self.dests[i])
        })
    }

    /// Drops every queued datagram.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Drops the first queued datagram (sent some other way, or refused).
    pub(crate) fn skip_first(&mut self) {
        if !self.is_empty() {
            self.start += 1;
        }
        if self.is_empty() {
            self.clear();
        }
    }

    /// Sends as many queued datagrams as the socket takes in one `sendmmsg`, and drops them
    /// from the batch. Returns how many went; `WouldBlock` when the socket buffer is full, or
    /// the error of the first datagram when none went (the caller drops that one).
    pub(crate) fn send(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.end - self.start;
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: `iovec` and `mmsghdr` are plain C structs of integers and pointers, for which
        // all-zero bytes are a valid value (null pointers, zero lengths).
        let mut iov: [libc::iovec; SLOTS] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; SLOTS] = unsafe { std::mem::zeroed() };
        // Every pointer comes from one base pointer per array, taken once, so that no later
        // borrow of an array invalidates pointers already stored.
        let bufs = self.bufs.as_mut_ptr();
        for (k, v) in iov.iter_mut().enumerate().take(n) {
            let i = self.start + k;
            v.iov_base = bufs.wrapping_add(i * SLOT).cast();
            v.iov_len = self.lens[i];
        }
        let iovs = iov.as_mut_ptr();
        for (k, h) in hdrs.iter_mut().enumerate().take(n) {
            let i = self.start + k;
            let h = &mut h.msg_hdr;
            h.msg_name = self.addrs[i].as_ptr() as *mut libc::c_void;
            h.msg_namelen = self.addrs[i].len();
            h.msg_iov = iovs.wrapping_add(k);
            h.msg_iovlen = 1;
        }
        // SAFETY: `hdrs[..n]` are initialised above. Each points to one `iovec` in `iov` and
        // to one address in `self.addrs`; each `iovec` points into `self.bufs` at a slot
        // start, with a length of at most SLOT (checked in `push`), so inside the buffer.
        // `iov`, `hdrs`, `self.bufs` and `self.addrs` are all borrowed for the whole call and
        // are neither moved nor freed during it; the kernel only reads the buffers and
        // addresses and writes only `msg_len` of `hdrs[..n]`. `n <= SLOTS` fits a c_uint.
        // `fd` is the driver's open socket.
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let sent = r as usize;
        self.start += sent;
        if self.is_empty() {
            self.clear();
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_arrives_whole_and_in_order() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rx2 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut b = SendBatch::new();
        for i in 0..SLOTS {
            let to = if i % 2 == 0 { &rx } else { &rx2 };
            let msg = format!("datagram {i}").repeat(i + 1);
            assert!(b.push(msg.as_bytes(), to.local_addr().unwrap()));
        }
        assert!(b.is_full());
        assert!(!b.push(b"one too many", rx.local_addr().unwrap()));
        assert!(!SendBatch::new().push(&[0; SLOT + 1], rx.local_addr().unwrap()));
        let mut sent = 0;
        while !b.is_empty() {
            sent += b.send(tx.as_raw_fd()).unwrap();
        }
        assert_eq!(sent, SLOTS);
        let mut buf = [0u8; 2048];
        for i in 0..SLOTS {
            let from = if i % 2 == 0 { &rx } else { &rx2 };
            let (n, src) = from.recv_from(&mut buf).unwrap();
            assert_eq!(src, tx.local_addr().unwrap());
            assert_eq!(&buf[..n], format!("datagram {i}").repeat(i + 1).as_bytes());
        }
    }

    #[test]
    fn an_unreachable_destination_is_reported_and_skipped() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut b = SendBatch::new();
        // An IPv6 destination on an IPv4 socket fails; the datagrams around it still go.
        assert!(b.push(b"first", rx.local_addr().unwrap()));
        assert!(b.push(b"bad", "[::1]:9".parse().unwrap()));
        assert!(b.push(b"third", rx.local_addr().unwrap()));
        let mut got = Vec::new();
        let mut errors = 0;
        while !b.is_empty() {
            match b.send(tx.as_raw_fd()) {
                Ok(n) => got.push(n),
                Err(_) => {
                    errors += 1;
                    b.skip_first();
                }
            }
        }
        assert_eq!((got, errors), (vec![1, 1], 1));
        let mut buf = [0u8; 64];
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        let (n, _) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"third");
    }
}
