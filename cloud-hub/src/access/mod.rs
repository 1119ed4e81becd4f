//! Who may call the gRPC API: bearer API tokens with a role, stored hashed,
//! checked on every call, and an audit trail of every admin and optics call.
//!
//! A token is `ID.SECRET`: the id finds the record, the SHA-256 of the secret
//! is compared in constant time with the stored hash. The secret is shown
//! once, when the token is minted, and never stored.

mod token;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tonic::Status;

pub use self::token::{ApiToken, MintedToken, hash_secret, secret_matches};
use crate::store::StoreResult;

/// Roles of API callers, each allowed what the one below it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Fleet health and telemetry (read only).
    Viewer,
    /// Manufacturing records, installations and maintenance.
    Optics,
    /// Join tokens, enrolment, revocation, sites.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Optics => "optics",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "optics" => Some(Role::Optics),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether a caller with this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: String,
    pub name: String,
    pub role: Role,
}

/// One audited call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_unix_ns: i64,
    pub token_id: String,
    pub caller: String,
    pub role: Role,
    /// gRPC method, e.g. `EnrollmentService/RevokeSite`.
    pub method: String,
    /// What the call was about (site, serial, ...).
    pub subject: String,
}

/// Where API tokens and the audit log live.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    async fn insert_api_token(&self, token: &ApiToken) -> StoreResult<()>;
    async fn find_api_token(&self, id: &str) -> StoreResult<Option<ApiToken>>;
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    async fn audit_log(&self, limit: usize) -> StoreResult<Vec<AuditEntry>>;
}

/// Checks bearer tokens against the store.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn AccessStore>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn AccessStore>) -> Self {
        Authenticator { store }
    }

    /// The caller of `request` if its token is valid and allows `needed`;
    /// `UNAUTHENTICATED` or `PERMISSION_DENIED` naming the role otherwise.
    /// Admin and optics calls are written to the audit log.
    pub async fn authorize<T>(
        &self,
        request: &tonic::Request<T>,
        needed: Role,
        method: &str,
        subject: &str,
    ) -> Result<Caller, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::unauthenticated(format!(
                    "{method} needs an API token with role {} (metadata `authorization: Bearer ID.SECRET`)",
                    needed.as_str()
                ))
            })?;
        let presented = header.strip_prefix("Bearer ").unwrap_or(header).trim();
        self.authorize_token(presented, needed, method, subject)
            .await
    }

    /// [`authorize`](Self::authorize) for a token presented some other way
    /// (the dashboard's header, query or cookie): `ID.SECRET`.
    pub async fn authorize_token(
        &self,
        presented: &str,
        needed: Role,
        method: &str,
        subject: &str,
    ) -> Result<Caller, Status> {
        let unknown = || {
            Status::unauthenticated(format!(
                "{method}: the API token is not valid; it needs role {}",
                needed.as_str()
            ))
        };
        let (id, secret) = presented.split_once('.').ok_or_else(unknown)?;
        let stored = self
            .store
            .find_api_token(id)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot read api tokens");
                Status::unavailable("the token store is unavailable")
            })?
            .ok_or_else(unknown)?;
        if stored.revoked || !token::secret_matches(&stored.secret_sha256, secret) {
            return Err(unknown());
        }
        if !stored.role.allows(needed) {
            return Err(Status::permission_denied(format!(
                "{method} needs role {}; token {:?} has role {}",
                needed.as_str(),
                stored.name,
                stored.role.as_str()
            )));
        }
        let caller = Caller {
            token_id: stored.id,
            name: stored.name,
            role: stored.role,
        };
        if needed >= Role::Optics {
            let entry = AuditEntry {
                at_unix_ns: crate::time::now_unix_ns(),
                token_id: caller.token_id.clone(),
                caller: caller.name.clone(),
                role: caller.role,
                method: method.to_owned(),
                subject: subject.to_owned(),
            };
            tracing::info!(caller = caller.name, method, subject, "audit");
            if let Err(error) = self.store.append_audit(&entry).await {
                tracing::error!(%error, "cannot write the audit log");
                return Err(Status::unavailable("the audit log is unavailable"));
            }
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Optics.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Optics));
        assert!(!Role::Optics.allows(Role::Admin));
        assert_eq!(Role::parse("optics"), Some(Role::Optics));
        assert_eq!(Role::parse("root"), None);
    }
}
