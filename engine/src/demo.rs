//! `akis demo`: realistic sample data so a fresh install has something to look at.
//! Idempotent: running it again adds nothing that is already there.

use crate::audit::{self, AuditEntry, ClientInfo};
use crate::auth;
use crate::definitions::Definitions;
use crate::storage::Db;
use crate::types::Email;
use crate::users::store::{self, NewUser};

/// The demo administrator's credentials, printed at start-up.
pub const ADMIN_EMAIL: &str = "admin@akis.local";
pub const ADMIN_PASSWORD: &str = "demo123";

/// (email, name, role) of the demo staff; all share [`ADMIN_PASSWORD`].
pub const STAFF: &[(&str, &str, &str)] = &[
    (ADMIN_EMAIL, "Sistem Sorumlusu", "admin"),
    ("ayse@akis.local", "Ayşe Yılmaz", "sales"),
    ("mehmet@akis.local", "Mehmet Şahin", "sales"),
    ("zeynep@akis.local", "Zeynep Kaya", "manager"),
    ("emre@akis.local", "Emre Çelik", "operations"),
];

/// Creates the demo users (and their team) when missing.
pub async fn seed(db: &Db, definitions: &Definitions) -> anyhow::Result<()> {
    let hash = auth::hash_password(ADMIN_PASSWORD)
        .await
        .map_err(|e| anyhow::anyhow!("cannot hash the demo password: {e}"))?;
    let teams = store::list_teams(db).await?;
    let team = match teams.into_iter().find(|t| t.name == "Satış Ekibi") {
        Some(team) => team,
        None => {
            let mut tx = db.begin().await?;
            let team = store::insert_team(&mut tx, "Satış Ekibi")
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the demo team: {e}"))?;
            tx.commit().await?;
            team
        }
    };
    let client = ClientInfo::default();
    for (email, name, role) in STAFF {
        if store::find_for_login(db, email).await?.is_some() {
            continue;
        }
        if definitions.role(role).is_none() {
            tracing::warn!(role, "demo user skipped: the definitions have no such role");
            continue;
        }
        let email = Email::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut tx = db.begin().await?;
        let user = store::insert(
            &mut tx,
            NewUser {
                email,
                name: (*name).to_string(),
                role: (*role).to_string(),
                team_id: (*role == "sales").then_some(team.id),
                password_hash: hash.clone(),
                locale: "tr".into(),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot create demo user: {e}"))?;
        audit::record(
            &mut tx,
            AuditEntry::new("user.created", None, &client)
                .label("akis demo")
                .target("user", user.id),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
