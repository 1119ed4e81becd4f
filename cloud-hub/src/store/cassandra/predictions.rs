//! [`PredictionStore`] on Cassandra: `predictions ((site, position), at)`,
//! `predictions_by_serial ((serial), at)` and `latest_predictions ((site),
//! position)` (the newest per position, overwritten).

use async_trait::async_trait;

use super::{CassandraStore, fail};
use crate::store::StoreResult;
use crate::store::predictions::{PredictionStore, StoredPrediction};

/// The CQL of the prediction tables.
pub fn tables_cql(k: &str) -> Vec<(&'static str, String)> {
    let columns = "serial text, computed_at bigint, reflectivity_650_pct double, \
        days_to_threshold double, threshold_650_pct double, model_sha256 text, \
        model_version text, completeness double, features text, risk text, risk_reason text";
    vec![
        (
            "predictions",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.predictions (site text, position int, at bigint, \
                 {columns}, PRIMARY KEY ((site, position), at)) WITH CLUSTERING ORDER BY (at DESC)"
            ),
        ),
        (
            "predictions_by_serial",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.predictions_by_serial (serial_key text, at bigint, \
                 site text, position int, {columns}, PRIMARY KEY ((serial_key), at, site, position)) \
                 WITH CLUSTERING ORDER BY (at DESC, site ASC, position ASC)"
            ),
        ),
        (
            "latest_predictions",
            format!(
                "CREATE TABLE IF NOT EXISTS {k}.latest_predictions (site text, position int, \
                 at bigint, {columns}, PRIMARY KEY ((site), position))"
            ),
        ),
    ]
}

type Row = (
    String,
    i32,
    i64,
    String,
    i64,
    f64,
    f64,
    f64,
    String,
    String,
    f64,
    String,
    String,
    String,
);

const SELECT: &str = "site, position, at, serial, computed_at, reflectivity_650_pct, \
    days_to_threshold, threshold_650_pct, model_sha256, model_version, completeness, features, \
    risk, risk_reason";

fn from_row(row: Row) -> StoreResult<StoredPrediction> {
    let (
        site,
        position,
        at,
        serial,
        computed,
        refl,
        days,
        threshold,
        sha,
        version,
        completeness,
        features,
        risk,
        reason,
    ) = row;
    Ok(StoredPrediction {
        features: serde_json::from_str(&features).map_err(|e| {
            fail(
                format!("decoding the features of a prediction of {serial}"),
                e,
            )
        })?,
        site,
        position: position as u32,
        as_of_unix_s: at,
        serial,
        computed_at_unix_ns: computed,
        reflectivity_650_pct: refl,
        days_to_threshold: days,
        threshold_650_pct: threshold,
        model_sha256: sha,
        model_version: version,
        completeness,
        risk,
        risk_reason: reason,
    })
}

impl CassandraStore {
    async fn select_predictions(
        &self,
        cql: String,
        values: impl scylla::serialize::row::SerializeRow,
        what: &str,
    ) -> StoreResult<Vec<StoredPrediction>> {
        let rows = self
            .session()
            .query_unpaged(cql, values)
            .await
            .map_err(|e| fail(what, e))?
            .into_rows_result()
            .map_err(|e| fail(what, e))?;
        let mut out = Vec::new();
        for row in rows.rows::<Row>().map_err(|e| fail(what, e))? {
            out.push(from_row(row.map_err(|e| fail(what, e))?)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl PredictionStore for CassandraStore {
    async fn put_predictions(&self, predictions: &[StoredPrediction]) -> StoreResult<()> {
        let k = self.keyspace();
        for p in predictions {
            let features = serde_json::to_string(&p.features)
                .map_err(|e| fail("encoding prediction features", e))?;
            let values = (
                &p.site,
                p.position as i32,
                p.as_of_unix_s,
                &p.serial,
                p.computed_at_unix_ns,
                p.reflectivity_650_pct,
                p.days_to_threshold,
                p.threshold_650_pct,
                &p.model_sha256,
                &p.model_version,
                p.completeness,
                &features,
                &p.risk,
                &p.risk_reason,
            );
            let what = format!(
                "storing a prediction of {} at {} {}",
                p.serial, p.site, p.position
            );
            for table in ["predictions", "latest_predictions"] {
                let cql = format!(
                    "INSERT INTO {k}.{table} ({SELECT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                );
                self.session()
                    .query_unpaged(cql, values)
                    .await
                    .map_err(|e| fail(&what, e))?;
            }
            let cql = format!(
                "INSERT INTO {k}.predictions_by_serial (serial_key, {SELECT}) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            );
            let cql_values = (
                &p.serial,
                &p.site,
                p.position as i32,
                p.as_of_unix_s,
                &p.serial,
                p.computed_at_unix_ns,
                p.reflectivity_650_pct,
                p.days_to_threshold,
                p.threshold_650_pct,
                &p.model_sha256,
                &p.model_version,
                p.completeness,
                &features,
                &p.risk,
                &p.risk_reason,
            );
            self.session()
                .query_unpaged(cql, cql_values)
                .await
                .map_err(|e| fail(&what, e))?;
        }
        Ok(())
    }

    async fn latest_predictions(&self, site: &str) -> StoreResult<Vec<StoredPrediction>> {
        let cql = format!(
            "SELECT {SELECT} FROM {}.latest_predictions WHERE site = ?",
            self.keyspace()
        );
        self.select_predictions(cql, (site,), "reading the latest predictions")
            .await
    }

    async fn predictions_of(
        &self,
        serial: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredPrediction>> {
        let cql = format!(
            "SELECT {SELECT} FROM {}.predictions_by_serial WHERE serial_key = ? LIMIT ?",
            self.keyspace()
        );
        let mut newest_first = self
            .select_predictions(
                cql,
                (serial, limit as i32),
                "reading predictions of a segment",
            )
            .await?;
        newest_first.reverse();
        Ok(newest_first)
    }
}
