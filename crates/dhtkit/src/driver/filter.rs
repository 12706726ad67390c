//! Banned IPv4 sources dropped in the kernel: a classic BPF socket filter (Linux) built from
//! the core's ban list, so that a banned flood never reaches the node's socket queue. On
//! loopback and on most NICs the filter runs in the softirq that delivers the datagram, not
//! in this process.
//!
//! The program loads the source address (`SKF_NET_OFF + 12`) and looks it up in the sorted
//! list, in groups of [`GROUP`]: one comparison with each group's largest address, then the
//! members of the one group that can hold it. At [`MAX_KERNEL_BANS`] that is at most 64
//! comparisons per datagram, and jump offsets stay within cBPF's 8 bits.

use std::net::Ipv4Addr;

/// Most banned addresses put in the filter (the most recently banned); the node drops the
/// rest itself.
pub(crate) const MAX_KERNEL_BANS: usize = 1024;
/// Addresses per group.
const GROUP: usize = 32;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const RET_K: u16 = 0x06;
/// `SKF_NET_OFF` (-0x100000) plus the source address's offset in the IPv4 header.
const SRC_ADDR: u32 = 0xfff0_0000 + 12;
const ACCEPT: u32 = u32::MAX;
const DROP: u32 = 0;

/// One cBPF instruction: code, jump-if-true, jump-if-false, constant.
pub(crate) type Insn = (u16, u8, u8, u32);

/// The filter that drops datagrams from `banned` and accepts everything else.
pub(crate) fn program(banned: &[Ipv4Addr]) -> Vec<Insn> {
    let mut ips: Vec<u32> = banned.iter().map(|ip| u32::from(*ip)).collect();
    ips.sort_unstable();
    ips.dedup();
    ips.truncate(MAX_KERNEL_BANS);
    let mut p = vec![(LD_W_ABS, 0, 0, SRC_ADDR)];
    for g in ips.chunks(GROUP) {
        let n = g.len() as u8;
        let last = *g.last().expect("chunks are not empty");
        // Above this group: skip its members and its two returns.
        p.push((JGT_K, n + 2, 0, last));
        for (i, ip) in g.iter().enumerate() {
            // To this group's DROP, past the remaining members and the ACCEPT.
            p.push((JEQ_K, n - i as u8, 0, *ip));
        }
        // Not above the group and not in it: not in any later group either.
        p.push((RET_K, 0, 0, ACCEPT));
        p.push((RET_K, 0, 0, DROP));
    }
    p.push((RET_K, 0, 0, ACCEPT));
    p
}

/// Installs `prog` on the socket (replacing any earlier filter), or removes the filter when
/// nothing is banned.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn install(socket: &tokio::net::UdpSocket, banned: &[Ipv4Addr]) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(socket);
    if banned.is_empty() {
        return match sock.detach_filter() {
            // ENOENT: there was none.
            Err(e) if e.raw_os_error() == Some(2) => Ok(()),
            r => r,
        };
    }
    let prog: Vec<socket2::SockFilter> = program(banned)
        .into_iter()
        .map(|(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k))
        .collect();
    sock.attach_filter(&prog)
}

/// No socket filters here: the node drops banned datagrams itself.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn install(_: &tokio::net::UdpSocket, _: &[Ipv4Addr]) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "socket filters are Linux-only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the subset of cBPF that [`program`] uses on a datagram from `src`.
    fn run(prog: &[Insn], src: Ipv4Addr) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        for _ in 0..prog.len() + 1 {
            let (code, jt, jf, k) = prog[pc];
            match code {
                LD_W_ABS => {
                    assert_eq!(k, SRC_ADDR);
                    a = u32::from(src);
                    pc += 1;
                }
                JEQ_K | JGT_K => {
                    let hit = if code == JEQ_K { a == k } else { a > k };
                    pc += 1 + if hit { jt } else { jf } as usize;
                }
                RET_K => return k,
                _ => panic!("unexpected instruction {code:#x}"),
            }
            assert!(pc < prog.len(), "jumped past the end");
        }
        panic!("no return")
    }

    #[test]
    fn drops_exactly_the_banned() {
        let ip = |i: u32| Ipv4Addr::from(0x7f50_0000 + i * 7);
        for n in [0usize, 1, 31, 32, 33, 100, 1024, 1500] {
            let banned: Vec<Ipv4Addr> = (0..n as u32).map(ip).collect();
            let p = program(&banned);
            assert!(p.len() <= 4096, "cBPF's limit");
            for (i, b) in banned.iter().enumerate().take(MAX_KERNEL_BANS) {
                assert_eq!(run(&p, *b), DROP, "{b} of {n}");
                // Neighbours, below the first and above the last, pass.
                let next = Ipv4Addr::from(u32::from(*b) + 1);
                assert_eq!(run(&p, next), ACCEPT, "{next} of {n}");
                if i == 0 {
                    assert_eq!(run(&p, Ipv4Addr::from(u32::from(*b) - 1)), ACCEPT);
                }
            }
            assert_eq!(run(&p, Ipv4Addr::new(8, 8, 8, 8)), ACCEPT);
            assert_eq!(run(&p, Ipv4Addr::new(1, 1, 1, 1)), ACCEPT);
            assert_eq!(run(&p, Ipv4Addr::new(255, 255, 255, 255)), ACCEPT);
        }
    }
}
