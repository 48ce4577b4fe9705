//! Routes: a record's files (list, upload), one file (metadata, content with ranges,
//! preview, delete).
//!
//! Whoever may see the record may list and download its files; uploading and deleting
//! need `edit` on it. Without access to the record, its files do not exist (404).

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStoreExt, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{FileId, NewFile, Owner, OwnerKind, StoredFile, internal, preview, sniff};
use crate::app::AppState;
use crate::audit::{AuditEntry, ClientInfo};
use crate::crm::customers;
use crate::http::{ApiError, Json, Path, Query};
use crate::policy::{Actor, Module, Permission};
use crate::types::ids::CustomerId;

pub fn router() -> OpenApiRouter<AppState> {
    // Uploads are bounded by the drive's own limit while they stream, not by the JSON limit.
    let uploads = OpenApiRouter::new()
        .routes(routes!(list_customer_files, upload_customer_file))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(file_info, delete_file))
        .routes(routes!(file_content))
        .routes(routes!(file_preview))
}

/// Checks `actor` may do `permission` on the record; returns the record's customer.
pub async fn owner_access(
    state: &AppState,
    actor: &Actor,
    owner: &Owner,
    permission: Permission,
) -> Result<Option<CustomerId>, ApiError> {
    match owner.kind {
        OwnerKind::Customer => {
            let Ok(customer) = owner.id.parse::<CustomerId>() else {
                return Err(ApiError::not_found("customer"));
            };
            let exists: Option<i64> = crate::read!(&state.db, pool => {
                sqlx::query_scalar("SELECT version FROM customers WHERE id = $1").bind(customer).fetch_optional(pool).await
            })?;
            if exists.is_none() {
                return Err(ApiError::not_found("customer"));
            }
            let owners = customers::owner_ids(&state.db, customer).await?;
            actor.require_access(
                &state.defs(),
                Module::Customers,
                permission,
                &owners,
                "customer",
            )?;
            Ok(Some(customer))
        }
        OwnerKind::WorkOrder => {
            crate::work_orders::http::file_access(state, actor, &owner.id, permission).await
        }
    }
}

/// A live file the actor may see (404 otherwise, whether it does not exist or is hidden).
async fn visible_file(
    state: &AppState,
    actor: &Actor,
    id: FileId,
    permission: Permission,
) -> Result<StoredFile, ApiError> {
    let file = super::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    let owner = Owner {
        kind: file.owner_kind,
        id: file.owner_id.clone(),
    };
    match owner_access(state, actor, &owner, permission).await {
        Ok(_) => Ok(file),
        Err(e) if e.status() == StatusCode::NOT_FOUND => Err(ApiError::not_found("file")),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FolderQuery {
    /// Only the files of this folder (`""`: the top level).
    pub folder: Option<String>,
}

/// A record's files and the folders they are in.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileList {
    pub folders: Vec<String>,
    pub files: Vec<StoredFile>,
}

/// The outcome of an upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    pub file: StoredFile,
    /// The record already had these exact bytes: nothing new was stored (200, not 201).
    pub duplicate: bool,
}

pub async fn list_files(
    state: &AppState,
    actor: &Actor,
    owner: Owner,
    folder: Option<String>,
) -> Result<FileList, ApiError> {
    owner_access(state, actor, &owner, Permission::View).await?;
    let folder = folder.map(|f| super::clean_folder(&f)).transpose()?;
    Ok(FileList {
        folders: super::folders(&state.db, &owner).await?,
        files: super::list(&state.db, &owner, folder.as_deref()).await?,
    })
}

/// A customer's files (live ones), by folder and name.
#[utoipa::path(get, path = "/api/customers/{id}/files", tag = "files", params(("id" = CustomerId, Path), FolderQuery),
    responses((status = 200, body = FileList), (status = 404)))]
async fn list_customer_files(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<CustomerId>,
    Query(query): Query<FolderQuery>,
) -> Result<Json<FileList>, ApiError> {
    let owner = Owner {
        kind: OwnerKind::Customer,
        id: id.to_string(),
    };
    Ok(Json(list_files(&state, &actor, owner, query.folder).await?))
}

/// Uploads one file to a customer (multipart: an optional `folder` field, then `file`).
/// The same bytes uploaded again to the same customer answer 200 with the existing file.
#[utoipa::path(post, path = "/api/customers/{id}/files", tag = "files", params(("id" = CustomerId, Path)),
    request_body(content_type = "multipart/form-data", description = "`folder` (text, optional) then `file`"),
    responses((status = 201, body = Uploaded), (status = 200, body = Uploaded), (status = 404), (status = 413), (status = 415), (status = 422)))]
async fn upload_customer_file(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<CustomerId>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let owner = Owner {
        kind: OwnerKind::Customer,
        id: id.to_string(),
    };
    upload(&state, &actor, &client, owner, multipart).await
}

fn bad_multipart(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        "invalid_upload",
        format!("the upload is not a readable multipart/form-data body: {e}"),
    )
}

/// Streams one multipart upload into the store and records it on `owner`.
pub async fn upload(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    owner: Owner,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let customer = owner_access(state, actor, &owner, Permission::Edit).await?;
    let mut multipart = multipart.map_err(bad_multipart)?;
    let store = &state.files;
    let mut folder = String::new();
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(store.max_upload_bytes)
            } else {
                bad_multipart(e)
            }
        })?;
        let Some(mut field) = field else {
            return Err(
                ApiError::unprocessable("missing_file", "the upload has no `file` part")
                    .with_field("file", "required"),
            );
        };
        match field.name() {
            Some("folder") => {
                let text = field.text().await.map_err(bad_multipart)?;
                folder = super::clean_folder(&text)?;
            }
            Some("file") => {
                let raw_name = field.file_name().unwrap_or_default().to_string();
                let name = super::clean_name(&raw_name, "name")?;
                let declared = field.content_type().map(str::to_string);
                let staging =
                    ObjectPath::from(format!("staging/{}", uuid::Uuid::now_v7().simple()));
                let streamed = stream_into(store, &staging, &mut field).await;
                let (size, sha256, head) = match streamed {
                    Ok(done) => done,
                    Err(e) => {
                        store.discard(&staging).await;
                        return Err(e);
                    }
                };
                if size == 0 {
                    store.discard(&staging).await;
                    return Err(ApiError::unprocessable(
                        "empty_file",
                        format!("`{name}` is empty"),
                    )
                    .with_field("file", "empty"));
                }
                let content_type = match sniff::content_type(&head, &name, declared.as_deref()) {
                    Ok(t) => t,
                    Err(e) => {
                        store.discard(&staging).await;
                        return Err(e);
                    }
                };
                let key = store.keep(&staging, &sha256).await?;
                return record(
                    state,
                    actor,
                    client,
                    owner,
                    customer,
                    &folder,
                    &name,
                    &content_type,
                    size,
                    &sha256,
                    key.as_ref(),
                )
                .await;
            }
            _ => {
                // Unknown parts are read past (browsers may add their own).
                while field.chunk().await.map_err(bad_multipart)?.is_some() {}
            }
        }
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::client(
        StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!("files are limited to {} MB", limit / (1024 * 1024)),
    )
}

/// Copies a part into a staging object; returns its size, SHA-256 (hex) and first bytes.
async fn stream_into(
    store: &super::FileStore,
    staging: &ObjectPath,
    field: &mut axum::extract::multipart::Field<'_>,
) -> Result<(u64, String, Vec<u8>), ApiError> {
    let upload = store
        .inner()
        .put_multipart(staging)
        .await
        .map_err(internal)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    let mut hasher = sha2::Sha256::new();
    let mut head = Vec::with_capacity(sniff::HEAD_BYTES);
    let mut size: u64 = 0;
    let result = async {
        while let Some(chunk) = field.chunk().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(store.max_upload_bytes)
            } else {
                bad_multipart(e)
            }
        })? {
            size += chunk.len() as u64;
            if size > store.max_upload_bytes {
                return Err(too_large(store.max_upload_bytes));
            }
            hasher.update(&chunk);
            if head.len() < sniff::HEAD_BYTES {
                let take = (sniff::HEAD_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            writer.wait_for_capacity(4).await.map_err(internal)?;
            writer.put(chunk);
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            writer.finish().await.map_err(internal)?;
            Ok((size, hex::encode(hasher.finalize()), head))
        }
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn record(
    state: &AppState,
    actor: &Actor,
    client: &ClientInfo,
    owner: Owner,
    customer: Option<CustomerId>,
    folder: &str,
    name: &str,
    content_type: &str,
    size: u64,
    sha256: &str,
    key: &str,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let defs = state.defs();
    let mut tx = state.db.begin().await?;
    let (id, created) = super::insert(
        &mut tx,
        NewFile {
            owner: owner.clone(),
            customer_id: customer,
            folder,
            name,
            content_type,
            size: size as i64,
            sha256,
            storage_key: key,
            uploaded_by: Some(actor.user_id),
        },
        &defs.version,
    )
    .await?;
    if created {
        crate::audit::record(
            &mut tx,
            AuditEntry::new("file.uploaded", Some(actor), client)
                .target("file", id)
                .details(serde_json::json!({"owner": owner.kind.as_str(), "owner_id": owner.id, "name": name, "size": size, "sha256": sha256})),
        )
        .await?;
        announce_order_file(&mut tx, &owner, customer, "file_added").await?;
    }
    tx.commit().await?;
    let file = super::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("an uploaded file vanished")))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Uploaded {
            file,
            duplicate: !created,
        }),
    ))
}

/// A file's metadata.
#[utoipa::path(get, path = "/api/files/{id}", tag = "files", params(("id" = FileId, Path)),
    responses((status = 200, body = StoredFile), (status = 404)))]
async fn file_info(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<FileId>,
) -> Result<Json<StoredFile>, ApiError> {
    Ok(Json(
        visible_file(&state, &actor, id, Permission::View).await?,
    ))
}

/// Deletes a file (softly: it leaves the record's list and timeline says so; the audit log
/// keeps who and when).
#[utoipa::path(delete, path = "/api/files/{id}", tag = "files", params(("id" = FileId, Path)),
    responses((status = 204), (status = 404)))]
async fn delete_file(
    State(state): State<AppState>,
    actor: Actor,
    client: ClientInfo,
    Path(id): Path<FileId>,
) -> Result<StatusCode, ApiError> {
    let file = visible_file(&state, &actor, id, Permission::Edit).await?;
    let defs = state.defs();
    let mut tx = state.db.begin().await?;
    if !super::soft_delete(&mut tx, &file, actor.user_id, &defs.version).await? {
        return Err(ApiError::not_found("file"));
    }
    crate::audit::record(
        &mut tx,
        AuditEntry::new("file.deleted", Some(&actor), &client)
            .target("file", file.id)
            .details(serde_json::json!({"owner": file.owner_kind.as_str(), "owner_id": file.owner_id, "name": file.name, "sha256": file.sha256})),
    )
    .await?;
    let owner = Owner {
        kind: file.owner_kind,
        id: file.owner_id.clone(),
    };
    announce_order_file(&mut tx, &owner, file.customer_id, "file_deleted").await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A work order's files are part of the order's screen: tell its viewers (in the same
/// transaction as the change).
async fn announce_order_file(
    tx: &mut crate::storage::Tx,
    owner: &Owner,
    customer: Option<CustomerId>,
    change: &str,
) -> Result<(), ApiError> {
    if owner.kind != OwnerKind::WorkOrder {
        return Ok(());
    }
    let Ok(order) = owner.id.parse::<crate::work_orders::WorkOrderId>() else {
        return Ok(());
    };
    crate::work_orders::announce(tx, order, customer, change).await?;
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentQuery {
    /// Show in the browser (images, PDF, audio, video, text) instead of downloading.
    #[serde(default)]
    inline: bool,
}

fn inline_allowed(content_type: &str) -> bool {
    content_type.starts_with("image/")
        || content_type.starts_with("audio/")
        || content_type.starts_with("video/")
        || matches!(content_type, "application/pdf" | "text/plain")
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266), safe for any name.
pub fn disposition(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// A file's bytes, with its type and name; `Range: bytes=…` gives 206 with that part.
#[utoipa::path(get, path = "/api/files/{id}/content", tag = "files", params(("id" = FileId, Path), ContentQuery),
    responses((status = 200, description = "the bytes"), (status = 206, description = "the range asked for"),
        (status = 304), (status = 404), (status = 416)))]
async fn file_content(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<FileId>,
    Query(query): Query<ContentQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = visible_file(&state, &actor, id, Permission::View).await?;
    let etag = format!("\"{}\"", file.sha256);
    let size = file.size as u64;
    let mut response_headers = HeaderMap::new();
    response_headers.insert(header::ETAG, header_value(&etag));
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response_headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, response_headers).into_response());
    }
    let kind = if query.inline && inline_allowed(&file.content_type) {
        "inline"
    } else {
        "attachment"
    };
    response_headers.insert(header::CONTENT_TYPE, header_value(&file.content_type));
    response_headers.insert(
        header::CONTENT_DISPOSITION,
        header_value(&disposition(kind, &file.name)),
    );
    // A Range applies unless If-Range names another version.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(text) if if_range_ok => {
            match http_range_header::parse_range_header(text).and_then(|r| r.validate(size)) {
                Ok(ranges) if ranges.len() == 1 => Some(ranges[0].clone()),
                // Several ranges: the whole file (allowed by RFC 9110, simpler for clients).
                Ok(_) => None,
                Err(_) => {
                    let mut error = ApiError::client(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "range_not_satisfiable",
                        format!("the file has {size} bytes; the range `{text}` is outside it"),
                    )
                    .into_response();
                    error.headers_mut().insert(
                        header::CONTENT_RANGE,
                        header_value(&format!("bytes */{size}")),
                    );
                    return Ok(error);
                }
            }
        }
        _ => None,
    };
    let path = ObjectPath::from(file.storage_key.as_str());
    let options = GetOptions {
        range: range
            .clone()
            .map(|r| GetRange::Bounded(*r.start()..r.end() + 1)),
        ..Default::default()
    };
    let result = state
        .files
        .inner()
        .get_opts(&path, options)
        .await
        .map_err(internal)?;
    let body = Body::from_stream(result.into_stream());
    match range {
        Some(r) => {
            response_headers.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{size}", r.start(), r.end())),
            );
            response_headers.insert(
                header::CONTENT_LENGTH,
                header_value(&(r.end() - r.start() + 1).to_string()),
            );
            Ok((StatusCode::PARTIAL_CONTENT, response_headers, body).into_response())
        }
        None => {
            response_headers.insert(header::CONTENT_LENGTH, header_value(&size.to_string()));
            Ok((StatusCode::OK, response_headers, body).into_response())
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// Longest edge in pixels (rounded up to 128, 256, 512 or 1024; default 256).
    size: Option<u32>,
}

/// A PNG thumbnail of an image or of a PDF's first page.
#[utoipa::path(get, path = "/api/files/{id}/preview", tag = "files", params(("id" = FileId, Path), PreviewQuery),
    responses((status = 200, content_type = "image/png", description = "the preview"), (status = 404), (status = 501)))]
async fn file_preview(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<FileId>,
    Query(query): Query<PreviewQuery>,
) -> Result<Response, ApiError> {
    let file = visible_file(&state, &actor, id, Permission::View).await?;
    let size = preview::bucket(query.size);
    let png = preview::preview(&state.files, &file, size).await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=86400"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        png,
    )
        .into_response())
}
