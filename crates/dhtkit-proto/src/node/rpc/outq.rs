//! The outgoing datagram queue: one byte arena plus a queue of (destination, range).
//!
//! Replies are encoded straight into the arena, so queueing a datagram does not allocate once
//! the arena has grown; the arena is reset whenever the queue drains.

use std::collections::VecDeque;
use std::net::SocketAddr;

#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    arena: Vec<u8>,
    queue: VecDeque<(SocketAddr, u32, u32)>,
    /// Free both buffers once the queue is next drained.
    release: bool,
}

impl OutQueue {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Appends a datagram written by `write`; returns false (and writes nothing) if the queue
    /// already holds `max` datagrams.
    pub(crate) fn push(
        &mut self,
        dest: SocketAddr,
        max: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        if self.queue.len() >= max {
            return false;
        }
        if self.queue.is_empty() {
            self.arena.clear();
        }
        if self.arena.capacity() == 0 {
            // A query or a reply with nodes at once (not four reallocations).
            self.arena.reserve(256);
        }
        let start = self.arena.len();
        write(&mut self.arena);
        let end = self.arena.len();
        self.queue.push_back((dest, start as u32, end as u32));
        true
    }

    pub(crate) fn pop(&mut self) -> Option<(SocketAddr, &[u8])> {
        let Some((dest, s, e)) = self.queue.pop_front() else {
            if self.release {
                self.release_when_empty();
            }
            return None;
        };
        Some((dest, &self.arena[s as usize..e as usize]))
    }

    /// Frees the buffers once the queue is next found empty (now, if it is): what an idle
    /// node should not carry.
    pub(crate) fn release_when_empty(&mut self) {
        if self.queue.is_empty() {
            self.arena = Vec::new();
            self.queue = VecDeque::new();
            self.release = false;
        } else {
            self.release = true;
        }
    }
}
