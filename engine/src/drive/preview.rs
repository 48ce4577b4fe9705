//! Thumbnails for images and first-page previews for PDFs, made on first request and kept
//! in the file store next to the bytes (`previews/<sha256>-<size>.png`).
//!
//! Images are decoded by the `image` crate with allocation limits (a decompression bomb
//! is refused, not decoded). PDFs are rendered by poppler's `pdftoppm` when the server has
//! it (Debian: `apt install poppler-utils`); without it a PDF has no preview and the API
//! says so.

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

use super::{FileStore, StoredFile, internal};
use crate::http::ApiError;

/// Preview edge lengths served (a request is rounded up to one of these).
pub const SIZES: [u32; 4] = [128, 256, 512, 1024];

const IMAGE_TYPES: [&str; 5] = [
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/bmp",
];

pub fn can_preview(content_type: &str) -> bool {
    IMAGE_TYPES.contains(&content_type) || content_type == "application/pdf"
}

/// The size served for a requested one.
pub fn bucket(requested: Option<u32>) -> u32 {
    let want = requested.unwrap_or(256);
    SIZES
        .iter()
        .copied()
        .find(|s| *s >= want)
        .unwrap_or(SIZES[SIZES.len() - 1])
}

/// The PNG preview of `file` at `size`, made now or taken from the store.
pub async fn preview(store: &FileStore, file: &StoredFile, size: u32) -> Result<Bytes, ApiError> {
    if !can_preview(&file.content_type) {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "no_preview",
            format!("{} files have no preview", file.content_type),
        ));
    }
    let cached = ObjectPath::from(format!("previews/{}-{size}.png", file.sha256));
    match store.inner().get(&cached).await {
        Ok(found) => return found.bytes().await.map_err(internal),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(internal(e)),
    }
    let source = store
        .inner()
        .get(&ObjectPath::from(file.storage_key.as_str()))
        .await
        .map_err(internal)?
        .bytes()
        .await
        .map_err(internal)?;
    let png = if file.content_type == "application/pdf" {
        pdf_first_page(store, source, size).await?
    } else {
        let content_type = file.content_type.clone();
        tokio::task::spawn_blocking(move || thumbnail(&source, &content_type, size))
            .await
            .map_err(internal)??
    };
    let png = Bytes::from(png);
    store
        .inner()
        .put(&cached, png.clone().into())
        .await
        .map_err(internal)?;
    Ok(png)
}

fn unreadable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable(
        "preview_failed",
        format!("the {what} cannot be read for a preview: {e}"),
    )
}

/// Scales an image to fit `size`×`size`, as PNG.
pub fn thumbnail(bytes: &[u8], content_type: &str, size: u32) -> Result<Vec<u8>, ApiError> {
    let format = match content_type {
        "image/jpeg" => image::ImageFormat::Jpeg,
        "image/png" => image::ImageFormat::Png,
        "image/gif" => image::ImageFormat::Gif,
        "image/webp" => image::ImageFormat::WebP,
        "image/bmp" => image::ImageFormat::Bmp,
        other => return Err(unreadable("image", format!("{other} is not supported"))),
    };
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| unreadable("image", e))?;
    // Never enlarged: a small image is its own preview.
    let small = if decoded.width() <= size && decoded.height() <= size {
        decoded
    } else {
        decoded.thumbnail(size, size)
    };
    let mut out = std::io::Cursor::new(Vec::new());
    small
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(internal)?;
    Ok(out.into_inner())
}

async fn pdf_first_page(store: &FileStore, pdf: Bytes, size: u32) -> Result<Vec<u8>, ApiError> {
    tokio::fs::create_dir_all(&store.scratch)
        .await
        .map_err(internal)?;
    let stem = store
        .scratch
        .join(format!("preview-{}", uuid::Uuid::now_v7().simple()));
    let input = stem.with_extension("pdf");
    tokio::fs::write(&input, &pdf).await.map_err(internal)?;
    let run = tokio::process::Command::new("pdftoppm")
        .args(["-f", "1", "-l", "1", "-png", "-singlefile", "-scale-to"])
        .arg(size.to_string())
        .arg(&input)
        .arg(&stem)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let result = tokio::time::timeout(Duration::from_secs(20), run).await;
    let output_path = stem.with_extension("png");
    let outcome = match result {
        Err(_) => Err(unreadable("PDF", "rendering took longer than 20 s")),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::client(
            StatusCode::NOT_IMPLEMENTED,
            "preview_unavailable",
            "PDF previews need poppler's pdftoppm on the server (Debian: apt install poppler-utils)",
        )),
        Ok(Err(e)) => Err(internal(e)),
        Ok(Ok(out)) if !out.status.success() => Err(unreadable(
            "PDF",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("pdftoppm failed")
                .to_string(),
        )),
        Ok(Ok(_)) => tokio::fs::read(&output_path).await.map_err(internal),
    };
    let _ = tokio::fs::remove_file(&input).await;
    let _ = tokio::fs::remove_file(&output_path).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_and_cap() {
        assert_eq!(bucket(None), 256);
        assert_eq!(bucket(Some(1)), 128);
        assert_eq!(bucket(Some(300)), 512);
        assert_eq!(bucket(Some(99_999)), 1024);
    }

    #[test]
    fn an_image_is_scaled_to_fit_and_garbage_is_a_clear_error() {
        let mut img = image::RgbImage::new(800, 400);
        for (x, _, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x % 256) as u8, 80, 160]);
        }
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let thumb = thumbnail(png.get_ref(), "image/png", 128).unwrap();
        let back = image::load_from_memory(&thumb).unwrap();
        assert_eq!((back.width(), back.height()), (128, 64));
        let e = thumbnail(b"\x89PNG\r\n\x1a\nbroken", "image/png", 128).unwrap_err();
        assert!(e.to_string().contains("preview_failed"), "{e}");
    }
}
