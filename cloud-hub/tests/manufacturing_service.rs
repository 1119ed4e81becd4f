//! `ManufacturingService` over real gRPC (an in-process tonic server on
//! 127.0.0.1, the embedded store, real API tokens): atomic and partial
//! uploads, idempotent re-uploads, versioned replaces, installation rules,
//! maintenance idempotency, upload bounds and roles. Every validation rule
//! itself is tested in obs-manufacturing; here it is the service's handling.

use std::net::SocketAddr;
use std::sync::Arc;

use cloud_hub::access::{AccessStore, Authenticator, MintedToken, Role};
use cloud_hub::api::manufacturing::{ManufacturingApi, RegistryLayout, UploadLimits};
use cloud_hub::store::registry::{RegistryStore, SiteRecord};
use cloud_hub::store::sqlite::SqliteStore;
use obs_manufacturing::{ImportOptions, SegmentRecord, sample_csv_path};
use obs_proto::v1::manufacturing_service_client::ManufacturingServiceClient;
use obs_proto::v1::manufacturing_service_server::ManufacturingServiceServer;
use obs_proto::v1::upload_segment_records_request::Item;
use obs_proto::v1::{
    GetSegmentRequest, MaintenanceEvent, MaintenanceKind, RecordError, RecordInstallationRequest,
    RecordMaintenanceRequest, Reflectivity, SegmentRecordRow, UploadOptions,
    UploadSegmentRecordsRequest, UploadSegmentRecordsResponse,
};
use prost_types::Timestamp;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// 2026-01-01T00:00:00Z, seconds.
const T0: i64 = 1_767_225_600;

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    optics: String,
    viewer: String,
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start_with(configure: impl FnOnce(ManufacturingApi) -> ManufacturingApi) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("hub.sqlite")).expect("store"));
    let mut tokens = Vec::new();
    for (name, role) in [("optics-centre", Role::Optics), ("engineer", Role::Viewer)] {
        let minted = MintedToken::mint(name, role);
        store.insert_api_token(&minted.record).await.expect("token");
        tokens.push(minted.token);
    }
    let api = configure(ManufacturingApi::new(
        Authenticator::new(store.clone()),
        store.clone(),
        store.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let serving = stop.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(ManufacturingServiceServer::new(api))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                serving.cancelled_owned(),
            )
            .await
    });
    Harness {
        _dir: dir,
        store,
        viewer: tokens.pop().expect("viewer"),
        optics: tokens.pop().expect("optics"),
        addr,
        stop,
    }
}

async fn start() -> Harness {
    start_with(|api| api).await
}

impl Harness {
    async fn client(&self) -> ManufacturingServiceClient<Channel> {
        ManufacturingServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect")
    }
}

fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {token}").parse().expect("header");
    request.metadata_mut().insert("authorization", value);
    request
}

/// The committed sample records, with their rows.
fn samples() -> Vec<(u64, SegmentRecord)> {
    obs_manufacturing::open(sample_csv_path(), &ImportOptions::default())
        .expect("samples")
        .map(|item| item.expect("a valid sample row"))
        .collect()
}

fn options(partial: bool, replace: bool) -> UploadSegmentRecordsRequest {
    UploadSegmentRecordsRequest {
        item: Some(Item::Options(UploadOptions {
            partial,
            replace,
            source: "segments.csv".into(),
        })),
    }
}

fn row(row: u64, record: &SegmentRecord) -> UploadSegmentRecordsRequest {
    UploadSegmentRecordsRequest {
        item: Some(Item::Row(SegmentRecordRow {
            row,
            record: Some(record.into()),
        })),
    }
}

fn rows(records: &[(u64, SegmentRecord)]) -> Vec<UploadSegmentRecordsRequest> {
    records.iter().map(|(n, r)| row(*n, r)).collect()
}

async fn upload(
    h: &Harness,
    token: &str,
    messages: Vec<UploadSegmentRecordsRequest>,
) -> Result<UploadSegmentRecordsResponse, Status> {
    h.client()
        .await
        .upload_segment_records(authed(tokio_stream::iter(messages), token))
        .await
        .map(|r| r.into_inner())
}

async fn upload_all(
    h: &Harness,
    partial: bool,
    replace: bool,
    records: &[(u64, SegmentRecord)],
) -> UploadSegmentRecordsResponse {
    let mut messages = vec![options(partial, replace)];
    messages.extend(rows(records));
    upload(h, &h.optics, messages).await.expect("upload")
}

async fn get(
    h: &Harness,
    serial: &str,
    history: bool,
) -> Result<obs_proto::v1::GetSegmentResponse, Status> {
    let request = GetSegmentRequest {
        serial: serial.into(),
        include_history: history,
    };
    h.client()
        .await
        .get_segment(authed(request, &h.viewer))
        .await
        .map(|r| r.into_inner())
}

fn error_at(errors: &[RecordError], row: u64) -> &RecordError {
    errors
        .iter()
        .find(|e| e.row == row)
        .unwrap_or_else(|| panic!("no error for row {row} in {errors:?}"))
}

/// The samples with row 5 out of range, row 10 repeating row 1's serial,
/// and a row the client could not parse.
fn flawed_upload(partial: bool) -> (Vec<UploadSegmentRecordsRequest>, Vec<(u64, SegmentRecord)>) {
    let mut records = samples();
    records[4].1.surface_figure_error_nm_rms = -3.0;
    records[9].1.serial = records[0].1.serial.clone();
    let mut messages = vec![options(partial, false)];
    messages.extend(rows(&records));
    messages.push(UploadSegmentRecordsRequest {
        item: Some(Item::ClientError(RecordError {
            row: 67,
            serial: "CSOA-M1-T1-0067".into(),
            field: "mass_kg".into(),
            reason: "heavy is not a number".into(),
        })),
    });
    (messages, records)
}

#[tokio::test]
async fn an_atomic_upload_with_errors_stores_nothing_and_returns_every_error() {
    let h = start().await;
    let (messages, records) = flawed_upload(false);
    let r = upload(&h, &h.optics, messages).await.expect("upload");
    assert_eq!(
        (r.received, r.stored, r.unchanged, r.rejected, r.rolled_back),
        (67, 0, 0, 3, true)
    );
    let figure = error_at(&r.errors, 5);
    assert_eq!(
        (figure.serial.as_str(), figure.field.as_str()),
        (records[4].1.serial.as_str(), "surface_figure_error_nm_rms")
    );
    assert!(
        figure.reason.starts_with("-3 is out of range"),
        "{figure:?}"
    );
    let duplicate = error_at(&r.errors, 10);
    assert_eq!(duplicate.field, "serial");
    assert!(
        duplicate.reason.contains("duplicate of row 1"),
        "{duplicate:?}"
    );
    assert_eq!(error_at(&r.errors, 67).reason, "heavy is not a number");
    let missing = get(&h, &records[0].1.serial, false)
        .await
        .expect_err("nothing stored");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert!(missing.message().contains(&records[0].1.serial));
}

#[tokio::test]
async fn a_partial_upload_stores_the_valid_records_and_reports_the_rest() {
    let h = start().await;
    let (messages, records) = flawed_upload(true);
    let r = upload(&h, &h.optics, messages).await.expect("upload");
    assert_eq!(
        (r.received, r.stored, r.unchanged, r.rejected, r.rolled_back),
        (67, 64, 0, 3, false)
    );
    assert_eq!(r.errors.len(), 3, "{:?}", r.errors);
    assert!(get(&h, &records[0].1.serial, false).await.is_ok());
    assert_eq!(
        get(&h, &records[4].1.serial, false)
            .await
            .expect_err("invalid")
            .code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn re_uploads_are_idempotent_and_a_changed_record_needs_replace() {
    let h = start().await;
    let records = samples();
    let first = upload_all(&h, false, false, &records).await;
    assert_eq!(
        (first.received, first.stored, first.rolled_back),
        (66, 66, false)
    );
    let again = upload_all(&h, false, false, &records).await;
    assert_eq!((again.stored, again.unchanged, again.rejected), (0, 66, 0));

    let mut changed = records.clone();
    let (old_mass, serial) = (changed[6].1.mass_kg, changed[6].1.serial.clone());
    changed[6].1.mass_kg = old_mass + 0.5;
    changed[6].1.coating_batch = "AL-2024-09".into();
    let refused = upload_all(&h, false, false, &changed).await;
    assert_eq!(
        (
            refused.stored,
            refused.unchanged,
            refused.rejected,
            refused.rolled_back
        ),
        (0, 0, 1, true)
    );
    let fields: Vec<(&str, &str)> = refused
        .errors
        .iter()
        .map(|e| (e.serial.as_str(), e.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (serial.as_str(), "coating_batch"),
            (serial.as_str(), "mass_kg")
        ]
    );
    assert!(
        refused.errors[1].reason.contains("replace=true"),
        "{:?}",
        refused.errors
    );
    assert_eq!(refused.errors[1].row, 7);
    let kept = get(&h, &serial, false).await.expect("get");
    let current = kept.current.expect("current");
    assert_eq!(
        (current.version, current.record.expect("record").mass_kg),
        (1, old_mass)
    );

    let replaced = upload_all(&h, false, true, &changed).await;
    assert_eq!(
        (replaced.stored, replaced.unchanged, replaced.rolled_back),
        (1, 65, false)
    );
    let history = get(&h, &serial, true).await.expect("get");
    let current = history.current.expect("current");
    assert_eq!(
        (current.version, current.uploaded_by.as_str()),
        (2, "optics-centre")
    );
    assert_eq!(current.record.expect("record").mass_kg, old_mass + 0.5);
    let previous: Vec<(u32, f64)> = history
        .previous_versions
        .iter()
        .map(|v| (v.version, v.record.as_ref().expect("record").mass_kg))
        .collect();
    assert_eq!(previous, vec![(1, old_mass)]);
}

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

async fn install(
    h: &Harness,
    site: &str,
    position: u32,
    serial: &str,
    seconds: i64,
) -> Result<obs_proto::v1::RecordInstallationResponse, Status> {
    let request = RecordInstallationRequest {
        site: site.into(),
        position,
        serial: serial.into(),
        at: at(seconds),
    };
    h.client()
        .await
        .record_installation(authed(request, &h.optics))
        .await
        .map(|r| r.into_inner())
}

fn accepted(records: &[(u64, SegmentRecord)]) -> Vec<String> {
    records
        .iter()
        .filter(|(_, r)| r.acceptance_passed)
        .map(|(_, r)| r.serial.clone())
        .collect()
}

#[tokio::test]
async fn installations_close_the_occupant_and_the_moved_segments_old_place() {
    let h = start().await;
    let records = samples();
    upload_all(&h, false, false, &records).await;
    let ok = accepted(&records);
    let (a, b) = (ok[0].as_str(), ok[1].as_str());

    let first = install(&h, "nrt", 1, a, T0).await.expect("install");
    assert!(first.closed.is_empty());
    let over = install(&h, "nrt", 1, b, T0 + 100)
        .await
        .expect("install over");
    let closed: Vec<(&str, &str, u32, i64)> = over
        .closed
        .iter()
        .map(|i| {
            (
                i.serial.as_str(),
                i.site.as_str(),
                i.position,
                i.removed_at.expect("closed").seconds,
            )
        })
        .collect();
    assert_eq!(closed, vec![(a, "nrt", 1, T0 + 100)]);
    let moved = install(&h, "lpa", 4, b, T0 + 200).await.expect("move");
    assert_eq!(moved.closed.len(), 1);
    assert_eq!(
        (moved.closed[0].site.as_str(), moved.closed[0].position),
        ("nrt", 1)
    );
    let now = get(&h, b, false)
        .await
        .expect("get")
        .installation
        .expect("installed");
    assert_eq!(
        (now.site.as_str(), now.position, now.removed_at),
        ("lpa", 4, None)
    );
    assert!(
        get(&h, a, false).await.expect("get").installation.is_none(),
        "a was taken out"
    );

    let cases = [
        (
            install(&h, "lpa", 19, a, T0 + 300).await,
            Code::InvalidArgument,
            "position: 19 is not a position of site lpa's 18-segment mirror",
        ),
        (
            install(&h, "La-Palma", 1, a, T0 + 300).await,
            Code::InvalidArgument,
            "site:",
        ),
        (
            install(&h, "lpa", 2, "CSOA-M1-T9-9999", T0 + 300).await,
            Code::NotFound,
            "segment CSOA-M1-T9-9999",
        ),
        (
            install(&h, "lpa", 2, "CSOA-M1-T2-0009", T0 + 300).await,
            Code::FailedPrecondition,
            "did not pass acceptance",
        ),
        (
            install(&h, "lpa", 4, a, T0 + 150).await,
            Code::FailedPrecondition,
            "site lpa position 4 has a later installation",
        ),
    ];
    for (result, code, message) in cases {
        let status = result.expect_err(message);
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{message}: {status:?}");
    }
}

#[tokio::test]
async fn positions_follow_the_mirror_the_site_registry_knows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Arc::new(SqliteStore::open(&dir.path().join("registry.sqlite")).expect("store"));
    let mut gtc = SiteRecord::pending("gtc", T0 * 1_000_000_000);
    gtc.mirror_segments = 36;
    registry.put_site(&gtc).await.expect("site");
    let layout = Arc::new(RegistryLayout(registry));
    let h = start_with(|api| api.with_layout(layout)).await;
    let records = samples();
    upload_all(&h, false, false, &records).await;
    let ok = accepted(&records);
    let r = install(&h, "gtc", 36, &ok[0], T0)
        .await
        .expect("position 36 of gtc");
    assert_eq!(r.installation.expect("installed").position, 36);
    let status = install(&h, "gtc", 37, &ok[1], T0).await.expect_err("37");
    assert!(
        status.message().contains("site gtc's 36-segment mirror"),
        "{status:?}"
    );
    // A site the registry does not know (yet) has the default 18 segments.
    let status = install(&h, "nrt", 19, &ok[1], T0).await.expect_err("19");
    assert!(
        status.message().contains("site nrt's 18-segment mirror"),
        "{status:?}"
    );
    install(&h, "nrt", 18, &ok[1], T0)
        .await
        .expect("position 18");
}

fn readings(pairs: &[(u32, f64)]) -> Vec<Reflectivity> {
    pairs
        .iter()
        .map(|(nm, pct)| Reflectivity {
            wavelength_nm: *nm,
            percent: *pct,
        })
        .collect()
}

async fn maintain(
    h: &Harness,
    event: MaintenanceEvent,
) -> Result<obs_proto::v1::RecordMaintenanceResponse, Status> {
    h.client()
        .await
        .record_maintenance(authed(
            RecordMaintenanceRequest { event: Some(event) },
            &h.optics,
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn maintenance_is_idempotent_by_serial_time_and_kind_and_validated() {
    let h = start().await;
    let records = samples();
    upload_all(&h, false, false, &records).await;
    let serial = accepted(&records)[2].clone();
    install(&h, "nrt", 3, &serial, T0).await.expect("install");
    let cleaning = MaintenanceEvent {
        serial: serial.clone(),
        kind: MaintenanceKind::Cleaning as i32,
        at: at(T0 + 3600),
        reflectivity_before: readings(&[(470, 86.7), (530, 86.5), (650, 85.5), (880, 80.3)]),
        reflectivity_after: readings(&[(470, 89.6), (530, 89.5), (650, 88.0), (880, 83.3)]),
        notes: "CO2 snow".into(),
        source: "site:forged".into(),
        ..Default::default()
    };
    let first = maintain(&h, cleaning.clone()).await.expect("record");
    assert!(first.created);
    let stored = first.event.expect("event");
    assert_eq!(
        stored.source, "api:optics-centre",
        "the hub names the source, not the client"
    );
    assert_eq!((stored.site.as_str(), stored.position), ("nrt", 3));
    let again = maintain(&h, cleaning.clone()).await.expect("again");
    assert!(!again.created);
    assert_eq!(again.event.expect("event").notes, "CO2 snow");

    let conflict = maintain(
        &h,
        MaintenanceEvent {
            notes: "wash".into(),
            ..cleaning.clone()
        },
    )
    .await
    .expect_err("a different event at the same time");
    assert_eq!(conflict.code(), Code::AlreadyExists);
    assert!(conflict.message().contains(&serial), "{conflict:?}");

    let invalid = [
        (
            MaintenanceEvent {
                reflectivity_before: readings(&[(650, 130.0)]),
                ..cleaning.clone()
            },
            "reflectivity_before: reflectivity 130 % at 650 nm is out of range 0..=100 %",
        ),
        (
            MaintenanceEvent {
                reflectivity_after: readings(&[(650, 88.0), (650, 88.1)]),
                ..cleaning.clone()
            },
            "reflectivity_after: 650 nm is given twice",
        ),
        (
            MaintenanceEvent {
                coating_batch: "AL-2026-01".into(),
                ..cleaning.clone()
            },
            "coating_batch: only a recoat",
        ),
        (
            MaintenanceEvent {
                notes: "x".repeat(4001),
                ..cleaning.clone()
            },
            "notes: is longer than 4000",
        ),
        (
            MaintenanceEvent {
                kind: 0,
                ..cleaning.clone()
            },
            "kind: 0 is not cleaning, recoat or inspection",
        ),
        (
            MaintenanceEvent {
                at: None,
                ..cleaning.clone()
            },
            "at: is required",
        ),
    ];
    for (event, message) in invalid {
        let status = maintain(&h, event).await.expect_err(message);
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(message), "{message}: {status:?}");
    }
    let recoat = MaintenanceEvent {
        kind: MaintenanceKind::Recoat as i32,
        at: at(T0 + 7200),
        coating_batch: "AL-2026-01".into(),
        notes: String::new(),
        ..cleaning
    };
    assert!(maintain(&h, recoat).await.expect("recoat").created);
}

#[tokio::test]
async fn viewers_cannot_write_and_optics_calls_are_audited() {
    let h = start().await;
    let records = samples();
    let mut messages = vec![options(false, false)];
    messages.extend(rows(&records));
    let denied = upload(&h, &h.viewer, messages)
        .await
        .expect_err("viewer upload");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("needs role optics"), "{denied:?}");
    assert!(denied.message().contains("has role viewer"), "{denied:?}");
    upload_all(&h, false, false, &records).await;
    let serial = accepted(&records)[0].clone();
    let request = RecordInstallationRequest {
        site: "nrt".into(),
        position: 1,
        serial: serial.clone(),
        at: at(T0),
    };
    let denied = h
        .client()
        .await
        .record_installation(authed(request, &h.viewer))
        .await
        .expect_err("viewer install");
    assert_eq!(denied.code(), Code::PermissionDenied);
    install(&h, "nrt", 1, &serial, T0)
        .await
        .expect("optics install");
    get(&h, &serial, false).await.expect("viewers read");

    let log = h.store.audit_log(100).await.expect("audit log");
    let methods: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e.caller.as_str(), e.method.as_str(), e.subject.as_str()))
        .collect();
    let installed = format!("{serial} at nrt position 1");
    assert_eq!(
        methods,
        vec![
            (
                "optics-centre",
                "ManufacturingService/RecordInstallation",
                installed.as_str()
            ),
            (
                "optics-centre",
                "ManufacturingService/UploadSegmentRecords",
                "upload"
            ),
        ],
        "optics calls only, newest first; reads and refused calls are not audited"
    );
}

#[tokio::test]
async fn uploads_are_bounded_and_start_with_their_options() {
    let limits = UploadLimits {
        max_atomic_rows: 10,
        chunk_rows: 7,
        ..UploadLimits::default()
    };
    let h = start_with(|api| api.with_limits(limits)).await;
    let records = samples();
    let mut messages = vec![options(false, false)];
    messages.extend(rows(&records));
    let refused = upload(&h, &h.optics, messages)
        .await
        .expect_err("over the cap");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("at most 10 rows"), "{refused:?}");
    assert!(
        refused.message().contains("nothing was stored"),
        "{refused:?}"
    );
    assert_eq!(
        get(&h, &records[0].1.serial, false)
            .await
            .expect_err("none")
            .code(),
        Code::NotFound
    );
    // Partial uploads are stored chunk by chunk, whatever their length.
    let partial = upload_all(&h, true, false, &records).await;
    assert_eq!((partial.received, partial.stored), (66, 66));

    let wrong_first = upload(&h, &h.optics, rows(&records[..1]))
        .await
        .expect_err("no options");
    assert_eq!(wrong_first.code(), Code::InvalidArgument);
    assert!(
        wrong_first.message().contains("first message"),
        "{wrong_first:?}"
    );
    let empty = upload(&h, &h.optics, vec![])
        .await
        .expect("an empty upload");
    assert_eq!(empty.received, 0);
}
