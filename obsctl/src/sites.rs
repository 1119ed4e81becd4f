//! `obsctl sites join-token | list | revoke` (role admin).
//!
//! `join-token` prints the one line to run on the telescope's fog-node on
//! stdout (everything else goes to stderr), so a script can take it as is:
//! `$(obsctl sites join-token --site nrt)` on the telescope, or over ssh.

use std::time::Duration;

use obs_proto::v1::enrollment_service_client::EnrollmentServiceClient;
use obs_proto::v1::{
    CreateJoinTokenRequest, ListSitesRequest, Location, RevokeSiteRequest, SiteState,
};
use serde::Serialize;

use crate::cli::{Connection, Format, SitesCommand};
use crate::client::{Hub, status_error};
use crate::output::{Table, print_json, rfc3339};

/// Parses a token lifetime: `90s`, `30m`, `1h`, `2d` (a bare number is seconds).
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit, e.g. 90s, 30m, 1h, 2d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{text:?}: unknown unit {other:?} (s, m, h or d)")),
    };
    if value == 0 {
        return Err(format!("{text:?}: must be longer than zero"));
    }
    Ok(Duration::from_secs(value.saturating_mul(seconds)))
}

#[derive(Serialize)]
struct JoinTokenOut {
    site: String,
    token: String,
    token_id: String,
    expires_at: String,
    join_command: String,
    ca_hash: String,
}

#[derive(Serialize)]
struct SiteOut {
    site: String,
    state: String,
    display_name: String,
    latitude_deg: Option<f64>,
    longitude_deg: Option<f64>,
    altitude_m: Option<f64>,
    mirror_segments: u32,
    connected: bool,
    enrolled_at: Option<String>,
    revoked_at: Option<String>,
    certificate_not_after: Option<String>,
    topic_prefix: String,
}

#[derive(Serialize)]
struct RevokedOut {
    site: String,
    revoked_at: Option<String>,
    sessions_closed: u32,
}

fn state_name(state: i32) -> String {
    match SiteState::try_from(state) {
        Ok(SiteState::Pending) => "pending".into(),
        Ok(SiteState::Active) => "active".into(),
        Ok(SiteState::Revoked) => "revoked".into(),
        _ => format!("unknown({state})"),
    }
}

fn or_dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

/// Runs a `sites` command.
pub async fn run(
    connection: &Connection,
    command: SitesCommand,
    format: Format,
) -> anyhow::Result<()> {
    let hub = Hub::connect(connection).await?;
    let mut client = EnrollmentServiceClient::new(hub.channel.clone());
    match command {
        SitesCommand::JoinToken {
            site,
            name,
            lat,
            lon,
            alt,
            segments,
            ttl,
            reenroll,
        } => {
            let location = match (lat, lon, alt) {
                (Some(latitude_deg), Some(longitude_deg), Some(altitude_m)) => Some(Location {
                    latitude_deg,
                    longitude_deg,
                    altitude_m,
                }),
                _ => None,
            };
            let ttl =
                prost_types::Duration::try_from(ttl).map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
            let request = CreateJoinTokenRequest {
                site: site.clone(),
                display_name: name.unwrap_or_default(),
                location,
                ttl: Some(ttl),
                reenroll,
                mirror_segments: segments.unwrap_or(0),
            };
            let created = client
                .create_join_token(hub.request(request)?)
                .await
                .map_err(|s| status_error("CreateJoinToken", s))?
                .into_inner();
            let expires_at = created.expires_at.as_ref().map(rfc3339).unwrap_or_default();
            match format {
                Format::Json => print_json(&JoinTokenOut {
                    site,
                    token: created.token,
                    token_id: created.token_id,
                    expires_at,
                    join_command: created.join_command,
                    ca_hash: created.ca_hash,
                })?,
                Format::Table => {
                    eprintln!(
                        "join token {} for site {site}: single use, valid until {expires_at}; \
                         run this on the telescope's fog-node (shown only once):",
                        created.token_id
                    );
                    println!("{}", created.join_command);
                }
            }
        }
        SitesCommand::List => {
            let sites = client
                .list_sites(hub.request(ListSitesRequest {})?)
                .await
                .map_err(|s| status_error("ListSites", s))?
                .into_inner()
                .sites;
            let out: Vec<SiteOut> = sites
                .into_iter()
                .map(|s| SiteOut {
                    state: state_name(s.state),
                    latitude_deg: s.location.map(|l| l.latitude_deg),
                    longitude_deg: s.location.map(|l| l.longitude_deg),
                    altitude_m: s.location.map(|l| l.altitude_m),
                    enrolled_at: s.enrolled_at.as_ref().map(rfc3339),
                    revoked_at: s.revoked_at.as_ref().map(rfc3339),
                    certificate_not_after: s.certificate_not_after.as_ref().map(rfc3339),
                    site: s.site,
                    display_name: s.display_name,
                    mirror_segments: s.mirror_segments,
                    connected: s.connected,
                    topic_prefix: s.topic_prefix,
                })
                .collect();
            match format {
                Format::Json => print_json(&out)?,
                Format::Table => {
                    let mut table = Table::new([
                        "site",
                        "state",
                        "connected",
                        "name",
                        "segments",
                        "enrolled",
                        "certificate until",
                        "revoked",
                    ]);
                    for s in &out {
                        table.row([
                            s.site.clone(),
                            s.state.clone(),
                            if s.connected { "yes" } else { "no" }.into(),
                            if s.display_name.is_empty() {
                                "-".into()
                            } else {
                                s.display_name.clone()
                            },
                            s.mirror_segments.to_string(),
                            or_dash(&s.enrolled_at),
                            or_dash(&s.certificate_not_after),
                            or_dash(&s.revoked_at),
                        ]);
                    }
                    table.print();
                }
            }
        }
        SitesCommand::Revoke { site, reason } => {
            let request = RevokeSiteRequest {
                site: site.clone(),
                reason: reason.unwrap_or_default(),
            };
            let revoked = client
                .revoke_site(hub.request(request)?)
                .await
                .map_err(|s| status_error("RevokeSite", s))?
                .into_inner();
            let out = RevokedOut {
                site,
                revoked_at: revoked.revoked_at.as_ref().map(rfc3339),
                sessions_closed: revoked.sessions_closed,
            };
            match format {
                Format::Json => print_json(&out)?,
                Format::Table => println!(
                    "revoked site {} at {}; {} live session(s) closed; its batches are refused \
                     from now on and its certificates are in the hub's CRL",
                    out.site,
                    or_dash(&out.revoked_at),
                    out.sessions_closed
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_parse_with_units() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_ttl("5"), Ok(Duration::from_secs(5)));
        for bad in ["", "h", "0s", "3w", "-1h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
