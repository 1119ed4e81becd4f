//! The dashboard's routes driven in-process (`tower::ServiceExt::oneshot`)
//! over a real embedded store: two active sites with 18 installed segments
//! each and stored predictions.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use obs_manufacturing::{ImportOptions, SegmentRecord, sample_csv_path};
use tower::ServiceExt;

use super::layout::{Band, hex_centre};
use crate::access::{AccessStore, MintedToken, Role};
use crate::api::ApiContext;
use crate::enroll::{BrokerEndpoint, EnrollSettings, Enrollment, EnrollmentParts};
use crate::enroll::{RevocationList, SiteRegistry};
use crate::http::{HttpContext, router};
use crate::ingress::BrokerStatus;
use crate::live::LiveSites;
use crate::store::predictions::{PredictionStore, StoredPrediction};
use crate::store::registry::{RegistryStore, SiteRecord, SiteState};
use crate::store::segments::{InstallRequest, NewSegmentRecord, PutPolicy, SegmentStore};
use crate::store::sqlite::SqliteStore;

const SITES: [&str; 2] = ["nrt", "lt"];
/// 2026-03-01T00:00:00Z.
const T0: i64 = 1_772_323_200;

/// Predicted days of `position` at site `index`: every colour band and,
/// at one position, a recoat.
fn days_of(index: usize, position: u32) -> f64 {
    (index as f64 * 40.0) + f64::from(position) * 4.5 - 3.0
}

struct Fixture {
    _dir: tempfile::TempDir,
    api: ApiContext,
    store: Arc<SqliteStore>,
    viewer: String,
    serials: Vec<String>,
}

fn records() -> Vec<SegmentRecord> {
    obs_manufacturing::open(sample_csv_path(), &ImportOptions::default())
        .expect("samples")
        .map(|item| item.expect("a valid sample row").1)
        .filter(|r| r.acceptance_passed)
        .collect()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("hub.sqlite")).expect("sqlite"));
    let minted = MintedToken::mint("dash", Role::Viewer);
    store.insert_api_token(&minted.record).await.expect("token");
    let records = records();
    store
        .put_segment_records(
            records
                .iter()
                .take(36)
                .map(|r| NewSegmentRecord {
                    record: r.clone(),
                    uploaded_at_unix_ns: 0,
                    uploaded_by: "test".into(),
                    source: "segments.csv".into(),
                })
                .collect(),
            PutPolicy::default(),
        )
        .await
        .expect("records");
    let mut serials = Vec::new();
    for (index, site) in SITES.iter().enumerate() {
        let mut record = SiteRecord::pending(site, 0);
        record.state = SiteState::Active;
        record.display_name = format!("Telescope {site}");
        store.put_site(&record).await.expect("site");
        let mut predictions = Vec::new();
        for position in 1..=18u32 {
            let serial = records[index * 18 + position as usize - 1].serial.clone();
            store
                .record_installation(&InstallRequest {
                    serial: serial.clone(),
                    site: (*site).into(),
                    position,
                    at_unix_ns: (T0 - 86_400) * 1_000_000_000,
                })
                .await
                .expect("store")
                .expect("installed");
            // Site 0 position 18 has no prediction: grey.
            if index == 0 && position == 18 {
                continue;
            }
            let days = days_of(index, position);
            let recoat = index == 1 && position == 1;
            predictions.push(StoredPrediction {
                site: (*site).into(),
                position,
                serial: serial.clone(),
                as_of_unix_s: T0,
                computed_at_unix_ns: T0 * 1_000_000_000,
                reflectivity_650_pct: 89.0,
                days_to_threshold: days,
                threshold_650_pct: 88.4,
                model_sha256: "ab".repeat(32),
                model_version: "test".into(),
                completeness: 0.9,
                features: vec![None; obs_ml::FEATURES.len()],
                risk: if recoat { "recoat" } else { "ok" }.into(),
                risk_reason: "test".into(),
            });
            serials.push(serial);
        }
        store
            .put_predictions(&predictions)
            .await
            .expect("predictions");
    }
    let api = api_context(&dir, store.clone()).await;
    Fixture {
        _dir: dir,
        api,
        store,
        viewer: minted.token,
        serials,
    }
}

async fn api_context(dir: &tempfile::TempDir, store: Arc<SqliteStore>) -> ApiContext {
    let ca = obs_common::pki::CertificateAuthority::generate("test ca", Duration::from_secs(3600))
        .expect("ca");
    let crl =
        RevocationList::new(dir.path().join("crl.pem"), ca.cert_pem(), &ca.key_pem()).expect("crl");
    let live = LiveSites::default();
    let sites = SiteRegistry::load(store.clone()).await.expect("registry");
    let enrollment = Enrollment::new(EnrollmentParts {
        settings: EnrollSettings {
            grpc_endpoint: "localhost:50051".into(),
            broker: BrokerEndpoint {
                host: "localhost".into(),
                port: 8883,
            },
            node_certificate: Duration::from_secs(3600),
        },
        ca,
        store: store.clone(),
        sites,
        crl,
        live: live.clone(),
        topics: None,
        sessions: None,
    })
    .expect("enrollment");
    ApiContext {
        auth: crate::access::Authenticator::new(store.clone()),
        telemetry: store.clone(),
        live,
        enrollment: Arc::new(enrollment),
        segments: store.clone(),
        mirror_layout: Arc::new(crate::api::manufacturing::RegistryLayout(store.clone())),
        registry: store.clone(),
        predictions: store,
        health: None,
    }
}

fn http(f: &Fixture, dashboard: bool) -> axum::Router {
    let broker = BrokerStatus::down_until_up("not started");
    broker.up("test");
    router(HttpContext {
        store: f.store.clone(),
        stream: None,
        broker,
        dashboard: dashboard.then(|| f.api.clone()),
    })
}

async fn get(
    app: &axum::Router,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::get(path);
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .expect("body");
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn the_page_needs_a_viewer_token() {
    let f = fixture().await;
    let app = http(&f, true);
    let bearer = format!("Bearer {}", f.viewer);

    for path in ["/", "/site/nrt", "/api/fleet", "/api/segments/X/lifecycle"] {
        let (status, _, body) = get(&app, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(body.contains("role viewer"), "{body}");
    }
    let (status, _, _) = get(&app, "/", Some(("authorization", "Bearer abcdef.wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, headers, body) = get(&app, "/", Some(("authorization", &bearer))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("<title>Observatory hub") && body.contains("/api/fleet"),
        "the page, which loads the fleet"
    );
    assert!(
        !body.contains("src=\"http") && !body.contains("href=\"http"),
        "no script, style or font from elsewhere"
    );
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"),
        "nothing from elsewhere"
    );

    // `?token=` once: a cookie and a redirect without the token.
    let (status, headers, _) = get(&app, &format!("/site/nrt?token={}", f.viewer), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/site/nrt");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let (status, _, body) = get(&app, "/api/fleet", Some(("cookie", &pair))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = get(&app, "/?token=abcdef.wrong", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The operations routes stay open.
    assert_eq!(get(&app, "/healthz", None).await.0, StatusCode::OK);
    assert_eq!(get(&app, "/metrics", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_disabled_dashboard_is_not_found() {
    let f = fixture().await;
    let app = http(&f, false);
    let bearer = format!("Bearer {}", f.viewer);
    for path in ["/", "/site/nrt", "/api/fleet"] {
        let (status, _, _) = get(&app, path, Some(("authorization", &bearer))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(get(&app, "/healthz", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_fleet_json_places_and_colours_18_segments_per_site() {
    let f = fixture().await;
    let app = http(&f, true);
    let bearer = format!("Bearer {}", f.viewer);
    let (status, _, body) = get(&app, "/api/fleet", Some(("authorization", &bearer))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fleet: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(fleet["model_sha256"], "ab".repeat(32));
    assert!(
        fleet["model_note"]
            .as_str()
            .unwrap()
            .contains("simulated data")
    );
    let sites = fleet["sites"].as_array().expect("sites");
    assert_eq!(sites.len(), 2);
    let mut bands = std::collections::HashSet::new();
    for site in sites {
        let name = site["site"].as_str().unwrap();
        let index = SITES.iter().position(|s| *s == name).expect("a known site");
        let segments = site["segments"].as_array().expect("segments");
        assert_eq!(segments.len(), 18, "{name}");
        for (i, segment) in segments.iter().enumerate() {
            let position = segment["position"].as_u64().unwrap() as u32;
            assert_eq!(position, i as u32 + 1, "by position");
            let centre = hex_centre(position).unwrap();
            assert_eq!(segment["ring"], centre.ring);
            assert_eq!(segment["x"].as_f64().unwrap(), centre.x);
            assert_eq!(segment["y"].as_f64().unwrap(), centre.y);
            assert!(segment["serial"].is_string(), "installed: {segment}");
            let days = segment["prediction"]["days_to_threshold"].as_f64();
            if index == 0 && position == 18 {
                assert!(days.is_none(), "no prediction stored");
            } else {
                assert_eq!(days, Some(days_of(index, position)));
            }
            let band = Band::of(days);
            bands.insert(band);
            assert_eq!(segment["colour"], band.colour(), "{segment}");
            assert_eq!(
                segment["recoat"],
                index == 1 && position == 1,
                "recoat marked: {segment}"
            );
        }
    }
    assert_eq!(bands.len(), 4, "every band appears: {bands:?}");

    let (_, _, body) = get(&app, "/api/fleet?site=lt", Some(("authorization", &bearer))).await;
    let one: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(one["sites"].as_array().map(Vec::len), Some(1));
    let (status, _, _) = get(
        &app,
        "/api/fleet?site=Bad!",
        Some(("authorization", &bearer)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_lifecycle_has_the_record_installations_and_predictions() {
    let f = fixture().await;
    let app = http(&f, true);
    let bearer = format!("Bearer {}", f.viewer);
    let serial = &f.serials[0];
    let (status, _, body) = get(
        &app,
        &format!("/api/segments/{serial}/lifecycle"),
        Some(("authorization", &bearer)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let life: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(life["serial"], serial.as_str());
    assert_eq!(life["record"]["serial"], serial.as_str());
    assert!(
        life["record"]["fresh_reflectivity_650_pct"]
            .as_f64()
            .unwrap()
            > 80.0
    );
    assert_eq!(life["installations"][0]["site"], "nrt");
    assert_eq!(life["installations"][0]["position"], 1);
    assert_eq!(life["predicted"].as_array().map(Vec::len), Some(1));
    assert_eq!(life["predicted"][0]["as_of_ms"], T0 * 1000);

    let (status, _, body) = get(
        &app,
        "/api/segments/NO-SUCH-SERIAL/lifecycle",
        Some(("authorization", &bearer)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("NO-SUCH-SERIAL"), "{body}");
}
