//! Write tokens for `announce_peer` (BEP 5).
//!
//! A token is SHA-1 over a secret and the querier's IP address, cut to 8 bytes. The secret
//! rotates every five minutes and the previous one is still accepted, so a token lives between
//! five and ten minutes. Tokens never depend on the infohash, and a token handed to one IP is
//! useless from any other.

use std::net::IpAddr;

use rand::Rng;
use sha1::{Digest, Sha1};

/// Length of the tokens this node hands out.
pub const TOKEN_LEN: usize = 8;

/// Hands out and checks write tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
}

impl Tokens {
    /// Fresh secrets from `rng`.
    pub fn new<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut t = Tokens {
            current: [0; 16],
            previous: [0; 16],
        };
        rng.fill(&mut t.current);
        rng.fill(&mut t.previous);
        t
    }

    /// Retires the current secret (still accepted until the next rotation) and draws a new one.
    pub fn rotate<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        self.previous = self.current;
        rng.fill(&mut self.current);
    }

    /// The token for a querier at `ip`.
    pub fn token_for(&self, ip: IpAddr) -> [u8; TOKEN_LEN] {
        make(&self.current, ip)
    }

    /// True if `token` was handed to `ip` under the current or previous secret.
    pub fn validate(&self, ip: IpAddr, token: &[u8]) -> bool {
        token.len() == TOKEN_LEN
            && (make(&self.current, ip) == token || make(&self.previous, ip) == token)
    }
}

fn make(secret: &[u8; 16], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let d = h.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&d[..TOKEN_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn tokens_bind_to_ip_and_survive_one_rotation() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut t = Tokens::new(&mut rng);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let tok = t.token_for(a);
        assert!(t.validate(a, &tok));
        assert!(!t.validate(b, &tok));
        assert!(!t.validate(a, &tok[..4]));
        t.rotate(&mut rng);
        assert!(t.validate(a, &tok), "previous secret still accepted");
        t.rotate(&mut rng);
        assert!(!t.validate(a, &tok), "expired after two rotations");
    }
}
