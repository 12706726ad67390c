//! `dhtkit web`: the options, and serving [`dhtkit_web`] until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;

use crate::crawl::db_spec;
use crate::{parse_addr, BadInput, StopSignals};

/// `dhtkit web`.
#[derive(Args, Debug)]
pub(crate) struct WebArgs {
    /// The database: a SQLite file (default: crawl.sqlite in the per-user data directory) or
    /// a postgres:// URL. Opened read-only.
    #[arg(long)]
    pub(crate) db: Option<String>,
    /// TCP address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) bind: String,
    /// Database connections (requests beyond this many wait their turn).
    #[arg(long, default_value_t = 4)]
    pub(crate) readers: usize,
    /// The key Torznab clients (Prowlarr, Sonarr, Radarr) must send as `apikey`. Also read
    /// from DHTKIT_API_KEY.
    #[arg(long, env = "DHTKIT_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// The address the site is reached at from outside (`https://index.example`), for the
    /// absolute links in the RSS feed and Torznab; default: each request's Host.
    #[arg(long)]
    pub(crate) base_url: Option<String>,
    /// Only users in FILE may see the site (HTTP Basic): one `user:hash` a line, the hash
    /// argon2 (`dhtkit hash-password USER` writes such lines) or bcrypt (magneticow's files,
    /// `htpasswd -B`). /healthz stays open; Torznab needs only --api-key when it is set.
    #[arg(long, value_name = "FILE")]
    pub(crate) auth: Option<std::path::PathBuf>,
    /// Serve a non-loopback address without --auth: anyone who reaches it sees the index.
    #[arg(long)]
    pub(crate) public: bool,
}

/// `dhtkit hash-password [USER]`: reads a password from stdin, prints a credentials line.
pub(crate) fn hash_password(user: Option<&str>) -> Result<ExitCode, BadInput> {
    use std::io::{BufRead, IsTerminal};
    if user.is_some_and(|u| u.is_empty() || u.contains(':') || u.contains(char::is_whitespace)) {
        return Err(BadInput(
            "a user name has no colons or spaces, and is not empty".into(),
        ));
    }
    if std::io::stdin().is_terminal() {
        eprintln!("password (shown as you type; end with Enter):");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| BadInput(format!("reading the password: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(BadInput("an empty password".into()));
    }
    let hash = dhtkit_web::auth::hash_password(password).map_err(BadInput)?;
    match user {
        Some(u) => println!("{u}:{hash}"),
        None => println!("{hash}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn web(a: WebArgs) -> Result<ExitCode, BadInput> {
    let bind: SocketAddr = parse_addr(&a.bind)?;
    if a.readers == 0 || a.readers > 64 {
        return Err(BadInput("--readers must be from 1 to 64".into()));
    }
    if a.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        return Err(BadInput("--api-key must not be empty".into()));
    }
    if let Some(u) = &a.base_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(BadInput(format!(
                "--base-url {u:?} must start with http:// or https://"
            )));
        }
    }
    let auth = match &a.auth {
        None => None,
        Some(path) => Some(std::sync::Arc::new(
            dhtkit_web::auth::Credentials::load(path)
                .map_err(|e| BadInput(format!("--auth {e}")))?,
        )),
    };
    if auth.is_none() && !a.public && !bind.ip().is_loopback() {
        return Err(BadInput(format!(
            "--bind {bind} is reachable from other machines: give --auth FILE, or --public to \
             serve the index to anyone"
        )));
    }
    let mut cfg = dhtkit_web::WebConfig::new(db_spec(a.db.as_deref()));
    cfg.auth = auth;
    cfg.readers = a.readers;
    cfg.api_key = a.api_key;
    cfg.base_url = a.base_url;
    let web = dhtkit_web::Web::open(cfg)
        .await
        .map_err(|e| BadInput(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| BadInput(format!("cannot listen on {bind}: {e}")))?;
    let local = listener.local_addr().unwrap_or(bind);
    eprintln!("serving {} on http://{local}/", web.label());
    if let Some(path) = &a.auth {
        eprintln!("users from {}", path.display());
    }
    let Some(mut signals) = StopSignals::install() else {
        return Ok(ExitCode::from(2));
    };
    match dhtkit_web::serve(listener, web, async move { signals.recv().await }).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: web server: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
