//! `obsctl telemetry query|stats`.

use obs_proto::v1::telemetry_service_client::TelemetryServiceClient;
use obs_proto::v1::{GetIngestStatsRequest, QueryTelemetryRequest, Resolution, sample};
use serde::Serialize;

use crate::cli::{Format, TelemetryCommand};
use crate::client::{Hub, status_error};
use crate::output::{Table, print_json, rfc3339, timestamp};

#[derive(Serialize)]
struct Point {
    time: String,
    value: serde_json::Value,
    unit: String,
}

#[derive(Serialize)]
struct Bucket {
    start: String,
    min: f64,
    max: f64,
    mean: f64,
    count: u64,
}

#[derive(Serialize)]
struct SiteStats {
    site: String,
    samples_stored: u64,
    batches_stored: u64,
    highest_durable_seq: u64,
    gaps: u64,
    gap_samples: u64,
    dead_lettered: u64,
    last_sample_at: Option<String>,
    node_backlog_batches: Option<u64>,
    node_state: Option<String>,
}

fn value_json(value: Option<&sample::Value>) -> serde_json::Value {
    match value {
        Some(sample::Value::DoubleValue(v)) => serde_json::json!(v),
        Some(sample::Value::IntValue(v)) => serde_json::json!(v),
        Some(sample::Value::BoolValue(v)) => serde_json::json!(v),
        Some(sample::Value::StringValue(v)) => serde_json::json!(v),
        None => serde_json::Value::Null,
    }
}

/// Runs a telemetry command.
pub async fn run(hub: &Hub, command: TelemetryCommand, format: Format) -> anyhow::Result<()> {
    let mut client = TelemetryServiceClient::new(hub.channel.clone());
    match command {
        TelemetryCommand::Query {
            site,
            device,
            attribute,
            from,
            to,
            resolution,
            limit,
        } => {
            let request = QueryTelemetryRequest {
                site,
                device,
                attribute,
                from: from.as_deref().map(timestamp).transpose()?,
                to: to.as_deref().map(timestamp).transpose()?,
                resolution: match resolution.as_str() {
                    "raw" => Resolution::Raw,
                    "1m" => Resolution::OneMinute,
                    "1h" => Resolution::OneHour,
                    other => anyhow::bail!("--resolution {other:?}: use raw, 1m or 1h"),
                } as i32,
                limit,
            };
            let response = client
                .query_telemetry(hub.request(request)?)
                .await
                .map_err(|s| status_error("QueryTelemetry", s))?
                .into_inner();
            if response.truncated {
                eprintln!("(truncated at --limit; narrow --from/--to)");
            }
            if !response.rollups.is_empty() {
                let buckets: Vec<Bucket> = response
                    .rollups
                    .iter()
                    .map(|r| Bucket {
                        start: r.bucket_start.as_ref().map(rfc3339).unwrap_or_default(),
                        min: r.min,
                        max: r.max,
                        mean: if r.count > 0 {
                            r.sum / r.count as f64
                        } else {
                            0.0
                        },
                        count: r.count,
                    })
                    .collect();
                return match format {
                    Format::Json => print_json(&buckets),
                    Format::Table => {
                        let mut table = Table::new(["start", "min", "max", "mean", "count"]);
                        for b in &buckets {
                            table.row([
                                b.start.clone(),
                                format!("{:.3}", b.min),
                                format!("{:.3}", b.max),
                                format!("{:.3}", b.mean),
                                b.count.to_string(),
                            ]);
                        }
                        table.print();
                        Ok(())
                    }
                };
            }
            let points: Vec<Point> = response
                .samples
                .iter()
                .map(|s| Point {
                    time: rfc3339(&crate::output::from_ns(s.ts_unix_ns)),
                    value: value_json(s.value.as_ref()),
                    unit: s.unit.clone(),
                })
                .collect();
            match format {
                Format::Json => print_json(&points),
                Format::Table => {
                    let mut table = Table::new(["time", "value", "unit"]);
                    for p in &points {
                        table.row([p.time.clone(), p.value.to_string(), p.unit.clone()]);
                    }
                    table.print();
                    Ok(())
                }
            }
        }
        TelemetryCommand::Stats { site } => {
            let response = client
                .get_ingest_stats(hub.request(GetIngestStatsRequest { sites: site })?)
                .await
                .map_err(|s| status_error("GetIngestStats", s))?
                .into_inner();
            let stats: Vec<SiteStats> = response
                .sites
                .into_iter()
                .map(|s| SiteStats {
                    last_sample_at: s.last_sample_at.as_ref().map(rfc3339),
                    node_backlog_batches: s.node_status.as_ref().map(|n| n.backlog_batches),
                    node_state: s.node_status.as_ref().map(|n| {
                        obs_proto::v1::NodeState::try_from(n.state)
                            .map(|state| {
                                state
                                    .as_str_name()
                                    .trim_start_matches("NODE_STATE_")
                                    .to_lowercase()
                            })
                            .unwrap_or_default()
                    }),
                    site: s.site,
                    samples_stored: s.samples_stored,
                    batches_stored: s.batches_stored,
                    highest_durable_seq: s.highest_durable_seq,
                    gaps: s.gaps,
                    gap_samples: s.gap_samples,
                    dead_lettered: s.dead_lettered,
                })
                .collect();
            match format {
                Format::Json => print_json(&stats),
                Format::Table => {
                    let mut table = Table::new([
                        "site",
                        "samples",
                        "batches",
                        "durable seq",
                        "gaps",
                        "gap samples",
                        "dead letters",
                        "last sample",
                        "node",
                        "backlog",
                    ]);
                    for s in &stats {
                        table.row([
                            s.site.clone(),
                            s.samples_stored.to_string(),
                            s.batches_stored.to_string(),
                            s.highest_durable_seq.to_string(),
                            s.gaps.to_string(),
                            s.gap_samples.to_string(),
                            s.dead_lettered.to_string(),
                            s.last_sample_at.clone().unwrap_or_else(|| "-".into()),
                            s.node_state.clone().unwrap_or_else(|| "-".into()),
                            s.node_backlog_batches
                                .map(|b| b.to_string())
                                .unwrap_or_else(|| "-".into()),
                        ]);
                    }
                    table.print();
                    Ok(())
                }
            }
        }
    }
}
