//! `TelemetryService`: stored samples, rollups and ingest counters (role viewer).

use obs_common::site::validate_site_id;
use obs_proto::v1::telemetry_service_server::TelemetryService;
use obs_proto::v1::{
    GetIngestStatsRequest, GetIngestStatsResponse, QueryTelemetryRequest, QueryTelemetryResponse,
    Resolution as ApiResolution, Rollup, SiteIngestStats,
};
use tonic::{Request, Response, Status};

use super::{ApiContext, store_status, time_from_ns, time_to_ns};
use crate::access::Role;
use crate::ingest::Resolution;
use crate::store::SeriesQuery;

/// Points returned when the request does not set a limit.
pub const DEFAULT_LIMIT: usize = 10_000;
/// Range queried when the request sets no `from`: one day.
pub const DEFAULT_RANGE_NS: i64 = 86_400_000_000_000;
/// Most points one call returns.
pub const MAX_LIMIT: usize = 100_000;

pub struct TelemetryApi {
    context: ApiContext,
}

impl TelemetryApi {
    pub fn new(context: ApiContext) -> Self {
        TelemetryApi { context }
    }
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

#[tonic::async_trait]
impl TelemetryService for TelemetryApi {
    async fn query_telemetry(
        &self,
        request: Request<QueryTelemetryRequest>,
    ) -> Result<Response<QueryTelemetryResponse>, Status> {
        let subject = request.get_ref().site.clone();
        self.context
            .auth
            .authorize(
                &request,
                Role::Viewer,
                "TelemetryService/QueryTelemetry",
                &subject,
            )
            .await?;
        let q = request.into_inner();
        validate_site_id(&q.site).map_err(|e| invalid("site", e))?;
        if q.device.is_empty() || q.attribute.is_empty() {
            return Err(invalid("device/attribute", "both are required"));
        }
        let store = &self.context.telemetry;
        // Without `to`, the range ends after the site's latest sample (its
        // clock may run ahead of ours in an accelerated simulation); without
        // `from`, it covers the day before `to`.
        let to_ns = match &q.to {
            Some(to) => time_to_ns(to),
            None => store
                .load_site_state(&q.site)
                .await
                .map_err(store_status)?
                .map(|s| s.counters.last_sample_ts_ns.saturating_add(1))
                .filter(|ts| *ts > 1)
                .unwrap_or_else(crate::time::now_unix_ns),
        };
        let from_ns = q
            .from
            .as_ref()
            .map(time_to_ns)
            .unwrap_or_else(|| to_ns.saturating_sub(DEFAULT_RANGE_NS));
        if from_ns >= to_ns {
            return Err(invalid("from", "must be before `to`"));
        }
        let limit = match q.limit as usize {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let query = SeriesQuery {
            site: q.site.clone(),
            device: q.device.clone(),
            attribute: q.attribute.clone(),
            from_ns,
            to_ns,
            limit: limit + 1,
        };
        let store = &self.context.telemetry;
        let resolution =
            ApiResolution::try_from(q.resolution).unwrap_or(ApiResolution::Unspecified);
        let mut response = QueryTelemetryResponse::default();
        match resolution {
            ApiResolution::Unspecified | ApiResolution::Raw => {
                let mut samples = store.query_samples(&query).await.map_err(store_status)?;
                response.truncated = samples.len() > limit;
                samples.truncate(limit);
                response.samples = samples;
            }
            ApiResolution::OneMinute | ApiResolution::OneHour => {
                let resolution = if resolution == ApiResolution::OneMinute {
                    Resolution::Minute
                } else {
                    Resolution::Hour
                };
                let mut points = store
                    .query_rollups(&query, resolution)
                    .await
                    .map_err(store_status)?;
                response.truncated = points.len() > limit;
                points.truncate(limit);
                response.rollups = points
                    .into_iter()
                    .map(|p| Rollup {
                        bucket_start: Some(time_from_ns(
                            p.bucket_start.saturating_mul(1_000_000_000),
                        )),
                        min: p.aggregate.min,
                        max: p.aggregate.max,
                        sum: p.aggregate.sum,
                        count: p.aggregate.count,
                    })
                    .collect();
            }
        }
        Ok(Response::new(response))
    }

    async fn get_ingest_stats(
        &self,
        request: Request<GetIngestStatsRequest>,
    ) -> Result<Response<GetIngestStatsResponse>, Status> {
        self.context
            .auth
            .authorize(
                &request,
                Role::Viewer,
                "TelemetryService/GetIngestStats",
                "",
            )
            .await?;
        let store = &self.context.telemetry;
        let mut sites = request.into_inner().sites;
        for site in &sites {
            validate_site_id(site).map_err(|e| invalid("sites", e))?;
        }
        if sites.is_empty() {
            sites = store.sites_with_state().await.map_err(store_status)?;
            for site in self.context.live.sites() {
                if !sites.contains(&site) {
                    sites.push(site);
                }
            }
            sites.sort();
        }
        let dead: std::collections::HashMap<Option<String>, u64> = store
            .dead_letter_counts()
            .await
            .map_err(store_status)?
            .into_iter()
            .collect();
        let mut out = Vec::with_capacity(sites.len());
        for site in sites {
            let state = store
                .load_site_state(&site)
                .await
                .map_err(store_status)?
                .unwrap_or_default();
            let c = &state.counters;
            let live = self.context.live.get(&site);
            out.push(SiteIngestStats {
                samples_stored: c.samples_stored,
                batches_stored: c.batches_stored,
                highest_durable_seq: state.highest_settled(),
                gaps: c.gaps,
                gap_samples: c.gap_samples,
                dead_lettered: dead.get(&Some(site.clone())).copied().unwrap_or(0),
                last_sample_at: (c.last_sample_ts_ns > 0)
                    .then(|| time_from_ns(c.last_sample_ts_ns)),
                last_batch_at: live.last_ack_unix_ns.map(time_from_ns),
                node_status: live.status,
                site,
            });
        }
        Ok(Response::new(GetIngestStatsResponse { sites: out }))
    }
}
