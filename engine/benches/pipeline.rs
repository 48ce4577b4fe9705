//! Pipeline-core benchmarks (results in BENCHMARKS.md, "Pipeline core").
//!
//! ```text
//! AKIS_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p akis-engine --bench pipeline -- [board] [move] [http] \
//!   [--backend sqlite|postgres|both] [--customers 100000] [--events 1000000] [--runs 3] \
//!   [--board-iters 200] [--moves 1500] [--http-moves 3000] [--intakes 2000] [--connections 8] \
//!   [--sqlite-analyze] [--keep]
//! ```
//!
//! Every backend gets a fresh database (a SQLite file in a temporary folder, or a new
//! PostgreSQL database on the server of `AKIS_BENCH_POSTGRES_URL` / `AKIS_TEST_POSTGRES_URL`,
//! dropped at the end), loaded with bulk SQL (not through intake): `--customers` customers
//! with phones, some emails, owners among 20 sales reps, tags, scores, one lead each, one
//! card each in the `sales` pipeline spread over its stages (with stage history), and
//! `--events` timeline events spread over the customers.
//!
//! - `board`: `crm::board::board` (first page, limit 20) with two filters (one rep's
//!   customers from `meta_lead_ad`), unfiltered, a sales rep's own view, and a text search;
//!   p50 / p95 over `--board-iters` calls, `--runs` times.
//! - `move`: `crm::transition::move_card` (checks, guard, history, timeline, outbox jobs,
//!   committed) against a raw baseline of the same writes as plain statements in one
//!   transaction, on the same cards, 1 and 4 concurrent movers.
//! - `http`: the server in-process on 127.0.0.1:0, driven by reqwest over `--connections`
//!   connections: `POST /api/cards/{id}/move` (tracking each card's version from the
//!   responses), `POST /api/leads` (60 % new phones, 40 % phones of existing customers in
//!   other Turkish spellings) and `GET /api/pipelines/sales/board` with two filters; raw
//!   baselines at the same concurrency beside them.
//!
//! Figures are medians over `--runs` runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use akis_engine::config::{Config, DatabaseUrl};
use akis_engine::crm::board::{self, Filter};
use akis_engine::crm::customers::search_key;
use akis_engine::crm::transition::{self, MoveCommand};
use akis_engine::definitions::Definitions;
use akis_engine::jobs::FollowUpJob;
use akis_engine::jobs::effects::EffectKey;
use akis_engine::policy::RecordFilter;
use akis_engine::storage::{Backend, Db, StorageOptions, Tx};
use akis_engine::types::fold::fold;
use akis_engine::types::ids::{CardId, CustomerId, EventId, UserId};
use akis_engine::types::{Phone, Timestamp};
use akis_engine::{App, exec};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

// ---------------------------------------------------------------- small helpers

/// SplitMix64: deterministic and dependency-free.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 0.5)
}

fn ago(now: Timestamp, secs: u64) -> Timestamp {
    Timestamp::from_datetime(now.as_datetime() - chrono::Duration::seconds(secs as i64))
}

fn v7_at(t: Timestamp) -> uuid::Uuid {
    let dt = t.as_datetime();
    uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        dt.timestamp() as u64,
        dt.timestamp_subsec_nanos(),
    ))
}

const FIRST: &[&str] = &[
    "Ayşe",
    "Fatma",
    "Emine",
    "Hatice",
    "Zeynep",
    "Elif",
    "Meryem",
    "Şerife",
    "Zehra",
    "Sultan",
    "Hanife",
    "Merve",
    "Büşra",
    "Esra",
    "Özlem",
    "Gülsüm",
    "Derya",
    "İrem",
    "Ebru",
    "Şeyma",
    "Mehmet",
    "Mustafa",
    "Ahmet",
    "Ali",
    "Hüseyin",
    "Hasan",
    "İbrahim",
    "İsmail",
    "Osman",
    "Yusuf",
    "Murat",
    "Ömer",
    "Ramazan",
    "Halil",
    "Süleyman",
    "Abdullah",
    "Mahmut",
    "Emre",
    "Burak",
    "Oğuz",
    "Çağrı",
    "Gökhan",
    "Ercan",
    "Kübra",
    "Tuğba",
    "Işıl",
    "Uğur",
    "Şükrü",
];
const LAST: &[&str] = &[
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
    "Özcan",
    "Korkmaz",
    "Çakır",
    "Erdoğan",
    "Yavuz",
    "Can",
    "Acar",
    "Şen",
    "Aktaş",
    "Güler",
    "Yalçın",
    "Güneş",
    "Bozkurt",
    "Bulut",
    "Keskin",
    "Ünal",
    "Turan",
    "Gül",
    "Işık",
    "Uçar",
    "Tekin",
    "Ateş",
    "Sarı",
    "Karaca",
    "Güven",
    "Erdem",
    "Tunç",
];
const PREFIXES: &[&str] = &[
    "532", "533", "535", "536", "537", "538", "539", "541", "542", "543", "544", "545", "546",
    "505", "506", "507", "552", "553", "554", "555",
];
const SOURCES: &[(&str, u64)] = &[
    ("meta_lead_ad", 40),
    ("web_form", 25),
    ("whatsapp", 15),
    ("phone", 12),
    ("walk_in", 8),
];
const CAMPAIGNS: &[&str] = &[
    "kis_kampanyasi_2026",
    "bahar_indirimi",
    "yaz_firsatlari",
    "okula_donus",
    "bayram_ozel",
    "sahibinden_ilan",
    "google_arama_marka",
    "instagram_reels_kasim",
];
const TAGS: &[&str] = &[
    "vip",
    "sicak",
    "geri_aranacak",
    "kampanya",
    "kurumsal",
    "tekrar",
];
/// Stages of `sales` with their share of the cards (percent).
const STAGES: &[(&str, u64)] = &[
    ("potansiyel", 25),
    ("gorusuluyor", 15),
    ("takip_edilecek", 15),
    ("randevu", 8),
    ("kapora", 4),
    ("satis_tamamlandi", 13),
    ("uygun_degil", 20),
];
const REPS: usize = 20;

fn weighted<'a>(rng: &mut Rng, items: &'a [(&'a str, u64)]) -> &'a str {
    let total: u64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    items[0].0
}

fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'ç' | 'Ç' => 'c',
            'ğ' | 'Ğ' => 'g',
            'ı' | 'I' | 'İ' => 'i',
            'ö' | 'Ö' => 'o',
            'ş' | 'Ş' => 's',
            'ü' | 'Ü' => 'u',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// The i-th customer's mobile number: national significant digits (10), unique per i.
fn phone_digits(i: u64) -> String {
    let prefix = PREFIXES[(i % PREFIXES.len() as u64) as usize];
    let rest = (i / PREFIXES.len() as u64 * 7_919 + 1_234_567) % 10_000_000;
    format!("{prefix}{rest:07}")
}

/// A Turkish spelling of the number, varied by `style`.
fn phone_spelling(digits: &str, style: u64) -> String {
    let (a, b, c, d) = (&digits[0..3], &digits[3..6], &digits[6..8], &digits[8..10]);
    match style % 6 {
        0 => format!("0{a} {b} {c} {d}"),
        1 => format!("+90 {a} {b} {c}{d}"),
        2 => digits.to_string(),
        3 => format!("0({a}) {b}-{c}-{d}"),
        4 => format!("+90{digits}"),
        _ => format!("90 {a} {b} {c} {d}"),
    }
}

fn turkish_name(rng: &mut Rng) -> String {
    if rng.pct(8) {
        format!("{} {} {}", rng.pick(FIRST), rng.pick(FIRST), rng.pick(LAST))
    } else {
        format!("{} {}", rng.pick(FIRST), rng.pick(LAST))
    }
}

// ---------------------------------------------------------------- databases

struct BenchDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl BenchDb {
    fn fresh(backend: Backend, pg_admin: &str) -> BenchDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite:{}", dir.path().join("bench.db").display());
                BenchDb {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres => {
                let name = format!("akis_bench_{}", uuid::Uuid::now_v7().simple());
                let (base, _) = pg_admin.rsplit_once('/').expect("a PostgreSQL URL");
                BenchDb {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    pg: Some((pg_admin.to_string(), name)),
                }
            }
        }
    }

    async fn open(&self) -> Db {
        let db = Db::connect(
            &DatabaseUrl::new(self.url.clone()),
            &StorageOptions {
                max_connections: 20,
                ..StorageOptions::default()
            },
        )
        .await
        .expect("open");
        db.migrate().await.expect("migrate");
        db
    }

    async fn drop_pg(&self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(pool) = sqlx::PgPool::connect(admin).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&pool)
            .await;
        }
    }
}

// ---------------------------------------------------------------- bulk load

/// One bound value of a bulk insert.
enum V {
    T(String),
    OT(Option<String>),
    I(i64),
    OI(Option<i64>),
    B(Option<bool>),
    Ts(Timestamp),
    OTs(Option<Timestamp>),
}

/// Multi-row `INSERT`s on one open transaction.
async fn insert_rows(tx: &mut Tx, table: &str, cols: &[&str], rows: &[Vec<V>]) {
    // sqlx binds SQLite arguments in time quadratic in their number per statement: keep
    // statements small there (≈1,000 arguments); PostgreSQL takes bigger ones well.
    let budget = if tx.backend() == Backend::Sqlite {
        1_000
    } else {
        16_000
    };
    let per = (budget / cols.len()).max(1);
    for chunk in rows.chunks(per) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
        let mut n = 0;
        for (r, _) in chunk.iter().enumerate() {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..cols.len() {
                if c > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            sql.push(')');
        }
        exec!(tx, conn => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for v in chunk.iter().flatten() {
                q = match v {
                    V::T(s) => q.bind(s.as_str()),
                    V::OT(s) => q.bind(s.as_deref()),
                    V::I(i) => q.bind(*i),
                    V::OI(i) => q.bind(*i),
                    V::B(b) => q.bind(*b),
                    V::Ts(t) => q.bind(*t),
                    V::OTs(t) => q.bind(*t),
                };
            }
            q.execute(conn).await.map(|r| r.rows_affected())
        })
        .unwrap_or_else(|e| panic!("insert into {table}: {e}"));
    }
}

/// What the benchmarks need to know about the loaded data.
struct Dataset {
    reps: Vec<UserId>,
    admin_email: String,
    customers: u64,
}

const ADMIN_PASSWORD: &str = "bench-parola-1234";

async fn load(db: &Db, definitions: &Definitions, customers: u64, events: u64) -> Dataset {
    let started = Instant::now();
    let now = Timestamp::now();
    let mut rng = Rng(0x5EED_A1C5);
    let version = definitions.version.clone();

    // Users: 20 sales reps and a manager (raw rows), and an admin who logs in.
    let admin_email = "admin@bench.local".to_string();
    let hash = akis_engine::auth::hash_password(ADMIN_PASSWORD)
        .await
        .expect("hash");
    let mut tx = db.begin().await.expect("begin");
    akis_engine::users::store::insert(
        &mut tx,
        akis_engine::users::store::NewUser {
            email: akis_engine::types::Email::parse(&admin_email).expect("email"),
            name: "Bench Yönetici".into(),
            role: "admin".into(),
            team_id: None,
            password_hash: hash,
            locale: "tr".into(),
        },
    )
    .await
    .expect("admin");
    let mut reps = Vec::new();
    let mut user_rows = Vec::new();
    for i in 0..=REPS {
        let id = UserId::new();
        let role = if i == REPS { "manager" } else { "sales" };
        if i < REPS {
            reps.push(id);
        }
        let t = ago(now, 400 * 86_400);
        user_rows.push(vec![
            V::T(id.to_string()),
            V::T(format!("{role}{i:02}@bench.local")),
            V::T(turkish_name(&mut rng)),
            V::T(role.into()),
            V::OT(None),
            V::T("$argon2id$bench".into()),
            V::B(Some(true)),
            V::T("tr".into()),
            V::I(1),
            V::Ts(t),
            V::Ts(t),
        ]);
    }
    insert_rows(
        &mut tx,
        "users",
        &[
            "id",
            "email",
            "name",
            "role",
            "team_id",
            "password_hash",
            "active",
            "locale",
            "version",
            "created_at",
            "updated_at",
        ],
        &user_rows,
    )
    .await;
    tx.commit().await.expect("commit users");

    // Customers and everything hanging off them, in batches of 10,000.
    const BATCH: u64 = 10_000;
    let mut events_left = events;
    let mut start = 0;
    while start < customers {
        let end = (start + BATCH).min(customers);
        let mut tx = db.begin().await.expect("begin");
        let (mut cu, mut ph, mut em, mut ow, mut tg, mut ca, mut hi, mut le, mut ev) = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        for i in start..end {
            let created = ago(now, 3_600 + rng.below(365 * 86_400));
            let since_created = (now.as_datetime() - created.as_datetime())
                .num_seconds()
                .max(1) as u64;
            let id = CustomerId(v7_at(created));
            let name = turkish_name(&mut rng);
            let source = weighted(&mut rng, SOURCES).to_string();
            let campaign = match source.as_str() {
                "meta_lead_ad" | "web_form" => Some(rng.pick(CAMPAIGNS).to_string()),
                _ if rng.pct(10) => Some(rng.pick(CAMPAIGNS).to_string()),
                _ => None,
            };
            let digits = phone_digits(i);
            let raw = phone_spelling(&digits, rng.next());
            let e164 =
                Phone::parse(&raw).unwrap_or_else(|_| panic!("invalid generated phone {raw}"));
            let email = rng.pct(40).then(|| {
                let parts: Vec<String> = name.split(' ').map(ascii).collect();
                format!(
                    "{}.{}{}@{}",
                    parts[0],
                    parts[parts.len() - 1],
                    i,
                    rng.pick(&["gmail.com", "hotmail.com", "yandex.com", "outlook.com"])
                )
            });
            let last_contact = rng.pct(85).then(|| ago(now, rng.below(since_created)));
            let attribution = json!({
                "source": source,
                "utm_campaign": campaign,
                "at": created,
            });
            let scored = rng.pct(90);
            let whatsapp = rng.pct(50);
            let phones = vec![e164.as_str().to_string()];
            let emails: Vec<String> = email.iter().cloned().collect();
            cu.push(vec![
                V::T(id.to_string()),
                V::T(name.clone()),
                V::T(fold(&name)),
                V::T(search_key(&name, &phones, &emails)),
                V::T(source.clone()),
                V::T(attribution.to_string()),
                V::T(attribution.to_string()),
                V::OT(campaign.clone()),
                V::OI(scored.then(|| rng.below(101) as i64)),
                V::OI(scored.then(|| rng.below(101) as i64)),
                V::B(whatsapp.then_some(true)),
                V::OT(whatsapp.then(|| source.clone())),
                V::OTs(whatsapp.then_some(created)),
                V::T("{}".into()),
                V::OTs(last_contact),
                V::I(1 + rng.below(4) as i64),
                V::Ts(created),
                V::Ts(last_contact.unwrap_or(created)),
            ]);
            ph.push(vec![
                V::T(e164.as_str().to_string()),
                V::T(id.to_string()),
                V::T(raw),
                V::I(0),
                V::Ts(created),
            ]);
            if let Some(email) = email {
                em.push(vec![
                    V::T(email),
                    V::T(id.to_string()),
                    V::I(0),
                    V::Ts(created),
                ]);
            }
            let mut owners = Vec::new();
            if !rng.pct(3) {
                owners.push(reps[rng.below(REPS as u64) as usize]);
                if rng.pct(5) {
                    let other = reps[rng.below(REPS as u64) as usize];
                    if other != owners[0] {
                        owners.push(other);
                    }
                }
            }
            for o in &owners {
                ow.push(vec![
                    V::T(id.to_string()),
                    V::T(o.to_string()),
                    V::Ts(created),
                ]);
            }
            if rng.pct(30) {
                let first = rng.below(TAGS.len() as u64) as usize;
                tg.push(vec![V::T(id.to_string()), V::T(TAGS[first].into())]);
                if rng.pct(30) {
                    let second =
                        (first + 1 + rng.below(TAGS.len() as u64 - 1) as usize) % TAGS.len();
                    tg.push(vec![V::T(id.to_string()), V::T(TAGS[second].into())]);
                }
            }
            // The card.
            let stage = weighted(&mut rng, STAGES);
            let card = CardId(v7_at(created));
            let entered = if stage == "potansiyel" {
                created
            } else {
                ago(now, rng.below(since_created))
            };
            let mut fields = Map::new();
            if matches!(stage, "randevu" | "kapora" | "satis_tamamlandi") {
                let at = Timestamp::from_datetime(
                    entered.as_datetime() + chrono::Duration::hours(24 + rng.below(14 * 24) as i64),
                );
                fields.insert("appointment_at".into(), json!(at.to_canonical_string()));
            }
            if stage == "uygun_degil" {
                fields.insert(
                    "lost_reason".into(),
                    json!(rng.pick(&["butce", "ulasilamadi"])),
                );
            }
            let sort_key = last_contact
                .map(|t| t.to_canonical_string())
                .unwrap_or_default();
            ca.push(vec![
                V::T(card.to_string()),
                V::T(id.to_string()),
                V::T("sales".into()),
                V::T(stage.into()),
                V::T(Value::Object(fields).to_string()),
                V::T(sort_key),
                V::I(1 + rng.below(6) as i64),
                V::Ts(entered),
                V::Ts(created),
                V::Ts(entered),
            ]);
            let lead_event = EventId(v7_at(created));
            if stage != "potansiyel" {
                hi.push(vec![
                    V::T(v7_at(created).to_string()),
                    V::T(card.to_string()),
                    V::T("sales".into()),
                    V::T("potansiyel".into()),
                    V::Ts(created),
                    V::OTs(Some(entered)),
                    V::OT(None),
                    V::OT(Some(lead_event.to_string())),
                ]);
            }
            hi.push(vec![
                V::T(v7_at(entered).to_string()),
                V::T(card.to_string()),
                V::T("sales".into()),
                V::T(stage.into()),
                V::Ts(entered),
                V::OTs(None),
                V::OT(owners.first().map(|o| o.to_string())),
                V::OT(None),
            ]);
            le.push(vec![
                V::T(v7_at(created).to_string()),
                V::T(id.to_string()),
                V::OT(Some(card.to_string())),
                V::T(source.clone()),
                V::OT((source == "meta_lead_ad").then(|| format!("meta:{}", 900_000_000_000 + i))),
                V::OT(None),
                V::T(
                    json!({"name": name, "phone": e164.as_str(), "attribution": attribution})
                        .to_string(),
                ),
                V::Ts(created),
            ]);
            // Timeline: the lead, then a spread of other events up to the target total.
            let left_customers = customers - i;
            let n = if left_customers == 1 {
                events_left
            } else {
                let avg = events_left as f64 / left_customers as f64;
                let spread = (2.0 * avg - 1.0).round().max(1.0) as u64;
                (1 + rng.below(spread)).min(events_left)
            };
            for k in 0..n {
                let at = if k == 0 {
                    created
                } else {
                    ago(now, rng.below(since_created))
                };
                let (kind, data) = if k == 0 {
                    (
                        "lead",
                        json!({"source": source, "returning": false, "pipeline": "sales", "stage": "potansiyel"}),
                    )
                } else {
                    match rng.below(6) {
                        0 | 1 => (
                            "stage_changed",
                            json!({"pipeline": "sales", "from": "potansiyel", "to": stage, "fields": {}}),
                        ),
                        2 => (
                            "note",
                            json!({"text": "Müşteri fiyat bilgisi istedi, hafta sonu tekrar aranacak."}),
                        ),
                        3 => (
                            "customer_updated",
                            json!({"changes": {"name": {"from": name, "to": name}}}),
                        ),
                        4 => ("owners_changed", json!({"added": owners, "removed": []})),
                        _ => (
                            "lead",
                            json!({"source": source, "returning": true, "pipeline": "sales"}),
                        ),
                    }
                };
                ev.push(vec![
                    V::T(if k == 0 {
                        lead_event.to_string()
                    } else {
                        v7_at(at).to_string()
                    }),
                    V::T(id.to_string()),
                    V::OT(Some(card.to_string())),
                    V::T(kind.into()),
                    V::Ts(at),
                    V::OT(owners.first().filter(|_| k > 0).map(|o| o.to_string())),
                    V::T(version.clone()),
                    V::T(data.to_string()),
                ]);
            }
            events_left -= n;
        }
        let customer_cols = [
            "id",
            "name",
            "name_key",
            "search_key",
            "source",
            "first_touch",
            "last_touch",
            "campaign",
            "emotional_score",
            "logical_score",
            "whatsapp_consent",
            "whatsapp_consent_source",
            "whatsapp_consent_at",
            "fields",
            "last_contact_at",
            "version",
            "created_at",
            "updated_at",
        ];
        insert_rows(&mut tx, "customers", &customer_cols, &cu).await;
        insert_rows(
            &mut tx,
            "customer_phones",
            &["e164", "customer_id", "raw", "position", "added_at"],
            &ph,
        )
        .await;
        insert_rows(
            &mut tx,
            "customer_emails",
            &["email", "customer_id", "position", "added_at"],
            &em,
        )
        .await;
        insert_rows(
            &mut tx,
            "customer_owners",
            &["customer_id", "user_id", "since"],
            &ow,
        )
        .await;
        insert_rows(&mut tx, "customer_tags", &["customer_id", "tag"], &tg).await;
        insert_rows(
            &mut tx,
            "cards",
            &[
                "id",
                "customer_id",
                "pipeline_id",
                "stage_id",
                "fields",
                "sort_key",
                "version",
                "stage_entered_at",
                "created_at",
                "updated_at",
            ],
            &ca,
        )
        .await;
        insert_rows(
            &mut tx,
            "card_stage_history",
            &[
                "id",
                "card_id",
                "pipeline_id",
                "stage_id",
                "entered_at",
                "left_at",
                "entered_by",
                "event_id",
            ],
            &hi,
        )
        .await;
        insert_rows(
            &mut tx,
            "leads",
            &[
                "id",
                "customer_id",
                "card_id",
                "source",
                "external_key",
                "matched_by",
                "payload",
                "received_at",
            ],
            &le,
        )
        .await;
        insert_rows(
            &mut tx,
            "timeline_events",
            &[
                "id",
                "customer_id",
                "card_id",
                "kind",
                "at",
                "actor_id",
                "definitions_version",
                "data",
            ],
            &ev,
        )
        .await;
        tx.commit().await.expect("commit batch");
        start = end;
    }
    eprintln!(
        "  loaded {customers} customers, {} timeline events in {:.1} s",
        events - events_left,
        started.elapsed().as_secs_f64()
    );
    Dataset {
        reps,
        admin_email,
        customers,
    }
}

async fn analyze(db: &Db) {
    let started = Instant::now();
    match db {
        Db::Sqlite(s) => {
            sqlx::query("ANALYZE")
                .execute(&s.writer)
                .await
                .expect("analyze");
        }
        Db::Postgres(p) => {
            sqlx::query("VACUUM ANALYZE")
                .execute(p)
                .await
                .expect("analyze");
        }
    }
    eprintln!("  analyzed in {:.1} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------- board

async fn board_latency(
    db: &Db,
    definitions: &Definitions,
    filter: &Filter,
    policy: &RecordFilter,
    iters: usize,
) -> (f64, f64, i64) {
    let pipeline = definitions.pipeline("sales").expect("sales pipeline");
    let mut total = 0;
    for _ in 0..5 {
        let b = board::board(db, definitions, pipeline, filter, policy, 20)
            .await
            .expect("board");
        total = b.columns.iter().map(|c| c.count).sum();
    }
    let mut ms = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let b = board::board(db, definitions, pipeline, filter, policy, 20)
            .await
            .expect("board");
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(b);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (percentile(&ms, 0.5), percentile(&ms, 0.95), total)
}

async fn bench_board(
    db: &Db,
    definitions: &Definitions,
    data: &Dataset,
    runs: usize,
    iters: usize,
    report: &mut Vec<String>,
    backend: Backend,
) {
    let rep = data.reps[0];
    let cases: Vec<(&str, Filter, RecordFilter, &str)> = vec![
        (
            "owners=rep AND sources=meta_lead_ad (admin)",
            Filter {
                owners: vec![rep],
                sources: vec!["meta_lead_ad".into()],
                ..Filter::default()
            },
            RecordFilter::All,
            if backend == Backend::Sqlite {
                "p50 < 15 ms"
            } else {
                "p50 < 25 ms"
            },
        ),
        (
            "unfiltered (admin)",
            Filter::default(),
            RecordFilter::All,
            "—",
        ),
        (
            "sales rep's own view (OwnedBy)",
            Filter::default(),
            RecordFilter::OwnedBy(rep),
            "—",
        ),
        (
            "search q=\"ayse yilmaz\" (admin)",
            Filter {
                q: Some("ayse yilmaz".into()),
                ..Filter::default()
            },
            RecordFilter::All,
            "—",
        ),
    ];
    for (name, filter, policy, goal) in cases {
        let mut p50s = Vec::new();
        let mut p95s = Vec::new();
        let mut total = 0;
        for _ in 0..runs {
            // The text search scans every customer: fewer calls keep the run short.
            let n = if filter.q.is_some() {
                iters.min(30)
            } else {
                iters
            };
            let (p50, p95, t) = board_latency(db, definitions, &filter, &policy, n).await;
            eprintln!("    board {name}: p50 {p50:.2} ms, p95 {p95:.2} ms ({t} cards match)");
            p50s.push(p50);
            p95s.push(p95);
            total = t;
        }
        report.push(format!(
            "| {backend} | board: {name} | p50 **{:.2} ms** (runs: {}) | p95 {:.2} ms | {total} | {goal} |",
            median(&p50s),
            p50s.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(", "),
            median(&p95s),
        ));
    }
}

// ---------------------------------------------------------------- moves

/// One step of the move cycle a card goes round, starting in `gorusuluyor`:
/// (target stage, sends appointment_at, jobs the transition's actions push).
const CYCLE: &[(&str, bool, usize)] = &[
    ("takip_edilecek", false, 1), // follow_up
    ("gorusuluyor", false, 0),
    ("randevu", true, 2),         // guard + conversion_event + whatsapp_template
    ("takip_edilecek", false, 1), // follow_up
    ("gorusuluyor", false, 0),
];

#[derive(Clone)]
struct MovingCard {
    card: CardId,
    customer: CustomerId,
    version: i64,
    sort_key: String,
    fields: String,
    pos: usize,
}

#[derive(sqlx::FromRow)]
struct CardPick {
    id: CardId,
    customer_id: CustomerId,
    version: i64,
    sort_key: String,
    fields: String,
}

async fn pick_cards(db: &Db, n: usize, offset: usize) -> Vec<MovingCard> {
    let rows: Vec<CardPick> = akis_engine::read!(db, pool => {
        sqlx::query_as(
            "SELECT id, customer_id, version, sort_key, fields FROM cards WHERE pipeline_id = 'sales' AND stage_id = 'gorusuluyor'
             ORDER BY id LIMIT $1 OFFSET $2")
            .bind(n as i64)
            .bind(offset as i64)
            .fetch_all(pool)
            .await
    })
    .expect("pick cards");
    rows.into_iter()
        .map(|r| MovingCard {
            card: r.id,
            customer: r.customer_id,
            version: r.version,
            sort_key: r.sort_key,
            fields: r.fields,
            pos: 0,
        })
        .collect()
}

fn appointment() -> Value {
    let at = Timestamp::from_datetime(chrono::Utc::now() + chrono::Duration::days(3));
    json!(at.to_canonical_string())
}

async fn engine_move(db: &Db, definitions: &Definitions, c: &mut MovingCard, by: UserId) {
    let (to, asks, _) = CYCLE[c.pos];
    let mut fields = Map::new();
    if asks {
        fields.insert("appointment_at".into(), appointment());
    }
    let moved = transition::move_card(
        db,
        definitions,
        MoveCommand {
            card: c.card,
            to: to.into(),
            expected_version: c.version,
            fields,
            by: Some(by),
            locale: "tr".into(),
        },
        |_| Ok(()),
    )
    .await
    .unwrap_or_else(|e| panic!("engine move to {to}: {e:?}"));
    c.version = moved.card.version;
    c.fields = Value::Object(moved.card.fields).to_string();
    c.pos = (c.pos + 1) % CYCLE.len();
}

/// The same writes as `move_card`, as plain statements in one transaction.
async fn raw_move(db: &Db, definitions_version: &str, c: &mut MovingCard, by: UserId) {
    let (to, asks, jobs) = CYCLE[c.pos];
    let from = CYCLE[(c.pos + CYCLE.len() - 1) % CYCLE.len()].0;
    if asks {
        let mut f: Map<String, Value> = serde_json::from_str(&c.fields).unwrap_or_default();
        f.insert("appointment_at".into(), appointment());
        c.fields = Value::Object(f).to_string();
    }
    let now = Timestamp::now();
    let event = EventId::new();
    let mut tx = db.begin().await.expect("begin");
    let updated = exec!(&mut tx, conn => sqlx::query(
        "UPDATE cards SET stage_id = $1, fields = $2, sort_key = $3, version = version + 1, stage_entered_at = $4, updated_at = $4
         WHERE id = $5 AND version = $6")
        .bind(to).bind(&c.fields).bind(&c.sort_key).bind(now).bind(c.card).bind(c.version)
        .execute(conn).await.map(|r| r.rows_affected()))
    .expect("update card");
    assert_eq!(updated, 1, "raw move lost the version race");
    let data = json!({"pipeline": "sales", "from": from, "to": to, "fields": {}}).to_string();
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO timeline_events (id, customer_id, card_id, kind, at, actor_id, definitions_version, data)
         VALUES ($1, $2, $3, 'stage_changed', $4, $5, $6, $7)")
        .bind(event).bind(c.customer).bind(c.card).bind(now).bind(by).bind(definitions_version).bind(&data)
        .execute(conn).await.map(|r| r.rows_affected()))
    .expect("timeline");
    exec!(&mut tx, conn => sqlx::query("UPDATE card_stage_history SET left_at = $1 WHERE card_id = $2 AND left_at IS NULL")
        .bind(now).bind(c.card).execute(conn).await.map(|r| r.rows_affected()))
    .expect("close history");
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO card_stage_history (id, card_id, pipeline_id, stage_id, entered_at, left_at, entered_by, event_id)
         VALUES ($1, $2, 'sales', $3, $4, NULL, $5, $6)")
        .bind(uuid::Uuid::now_v7().to_string()).bind(c.card).bind(to).bind(now).bind(by).bind(event)
        .execute(conn).await.map(|r| r.rows_affected()))
    .expect("open history");
    for k in 0..jobs {
        let job = FollowUpJob {
            effect_key: EffectKey::new(format!("bench:{event}:{k}")),
            card_id: c.card,
            customer_id: c.customer,
            title_tr: "Tekrar ara".into(),
            title_en: "Call again".into(),
            due: "+2d at 10:00".into(),
            base: now,
            card_fields: Map::new(),
            assignees: vec![by],
        };
        exec!(&mut tx, conn => akis_engine::jobs::enqueue(conn, &job).await).expect("enqueue");
    }
    tx.commit().await.expect("commit");
    c.version += 1;
    c.pos = (c.pos + 1) % CYCLE.len();
}

#[derive(Clone, Copy, PartialEq)]
enum Mover {
    Engine,
    Raw,
}

/// `total` moves over `cards` split between `concurrency` tasks; returns moves/s.
async fn run_moves(
    db: &Db,
    definitions: &Arc<Definitions>,
    groups: &[Arc<Mutex<Vec<MovingCard>>>],
    total: usize,
    by: UserId,
    mover: Mover,
) -> f64 {
    let per = total / groups.len();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for group in groups {
        let (db, definitions, group) = (db.clone(), definitions.clone(), group.clone());
        tasks.push(tokio::spawn(async move {
            let mut cards = group.lock().await;
            let len = cards.len();
            for i in 0..per {
                let c = &mut cards[i % len];
                match mover {
                    Mover::Engine => engine_move(&db, &definitions, c, by).await,
                    Mover::Raw => raw_move(&db, &definitions.version, c, by).await,
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("mover task");
    }
    (per * groups.len()) as f64 / started.elapsed().as_secs_f64()
}

/// Cards of `gorusuluyor` for `concurrency` movers, `per_group` each at most, from one
/// band of that column (0: first quarter, 1: second quarter, 2: second half), so that the
/// parts never move each other's cards.
async fn card_groups(
    db: &Db,
    concurrency: usize,
    per_group: usize,
    band: usize,
) -> Vec<Arc<Mutex<Vec<MovingCard>>>> {
    let total: i64 = akis_engine::read!(db, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM cards WHERE pipeline_id = 'sales' AND stage_id = 'gorusuluyor'")
            .fetch_one(pool)
            .await
    })
    .expect("count");
    let total = total as usize;
    let (from, len) = match band {
        0 => (0, total / 4),
        1 => (total / 4, total / 4),
        _ => (total / 2, total - total / 2),
    };
    let per_group = per_group.min(len / concurrency);
    assert!(
        per_group >= CYCLE.len(),
        "not enough cards in gorusuluyor for {concurrency} movers"
    );
    let cards = pick_cards(db, concurrency * per_group, from).await;
    cards
        .chunks(per_group)
        .map(|c| Arc::new(Mutex::new(c.to_vec())))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn bench_moves(
    db: &Db,
    definitions: &Arc<Definitions>,
    data: &Dataset,
    runs: usize,
    moves: usize,
    report: &mut Vec<String>,
    backend: Backend,
) {
    let by = data.reps[1];
    for (ci, concurrency) in [1usize, 4].into_iter().enumerate() {
        let groups = card_groups(db, concurrency, 200, ci).await;
        // Warm-up: one full cycle of every card is not needed; a few moves of each kind.
        run_moves(
            db,
            definitions,
            &groups,
            CYCLE.len() * concurrency * 4,
            by,
            Mover::Engine,
        )
        .await;
        run_moves(
            db,
            definitions,
            &groups,
            CYCLE.len() * concurrency * 4,
            by,
            Mover::Raw,
        )
        .await;
        let (mut eng, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let e = run_moves(db, definitions, &groups, moves, by, Mover::Engine).await;
            let r = run_moves(db, definitions, &groups, moves, by, Mover::Raw).await;
            eprintln!(
                "    move c={concurrency}: engine {e:.0}/s, raw {r:.0}/s ({:.0} %)",
                100.0 * e / r
            );
            eng.push(e);
            raw.push(r);
        }
        let ratios: Vec<f64> = eng.iter().zip(&raw).map(|(e, r)| e / r).collect();
        report.push(format!(
            "| {backend} | engine move, {concurrency} mover(s) | **{:.0} moves/s** (runs: {}) | raw {:.0} moves/s (runs: {}) | **{:.0} %** | ≥ 50 % |",
            median(&eng),
            eng.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
            median(&raw),
            raw.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
            100.0 * median(&ratios),
        ));
    }
}

// ---------------------------------------------------------------- HTTP

struct Server {
    address: String,
    client: reqwest::Client,
    csrf: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
    _data_dir: tempfile::TempDir,
}

async fn start_server(url: &str, admin_email: &str, connections: u32) -> Server {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        database_url: DatabaseUrl::new(url.to_string()),
        listen: "127.0.0.1:0".parse().expect("addr"),
        definitions: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        data_dir: data_dir.path().to_path_buf(),
        db_max_connections: connections.max(10),
        ..Config::default()
    };
    let app = App::build(config).await.expect("app builds");
    let address = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = rx.await;
        })
        .await
        .expect("server ran");
    });
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let response = client
        .post(format!("{address}/api/auth/login"))
        .json(&json!({"email": admin_email, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), reqwest::StatusCode::OK, "login");
    let body: Value = response.json().await.expect("json");
    let csrf = body["csrf_token"].as_str().expect("csrf").to_string();
    Server {
        address,
        client,
        csrf,
        shutdown: Some(tx),
        handle,
        _data_dir: data_dir,
    }
}

impl Server {
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.handle).await;
    }
}

async fn http_move(server: &Server, c: &mut MovingCard) {
    let (to, asks, _) = CYCLE[c.pos];
    let mut body = json!({"to": to, "expected_version": c.version});
    if asks {
        body["fields"] = json!({"appointment_at": appointment()});
    }
    let response = server
        .client
        .post(format!("{}/api/cards/{}/move", server.address, c.card))
        .header("x-csrf-token", &server.csrf)
        .json(&body)
        .send()
        .await
        .expect("move sent");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, reqwest::StatusCode::OK, "move to {to}: {body}");
    c.version = body["card"]["version"].as_i64().expect("version");
    c.fields = body["card"]["fields"].to_string();
    c.pos = (c.pos + 1) % CYCLE.len();
}

async fn run_http_moves(
    server: &Arc<Server>,
    groups: &[Arc<Mutex<Vec<MovingCard>>>],
    total: usize,
) -> f64 {
    let per = total / groups.len();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for group in groups {
        let (server, group) = (server.clone(), group.clone());
        tasks.push(tokio::spawn(async move {
            let mut cards = group.lock().await;
            let len = cards.len();
            for i in 0..per {
                http_move(&server, &mut cards[i % len]).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("http mover");
    }
    (per * groups.len()) as f64 / started.elapsed().as_secs_f64()
}

/// A lead request: new phones from a counter past the loaded customers, or an existing
/// customer's phone in another spelling.
fn lead_body(rng: &mut Rng, next_new: &AtomicUsize, customers: u64) -> (Value, bool) {
    let new = rng.pct(60);
    let index = if new {
        customers + next_new.fetch_add(1, Ordering::Relaxed) as u64
    } else {
        rng.below(customers)
    };
    let digits = phone_digits(index);
    let source = weighted(rng, SOURCES);
    let mut body = json!({
        "name": turkish_name(rng),
        "phone": phone_spelling(&digits, rng.next()),
        "source": source,
    });
    if matches!(source, "meta_lead_ad" | "web_form") {
        body["utm_campaign"] = json!(rng.pick(CAMPAIGNS));
    }
    if rng.pct(30) {
        body["email"] = json!(format!("lead{index}@example.com"));
    }
    (body, new)
}

async fn run_http_intake(
    server: &Arc<Server>,
    connections: usize,
    total: usize,
    next_new: &Arc<AtomicUsize>,
    customers: u64,
    seed: u64,
) -> f64 {
    let per = total / connections;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..connections {
        let (server, next_new) = (server.clone(), next_new.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed ^ ((t as u64 + 1) * 0x1234_5678));
            for _ in 0..per {
                let (body, _) = lead_body(&mut rng, &next_new, customers);
                let response = server
                    .client
                    .post(format!("{}/api/leads", server.address))
                    .header("x-csrf-token", &server.csrf)
                    .json(&body)
                    .send()
                    .await
                    .expect("lead sent");
                let status = response.status();
                let text = response.text().await.expect("body");
                assert!(
                    status == reqwest::StatusCode::OK || status == reqwest::StatusCode::CREATED,
                    "lead {body}: {status} {text}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("intake task");
    }
    (per * connections) as f64 / started.elapsed().as_secs_f64()
}

/// The writes intake does, as plain statements: the de-duplication look-up, then either a
/// new customer (customer, phone, email, owner, card, history, lead event, lead, counter,
/// assignment notification job) or a returning one (touch update, card sort key, lead
/// event, lead).
async fn raw_intake(
    db: &Db,
    definitions_version: &str,
    rng: &mut Rng,
    next_new: &AtomicUsize,
    customers: u64,
    reps: &[UserId],
) {
    let (body, _) = lead_body(rng, next_new, customers);
    let phone = Phone::parse(body["phone"].as_str().expect("phone")).expect("valid phone");
    let name = body["name"].as_str().expect("name").to_string();
    let source = body["source"].as_str().expect("source").to_string();
    let email = body["email"].as_str().map(str::to_string);
    let now = Timestamp::now();
    let touch =
        json!({"source": source, "utm_campaign": body["utm_campaign"], "at": now}).to_string();
    let event = EventId::new();
    let mut tx = db.begin().await.expect("begin");
    let existing: Option<CustomerId> = exec!(&mut tx, conn => sqlx::query_scalar("SELECT customer_id FROM customer_phones WHERE e164 = $1")
        .bind(phone.as_str()).fetch_optional(conn).await)
    .expect("dedup");
    let (customer, card) = match existing {
        None => {
            let id = CustomerId::new();
            let card = CardId::new();
            let owner = reps[rng.below(reps.len() as u64) as usize];
            let phones = vec![phone.as_str().to_string()];
            let emails: Vec<String> = email.iter().cloned().collect();
            exec!(&mut tx, conn => sqlx::query(
                "INSERT INTO customers (id, name, name_key, search_key, source, first_touch, last_touch, campaign,
                    emotional_score, logical_score, fields, last_contact_at, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7, 50, 50, '{}', NULL, 1, $8, $8)")
                .bind(id).bind(&name).bind(fold(&name)).bind(search_key(&name, &phones, &emails)).bind(&source)
                .bind(&touch).bind(body["utm_campaign"].as_str()).bind(now)
                .execute(conn).await.map(|r| r.rows_affected()))
            .expect("customer");
            exec!(&mut tx, conn => sqlx::query("INSERT INTO customer_phones (e164, customer_id, raw, position, added_at) VALUES ($1, $2, $3, 0, $4)")
                .bind(phone.as_str()).bind(id).bind(body["phone"].as_str()).bind(now).execute(conn).await.map(|r| r.rows_affected()))
            .expect("phone");
            if let Some(email) = &email {
                exec!(&mut tx, conn => sqlx::query("INSERT INTO customer_emails (email, customer_id, position, added_at) VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING")
                    .bind(email).bind(id).bind(now).execute(conn).await.map(|r| r.rows_affected()))
                .expect("email");
            }
            exec!(&mut tx, conn => sqlx::query("INSERT INTO customer_owners (customer_id, user_id, since) VALUES ($1, $2, $3)")
                .bind(id).bind(owner).bind(now).execute(conn).await.map(|r| r.rows_affected()))
            .expect("owner");
            exec!(&mut tx, conn => sqlx::query(
                "INSERT INTO cards (id, customer_id, pipeline_id, stage_id, fields, sort_key, version, stage_entered_at, created_at, updated_at)
                 VALUES ($1, $2, 'sales', 'potansiyel', '{}', '', 1, $3, $3, $3)")
                .bind(card).bind(id).bind(now).execute(conn).await.map(|r| r.rows_affected()))
            .expect("card");
            exec!(&mut tx, conn => sqlx::query("UPDATE card_stage_history SET left_at = $1 WHERE card_id = $2 AND left_at IS NULL")
                .bind(now).bind(card).execute(conn).await.map(|r| r.rows_affected()))
            .expect("history close");
            exec!(&mut tx, conn => sqlx::query(
                "INSERT INTO card_stage_history (id, card_id, pipeline_id, stage_id, entered_at, left_at, entered_by, event_id)
                 VALUES ($1, $2, 'sales', 'potansiyel', $3, NULL, NULL, $4)")
                .bind(uuid::Uuid::now_v7().to_string()).bind(card).bind(now).bind(event)
                .execute(conn).await.map(|r| r.rows_affected()))
            .expect("history");
            exec!(&mut tx, conn => sqlx::query(
                "INSERT INTO counters (key, value) VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET value = counters.value + 1")
                .bind(format!("assign:sales:{source}")).execute(conn).await.map(|r| r.rows_affected()))
            .expect("counter");
            let job = akis_engine::jobs::NotifyJob {
                effect_key: EffectKey::new(format!("lead:{event}:assigned:{owner}")),
                user_ids: vec![owner],
                customer_id: Some(id),
                template: "yeni_lead".into(),
                values: json!({"customer": {"name": name, "source": source}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            };
            exec!(&mut tx, conn => akis_engine::jobs::enqueue(conn, &job).await).expect("notify");
            (id, card)
        }
        Some(id) => {
            exec!(&mut tx, conn => sqlx::query("UPDATE customers SET last_touch = $1, campaign = $2, version = version + 1, updated_at = $3 WHERE id = $4")
                .bind(&touch).bind(body["utm_campaign"].as_str()).bind(now).bind(id).execute(conn).await.map(|r| r.rows_affected()))
            .expect("touch");
            let card: CardId = exec!(&mut tx, conn => sqlx::query_scalar("SELECT id FROM cards WHERE customer_id = $1 AND pipeline_id = 'sales'")
                .bind(id).fetch_one(conn).await)
            .expect("card");
            (id, card)
        }
    };
    let data =
        json!({"source": source, "returning": existing.is_some(), "pipeline": "sales"}).to_string();
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO timeline_events (id, customer_id, card_id, kind, at, actor_id, definitions_version, data)
         VALUES ($1, $2, $3, 'lead', $4, NULL, $5, $6)")
        .bind(event).bind(customer).bind(card).bind(now).bind(definitions_version).bind(&data)
        .execute(conn).await.map(|r| r.rows_affected()))
    .expect("lead event");
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO leads (id, customer_id, card_id, source, external_key, matched_by, payload, received_at)
         VALUES ($1, $2, $3, $4, NULL, $5, $6, $7)")
        .bind(uuid::Uuid::now_v7().to_string()).bind(customer).bind(card).bind(&source)
        .bind(existing.map(|_| "phone")).bind(body.to_string()).bind(now)
        .execute(conn).await.map(|r| r.rows_affected()))
    .expect("lead");
    tx.commit().await.expect("commit");
}

#[allow(clippy::too_many_arguments)]
async fn run_raw_intake(
    db: &Db,
    definitions: &Arc<Definitions>,
    connections: usize,
    total: usize,
    next_new: &Arc<AtomicUsize>,
    customers: u64,
    reps: &[UserId],
    seed: u64,
) -> f64 {
    let per = total / connections;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..connections {
        let (db, definitions, next_new, reps) = (
            db.clone(),
            definitions.clone(),
            next_new.clone(),
            reps.to_vec(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed ^ ((t as u64 + 7) * 0x9876_5431));
            for _ in 0..per {
                raw_intake(
                    &db,
                    &definitions.version,
                    &mut rng,
                    &next_new,
                    customers,
                    &reps,
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("raw intake task");
    }
    (per * connections) as f64 / started.elapsed().as_secs_f64()
}

async fn http_board(server: &Server, rep: UserId, iters: usize) -> (f64, f64) {
    let url = format!(
        "{}/api/pipelines/sales/board?owners={rep}&sources=meta_lead_ad&limit=20",
        server.address
    );
    for _ in 0..5 {
        server
            .client
            .get(&url)
            .send()
            .await
            .expect("board")
            .bytes()
            .await
            .expect("body");
    }
    let mut ms = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        let response = server.client.get(&url).send().await.expect("board");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.bytes().await.expect("body");
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (percentile(&ms, 0.5), percentile(&ms, 0.95))
}

#[allow(clippy::too_many_arguments)]
async fn bench_http(
    bench: &BenchDb,
    db: &Db,
    definitions: &Arc<Definitions>,
    data: &Dataset,
    opts: &Options,
    report: &mut Vec<String>,
    backend: Backend,
) {
    let connections = opts.connections;
    let server =
        Arc::new(start_server(&bench.url, &data.admin_email, connections as u32 * 2).await);
    let by = data.reps[2];

    // Board over HTTP (sequential requests).
    let (mut p50s, mut p95s) = (Vec::new(), Vec::new());
    for _ in 0..opts.runs {
        let (p50, p95) = http_board(&server, data.reps[0], opts.board_iters.min(100)).await;
        eprintln!("    http board (2 filters): p50 {p50:.2} ms, p95 {p95:.2} ms");
        p50s.push(p50);
        p95s.push(p95);
    }
    report.push(format!(
        "| {backend} | HTTP GET board, owners=rep AND sources=meta_lead_ad | p50 **{:.2} ms** | p95 {:.2} ms | — | — |",
        median(&p50s),
        median(&p95s)
    ));

    // Moves.
    let groups = card_groups(db, connections, 100, 2).await;
    run_http_moves(&server, &groups, connections * 20).await;
    run_moves(db, definitions, &groups, connections * 20, by, Mover::Raw).await;
    let (mut http, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..opts.runs {
        let h = run_http_moves(&server, &groups, opts.http_moves).await;
        let r = run_moves(db, definitions, &groups, opts.http_moves, by, Mover::Raw).await;
        eprintln!(
            "    http move ({connections} connections): {h:.0}/s, raw {r:.0}/s ({:.0} %)",
            100.0 * h / r
        );
        http.push(h);
        raw.push(r);
    }
    let goal = if backend == Backend::Sqlite {
        "≥ 1,000/s"
    } else {
        "≥ 600/s"
    };
    report.push(format!(
        "| {backend} | HTTP POST /api/cards/{{id}}/move, {connections} connections | **{:.0} moves/s** (runs: {}) | raw {:.0} moves/s | {:.0} % | {goal} |",
        median(&http),
        http.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
        median(&raw),
        100.0 * median(&http) / median(&raw),
    ));

    // Intake.
    let next_new = Arc::new(AtomicUsize::new(0));
    run_http_intake(
        &server,
        connections,
        connections * 10,
        &next_new,
        data.customers,
        1,
    )
    .await;
    run_raw_intake(
        db,
        definitions,
        connections,
        connections * 10,
        &next_new,
        data.customers,
        &data.reps,
        2,
    )
    .await;
    let (mut http, mut raw) = (Vec::new(), Vec::new());
    for run in 0..opts.runs {
        let h = run_http_intake(
            &server,
            connections,
            opts.intakes,
            &next_new,
            data.customers,
            100 + run as u64,
        )
        .await;
        let r = run_raw_intake(
            db,
            definitions,
            connections,
            opts.intakes,
            &next_new,
            data.customers,
            &data.reps,
            200 + run as u64,
        )
        .await;
        eprintln!(
            "    http intake ({connections} connections): {h:.0}/s, raw {r:.0}/s ({:.0} %)",
            100.0 * h / r
        );
        http.push(h);
        raw.push(r);
    }
    let goal = if backend == Backend::Sqlite {
        "≥ 800/s"
    } else {
        "—"
    };
    report.push(format!(
        "| {backend} | HTTP POST /api/leads (60 % new, 40 % repeated phones), {connections} connections | **{:.0} leads/s** (runs: {}) | raw {:.0} leads/s | {:.0} % | {goal} |",
        median(&http),
        http.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
        median(&raw),
        100.0 * median(&http) / median(&raw),
    ));
    match Arc::try_unwrap(server) {
        Ok(server) => server.stop().await,
        Err(_) => eprintln!("  (server still referenced; not stopped)"),
    }
}

// ---------------------------------------------------------------- main

struct Options {
    parts: Vec<String>,
    backends: Vec<Backend>,
    customers: u64,
    events: u64,
    runs: usize,
    board_iters: usize,
    moves: usize,
    http_moves: usize,
    intakes: usize,
    connections: usize,
    sqlite_analyze: bool,
    /// Keep the database (print where it is) for EXPLAIN sessions.
    keep: bool,
}

fn options() -> Options {
    let mut o = Options {
        parts: Vec::new(),
        backends: vec![Backend::Sqlite, Backend::Postgres],
        customers: 100_000,
        events: 1_000_000,
        runs: 3,
        board_iters: 200,
        moves: 1_500,
        http_moves: 3_000,
        intakes: 2_000,
        connections: 8,
        sqlite_analyze: false,
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> String {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match arg.as_str() {
            "--backend" => {
                o.backends = match value("--backend").as_str() {
                    "sqlite" => vec![Backend::Sqlite],
                    "postgres" => vec![Backend::Postgres],
                    "both" => vec![Backend::Sqlite, Backend::Postgres],
                    other => panic!("unknown backend {other}"),
                }
            }
            "--customers" => o.customers = value("--customers").parse().expect("number"),
            "--events" => o.events = value("--events").parse().expect("number"),
            "--runs" => o.runs = value("--runs").parse().expect("number"),
            "--board-iters" => o.board_iters = value("--board-iters").parse().expect("number"),
            "--moves" => o.moves = value("--moves").parse().expect("number"),
            "--http-moves" => o.http_moves = value("--http-moves").parse().expect("number"),
            "--intakes" => o.intakes = value("--intakes").parse().expect("number"),
            "--connections" => o.connections = value("--connections").parse().expect("number"),
            "--sqlite-analyze" => o.sqlite_analyze = true,
            "--keep" => o.keep = true,
            "--bench" => {}
            part @ ("board" | "move" | "http") => o.parts.push(part.to_string()),
            other if other.starts_with("--") => panic!("unknown option {other}"),
            _ => {}
        }
    }
    if o.parts.is_empty() {
        o.parts = vec!["board".into(), "move".into(), "http".into()];
    }
    o
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let opts = options();
    let pg_admin = std::env::var("AKIS_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("AKIS_TEST_POSTGRES_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (definitions, _) = Definitions::load_for_server(&root).expect("definitions load");
    let mut report = vec![
        "| backend | what | figure (median of runs) | beside it | ratio / matching cards | goal |"
            .to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    for backend in opts.backends.clone() {
        eprintln!(
            "== {backend}: {} customers, {} events",
            opts.customers, opts.events
        );
        let bench = BenchDb::fresh(backend, &pg_admin);
        let db = bench.open().await;
        let data = load(&db, &definitions, opts.customers, opts.events).await;
        if backend == Backend::Postgres || opts.sqlite_analyze {
            analyze(&db).await;
        } else {
            // What a running server does on every job-maintenance tick.
            let started = Instant::now();
            db.optimize().await.expect("optimize");
            let stats: i64 = match &db {
                Db::Sqlite(s) => sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_stat1")
                    .fetch_one(&s.writer)
                    .await
                    .unwrap_or(0),
                Db::Postgres(_) => 0,
            };
            eprintln!(
                "  PRAGMA optimize in {:.1} s ({stats} sqlite_stat1 rows)",
                started.elapsed().as_secs_f64()
            );
        }
        if opts.parts.iter().any(|p| p == "board") {
            bench_board(
                &db,
                &definitions,
                &data,
                opts.runs,
                opts.board_iters,
                &mut report,
                backend,
            )
            .await;
        }
        if opts.parts.iter().any(|p| p == "move") {
            bench_moves(
                &db,
                &definitions,
                &data,
                opts.runs,
                opts.moves,
                &mut report,
                backend,
            )
            .await;
        }
        if opts.parts.iter().any(|p| p == "http") {
            bench_http(
                &bench,
                &db,
                &definitions,
                &data,
                &opts,
                &mut report,
                backend,
            )
            .await;
        }
        db.close().await;
        if opts.keep {
            eprintln!("  kept the database: {}", bench.url);
            std::mem::forget(bench);
        } else {
            bench.drop_pg().await;
        }
    }
    println!("\n{}", report.join("\n"));
}
