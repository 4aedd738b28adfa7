//! The encoding of a pending batch (an *intent*): everything a commit writes, stored before any
//! row so that a commit interrupted half-way can be finished exactly as it was begun.
//!
//! A compact, versioned binary format (the batch holds resource bodies and encoded change
//! envelopes, so JSON would roughly double it). It is only ever read back by the same
//! deployment, within one crash-restart, but still carries a magic and version so a format
//! change is detected instead of misread. The bytes are split into [`CHUNK_BYTES`] rows so no
//! single CQL mutation approaches the server limits (Cassandra's `max_mutation_size` is half a
//! commit-log segment: 16 MiB by default, 4 MiB in our local test node).

use crate::port::{ChangeRecord, StoreError, StoreResult, TenantCommit};
use crate::position::PartitionPosition;
use scimflow_core::ResourceKind;
use scimflow_core::index::IndexName;
use scimflow_core::state::{Member, Mutation, StoredResource};

/// Bytes per `pending_batches` row.
pub const CHUNK_BYTES: usize = 512 * 1024;
/// Version 2 adds the tenants ahead of the watermark after the watermark; version 1 (none)
/// is still read, so an intent left by the previous release is finished after an upgrade.
const MAGIC: &[u8; 4] = b"SFB2";
const MAGIC_V1: &[u8; 4] = b"SFB1";

/// A decoded pending batch.
#[derive(Debug, Clone)]
pub struct Intent {
    pub position: PartitionPosition,
    pub tenants: Vec<TenantCommit>,
    pub changes: Vec<ChangeRecord>,
}

fn kind_code(kind: ResourceKind) -> u8 {
    match kind {
        ResourceKind::User => 1,
        ResourceKind::Group => 2,
    }
}

fn kind_from_code(code: u8) -> StoreResult<ResourceKind> {
    match code {
        1 => Ok(ResourceKind::User),
        2 => Ok(ResourceKind::Group),
        other => Err(corrupt(format!("unknown resource kind code {other}"))),
    }
}

fn index_code(index: IndexName) -> u8 {
    match index {
        IndexName::UserName => 1,
        IndexName::ExternalId => 2,
        IndexName::DisplayName => 3,
        IndexName::EmailValue => 4,
    }
}

fn index_from_code(code: u8) -> StoreResult<IndexName> {
    Ok(match code {
        1 => IndexName::UserName,
        2 => IndexName::ExternalId,
        3 => IndexName::DisplayName,
        4 => IndexName::EmailValue,
        other => return Err(corrupt(format!("unknown index code {other}"))),
    })
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt(format!("pending batch: {message}"))
}

#[derive(Default)]
struct Encoder(Vec<u8>);

impl Encoder {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    fn u32(&mut self, value: u32) {
        self.0.extend(value.to_be_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.0.extend(value.to_be_bytes());
    }
    fn bytes(&mut self, value: &[u8]) {
        self.u32(value.len() as u32);
        self.0.extend(value);
    }
    fn str(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }
}

struct Decoder<'a> {
    bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> StoreResult<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(corrupt("truncated".into()));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn u8(&mut self) -> StoreResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> StoreResult<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }
    fn u64(&mut self) -> StoreResult<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap_or_default()))
    }
    fn bytes(&mut self) -> StoreResult<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn string(&mut self) -> StoreResult<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt("string is not UTF-8".into()))
    }
    /// A count of items that each take at least one byte: bounded by what is left, so a
    /// corrupt count cannot make us allocate gigabytes.
    fn count(&mut self) -> StoreResult<usize> {
        let count = self.u32()? as usize;
        if count > self.bytes.len() {
            return Err(corrupt(format!("count {count} exceeds the remaining bytes")));
        }
        Ok(count)
    }
}

/// Encodes a batch.
pub fn encode(position: &PartitionPosition, tenants: &[TenantCommit], changes: &[ChangeRecord]) -> Vec<u8> {
    let mut out = Encoder::default();
    out.0.extend(MAGIC);
    out.u64(position.next_offset);
    out.u32(position.tenants_ahead.len() as u32);
    for (tenant_id, next) in &position.tenants_ahead {
        out.str(tenant_id);
        out.u64(*next);
    }
    out.u32(tenants.len() as u32);
    for tenant in tenants {
        out.str(&tenant.tenant_id);
        out.u32(tenant.mutations.len() as u32);
        for mutation in &tenant.mutations {
            encode_mutation(&mut out, mutation);
        }
    }
    out.u32(changes.len() as u32);
    for change in changes {
        out.u64(change.offset);
        out.u32(change.index);
        out.bytes(&change.envelope);
    }
    out.0
}

fn encode_mutation(out: &mut Encoder, mutation: &Mutation) {
    match mutation {
        Mutation::PutResource { kind, id, stored } => {
            out.u8(1);
            out.u8(kind_code(*kind));
            out.str(id);
            out.u64(stored.version);
            // Serialising a serde_json::Value cannot fail.
            out.str(&serde_json::to_string(&stored.resource).unwrap_or_default());
        }
        Mutation::DeleteResource { kind, id } => {
            out.u8(2);
            out.u8(kind_code(*kind));
            out.str(id);
        }
        Mutation::PutIndex { kind, index, key, id } => {
            out.u8(3);
            out.u8(kind_code(*kind));
            out.u8(index_code(*index));
            out.str(key);
            out.str(id);
        }
        Mutation::DeleteIndex { kind, index, key, id } => {
            out.u8(4);
            out.u8(kind_code(*kind));
            out.u8(index_code(*index));
            out.str(key);
            out.str(id);
        }
        Mutation::AddMember { group_id, member } => {
            out.u8(5);
            out.str(group_id);
            out.str(&member.value);
            out.u8(kind_code(member.kind));
            match &member.display {
                Some(display) => {
                    out.u8(1);
                    out.str(display);
                }
                None => out.u8(0),
            }
        }
        Mutation::RemoveMember { group_id, member_id } => {
            out.u8(6);
            out.str(group_id);
            out.str(member_id);
        }
        Mutation::ClearMembers { group_id } => {
            out.u8(7);
            out.str(group_id);
        }
    }
}

pub fn decode(bytes: &[u8]) -> StoreResult<Intent> {
    let mut input = Decoder { bytes };
    let version_2 = match input.take(MAGIC.len())? {
        magic if magic == MAGIC => true,
        magic if magic == MAGIC_V1 => false,
        _ => return Err(corrupt("unknown format (bad magic)".into())),
    };
    let mut position = PartitionPosition::at(input.u64()?);
    if version_2 {
        for _ in 0..input.count()? {
            let tenant_id = input.string()?;
            position.tenants_ahead.insert(tenant_id, input.u64()?);
        }
    }
    let tenant_count = input.count()?;
    let mut tenants = Vec::with_capacity(tenant_count);
    for _ in 0..tenant_count {
        let tenant_id = input.string()?;
        let mutation_count = input.count()?;
        let mut mutations = Vec::with_capacity(mutation_count);
        for _ in 0..mutation_count {
            mutations.push(decode_mutation(&mut input)?);
        }
        tenants.push(TenantCommit { tenant_id, mutations });
    }
    let change_count = input.count()?;
    let mut changes = Vec::with_capacity(change_count);
    for _ in 0..change_count {
        let offset = input.u64()?;
        let index = input.u32()?;
        changes.push(ChangeRecord { offset, index, envelope: input.bytes()?.to_vec() });
    }
    if !input.bytes.is_empty() {
        return Err(corrupt(format!("{} trailing bytes", input.bytes.len())));
    }
    Ok(Intent { position, tenants, changes })
}

fn decode_mutation(input: &mut Decoder<'_>) -> StoreResult<Mutation> {
    Ok(match input.u8()? {
        1 => {
            let kind = kind_from_code(input.u8()?)?;
            let id = input.string()?;
            let version = input.u64()?;
            let resource = serde_json::from_slice(input.bytes()?)
                .map_err(|error| corrupt(format!("resource body: {error}")))?;
            Mutation::PutResource { kind, id, stored: StoredResource { resource, version } }
        }
        2 => Mutation::DeleteResource { kind: kind_from_code(input.u8()?)?, id: input.string()? },
        tag @ (3 | 4) => {
            let kind = kind_from_code(input.u8()?)?;
            let index = index_from_code(input.u8()?)?;
            let key = input.string()?;
            let id = input.string()?;
            if tag == 3 {
                Mutation::PutIndex { kind, index, key, id }
            } else {
                Mutation::DeleteIndex { kind, index, key, id }
            }
        }
        5 => {
            let group_id = input.string()?;
            let value = input.string()?;
            let kind = kind_from_code(input.u8()?)?;
            let display = match input.u8()? {
                0 => None,
                _ => Some(input.string()?),
            };
            Mutation::AddMember { group_id, member: Member { value, kind, display } }
        }
        6 => Mutation::RemoveMember { group_id: input.string()?, member_id: input.string()? },
        7 => Mutation::ClearMembers { group_id: input.string()? },
        other => return Err(corrupt(format!("unknown mutation tag {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_mutation_round_trips() {
        let user = ResourceKind::User;
        let mutations = vec![
            Mutation::PutResource {
                kind: user,
                id: "u1".into(),
                stored: StoredResource {
                    resource: json!({"userName": "b", "n": 1.5, "z": [true, null]}),
                    version: 7,
                },
            },
            Mutation::DeleteResource { kind: ResourceKind::Group, id: "g1".into() },
            Mutation::PutIndex {
                kind: user,
                index: IndexName::EmailValue,
                key: "a@x".into(),
                id: "u1".into(),
            },
            Mutation::DeleteIndex {
                kind: user,
                index: IndexName::ExternalId,
                key: "É".into(),
                id: "u1".into(),
            },
            Mutation::AddMember {
                group_id: "g".into(),
                member: Member { value: "u1".into(), kind: user, display: Some("Bé".into()) },
            },
            Mutation::AddMember {
                group_id: "g".into(),
                member: Member { value: "g2".into(), kind: ResourceKind::Group, display: None },
            },
            Mutation::RemoveMember { group_id: "g".into(), member_id: "u1".into() },
            Mutation::ClearMembers { group_id: "g".into() },
        ];
        let tenants = vec![
            TenantCommit { tenant_id: "acme".into(), mutations },
            TenantCommit { tenant_id: "globex".into(), mutations: vec![] },
        ];
        let changes = vec![
            ChangeRecord { offset: 41, index: 0, envelope: b"\x01\x02".to_vec() },
            ChangeRecord { offset: 41, index: 1, envelope: Vec::new() },
        ];
        let position = PartitionPosition::at(42).advanced(42, [("globex", 50), ("initech", 44)]);
        let bytes = encode(&position, &tenants, &changes);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.position, position);
        assert_eq!(decoded.tenants.len(), 2);
        assert_eq!(decoded.tenants[0].tenant_id, "acme");
        assert_eq!(decoded.tenants[0].mutations, tenants[0].mutations);
        assert!(decoded.tenants[1].mutations.is_empty());
        assert_eq!(decoded.changes, changes);
    }

    #[test]
    fn damage_is_detected() {
        let bytes = encode(
            &PartitionPosition::at(1),
            &[TenantCommit { tenant_id: "t".into(), mutations: vec![] }],
            &[],
        );
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        let mut magic = bytes;
        magic[0] = b'X';
        assert!(decode(&magic).is_err());
    }

    #[test]
    fn a_version_1_intent_has_nobody_ahead() {
        // SFB1, next offset 9, no tenants, no changes.
        let mut bytes = b"SFB1".to_vec();
        bytes.extend(9u64.to_be_bytes());
        bytes.extend(0u32.to_be_bytes());
        bytes.extend(0u32.to_be_bytes());
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.position, PartitionPosition::at(9));
    }
}
