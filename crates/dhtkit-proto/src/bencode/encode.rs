//! Allocation-free bencode writers used by the KRPC encoder.

/// Appends `bytes` as a bencoded string (`<len>:<bytes>`).
#[inline]
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_decimal(out, bytes.len() as u64, false);
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Appends `i` as a bencoded integer (`i<n>e`).
#[inline]
pub fn put_int(out: &mut Vec<u8>, i: i64) {
    out.push(b'i');
    put_decimal(out, i.unsigned_abs(), i < 0);
    out.push(b'e');
}

/// Appends a dictionary entry whose value is a byte string.
#[inline]
pub fn put_key_bytes(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    put_bytes(out, key);
    put_bytes(out, value);
}

/// Appends a dictionary entry whose value is an integer.
#[inline]
pub fn put_key_int(out: &mut Vec<u8>, key: &[u8], value: i64) {
    put_bytes(out, key);
    put_int(out, value);
}

fn put_decimal(out: &mut Vec<u8>, mut n: u64, negative: bool) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}
