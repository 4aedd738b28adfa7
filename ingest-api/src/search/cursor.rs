//! RFC 9865 cursors: opaque to clients, stateless on the server. A cursor is the position of the
//! last resource of a page (its kind and id) in base64url, so it never expires and costs no
//! server memory; the next page starts right after it in id order, which stores serve with a
//! range read. Resources created or deleted between pages are seen or missed as their id falls,
//! like any live cursor over a changing set.

use crate::error::{ApiError, ApiResult};
use scimflow_core::ResourceKind;

/// A position in id order: the last resource served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// `None` for positions that are not resources (group member pages).
    pub kind: Option<ResourceKind>,
    pub id: String,
}

impl Position {
    pub fn encode(&self) -> String {
        let tag = match self.kind {
            Some(ResourceKind::User) => 'u',
            Some(ResourceKind::Group) => 'g',
            None => 'm',
        };
        base64url_encode(format!("{tag}:{}", self.id).as_bytes())
    }

    /// Decodes a cursor; 400 `invalidCursor` for anything this server did not issue.
    pub fn decode(cursor: &str) -> ApiResult<Position> {
        let invalid = || {
            ApiError::invalid_cursor(format!(
                "cursor {cursor:?} was not issued by this server; start again with an empty cursor"
            ))
        };
        let bytes = base64url_decode(cursor).ok_or_else(invalid)?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (tag, id) = text.split_once(':').ok_or_else(invalid)?;
        let kind = match tag {
            "u" => Some(ResourceKind::User),
            "g" => Some(ResourceKind::Group),
            "m" => None,
            _ => return Err(invalid()),
        };
        if id.is_empty() {
            return Err(invalid());
        }
        Ok(Position { kind, id: id.to_owned() })
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url (RFC 4648 §5).
pub fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = chunk.len() + 1;
        for index in 0..symbols {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * index)) & 63) as usize]));
        }
    }
    out
}

/// Decodes unpadded (or padded) base64url; `None` on any invalid input.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (index, &symbol) in chunk.iter().enumerate() {
            let value = ALPHABET.iter().position(|&a| a == symbol)? as u32;
            n |= value << (18 - 6 * index);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        for text in
            ["", "a", "ab", "abc", "abcd", "u:2819c223-7f76-453a-919d-413861904646", "\u{00ff}\u{1F600}"]
        {
            let encoded = base64url_encode(text.as_bytes());
            assert!(!encoded.contains(['+', '/', '=']));
            assert_eq!(base64url_decode(&encoded).unwrap(), text.as_bytes());
        }
        assert_eq!(base64url_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url_encode(b"fo"), "Zm8");
        assert!(base64url_decode("Z").is_none());
        assert!(base64url_decode("Zm9*").is_none());
    }

    #[test]
    fn positions_round_trip_and_garbage_is_invalid_cursor() {
        let position = Position { kind: Some(ResourceKind::Group), id: "g-1".into() };
        assert_eq!(Position::decode(&position.encode()).unwrap(), position);
        let error = Position::decode("not a cursor!").unwrap_err();
        assert_eq!(error.to_json()["scimType"], "invalidCursor");
        assert!(Position::decode(&base64url_encode(b"x:1")).is_err());
    }
}
