//! The on-disk encoding of one log record.
//!
//! `[type: u8][prev: u64 LE][key length: u32 LE][key bytes][object JSON]`. The fixed header
//! lets list and compaction follow the `prev` chain without parsing JSON. A delete record
//! carries the object's last state (stamped with the delete revision) rather than an empty
//! tombstone, so a watch can send it as the `DELETED` object.

use serde_json::Value;

use crate::error::StoreError;

/// What a write did to its key, in Kubernetes watch terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// The key had no live object before this write.
    Added,
    /// The key's live object was replaced.
    Modified,
    /// The key's object was deleted.
    Deleted,
}

impl EventType {
    /// The Kubernetes watch event type: `ADDED`, `MODIFIED` or `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    fn code(self) -> u8 {
        match self {
            EventType::Added => 1,
            EventType::Modified => 2,
            EventType::Deleted => 3,
        }
    }

    fn from_code(code: u8) -> Option<EventType> {
        match code {
            1 => Some(EventType::Added),
            2 => Some(EventType::Modified),
            3 => Some(EventType::Deleted),
            _ => None,
        }
    }
}

const HEADER: usize = 1 + 8 + 4;

/// A decoded log record.
#[derive(Debug)]
pub(crate) struct Record {
    pub event: EventType,
    pub key: String,
    pub object: Value,
}

/// Encodes a record; `object` is already stamped with its revision.
pub(crate) fn encode(event: EventType, prev: u64, key: &str, object: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(object).expect("a serde_json::Value always serializes");
    let mut out = Vec::with_capacity(HEADER + key.len() + json.len());
    out.push(event.code());
    out.extend_from_slice(&prev.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&json);
    out
}

/// The fixed header fields and the key, without parsing the object.
pub(crate) fn header(revision: u64, bytes: &[u8]) -> Result<(EventType, u64, &str), StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        revision,
        reason: reason.to_string(),
    };
    if bytes.len() < HEADER {
        return Err(corrupt("record shorter than its header"));
    }
    let event = EventType::from_code(bytes[0]).ok_or_else(|| corrupt("unknown event type"))?;
    let prev = u64::from_le_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let key_len = u32::from_le_bytes(bytes[9..13].try_into().expect("4 bytes")) as usize;
    let key = bytes
        .get(HEADER..HEADER + key_len)
        .ok_or_else(|| corrupt("key runs past the record"))?;
    let key = std::str::from_utf8(key).map_err(|_| corrupt("key is not utf-8"))?;
    Ok((event, prev, key))
}

/// Decodes a whole record.
pub(crate) fn decode(revision: u64, bytes: &[u8]) -> Result<Record, StoreError> {
    let (event, _prev, key) = header(revision, bytes)?;
    let json = &bytes[HEADER + key.len()..];
    let object = serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
        revision,
        reason: e.to_string(),
    })?;
    Ok(Record {
        event,
        key: key.to_string(),
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_header_reads_without_the_object() {
        let object = serde_json::json!({"metadata": {"name": "web"}});
        let bytes = encode(EventType::Deleted, 41, "/core/pods/default/web", &object);
        let (event, prev, key) = header(42, &bytes).unwrap();
        assert_eq!(
            (event, prev, key),
            (EventType::Deleted, 41, "/core/pods/default/web")
        );
        let record = decode(42, &bytes).unwrap();
        assert_eq!(record.object, object);
        assert!(matches!(
            decode(42, &bytes[..5]),
            Err(StoreError::Corrupt { revision: 42, .. })
        ));
    }
}
