//! Users and teams: the staff who log in. Roles are ids from `workflows/roles.yaml`;
//! what a role may do is decided in [`crate::policy`].

pub mod http;
pub mod offboarding;
pub mod store;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::definitions::Definitions;
use crate::policy::{Actor, MODULES, PERMISSIONS, Scope, TeamId, module_name, permission_name};
use crate::types::Timestamp;
use crate::types::ids::UserId;

/// A user as the API shows it (never with the password hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    /// A role id from the definitions (`admin`, `manager`, `sales`, `operations`).
    pub role: String,
    pub team_id: Option<TeamId>,
    pub active: bool,
    /// `tr` or `en`.
    pub locale: String,
    /// Send back as `expected_version` when editing.
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deactivated_at: Option<Timestamp>,
    pub last_login_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub created_at: Timestamp,
}

/// The logged-in user with what they may do, for the UI.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub user: User,
    /// `own` (only records they own) or `all`.
    pub scope: String,
    /// Module → permitted actions (`{"customers": ["view", "edit"]}`), after any token scopes.
    pub permissions: BTreeMap<String, Vec<String>>,
}

impl Me {
    pub fn new(user: User, actor: &Actor, definitions: &Definitions) -> Self {
        let mut permissions = BTreeMap::new();
        for module in MODULES {
            let allowed: Vec<String> = PERMISSIONS
                .into_iter()
                .filter(|p| actor.can(definitions, module, *p))
                .map(|p| permission_name(p).to_string())
                .collect();
            if !allowed.is_empty() {
                permissions.insert(module_name(module).to_string(), allowed);
            }
        }
        let scope = match actor.scope(definitions) {
            Scope::All => "all",
            Scope::Own => "own",
        };
        Me {
            user,
            scope: scope.into(),
            permissions,
        }
    }
}

/// Supported interface languages.
pub const LOCALES: [&str; 2] = ["tr", "en"];
