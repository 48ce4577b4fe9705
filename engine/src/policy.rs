//! The one place that answers "may this user do this to this record?".
//!
//! Permissions come from the roles in `workflows/roles.yaml`: module × action, plus a
//! scope (`own`: only records the user owns; `all`). An API token narrows its user's
//! permissions further to the token's scopes. Every endpoint asks [`Actor::require`];
//! every list query takes its SQL filter from [`Actor::record_filter`] (and, once they
//! exist, [`RecordFilter::owned_sql`]); the realtime layer computes audiences with the same
//! functions. Nothing else decides access.
//!
//! A user whose role no longer exists in the definitions has no permissions at all
//! (fail closed), and inactive users never become actors.

use crate::definitions::Definitions;
pub use crate::definitions::model::{Module, Permission, Scope};
use crate::http::ApiError;
use crate::types::ids::UserId;

crate::id_type!(
    /// A team of users (offboarding can hand records round-robin over a team).
    TeamId
);

/// Who is making a request, and how they proved it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role: String,
    pub team_id: Option<TeamId>,
    pub locale: String,
    pub via: AuthVia,
}

#[derive(Debug, Clone)]
pub enum AuthVia {
    /// A browser session (cookie); state changes need the CSRF token.
    Session {
        session_id: String,
        csrf_token: String,
    },
    /// An API token (`Authorization: Bearer`), limited to its scopes.
    Token {
        token_id: String,
        scopes: TokenScopes,
    },
}

/// What an API token may do, on top of (never beyond) its user's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScopes {
    /// Everything the user's role allows.
    All,
    /// Only these module × action pairs.
    Only(Vec<(Module, Permission)>),
}

impl TokenScopes {
    /// Parses `["*"]` or `["customers:view", "pipeline:edit", …]`.
    pub fn parse(items: &[String]) -> Result<Self, String> {
        if items.iter().any(|s| s == "*") {
            return Ok(TokenScopes::All);
        }
        if items.is_empty() {
            return Err(
                "a token needs at least one scope (`*` for everything your role allows)".into(),
            );
        }
        let mut out = Vec::new();
        for item in items {
            let (module, action) = item.split_once(':').ok_or_else(|| {
                format!("scope `{item}` must look like `module:action`, e.g. `customers:view`")
            })?;
            let module = parse_module(module)
                .ok_or_else(|| format!("unknown module `{module}` in scope `{item}`"))?;
            let action = parse_permission(action)
                .ok_or_else(|| format!("unknown action `{action}` in scope `{item}`"))?;
            out.push((module, action));
        }
        Ok(TokenScopes::Only(out))
    }

    pub fn to_strings(&self) -> Vec<String> {
        match self {
            TokenScopes::All => vec!["*".into()],
            TokenScopes::Only(list) => list
                .iter()
                .map(|(m, a)| format!("{}:{}", module_name(*m), permission_name(*a)))
                .collect(),
        }
    }

    fn allows(&self, module: Module, permission: Permission) -> bool {
        match self {
            TokenScopes::All => true,
            TokenScopes::Only(list) => list.contains(&(module, permission)),
        }
    }
}

/// Which records of an assignee-restricted module a list query may return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFilter {
    /// Every record.
    All,
    /// Only records this user owns (is an owner/assignee of).
    OwnedBy(UserId),
    /// Nothing at all (no view permission).
    Nothing,
}

impl RecordFilter {
    /// A SQL condition for a query over a table whose owner links live in `owners_table`
    /// (`customer_owners (customer_id, user_id)`): `record_column` is the outer query's
    /// record id column, `param` the placeholder index the caller binds
    /// [`RecordFilter::bind_user`] to. Returns None for [`RecordFilter::All`] (no condition).
    pub fn owned_sql(
        &self,
        owners_table: &str,
        owner_key: &str,
        record_column: &str,
        param: usize,
    ) -> Option<String> {
        match self {
            RecordFilter::All => None,
            RecordFilter::Nothing => Some("1 = 0".into()),
            RecordFilter::OwnedBy(_) => Some(format!(
                "EXISTS (SELECT 1 FROM {owners_table} o WHERE o.{owner_key} = {record_column} AND o.user_id = ${param})"
            )),
        }
    }

    /// The user id to bind for [`RecordFilter::owned_sql`], when it needs one.
    pub fn bind_user(&self) -> Option<UserId> {
        match self {
            RecordFilter::OwnedBy(user) => Some(*user),
            _ => None,
        }
    }
}

impl Actor {
    /// Whether the actor's role (and token) allow `permission` on `module`.
    pub fn can(&self, definitions: &Definitions, module: Module, permission: Permission) -> bool {
        let Some(role) = definitions.role(&self.role) else {
            return false;
        };
        let token_allows = match &self.via {
            AuthVia::Session { .. } => true,
            AuthVia::Token { scopes, .. } => scopes.allows(module, permission),
        };
        token_allows && role.permissions.allows(module, permission)
    }

    /// 403 unless [`Actor::can`].
    pub fn require(
        &self,
        definitions: &Definitions,
        module: Module,
        permission: Permission,
    ) -> Result<(), ApiError> {
        if self.can(definitions, module, permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "your role does not allow `{}` on `{}`",
                permission_name(permission),
                module_name(module)
            )))
        }
    }

    /// The role's scope; a missing role is the narrowest scope.
    pub fn scope(&self, definitions: &Definitions) -> Scope {
        definitions.role(&self.role).map_or(Scope::Own, |r| r.scope)
    }

    /// The list filter for records of `module` that have owners.
    pub fn record_filter(&self, definitions: &Definitions, module: Module) -> RecordFilter {
        if !self.can(definitions, module, Permission::View) {
            return RecordFilter::Nothing;
        }
        match self.scope(definitions) {
            Scope::All => RecordFilter::All,
            Scope::Own => RecordFilter::OwnedBy(self.user_id),
        }
    }

    /// May the actor do `permission` on one record of `module` owned by `owners`?
    pub fn may_access(
        &self,
        definitions: &Definitions,
        module: Module,
        permission: Permission,
        owners: &[UserId],
    ) -> bool {
        self.can(definitions, module, permission)
            && match self.scope(definitions) {
                Scope::All => true,
                Scope::Own => owners.contains(&self.user_id),
            }
    }

    /// Like [`Actor::may_access`], answering 404 when the actor may not even see the record
    /// (so its existence is not revealed) and 403 when they may see but not change it.
    pub fn require_access(
        &self,
        definitions: &Definitions,
        module: Module,
        permission: Permission,
        owners: &[UserId],
        what: &str,
    ) -> Result<(), ApiError> {
        if !self.may_access(definitions, module, Permission::View, owners) {
            return Err(ApiError::not_found(what));
        }
        if !self.may_access(definitions, module, permission, owners) {
            return Err(ApiError::forbidden(format!(
                "your role does not allow `{}` on this {what}",
                permission_name(permission)
            )));
        }
        Ok(())
    }

    pub fn is_admin(&self, definitions: &Definitions) -> bool {
        self.can(definitions, Module::Admin, Permission::Edit)
    }
}

pub const MODULES: [Module; 10] = [
    Module::Customers,
    Module::Pipeline,
    Module::Bulk,
    Module::WorkOrders,
    Module::Inventory,
    Module::Reports,
    Module::Inbox,
    Module::Broadcast,
    Module::Admin,
    Module::Definitions,
];

pub const PERMISSIONS: [Permission; 4] = [
    Permission::View,
    Permission::Edit,
    Permission::Bulk,
    Permission::Export,
];

pub fn module_name(m: Module) -> &'static str {
    match m {
        Module::Customers => "customers",
        Module::Pipeline => "pipeline",
        Module::Bulk => "bulk",
        Module::WorkOrders => "work_orders",
        Module::Inventory => "inventory",
        Module::Reports => "reports",
        Module::Inbox => "inbox",
        Module::Broadcast => "broadcast",
        Module::Admin => "admin",
        Module::Definitions => "definitions",
    }
}

pub fn permission_name(p: Permission) -> &'static str {
    match p {
        Permission::View => "view",
        Permission::Edit => "edit",
        Permission::Bulk => "bulk",
        Permission::Export => "export",
    }
}

fn parse_module(s: &str) -> Option<Module> {
    MODULES.into_iter().find(|m| module_name(*m) == s)
}

fn parse_permission(s: &str) -> Option<Permission> {
    PERMISSIONS.into_iter().find(|p| permission_name(*p) == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> std::sync::Arc<Definitions> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Definitions::load_for_server(&root)
            .expect("shipped definitions load")
            .0
    }

    fn actor(role: &str) -> Actor {
        Actor {
            user_id: UserId::new(),
            email: format!("{role}@akis.local"),
            name: role.into(),
            role: role.into(),
            team_id: None,
            locale: "tr".into(),
            via: AuthVia::Session {
                session_id: String::new(),
                csrf_token: String::new(),
            },
        }
    }

    #[test]
    fn a_sales_rep_sees_only_owned_customers() {
        let defs = defaults();
        let rep = actor("sales");
        let other = UserId::new();
        assert_eq!(
            rep.record_filter(&defs, Module::Customers),
            RecordFilter::OwnedBy(rep.user_id)
        );
        assert!(rep.may_access(&defs, Module::Customers, Permission::Edit, &[rep.user_id]));
        assert!(!rep.may_access(&defs, Module::Customers, Permission::View, &[other]));
        let err = rep
            .require_access(
                &defs,
                Module::Customers,
                Permission::Edit,
                &[other],
                "customer",
            )
            .expect_err("not theirs");
        assert_eq!(
            err.status(),
            axum::http::StatusCode::NOT_FOUND,
            "existence is not revealed"
        );
    }

    #[test]
    fn managers_and_admins_see_everything() {
        let defs = defaults();
        for role in ["manager", "admin"] {
            let a = actor(role);
            assert_eq!(
                a.record_filter(&defs, Module::Customers),
                RecordFilter::All,
                "{role}"
            );
            assert!(a.may_access(&defs, Module::Customers, Permission::Edit, &[UserId::new()]));
        }
    }

    #[test]
    fn only_admins_administer() {
        let defs = defaults();
        assert!(actor("admin").is_admin(&defs));
        for role in ["manager", "sales", "operations"] {
            assert!(!actor(role).is_admin(&defs), "{role}");
            assert!(
                actor(role)
                    .require(&defs, Module::Admin, Permission::View)
                    .is_err()
            );
        }
    }

    #[test]
    fn a_rep_cannot_bulk_edit() {
        let defs = defaults();
        assert!(!actor("sales").can(&defs, Module::Bulk, Permission::Bulk));
        assert!(actor("manager").can(&defs, Module::Bulk, Permission::Bulk));
    }

    #[test]
    fn an_unknown_role_has_no_permissions() {
        let defs = defaults();
        let ghost = actor("role_removed_from_yaml");
        for m in MODULES {
            for p in PERMISSIONS {
                assert!(!ghost.can(&defs, m, p));
            }
        }
        assert_eq!(
            ghost.record_filter(&defs, Module::Customers),
            RecordFilter::Nothing
        );
    }

    #[test]
    fn a_token_narrows_but_never_widens_its_users_role() {
        let defs = defaults();
        let mut rep = actor("sales");
        rep.via = AuthVia::Token {
            token_id: String::new(),
            scopes: TokenScopes::parse(&["customers:view".into(), "admin:edit".into()])
                .expect("valid"),
        };
        assert!(rep.can(&defs, Module::Customers, Permission::View));
        assert!(
            !rep.can(&defs, Module::Customers, Permission::Edit),
            "not in the token's scopes"
        );
        assert!(
            !rep.can(&defs, Module::Admin, Permission::Edit),
            "not in the role"
        );
    }

    #[test]
    fn scopes_parse_strictly() {
        assert_eq!(TokenScopes::parse(&["*".into()]), Ok(TokenScopes::All));
        assert!(TokenScopes::parse(&[]).is_err());
        assert!(TokenScopes::parse(&["customers".into()]).is_err());
        assert!(TokenScopes::parse(&["crm:view".into()]).is_err());
        assert!(TokenScopes::parse(&["customers:fly".into()]).is_err());
        let parsed = TokenScopes::parse(&["pipeline:edit".into()]).expect("valid");
        assert_eq!(parsed.to_strings(), ["pipeline:edit"]);
    }

    #[test]
    fn the_owner_filter_renders_sql() {
        let user = UserId::new();
        let f = RecordFilter::OwnedBy(user);
        assert_eq!(
            f.owned_sql("customer_owners", "customer_id", "c.id", 3)
                .as_deref(),
            Some(
                "EXISTS (SELECT 1 FROM customer_owners o WHERE o.customer_id = c.id AND o.user_id = $3)"
            )
        );
        assert_eq!(f.bind_user(), Some(user));
        assert_eq!(RecordFilter::All.owned_sql("t", "k", "c.id", 1), None);
        assert_eq!(
            RecordFilter::Nothing
                .owned_sql("t", "k", "c.id", 1)
                .as_deref(),
            Some("1 = 0")
        );
    }
}
