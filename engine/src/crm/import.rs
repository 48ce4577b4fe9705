//! CSV lead import: `akis import leads FILE.csv` and `POST /api/imports`.
//!
//! Every row goes through the shared intake ([`intake::check`], then
//! [`intake::intake_all`]), so an imported lead is de-duplicated exactly like one typed in
//! by staff or sent by a web form.
//!
//! # The file
//! UTF-8 (a byte-order mark is dropped), `,`, `;` or tab as delimiter, sniffed from the
//! header line (Turkish Excel writes `;`; an Excel `sep=;` first line is honoured). The
//! header maps to lead fields case- and diacritic-insensitively ([`fold`]): `Ad Soyad`,
//! `Telefon`, `E-posta`, `Kaynak`, `Full name`, `Phone`, `utm_source`, … (see
//! [`target_for`]); a column named like a `customer_fields` id or label fills that field.
//! Unknown columns are reported and ignored. Rows are numbered as a spreadsheet shows
//! them: the header is row 1 (blank lines count, as they do in the spreadsheet).
//!
//! # Guarantees
//! - Every row is checked before anything is written. In `all_or_nothing` mode (the
//!   default for files of at most [`ALL_OR_NOTHING_MAX_ROWS`] rows) one bad row means
//!   nothing is written and the report lists every bad row; in `partial` mode good rows
//!   are imported and bad rows reported.
//! - Rows are written in batches, each its own transaction, sized so that one holds the
//!   write lock for about [`LOCK_TARGET`] (moves and job heartbeats keep flowing between
//!   batches). Each batch's transaction also advances the import record (`rows_done` and
//!   the counts), so the record says exactly which rows landed, whatever stops it.
//! - All-or-nothing is therefore decided before the first write and then carried
//!   forward, not rolled back: every row is checked first and one bad row writes nothing;
//!   once all pass, only an infrastructure failure (the database going away, a crash)
//!   can stop the import midway, and then it is resumed to its end. One transaction for
//!   10,000 rows would hold SQLite's write lock (or, on PostgreSQL, the assignment
//!   counter and every matched customer's row) for tens of seconds and stall every move
//!   and job heartbeat meanwhile. The file is kept with its record until the import is
//!   over (up to [`MAX_STORED_FILE`] bytes), and [`resume_interrupted`] — run by every
//!   server every minute — resumes a `failed` import, or a `running` one whose process
//!   stopped touching it for [`STALE_AFTER`], up to [`MAX_AUTO_ATTEMPTS`] times; `resume`
//!   (CLI `--resume`, `"resume": true`) does it by hand with the same file.
//! - Each row's lead carries `external_key = import:<file sha256>:<row>`, so running the
//!   same file again (or resuming) never imports a row twice: it is counted `duplicate`.
//! - A dry run does the same work in transactions that are rolled back and reports the
//!   counts the real run would (rows matching a customer created by an earlier batch of the
//!   same dry run are counted as `matched`, as they would be).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::crm::customers::Attribution;
use crate::crm::intake::{self, IntakeOutcome, Lead};
use crate::definitions::Definitions;
use crate::definitions::model::{FieldDef, FieldType};
use crate::exec;
use crate::http::ApiError;
use crate::storage::{Db, Tx};
use crate::types::fold::fold;
use crate::types::ids::UserId;
use crate::types::{Email, Phone, Timestamp};

/// Files with at most this many rows are all-or-nothing unless `partial` is asked for;
/// larger ones are partial unless all-or-nothing is asked for.
pub const ALL_OR_NOTHING_MAX_ROWS: usize = 10_000;
/// The most data rows one file may have.
pub const MAX_ROWS: usize = 1_000_000;
/// How long one batch should hold the write lock; batch sizes adapt to it.
pub const LOCK_TARGET: Duration = Duration::from_millis(500);
/// The source of imported leads without a source column.
pub const IMPORT_SOURCE: &str = "import";
/// Bad rows listed in a report beyond this many are only counted.
pub const MAX_LISTED_BAD_ROWS: usize = 10_000;
const FIRST_BATCH: usize = 50;
const MIN_BATCH: usize = 5;
const MAX_BATCH: usize = 1_000;
/// A `running` import not touched for this long is taken to have died (resumable).
pub const STALE_AFTER: Duration = Duration::from_secs(60);
/// Files up to this size are kept with their import record until it is over, so an
/// interrupted import resumes without the user.
pub const MAX_STORED_FILE: usize = 64 * 1024 * 1024;
/// How many times [`resume_interrupted`] takes up one import before leaving it to a
/// person (it stays `failed`, resumable by hand).
pub const MAX_AUTO_ATTEMPTS: i64 = 5;

/// What one CSV column fills.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Name,
    Surname,
    Phone,
    Email,
    Source,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmContent,
    UtmTerm,
    CampaignId,
    AdsetId,
    AdId,
    Notes,
    Field(String),
}

impl Target {
    fn key(&self) -> String {
        match self {
            Target::Name => "name".into(),
            Target::Surname => "surname".into(),
            Target::Phone => "phone".into(),
            Target::Email => "email".into(),
            Target::Source => "source".into(),
            Target::UtmSource => "utm_source".into(),
            Target::UtmMedium => "utm_medium".into(),
            Target::UtmCampaign => "utm_campaign".into(),
            Target::UtmContent => "utm_content".into(),
            Target::UtmTerm => "utm_term".into(),
            Target::CampaignId => "campaign_id".into(),
            Target::AdsetId => "adset_id".into(),
            Target::AdId => "ad_id".into(),
            Target::Notes => "notes".into(),
            Target::Field(id) => format!("fields.{id}"),
        }
    }
}

/// Header names (folded) and what they fill.
const ALIASES: &[(&str, Target)] = &[
    ("ad", Target::Name),
    ("adi", Target::Name),
    ("ad soyad", Target::Name),
    ("ad soyadi", Target::Name),
    ("adi soyadi", Target::Name),
    ("isim", Target::Name),
    ("isim soyisim", Target::Name),
    ("musteri", Target::Name),
    ("musteri adi", Target::Name),
    ("full name", Target::Name),
    ("fullname", Target::Name),
    ("name", Target::Name),
    ("first name", Target::Name),
    ("soyad", Target::Surname),
    ("soyadi", Target::Surname),
    ("soyisim", Target::Surname),
    ("last name", Target::Surname),
    ("surname", Target::Surname),
    ("telefon", Target::Phone),
    ("telefon no", Target::Phone),
    ("telefon numarasi", Target::Phone),
    ("tel", Target::Phone),
    ("tel no", Target::Phone),
    ("cep", Target::Phone),
    ("cep telefonu", Target::Phone),
    ("gsm", Target::Phone),
    ("phone", Target::Phone),
    ("phone number", Target::Phone),
    ("mobile", Target::Phone),
    ("e posta", Target::Email),
    ("eposta", Target::Email),
    ("e posta adresi", Target::Email),
    ("email", Target::Email),
    ("e mail", Target::Email),
    ("email address", Target::Email),
    ("mail", Target::Email),
    ("kaynak", Target::Source),
    ("source", Target::Source),
    ("lead source", Target::Source),
    ("utm source", Target::UtmSource),
    ("utm medium", Target::UtmMedium),
    ("utm campaign", Target::UtmCampaign),
    ("utm content", Target::UtmContent),
    ("utm term", Target::UtmTerm),
    ("campaign id", Target::CampaignId),
    ("kampanya id", Target::CampaignId),
    ("adset id", Target::AdsetId),
    ("ad set id", Target::AdsetId),
    ("reklam seti id", Target::AdsetId),
    ("ad id", Target::AdId),
    ("reklam id", Target::AdId),
    ("not", Target::Notes),
    ("notlar", Target::Notes),
    ("aciklama", Target::Notes),
    ("notes", Target::Notes),
    ("note", Target::Notes),
    ("mesaj", Target::Notes),
    ("message", Target::Notes),
];

/// What a header cell fills: a built-in alias, else a customer field by id or label.
fn target_for(header: &str, customer_fields: &[FieldDef]) -> Option<Target> {
    let folded = fold(header);
    if folded.is_empty() {
        return None;
    }
    if let Some((_, target)) = ALIASES.iter().find(|(alias, _)| *alias == folded) {
        return Some(target.clone());
    }
    customer_fields
        .iter()
        .find(|def| {
            fold(def.id.as_str()) == folded
                || fold(&def.label.tr) == folded
                || fold(&def.label.en) == folded
        })
        .map(|def| Target::Field(def.id.as_str().to_string()))
}

/// How one header cell was understood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ColumnMapping {
    /// The header as written.
    pub column: String,
    /// `name`, `surname` (appended to the name), `phone`, `email`, `source`, `utm_*`,
    /// `campaign_id`, `adset_id`, `ad_id`, `notes`, `fields.<id>`; null when ignored.
    pub target: Option<String>,
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BadRow {
    /// The row number a spreadsheet shows (the header is row 1).
    pub row: u64,
    /// For people, naming the columns at fault.
    pub reason: String,
    /// Per-field problems (intake's field names: `name`, `phone`, `email`, a custom field
    /// id, …).
    pub fields: BTreeMap<String, String>,
}

/// A parsed file: its rows as leads, not yet checked.
#[derive(Debug)]
pub struct ParsedFile {
    pub sha256: String,
    pub delimiter: char,
    pub columns: Vec<ColumnMapping>,
    pub unknown_columns: Vec<String>,
    /// (row number, the lead or why the row cannot be read).
    pub rows: Vec<(u64, Result<Lead, String>)>,
    /// The last row number of the file (the header is 1).
    pub last_row: u64,
}

fn invalid_file(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("import_invalid_file", message)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The delimiter of the header line: the most frequent of `;`, `,` and tab outside quotes
/// (`,` on a tie or when there is none).
fn sniff_delimiter(header_line: &str) -> u8 {
    let (mut semicolons, mut commas, mut tabs, mut quoted) = (0, 0, 0, false);
    for c in header_line.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => semicolons += 1,
            ',' if !quoted => commas += 1,
            '\t' if !quoted => tabs += 1,
            _ => {}
        }
    }
    if tabs > commas && tabs > semicolons {
        b'\t'
    } else if semicolons > commas {
        b';'
    } else {
        b','
    }
}

/// Converts a cell to the JSON value a custom field takes: booleans from
/// `evet`/`hayır`/`yes`/`no`/`true`/`false`/`1`/`0`, choices by option id or label; other
/// types take the text (intake validates it).
fn field_value(def: &FieldDef, cell: &str) -> Value {
    match def.kind {
        FieldType::Boolean => match fold(cell).as_str() {
            "evet" | "e" | "var" | "yes" | "y" | "true" | "1" | "x" => Value::Bool(true),
            "hayir" | "h" | "yok" | "no" | "n" | "false" | "0" => Value::Bool(false),
            _ => Value::String(cell.to_string()),
        },
        FieldType::Choice => {
            let folded = fold(cell);
            def.options
                .iter()
                .find(|o| {
                    o.id.as_str() == cell
                        || fold(o.id.as_str()) == folded
                        || fold(&o.label.tr) == folded
                        || fold(&o.label.en) == folded
                })
                .map_or_else(
                    || Value::String(cell.to_string()),
                    |o| Value::String(o.id.as_str().to_string()),
                )
        }
        _ => Value::String(cell.to_string()),
    }
}

/// A source cell as a source id: kept when it already is one (`web_form`), else folded
/// to one (`Web Formu` → `web_formu`).
fn source_id(cell: &str) -> String {
    if cell
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        cell.to_string()
    } else {
        fold(cell).replace(' ', "_")
    }
}

/// Parses a file into leads (nothing checked or written yet). Fails only for a file that
/// cannot be imported at all: not UTF-8, no header, no name column, no phone or email
/// column, more than [`MAX_ROWS`] rows.
pub fn parse(
    definitions: &Definitions,
    bytes: &[u8],
    entered_by: Option<UserId>,
    entered_by_owns: bool,
) -> Result<ParsedFile, ApiError> {
    let sha256 = sha256_hex(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        invalid_file(format!(
            "the file is not UTF-8 (at byte {}); in Excel choose \"CSV UTF-8\" when saving",
            e.valid_up_to()
        ))
    })?;
    let mut text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line = text.lines().next().unwrap_or("");
    let mut delimiter = sniff_delimiter(first_line);
    // Excel's hint line `sep=;` is not shown as a row.
    if let Some(sep) = first_line.trim().strip_prefix("sep=")
        && sep.len() == 1
    {
        delimiter = sep.as_bytes()[0];
        text = text.split_once('\n').map_or("", |(_, rest)| rest);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(invalid_file(format!("the header cannot be read: {e}"))),
        None => return Err(invalid_file("the file is empty")),
    };
    // Row numbers as a spreadsheet shows them: the line a record starts on, less the line
    // breaks inside quoted cells of the records before it. (The reader skips blank lines,
    // which are rows in a spreadsheet, and may report a record's position at the blank
    // lines before it: the line is counted at the record's first character.)
    let mut lines = LineCounter::new(text);
    let mut breaks_in_cells = newlines(&header);

    let mut targets: Vec<Option<Target>> = Vec::with_capacity(header.len());
    let mut columns = Vec::with_capacity(header.len());
    let mut unknown_columns = Vec::new();
    for (i, cell) in header.iter().enumerate() {
        let cell = cell.trim();
        let target = target_for(cell, &definitions.customer_fields);
        if target.is_none() {
            unknown_columns.push(if cell.is_empty() {
                format!("(column {} has no header)", i + 1)
            } else {
                cell.to_string()
            });
        }
        columns.push(ColumnMapping {
            column: cell.to_string(),
            target: target.as_ref().map(Target::key),
        });
        targets.push(target);
    }
    let has = |t: &Target| targets.iter().any(|x| x.as_ref() == Some(t));
    if !has(&Target::Name) && !has(&Target::Surname) {
        return Err(invalid_file(
            "no name column in the header (e.g. Ad Soyad, Ad, İsim, Müşteri, name, full name)",
        ));
    }
    if !has(&Target::Phone) && !has(&Target::Email) {
        return Err(invalid_file(
            "no phone or email column in the header (e.g. Telefon, E-posta, phone, email)",
        ));
    }

    let mut rows = Vec::new();
    let mut row_number: u64 = 1;
    for record in records {
        let record = record.map_err(|e| invalid_file(format!("the file cannot be read: {e}")))?;
        let start = record.position().map_or(0, |p| p.byte() as usize);
        row_number = lines.line_at_content(start).saturating_sub(breaks_in_cells);
        breaks_in_cells += newlines(&record);
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if rows.len() >= MAX_ROWS {
            return Err(invalid_file(format!(
                "more than {MAX_ROWS} rows; split the file"
            )));
        }
        // Cells past the header are fine only when empty (a trailing separator).
        if record
            .iter()
            .skip(targets.len())
            .any(|c| !c.trim().is_empty())
        {
            rows.push((
                row_number,
                Err(format!(
                    "{} cells but the header has {} columns (a separator inside an unquoted cell?)",
                    record.len(),
                    targets.len()
                )),
            ));
            continue;
        }
        let lead = row_lead(definitions, &targets, &record, &sha256, row_number);
        rows.push((
            row_number,
            Ok(Lead {
                entered_by,
                entered_by_owns,
                ..lead
            }),
        ));
    }
    Ok(ParsedFile {
        sha256,
        delimiter: char::from(delimiter),
        columns,
        unknown_columns,
        rows,
        last_row: row_number,
    })
}

/// Line numbers (1-based) of byte offsets, asked for in increasing order.
struct LineCounter<'a> {
    text: &'a [u8],
    at: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            at: 0,
            line: 1,
        }
    }

    /// The line of the first character at or after `offset` that is not a line break.
    fn line_at_content(&mut self, offset: usize) -> u64 {
        let mut target = offset.max(self.at).min(self.text.len());
        while target < self.text.len() && matches!(self.text[target], b'\r' | b'\n') {
            target += 1;
        }
        self.line += self.text[self.at..target]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.at = target;
        self.line
    }
}

fn newlines(record: &csv::StringRecord) -> u64 {
    record.iter().map(|c| c.matches('\n').count() as u64).sum()
}

fn row_lead(
    definitions: &Definitions,
    targets: &[Option<Target>],
    record: &csv::StringRecord,
    sha256: &str,
    row: u64,
) -> Lead {
    // The first non-empty cell wins when several columns fill the same thing.
    let mut values: Vec<(&Target, &str)> = Vec::new();
    for (target, cell) in targets.iter().zip(record.iter()) {
        let (Some(target), cell) = (target, cell.trim()) else {
            continue;
        };
        if !cell.is_empty() && !values.iter().any(|(t, _)| *t == target) {
            values.push((target, cell));
        }
    }
    let get = |t: &Target| {
        values
            .iter()
            .find(|(x, _)| *x == t)
            .map(|(_, v)| v.to_string())
    };
    let name = match (get(&Target::Name), get(&Target::Surname)) {
        (Some(n), Some(s)) => format!("{n} {s}"),
        (n, s) => n.or(s).unwrap_or_default(),
    };
    let mut fields = Map::new();
    for (target, cell) in &values {
        if let Target::Field(id) = target
            && let Some(def) = definitions
                .customer_fields
                .iter()
                .find(|d| d.id.as_str() == id)
        {
            fields.insert(id.clone(), field_value(def, cell));
        }
    }
    Lead {
        name,
        phone: get(&Target::Phone),
        email: get(&Target::Email),
        source: Some(
            get(&Target::Source)
                .map(|s| source_id(&s))
                .unwrap_or_else(|| IMPORT_SOURCE.to_string()),
        ),
        attribution: Attribution {
            utm_source: get(&Target::UtmSource),
            utm_medium: get(&Target::UtmMedium),
            utm_campaign: get(&Target::UtmCampaign),
            utm_content: get(&Target::UtmContent),
            utm_term: get(&Target::UtmTerm),
            campaign_id: get(&Target::CampaignId),
            adset_id: get(&Target::AdsetId),
            ad_id: get(&Target::AdId),
            ..Attribution::default()
        },
        notes: get(&Target::Notes),
        fields,
        external_key: Some(format!("import:{sha256}:{row}")),
        ..Lead::default()
    }
}

/// One bad row from intake's validation error, naming the columns at fault.
fn bad_row(row: u64, error: ApiError, columns: &[ColumnMapping]) -> BadRow {
    let fields = match &error {
        ApiError::Client { fields, .. } => fields.clone(),
        ApiError::Internal(_) | ApiError::Definitions { .. } => BTreeMap::new(),
    };
    if fields.is_empty() {
        return BadRow {
            row,
            reason: match error {
                ApiError::Client { message, .. } | ApiError::Definitions { message, .. } => message,
                ApiError::Internal(e) => e.to_string(),
            },
            fields,
        };
    }
    let reason = fields
        .iter()
        .map(|(key, message)| {
            let named: Vec<&str> = columns
                .iter()
                .filter(|c| {
                    c.target.as_deref().is_some_and(|t| {
                        target_error_key(t) == *key
                            || (key == "phone" && t == "email" && message.contains("email"))
                    })
                })
                .map(|c| c.column.as_str())
                .filter(|c| !c.is_empty())
                .collect();
            if named.is_empty() {
                format!("{key}: {message}")
            } else {
                format!("{key} ({}): {message}", named.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    BadRow {
        row,
        reason,
        fields,
    }
}

fn target_error_key(target: &str) -> String {
    match target {
        "surname" => "name".into(),
        t => t.strip_prefix("fields.").unwrap_or(t).to_string(),
    }
}

// ---------------------------------------------------------------- the record

/// How bad rows are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// One bad row and nothing is written.
    AllOrNothing,
    /// Good rows are imported, bad ones reported.
    Partial,
}

impl ImportMode {
    fn as_str(self) -> &'static str {
        match self {
            ImportMode::AllOrNothing => "all_or_nothing",
            ImportMode::Partial => "partial",
        }
    }
}

/// An import (or dry run) and what it did: `GET /api/imports/{id}`, the CLI's report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportReport {
    pub id: String,
    pub file_name: String,
    pub file_sha256: String,
    /// `running`, `done`, `failed` (stopped by an error: resumable), `rejected` (bad rows
    /// in all-or-nothing mode: nothing written), `dry_run` (nothing written).
    pub state: String,
    pub mode: ImportMode,
    pub dry_run: bool,
    /// Data rows (blank lines not counted).
    pub total_rows: u64,
    /// The file's last row number (the header is row 1).
    pub last_row: u64,
    /// Every row up to this row number is settled: imported, or reported bad. 1 = none.
    pub rows_done: u64,
    /// Rows that created a new customer.
    pub created: u64,
    /// Rows that matched an existing customer (by phone, email or identity).
    pub matched: u64,
    /// Rows already imported (the same row of the same file).
    pub duplicate: u64,
    /// Bad rows (listed in `bad_rows`).
    pub failed: u64,
    /// Set when bad rows in all-or-nothing mode stopped the import (nothing written).
    pub rejected: bool,
    pub bad_rows: Vec<BadRow>,
    /// Bad rows counted but not listed (beyond the first 10,000).
    pub bad_rows_unlisted: u64,
    pub columns: Vec<ColumnMapping>,
    /// Header cells that fill nothing (ignored).
    pub unknown_columns: Vec<String>,
    pub delimiter: String,
    /// Why a `failed` import stopped.
    pub error: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    /// Touched after every batch while running.
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Whether the importing staff member sees only their own customers (they then co-own
    /// the imported ones; a resumed import keeps doing so).
    #[serde(skip)]
    pub entered_by_owns: bool,
}

/// The part of a report kept as JSON in `imports.report`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredReport {
    #[serde(default)]
    rejected: bool,
    #[serde(default)]
    bad_rows: Vec<BadRow>,
    #[serde(default)]
    bad_rows_unlisted: u64,
    #[serde(default)]
    columns: Vec<ColumnMapping>,
    #[serde(default)]
    unknown_columns: Vec<String>,
    #[serde(default)]
    delimiter: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    entered_by_owns: bool,
}

#[derive(sqlx::FromRow)]
struct ImportRow {
    id: String,
    file_name: String,
    file_sha256: String,
    total_rows: i64,
    last_row: i64,
    mode: String,
    dry_run: bool,
    state: String,
    rows_done: i64,
    created: i64,
    matched: i64,
    duplicate: i64,
    failed: i64,
    report: String,
    created_by: Option<UserId>,
    created_at: Timestamp,
    updated_at: Timestamp,
    finished_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, file_name, file_sha256, total_rows, last_row, mode, dry_run, state, rows_done, created, matched, duplicate, failed, report, created_by, created_at, updated_at, finished_at";

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl From<ImportRow> for ImportReport {
    fn from(row: ImportRow) -> Self {
        let stored: StoredReport = serde_json::from_str(&row.report).unwrap_or_default();
        ImportReport {
            id: row.id,
            file_name: row.file_name,
            file_sha256: row.file_sha256,
            state: row.state,
            mode: if row.mode == "partial" {
                ImportMode::Partial
            } else {
                ImportMode::AllOrNothing
            },
            dry_run: row.dry_run,
            total_rows: to_u64(row.total_rows),
            last_row: to_u64(row.last_row),
            rows_done: to_u64(row.rows_done),
            created: to_u64(row.created),
            matched: to_u64(row.matched),
            duplicate: to_u64(row.duplicate),
            failed: to_u64(row.failed),
            rejected: stored.rejected,
            bad_rows: stored.bad_rows,
            bad_rows_unlisted: stored.bad_rows_unlisted,
            columns: stored.columns,
            unknown_columns: stored.unknown_columns,
            delimiter: stored.delimiter,
            error: stored.error,
            entered_by_owns: stored.entered_by_owns,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
        }
    }
}

impl ImportReport {
    fn stored_json(&self) -> String {
        serde_json::to_string(&StoredReport {
            rejected: self.rejected,
            bad_rows: self.bad_rows.clone(),
            bad_rows_unlisted: self.bad_rows_unlisted,
            columns: self.columns.clone(),
            unknown_columns: self.unknown_columns.clone(),
            delimiter: self.delimiter.clone(),
            error: self.error.clone(),
            entered_by_owns: self.entered_by_owns,
        })
        .unwrap_or_else(|_| "{}".into())
    }

    /// Whether the import is over.
    pub fn finished(&self) -> bool {
        self.finished_at.is_some()
    }
}

/// Reads one import record.
pub async fn get(db: &Db, id: &str) -> Result<Option<ImportReport>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM imports WHERE id = $1");
    let row: Option<ImportRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(id).fetch_optional(pool).await
    })?;
    Ok(row.map(ImportReport::from))
}

/// The latest import records, newest first.
pub async fn list(db: &Db, limit: i64) -> Result<Vec<ImportReport>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM imports ORDER BY created_at DESC, id DESC LIMIT $1");
    let rows: Vec<ImportRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(limit).fetch_all(pool).await
    })?;
    Ok(rows.into_iter().map(ImportReport::from).collect())
}

async fn insert(db: &Db, report: &ImportReport, file: Option<&[u8]>) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let sql = format!(
        "INSERT INTO imports ({COLUMNS}, file) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17, $18)"
    );
    exec!(&mut tx, conn => sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&report.id).bind(&report.file_name).bind(&report.file_sha256)
        .bind(to_i64(report.total_rows)).bind(to_i64(report.last_row))
        .bind(report.mode.as_str()).bind(report.dry_run).bind(&report.state)
        .bind(to_i64(report.rows_done)).bind(to_i64(report.created)).bind(to_i64(report.matched))
        .bind(to_i64(report.duplicate)).bind(to_i64(report.failed)).bind(report.stored_json())
        .bind(report.created_by).bind(report.created_at).bind(report.finished_at).bind(file)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(())
}

/// Saves progress (and touches `updated_at`, the heartbeat resume looks at).
async fn save(db: &Db, report: &ImportReport) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    save_in(&mut tx, report).await?;
    tx.commit().await?;
    Ok(())
}

/// [`save`] in a transaction. The kept file is dropped once the import is over (not when
/// it `failed`: that one is resumed).
async fn save_in(tx: &mut Tx, report: &ImportReport) -> Result<(), ApiError> {
    let over = report.finished() && report.state != "failed";
    exec!(tx, conn => sqlx::query(
        "UPDATE imports SET state = $1, rows_done = $2, created = $3, matched = $4, duplicate = $5,
            failed = $6, report = $7, updated_at = $8, finished_at = $9,
            file = CASE WHEN $11 THEN NULL ELSE file END WHERE id = $10")
        .bind(&report.state).bind(to_i64(report.rows_done)).bind(to_i64(report.created))
        .bind(to_i64(report.matched)).bind(to_i64(report.duplicate)).bind(to_i64(report.failed))
        .bind(report.stored_json()).bind(Timestamp::now()).bind(report.finished_at).bind(&report.id)
        .bind(over)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Takes over an unfinished import of the same file (`id`: that import, which must be of
/// this file): a `failed` one, or a `running` one whose process stopped touching it.
async fn claim_unfinished(
    db: &Db,
    sha256: &str,
    id: Option<&str>,
) -> Result<ImportReport, ApiError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM imports WHERE file_sha256 = $1 AND state IN ('running', 'failed') AND NOT dry_run
           AND ($2 IS NULL OR id = $2)
         ORDER BY created_at DESC LIMIT 1"
    );
    let row: Option<ImportRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(sha256).bind(id).fetch_optional(pool).await
    })?;
    let Some(row) = row else {
        return Err(ApiError::not_found("unfinished import of this file"));
    };
    let cutoff = Timestamp::from_datetime(
        chrono::Utc::now()
            - chrono::Duration::from_std(STALE_AFTER).unwrap_or(chrono::Duration::zero()),
    );
    let mut tx = db.begin().await?;
    let taken = exec!(&mut tx, conn => sqlx::query(
        "UPDATE imports SET state = 'running', updated_at = $1, finished_at = NULL,
            attempts = attempts + CASE WHEN $4 THEN 1 ELSE 0 END
         WHERE id = $2 AND (state = 'failed' OR (state = 'running' AND updated_at < $3))")
        .bind(Timestamp::now()).bind(&row.id).bind(cutoff).bind(id.is_some())
        .execute(conn).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    if taken == 0 {
        return Err(ApiError::conflict(
            "import_running",
            format!(
                "import {} of this file is still running; wait for it (or, if its process died, about a minute)",
                row.id
            ),
        ));
    }
    let mut report = ImportReport::from(row);
    report.state = "running".into();
    report.error = None;
    report.finished_at = None;
    Ok(report)
}

// ---------------------------------------------------------------- running

/// How to run an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub file_name: String,
    /// Do everything in transactions that are rolled back.
    pub dry_run: bool,
    /// Some(true): import good rows even if some are bad; Some(false): all-or-nothing;
    /// None: all-or-nothing up to [`ALL_OR_NOTHING_MAX_ROWS`] rows, partial above.
    pub partial: Option<bool>,
    /// Rows per transaction; None adapts to [`LOCK_TARGET`].
    pub batch_size: Option<usize>,
    /// Continue the unfinished import of the same file instead of starting a new one.
    pub resume: bool,
    /// With `resume`: that import (automatic resumption), not the latest of the file.
    pub resume_id: Option<String>,
    /// The staff member importing (their leads are `entered_by` them).
    pub created_by: Option<UserId>,
    /// Whether that staff member sees only their own customers (they then co-own them).
    pub entered_by_owns: bool,
}

/// A checked file with its import record, ready to run.
pub struct PreparedImport {
    report: ImportReport,
    /// Good rows not yet settled: (row number, lead).
    pending: Vec<(u64, Lead)>,
    batch_size: Option<usize>,
}

impl PreparedImport {
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    /// Rows still to go through intake.
    pub fn pending_rows(&self) -> usize {
        self.pending.len()
    }
}

/// Parses and checks a file and creates (or, with `resume`, takes over) its import
/// record. Writes no lead. Bad rows in all-or-nothing mode settle the import here
/// (`rejected`, or `dry_run` with `rejected` set).
pub async fn prepare(
    db: &Db,
    definitions: &Definitions,
    bytes: &[u8],
    options: &ImportOptions,
) -> Result<PreparedImport, ApiError> {
    if options.batch_size == Some(0) {
        return Err(ApiError::bad_request(
            "invalid_batch_size",
            "the batch size must be at least 1",
        ));
    }
    let parsed = parse(
        definitions,
        bytes,
        options.created_by,
        options.entered_by_owns,
    )?;
    let total_rows = parsed.rows.len();
    let mut bad_rows = Vec::new();
    let mut good = Vec::with_capacity(total_rows);
    for (row, lead) in parsed.rows {
        match lead {
            Err(reason) => bad_rows.push(BadRow {
                row,
                reason,
                fields: BTreeMap::new(),
            }),
            Ok(lead) => match intake::check(definitions, &lead) {
                Ok(()) => good.push((row, lead)),
                Err(e) => bad_rows.push(bad_row(row, e, &parsed.columns)),
            },
        }
    }
    let failed = bad_rows.len() as u64;
    let bad_rows_unlisted = bad_rows.len().saturating_sub(MAX_LISTED_BAD_ROWS) as u64;
    bad_rows.truncate(MAX_LISTED_BAD_ROWS);

    let mut report = if options.resume && !options.dry_run {
        let mut report = claim_unfinished(db, &parsed.sha256, options.resume_id.as_deref()).await?;
        good.retain(|(row, _)| *row > report.rows_done);
        report.failed = failed;
        report.bad_rows = bad_rows;
        report.bad_rows_unlisted = bad_rows_unlisted;
        report
    } else {
        let partial = options
            .partial
            .unwrap_or(total_rows > ALL_OR_NOTHING_MAX_ROWS);
        ImportReport {
            id: uuid::Uuid::now_v7().to_string(),
            file_name: options.file_name.chars().take(255).collect(),
            file_sha256: parsed.sha256,
            state: if options.dry_run {
                "dry_run"
            } else {
                "running"
            }
            .into(),
            mode: if partial {
                ImportMode::Partial
            } else {
                ImportMode::AllOrNothing
            },
            dry_run: options.dry_run,
            total_rows: total_rows as u64,
            last_row: parsed.last_row,
            rows_done: 1,
            created: 0,
            matched: 0,
            duplicate: 0,
            failed,
            rejected: false,
            bad_rows,
            bad_rows_unlisted,
            columns: parsed.columns,
            unknown_columns: parsed.unknown_columns,
            delimiter: parsed.delimiter.to_string(),
            error: None,
            created_by: options.created_by,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
            finished_at: None,
            entered_by_owns: options.entered_by_owns,
        }
    };
    let landed = report.created + report.matched + report.duplicate > 0;
    if report.mode == ImportMode::AllOrNothing && report.failed > 0 && landed {
        // Resumed after rows landed, and rows that passed the check then fail it now
        // (the definitions changed). Nothing more is written; a person decides.
        report.state = "failed".into();
        report.error = Some(format!(
            "{} row(s) no longer pass the check (have the definitions changed?) and rows up to {} already landed; fix the rows or the definitions and resume, or import the rest with partial",
            report.failed, report.rows_done
        ));
        report.finished_at = Some(Timestamp::now());
        good.clear();
    } else if report.mode == ImportMode::AllOrNothing && report.failed > 0 {
        report.rejected = true;
        if !report.dry_run {
            report.state = "rejected".into();
        }
        report.rows_done = report.last_row;
        report.finished_at = Some(Timestamp::now());
        good.clear();
    }
    if options.resume && !options.dry_run {
        save(db, &report).await?;
    } else {
        let keep = !report.dry_run && !report.finished() && bytes.len() <= MAX_STORED_FILE;
        insert(db, &report, keep.then_some(bytes)).await?;
    }
    Ok(PreparedImport {
        report,
        pending: good,
        batch_size: options.batch_size,
    })
}

/// Runs a prepared import to its end, batch by batch, calling `progress` after each batch
/// with the rows gone through intake so far. An error stopping it midway is recorded
/// (`failed`, resumable) and returned in the report, not as `Err`; `Err` means even the
/// record could not be written.
pub async fn execute(
    db: &Db,
    definitions: &Definitions,
    prepared: PreparedImport,
    progress: impl Fn(usize) + Send + Sync,
) -> Result<ImportReport, ApiError> {
    let PreparedImport {
        mut report,
        pending,
        batch_size,
    } = prepared;
    if report.finished() {
        return Ok(report);
    }
    let (numbers, leads): (Vec<u64>, Vec<Lead>) = pending.into_iter().unzip();
    // A dry run rolls each batch back, so a later batch cannot see the customers an
    // earlier one created: remember their phones and emails to count those rows as the
    // real run would (matched).
    let mut seen_phones: HashSet<String> = HashSet::new();
    let mut seen_emails: HashSet<String> = HashSet::new();
    let mut size = batch_size.unwrap_or(FIRST_BATCH).max(1);
    let mut start = 0;
    while start < leads.len() {
        let end = (start + size).min(leads.len());
        let batch = &leads[start..end];
        let began = Instant::now();
        let rows_done = numbers[end - 1];
        let outcomes = match intake::intake_all_then(
            db,
            definitions,
            batch,
            !report.dry_run,
            |tx, outcomes| {
                // The record advances with the rows, in their transaction.
                let mut after = report.clone();
                tally(&mut after, batch, outcomes, None);
                after.rows_done = rows_done;
                record_batch(tx, after)
            },
        )
        .await
        {
            Ok(outcomes) => outcomes,
            Err(e) => {
                report.state = "failed".into();
                report.error = Some(match e {
                    ApiError::Client { message, .. } | ApiError::Definitions { message, .. } => {
                        message
                    }
                    ApiError::Internal(e) => {
                        tracing::error!(import = %report.id, error = %e, "import batch failed");
                        "an internal error stopped the import; resume it to continue".into()
                    }
                });
                report.finished_at = Some(Timestamp::now());
                save(db, &report).await?;
                return Ok(report);
            }
        };
        let elapsed = began.elapsed();
        tracing::debug!(import = %report.id, rows = batch.len(), ms = elapsed.as_millis() as u64, "import batch");
        let seen = report
            .dry_run
            .then_some((&mut seen_phones, &mut seen_emails));
        tally(&mut report, batch, &outcomes, seen);
        report.rows_done = rows_done;
        start = end;
        progress(start);
        if batch_size.is_none() {
            size = next_batch_size(batch.len(), elapsed);
        }
        // Let moves and job heartbeats queued for the writer go first.
        tokio::task::yield_now().await;
    }
    report.rows_done = report.last_row;
    if !report.dry_run {
        report.state = "done".into();
    }
    report.finished_at = Some(Timestamp::now());
    save(db, &report).await?;
    Ok(report)
}

fn record_batch(
    tx: &mut Tx,
    after: ImportReport,
) -> futures::future::BoxFuture<'_, Result<(), ApiError>> {
    Box::pin(async move {
        if !after.dry_run {
            save_in(tx, &after).await?;
        }
        Ok(())
    })
}

/// Counts a batch's outcomes into the report. `seen` (dry runs): the phones and emails of
/// earlier batches, whose customers a rolled-back batch could not see.
fn tally(
    report: &mut ImportReport,
    batch: &[Lead],
    outcomes: &[IntakeOutcome],
    mut seen: Option<(&mut HashSet<String>, &mut HashSet<String>)>,
) {
    for (lead, outcome) in batch.iter().zip(outcomes) {
        if outcome.duplicate {
            report.duplicate += 1;
        } else if outcome.matched
            || seen
                .as_ref()
                .is_some_and(|(phones, emails)| seen_before(lead, phones, emails))
        {
            report.matched += 1;
        } else {
            report.created += 1;
        }
        if let Some((phones, emails)) = seen.as_mut() {
            remember(lead, phones, emails);
        }
    }
}

/// The next batch size: as many rows as took about [`LOCK_TARGET`] in the last batch.
fn next_batch_size(rows: usize, elapsed: Duration) -> usize {
    let per_row = elapsed.as_secs_f64() / rows.max(1) as f64;
    if per_row <= 0.0 {
        return MAX_BATCH;
    }
    ((LOCK_TARGET.as_secs_f64() / per_row) as usize).clamp(MIN_BATCH, MAX_BATCH)
}

fn normalized(lead: &Lead) -> (Option<String>, Option<String>) {
    let phone = lead
        .phone
        .as_deref()
        .and_then(|p| Phone::parse(p.trim()).ok())
        .map(|p| p.as_str().to_string());
    let email = lead
        .email
        .as_deref()
        .and_then(|e| Email::parse(e.trim()).ok())
        .map(|e| e.as_str().to_string());
    (phone, email)
}

fn seen_before(lead: &Lead, phones: &HashSet<String>, emails: &HashSet<String>) -> bool {
    let (phone, email) = normalized(lead);
    phone.is_some_and(|p| phones.contains(&p)) || email.is_some_and(|e| emails.contains(&e))
}

fn remember(lead: &Lead, phones: &mut HashSet<String>, emails: &mut HashSet<String>) {
    let (phone, email) = normalized(lead);
    phones.extend(phone);
    emails.extend(email);
}

/// Parses, checks and runs an import in one call.
pub async fn import(
    db: &Db,
    definitions: &Definitions,
    bytes: &[u8],
    options: &ImportOptions,
    progress: impl Fn(usize) + Send + Sync,
) -> Result<ImportReport, ApiError> {
    let prepared = prepare(db, definitions, bytes, options).await?;
    execute(db, definitions, prepared, progress).await
}

/// Resumes, to their end, the imports a crash or an infrastructure failure stopped
/// midway: `failed` ones, and `running` ones whose process stopped touching them for
/// [`STALE_AFTER`] — when their file is kept and they were taken up fewer than
/// [`MAX_AUTO_ATTEMPTS`] times. Servers run it every minute ([`resume_loop`]). Returns the
/// reports of the imports it ran (another node may take one first: it is then skipped).
pub async fn resume_interrupted(
    db: &Db,
    definitions: &Definitions,
) -> Result<Vec<ImportReport>, ApiError> {
    #[derive(sqlx::FromRow)]
    struct Interrupted {
        id: String,
        file_name: String,
        created_by: Option<UserId>,
        report: String,
    }
    let cutoff = Timestamp::from_datetime(
        chrono::Utc::now()
            - chrono::Duration::from_std(STALE_AFTER).unwrap_or(chrono::Duration::zero()),
    );
    let found: Vec<Interrupted> = crate::read!(db, pool => {
        sqlx::query_as(
            "SELECT id, file_name, created_by, report FROM imports
             WHERE state IN ('running', 'failed') AND updated_at < $1 AND file IS NOT NULL
               AND NOT dry_run AND attempts < $2
             ORDER BY created_at")
        .bind(cutoff).bind(MAX_AUTO_ATTEMPTS).fetch_all(pool).await
    })?;
    let mut reports = Vec::new();
    for found in found {
        // Files are read one at a time (each up to MAX_STORED_FILE); gone means another
        // node finished it meanwhile.
        let file: Option<Vec<u8>> = crate::read!(db, pool => {
            sqlx::query_scalar("SELECT file FROM imports WHERE id = $1 AND file IS NOT NULL")
                .bind(&found.id).fetch_optional(pool).await
        })?;
        let Some(file) = file else {
            continue;
        };
        let stored: StoredReport = serde_json::from_str(&found.report).unwrap_or_default();
        let options = ImportOptions {
            file_name: found.file_name,
            resume: true,
            resume_id: Some(found.id.clone()),
            created_by: found.created_by,
            entered_by_owns: stored.entered_by_owns,
            ..ImportOptions::default()
        };
        let prepared = match prepare(db, definitions, &file, &options).await {
            Ok(prepared) => prepared,
            // Taken by another node meanwhile.
            Err(ApiError::Client { .. }) => continue,
            Err(e) => return Err(e),
        };
        tracing::info!(import = %found.id, rows = prepared.pending_rows(), "resuming an interrupted import");
        let report = execute(db, definitions, prepared, |_| {}).await?;
        tracing::info!(import = %report.id, state = %report.state, "resumed import stopped");
        reports.push(report);
    }
    Ok(reports)
}

/// Runs [`resume_interrupted`] every `every` (first after one period) until the task is
/// dropped.
pub async fn resume_loop(
    db: Db,
    definitions: crate::definitions::LiveDefinitions,
    every: Duration,
) {
    // The first look comes one period after start: an import a crash just stopped is not
    // stale before then anyway.
    let every = every.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = resume_interrupted(&db, &definitions.current()).await {
            tracing::warn!(error = %e, "cannot resume interrupted imports");
        }
    }
}

// ---------------------------------------------------------------- HTTP

/// `POST /api/imports`: a CSV file as text in JSON (the body limit, 2 MiB by default —
/// `AKIS_REQUEST_BODY_LIMIT` — bounds the file).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// Shown in the import record.
    file_name: String,
    /// The file's text (UTF-8; `,`, `;` or tab separated; header on the first line).
    csv: String,
    /// Report what would happen; write nothing.
    #[serde(default)]
    dry_run: bool,
    /// true: import good rows even if some are bad; false: all-or-nothing; absent:
    /// all-or-nothing up to 10,000 rows, partial above.
    partial: Option<bool>,
    /// Continue the unfinished import of this same file.
    #[serde(default)]
    resume: bool,
}

pub fn router() -> utoipa_axum::router::OpenApiRouter<crate::app::AppState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(create_import, list_imports))
        .routes(utoipa_axum::routes!(get_import))
}

fn require_import(
    state: &crate::app::AppState,
    actor: &crate::policy::Actor,
    permission: crate::policy::Permission,
) -> Result<(), ApiError> {
    let defs = state.defs();
    use crate::policy::{Module, Permission};
    actor.require(&defs, Module::Customers, permission)?;
    actor.require(&defs, Module::Bulk, Permission::Bulk)
}

/// Imports leads from a CSV file through the shared intake. The file is checked first; the
/// import then runs in batches. The answer waits for the end (200, or 422 when bad rows
/// rejected an all-or-nothing import) unless that takes longer than two thirds of the
/// request timeout: then 202 with the running record, to follow at `GET /api/imports/{id}`
/// (the import goes on).
#[utoipa::path(post, path = "/api/imports", tag = "customers", request_body = ImportRequest,
    responses((status = 200, body = ImportReport, description = "done, failed (resumable) or a dry run; see `state`"),
              (status = 202, body = ImportReport, description = "still running"),
              (status = 422, body = ImportReport, description = "bad rows rejected an all-or-nothing import (nothing written), or the file cannot be imported"),
              (status = 404, description = "`resume` and no unfinished import of this file"),
              (status = 409, description = "`resume` and the import is still running")))]
async fn create_import(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
    actor: crate::policy::Actor,
    crate::http::Json(body): crate::http::Json<ImportRequest>,
) -> Result<axum::response::Response, ApiError> {
    let defs = state.defs();
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    require_import(&state, &actor, crate::policy::Permission::Edit)?;
    let options = ImportOptions {
        file_name: body.file_name,
        dry_run: body.dry_run,
        partial: body.partial,
        batch_size: None,
        resume: body.resume,
        resume_id: None,
        created_by: Some(actor.user_id),
        entered_by_owns: actor.scope(&defs) == crate::definitions::model::Scope::Own,
    };
    let prepared = prepare(&state.db, &defs, body.csv.as_bytes(), &options).await?;
    let id = prepared.report().id.clone();
    // The import runs on its own task: a client that goes away does not stop it midway.
    let db = state.db.clone();
    let definitions = defs;
    let task = tokio::spawn(async move { execute(&db, &definitions, prepared, |_| {}).await });
    let wait = Duration::from_secs((state.config.request_timeout_secs * 2 / 3).max(1));
    let report = match tokio::time::timeout(wait, task).await {
        Ok(Ok(result)) => result?,
        Ok(Err(e)) => return Err(anyhow::anyhow!("import task stopped: {e}").into()),
        Err(_) => {
            let report = get(&state.db, &id)
                .await?
                .ok_or_else(|| ApiError::from(anyhow::anyhow!("import record vanished")))?;
            return Ok((StatusCode::ACCEPTED, crate::http::Json(report)).into_response());
        }
    };
    if report.rejected && !report.dry_run {
        // The report is the answer: keep it rather than the generic error body.
        let mut response =
            (StatusCode::UNPROCESSABLE_ENTITY, crate::http::Json(report)).into_response();
        response
            .extensions_mut()
            .insert(crate::http::error::KeepBody);
        return Ok(response);
    }
    Ok((StatusCode::OK, crate::http::Json(report)).into_response())
}

/// The latest imports, newest first (at most 100): what ran, how far each got, and the
/// id of one whose answer never arrived (the client went away, the server restarted).
#[utoipa::path(get, path = "/api/imports", tag = "customers",
    responses((status = 200, body = Vec<ImportReport>)))]
async fn list_imports(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
    actor: crate::policy::Actor,
) -> Result<crate::http::Json<Vec<ImportReport>>, ApiError> {
    require_import(&state, &actor, crate::policy::Permission::View)?;
    Ok(crate::http::Json(list(&state.db, 100).await?))
}

/// An import record: its state, how far it got (`rows_done`), counts and bad rows.
#[utoipa::path(get, path = "/api/imports/{id}", tag = "customers",
    params(("id" = String, Path, description = "import id")),
    responses((status = 200, body = ImportReport), (status = 404)))]
async fn get_import(
    axum::extract::State(state): axum::extract::State<crate::app::AppState>,
    actor: crate::policy::Actor,
    crate::http::Path(id): crate::http::Path<String>,
) -> Result<crate::http::Json<ImportReport>, ApiError> {
    require_import(&state, &actor, crate::policy::Permission::View)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError::not_found("import"));
    }
    get(&state.db, &id)
        .await?
        .map(crate::http::Json)
        .ok_or_else(|| ApiError::not_found("import"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_sniffed_from_the_header() {
        assert_eq!(sniff_delimiter("Ad Soyad;Telefon;E-posta"), b';');
        assert_eq!(sniff_delimiter("name,phone,email"), b',');
        assert_eq!(sniff_delimiter("\"a;b\",phone"), b',');
        assert_eq!(sniff_delimiter("name\tphone\temail"), b'\t');
        assert_eq!(sniff_delimiter("name"), b',');
    }

    #[test]
    fn headers_map_in_turkish_and_english() {
        for (header, key) in [
            ("Ad Soyad", "name"),
            ("ADI SOYADI", "name"),
            ("Müşteri", "name"),
            ("Full Name", "name"),
            ("Soyadı", "surname"),
            ("Telefon", "phone"),
            ("GSM", "phone"),
            ("E-posta", "email"),
            ("E-Mail", "email"),
            ("Kaynak", "source"),
            ("utm_source", "utm_source"),
            ("Kampanya ID", "campaign_id"),
            ("Açıklama", "notes"),
        ] {
            assert_eq!(
                target_for(header, &[]).map(|t| t.key()).as_deref(),
                Some(key),
                "{header}"
            );
        }
        assert_eq!(target_for("Favori renk", &[]), None);
    }

    #[test]
    fn sources_become_ids() {
        assert_eq!(source_id("web_form"), "web_form");
        assert_eq!(source_id("Web Formu"), "web_formu");
        assert_eq!(source_id("Fuar İstanbul"), "fuar_istanbul");
    }

    #[test]
    fn batches_aim_at_the_lock_target() {
        assert_eq!(next_batch_size(100, Duration::from_millis(100)), 500);
        assert_eq!(next_batch_size(100, Duration::from_secs(10)), MIN_BATCH);
        assert_eq!(next_batch_size(100, Duration::ZERO), MAX_BATCH);
    }
}
