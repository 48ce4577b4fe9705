//! Drive: files linked to records (customers, work orders), in folders per record.
//!
//! - Bytes live in an object store ([`FileStore`]: local disk under `AKIS_DATA_DIR/files`
//!   by default, or any `AKIS_STORAGE_URL` object_store understands: `s3://…`,
//!   `file:///…`, `memory:///`). They are stored once per content (`blobs/ab/abcdef…`, the
//!   SHA-256), so the same bytes on two records, or a merged customer's files, cost nothing.
//! - Metadata lives in the `files` table. Uploads are streamed: hashed, counted against the
//!   size limit and written to a staging object as they arrive; only a complete, allowed
//!   upload is kept and recorded.
//! - Who may see a file is who may see its record (no access to the customer: 404 for its
//!   files too). Deletes are soft (`deleted_at`), audited, and the bytes stay.
//! - The content type is the one the bytes show ([`sniff`]), checked against an allow-list
//!   and against what the file's name and the client claim.

pub mod http;
pub mod preview;
pub mod sniff;

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use utoipa::ToSchema;

use crate::exec;
use crate::http::ApiError;
use crate::storage::{Db, Tx};
use crate::types::Timestamp;
use crate::types::ids::{CustomerId, UserId};

crate::id_type!(
    /// One stored file (a record's link to some bytes).
    FileId
);

/// The kinds of record a file can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    Customer,
    WorkOrder,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::Customer => "customer",
            OwnerKind::WorkOrder => "work_order",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "customer" => Some(OwnerKind::Customer),
            "work_order" => Some(OwnerKind::WorkOrder),
            _ => None,
        }
    }
}

/// The record a file is linked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: OwnerKind,
    /// The record's id as text.
    pub id: String,
}

/// Where file bytes are kept.
#[derive(Clone, Debug)]
pub struct FileStore {
    store: Arc<dyn ObjectStore>,
    /// Uploads larger than this are refused (bytes).
    pub max_upload_bytes: u64,
    /// Scratch space for previews that need a file on disk.
    pub scratch: std::path::PathBuf,
}

impl FileStore {
    /// The store a configuration names: `storage_url` when set, else `data_dir/files`.
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Self> {
        let max_upload_bytes = config.max_upload_mb.max(1) * 1024 * 1024;
        let scratch = config.data_dir.join("tmp");
        let store: Arc<dyn ObjectStore> = match config.storage_url.as_deref().map(str::trim) {
            None | Some("") => {
                let root = config.data_dir.join("files");
                std::fs::create_dir_all(&root).map_err(|e| {
                    anyhow::anyhow!("cannot create the file store {}: {e}", root.display())
                })?;
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(
                    &root,
                )?)
            }
            Some(text) => {
                let url = url::Url::parse(text)
                    .map_err(|e| anyhow::anyhow!("AKIS_STORAGE_URL is not a URL: {e}"))?;
                // Credentials and endpoints come from the usual AWS_* variables
                // (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT, …).
                let options = std::env::vars()
                    .filter(|(k, _)| k.starts_with("AWS_"))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v));
                let (store, prefix) = object_store::parse_url_opts(&url, options)
                    .map_err(|e| anyhow::anyhow!("AKIS_STORAGE_URL {}: {e}", redact(&url)))?;
                if prefix.as_ref().is_empty() {
                    Arc::from(store)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
                }
            }
        };
        Ok(Self {
            store,
            max_upload_bytes,
            scratch,
        })
    }

    /// A store over any object_store backend (tests use the in-memory one).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        max_upload_bytes: u64,
        scratch: std::path::PathBuf,
    ) -> Self {
        Self {
            store,
            max_upload_bytes,
            scratch,
        }
    }

    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Where the bytes with this SHA-256 live.
    pub fn blob_path(sha256: &str) -> ObjectPath {
        ObjectPath::from(format!("blobs/{}/{sha256}", &sha256[..2.min(sha256.len())]))
    }

    /// Moves a finished staging object to its content address (or drops it when those
    /// bytes are already stored).
    pub async fn keep(&self, staging: &ObjectPath, sha256: &str) -> Result<ObjectPath, ApiError> {
        let blob = Self::blob_path(sha256);
        match self.store.head(&blob).await {
            Ok(_) => {
                self.discard(staging).await;
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.store.rename(staging, &blob).await.map_err(internal)?;
            }
            Err(e) => return Err(internal(e)),
        }
        Ok(blob)
    }

    /// Removes a staging object, logging (not failing) when it cannot.
    pub async fn discard(&self, path: &ObjectPath) {
        if let Err(e) = self.store.delete(path).await
            && !matches!(e, object_store::Error::NotFound { .. })
        {
            tracing::warn!(path = %path, error = %e, "could not remove a staging upload");
        }
    }
}

fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    shown.to_string()
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("file store: {e}"))
}

/// One file as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoredFile {
    pub id: FileId,
    pub owner_kind: OwnerKind,
    pub owner_id: String,
    /// The customer whose timeline records it (the record's customer).
    pub customer_id: Option<CustomerId>,
    /// `""` for the record's top level, else `Sözleşmeler/2026`.
    pub folder: String,
    pub name: String,
    /// As sniffed from the bytes.
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub uploaded_by: Option<UserId>,
    pub uploaded_by_name: Option<String>,
    pub created_at: Timestamp,
    /// A thumbnail or first-page preview can be asked for.
    pub previewable: bool,
    #[serde(skip)]
    pub storage_key: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct FileRow {
    id: FileId,
    owner_kind: String,
    owner_id: String,
    customer_id: Option<CustomerId>,
    folder: String,
    name: String,
    content_type: String,
    size: i64,
    sha256: String,
    uploaded_by: Option<UserId>,
    uploaded_by_name: Option<String>,
    created_at: Timestamp,
    storage_key: String,
}

impl FileRow {
    fn into_file(self) -> StoredFile {
        let previewable = preview::can_preview(&self.content_type);
        StoredFile {
            id: self.id,
            owner_kind: OwnerKind::parse(&self.owner_kind).unwrap_or(OwnerKind::Customer),
            owner_id: self.owner_id,
            customer_id: self.customer_id,
            folder: self.folder,
            name: self.name,
            content_type: self.content_type,
            size: self.size,
            sha256: self.sha256,
            uploaded_by: self.uploaded_by,
            uploaded_by_name: self.uploaded_by_name,
            created_at: self.created_at,
            previewable,
            storage_key: self.storage_key,
        }
    }
}

const SELECT: &str = "SELECT f.id, f.owner_kind, f.owner_id, f.customer_id, f.folder, f.name, f.content_type, \
    f.size, f.sha256, f.uploaded_by, u.name AS uploaded_by_name, f.created_at, f.storage_key \
    FROM files f LEFT JOIN users u ON u.id = f.uploaded_by";

/// A live (not deleted) file.
pub async fn get(db: &Db, id: FileId) -> Result<Option<StoredFile>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE f.id = $1 AND f.deleted_at IS NULL");
    let row: Option<FileRow> = crate::read!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
    })?;
    Ok(row.map(FileRow::into_file))
}

/// A record's live files, by folder and name; `folder` limits to one folder.
pub async fn list(
    db: &Db,
    owner: &Owner,
    folder: Option<&str>,
) -> Result<Vec<StoredFile>, sqlx::Error> {
    let owner_id = &owner.id;
    let rows: Vec<FileRow> = match folder {
        Some(folder) => {
            let sql = format!(
                "{SELECT} WHERE f.owner_kind = $1 AND f.owner_id = $2 AND f.folder = $3 AND f.deleted_at IS NULL ORDER BY f.folder, f.name, f.id"
            );
            crate::read!(db, pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(owner.kind.as_str()).bind(owner_id).bind(folder).fetch_all(pool).await
            })?
        }
        None => {
            let sql = format!(
                "{SELECT} WHERE f.owner_kind = $1 AND f.owner_id = $2 AND f.deleted_at IS NULL ORDER BY f.folder, f.name, f.id"
            );
            crate::read!(db, pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(owner.kind.as_str()).bind(owner_id).fetch_all(pool).await
            })?
        }
    };
    Ok(rows.into_iter().map(FileRow::into_file).collect())
}

/// The folders a record's live files are in (`""` included when it has top-level files).
pub async fn folders(db: &Db, owner: &Owner) -> Result<Vec<String>, sqlx::Error> {
    let owner_id = &owner.id;
    crate::read!(db, pool => {
        sqlx::query_scalar("SELECT DISTINCT folder FROM files WHERE owner_kind = $1 AND owner_id = $2 AND deleted_at IS NULL ORDER BY folder")
            .bind(owner.kind.as_str()).bind(owner_id).fetch_all(pool).await
    })
}

/// What a finished upload records.
pub struct NewFile<'a> {
    pub owner: Owner,
    pub customer_id: Option<CustomerId>,
    pub folder: &'a str,
    pub name: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    pub sha256: &'a str,
    pub storage_key: &'a str,
    pub uploaded_by: Option<UserId>,
}

/// Records an upload, or finds the live file with the same bytes on the same record (a
/// repeated upload: `Ok((existing, false))`).
pub async fn insert(
    tx: &mut Tx,
    file: NewFile<'_>,
    definitions_version: &str,
) -> Result<(FileId, bool), sqlx::Error> {
    let owner_id = &file.owner.id;
    let existing: Option<FileId> = exec!(&mut *tx, conn => sqlx::query_scalar(
        "SELECT id FROM files WHERE owner_kind = $1 AND owner_id = $2 AND sha256 = $3 AND deleted_at IS NULL")
        .bind(file.owner.kind.as_str()).bind(owner_id).bind(file.sha256).fetch_optional(conn).await)?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    let id = FileId::new();
    let now = Timestamp::now();
    exec!(&mut *tx, conn => sqlx::query(
        "INSERT INTO files (id, owner_kind, owner_id, customer_id, folder, name, content_type, size, sha256, storage_key, uploaded_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(id).bind(file.owner.kind.as_str()).bind(owner_id).bind(file.customer_id).bind(file.folder)
        .bind(file.name).bind(file.content_type).bind(file.size).bind(file.sha256).bind(file.storage_key)
        .bind(file.uploaded_by).bind(now)
        .execute(conn).await.map(|r| r.rows_affected()))?;
    if let Some(customer) = file.customer_id {
        crate::crm::timeline::append(
            tx,
            crate::crm::timeline::NewEvent {
                customer_id: customer,
                card_id: None,
                kind: crate::crm::timeline::kinds::FILE_UPLOADED,
                actor: file.uploaded_by,
                definitions_version,
                data: serde_json::json!({
                    "file_id": id,
                    "name": file.name,
                    "folder": file.folder,
                    "content_type": file.content_type,
                    "size": file.size,
                    "owner_kind": file.owner.kind.as_str(),
                    "owner_id": owner_id,
                }),
            },
        )
        .await?;
    }
    Ok((id, true))
}

/// Soft-deletes a live file; false when it was already gone.
pub async fn soft_delete(
    tx: &mut Tx,
    file: &StoredFile,
    by: UserId,
    definitions_version: &str,
) -> Result<bool, sqlx::Error> {
    let now = Timestamp::now();
    let changed = exec!(&mut *tx, conn => sqlx::query(
        "UPDATE files SET deleted_at = $1, deleted_by = $2 WHERE id = $3 AND deleted_at IS NULL")
        .bind(now).bind(by).bind(file.id).execute(conn).await.map(|r| r.rows_affected()))?;
    if changed == 0 {
        return Ok(false);
    }
    if let Some(customer) = file.customer_id {
        crate::crm::timeline::append(
            tx,
            crate::crm::timeline::NewEvent {
                customer_id: customer,
                card_id: None,
                kind: crate::crm::timeline::kinds::FILE_DELETED,
                actor: Some(by),
                definitions_version,
                data: serde_json::json!({"file_id": file.id, "name": file.name, "folder": file.folder}),
            },
        )
        .await?;
    }
    Ok(true)
}

/// A customer merge: the other customer's files move to the survivor. A file whose bytes
/// the survivor already has is retired (deleted, pointing at the kept one's record) rather
/// than listed twice. Returns how many files moved.
pub async fn merge_customer(
    tx: &mut Tx,
    survivor: CustomerId,
    other: CustomerId,
) -> Result<u64, sqlx::Error> {
    let now = Timestamp::now();
    let (survivor_id, other_id) = (survivor.to_string(), other.to_string());
    exec!(&mut *tx, conn => sqlx::query(
        "UPDATE files SET deleted_at = $1 WHERE owner_kind = 'customer' AND owner_id = $2 AND deleted_at IS NULL
           AND sha256 IN (SELECT sha256 FROM files WHERE owner_kind = 'customer' AND owner_id = $3 AND deleted_at IS NULL)")
        .bind(now).bind(&other_id).bind(&survivor_id).execute(conn).await.map(|r| r.rows_affected()))?;
    let moved = exec!(&mut *tx, conn => sqlx::query(
        "UPDATE files SET owner_id = $1 WHERE owner_kind = 'customer' AND owner_id = $2")
        .bind(&survivor_id).bind(&other_id).execute(conn).await.map(|r| r.rows_affected()))?;
    // Files of the other customer's work orders stay on those orders; their timeline
    // entries follow the customer.
    exec!(&mut *tx, conn => sqlx::query("UPDATE files SET customer_id = $1 WHERE customer_id = $2")
        .bind(survivor).bind(other).execute(conn).await.map(|r| r.rows_affected()))?;
    Ok(moved)
}

/// A file or folder name as given, checked: no path separators, no `.`/`..`, no control
/// characters, not blank, at most 255 bytes. Surrounding spaces are trimmed and the text
/// is NFC-normalised (macOS sends decomposed Turkish letters).
pub fn clean_name(raw: &str, what: &str) -> Result<String, ApiError> {
    use unicode_normalization::UnicodeNormalization;
    let name: String = raw.trim().nfc().collect();
    let refuse = |why: &str| {
        ApiError::unprocessable(
            "invalid_file_name",
            format!("the {what} `{}` {why}", raw.escape_default()),
        )
        .with_field(what, why.to_string())
    };
    if name.is_empty() {
        return Err(refuse("is empty"));
    }
    if name == "." || name == ".." {
        return Err(refuse("is not a name"));
    }
    if name.contains(['/', '\\']) {
        return Err(refuse("must not contain a path (`/` or `\\`)"));
    }
    if name.chars().any(|c| c.is_control() || c == '\u{feff}') {
        return Err(refuse("contains control characters"));
    }
    if name.len() > 255 {
        return Err(refuse("is longer than 255 bytes"));
    }
    Ok(name)
}

/// A folder path (`Sözleşmeler/2026`): each segment a clean name, at most 8 deep; `""` is
/// the top level.
pub fn clean_folder(raw: &str) -> Result<String, ApiError> {
    let trimmed = raw.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let segments: Vec<String> = trimmed
        .split('/')
        .map(|s| clean_name(s, "folder"))
        .collect::<Result<_, _>>()?;
    if segments.len() > 8 {
        return Err(
            ApiError::unprocessable("invalid_folder", "folders nest at most 8 deep")
                .with_field("folder", "too deep"),
        );
    }
    Ok(segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_paths_or_control_characters_are_refused() {
        for bad in [
            "../etc/passwd",
            "a/b.pdf",
            "..\\boot.ini",
            "..",
            ".",
            "  ",
            "a\u{0}b",
            "x\ny",
            "\u{7f}",
        ] {
            assert!(clean_name(bad, "name").is_err(), "{bad:?}");
        }
        assert_eq!(
            clean_name("  Sözleşme 2026.pdf ", "name").unwrap(),
            "Sözleşme 2026.pdf"
        );
        // Decomposed "ş" (s + combining cedilla) becomes one character.
        assert_eq!(clean_name("s\u{327}.txt", "name").unwrap(), "ş.txt");
        assert!(clean_name(&"a".repeat(256), "name").is_err());
    }

    #[test]
    fn folders_are_clean_segments() {
        assert_eq!(
            clean_folder("/Sözleşmeler/2026/").unwrap(),
            "Sözleşmeler/2026"
        );
        assert_eq!(clean_folder("").unwrap(), "");
        assert!(clean_folder("a/../b").is_err());
        assert!(clean_folder("a//b").is_err());
        assert!(clean_folder("1/2/3/4/5/6/7/8/9").is_err());
    }
}
