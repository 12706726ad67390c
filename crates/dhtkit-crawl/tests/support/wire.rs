//! The seeder's side of BEP 9, for scripted peers in tests and benchmarks: the few messages a
//! peer serving metadata sends, and reading a piece request.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Sends a BEP 10 extended message `id` with `body`.
pub async fn send_ext(s: &mut TcpStream, id: u8, body: &[u8]) -> std::io::Result<()> {
    let mut m = ((body.len() + 2) as u32).to_be_bytes().to_vec();
    m.extend_from_slice(&[20, id]);
    m.extend_from_slice(body);
    s.write_all(&m).await
}

/// The piece a `ut_metadata` request (the bytes after the extended message id) asks for.
pub fn requested_piece(request: &[u8]) -> usize {
    String::from_utf8_lossy(request)
        .split("5:piecei")
        .nth(1)
        .and_then(|r| r.split('e').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The BEP 9 data message for `piece` of `info` (its header and bytes).
pub fn piece_data(info: &[u8], piece: usize) -> Vec<u8> {
    let start = (piece * 16384).min(info.len());
    let end = (start + 16384).min(info.len());
    let mut body = format!(
        "d8:msg_typei1e5:piecei{piece}e10:total_sizei{}ee",
        info.len()
    )
    .into_bytes();
    body.extend_from_slice(&info[start..end]);
    body
}
