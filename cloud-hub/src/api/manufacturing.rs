//! `ManufacturingService`: the optics centre's segment records, their
//! installation at telescope positions, their maintenance, and what a
//! segment lived through across telescopes. Role `optics` to write (audited),
//! `viewer` to read.
//!
//! Writes of one hub are serialised (one at a time, per store call), so an
//! installation, a maintenance record and a chunk of an upload never
//! interleave their reads and writes.

pub mod cohorts;
mod convert;
pub mod error;
pub mod lifecycle;
pub mod upload;

use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Stream;
use obs_common::site::validate_site_id;
use obs_manufacturing::ValidationRules;
use obs_proto::v1::manufacturing_service_server::ManufacturingService;
use obs_proto::v1::{
    CohortGrouping, GetCohortsRequest, GetCohortsResponse, GetSegmentLifecycleRequest,
    GetSegmentRequest, GetSegmentResponse, RecordInstallationRequest, RecordInstallationResponse,
    RecordMaintenanceRequest, RecordMaintenanceResponse, SegmentLifecycle,
    UploadSegmentRecordsRequest, UploadSegmentRecordsResponse,
};
use tokio::sync::Mutex;
use tonic::{Request, Response, Status, Streaming};

pub use self::error::ManufacturingError;
pub use self::upload::UploadLimits;
use super::manufacturing_status;
use crate::access::{Authenticator, Caller, Role};
use crate::store::TelemetryStore;
use crate::store::registry::RegistryStore;
use crate::store::segments::{
    InstallRequest, MaintenanceOutcome, MaintenanceRecord, SegmentStore, StoredSegment,
    rules::fmt_time,
};

/// Segments of a primary mirror when the site's own count is not known.
pub const DEFAULT_MIRROR_SEGMENTS: u32 = 18;
/// The largest mirror the hub serves (GTC, Keck): records may have ring 3.
pub const MAX_MIRROR_SEGMENTS: u32 = 36;
/// Longest maintenance note, in characters.
pub const MAX_NOTES_CHARS: usize = 4000;
/// Longest coating batch id, in characters.
pub const MAX_BATCH_CHARS: usize = 64;

/// How many segments a site's primary mirror has (positions `1..=n`).
#[async_trait]
pub trait MirrorLayout: Send + Sync + 'static {
    /// The segment count of `site`'s primary mirror.
    async fn mirror_segments(&self, site: &str) -> u32;
}

/// Every site has the same segment count.
#[derive(Debug, Clone, Copy)]
pub struct FixedLayout(pub u32);

#[async_trait]
impl MirrorLayout for FixedLayout {
    async fn mirror_segments(&self, _site: &str) -> u32 {
        self.0
    }
}

/// The segment count the site registry has for a site (set at its join
/// token), or [`DEFAULT_MIRROR_SEGMENTS`] for a site it does not know (yet):
/// installations may be recorded before the telescope enrols.
pub struct RegistryLayout(pub Arc<dyn RegistryStore>);

#[async_trait]
impl MirrorLayout for RegistryLayout {
    async fn mirror_segments(&self, site: &str) -> u32 {
        match self.0.get_site(site).await {
            Ok(Some(record)) if (1..=MAX_MIRROR_SEGMENTS).contains(&record.mirror_segments) => {
                record.mirror_segments
            }
            Ok(_) => DEFAULT_MIRROR_SEGMENTS,
            Err(error) => {
                tracing::warn!(%error, site, "cannot read the site's mirror; assuming 18 segments");
                DEFAULT_MIRROR_SEGMENTS
            }
        }
    }
}

/// The service.
pub struct ManufacturingApi {
    auth: Authenticator,
    segments: Arc<dyn SegmentStore>,
    telemetry: Arc<dyn TelemetryStore>,
    layout: Arc<dyn MirrorLayout>,
    predictions: Option<Arc<dyn crate::store::predictions::PredictionStore>>,
    limits: UploadLimits,
    writes: Mutex<()>,
}

impl ManufacturingApi {
    pub fn new(
        auth: Authenticator,
        segments: Arc<dyn SegmentStore>,
        telemetry: Arc<dyn TelemetryStore>,
    ) -> Self {
        ManufacturingApi {
            auth,
            segments,
            telemetry,
            layout: Arc::new(FixedLayout(DEFAULT_MIRROR_SEGMENTS)),
            predictions: None,
            limits: UploadLimits::default(),
            writes: Mutex::new(()),
        }
    }

    /// Uses `layout` for the positions a site has.
    pub fn with_layout(mut self, layout: Arc<dyn MirrorLayout>) -> Self {
        self.layout = layout;
        self
    }

    /// Shows the health model's predictions in lifecycles.
    pub fn with_predictions(
        mut self,
        predictions: Arc<dyn crate::store::predictions::PredictionStore>,
    ) -> Self {
        self.predictions = Some(predictions);
        self
    }

    /// Uses other upload bounds.
    pub fn with_limits(mut self, limits: UploadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Runs an upload from any stream of messages (the gRPC stream, or a
    /// test's), for `caller`.
    pub async fn upload_from<S>(
        &self,
        caller: &Caller,
        messages: S,
    ) -> Result<UploadSegmentRecordsResponse, ManufacturingError>
    where
        S: Stream<Item = Result<UploadSegmentRecordsRequest, Status>> + Unpin,
    {
        let rules = ValidationRules::as_of_now()
            .for_segment_count(MAX_MIRROR_SEGMENTS)
            .unwrap_or_else(ValidationRules::as_of_now);
        let uploader = upload::Uploader {
            name: &caller.name,
            at_unix_ns: crate::time::now_unix_ns(),
        };
        upload::upload(
            self.segments.as_ref(),
            &self.writes,
            &rules,
            self.limits,
            &uploader,
            messages,
        )
        .await
    }

    async fn existing(&self, serial: &str) -> Result<StoredSegment, ManufacturingError> {
        if serial.is_empty() {
            return Err(ManufacturingError::invalid("serial", "is required"));
        }
        self.segments.segment(serial).await?.ok_or_else(|| {
            ManufacturingError::NotFound(format!(
                "segment {serial} has no manufacturing record; upload it first"
            ))
        })
    }

    async fn get_segment(
        &self,
        q: GetSegmentRequest,
    ) -> Result<GetSegmentResponse, ManufacturingError> {
        let current = self.existing(&q.serial).await?;
        let previous_versions = if q.include_history {
            let mut versions = self.segments.segment_versions(&q.serial).await?;
            versions.retain(|v| v.version != current.version);
            versions.iter().map(convert::stored_segment).collect()
        } else {
            Vec::new()
        };
        let installation = self
            .segments
            .installations_of(&q.serial)
            .await?
            .into_iter()
            .find(|i| i.removed_at_unix_ns.is_none());
        Ok(GetSegmentResponse {
            current: Some(convert::stored_segment(&current)),
            previous_versions,
            installation: installation.as_ref().map(convert::installation),
        })
    }

    async fn record_installation(
        &self,
        q: RecordInstallationRequest,
    ) -> Result<RecordInstallationResponse, ManufacturingError> {
        validate_site_id(&q.site)
            .map_err(|e| ManufacturingError::invalid("site", e.to_string()))?;
        let segments = self.layout.mirror_segments(&q.site).await;
        if !(1..=segments).contains(&q.position) {
            return Err(ManufacturingError::invalid(
                "position",
                format!(
                    "{} is not a position of site {}'s {segments}-segment mirror (1..={segments})",
                    q.position, q.site
                ),
            ));
        }
        let at = convert::required_time(q.at.as_ref(), "at")?;
        let segment = self.existing(&q.serial).await?;
        if !segment.record.acceptance_passed {
            return Err(ManufacturingError::FailedPrecondition(format!(
                "segment {} did not pass acceptance ({}); it cannot be installed",
                q.serial, segment.record.acceptance_notes
            )));
        }
        let request = InstallRequest {
            serial: q.serial,
            site: q.site,
            position: q.position,
            at_unix_ns: at,
        };
        let outcome = {
            let _writing = self.writes.lock().await;
            self.segments.record_installation(&request).await?
        }
        .map_err(|refusal| ManufacturingError::FailedPrecondition(refusal.to_string()))?;
        if outcome.created {
            tracing::info!(
                serial = request.serial,
                site = request.site,
                position = request.position,
                closed = outcome.closed.len(),
                "segment installed"
            );
        }
        Ok(RecordInstallationResponse {
            installation: Some(convert::installation(&outcome.installation)),
            closed: outcome.closed.iter().map(convert::installation).collect(),
        })
    }

    async fn record_maintenance(
        &self,
        caller: &Caller,
        q: RecordMaintenanceRequest,
    ) -> Result<RecordMaintenanceResponse, ManufacturingError> {
        use crate::store::segments::MaintenanceKind;
        let e = q
            .event
            .ok_or_else(|| ManufacturingError::invalid("event", "is required"))?;
        let kind = convert::kind_from_proto(e.kind)?;
        let at = convert::required_time(e.at.as_ref(), "at")?;
        let before = convert::readings_from_proto("reflectivity_before", &e.reflectivity_before)?;
        let after = convert::readings_from_proto("reflectivity_after", &e.reflectivity_after)?;
        if e.notes.chars().count() > MAX_NOTES_CHARS {
            return Err(ManufacturingError::invalid(
                "notes",
                format!("is longer than {MAX_NOTES_CHARS} characters"),
            ));
        }
        if !e.coating_batch.is_empty() && kind != MaintenanceKind::Recoat {
            return Err(ManufacturingError::invalid(
                "coating_batch",
                "only a recoat names a new coating batch",
            ));
        }
        if e.coating_batch.chars().count() > MAX_BATCH_CHARS {
            return Err(ManufacturingError::invalid(
                "coating_batch",
                format!("is longer than {MAX_BATCH_CHARS} characters"),
            ));
        }
        self.existing(&e.serial).await?;
        let installed = self
            .segments
            .installations_of(&e.serial)
            .await?
            .into_iter()
            .find(|i| i.covers(at));
        let record = MaintenanceRecord {
            serial: e.serial,
            kind,
            at_unix_ns: at,
            before,
            after,
            notes: e.notes,
            source: format!("api:{}", caller.name),
            site: installed
                .as_ref()
                .map(|i| i.site.clone())
                .unwrap_or_default(),
            position: installed.as_ref().map_or(0, |i| i.position),
            coating_batch: e.coating_batch,
            recorded_at_unix_ns: crate::time::now_unix_ns(),
        };
        let outcome = {
            let _writing = self.writes.lock().await;
            self.segments.record_maintenance(&record).await?
        };
        let (event, created) = match outcome {
            MaintenanceOutcome::Created => (record, true),
            MaintenanceOutcome::AlreadyRecorded(existing) => (existing, false),
            MaintenanceOutcome::Conflict(existing) => {
                return Err(ManufacturingError::AlreadyExists(format!(
                    "segment {} already has a different {} recorded at {} (source {}); \
                     record a correction at another time",
                    existing.serial,
                    existing.kind.as_str(),
                    fmt_time(existing.at_unix_ns),
                    existing.source
                )));
            }
        };
        Ok(RecordMaintenanceResponse {
            event: Some(convert::maintenance(&event)),
            created,
        })
    }

    async fn get_cohorts(
        &self,
        q: GetCohortsRequest,
    ) -> Result<GetCohortsResponse, ManufacturingError> {
        let grouping = match CohortGrouping::try_from(q.group_by) {
            Ok(CohortGrouping::Unspecified) | Err(_) => {
                return Err(ManufacturingError::invalid(
                    "group_by",
                    "choose coating batch, substrate or figure-error band",
                ));
            }
            Ok(grouping) => grouping,
        };
        for site in &q.sites {
            validate_site_id(site)
                .map_err(|e| ManufacturingError::invalid("sites", e.to_string()))?;
        }
        let cohorts = cohorts::cohorts(
            self.segments.as_ref(),
            self.telemetry.as_ref(),
            grouping,
            &q.sites,
        )
        .await?;
        Ok(GetCohortsResponse {
            group_by: grouping as i32,
            cohorts,
        })
    }
}

fn reply<T>(result: Result<T, ManufacturingError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(manufacturing_status)
}

#[tonic::async_trait]
impl ManufacturingService for ManufacturingApi {
    async fn upload_segment_records(
        &self,
        request: Request<Streaming<UploadSegmentRecordsRequest>>,
    ) -> Result<Response<UploadSegmentRecordsResponse>, Status> {
        let caller = self
            .auth
            .authorize(
                &request,
                Role::Optics,
                "ManufacturingService/UploadSegmentRecords",
                "upload",
            )
            .await?;
        let stream: Pin<Box<Streaming<UploadSegmentRecordsRequest>>> =
            Box::pin(request.into_inner());
        let result = self.upload_from(&caller, stream).await;
        if let Ok(r) = &result {
            tracing::info!(
                caller = caller.name,
                received = r.received,
                stored = r.stored,
                unchanged = r.unchanged,
                rejected = r.rejected,
                rolled_back = r.rolled_back,
                "segment records uploaded"
            );
        }
        reply(result)
    }

    async fn get_segment(
        &self,
        request: Request<GetSegmentRequest>,
    ) -> Result<Response<GetSegmentResponse>, Status> {
        let serial = request.get_ref().serial.clone();
        self.auth
            .authorize(
                &request,
                Role::Viewer,
                "ManufacturingService/GetSegment",
                &serial,
            )
            .await?;
        reply(self.get_segment(request.into_inner()).await)
    }

    async fn record_installation(
        &self,
        request: Request<RecordInstallationRequest>,
    ) -> Result<Response<RecordInstallationResponse>, Status> {
        let q = request.get_ref();
        let subject = format!("{} at {} position {}", q.serial, q.site, q.position);
        self.auth
            .authorize(
                &request,
                Role::Optics,
                "ManufacturingService/RecordInstallation",
                &subject,
            )
            .await?;
        reply(self.record_installation(request.into_inner()).await)
    }

    async fn record_maintenance(
        &self,
        request: Request<RecordMaintenanceRequest>,
    ) -> Result<Response<RecordMaintenanceResponse>, Status> {
        let subject = request
            .get_ref()
            .event
            .as_ref()
            .map(|e| e.serial.clone())
            .unwrap_or_default();
        let caller = self
            .auth
            .authorize(
                &request,
                Role::Optics,
                "ManufacturingService/RecordMaintenance",
                &subject,
            )
            .await?;
        reply(self.record_maintenance(&caller, request.into_inner()).await)
    }

    async fn get_segment_lifecycle(
        &self,
        request: Request<GetSegmentLifecycleRequest>,
    ) -> Result<Response<SegmentLifecycle>, Status> {
        let serial = request.get_ref().serial.clone();
        self.auth
            .authorize(
                &request,
                Role::Viewer,
                "ManufacturingService/GetSegmentLifecycle",
                &serial,
            )
            .await?;
        reply(
            lifecycle::lifecycle(
                self.segments.as_ref(),
                self.telemetry.as_ref(),
                self.predictions.as_deref(),
                &serial,
            )
            .await,
        )
    }

    async fn get_cohorts(
        &self,
        request: Request<GetCohortsRequest>,
    ) -> Result<Response<GetCohortsResponse>, Status> {
        self.auth
            .authorize(
                &request,
                Role::Viewer,
                "ManufacturingService/GetCohorts",
                "",
            )
            .await?;
        reply(self.get_cohorts(request.into_inner()).await)
    }
}
