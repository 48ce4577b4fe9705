//! The server's foundation: probes, error shape, request ids, OpenAPI.

use crate::both_backends;
use reqwest::StatusCode;
use serde_json::Value;

both_backends! {
    async fn healthz_answers_once_the_server_is_up(app) {
        let response = app.get("/healthz").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], "ok");
    }
}

both_backends! {
    async fn readyz_reports_the_database(app) {
        let response = app.get("/readyz").await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], "ready");
        assert_eq!(body["database"]["reachable"], true);
        assert_eq!(body["database"]["backend"], app.backend.to_string());
    }
}

both_backends! {
    async fn readyz_says_unavailable_when_the_database_is_gone(app) {
        app.db.close().await;
        let response = app.get("/readyz").await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], "unavailable");
        assert_eq!(body["database"]["reachable"], false);
    }
}

both_backends! {
    async fn unknown_routes_get_a_json_404_with_a_request_id(app) {
        let response = app.get("/no/such/thing").await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let header_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .expect("every response carries a request id");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "not_found");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(body["request_id"], header_id.as_str());
    }
}

both_backends! {
    async fn a_wrong_method_gets_a_json_405(app) {
        let response = app.client.delete(app.url("/healthz")).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "method_not_allowed");
    }
}

both_backends! {
    async fn a_client_supplied_request_id_is_echoed(app) {
        let response = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", "trace-me-123")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    }
}

both_backends! {
    async fn openapi_json_is_a_valid_document_listing_every_route(app) {
        let response = app.get("/openapi.json").await;
        assert_eq!(response.status(), StatusCode::OK);
        let doc: Value = response.json().await.expect("json");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{doc}");
        assert_eq!(doc["info"]["title"], "Akış API");
        assert!(doc["paths"]["/healthz"]["get"].is_object());
        assert!(doc["paths"]["/readyz"]["get"]["responses"]["503"].is_object());
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        // Every $ref points at a schema that exists.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap_or_default();
            assert!(doc["components"]["schemas"][name].is_object(), "dangling $ref to {name}");
        }
    }
}

both_backends! {
    async fn the_api_reference_page_renders_without_external_assets(app) {
        let response = app.get("/docs").await;
        assert_eq!(response.status(), StatusCode::OK);
        let html = response.text().await.expect("text");
        assert!(html.contains("/healthz"));
        assert!(!html.contains("http://") && !html.contains("https://"), "no CDN or external links");
    }
}
