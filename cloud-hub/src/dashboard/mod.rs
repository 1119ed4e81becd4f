//! The read-only dashboard on the HTTP port (`http.dashboard`, on by
//! default; off → 404): one page and two JSON endpoints, all behind a
//! viewer token ([`auth`]).
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the fleet: one panel per telescope, its mirror drawn as hexagons |
//! | `GET /site/{site}` | the same page for one telescope |
//! | `GET /api/fleet[?site=ID]` | the page's data ([`view::FleetView`]) |
//! | `GET /api/segments/{serial}/lifecycle` | a segment's life ([`view::LifecycleView`]) |
//!
//! The page is one static HTML file with inline CSS and JavaScript (no
//! build step, nothing loaded from elsewhere: the content security policy
//! forbids it); its script fetches the JSON and draws the SVG. The data
//! comes from the gRPC services' own functions
//! ([`crate::api::fleet::fleet_health`],
//! [`crate::api::manufacturing::lifecycle::lifecycle`]); placement and
//! colours are in [`layout`].

pub mod auth;
pub mod layout;
pub mod view;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use obs_common::site::validate_site_id;
use tonic::Status;

use crate::api::ApiContext;

/// The page (HTML, CSS and JavaScript in one file).
const PAGE: &str = include_str!("page.html");

/// Nothing but this hub: inline script and style, fetches to itself.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes (every one needs a viewer token).
pub fn router(context: ApiContext) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/site/{site}", get(site_page))
        .route("/api/fleet", get(fleet))
        .route("/api/segments/{serial}/lifecycle", get(segment_lifecycle))
        .route_layer(axum::middleware::from_fn_with_state(
            context.clone(),
            auth::require_viewer,
        ))
        .with_state(context)
}

/// A failed call as JSON `{"error": ...}` with the matching HTTP status.
fn error(status: &Status) -> Response {
    let body = serde_json::json!({ "error": status.message() });
    (crate::api::http_status(status.code()), Json(body)).into_response()
}

fn html(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    html(PAGE)
}

/// The same page; its script reads the site from the path.
async fn site_page(Path(site): Path<String>) -> Response {
    match validate_site_id(&site) {
        Ok(_) => html(PAGE),
        Err(error) => (
            StatusCode::NOT_FOUND,
            format!("no site {site:?}: {error}\n"),
        )
            .into_response(),
    }
}

async fn fleet(
    State(context): State<ApiContext>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let site = params.get("site").map(String::as_str);
    if let Some(site) = site
        && let Err(e) = validate_site_id(site)
    {
        return error(&Status::invalid_argument(format!("site: {e}")));
    }
    match view::fleet_view(&context, site).await {
        Ok(view) => ([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response(),
        Err(status) => error(&status),
    }
}

async fn segment_lifecycle(
    State(context): State<ApiContext>,
    Path(serial): Path<String>,
) -> Response {
    match view::lifecycle_view(&context, &serial).await {
        Ok(view) => ([(header::CACHE_CONTROL, "no-store")], Json(view)).into_response(),
        Err(status) => error(&status),
    }
}

#[cfg(test)]
mod tests;
