//! The dashboard's viewer token: any API token with role viewer or above,
//! presented as
//! 1. `Authorization: Bearer ID.SECRET` (scripts, the JSON endpoints), or
//! 2. `?token=ID.SECRET` once in a browser: the hub answers with an
//!    HttpOnly, `SameSite=Strict` cookie holding the token and a redirect to
//!    the same page without it, so the token leaves the address bar, or
//! 3. that cookie ([`COOKIE`]).
//!
//! The cookie is not `Secure` because the port serves plain HTTP; put the
//! dashboard behind a TLS reverse proxy before it leaves a trusted network.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::Role;
use crate::api::ApiContext;

/// The cookie that keeps a browser's viewer token.
pub const COOKIE: &str = "obs_dashboard_token";
/// The query parameter that hands the token over once.
pub const QUERY: &str = "token";

/// How a request presented its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Header(String),
    Query(String),
    Cookie(String),
}

impl Presented {
    fn token(&self) -> &str {
        match self {
            Presented::Header(t) | Presented::Query(t) | Presented::Cookie(t) => t,
        }
    }
}

/// The token a request presents, by precedence: header, query, cookie.
pub fn presented(headers: &HeaderMap, uri: &Uri) -> Option<Presented> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
        return Some(Presented::Header(token.to_owned()));
    }
    if let Some(token) = Query::<HashMap<String, String>>::try_from_uri(uri)
        .ok()
        .and_then(|Query(mut params)| params.remove(QUERY))
    {
        return Some(Presented::Query(token));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, token)| Presented::Cookie(token.to_owned()))
}

/// The `Set-Cookie` value that keeps `token` for the browser session.
pub fn cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
}

fn refused(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "{message}\n\nThe dashboard needs an API token with role viewer (or above): \
         mint one on the hub with `cloud-hub admin token --role viewer --name NAME`, \
         then open this page once with ?{QUERY}=ID.SECRET (it is kept in a cookie), \
         or send `Authorization: Bearer ID.SECRET`.\n"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Lets a request with a valid viewer token through; a token handed over
/// in the query becomes a cookie and a redirect to the page without it.
pub async fn require_viewer(
    State(context): State<ApiContext>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let Some(presented) = presented(request.headers(), request.uri()) else {
        return refused(StatusCode::UNAUTHORIZED, "no API token");
    };
    let checked = context
        .auth
        .authorize_token(presented.token(), Role::Viewer, "dashboard", &path)
        .await;
    if let Err(status) = checked {
        return refused(crate::api::http_status(status.code()), status.message());
    }
    if let Presented::Query(token) = presented {
        return (
            StatusCode::SEE_OTHER,
            [
                (header::SET_COOKIE, cookie(&token)),
                (header::LOCATION, path),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), value.parse().unwrap());
        }
        map
    }

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn the_header_wins_then_the_query_then_the_cookie() {
        let cookie_only = headers(&[(header::COOKIE, "a=b; obs_dashboard_token=c.d; e=f")]);
        assert_eq!(
            presented(&cookie_only, &uri("/")),
            Some(Presented::Cookie("c.d".into()))
        );
        assert_eq!(
            presented(&cookie_only, &uri("/site/nrt?x=1&token=q.r")),
            Some(Presented::Query("q.r".into()))
        );
        let both = headers(&[
            (header::AUTHORIZATION, "Bearer h.i"),
            (header::COOKIE, "obs_dashboard_token=c.d"),
        ]);
        assert_eq!(
            presented(&both, &uri("/?token=q.r")),
            Some(Presented::Header("h.i".into()))
        );
        assert_eq!(presented(&HeaderMap::new(), &uri("/?x=1")), None);
    }

    #[test]
    fn the_cookie_is_http_only() {
        let value = cookie("a.b");
        assert!(value.starts_with("obs_dashboard_token=a.b;"), "{value}");
        assert!(value.contains("HttpOnly") && value.contains("SameSite=Strict"));
    }
}
