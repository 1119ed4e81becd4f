//! Site ids and the per-site MQTT topic layout of the wire contract.

use crate::{Error, Result};

/// Longest site id: the broker tenant (certificate subject O) and a Kafka
/// topic suffix must both fit.
pub const MAX_SITE_LEN: usize = 32;

/// Checks a site id against `[a-z][a-z0-9]{1,31}`.
///
/// The same id is the certificate CN and O, the embedded broker's tenant
/// (alphanumeric only), the Mosquitto username and the Kafka topic suffix,
/// so nothing outside this alphabet is accepted anywhere.
pub fn validate_site_id(site: &str) -> Result<()> {
    let invalid = |reason| {
        Err(Error::InvalidSiteId {
            site: site.to_owned(),
            reason,
        })
    };
    let bytes = site.as_bytes();
    if bytes.len() < 2 {
        return invalid("must be at least 2 characters");
    }
    if bytes.len() > MAX_SITE_LEN {
        return invalid("must be at most 32 characters");
    }
    if !bytes[0].is_ascii_lowercase() {
        return invalid("must start with a lowercase letter a-z");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return invalid("may contain only lowercase letters a-z and digits 0-9");
    }
    Ok(())
}

/// Topic prefix of a site: `/tenants/{site}/obs/v1`.
pub fn topic_prefix(site: &str) -> String {
    format!("/tenants/{site}/obs/v1")
}

/// The MQTT topics of one site, derived from the prefix the hub handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteTopics {
    /// `{prefix}/up/telemetry`: TelemetryBatch, QoS 1.
    pub telemetry: String,
    /// `{prefix}/up/status`: retained NodeStatus and the Last Will.
    pub status: String,
    /// `{prefix}/down/ack`: Ack from the hub.
    pub ack: String,
}

impl SiteTopics {
    /// Topics under `prefix` (no trailing slash).
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.trim_end_matches('/');
        SiteTopics {
            telemetry: format!("{prefix}/up/telemetry"),
            status: format!("{prefix}/up/status"),
            ack: format!("{prefix}/down/ack"),
        }
    }

    /// Topics of `site` under the standard prefix.
    pub fn for_site(site: &str) -> Self {
        Self::new(&topic_prefix(site))
    }
}

/// The site named by a topic under the standard layout
/// (`/tenants/{site}/obs/v1/...`), if it has that shape.
pub fn site_of_topic(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix("/tenants/")?;
    let (site, rest) = rest.split_once('/')?;
    rest.starts_with("obs/v1/").then_some(site)
}

/// Kafka topic holding a site's telemetry.
pub fn kafka_telemetry_topic(site: &str) -> String {
    format!("obs.telemetry.{site}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_site_ids() {
        for site in ["nrt", "lapalma2", "ab", "a1234567890123456789012345678901"] {
            assert!(validate_site_id(site).is_ok(), "{site}");
        }
    }

    #[test]
    fn rejects_ids_a_tenant_or_topic_cannot_hold() {
        for (site, reason) in [
            ("", "at least 2"),
            ("a", "at least 2"),
            ("1abc", "start with"),
            ("Nrt", "start with"),
            ("site-03", "only lowercase"),
            ("nrt/x", "only lowercase"),
            ("a12345678901234567890123456789012", "at most 32"),
        ] {
            let error = validate_site_id(site).unwrap_err().to_string();
            assert!(error.contains(reason), "{site}: {error}");
            assert!(error.contains(&format!("{site:?}")), "{error}");
        }
    }

    #[test]
    fn topics_follow_the_prefix() {
        let topics = SiteTopics::for_site("nrt");
        assert_eq!(topics.telemetry, "/tenants/nrt/obs/v1/up/telemetry");
        assert_eq!(topics.status, "/tenants/nrt/obs/v1/up/status");
        assert_eq!(topics.ack, "/tenants/nrt/obs/v1/down/ack");
        assert_eq!(SiteTopics::new("/tenants/nrt/obs/v1/"), topics);
    }

    #[test]
    fn site_is_read_back_from_a_topic() {
        assert_eq!(
            site_of_topic("/tenants/nrt/obs/v1/up/telemetry"),
            Some("nrt")
        );
        assert_eq!(site_of_topic("/tenants/nrt/other/up"), None);
        assert_eq!(site_of_topic("tenants/nrt/obs/v1/up"), None);
    }
}
