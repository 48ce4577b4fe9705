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
    seed_customers(db, definitions, DEMO_CUSTOMERS).await?;
    seed_work_orders(db, definitions).await?;
    Ok(())
}

/// Opens the work orders the pipelines open on a sale for a few demo cards already in that
/// stage (once: nothing when any work order exists).
async fn seed_work_orders(db: &Db, definitions: &Definitions) -> anyhow::Result<()> {
    use crate::definitions::model::Action;
    let existing: i64 = crate::read!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM work_orders").fetch_one(pool).await
    })?;
    if existing > 0 {
        return Ok(());
    }
    // Where the pipelines open work orders (Satış Tamamlandı → Teslimat ve Kurulum): a few
    // demo cards already in that stage get theirs, as if the move had just happened.
    let mut openings = Vec::new();
    for pipeline in &definitions.pipelines {
        for transition in &pipeline.transitions {
            for action in &transition.actions {
                if let Action::CreateWorkOrder(w) = action {
                    openings.push((
                        pipeline.id.as_str().to_string(),
                        transition.to.as_str().to_string(),
                        w.definition.as_str().to_string(),
                    ));
                }
            }
        }
    }
    let mut tx = db.begin().await?;
    for (pipeline, stage, definition) in openings {
        let cards: Vec<(crate::types::ids::CardId, crate::types::ids::CustomerId)> = crate::read!(db, pool => {
            sqlx::query_as("SELECT id, customer_id FROM cards WHERE pipeline_id = $1 AND stage_id = $2 AND closed_at IS NULL ORDER BY id LIMIT 3")
                .bind(&pipeline).bind(&stage).fetch_all(pool).await
        })?;
        for (card, customer) in cards {
            crate::work_orders::create_in(
                &mut tx,
                definitions,
                crate::work_orders::NewWorkOrder {
                    definition: &definition,
                    title: None,
                    customer_id: Some(customer),
                    card_id: Some(card),
                    by: None,
                    effect_key: Some(&format!("demo:{card}:{definition}")),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot open a demo work order: {e}"))?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// How many demo customers `akis demo` creates.
pub const DEMO_CUSTOMERS: usize = 300;

const FIRST_NAMES: &[&str] = &[
    "Ahmet", "Mehmet", "Mustafa", "Ali", "Hüseyin", "Hasan", "İbrahim", "İsmail", "Osman", "Yusuf",
    "Murat", "Ömer", "Emre", "Burak", "Serkan", "Oğuz", "Çağrı", "Uğur", "Gökhan", "Tolga", "Ayşe",
    "Fatma", "Emine", "Hatice", "Zeynep", "Elif", "Merve", "Büşra", "Şule", "Özge", "Gül", "Derya",
    "Esra", "İrem", "Ebru", "Sibel", "Tuğba", "Işıl", "Pınar", "Gökçe",
];
const LAST_NAMES: &[&str] = &[
    "Yılmaz",
    "Kaya",
    "Demir",
    "Şahin",
    "Çelik",
    "Yıldız",
    "Yıldırım",
    "Öztürk",
    "Aydın",
    "Özdemir",
    "Arslan",
    "Doğan",
    "Kılıç",
    "Aslan",
    "Çetin",
    "Kara",
    "Koç",
    "Kurt",
    "Özkan",
    "Şimşek",
    "Polat",
    "Korkmaz",
    "Erdoğan",
    "Güneş",
    "Akın",
    "Işık",
    "Tekin",
    "Uçar",
    "Bulut",
    "Taş",
];
const CITIES: &[&str] = &[
    "İstanbul",
    "Ankara",
    "İzmir",
    "Bursa",
    "Antalya",
    "Muğla",
    "Eskişehir",
    "Kocaeli",
];
const SOURCES: &[&str] = &[
    "meta_lead_ad",
    "meta_lead_ad",
    "web_form",
    "whatsapp",
    "instagram",
    "phone",
    "walk_in",
];
const CAMPAIGNS: &[&str] = &[
    "kis-kampanyasi",
    "deniz-manzarali-villalar",
    "yeni-proje-lansman",
    "bahar-firsatlari",
];
const LOST_REASONS: &[&str] = &["butce", "ulasilamadi", "rakip", "diger"];

/// A small deterministic generator, so every demo database looks the same.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Creates `count` demo customers through the real intake, then moves their cards through
/// the sales pipeline (real transitions: history, timeline and jobs) so every column has
/// cards. Does nothing when customers already exist.
pub async fn seed_customers(
    db: &Db,
    definitions: &Definitions,
    count: usize,
) -> anyhow::Result<()> {
    use crate::crm::intake::{self, Lead};
    use crate::crm::transition::{self, MoveCommand};
    use serde_json::json;

    let existing: i64 = crate::read!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM customers").fetch_one(pool).await
    })?;
    if existing > 0 || definitions.pipeline("sales").is_none() {
        return Ok(());
    }
    let mut rng = Lcg(0x5eed_a415);
    let now = chrono::Utc::now();
    for i in 0..count {
        let first = rng.pick(FIRST_NAMES);
        let last = rng.pick(LAST_NAMES);
        let source = rng.pick(SOURCES);
        let phone = format!(
            "05{}{} {:03} {:02} {:02}",
            3 + rng.below(3),
            rng.below(10),
            rng.below(1000),
            rng.below(100),
            rng.below(100)
        );
        let email = (rng.below(3) == 0).then(|| {
            let ascii = crate::types::fold::fold(&format!("{first}.{last}")).replace(' ', "");
            format!("{ascii}{i}@ornek.com.tr")
        });
        let mut fields = serde_json::Map::new();
        fields.insert("city".into(), json!(rng.pick(CITIES)));
        if rng.below(2) == 0 {
            fields.insert("budget".into(), json!((2 + rng.below(12)) * 500_000));
        }
        if rng.below(3) > 0 {
            fields.insert(
                "interested_in".into(),
                json!(rng.pick(&["daire", "villa", "arsa"])),
            );
        }
        let meta = source.starts_with("meta") || source == "instagram";
        let lead = Lead {
            name: format!("{first} {last}"),
            phone: Some(phone),
            email,
            source: Some(source.to_string()),
            attribution: crate::crm::customers::Attribution {
                utm_source: meta.then(|| "facebook".to_string()),
                utm_medium: meta.then(|| "paid_social".to_string()),
                utm_campaign: (meta || source == "web_form")
                    .then(|| rng.pick(CAMPAIGNS).to_string()),
                ..Default::default()
            },
            notes: (rng.below(4) == 0).then(|| {
                "Deniz manzaralı, 3+1 bir daire arıyor; hafta sonu aranmak istiyor.".to_string()
            }),
            fields,
            whatsapp_consent: Some(rng.below(2) == 0),
            ..Lead::default()
        };
        let outcome = match intake::intake(db, definitions, lead).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::debug!(error = %e, "demo lead skipped");
                continue;
            }
        };
        // Spread over the stages: most early, some won, some lost.
        let path: &[&str] = match rng.below(20) {
            0..=5 => &[],
            6..=9 => &["gorusuluyor"],
            10..=11 => &["gorusuluyor", "takip_edilecek"],
            12..=13 => &["gorusuluyor", "randevu"],
            14 => &["gorusuluyor", "randevu", "kapora"],
            15..=16 => &["gorusuluyor", "randevu", "kapora", "satis_tamamlandi"],
            _ => &["gorusuluyor", "uygun_degil"],
        };
        let appointment = now
            + chrono::Duration::days(rng.below(21) as i64 - 7)
            + chrono::Duration::hours(rng.below(8) as i64);
        let card_fields = json!({
            "appointment_at": appointment.to_rfc3339(),
            "deposit_amount": (1 + rng.below(10)) * 25_000,
            "sale_amount": (2 + rng.below(14)) * 500_000,
            "lost_reason": rng.pick(LOST_REASONS),
        });
        let mut version = 1;
        for to in path {
            let command = MoveCommand {
                card: outcome.card_id,
                to: (*to).to_string(),
                expected_version: version,
                fields: card_fields.as_object().cloned().unwrap_or_default(),
                by: None,
                locale: "tr".into(),
            };
            match transition::move_card(db, definitions, command, |_| Ok(())).await {
                Ok(moved) => version = moved.card.version,
                Err(e) => {
                    tracing::debug!(error = %e, "demo move skipped");
                    break;
                }
            }
        }
        // Contact history: some recent, some overdue, some never.
        if rng.below(5) > 0 {
            let at = crate::types::Timestamp::from_datetime(
                now - chrono::Duration::hours(rng.below(24 * 9) as i64),
            );
            let mut tx = db.begin().await?;
            crate::exec!(&mut tx, conn => sqlx::query("UPDATE customers SET last_contact_at = $1 WHERE id = $2")
                .bind(at).bind(outcome.customer_id).execute(conn).await.map(|r| r.rows_affected()))?;
            crate::crm::cards::refresh_sort_keys_for_customer(
                &mut tx,
                definitions,
                outcome.customer_id,
            )
            .await?;
            tx.commit().await?;
        }
    }
    Ok(())
}
