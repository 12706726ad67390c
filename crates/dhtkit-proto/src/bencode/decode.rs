//! A bounded, non-recursive bencode decoder that borrows from its input.
//!
//! The decoder tokenises a whole datagram into a flat array of [`Tok`]s that it owns and reuses,
//! so decoding a message allocates nothing once the array has grown to the size of the largest
//! message seen. The returned [`Value`] is a checked view: every token was validated before the
//! view is handed out, so accessors never fail on structure, only on type.

use std::fmt;

/// Limits applied while decoding untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries accepted (the top level counts as 1).
    pub max_depth: usize,
    /// Most values (strings, integers, lists, dictionaries) in one document.
    pub max_tokens: usize,
    /// Longest accepted byte string.
    pub max_string_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 16,
            max_tokens: 2048,
            max_string_len: 64 * 1024,
        }
    }
}

/// What went wrong while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended inside a value.
    UnexpectedEof,
    /// A byte that cannot start or continue a value here.
    UnexpectedByte(u8),
    /// Nesting went deeper than [`Limits::max_depth`].
    TooDeep,
    /// The document has more values than [`Limits::max_tokens`].
    TooManyValues,
    /// A string is longer than [`Limits::max_string_len`] or its length does not parse.
    BadStringLength,
    /// An integer is malformed (empty, leading zero, `-0`) or does not fit in an `i64`.
    BadInteger,
    /// A dictionary key is not a byte string.
    NonStringKey,
    /// Bytes remain after the top-level value.
    TrailingData,
}

/// A decoding error: what and at which byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bencode: {kind} at offset {offset}")]
pub struct DecodeError {
    /// The kind of error.
    pub kind: ErrorKind,
    /// Byte offset in the input where it was detected.
    pub offset: usize,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnexpectedEof => f.write_str("unexpected end of input"),
            ErrorKind::UnexpectedByte(b) => write!(f, "unexpected byte 0x{b:02x}"),
            ErrorKind::TooDeep => f.write_str("nesting too deep"),
            ErrorKind::TooManyValues => f.write_str("too many values"),
            ErrorKind::BadStringLength => f.write_str("bad string length"),
            ErrorKind::BadInteger => f.write_str("bad integer"),
            ErrorKind::NonStringKey => f.write_str("dictionary key is not a string"),
            ErrorKind::TrailingData => f.write_str("trailing data after value"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokKind {
    Int,
    Bytes,
    List,
    Dict,
}

/// One decoded value: where its encoding lies in the input and where its subtree ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tok {
    kind: TokKind,
    /// Offset of the first byte of the encoding.
    start: u32,
    /// Offset of the payload: string contents or integer digits.
    data: u32,
    /// One past the last byte of the encoding (for strings and ints, one past the payload).
    end: u32,
    /// Index of the token following this value's whole subtree.
    next: u32,
}

/// A reusable decoder. Keep one per socket and call [`Decoder::decode`] for every datagram.
#[derive(Debug, Default)]
pub struct Decoder {
    tokens: Vec<Tok>,
    /// Open containers: (token index, direct children so far).
    stack: Vec<(u32, u32)>,
    limits: Limits,
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            tokens: Vec::new(),
            stack: Vec::new(),
            limits,
        }
    }

    /// Frees the working buffers (they grow again with the next message): for a decoder
    /// that will sit idle for a while.
    pub fn release(&mut self) {
        self.tokens = Vec::new();
        self.stack = Vec::new();
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decodes exactly one value spanning all of `buf`.
    pub fn decode<'a>(&'a mut self, buf: &'a [u8]) -> Result<Value<'a>, DecodeError> {
        self.tokenise(buf)?;
        Ok(Value {
            buf,
            toks: &self.tokens,
            idx: 0,
        })
    }

    fn tokenise(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        self.tokens.clear();
        self.stack.clear();
        if self.tokens.capacity() == 0 {
            // Room for a typical KRPC message at once (after `release`, growing by doubling
            // would reallocate four or five times).
            self.tokens.reserve(32);
            self.stack.reserve(4);
        }
        let limits = self.limits;
        let err = |kind, offset| Err(DecodeError { kind, offset });
        if buf.len() > u32::MAX as usize {
            return err(ErrorKind::BadStringLength, 0);
        }
        let mut pos = 0usize;
        loop {
            // Inside a dictionary, every other value must be a string key.
            if let Some(&(open, children)) = self.stack.last() {
                if pos >= buf.len() {
                    return err(ErrorKind::UnexpectedEof, pos);
                }
                let open = open as usize;
                let is_dict = self.tokens[open].kind == TokKind::Dict;
                if buf[pos] == b'e' {
                    if is_dict && children % 2 == 1 {
                        // A key without a value.
                        return err(ErrorKind::UnexpectedByte(b'e'), pos);
                    }
                    pos += 1;
                    self.tokens[open].end = pos as u32;
                    self.tokens[open].next = self.tokens.len() as u32;
                    self.stack.pop();
                    if self.stack.is_empty() {
                        break;
                    }
                    continue;
                }
                if is_dict && children % 2 == 0 && !buf[pos].is_ascii_digit() {
                    return err(ErrorKind::NonStringKey, pos);
                }
                if let Some(top) = self.stack.last_mut() {
                    top.1 += 1;
                }
            }
            if self.tokens.len() >= limits.max_tokens {
                return err(ErrorKind::TooManyValues, pos);
            }
            let Some(&b) = buf.get(pos) else {
                return err(ErrorKind::UnexpectedEof, pos);
            };
            let idx = self.tokens.len() as u32;
            match b {
                b'i' => {
                    let digits = pos + 1;
                    let Some(rel) = buf[digits..].iter().position(|&c| c == b'e') else {
                        return err(ErrorKind::UnexpectedEof, buf.len());
                    };
                    let text = &buf[digits..digits + rel];
                    if parse_int(text).is_none() {
                        return err(ErrorKind::BadInteger, digits);
                    }
                    self.tokens.push(Tok {
                        kind: TokKind::Int,
                        start: pos as u32,
                        data: digits as u32,
                        end: (digits + rel) as u32,
                        next: idx + 1,
                    });
                    pos = digits + rel + 1;
                }
                b'0'..=b'9' => {
                    let Some(rel) = buf[pos..].iter().take(12).position(|&c| c == b':') else {
                        if buf.len() - pos < 12 && buf[pos..].iter().all(u8::is_ascii_digit) {
                            return err(ErrorKind::UnexpectedEof, buf.len());
                        }
                        return err(ErrorKind::BadStringLength, pos);
                    };
                    let len_text = &buf[pos..pos + rel];
                    let len = match parse_len(len_text) {
                        Some(l) if l <= limits.max_string_len => l,
                        _ => return err(ErrorKind::BadStringLength, pos),
                    };
                    let data = pos + rel + 1;
                    if buf.len() - data < len {
                        return err(ErrorKind::UnexpectedEof, buf.len());
                    }
                    self.tokens.push(Tok {
                        kind: TokKind::Bytes,
                        start: pos as u32,
                        data: data as u32,
                        end: (data + len) as u32,
                        next: idx + 1,
                    });
                    pos = data + len;
                }
                b'l' | b'd' => {
                    if self.stack.len() >= limits.max_depth {
                        return err(ErrorKind::TooDeep, pos);
                    }
                    self.tokens.push(Tok {
                        kind: if b == b'l' {
                            TokKind::List
                        } else {
                            TokKind::Dict
                        },
                        start: pos as u32,
                        data: pos as u32 + 1,
                        end: 0,
                        next: 0,
                    });
                    self.stack.push((idx, 0));
                    pos += 1;
                    continue;
                }
                other => return err(ErrorKind::UnexpectedByte(other), pos),
            }
            if self.stack.is_empty() {
                break;
            }
        }
        if pos != buf.len() {
            return err(ErrorKind::TrailingData, pos);
        }
        Ok(())
    }
}

/// Parses a string length: decimal digits, no leading zero unless it is `0`.
fn parse_len(text: &[u8]) -> Option<usize> {
    if text.is_empty() || (text.len() > 1 && text[0] == b'0') {
        return None;
    }
    let mut n: usize = 0;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((c - b'0') as usize)?;
    }
    Some(n)
}

/// Parses integer digits strictly: optional `-`, no leading zeros, no `-0`, fits in `i64`.
pub(crate) fn parse_int(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut n: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        n = if neg {
            n.checked_mul(10)?.checked_sub(d)?
        } else {
            n.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(n)
}

/// A validated view of one bencoded value inside a decoded document.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    buf: &'a [u8],
    toks: &'a [Tok],
    idx: u32,
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tok().kind {
            TokKind::Int => write!(f, "{}", self.as_int().unwrap_or_default()),
            TokKind::Bytes => write!(f, "{:?}", crate::util::Printable(self.data())),
            TokKind::List => f
                .debug_list()
                .entries(self.as_list().into_iter().flatten())
                .finish(),
            TokKind::Dict => f
                .debug_map()
                .entries(
                    self.as_dict()
                        .into_iter()
                        .flat_map(|d| d.iter())
                        .map(|(k, v)| (crate::util::Printable(k), v)),
                )
                .finish(),
        }
    }
}

impl<'a> Value<'a> {
    fn tok(&self) -> &'a Tok {
        &self.toks[self.idx as usize]
    }

    fn data(&self) -> &'a [u8] {
        let t = self.tok();
        &self.buf[t.data as usize..t.end as usize]
    }

    /// The exact bytes this value was encoded as.
    pub fn raw(&self) -> &'a [u8] {
        let t = self.tok();
        // An integer's `end` is its digits' end: its encoding goes on to the `e`.
        let end = t.end as usize + usize::from(t.kind == TokKind::Int);
        &self.buf[t.start as usize..end]
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        (self.tok().kind == TokKind::Int).then(|| parse_int(self.data()).unwrap_or_default())
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        (self.tok().kind == TokKind::Bytes).then(|| self.data())
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<List<'a>> {
        (self.tok().kind == TokKind::List).then_some(List(*self))
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<Dict<'a>> {
        (self.tok().kind == TokKind::Dict).then_some(Dict(*self))
    }

    fn children(&self) -> Iter<'a> {
        let t = self.tok();
        Iter {
            buf: self.buf,
            toks: self.toks,
            cur: self.idx + 1,
            end: t.next,
        }
    }

    /// Copies this value into an owned tree.
    pub fn to_owned_value(&self) -> super::OwnedValue {
        use super::OwnedValue as O;
        match self.tok().kind {
            TokKind::Int => O::Int(self.as_int().unwrap_or_default()),
            TokKind::Bytes => O::Bytes(self.data().to_vec()),
            TokKind::List => O::List(self.children().map(|v| v.to_owned_value()).collect()),
            TokKind::Dict => O::Dict(
                Dict(*self)
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_owned_value()))
                    .collect(),
            ),
        }
    }
}

/// Iterator over the items of a list (or the keys and values of a dictionary, alternating).
#[derive(Clone)]
pub struct Iter<'a> {
    buf: &'a [u8],
    toks: &'a [Tok],
    cur: u32,
    end: u32,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Value<'a>> {
        if self.cur >= self.end {
            return None;
        }
        let v = Value {
            buf: self.buf,
            toks: self.toks,
            idx: self.cur,
        };
        self.cur = self.toks[self.cur as usize].next;
        Some(v)
    }
}

/// A view of a bencoded list.
#[derive(Clone, Copy, Debug)]
pub struct List<'a>(Value<'a>);

impl<'a> List<'a> {
    /// Iterates over the items.
    pub fn iter(&self) -> Iter<'a> {
        self.0.children()
    }

    /// Number of items (walks the list).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True if the list has no items.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl<'a> IntoIterator for List<'a> {
    type Item = Value<'a>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.children()
    }
}

/// A view of a bencoded dictionary.
#[derive(Clone, Copy, Debug)]
pub struct Dict<'a>(Value<'a>);

impl<'a> Dict<'a> {
    /// Iterates over `(key, value)` pairs in encoded order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Value<'a>)> + 'a {
        let mut it = self.0.children();
        std::iter::from_fn(move || {
            let k = it.next()?;
            let v = it.next()?;
            Some((k.as_bytes().unwrap_or_default(), v))
        })
    }

    /// The value under `key` (the first, if the key repeats).
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The byte string under `key`.
    pub fn get_bytes(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.get(key)?.as_bytes()
    }

    /// The integer under `key`.
    pub fn get_int(&self, key: &[u8]) -> Option<i64> {
        self.get(key)?.as_int()
    }

    /// The dictionary under `key`.
    pub fn get_dict(&self, key: &[u8]) -> Option<Dict<'a>> {
        self.get(key)?.as_dict()
    }

    /// The list under `key`.
    pub fn get_list(&self, key: &[u8]) -> Option<List<'a>> {
        self.get(key)?.as_list()
    }
}
