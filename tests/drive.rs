//! Drive: files on customers — upload, list, download with ranges, previews, permissions,
//! refusals, duplicates, soft delete, merge, and the object-store configurations.

use akis_engine::storage::{Backend, Db};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, TestSession};

async fn lead(admin: &TestSession, name: &str, phone: &str) -> String {
    let r = admin
        .post(
            "/api/leads",
            json!({"name": name, "phone": phone, "source": "web_form"}),
        )
        .await;
    assert!(r.status().is_success(), "lead: {}", r.status());
    r.json::<Value>().await.unwrap()["customer_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A 64×32 PNG with a gradient (real bytes the image decoder accepts).
fn png() -> Vec<u8> {
    let mut img = image::RgbImage::new(64, 32);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = image::Rgb([(x * 4) as u8, (y * 8) as u8, 128]);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A one-page PDF with a correct cross-reference table.
fn pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R >>".to_string(),
        {
            let stream = "0 0 1 rg 20 20 160 60 re f";
            format!(
                "<< /Length {} >>\nstream\n{stream}\nendstream",
                stream.len()
            )
        },
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

async fn upload(
    session: &TestSession,
    customer: &str,
    folder: Option<&str>,
    name: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let mut form = Form::new();
    if let Some(folder) = folder {
        form = form.text("folder", folder.to_string());
    }
    form = form.part(
        "file",
        Part::bytes(bytes)
            .file_name(name.to_string())
            .mime_str(mime)
            .unwrap(),
    );
    session
        .client
        .post(session.url(&format!("/api/customers/{customer}/files")))
        .header("x-csrf-token", &session.csrf)
        .multipart(form)
        .send()
        .await
        .expect("upload sent")
}

async fn error_code(r: reqwest::Response) -> (StatusCode, String, String) {
    let status = r.status();
    let body: Value = r.json().await.expect("errors are JSON");
    (
        status,
        body["code"].as_str().unwrap_or_default().to_string(),
        body["message"].as_str().unwrap_or_default().to_string(),
    )
}

async fn timeline_kinds(session: &TestSession, customer: &str) -> Vec<String> {
    let t: Value = session
        .get(&format!("/api/customers/{customer}/timeline"))
        .await
        .json()
        .await
        .unwrap();
    t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn count(db: &Db, sql: &'static str, bind: &str) -> i64 {
    akis_engine::read!(db, pool => {
        sqlx::query_scalar::<_, i64>(sql).bind(bind).fetch_one(pool).await
    })
    .expect("count")
}

both_backends! {
    async fn a_file_is_uploaded_listed_downloaded_by_ranges_previewed_and_deleted(app) {
        let admin = app.login_as("admin").await;
        let customer = lead(&admin, "Deniz Aksoy", "0532 500 00 01").await;
        let bytes = png();
        let r = upload(&admin, &customer, Some("Fotoğraflar/Salon"), "Salon ölçüsü.png", "image/png", bytes.clone()).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        let up: Value = r.json().await.unwrap();
        assert_eq!(up["duplicate"], false);
        let file = &up["file"];
        let id = file["id"].as_str().unwrap().to_string();
        assert_eq!(file["content_type"], "image/png");
        assert_eq!(file["size"], bytes.len());
        assert_eq!(file["folder"], "Fotoğraflar/Salon");
        assert_eq!(file["previewable"], true);
        use sha2::Digest;
        assert_eq!(file["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));

        let list: Value = admin.get(&format!("/api/customers/{customer}/files")).await.json().await.unwrap();
        assert_eq!(list["folders"], json!(["Fotoğraflar/Salon"]));
        assert_eq!(list["files"].as_array().unwrap().len(), 1);
        let other_folder: Value = admin.get(&format!("/api/customers/{customer}/files?folder=Belgeler")).await.json().await.unwrap();
        assert!(other_folder["files"].as_array().unwrap().is_empty());

        // The whole file, with its type and a name any browser can save.
        let r = admin.get(&format!("/api/files/{id}/content")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(r.headers()["accept-ranges"], "bytes");
        let disposition = r.headers()["content-disposition"].to_str().unwrap().to_string();
        assert!(disposition.starts_with("attachment;"), "{disposition}");
        assert!(disposition.contains("filename*=UTF-8''Salon%20%C3%B6l%C3%A7%C3%BCs%C3%BC%2Epng"), "{disposition}");
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
        let r = admin.client.get(admin.url(&format!("/api/files/{id}/content"))).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = admin.get(&format!("/api/files/{id}/content?inline=true")).await;
        assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("inline;"));

        // Ranges: a middle slice, a suffix, one past the end.
        let ranged = |range: &'static str| {
            let request = admin.client.get(admin.url(&format!("/api/files/{id}/content"))).header("range", range);
            async move { request.send().await.unwrap() }
        };
        let r = ranged("bytes=2-9").await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.headers()["content-range"], format!("bytes 2-9/{}", bytes.len()));
        assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[2..10]);
        let r = ranged("bytes=-4").await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[bytes.len() - 4..]);
        let r = ranged("bytes=999999-").await;
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()["content-range"], format!("bytes */{}", bytes.len()));
        assert_eq!(error_code(r).await.1, "range_not_satisfiable");

        // The thumbnail is a PNG scaled to fit.
        let r = admin.get(&format!("/api/files/{id}/preview?size=32")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "image/png");
        let thumb = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (64, 32), "a 64×32 image already fits 128");
        let r = admin.get(&format!("/api/files/{id}/preview?size=1")).await;
        assert_eq!(r.status(), StatusCode::OK, "cached or not, the same answer");

        // The same bytes again: the existing file, nothing new.
        let r = upload(&admin, &customer, None, "kopya.png", "image/png", bytes.clone()).await;
        assert_eq!(r.status(), StatusCode::OK);
        let again: Value = r.json().await.unwrap();
        assert_eq!(again["duplicate"], true);
        assert_eq!(again["file"]["id"], id.as_str());
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM files WHERE owner_id = $1", &customer).await, 1);

        // Delete: soft, audited, on the timeline; the file is gone from the API.
        let r = admin.delete(&format!("/api/files/{id}")).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(admin.get(&format!("/api/files/{id}/content")).await.status(), StatusCode::NOT_FOUND);
        assert_eq!(admin.delete(&format!("/api/files/{id}")).await.status(), StatusCode::NOT_FOUND);
        let list: Value = admin.get(&format!("/api/customers/{customer}/files")).await.json().await.unwrap();
        assert!(list["files"].as_array().unwrap().is_empty());
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM files WHERE id = $1 AND deleted_at IS NOT NULL", &id).await, 1);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM audit_log WHERE action = 'file.deleted' AND target_id = $1", &id).await, 1);
        let kinds = timeline_kinds(&admin, &customer).await;
        assert!(kinds.contains(&"file_uploaded".to_string()), "{kinds:?}");
        assert!(kinds.contains(&"file_deleted".to_string()), "{kinds:?}");
        // Uploaded again after the delete: a new live file.
        let r = upload(&admin, &customer, None, "yeniden.png", "image/png", bytes).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
}

both_backends! {
    async fn a_rep_without_access_to_the_customer_gets_404_for_its_files(app) {
        let admin = app.login_as("admin").await;
        let owner = app.login_as("sales").await;
        let stranger = app.login_as("sales").await;
        let customer = lead(&admin, "Gizem Tan", "0532 500 00 02").await;
        let r = admin.post("/api/customers/bulk-assign", json!({"customer_ids": [customer], "add": [owner.user_id], "replace": true})).await;
        assert!(r.status().is_success());
        let r = upload(&owner, &customer, None, "sozlesme.pdf", "application/pdf", pdf()).await;
        assert_eq!(r.status(), StatusCode::CREATED, "the owning rep uploads");
        let id = r.json::<Value>().await.unwrap()["file"]["id"].as_str().unwrap().to_string();
        assert_eq!(owner.get(&format!("/api/files/{id}/content")).await.status(), StatusCode::OK);

        for path in [
            format!("/api/customers/{customer}/files"),
            format!("/api/files/{id}"),
            format!("/api/files/{id}/content"),
            format!("/api/files/{id}/preview"),
        ] {
            let (status, code, _) = error_code(stranger.get(&path).await).await;
            assert_eq!((status, code.as_str()), (StatusCode::NOT_FOUND, "not_found"), "{path}");
        }
        let r = upload(&stranger, &customer, None, "x.pdf", "application/pdf", pdf()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(stranger.delete(&format!("/api/files/{id}")).await.status(), StatusCode::NOT_FOUND);
        // Anonymous: 401 before anything else.
        let anonymous = reqwest::Client::new();
        assert_eq!(anonymous.get(app.url(&format!("/api/files/{id}/content"))).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM files WHERE id = $1 AND deleted_at IS NULL", &id).await, 1);
    }
}

fn staging_left(app: &TestApp) -> usize {
    let dir = app.config.data_dir.join("files/staging");
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_with_clear_errors_and_leave_nothing_behind() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) =
            crate::helpers::spawn_app_with_config(backend, |c| c.max_upload_mb = 1).await
        else {
            continue;
        };
        let admin = app.login_as("admin").await;
        let customer = lead(&admin, "Kaan Er", "0532 500 00 03").await;

        for name in [
            "../../etc/passwd.png",
            "a/b.png",
            "..\\x.png",
            "bad\tname.png",
            "..",
        ] {
            let (status, code, message) =
                error_code(upload(&admin, &customer, None, name, "image/png", png()).await).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_file_name"),
                "{name:?}: {message}"
            );
        }
        let (status, code, _) = error_code(
            upload(
                &admin,
                &customer,
                Some("../yukari"),
                "ok.png",
                "image/png",
                png(),
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_file_name")
        );

        // The bytes say PNG, the name says PDF.
        let (status, code, message) = error_code(
            upload(
                &admin,
                &customer,
                None,
                "teklif.pdf",
                "application/pdf",
                png(),
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type_mismatch")
        );
        assert!(message.contains("image/png"), "{message}");
        // An executable, however it is named.
        let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0".repeat(10);
        let (status, code, _) = error_code(
            upload(
                &admin,
                &customer,
                None,
                "fatura.png",
                "image/png",
                elf.clone(),
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_file_type")
        );
        let (status, _, _) = error_code(
            upload(
                &admin,
                &customer,
                None,
                "setup",
                "application/octet-stream",
                elf,
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // Over the limit (1 MB here), streamed: refused once the limit passes.
        let mut big = png();
        big.resize(1024 * 1024 + 10, 0);
        let (status, code, message) =
            error_code(upload(&admin, &customer, None, "buyuk.png", "image/png", big).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "file_too_large")
        );
        assert!(message.contains("1 MB"), "{message}");
        // Empty, and no file part at all.
        let (status, code, _) =
            error_code(upload(&admin, &customer, None, "bos.txt", "text/plain", Vec::new()).await)
                .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "empty_file")
        );
        let r = admin
            .client
            .post(admin.url(&format!("/api/customers/{customer}/files")))
            .header("x-csrf-token", &admin.csrf)
            .multipart(Form::new().text("folder", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(r).await.1, "missing_file");
        let r = admin
            .client
            .post(admin.url(&format!("/api/customers/{customer}/files")))
            .header("x-csrf-token", &admin.csrf)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(r).await.0, StatusCode::BAD_REQUEST);

        // A CSV is text; the upload within the limit is kept.
        let csv = "ad;telefon\nAyşe Yılmaz;0532 111 22 33\n"
            .as_bytes()
            .to_vec();
        let r = upload(
            &admin,
            &customer,
            Some("Belgeler"),
            "liste.csv",
            "text/csv",
            csv,
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(
            r.json::<Value>().await.unwrap()["file"]["content_type"],
            "text/csv"
        );
        assert_eq!(
            count(
                &app.db,
                "SELECT COUNT(*) FROM files WHERE owner_id = $1",
                &customer
            )
            .await,
            1,
            "nothing refused was recorded"
        );
        assert_eq!(
            staging_left(&app),
            0,
            "refused uploads leave no staged bytes"
        );
    }
}

both_backends! {
    async fn a_pdf_gets_a_first_page_preview(app) {
        if std::process::Command::new("pdftoppm").arg("-v").output().is_err() {
            assert!(std::env::var("CI").is_err(), "CI installs poppler-utils (pdftoppm)");
            eprintln!("!!! pdftoppm missing: PDF preview test skipped (apt install poppler-utils)");
            return;
        }
        let admin = app.login_as("admin").await;
        let customer = lead(&admin, "Lale Su", "0532 500 00 04").await;
        let r = upload(&admin, &customer, None, "teklif.pdf", "application/pdf", pdf()).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.unwrap()["file"]["id"].as_str().unwrap().to_string();
        let r = admin.get(&format!("/api/files/{id}/preview?size=256")).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let page = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(page.width().max(page.height()), 256);
        // The page is a blue box on white: the middle pixel is blue.
        let middle = page.to_rgb8().get_pixel(page.width() / 2, page.height() / 2).0;
        assert!(middle[2] > 200 && middle[0] < 60, "{middle:?}");
        // A CSV has none.
        let r = upload(&admin, &customer, None, "a.txt", "text/plain", b"merhaba".to_vec()).await;
        let txt = r.json::<Value>().await.unwrap()["file"]["id"].as_str().unwrap().to_string();
        assert_eq!(error_code(admin.get(&format!("/api/files/{txt}/preview")).await).await.1, "no_preview");
    }
}

both_backends! {
    async fn a_customer_merge_moves_the_files_once(app) {
        let admin = app.login_as("admin").await;
        let survivor = lead(&admin, "Mert Öz", "0532 500 00 05").await;
        let other = lead(&admin, "Mert Oz", "0532 500 00 06").await;
        let shared = png();
        assert_eq!(upload(&admin, &survivor, None, "kimlik.png", "image/png", shared.clone()).await.status(), StatusCode::CREATED);
        assert_eq!(upload(&admin, &other, None, "kimlik-kopya.png", "image/png", shared).await.status(), StatusCode::CREATED);
        assert_eq!(upload(&admin, &other, Some("Sözleşme"), "sozlesme.pdf", "application/pdf", pdf()).await.status(), StatusCode::CREATED);
        let version = |id: String| {
            let admin = &admin;
            async move { admin.get(&format!("/api/customers/{id}")).await.json::<Value>().await.unwrap()["version"].as_i64().unwrap() }
        };
        let (v1, v2) = (version(survivor.clone()).await, version(other.clone()).await);
        let r = admin.post(&format!("/api/customers/{survivor}/merge"), json!({"other_id": other, "expected_version": v1, "other_expected_version": v2})).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        let list: Value = admin.get(&format!("/api/customers/{survivor}/files")).await.json().await.unwrap();
        let mut names: Vec<&str> = list["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["kimlik.png", "sozlesme.pdf"], "the shared bytes once, the other's own file moved");
        assert_eq!(count(&app.db, "SELECT COUNT(*) FROM files WHERE owner_id = $1 AND deleted_at IS NULL", &other).await, 0);
    }
}

/// The object store is configurable: an explicit `file://` folder (bytes land there) and
/// `memory:///` (the path S3 and other remote stores take through object_store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_work_on_a_configured_object_store() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("file://{}/akis", folder.path().display());
    std::fs::create_dir_all(folder.path().join("akis")).unwrap();
    for storage in [url, "memory:///".to_string()] {
        let storage_url = storage.clone();
        let app = crate::helpers::spawn_app_with_config(Backend::Sqlite, move |c| {
            c.storage_url = Some(storage_url)
        })
        .await
        .unwrap();
        let admin = app.login_as("admin").await;
        let customer = lead(&admin, "Nazlı Ak", "0532 500 00 07").await;
        let bytes = pdf();
        let r = upload(
            &admin,
            &customer,
            None,
            "a.pdf",
            "application/pdf",
            bytes.clone(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{storage}");
        let file: Value = r.json().await.unwrap();
        let id = file["file"]["id"].as_str().unwrap();
        let sha = file["file"]["sha256"].as_str().unwrap();
        let r = admin.get(&format!("/api/files/{id}/content")).await;
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            bytes.as_slice(),
            "{storage}"
        );
        if storage.starts_with("file://") {
            let blob = folder
                .path()
                .join(format!("akis/blobs/{}/{sha}", &sha[..2]));
            assert_eq!(
                std::fs::read(&blob).unwrap(),
                bytes,
                "the bytes are in the configured folder"
            );
            assert!(
                !app.config.data_dir.join("files").join("blobs").exists(),
                "not in the default place"
            );
        }
    }
    // A URL object_store does not know is refused at start-up with a clear message.
    let database = crate::helpers::fresh_database(Backend::Sqlite)
        .await
        .unwrap();
    let mut config =
        crate::helpers::test_config(&database, &std::env::temp_dir().join("akis-drive-bad"));
    config.storage_url = Some("ftp://example.com/x".into());
    let error = akis_engine::app::App::build(config)
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("AKIS_STORAGE_URL"), "{error}");
}
