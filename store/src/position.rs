//! How far the projector has folded one log partition.
//!
//! Tenants are independent: a tenant's state depends only on its own commands, in log order.
//! So the projector may fold a quiet tenant's commands before an older backlog of a busy tenant
//! of the same partition, and a position is more than one offset:
//! - `next_offset`, the low watermark: every command below it is folded; the log is re-read
//!   from here after a restart (it is also the offset committed to Kafka);
//! - `tenants_ahead`: tenants folded further than that, with the offset after the last command
//!   of theirs that is folded. A command at or above the watermark is folded exactly when its
//!   tenant's entry is above its offset.
//!
//! Committed atomically with the rows it covers. Entries at or below the watermark say nothing
//! more than the watermark and are dropped, so the list holds only tenants with work in flight.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionPosition {
    pub next_offset: u64,
    pub tenants_ahead: BTreeMap<String, u64>,
}

impl PartitionPosition {
    /// Everything below `next_offset` folded, nothing above it.
    pub fn at(next_offset: u64) -> Self {
        PartitionPosition { next_offset, tenants_ahead: BTreeMap::new() }
    }

    /// Whether the command of `tenant_id` at `offset` is already folded.
    pub fn is_folded(&self, tenant_id: &str, offset: u64) -> bool {
        offset < self.next_offset || self.tenants_ahead.get(tenant_id).is_some_and(|next| offset < *next)
    }

    /// The position after folding, for each tenant in `folded`, its commands up to the offset
    /// given (exclusive), with every unfolded command at or above `watermark`.
    pub fn advanced<'a>(
        &self,
        watermark: u64,
        folded: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> PartitionPosition {
        let mut tenants_ahead = self.tenants_ahead.clone();
        for (tenant_id, next) in folded {
            let entry = tenants_ahead.entry(tenant_id.to_owned()).or_insert(next);
            *entry = (*entry).max(next);
        }
        let next_offset = watermark.max(self.next_offset);
        tenants_ahead.retain(|_, next| *next > next_offset);
        PartitionPosition { next_offset, tenants_ahead }
    }

    /// The ahead list as stored (JSON object of tenant → next offset; empty when none).
    pub fn encode_tenants_ahead(&self) -> Vec<u8> {
        if self.tenants_ahead.is_empty() {
            return Vec::new();
        }
        serde_json::to_vec(&self.tenants_ahead).expect("a map of strings to integers serializes")
    }

    pub fn decode_tenants_ahead(bytes: &[u8]) -> Result<BTreeMap<String, u64>, String> {
        if bytes.is_empty() {
            return Ok(BTreeMap::new());
        }
        serde_json::from_slice(bytes).map_err(|error| format!("unreadable tenants-ahead list: {error}"))
    }

    /// The key of a commit's changes in the change feed: the last offset below its watermark.
    /// Watermarks strictly increase from commit to commit, so feed keys do too, and the feed
    /// range `[from, to)` of two watermarks holds exactly the commits between them, whichever
    /// commands (below or ahead of the watermark) they folded.
    pub fn feed_key(&self) -> u64 {
        self.next_offset.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_folded_below_the_watermark_or_below_its_tenants_entry() {
        let position = PartitionPosition::at(10).advanced(10, [("b", 25)]);
        assert!(position.is_folded("a", 9));
        assert!(!position.is_folded("a", 10));
        assert!(position.is_folded("b", 24));
        assert!(!position.is_folded("b", 25));
    }

    #[test]
    fn entries_the_watermark_passed_are_dropped_and_entries_never_go_back() {
        let position = PartitionPosition::at(0).advanced(5, [("a", 5), ("b", 40), ("c", 12)]);
        assert_eq!(position.tenants_ahead.keys().collect::<Vec<_>>(), ["b", "c"]);
        let later = position.advanced(20, [("b", 30)]);
        assert_eq!(later.next_offset, 20);
        assert_eq!(later.tenants_ahead, BTreeMap::from([("b".to_owned(), 40)]));
        assert_eq!(later.advanced(3, []).next_offset, 20, "a watermark never goes back");
    }

    #[test]
    fn the_ahead_list_round_trips_and_is_empty_bytes_when_empty() {
        let position = PartitionPosition::at(7).advanced(7, [("tenant \"x\"", 9)]);
        let bytes = position.encode_tenants_ahead();
        assert_eq!(PartitionPosition::decode_tenants_ahead(&bytes).unwrap(), position.tenants_ahead);
        assert!(PartitionPosition::at(3).encode_tenants_ahead().is_empty());
        assert!(PartitionPosition::decode_tenants_ahead(b"{").is_err());
    }
}
