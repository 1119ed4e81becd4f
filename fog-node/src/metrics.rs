//! Counters of the node, one constant name each (`obs_fog_node_<thing>_total`).
//!
//! The node has no HTTP endpoint: the counters are written to
//! `status.json` by the status writer and shown by `fog-node status`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Samples handed to the spool writer.
pub const SAMPLES_RECEIVED: &str = "obs_fog_node_samples_received_total";
/// Batches appended to the spool.
pub const BATCHES_SEALED: &str = "obs_fog_node_batches_sealed_total";
/// Samples appended to the spool.
pub const SAMPLES_SPOOLED: &str = "obs_fog_node_samples_spooled_total";
/// Spool append or sync failures (each retried).
pub const SPOOL_ERRORS: &str = "obs_fog_node_spool_errors_total";
/// Batches published on the telemetry topic (resends included).
pub const BATCHES_PUBLISHED: &str = "obs_fog_node_batches_published_total";
/// Payload bytes published.
pub const BYTES_PUBLISHED: &str = "obs_fog_node_bytes_published_total";
/// Times everything above the last ack was sent again (reconnect or ack timeout).
pub const RESENDS: &str = "obs_fog_node_resends_total";
/// Ack timeouts.
pub const ACK_TIMEOUTS: &str = "obs_fog_node_ack_timeouts_total";
/// Hub acks that moved the watermark.
pub const ACKS: &str = "obs_fog_node_acks_total";
/// Batches the hub rejected (quarantined here).
pub const REJECTED: &str = "obs_fog_node_rejected_batches_total";
/// Gap records sent ahead of the data after a loss.
pub const GAP_RECORDS_SENT_FIRST: &str = "obs_fog_node_gap_records_sent_first_total";
/// Connection attempts.
pub const CONNECT_ATTEMPTS: &str = "obs_fog_node_connect_attempts_total";
/// Connections that reached CONNACK.
pub const CONNECTS: &str = "obs_fog_node_connects_total";
/// Connection attempts or sessions that ended in an error.
pub const CONNECTION_ERRORS: &str = "obs_fog_node_connection_errors_total";
/// Certificate renewals that succeeded.
pub const RENEWALS: &str = "obs_fog_node_certificate_renewals_total";
/// Certificate renewals that failed.
pub const RENEWAL_ERRORS: &str = "obs_fog_node_certificate_renewal_errors_total";

macro_rules! counters {
    ($($field:ident => $name:ident),* $(,)?) => {
        /// The node's counters; cheap to bump from any thread.
        #[derive(Debug, Default)]
        pub struct NodeMetrics {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub $field: AtomicU64,
            )*
        }

        impl NodeMetrics {
            /// Every counter by its metric name.
            pub fn snapshot(&self) -> BTreeMap<String, u64> {
                let mut out = BTreeMap::new();
                $( out.insert($name.to_owned(), self.$field.load(Ordering::Relaxed)); )*
                out
            }
        }
    };
}

counters! {
    samples_received => SAMPLES_RECEIVED,
    batches_sealed => BATCHES_SEALED,
    samples_spooled => SAMPLES_SPOOLED,
    spool_errors => SPOOL_ERRORS,
    batches_published => BATCHES_PUBLISHED,
    bytes_published => BYTES_PUBLISHED,
    resends => RESENDS,
    ack_timeouts => ACK_TIMEOUTS,
    acks => ACKS,
    rejected => REJECTED,
    gap_records_sent_first => GAP_RECORDS_SENT_FIRST,
    connect_attempts => CONNECT_ATTEMPTS,
    connects => CONNECTS,
    connection_errors => CONNECTION_ERRORS,
    renewals => RENEWALS,
    renewal_errors => RENEWAL_ERRORS,
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    add(counter, 1);
}

/// Reads a counter.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
