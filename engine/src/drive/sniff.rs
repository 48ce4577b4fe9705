//! What a file really is: the content type its bytes show (magic numbers, by `infer`),
//! checked against the allow-list and against what its name and the uploading client say.
//!
//! Plain text has no magic number: bytes with no NUL in the first 64 KiB named `.txt`,
//! `.csv` or `.log` are text. Anything else `infer` does not recognise is refused.

use crate::http::ApiError;
use axum::http::StatusCode;

/// How many leading bytes the sniffer looks at (zip-based office files need a few KiB).
pub const HEAD_BYTES: usize = 64 * 1024;

/// Types a file may have, grouped for the error message.
const ALLOWED: &[&str] = &[
    // documents
    "application/pdf",
    "application/rtf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/epub+zip",
    "text/plain",
    "text/csv",
    // images
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heif",
    "image/avif",
    "image/bmp",
    "image/tiff",
    // audio (call recordings, voice messages)
    "audio/mpeg",
    "audio/m4a",
    "audio/aac",
    "audio/ogg",
    "audio/opus",
    "audio/x-wav",
    "audio/x-flac",
    "audio/amr",
    // video
    "video/mp4",
    "video/x-m4v",
    "video/quicktime",
    "video/webm",
    "video/x-matroska",
    "video/x-msvideo",
    "video/mpeg",
    // archives
    "application/zip",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/gzip",
    "application/x-tar",
    "application/x-bzip2",
    "application/x-xz",
];

/// Spellings of one type that browsers and `mime_guess` use interchangeably.
fn canonical(mime: &str) -> &str {
    let base = mime.split(';').next().unwrap_or(mime).trim();
    match base {
        "audio/wav" | "audio/wave" | "audio/vnd.wave" => "audio/x-wav",
        "audio/mp3" | "audio/x-mpeg" => "audio/mpeg",
        "audio/x-m4a" | "audio/mp4" => "audio/m4a",
        "audio/flac" => "audio/x-flac",
        "application/x-zip-compressed" | "application/x-zip" => "application/zip",
        "application/x-rar-compressed" | "application/x-rar" => "application/vnd.rar",
        "application/x-gzip" => "application/gzip",
        "image/jpg" | "image/pjpeg" => "image/jpeg",
        "image/heic" | "image/heic-sequence" | "image/heif-sequence" => "image/heif",
        "text/rtf" => "application/rtf",
        "application/csv" | "text/comma-separated-values" => "text/csv",
        other => other,
    }
}

/// Families whose members share a container and are told apart only by the name (an
/// `.m4a` is an MP4 file; a `.docx` is a zip; `.doc` and `.xls` are both OLE files).
fn family(mime: &str) -> &str {
    match mime {
        m if m.starts_with("audio/") || m.starts_with("video/") => "media",
        "application/zip"
        | "application/epub+zip"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        | "application/vnd.oasis.opendocument.text"
        | "application/vnd.oasis.opendocument.spreadsheet"
        | "application/vnd.oasis.opendocument.presentation" => "zip",
        "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint"
        | "application/x-ole-storage" => "ole",
        "text/plain" | "text/csv" => "text",
        m => m,
    }
}

fn compatible(a: &str, b: &str) -> bool {
    a == b || family(a) == family(b)
}

fn refuse(code: &'static str, message: String) -> ApiError {
    ApiError::client(StatusCode::UNSUPPORTED_MEDIA_TYPE, code, message)
}

/// The type to record for a file named `name` whose first bytes are `head`, that the
/// client declared as `declared` (the multipart part's Content-Type, if any).
pub fn content_type(head: &[u8], name: &str, declared: Option<&str>) -> Result<String, ApiError> {
    let by_name = mime_guess::from_path(name).first_raw().map(canonical);
    let declared = declared
        .map(canonical)
        .filter(|d| !d.is_empty() && *d != "application/octet-stream");
    let sniffed = infer::get(head).map(|t| canonical(t.mime_type()).to_string());
    let actual = match sniffed {
        Some(found) => {
            // A zip/OLE container is the specific document its name says, when the name is
            // one of that family (infer cannot always see inside a truncated head).
            let specific = match by_name {
                Some(named)
                    if family(&found) != found
                        && compatible(&found, named)
                        && ALLOWED.contains(&named) =>
                {
                    named.to_string()
                }
                _ => found,
            };
            if specific == "application/x-ole-storage" {
                return Err(refuse(
                    "unsupported_file_type",
                    format!(
                        "`{name}` is an OLE container that is not a Word, Excel or PowerPoint file"
                    ),
                ));
            }
            specific
        }
        None => {
            let looks_text = !head.contains(&0);
            match by_name {
                Some(named @ ("text/plain" | "text/csv")) if looks_text => named.to_string(),
                _ if looks_text && name.to_ascii_lowercase().ends_with(".log") => {
                    "text/plain".into()
                }
                _ => {
                    return Err(refuse(
                        "unsupported_file_type",
                        format!(
                            "the content of `{name}` is not a type we accept (documents, images, audio, video, archives)"
                        ),
                    ));
                }
            }
        }
    };
    if !ALLOWED.contains(&actual.as_str()) {
        return Err(refuse(
            "unsupported_file_type",
            format!(
                "`{name}` is {actual}, which is not accepted (documents, images, audio, video, archives)"
            ),
        ));
    }
    if let Some(named) = by_name
        && !compatible(&actual, named)
    {
        return Err(refuse(
            "content_type_mismatch",
            format!("`{name}` is named as {named} but its content is {actual}"),
        ));
    }
    if let Some(claimed) = declared
        && !compatible(&actual, claimed)
    {
        return Err(refuse(
            "content_type_mismatch",
            format!("`{name}` was sent as {claimed} but its content is {actual}"),
        ));
    }
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n";
    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";

    #[test]
    fn the_bytes_decide_and_must_agree_with_the_name() {
        assert_eq!(
            content_type(PNG, "foto.png", Some("image/png")).unwrap(),
            "image/png"
        );
        assert_eq!(
            content_type(PDF, "teklif.pdf", None).unwrap(),
            "application/pdf"
        );
        // Bytes of a PNG named .pdf: refused, naming both.
        let e = content_type(PNG, "teklif.pdf", None).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(e.to_string().contains("content_type_mismatch"), "{e}");
        // The client claims a PDF; the bytes are a PNG.
        assert!(content_type(PNG, "foto", Some("application/pdf")).is_err());
        // Octet-stream claims nothing.
        assert_eq!(
            content_type(PNG, "foto", Some("application/octet-stream")).unwrap(),
            "image/png"
        );
    }

    #[test]
    fn executables_and_unknown_binaries_are_refused() {
        assert!(content_type(ELF, "setup.pdf", None).is_err());
        assert!(content_type(ELF, "tool", None).is_err());
        assert!(content_type(b"\x00\x01\x02garbage", "x.txt", None).is_err());
        assert!(
            content_type(b"<html><script>alert(1)</script></html>", "page.html", None).is_err()
        );
    }

    #[test]
    fn text_files_are_recognised_by_name_and_clean_bytes() {
        assert_eq!(
            content_type(
                "ad;telefon\nAyşe;0532\n".as_bytes(),
                "liste.csv",
                Some("text/csv")
            )
            .unwrap(),
            "text/csv"
        );
        assert_eq!(
            content_type(b"not ok", "notlar.txt", None).unwrap(),
            "text/plain"
        );
        assert!(content_type(b"plain words", "noextension", None).is_err());
    }

    #[test]
    fn spellings_of_one_type_agree() {
        let wav = b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x44\xac\0\0\x88\x58\x01\0\x02\0\x10\0data\0\0\0\0";
        assert_eq!(
            content_type(wav, "kayit.wav", Some("audio/wav")).unwrap(),
            "audio/x-wav"
        );
    }
}
