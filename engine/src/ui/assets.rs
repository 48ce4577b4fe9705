//! The UI's static assets, embedded in the binary: the esbuild bundles made by
//! `engine/build.rs` (scripts, and one stylesheet from `ui/src/styles.css` and the screens'
//! CSS it imports; without Node.js at build time the scripts are empty, see [`BUILT`], and
//! the stylesheet falls back to `ui/src/app.css`), and a stylesheet generated from the stage
//! colours of the definitions in force (so no page needs an inline style).
//!
//! Development: with `AKIS_UI_DEV=<repository root>` the scripts and the stylesheet are read
//! from `<root>/ui/dist` (made by `cd ui && npm run build`) on every request, and the
//! templates and catalogues from `<root>/templates/ui`, so the UI can be worked on without
//! rebuilding the binary (`AKIS_UI_DEV_DIST` names another folder for the bundles). Never
//! set it in production.

use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::definitions::Definitions;
use crate::http::ApiError;

mod bundle {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// Whether the JavaScript bundles were built into this binary.
pub const BUILT: bool = bundle::BUILT;

/// The plain stylesheet, served when the bundle was not built.
const FALLBACK_CSS: &str = include_str!("../../../ui/src/app.css");

fn app_css() -> &'static [u8] {
    if bundle::STYLES_CSS.is_empty() {
        FALLBACK_CSS.as_bytes()
    } else {
        bundle::STYLES_CSS
    }
}

/// The repository root named by `AKIS_UI_DEV`, if set (see the module docs).
pub fn dev_root() -> Option<std::path::PathBuf> {
    std::env::var_os("AKIS_UI_DEV")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// An asset: from `ui/dist` in development mode, else the embedded one.
fn serve(content_type: &'static str, name: &str, embedded: &'static [u8]) -> Response {
    if let Some(root) = dev_root() {
        let dist = std::env::var_os("AKIS_UI_DEV_DIST")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join("ui/dist"));
        return match std::fs::read(dist.join(name)) {
            Ok(bytes) => {
                let mut r = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Err(_) => ApiError::not_found("UI asset (AKIS_UI_DEV: run `cd ui && npm run build`)")
                .into_response(),
        };
    }
    if embedded.is_empty() {
        return ApiError::not_found(
            "UI bundle (built without Node.js: cd ui && npm ci, then cargo build)",
        )
        .into_response();
    }
    asset(content_type, embedded)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/assets/app.css",
            get(|| async { serve("text/css; charset=utf-8", "styles.css", app_css()) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { serve("text/javascript; charset=utf-8", "app.js", bundle::APP_JS) }),
        )
        .route(
            "/assets/login.js",
            get(|| async {
                serve(
                    "text/javascript; charset=utf-8",
                    "login.js",
                    bundle::LOGIN_JS,
                )
            }),
        )
        .route("/assets/stages.css", get(stages_css))
}

/// A short hash of every embedded asset: pages link `?v=` it, so browsers may cache the
/// assets for good and still never run an old script against a new page.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        if dev_root().is_some() {
            return "dev".to_string();
        }
        let mut hash = Sha256::new();
        hash.update(app_css());
        hash.update(bundle::APP_JS);
        hash.update(bundle::LOGIN_JS);
        hex::encode(&hash.finalize()[..6])
    })
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A CSS colour from the YAML, or None when it holds anything that could escape the
/// declaration.
fn safe_color(value: &str) -> Option<&str> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "#(),.% ".contains(c));
    ok.then_some(value)
}

fn safe_ident(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `.stage-<id> { --stage-color: … }` for every stage of every pipeline.
pub fn stage_rules(defs: &Definitions) -> String {
    let mut css = String::new();
    for pipeline in &defs.pipelines {
        for stage in &pipeline.stages {
            let id = stage.id.as_str();
            if let Some(color) = stage.color.as_ref().and_then(|c| safe_color(&c.value))
                && safe_ident(id)
            {
                let _ = writeln!(css, ".stage-{id}{{--stage-color:{color}}}");
            }
        }
    }
    css
}

async fn stages_css(State(state): State<AppState>) -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        stage_rules(&state.defs()),
    )
        .into_response();
    // Linked with `?v=<definitions version>`, so a reload's colours show at once.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colour_cannot_break_out_of_its_declaration() {
        assert_eq!(safe_color("#94a3b8"), Some("#94a3b8"));
        assert_eq!(safe_color("rgb(1, 2, 3)"), Some("rgb(1, 2, 3)"));
        assert_eq!(safe_color("red;}body{display:none"), None);
        assert_eq!(safe_color("</style>"), None);
        assert!(!safe_ident("a}b"));
    }
}
