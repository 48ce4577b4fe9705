//! Appointments: time, place or online, status (planned, confirmed, done, no_show,
//! cancelled). Rescheduling keeps history on the timeline (from → to).

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::crm::activities::touch_contact;
use crate::crm::customers::stale;
use crate::crm::timeline::{self, NewEvent};
use crate::definitions::Definitions;
use crate::exec;
use crate::http::ApiError;
use crate::storage::Db;
use crate::types::Timestamp;
use crate::types::ids::{CardId, CustomerId, UserId};

pub const STATUSES: &[&str] = &["planned", "confirmed", "done", "no_show", "cancelled"];

pub mod kinds {
    pub const CREATED: &str = "appointment_created";
    pub const RESCHEDULED: &str = "appointment_rescheduled";
    pub const STATUS: &str = "appointment_status";
    pub const UPDATED: &str = "appointment_updated";
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Appointment {
    pub id: String,
    pub customer_id: CustomerId,
    pub card_id: Option<CardId>,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub place: Option<String>,
    pub online: bool,
    pub meeting_url: Option<String>,
    /// planned, confirmed, done, no_show, cancelled
    pub status: String,
    pub note: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: i64,
}

const COLUMNS: &str = "id, customer_id, card_id, starts_at, ends_at, place, online, meeting_url, status, note, created_by, created_at, updated_at, version";

/// A new appointment or changes to one (`None` leaves a value as it is).
#[derive(Debug, Clone, Default)]
pub struct AppointmentInput {
    pub card_id: Option<CardId>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Option<Timestamp>>,
    pub place: Option<Option<String>>,
    pub online: Option<bool>,
    pub meeting_url: Option<Option<String>>,
    pub status: Option<String>,
    pub note: Option<Option<String>>,
}

fn check_text(
    value: &Option<Option<String>>,
    field: &str,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    Ok(match value {
        None => None,
        Some(None) => Some(None),
        Some(Some(v)) => {
            let v = v.trim();
            if v.chars().count() > max {
                return Err(ApiError::unprocessable(
                    "invalid_appointment",
                    format!("`{field}` has at most {max} characters"),
                )
                .with_field(field, "too long"));
            }
            Some((!v.is_empty()).then(|| v.to_string()))
        }
    })
}

fn validate(input: &AppointmentInput, starts_at: Timestamp) -> Result<AppointmentInput, ApiError> {
    if let Some(status) = &input.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::unprocessable(
            "invalid_status",
            format!("status must be one of: {}", STATUSES.join(", ")),
        )
        .with_field("status", "unknown status"));
    }
    if let Some(Some(ends)) = input.ends_at
        && ends <= starts_at
    {
        return Err(ApiError::unprocessable(
            "invalid_appointment",
            "an appointment must end after it starts",
        )
        .with_field("ends_at", "before the start"));
    }
    let meeting_url = check_text(&input.meeting_url, "meeting_url", 500)?;
    if let Some(Some(url)) = &meeting_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(ApiError::unprocessable(
            "invalid_appointment",
            "the meeting link must be an http(s) URL",
        )
        .with_field("meeting_url", "not a link"));
    }
    Ok(AppointmentInput {
        card_id: input.card_id,
        starts_at: input.starts_at,
        ends_at: input.ends_at,
        place: check_text(&input.place, "place", 300)?,
        online: input.online,
        meeting_url,
        status: input.status.clone(),
        note: check_text(&input.note, "note", 5_000)?,
    })
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Appointment>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM appointments WHERE id = $1")))
            .bind(id).fetch_optional(pool).await
    })
}

pub async fn for_customer(db: &Db, customer: CustomerId) -> Result<Vec<Appointment>, sqlx::Error> {
    crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM appointments WHERE customer_id = $1 ORDER BY starts_at DESC")))
            .bind(customer).fetch_all(pool).await
    })
}

/// Appointments in `[from, to)`, of customers the viewer may see.
pub async fn agenda(
    db: &Db,
    policy: &crate::policy::RecordFilter,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Appointment>, sqlx::Error> {
    let mut sql = crate::crm::sql::Sql::new(format!(
        "SELECT {} FROM appointments a WHERE a.starts_at >= ",
        COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let f = sql.arg(crate::crm::sql::Arg::Time(from));
    sql.push(&f);
    let t = sql.arg(crate::crm::sql::Arg::Time(to));
    sql.push(&format!(" AND a.starts_at < {t}"));
    crate::crm::board::push_policy(&mut sql, policy, "a.customer_id");
    sql.push(" ORDER BY a.starts_at LIMIT 1000");
    crate::sql_fetch_all!(db, Appointment, &sql)
}

/// The customer's first open card (an appointment booked without one belongs to it).
async fn first_card(
    tx: &mut crate::storage::Tx,
    customer: CustomerId,
) -> Result<Option<CardId>, sqlx::Error> {
    exec!(&mut *tx, conn => sqlx::query_scalar("SELECT id FROM cards WHERE customer_id = $1 AND closed_at IS NULL ORDER BY created_at, id LIMIT 1")
        .bind(customer).fetch_optional(conn).await)
}

/// Books an appointment.
pub async fn create(
    db: &Db,
    definitions: &Definitions,
    customer: CustomerId,
    input: &AppointmentInput,
    by: Option<UserId>,
) -> Result<Appointment, ApiError> {
    let starts_at = input.starts_at.ok_or_else(|| {
        ApiError::unprocessable("invalid_appointment", "an appointment needs a start time")
            .with_field("starts_at", "required")
    })?;
    let v = validate(input, starts_at)?;
    if let Some(card) = v.card_id {
        let owner: Option<CustomerId> = crate::read!(db, pool => {
            sqlx::query_scalar("SELECT customer_id FROM cards WHERE id = $1").bind(card).fetch_optional(pool).await
        })?;
        if owner != Some(customer) {
            return Err(ApiError::unprocessable(
                "unknown_card",
                "this card does not belong to the customer",
            )
            .with_field("card_id", "not this customer's card"));
        }
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = Timestamp::now();
    let status = v.status.clone().unwrap_or_else(|| "planned".into());
    let mut tx = db.begin().await?;
    exec!(&mut tx, conn => sqlx::query(
        "INSERT INTO appointments (id, customer_id, card_id, starts_at, ends_at, place, online, meeting_url, status, note, created_by, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1)")
        .bind(&id).bind(customer).bind(v.card_id).bind(starts_at).bind(v.ends_at.flatten())
        .bind(v.place.clone().flatten()).bind(v.online.unwrap_or(false)).bind(v.meeting_url.clone().flatten())
        .bind(&status).bind(v.note.clone().flatten()).bind(by).bind(now)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    timeline::append(&mut tx, NewEvent {
        customer_id: customer,
        card_id: v.card_id,
        kind: kinds::CREATED,
        actor: by,
        definitions_version: &definitions.version,
        data: json!({"appointment_id": id, "starts_at": starts_at, "place": v.place.clone().flatten(), "online": v.online.unwrap_or(false), "status": status}),
    })
    .await?;
    let card = match v.card_id {
        Some(c) => Some(c),
        None => first_card(&mut tx, customer).await?,
    };
    if v.card_id.is_none() && card.is_some() {
        exec!(&mut tx, conn => sqlx::query("UPDATE appointments SET card_id = $1 WHERE id = $2")
            .bind(card).bind(&id).execute(conn).await.map(|_| ()))?;
    }
    crate::reminders::triggers::sync_appointment_field(&mut tx, definitions, card, by).await?;
    tx.commit().await?;
    get(db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("appointment"))
}

/// Reschedules, changes status or details; each kind of change is its own timeline event.
pub async fn update(
    db: &Db,
    definitions: &Definitions,
    id: &str,
    expected_version: i64,
    input: &AppointmentInput,
    by: Option<UserId>,
) -> Result<Appointment, ApiError> {
    let current = get(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("appointment"))?;
    if current.version != expected_version {
        return Err(stale("appointment", current.version));
    }
    let starts_at = input.starts_at.unwrap_or(current.starts_at);
    let v = validate(input, starts_at)?;
    let ends_at = v.ends_at.unwrap_or(current.ends_at);
    if let Some(ends) = ends_at
        && ends <= starts_at
    {
        return Err(ApiError::unprocessable(
            "invalid_appointment",
            "an appointment must end after it starts",
        )
        .with_field("ends_at", "before the start"));
    }
    let place = v.place.clone().unwrap_or(current.place.clone());
    let online = v.online.unwrap_or(current.online);
    let meeting_url = v.meeting_url.clone().unwrap_or(current.meeting_url.clone());
    let status = v.status.clone().unwrap_or(current.status.clone());
    let note = v.note.clone().unwrap_or(current.note.clone());
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let updated = exec!(&mut tx, conn => sqlx::query(
        "UPDATE appointments SET starts_at = $1, ends_at = $2, place = $3, online = $4, meeting_url = $5, status = $6, note = $7,
            updated_at = $8, version = version + 1 WHERE id = $9 AND version = $10")
        .bind(starts_at).bind(ends_at).bind(&place).bind(online).bind(&meeting_url).bind(&status).bind(&note)
        .bind(now).bind(id).bind(expected_version)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if updated == 0 {
        return Err(stale("appointment", current.version + 1));
    }
    let event = |kind: &'static str, data: serde_json::Value| NewEvent {
        customer_id: current.customer_id,
        card_id: current.card_id,
        kind,
        actor: by,
        definitions_version: &definitions.version,
        data,
    };
    if starts_at != current.starts_at {
        timeline::append(
            &mut tx,
            event(
                kinds::RESCHEDULED,
                json!({"appointment_id": id, "from": current.starts_at, "to": starts_at}),
            ),
        )
        .await?;
    }
    if status != current.status {
        timeline::append(
            &mut tx,
            event(
                kinds::STATUS,
                json!({"appointment_id": id, "from": current.status, "to": status}),
            ),
        )
        .await?;
        if status == "done" {
            touch_contact(&mut tx, definitions, current.customer_id, now).await?;
        }
    }
    if place != current.place
        || online != current.online
        || meeting_url != current.meeting_url
        || note != current.note
        || ends_at != current.ends_at
    {
        timeline::append(
            &mut tx,
            event(
                kinds::UPDATED,
                json!({"appointment_id": id, "place": place, "online": online, "ends_at": ends_at}),
            ),
        )
        .await?;
    }
    if starts_at != current.starts_at || status != current.status {
        crate::reminders::triggers::sync_appointment_field(
            &mut tx,
            definitions,
            current.card_id,
            by,
        )
        .await?;
    }
    tx.commit().await?;
    get(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("appointment"))
}
