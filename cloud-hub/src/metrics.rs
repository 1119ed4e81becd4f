//! The hub's metrics: every name in one place, `obs_hub_<thing>_total`
//! counters, histograms in seconds. Label values are bounded: site ids (the
//! enrolled sites), reject codes and stage names.

use std::sync::OnceLock;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const BATCHES_RECEIVED: &str = "obs_hub_batches_received_total";
pub const SAMPLES_RECEIVED: &str = "obs_hub_samples_received_total";
pub const BATCHES_DURABLE: &str = "obs_hub_batches_durable_total";
pub const SAMPLES_DURABLE: &str = "obs_hub_samples_durable_total";
pub const BATCHES_DUPLICATE: &str = "obs_hub_batches_duplicate_total";
pub const BATCHES_AHEAD: &str = "obs_hub_batches_ahead_total";
pub const BATCHES_REJECTED: &str = "obs_hub_batches_rejected_total";
pub const DEAD_LETTERS: &str = "obs_hub_dead_letters_total";
pub const ACKS_PUBLISHED: &str = "obs_hub_acks_published_total";
pub const SINK_BATCHES_WRITTEN: &str = "obs_hub_sink_batches_written_total";
pub const SINK_SAMPLES_WRITTEN: &str = "obs_hub_sink_samples_written_total";
pub const SINK_QUEUED: &str = "obs_hub_sink_queued_batches";
pub const STORE_WRITE_SECONDS: &str = "obs_hub_store_write_seconds";
pub const STORE_WRITE_ERRORS: &str = "obs_hub_store_write_errors_total";
/// Maintenance events sites reported, by outcome (`recorded`, `duplicate`,
/// `malformed`, `unknown_segment`, `conflict`).
pub const SITE_MAINTENANCE: &str = "obs_hub_site_maintenance_events_total";
/// From the fog-node sealing a batch to its rows being written.
pub const INGEST_LATENCY_SECONDS: &str = "obs_hub_ingest_latency_seconds";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once; later calls return the same handle.
pub fn install() -> Option<&'static PrometheusHandle> {
    if HANDLE.get().is_none() {
        let built = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .and_then(|b| b.install_recorder());
        match built {
            Ok(handle) => {
                let _ = HANDLE.set(handle);
            }
            Err(error) => tracing::warn!(%error, "metrics recorder not installed"),
        }
    }
    HANDLE.get()
}

/// The metrics in the Prometheus text format.
pub fn render() -> String {
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

pub fn batch_received(site: &str, samples: usize) {
    counter!(BATCHES_RECEIVED, "site" => site.to_owned()).increment(1);
    counter!(SAMPLES_RECEIVED, "site" => site.to_owned()).increment(samples as u64);
}

pub fn batch_durable(site: &str, samples: usize) {
    counter!(BATCHES_DURABLE, "site" => site.to_owned()).increment(1);
    counter!(SAMPLES_DURABLE, "site" => site.to_owned()).increment(samples as u64);
}

pub fn batch_duplicate(site: &str) {
    counter!(BATCHES_DUPLICATE, "site" => site.to_owned()).increment(1);
}

pub fn batch_ahead(site: &str) {
    counter!(BATCHES_AHEAD, "site" => site.to_owned()).increment(1);
}

pub fn batch_rejected(site: &str, code: &'static str) {
    counter!(BATCHES_REJECTED, "site" => site.to_owned(), "code" => code).increment(1);
}

/// `site` is empty when the topic named none.
pub fn dead_letter(site: &str) {
    counter!(DEAD_LETTERS, "site" => site.to_owned()).increment(1);
}

pub fn ack_published() {
    counter!(ACKS_PUBLISHED).increment(1);
}

/// A store write of `stage` ("ingest" or "sink") that took `seconds`.
pub fn store_write(stage: &'static str, seconds: f64, ok: bool) {
    histogram!(STORE_WRITE_SECONDS, "stage" => stage).record(seconds);
    if !ok {
        counter!(STORE_WRITE_ERRORS, "stage" => stage).increment(1);
    }
}

pub fn sink_written(site: &str, samples: usize) {
    counter!(SINK_BATCHES_WRITTEN, "site" => site.to_owned()).increment(1);
    counter!(SINK_SAMPLES_WRITTEN, "site" => site.to_owned()).increment(samples as u64);
}

pub fn sink_queued(site: &str, queued: usize) {
    gauge!(SINK_QUEUED, "site" => site.to_owned()).set(queued as f64);
}

/// Latency from the batch's creation at the fog-node to now.
pub fn ingest_latency(created_unix_ns: i64) {
    if created_unix_ns > 0 {
        let seconds = (crate::time::now_unix_ns() - created_unix_ns) as f64 / 1e9;
        if seconds >= 0.0 {
            histogram!(INGEST_LATENCY_SECONDS).record(seconds);
        }
    }
}

/// A maintenance event reported by `site`, with what became of it.
pub fn site_maintenance(site: &str, outcome: &'static str) {
    counter!(SITE_MAINTENANCE, "site" => site.to_owned(), "outcome" => outcome).increment(1);
}

pub const PREDICTIONS: &str = "obs_hub_predictions_total";

pub fn predictions_made(site: &str, count: usize) {
    counter!(PREDICTIONS, "site" => site.to_owned()).increment(count as u64);
}
