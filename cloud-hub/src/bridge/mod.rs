//! From an MQTT message to a durable batch and an `Ack`.
//!
//! The bridge decodes what a fog-node published, checks it (the site of the
//! topic — which the broker has already tied to the client's certificate —
//! must be the site the batch names; sizes and sample shapes must be sane),
//! keeps what it refuses as a dead letter with the reason, and makes accepted
//! batches durable: straight into the store in the embedded mode
//! ([`direct`]). Only then does it publish the cumulative `Ack` the fog-node
//! trims its spool by.

pub mod direct;
pub mod kafka;

use bytes::Bytes;
use obs_common::site::{SiteTopics, site_of_topic};
use obs_proto::v1::{Ack, NodeStatus, RejectCode, RejectedBatch, TelemetryBatch};
use prost::Message;

use crate::enroll::SiteRegistry;
use crate::ingest::{BatchLimits, BatchView, Rejection, check_batch};
use crate::ingress::{Inbound, Outbound};
use crate::store::DeadLetter;

/// What an inbound message turned out to be.
#[derive(Debug)]
pub enum Parsed {
    /// A batch that passed the checks, from `site`, holding `samples`
    /// samples (`batch.samples` is empty after [`Decode::Header`]).
    Batch {
        site: String,
        batch: TelemetryBatch,
        samples: usize,
    },
    /// A batch that decoded but will never be stored.
    Rejected {
        site: String,
        batch: TelemetryBatch,
        samples: usize,
        rejection: Rejection,
    },
    /// A node status report.
    Status { site: String, status: NodeStatus },
    /// Nothing usable: dead-letter it.
    Unusable(DeadLetter),
}

/// How much of a telemetry batch [`parse`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// Every sample, for writing them (the embedded mode).
    Full,
    /// The batch without its samples, which are only checked (the Kafka
    /// bridge forwards the payload as it came): see [`BatchView`].
    Header,
}

/// Classifies one message and counts what it was; never panics on any input.
pub fn parse(message: &Inbound, limits: &BatchLimits, decode: Decode) -> Parsed {
    let parsed = classify(message, limits, decode);
    match &parsed {
        Parsed::Batch { site, samples, .. } => crate::metrics::batch_received(site, *samples),
        Parsed::Rejected {
            site,
            samples,
            rejection,
            ..
        } => {
            crate::metrics::batch_received(site, *samples);
            crate::metrics::batch_rejected(site, rejection.code.as_str_name());
        }
        Parsed::Status { .. } => {}
        Parsed::Unusable(letter) => {
            crate::metrics::dead_letter(letter.site.as_deref().unwrap_or(""))
        }
    }
    parsed
}

fn classify(message: &Inbound, limits: &BatchLimits, decode: Decode) -> Parsed {
    let unusable = |site: Option<&str>, reason: String| {
        Parsed::Unusable(DeadLetter {
            site: site.map(str::to_owned),
            topic: message.topic.clone(),
            at_unix_ns: crate::time::now_unix_ns(),
            reason,
            payload: message.payload.to_vec(),
        })
    };
    let Some(site) = site_of_topic(&message.topic) else {
        return unusable(
            None,
            format!("topic {:?} is not a site topic", message.topic),
        );
    };
    let topics = SiteTopics::for_site(site);
    if message.topic == topics.status {
        return match NodeStatus::decode(message.payload.as_ref()) {
            Ok(status) => Parsed::Status {
                site: site.to_owned(),
                status,
            },
            Err(error) => unusable(Some(site), format!("undecodable node status: {error}")),
        };
    }
    if message.topic != topics.telemetry {
        return unusable(Some(site), format!("unexpected topic {:?}", message.topic));
    }
    if message.payload.len() > limits.max_batch_bytes {
        return unusable(
            Some(site),
            format!(
                "batch of {} bytes exceeds the limit of {} bytes",
                message.payload.len(),
                limits.max_batch_bytes
            ),
        );
    }
    let decoded = match decode {
        Decode::Full => TelemetryBatch::decode(message.payload.as_ref())
            .map(|batch| {
                let verdict = check_batch(site, &batch, limits);
                (batch.samples.len(), batch, verdict)
            })
            .map_err(|error| error.to_string()),
        Decode::Header => BatchView::read(message.payload.as_ref(), limits).map(|view| {
            let verdict = view.check(site);
            (view.sample_count(), view.header, verdict)
        }),
    };
    let (samples, batch, verdict) = match decoded {
        Ok(decoded) => decoded,
        Err(error) => return unusable(Some(site), format!("undecodable telemetry batch: {error}")),
    };
    let site = site.to_owned();
    match verdict {
        Ok(()) => Parsed::Batch {
            site,
            batch,
            samples,
        },
        Err(rejection) => Parsed::Rejected {
            site,
            batch,
            samples,
            rejection,
        },
    }
}

/// Refuses what a site that is not active sent: a batch becomes a
/// `REJECT_CODE_SITE_NOT_ACTIVE` rejection (dead-lettered and acked as
/// rejected, never stored), a status report a dead letter. Sites that were
/// never enrolled are refused the same way as revoked ones.
pub async fn admit(sites: &SiteRegistry, message: &Inbound, parsed: Parsed) -> Parsed {
    let site = match &parsed {
        Parsed::Batch { site, .. } | Parsed::Status { site, .. } => site.clone(),
        Parsed::Rejected { .. } | Parsed::Unusable(_) => return parsed,
    };
    if sites.admits(&site).await {
        return parsed;
    }
    let state = match sites.state(&site) {
        Some(crate::store::registry::SiteState::Revoked) => "revoked",
        _ => "not enrolled",
    };
    match parsed {
        Parsed::Batch {
            site,
            batch,
            samples,
        } => {
            let rejection = Rejection {
                code: RejectCode::SiteNotActive,
                reason: format!(
                    "site {site} is {state}: batch seq {} of node {:?} refused",
                    batch.seq, batch.node_id
                ),
            };
            crate::metrics::batch_rejected(&site, rejection.code.as_str_name());
            Parsed::Rejected {
                site,
                batch,
                samples,
                rejection,
            }
        }
        _ => {
            crate::metrics::dead_letter(&site);
            Parsed::Unusable(DeadLetter {
                site: Some(site.clone()),
                topic: message.topic.clone(),
                at_unix_ns: crate::time::now_unix_ns(),
                reason: format!("status of site {site}, which is {state}"),
                payload: message.payload.to_vec(),
            })
        }
    }
}

/// Publishes an `Ack` to a site's `down/ack` topic.
pub fn publish_ack(
    outbound: &dyn Outbound,
    site: &str,
    node_id: &str,
    up_to_seq: u64,
    rejected: Vec<RejectedBatch>,
) {
    let ack = Ack {
        node_id: node_id.to_owned(),
        up_to_seq,
        rejected,
    };
    let topic = SiteTopics::for_site(site).ack;
    match outbound.publish(topic, Bytes::from(ack.encode_to_vec())) {
        Ok(()) => crate::metrics::ack_published(),
        Err(error) => tracing::warn!(%error, site, node_id, up_to_seq, "failed to publish ack"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(topic: &str, payload: Vec<u8>) -> Inbound {
        Inbound {
            topic: topic.into(),
            payload: payload.into(),
        }
    }

    #[test]
    fn garbage_becomes_a_dead_letter_naming_the_site_and_reason() {
        let limits = BatchLimits::default();
        for decode in [Decode::Full, Decode::Header] {
            let Parsed::Unusable(letter) = parse(
                &inbound("/tenants/nrt/obs/v1/up/telemetry", vec![0xff, 0xff, 0xff]),
                &limits,
                decode,
            ) else {
                panic!("expected a dead letter")
            };
            assert_eq!(letter.site.as_deref(), Some("nrt"));
            assert!(
                letter.reason.starts_with("undecodable telemetry batch"),
                "{}",
                letter.reason
            );

            let Parsed::Unusable(letter) = parse(&inbound("elsewhere/x", vec![]), &limits, decode)
            else {
                panic!("expected a dead letter")
            };
            assert_eq!(letter.site, None);
        }
    }

    #[test]
    fn a_batch_naming_another_site_is_rejected_with_its_seq() {
        let batch = TelemetryBatch {
            site: "lsst".into(),
            node_id: "n".into(),
            seq: 9,
            ..Default::default()
        };
        for decode in [Decode::Full, Decode::Header] {
            let parsed = parse(
                &inbound("/tenants/nrt/obs/v1/up/telemetry", batch.encode_to_vec()),
                &BatchLimits::default(),
                decode,
            );
            let Parsed::Rejected {
                site,
                batch,
                rejection,
                ..
            } = parsed
            else {
                panic!("expected a rejection")
            };
            assert_eq!((site.as_str(), batch.seq), ("nrt", 9));
            assert_eq!(rejection.code, obs_proto::v1::RejectCode::WrongSite);
        }
    }

    #[tokio::test]
    async fn batches_and_statuses_of_sites_that_are_not_active_are_refused() {
        use crate::store::registry::{RegistryStore, SiteRecord, SiteState};
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(
            crate::store::sqlite::SqliteStore::open(&dir.path().join("h.sqlite")).unwrap(),
        );
        let mut nrt = SiteRecord::pending("nrt", 1);
        nrt.state = SiteState::Active;
        store.put_site(&nrt).await.unwrap();
        let mut old = SiteRecord::pending("old", 1);
        old.state = SiteState::Revoked;
        store.put_site(&old).await.unwrap();
        let sites = SiteRegistry::load(store).await.unwrap();
        let limits = BatchLimits::default();
        let sample = obs_proto::v1::Sample {
            device: "dome/shutter/1".into(),
            attribute: "percentage_open".into(),
            ts_unix_ns: 1_767_225_600_000_000_000,
            value: Some(obs_proto::v1::sample::Value::DoubleValue(1.0)),
            unit: "%".into(),
            quality: 1,
        };
        let batch_of = |site: &str| {
            let batch = TelemetryBatch {
                site: site.into(),
                node_id: "n".into(),
                seq: 3,
                samples: vec![sample.clone()],
                ..Default::default()
            };
            inbound(
                &format!("/tenants/{site}/obs/v1/up/telemetry"),
                batch.encode_to_vec(),
            )
        };
        let message = batch_of("nrt");
        let parsed = admit(&sites, &message, parse(&message, &limits, Decode::Full)).await;
        assert!(matches!(parsed, Parsed::Batch { .. }), "{parsed:?}");
        for (site, state) in [("old", "revoked"), ("stranger", "not enrolled")] {
            let message = batch_of(site);
            let Parsed::Rejected { rejection, .. } =
                admit(&sites, &message, parse(&message, &limits, Decode::Full)).await
            else {
                panic!("{site}: expected a rejection")
            };
            assert_eq!(rejection.code, RejectCode::SiteNotActive);
            assert!(
                rejection
                    .reason
                    .contains(&format!("site {site} is {state}")),
                "{}",
                rejection.reason
            );
        }
        let status = inbound(
            "/tenants/old/obs/v1/up/status",
            NodeStatus::default().encode_to_vec(),
        );
        let parsed = admit(&sites, &status, parse(&status, &limits, Decode::Full)).await;
        let Parsed::Unusable(letter) = parsed else {
            panic!("expected a dead letter")
        };
        assert_eq!(letter.reason, "status of site old, which is revoked");
    }

    #[test]
    fn oversized_payloads_are_refused_before_decoding() {
        let limits = BatchLimits {
            max_batch_bytes: 1024,
            ..Default::default()
        };
        let Parsed::Unusable(letter) = parse(
            &inbound("/tenants/nrt/obs/v1/up/telemetry", vec![0; 2000]),
            &limits,
            Decode::Header,
        ) else {
            panic!("expected a dead letter")
        };
        assert!(
            letter.reason.contains("2000 bytes exceeds"),
            "{}",
            letter.reason
        );
    }
}
