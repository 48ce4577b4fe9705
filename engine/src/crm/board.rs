//! The kanban board: columns in the YAML's stage order, each with its count and its first
//! cards in the declared card order, filtered (several values per field) and searched.
//!
//! Every query is one SQL statement filtered by the viewer's policy (a sales rep sees only
//! customers they own). Column pages are keyset-paged on the stored sort key, which the
//! `cards_board (pipeline_id, stage_id, sort_key, id)` index serves directly.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::crm::customers::{self, OwnerRef, parse_object};
use crate::crm::sql::{Arg, Sql};
use crate::definitions::Definitions;
use crate::definitions::model::{Direction, Pipeline};
use crate::exec;
use crate::http::ApiError;
use crate::policy::RecordFilter;
use crate::rules::{RuleContext, RuleRef};
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::fold;
use crate::types::ids::{CardId, CustomerId, UserId};

/// Filters shared by the board, the customer list and bulk selections.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Customers owned by any of these users.
    pub owners: Vec<UserId>,
    /// Only customers without an owner.
    pub unassigned: bool,
    pub sources: Vec<String>,
    pub campaigns: Vec<String>,
    pub tags: Vec<String>,
    pub emotional_min: Option<i64>,
    pub emotional_max: Option<i64>,
    pub logical_min: Option<i64>,
    pub logical_max: Option<i64>,
    /// Text search over name, phone and email (Turkish-aware).
    pub q: Option<String>,
}

impl Filter {
    /// Adds the filter's conditions on customer `cu` (joined) to `sql`.
    pub(crate) fn push_conditions(&self, sql: &mut Sql, customer_col: &str) {
        if !self.owners.is_empty() {
            let ids: Vec<String> = self.owners.iter().map(|u| u.to_string()).collect();
            let list = sql.in_list(&ids);
            // `IN (subquery)` rather than a correlated EXISTS: the planners read the owner's
            // index once (SQLite as an in-memory list) instead of probing it per row.
            sql.push(&format!(
                " AND {customer_col} IN (SELECT fo.customer_id FROM customer_owners fo WHERE fo.user_id IN {list})"
            ));
        }
        if self.unassigned {
            sql.push(&format!(" AND NOT EXISTS (SELECT 1 FROM customer_owners fu WHERE fu.customer_id = {customer_col})"));
        }
        if !self.sources.is_empty() {
            let list = sql.in_list(&self.sources);
            sql.push(&format!(" AND cu.source IN {list}"));
        }
        if !self.campaigns.is_empty() {
            let list = sql.in_list(&self.campaigns);
            sql.push(&format!(" AND cu.campaign IN {list}"));
        }
        if !self.tags.is_empty() {
            let list = sql.in_list(&self.tags);
            sql.push(&format!(
                " AND EXISTS (SELECT 1 FROM customer_tags ft WHERE ft.customer_id = {customer_col} AND ft.tag IN {list})"
            ));
        }
        for (column, op, value) in [
            ("emotional_score", ">=", self.emotional_min),
            ("emotional_score", "<=", self.emotional_max),
            ("logical_score", ">=", self.logical_min),
            ("logical_score", "<=", self.logical_max),
        ] {
            if let Some(v) = value {
                let p = sql.arg(Arg::Int(v));
                sql.push(&format!(" AND cu.{column} {op} {p}"));
            }
        }
        if let Some(q) = &self.q {
            for term in fold::query_terms(q) {
                let p = sql.text_arg(format!("%{}%", fold::like_escape(&term)));
                sql.push(&format!(" AND cu.search_key LIKE {p} ESCAPE '\\'"));
            }
        }
    }
}

/// Adds the viewer's record filter.
pub(crate) fn push_policy(sql: &mut Sql, policy: &RecordFilter, customer_col: &str) {
    match policy {
        RecordFilter::All => {}
        RecordFilter::Nothing => {
            sql.push(" AND 1 = 0");
        }
        RecordFilter::OwnedBy(user) => {
            let p = sql.text_arg(user.to_string());
            sql.push(&format!(
                " AND {customer_col} IN (SELECT po.customer_id FROM customer_owners po WHERE po.user_id = {p})"
            ));
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StageInfo {
    pub id: String,
    pub name_tr: String,
    pub name_en: String,
    pub color: Option<String>,
    pub initial: bool,
    pub terminal: bool,
    pub wip_limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BadgeOut {
    pub tr: String,
    pub en: String,
    pub color: Option<String>,
}

/// One card on the board: its identity plus exactly the fields the card layout declares.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoardCard {
    pub id: CardId,
    pub customer_id: CustomerId,
    pub stage_id: String,
    pub version: i64,
    /// The card's place in its column: columns are ordered by `sort_key` then `id`, in the
    /// pipeline's card order direction (a live update can insert a card without asking).
    pub sort_key: String,
    /// The layout's fields, by id, in the declared order.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    pub badges: Vec<BadgeOut>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Column {
    pub stage: StageInfo,
    /// Cards in this column matching the filters.
    pub count: i64,
    pub cards: Vec<BoardCard>,
    /// Pass as `cursor` to the column endpoint for the next cards; null at the end.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Board {
    pub pipeline_id: String,
    /// The layout's field ids, in order (column headers for list views).
    pub fields: Vec<String>,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct BoardRow {
    id: CardId,
    customer_id: CustomerId,
    stage_id: String,
    version: i64,
    fields: String,
    sort_key: String,
    stage_entered_at: Timestamp,
    created_at: Timestamp,
    updated_at: Timestamp,
    next_reminder_at: Option<Timestamp>,
    name: String,
    source: String,
    campaign: Option<String>,
    emotional_score: Option<i64>,
    logical_score: Option<i64>,
    last_contact_at: Option<Timestamp>,
    customer_fields: String,
    phone: Option<String>,
    email: Option<String>,
}

fn stage_info(stage: &crate::definitions::model::Stage) -> StageInfo {
    StageInfo {
        id: stage.id.as_str().to_string(),
        name_tr: stage.name.tr.clone(),
        name_en: stage.name.en.clone(),
        color: stage.color.as_ref().map(|c| c.value.clone()),
        initial: stage.initial,
        terminal: stage.terminal,
        wip_limit: stage.wip_limit,
    }
}

fn encode_cursor(sort_key: &str, id: CardId) -> String {
    hex::encode(format!("{sort_key}\u{1f}{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(String, String), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "the cursor is not one this server gave out",
        )
    };
    let bytes = hex::decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (key, id) = text.split_once('\u{1f}').ok_or_else(bad)?;
    Ok((key.to_string(), id.to_string()))
}

/// What a board card shows, from cards `c` joined to their customers `cu`.
const PAGE_SELECT: &str = "SELECT c.id, c.customer_id, c.stage_id, c.version, c.fields, c.sort_key, c.stage_entered_at, c.created_at, c.updated_at, c.next_reminder_at,
        cu.name, cu.source, cu.campaign, cu.emotional_score, cu.logical_score, cu.last_contact_at, cu.fields AS customer_fields,
        (SELECT e164 FROM customer_phones ph WHERE ph.customer_id = c.customer_id ORDER BY ph.position LIMIT 1) AS phone,
        (SELECT email FROM customer_emails em WHERE em.customer_id = c.customer_id ORDER BY em.position LIMIT 1) AS email
 FROM cards c JOIN customers cu ON cu.id = c.customer_id";

/// One column's cards (a page), `limit` at most.
#[allow(clippy::too_many_arguments)]
async fn column_page(
    db: &Db,
    pipeline: &Pipeline,
    stage: &str,
    filter: &Filter,
    policy: &RecordFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<BoardRow>, Option<String>), ApiError> {
    let mut sql = Sql::new(format!(
        "{PAGE_SELECT} WHERE c.closed_at IS NULL AND c.pipeline_id = "
    ));
    let p = sql.text_arg(pipeline.id.as_str());
    sql.push(&p);
    let s = sql.text_arg(stage);
    sql.push(&format!(" AND c.stage_id = {s}"));
    push_policy(&mut sql, policy, "c.customer_id");
    filter.push_conditions(&mut sql, "c.customer_id");
    let (cmp, dir) = match pipeline.card.order.direction {
        Direction::Asc => (">", "ASC"),
        Direction::Desc => ("<", "DESC"),
    };
    if let Some(cursor) = cursor {
        let (key, id) = decode_cursor(cursor)?;
        let k = sql.text_arg(key);
        let i = sql.text_arg(id);
        sql.push(&format!(
            " AND (c.sort_key {cmp} {k} OR (c.sort_key = {k} AND c.id {cmp} {i}))"
        ));
    }
    sql.push(&format!(
        " ORDER BY c.sort_key {dir}, c.id {dir} LIMIT {}",
        limit + 1
    ));
    let mut rows = crate::sql_fetch_all!(db, BoardRow, &sql)?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor(&r.sort_key, r.id))
    } else {
        None
    };
    Ok((rows, next))
}

#[derive(sqlx::FromRow)]
struct StageCount {
    stage_id: String,
    n: i64,
}

async fn counts(
    db: &Db,
    pipeline: &Pipeline,
    filter: &Filter,
    policy: &RecordFilter,
) -> Result<HashMap<String, i64>, ApiError> {
    // With an owner restriction (an owner filter or a sales rep's own view) the counts start
    // from the owners' customers (a few percent of the cards) instead of scanning every card
    // of the pipeline. `CROSS JOIN` makes SQLite keep that join order even without
    // statistics (the engine never runs ANALYZE); PostgreSQL plans it freely.
    let mut sql = Sql::new("SELECT c.stage_id, COUNT(*) AS n FROM ");
    push_matching(&mut sql, pipeline, filter, policy);
    sql.push(" GROUP BY c.stage_id");
    let rows = crate::sql_fetch_all!(db, StageCount, &sql)?;
    Ok(rows.into_iter().map(|r| (r.stage_id, r.n)).collect())
}

/// The owners whose customers restrict the board (an owner filter or a sales rep's own
/// view), if any.
fn owner_driver(filter: &Filter, policy: &RecordFilter) -> Option<Vec<String>> {
    match policy {
        RecordFilter::OwnedBy(user) => Some(vec![user.to_string()]),
        _ if !filter.owners.is_empty() => {
            Some(filter.owners.iter().map(|u| u.to_string()).collect())
        }
        _ => None,
    }
}

/// `FROM … WHERE …` of the pipeline's open cards `c` matching the filter and policy (with
/// the customer as `cu` when a condition needs it).
fn push_matching(sql: &mut Sql, pipeline: &Pipeline, filter: &Filter, policy: &RecordFilter) {
    let needs_customer = !filter.sources.is_empty()
        || !filter.campaigns.is_empty()
        || filter.q.is_some()
        || filter.emotional_min.is_some()
        || filter.emotional_max.is_some()
        || filter.logical_min.is_some()
        || filter.logical_max.is_some();
    let driver = owner_driver(filter, policy);
    match &driver {
        Some(users) => {
            let list = sql.in_list(users);
            sql.push(&format!(
                "(SELECT DISTINCT customer_id FROM customer_owners WHERE user_id IN {list}) dr CROSS JOIN cards c"
            ));
            if needs_customer {
                sql.push(" CROSS JOIN customers cu");
            }
            sql.push(" WHERE c.customer_id = dr.customer_id");
            if needs_customer {
                sql.push(" AND cu.id = c.customer_id");
            }
            sql.push(" AND c.closed_at IS NULL AND c.pipeline_id = ");
        }
        None if needs_customer => {
            sql.push("cards c JOIN customers cu ON cu.id = c.customer_id WHERE c.closed_at IS NULL AND c.pipeline_id = ");
        }
        None => {
            sql.push("cards c WHERE c.closed_at IS NULL AND c.pipeline_id = ");
        }
    }
    let p = sql.text_arg(pipeline.id.as_str());
    sql.push(&p);
    push_policy(sql, policy, "c.customer_id");
    if driver.is_some() && !matches!(policy, RecordFilter::OwnedBy(_)) {
        // The driver already is the owner filter.
        let rest = Filter {
            owners: Vec::new(),
            ..filter.clone()
        };
        rest.push_conditions(sql, "c.customer_id");
    } else {
        filter.push_conditions(sql, "c.customer_id");
    }
}

#[derive(sqlx::FromRow)]
struct Ranked {
    id: CardId,
    stage_id: String,
    sort_key: String,
    n: i64,
    rn: i64,
}

/// The whole board in one pass over the matching cards when an owner restricts it: the
/// owners' customers are a few percent of the cards, so reading them once (counts and each
/// column's first `limit + 1` by window functions) beats one index walk per column that
/// would skip over everyone else's cards. Then one query for the cards shown.
async fn board_by_owner(
    db: &Db,
    pipeline: &Pipeline,
    filter: &Filter,
    policy: &RecordFilter,
    limit: u32,
) -> Result<
    (
        HashMap<String, i64>,
        HashMap<String, (Vec<BoardRow>, Option<String>)>,
    ),
    ApiError,
> {
    let dir = match pipeline.card.order.direction {
        Direction::Asc => "ASC",
        Direction::Desc => "DESC",
    };
    let mut sql = Sql::new(format!(
        "SELECT id, stage_id, sort_key, n, rn FROM (SELECT c.id, c.stage_id, c.sort_key,
            COUNT(*) OVER (PARTITION BY c.stage_id) AS n,
            ROW_NUMBER() OVER (PARTITION BY c.stage_id ORDER BY c.sort_key {dir}, c.id {dir}) AS rn
         FROM "
    ));
    push_matching(&mut sql, pipeline, filter, policy);
    sql.push(&format!(
        ") ranked WHERE rn <= {} ORDER BY stage_id, rn",
        limit + 1
    ));
    let ranked = crate::sql_fetch_all!(db, Ranked, &sql)?;
    let mut counts = HashMap::new();
    let mut shown = Vec::new();
    let mut next: HashMap<String, String> = HashMap::new();
    for r in &ranked {
        counts.insert(r.stage_id.clone(), r.n);
        if r.rn <= i64::from(limit) {
            shown.push(r.id.to_string());
            if r.rn == i64::from(limit) && r.n > i64::from(limit) {
                next.insert(r.stage_id.clone(), encode_cursor(&r.sort_key, r.id));
            }
        }
    }
    let mut pages: HashMap<String, (Vec<BoardRow>, Option<String>)> = HashMap::new();
    if !shown.is_empty() {
        let mut sql = Sql::new(format!("{PAGE_SELECT} WHERE c.id IN "));
        let list = sql.in_list(&shown);
        sql.push(&list);
        sql.push(&format!(" ORDER BY c.sort_key {dir}, c.id {dir}"));
        for row in crate::sql_fetch_all!(db, BoardRow, &sql)? {
            pages.entry(row.stage_id.clone()).or_default().0.push(row);
        }
    }
    for (stage, cursor) in next {
        pages.entry(stage).or_default().1 = Some(cursor);
    }
    Ok((counts, pages))
}

/// Owners and tags of the customers on a page, one query each.
async fn owners_and_tags(
    db: &Db,
    ids: &[CustomerId],
    want_owners: bool,
    want_tags: bool,
) -> Result<
    (
        HashMap<CustomerId, Vec<OwnerRef>>,
        HashMap<CustomerId, Vec<String>>,
    ),
    ApiError,
> {
    let mut owners: HashMap<CustomerId, Vec<OwnerRef>> = HashMap::new();
    let mut tags: HashMap<CustomerId, Vec<String>> = HashMap::new();
    if ids.is_empty() || (!want_owners && !want_tags) {
        return Ok((owners, tags));
    }
    let texts: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    #[derive(sqlx::FromRow)]
    struct Pair {
        customer_id: CustomerId,
        a: String,
        b: String,
    }
    if want_owners {
        let mut sql = Sql::default();
        let list = sql.in_list(&texts);
        sql.push(&format!(
            "SELECT o.customer_id, u.id AS a, u.name AS b FROM customer_owners o JOIN users u ON u.id = o.user_id WHERE o.customer_id IN {list} ORDER BY o.since, u.id"
        ));
        for row in crate::sql_fetch_all!(db, Pair, &sql)? {
            if let Ok(id) = row.a.parse() {
                owners
                    .entry(row.customer_id)
                    .or_default()
                    .push(OwnerRef { id, name: row.b });
            }
        }
    }
    if want_tags {
        let mut sql = Sql::default();
        let list = sql.in_list(&texts);
        sql.push(&format!("SELECT customer_id, tag AS a, '' AS b FROM customer_tags WHERE customer_id IN {list} ORDER BY tag"));
        for row in crate::sql_fetch_all!(db, Pair, &sql)? {
            tags.entry(row.customer_id).or_default().push(row.a);
        }
    }
    Ok((owners, tags))
}

fn layout_value(
    definitions: &Definitions,
    field: &str,
    row: &BoardRow,
    card_fields: &Map<String, Value>,
    customer_fields: &Map<String, Value>,
    owners: &HashMap<CustomerId, Vec<OwnerRef>>,
    tags: &HashMap<CustomerId, Vec<String>>,
) -> Value {
    match field {
        "name" => json!(row.name),
        "phone" => json!(row.phone),
        "email" => json!(row.email),
        "source" => json!(row.source),
        "campaign" => json!(row.campaign),
        "owners" => json!(owners.get(&row.customer_id).cloned().unwrap_or_default()),
        "tags" => json!(tags.get(&row.customer_id).cloned().unwrap_or_default()),
        "stage" => json!(row.stage_id),
        "emotional_score" => json!(row.emotional_score),
        "logical_score" => json!(row.logical_score),
        "unread_messages" => json!(0),
        "created_at" => json!(row.created_at),
        "updated_at" => json!(row.updated_at),
        "last_contact_at" => json!(row.last_contact_at),
        "stage_entered_at" => json!(row.stage_entered_at),
        "next_reminder_at" => json!(row.next_reminder_at),
        other => {
            if definitions
                .card_fields
                .iter()
                .any(|d| d.id.as_str() == other)
            {
                card_fields.get(other).cloned().unwrap_or(Value::Null)
            } else {
                customer_fields.get(other).cloned().unwrap_or(Value::Null)
            }
        }
    }
}

async fn to_board_cards(
    db: &Db,
    definitions: &Definitions,
    pipeline: &Pipeline,
    rows: Vec<BoardRow>,
) -> Result<Vec<BoardCard>, ApiError> {
    let layout: Vec<&str> = pipeline.card.fields.iter().map(|f| f.as_str()).collect();
    let ids: Vec<CustomerId> = rows.iter().map(|r| r.customer_id).collect();
    let (owners, tags) = owners_and_tags(
        db,
        &ids,
        layout.contains(&"owners"),
        layout.contains(&"tags"),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| build_card(definitions, pipeline, row, &owners, &tags))
        .collect())
}

/// One board card from its row: exactly the layout's fields, and its badges.
fn build_card(
    definitions: &Definitions,
    pipeline: &Pipeline,
    row: BoardRow,
    owners: &HashMap<CustomerId, Vec<OwnerRef>>,
    tags: &HashMap<CustomerId, Vec<String>>,
) -> BoardCard {
    let card_fields = parse_object(&row.fields);
    let customer_fields = parse_object(&row.customer_fields);
    let mut fields = Map::new();
    for field in pipeline.card.fields.iter().map(|f| f.as_str()) {
        fields.insert(
            field.to_string(),
            layout_value(
                definitions,
                field,
                &row,
                &card_fields,
                &customer_fields,
                owners,
                tags,
            ),
        );
    }
    let mut badges = Vec::new();
    if !pipeline.card.badges.is_empty() {
        let days_since_contact = row
            .last_contact_at
            .map(|t| (Timestamp::now().as_datetime() - t.as_datetime()).num_days());
        let mut card_view = Map::new();
        for def in &definitions.card_fields {
            let v = card_fields
                .get(def.id.as_str())
                .map_or(Value::Null, |v| crate::crm::fields::rule_value(def.kind, v));
            card_view.insert(def.id.as_str().to_string(), v);
        }
        card_view.insert("stage".into(), json!(row.stage_id));
        card_view.insert("days_since_contact".into(), json!(days_since_contact));
        let customer_view = customers::rule_view(
            definitions,
            &row.name,
            &row.source,
            row.phone.as_deref(),
            row.email.as_deref(),
            &customer_fields,
            &[
                ("emotional_score", json!(row.emotional_score)),
                ("logical_score", json!(row.logical_score)),
            ],
        );
        let ctx = RuleContext::new()
            .with_json("card", &Value::Object(card_view))
            .with_json("customer", &customer_view);
        for rule in pipeline
            .card
            .badges
            .iter()
            .filter_map(|b| RuleRef::parse(b.as_str()).ok())
        {
            match definitions.rules.badge(&rule, &ctx) {
                Ok(Some(b)) => badges.push(BadgeOut {
                    tr: b.tr,
                    en: b.en,
                    color: b.color,
                }),
                Ok(None) => {}
                Err(e) => tracing::debug!(rule = %rule, error = %e, "badge rule failed"),
            }
        }
    }
    BoardCard {
        id: row.id,
        customer_id: row.customer_id,
        stage_id: row.stage_id,
        version: row.version,
        sort_key: row.sort_key,
        fields,
        badges,
    }
}

/// One card as the board shows it, read inside `tx` (a realtime event carries it). None
/// when the card does not exist or its pipeline is no longer defined.
pub(crate) async fn card_in(
    tx: &mut Tx,
    definitions: &Definitions,
    card: CardId,
) -> Result<Option<BoardCard>, sqlx::Error> {
    let row: Option<BoardRow> = exec!(&mut *tx, conn => sqlx::query_as(sqlx::AssertSqlSafe(format!("{PAGE_SELECT} WHERE c.id = $1")))
        .bind(card).fetch_optional(conn).await)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let pipeline_id: String = exec!(&mut *tx, conn => sqlx::query_scalar("SELECT pipeline_id FROM cards WHERE id = $1")
        .bind(card).fetch_one(conn).await)?;
    let Some(pipeline) = definitions.pipeline(&pipeline_id) else {
        return Ok(None);
    };
    let layout: Vec<&str> = pipeline.card.fields.iter().map(|f| f.as_str()).collect();
    let mut owners = HashMap::new();
    let mut tags = HashMap::new();
    if layout.contains(&"owners") {
        let list: Vec<(UserId, String)> = exec!(&mut *tx, conn => sqlx::query_as(
            "SELECT u.id, u.name FROM customer_owners o JOIN users u ON u.id = o.user_id WHERE o.customer_id = $1 ORDER BY o.since, u.id")
            .bind(row.customer_id).fetch_all(conn).await)?;
        owners.insert(
            row.customer_id,
            list.into_iter()
                .map(|(id, name)| OwnerRef { id, name })
                .collect(),
        );
    }
    if layout.contains(&"tags") {
        let list: Vec<String> = exec!(&mut *tx, conn => sqlx::query_scalar(
            "SELECT tag FROM customer_tags WHERE customer_id = $1 ORDER BY tag")
            .bind(row.customer_id).fetch_all(conn).await)?;
        tags.insert(row.customer_id, list);
    }
    Ok(Some(build_card(definitions, pipeline, row, &owners, &tags)))
}

/// The whole board: every column's count and first `limit` cards.
pub async fn board(
    db: &Db,
    definitions: &Definitions,
    pipeline: &Pipeline,
    filter: &Filter,
    policy: &RecordFilter,
    limit: u32,
) -> Result<Board, ApiError> {
    let limit = limit.clamp(1, 100);
    let (counts, pages) = if owner_driver(filter, policy).is_some() {
        let (counts, mut by_stage) = board_by_owner(db, pipeline, filter, policy, limit).await?;
        let pages = pipeline
            .stages
            .iter()
            .map(|stage| by_stage.remove(stage.id.as_str()).unwrap_or_default())
            .collect::<Vec<_>>();
        (counts, pages)
    } else {
        let pages = futures::future::try_join_all(pipeline.stages.iter().map(|stage| {
            column_page(db, pipeline, stage.id.as_str(), filter, policy, None, limit)
        }));
        futures::try_join!(counts(db, pipeline, filter, policy), pages)?
    };
    let mut columns = Vec::with_capacity(pipeline.stages.len());
    for (stage, (rows, next)) in pipeline.stages.iter().zip(pages) {
        columns.push(Column {
            stage: stage_info(stage),
            count: counts.get(stage.id.as_str()).copied().unwrap_or(0),
            cards: to_board_cards(db, definitions, pipeline, rows).await?,
            next_cursor: next,
        });
    }
    Ok(Board {
        pipeline_id: pipeline.id.as_str().to_string(),
        fields: pipeline
            .card
            .fields
            .iter()
            .map(|f| f.as_str().to_string())
            .collect(),
        columns,
    })
}

/// More cards of one column, after `cursor`.
#[allow(clippy::too_many_arguments)]
pub async fn column(
    db: &Db,
    definitions: &Definitions,
    pipeline: &Pipeline,
    stage: &str,
    filter: &Filter,
    policy: &RecordFilter,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Column, ApiError> {
    let info = pipeline
        .stage(stage)
        .map(stage_info)
        .ok_or_else(|| ApiError::not_found("stage"))?;
    let limit = limit.clamp(1, 100);
    let (rows, next) = column_page(db, pipeline, stage, filter, policy, cursor, limit).await?;
    let counts = counts(db, pipeline, filter, policy).await?;
    Ok(Column {
        count: counts.get(stage).copied().unwrap_or(0),
        stage: info,
        cards: to_board_cards(db, definitions, pipeline, rows).await?,
        next_cursor: next,
    })
}
