//! `--auth FILE`: HTTP Basic authentication against a credentials file of `user:hash` lines,
//! the hash an argon2 PHC string (`$argon2id$…`, as `dhtkit hash-password` writes) or a
//! bcrypt hash (`$2a$`, `$2b$`, `$2y$`: magneticow's credentials files, `htpasswd -B`).
//!
//! Checking a password costs tens of milliseconds by design, so a stranger could keep the
//! CPU busy with wrong guesses: at most two checks run at once (others wait their turn), and
//! a user and password that checked out are remembered (as a SHA-256 of both, never the
//! password) for ten minutes, so a browser's every request costs one check per ten minutes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Users and their password hashes, loaded from a credentials file.
pub struct Credentials {
    users: HashMap<String, String>,
    /// SHA-256 of "user\0password" of recent successful checks, and when.
    recent: Mutex<HashMap<[u8; 32], Instant>>,
    checks: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.users.len())
            .finish()
    }
}

/// How long a checked password is remembered.
const REMEMBER: Duration = Duration::from_secs(600);
/// Most remembered checks.
const MAX_REMEMBERED: usize = 1024;

fn is_bcrypt(h: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| h.starts_with(p))
}

impl Credentials {
    /// Reads `path`: one `user:hash` per line; blank lines and lines starting with `#` are
    /// skipped. Any other line that is not a user and a known hash is an error naming it.
    pub fn load(path: &Path) -> Result<Credentials, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Credentials::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// [`Credentials::load`] from text.
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: not user:hash", n + 1));
            };
            let ok = if is_bcrypt(hash) {
                hash.len() == 60
            } else {
                argon2::PasswordHash::new(hash)
                    .is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
            };
            if user.is_empty() || !ok {
                return Err(format!(
                    "line {}: the hash of {user:?} is neither argon2 nor bcrypt",
                    n + 1
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err("no users".into());
        }
        Ok(Credentials {
            users,
            recent: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(2),
        })
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Never true: a file without users is refused when loaded.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    fn key(user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// True if `password` is `user`'s.
    pub async fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user).cloned() else {
            return false;
        };
        let key = Credentials::key(user, password);
        {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.get(&key).is_some_and(|t| t.elapsed() < REMEMBER) {
                return true;
            }
        }
        let Ok(_turn) = self.checks.acquire().await else {
            return false;
        };
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify(&hash, &password))
            .await
            .unwrap_or(false);
        if ok {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.retain(|_, t| t.elapsed() < REMEMBER);
            if recent.len() < MAX_REMEMBERED {
                recent.insert(key, Instant::now());
            }
        }
        ok
    }
}

fn verify(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    if is_bcrypt(hash) {
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    match argon2::PasswordHash::new(hash) {
        Ok(h) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// An argon2id hash of `password` (a PHC string, with a random salt), for a credentials file.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// The user and password of an `Authorization: Basic …` header.
pub fn basic(header: &str) -> Option<(String, String)> {
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    use base64::Engine;
    let b64 = b64.trim();
    if b64.len() > 4096 {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_headers_are_read_strictly() {
        // "alice:open sesame"
        assert_eq!(
            basic("Basic YWxpY2U6b3BlbiBzZXNhbWU="),
            Some(("alice".into(), "open sesame".into()))
        );
        assert_eq!(basic("Basic !!!!"), None);
        assert_eq!(basic("Bearer x"), None);
        assert_eq!(basic("Basic YWxpY2U="), None, "no colon");
    }

    #[tokio::test]
    async fn argon2_and_bcrypt_hashes_check_and_wrong_ones_do_not() {
        let a = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        let b = bcrypt::hash_with_salt("battery staple", 4, [7u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let c = Credentials::parse(&format!("# users\nann:{a}\n\nbob:{b}\n")).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c.check("ann", "correct horse").await);
        assert!(c.check("ann", "correct horse").await, "remembered");
        assert!(!c.check("ann", "battery staple").await);
        assert!(c.check("bob", "battery staple").await);
        assert!(!c.check("bob", "").await);
        assert!(!c.check("carol", "correct horse").await);
        for bad in [
            "",
            "# nobody\n",
            "ann\n",
            "ann:plaintext\n",
            ":$2y$04$x\n",
            "x:$2y$04$short\n",
        ] {
            assert!(Credentials::parse(bad).is_err(), "{bad:?}");
        }
    }
}
