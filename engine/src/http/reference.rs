//! The API reference page at `/docs`: rendered once at start-up from the same OpenAPI
//! document as `/openapi.json`, with no JavaScript and nothing fetched from a CDN, so it
//! works inside a company network with no internet access.

use std::fmt::Write;

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{OpenApi, RefOr};

pub fn render(api: &OpenApi) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let title = esc(&api.info.title);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title} reference</title><style>{CSS}</style></head><body><main>\
         <h1>{title} <small>{}</small></h1><p>{}</p><p><a href=\"/openapi.json\">openapi.json</a></p>",
        esc(&api.info.version),
        esc(api.info.description.as_deref().unwrap_or("")),
    );
    for (path, item) in &api.paths.paths {
        for (method, op) in operations(item) {
            render_operation(&mut out, method, path, op);
        }
    }
    if let Some(components) = &api.components {
        out.push_str("<h2>Schemas</h2>");
        for (name, schema) in &components.schemas {
            let json = serde_json::to_string_pretty(schema).unwrap_or_default();
            let _ = write!(
                out,
                "<section id=\"schema-{0}\"><h3>{0}</h3><pre>{1}</pre></section>",
                esc(name),
                esc(&json)
            );
        }
    }
    out.push_str("</main></body></html>");
    out
}

fn operations(item: &PathItem) -> Vec<(&'static str, &Operation)> {
    [
        ("GET", &item.get),
        ("POST", &item.post),
        ("PUT", &item.put),
        ("PATCH", &item.patch),
        ("DELETE", &item.delete),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
    .collect()
}

fn render_operation(out: &mut String, method: &str, path: &str, op: &Operation) {
    let _ = write!(
        out,
        "<section class=\"op\"><h2><span class=\"m m-{}\">{method}</span> <code>{}</code></h2>",
        method.to_lowercase(),
        esc(path)
    );
    if let Some(summary) = &op.summary {
        let _ = write!(out, "<p><strong>{}</strong></p>", esc(summary));
    }
    if let Some(description) = &op.description {
        let _ = write!(out, "<p>{}</p>", esc(description));
    }
    if let Some(params) = &op.parameters {
        out.push_str("<h4>Parameters</h4><ul>");
        for p in params {
            let RefOr::T(p) = p else { continue };
            let _ = write!(
                out,
                "<li><code>{}</code> ({}){} {}</li>",
                esc(&p.name),
                serde_json::to_value(&p.parameter_in)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                if matches!(p.required, utoipa::openapi::Required::True) {
                    " required"
                } else {
                    ""
                },
                esc(p.description.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</ul>");
    }
    if let Some(body) = &op.request_body {
        let json = serde_json::to_string_pretty(body).unwrap_or_default();
        let _ = write!(out, "<h4>Request body</h4><pre>{}</pre>", esc(&json));
    }
    out.push_str("<h4>Responses</h4><ul>");
    for (status, response) in &op.responses.responses {
        let description = match response {
            RefOr::T(r) => r.description.clone(),
            RefOr::Ref(r) => r.ref_location.clone(),
        };
        let _ = write!(
            out,
            "<li><code>{}</code> {}</li>",
            esc(status),
            esc(&description)
        );
    }
    out.push_str("</ul></section>");
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;background:#fafafa;color:#1d2430}\
main{max-width:960px;margin:0 auto;padding:24px}h1 small{font-size:14px;color:#667}\
.op{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:8px 16px;margin:16px 0}\
.op h2{font-size:16px;margin:8px 0}.m{display:inline-block;min-width:56px;text-align:center;border-radius:4px;color:#fff;font-size:12px;padding:2px 6px}\
.m-get{background:#1f7a4d}.m-post{background:#1d5fb8}.m-put,.m-patch{background:#9a6b00}.m-delete{background:#b3261e}\
pre{background:#f3f4f6;padding:8px;overflow:auto;font-size:12px}\
@media (prefers-color-scheme:dark){body{background:#111418;color:#e6e8eb}.op{background:#181c21;border-color:#2a3038}pre{background:#20252c}}";

#[cfg(test)]
mod tests {
    #[test]
    fn html_is_escaped() {
        assert_eq!(super::esc("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }
}
