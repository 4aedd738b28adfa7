//! Admin credentials: bearer tokens for the operator's `/admin` endpoints, distinct from every
//! tenant's token. Like tenant tokens, an admin token is shown once at creation and stored only
//! as its SHA-256 hash (in `tenants.redb`, table `admin_tokens`), so a copy of the data directory
//! does not leak it. A tenant token never authenticates as an admin, nor the reverse: they live
//! in different tables and are looked up by different traits.

use crate::tenants::hash_token;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::sync::Arc;

/// hex SHA-256 of an admin token -> the token's name
const ADMIN_TOKENS: TableDefinition<&str, &str> = TableDefinition::new("admin_tokens");

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("an admin token named {0:?} already exists")]
    Exists(String),
    #[error("no admin token named {0:?}; `scimflow admin token list` shows them")]
    NotFound(String),
    #[error("admin token names are 1-64 characters of letters, digits, '-', '_' or '.': {0:?}")]
    InvalidName(String),
    #[error("admin token database error: {0}")]
    Database(String),
}

fn db_error(error: impl std::fmt::Display) -> AdminError {
    AdminError::Database(error.to_string())
}

/// Resolves a bearer token to the name of an admin credential.
pub trait AdminAuthenticator: Send + Sync {
    fn authenticate_admin(&self, token: &str) -> Option<String>;
}

/// The admin tokens of a data directory.
#[derive(Clone)]
pub struct AdminDirectory {
    db: Arc<Database>,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl AdminDirectory {
    /// Opens the admin tokens kept in `db` (the tenants database), creating the table.
    pub fn open(db: Arc<Database>) -> Result<Self, AdminError> {
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(ADMIN_TOKENS).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(AdminDirectory { db })
    }

    /// Creates a token named `name`; returns the token (shown once, never stored).
    pub fn create(&self, name: &str) -> Result<String, AdminError> {
        if !valid_name(name) {
            return Err(AdminError::InvalidName(name.to_owned()));
        }
        if self.list()?.iter().any(|existing| existing == name) {
            return Err(AdminError::Exists(name.to_owned()));
        }
        let bytes: [u8; 32] = rand::random();
        let token = format!("scimflow_admin_{}", hex::encode(bytes));
        let txn = self.db.begin_write().map_err(db_error)?;
        txn.open_table(ADMIN_TOKENS)
            .map_err(db_error)?
            .insert(hash_token(&token).as_str(), name)
            .map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(token)
    }

    /// The names of the admin tokens.
    pub fn list(&self) -> Result<Vec<String>, AdminError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(ADMIN_TOKENS).map_err(db_error)?;
        let mut names = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            names.push(entry.map_err(db_error)?.1.value().to_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Revokes the token named `name`.
    pub fn revoke(&self, name: &str) -> Result<(), AdminError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(ADMIN_TOKENS).map_err(db_error)?;
            let hash = table
                .iter()
                .map_err(db_error)?
                .filter_map(Result::ok)
                .find(|(_, value)| value.value() == name)
                .map(|(key, _)| key.value().to_owned())
                .ok_or_else(|| AdminError::NotFound(name.to_owned()))?;
            table.remove(hash.as_str()).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }
}

impl AdminAuthenticator for AdminDirectory {
    fn authenticate_admin(&self, token: &str) -> Option<String> {
        let txn = self.db.begin_read().ok()?;
        let table = txn.open_table(ADMIN_TOKENS).ok()?;
        let name = table.get(hash_token(token).as_str()).ok()??;
        Some(name.value().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::{TenantAuthenticator, TenantDirectory};

    #[test]
    fn admin_and_tenant_tokens_never_stand_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("tenants.redb")).unwrap());
        let (tenants, admins) =
            (TenantDirectory::open(db.clone()).unwrap(), AdminDirectory::open(db).unwrap());
        let (_, tenant_token) = tenants.create("acme", 0).unwrap();
        let admin_token = admins.create("ops").unwrap();
        assert_eq!(admins.authenticate_admin(&admin_token), Some("ops".to_owned()));
        assert_eq!(admins.authenticate_admin(&tenant_token), None);
        assert_eq!(tenants.authenticate(&admin_token), None);
        assert!(matches!(admins.create("ops"), Err(AdminError::Exists(_))));
        assert!(matches!(admins.create("no spaces"), Err(AdminError::InvalidName(_))));
        assert_eq!(admins.list().unwrap(), ["ops"]);
        admins.revoke("ops").unwrap();
        assert_eq!(admins.authenticate_admin(&admin_token), None);
        assert!(matches!(admins.revoke("ops"), Err(AdminError::NotFound(_))));
    }
}
