//! Tenants and their bearer tokens. A token is shown once at creation or rotation and stored
//! only as its SHA-256 hash, so a copy of the data directory does not leak credentials. The
//! tenant of every request is resolved from its token here, never from the URL or the body.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// tenant id -> tenant JSON
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// hex SHA-256 of a token -> tenant id
const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tenant_tokens");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub revoked: bool,
    /// Hash of the current token (so rotation can drop the old one).
    pub token_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("a tenant named {0:?} already exists")]
    Exists(String),
    #[error("no tenant named or with id {0:?}; `scimflow tenant list` shows them")]
    NotFound(String),
    #[error("tenant names are 1-64 characters of letters, digits, '-', '_' or '.': {0:?}")]
    InvalidName(String),
    #[error("tenant database error: {0}")]
    Database(String),
}

fn db_error(error: impl std::fmt::Display) -> TenantError {
    TenantError::Database(error.to_string())
}

/// Resolves a bearer token to a tenant id.
pub trait TenantAuthenticator: Send + Sync {
    fn authenticate(&self, token: &str) -> Option<String>;
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("scimflow_{}", hex::encode(bytes))
}

#[derive(Clone)]
pub struct TenantDirectory {
    db: Arc<Database>,
}

impl TenantDirectory {
    pub fn open(db: Arc<Database>) -> Result<Self, TenantError> {
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(TENANTS).map_err(db_error)?;
        txn.open_table(TOKENS).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(TenantDirectory { db })
    }

    /// The admin tokens kept beside the tenants (same database, separate table).
    pub fn admins(&self) -> Result<crate::admins::AdminDirectory, crate::admins::AdminError> {
        crate::admins::AdminDirectory::open(self.db.clone())
    }

    /// Creates a tenant; returns it and its token (shown once, never stored in clear).
    pub fn create(&self, name: &str, now_ms: i64) -> Result<(Tenant, String), TenantError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            return Err(TenantError::InvalidName(name.to_owned()));
        }
        if self.find(name)?.is_some() {
            return Err(TenantError::Exists(name.to_owned()));
        }
        let token = new_token();
        let tenant = Tenant {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            created_at_ms: now_ms,
            revoked: false,
            token_hash: hash_token(&token),
        };
        self.save(&tenant, None)?;
        Ok((tenant, token))
    }

    pub fn list(&self) -> Result<Vec<Tenant>, TenantError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(TENANTS).map_err(db_error)?;
        let mut tenants = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (_, value) = entry.map_err(db_error)?;
            tenants.push(serde_json::from_slice::<Tenant>(value.value()).map_err(db_error)?);
        }
        tenants.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tenants)
    }

    /// Finds a tenant by name or id.
    pub fn find(&self, name_or_id: &str) -> Result<Option<Tenant>, TenantError> {
        Ok(self.list()?.into_iter().find(|t| t.name == name_or_id || t.id == name_or_id))
    }

    /// Revokes a tenant's token: its requests get 401 from then on. Data is kept.
    pub fn revoke(&self, name_or_id: &str) -> Result<Tenant, TenantError> {
        let mut tenant =
            self.find(name_or_id)?.ok_or_else(|| TenantError::NotFound(name_or_id.to_owned()))?;
        let old_hash = tenant.token_hash.clone();
        tenant.revoked = true;
        self.save(&tenant, Some(&old_hash))?;
        Ok(tenant)
    }

    /// Issues a new token; the old one stops working at once. Also re-enables a revoked tenant.
    pub fn rotate(&self, name_or_id: &str) -> Result<(Tenant, String), TenantError> {
        let mut tenant =
            self.find(name_or_id)?.ok_or_else(|| TenantError::NotFound(name_or_id.to_owned()))?;
        let old_hash = tenant.token_hash.clone();
        let token = new_token();
        tenant.token_hash = hash_token(&token);
        tenant.revoked = false;
        self.save(&tenant, Some(&old_hash))?;
        Ok((tenant, token))
    }

    fn save(&self, tenant: &Tenant, old_token_hash: Option<&str>) -> Result<(), TenantError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut tenants = txn.open_table(TENANTS).map_err(db_error)?;
            let bytes = serde_json::to_vec(tenant).map_err(db_error)?;
            tenants.insert(tenant.id.as_str(), bytes.as_slice()).map_err(db_error)?;
            let mut tokens = txn.open_table(TOKENS).map_err(db_error)?;
            if let Some(old) = old_token_hash {
                tokens.remove(old).map_err(db_error)?;
            }
            if !tenant.revoked {
                tokens.insert(tenant.token_hash.as_str(), tenant.id.as_str()).map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)
    }
}

impl TenantAuthenticator for TenantDirectory {
    fn authenticate(&self, token: &str) -> Option<String> {
        let txn = self.db.begin_read().ok()?;
        let tokens = txn.open_table(TOKENS).ok()?;
        let tenant_id = tokens.get(hash_token(token).as_str()).ok()??;
        Some(tenant_id.value().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> (tempfile::TempDir, TenantDirectory) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("tenants.redb")).unwrap();
        (dir, TenantDirectory::open(Arc::new(db)).unwrap())
    }

    #[test]
    fn a_token_authenticates_its_tenant_until_rotated_or_revoked() {
        let (_dir, tenants) = directory();
        let (acme, token) = tenants.create("acme", 0).unwrap();
        let (_, other_token) = tenants.create("globex", 0).unwrap();
        assert_eq!(tenants.authenticate(&token), Some(acme.id.clone()));
        assert_ne!(tenants.authenticate(&other_token), Some(acme.id.clone()));
        assert_eq!(tenants.authenticate("scimflow_wrong"), None);
        let (_, rotated) = tenants.rotate("acme").unwrap();
        assert_eq!(tenants.authenticate(&token), None);
        assert_eq!(tenants.authenticate(&rotated), Some(acme.id.clone()));
        tenants.revoke("acme").unwrap();
        assert_eq!(tenants.authenticate(&rotated), None);
        assert!(matches!(tenants.create("acme", 0), Err(TenantError::Exists(_))));
    }
}
