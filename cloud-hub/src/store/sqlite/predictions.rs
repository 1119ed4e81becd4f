//! [`PredictionStore`] on SQLite.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Row, params};

use super::{SqliteStore, json_list};
use crate::store::StoreResult;
use crate::store::predictions::{PredictionStore, StoredPrediction};

const COLUMNS: &str = "site, position, at, serial, computed_at, reflectivity_650_pct, \
    days_to_threshold, threshold_650_pct, model_sha256, model_version, completeness, features, \
    risk, risk_reason";

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredPrediction> {
    let features: String = row.get(11)?;
    Ok(StoredPrediction {
        site: row.get(0)?,
        position: row.get(1)?,
        as_of_unix_s: row.get(2)?,
        serial: row.get(3)?,
        computed_at_unix_ns: row.get(4)?,
        reflectivity_650_pct: row.get(5)?,
        days_to_threshold: row.get(6)?,
        threshold_650_pct: row.get(7)?,
        model_sha256: row.get(8)?,
        model_version: row.get(9)?,
        completeness: row.get(10)?,
        features: serde_json::from_str(&features).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(11, rusqlite::types::Type::Text, Box::new(e))
        })?,
        risk: row.get(12)?,
        risk_reason: row.get(13)?,
    })
}

#[async_trait]
impl PredictionStore for SqliteStore {
    async fn put_predictions(&self, predictions: &[StoredPrediction]) -> StoreResult<()> {
        let predictions = predictions.to_vec();
        self.write("storing predictions", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(&format!(
                    "INSERT OR REPLACE INTO predictions ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ))?;
                for p in &predictions {
                    let features = serde_json::to_string(&p.features)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    insert.execute(params![
                        p.site,
                        p.position,
                        p.as_of_unix_s,
                        p.serial,
                        p.computed_at_unix_ns,
                        p.reflectivity_650_pct,
                        p.days_to_threshold,
                        p.threshold_650_pct,
                        p.model_sha256,
                        p.model_version,
                        p.completeness,
                        features,
                        p.risk,
                        p.risk_reason
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn latest_predictions(&self, site: &str) -> StoreResult<Vec<StoredPrediction>> {
        let site = site.to_owned();
        self.read("reading predictions", move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM predictions p WHERE site = ?1 AND at = \
                 (SELECT max(at) FROM predictions WHERE site = p.site AND position = p.position) \
                 ORDER BY position"
            ))?;
            let rows = stmt.query_map([site], from_row)?;
            rows.collect()
        })
        .await
    }

    async fn latest_predictions_of_sites(
        &self,
        sites: &[String],
    ) -> StoreResult<Vec<StoredPrediction>> {
        let list = json_list(sites);
        let mut rows = self
            .read("reading predictions of the fleet", move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM predictions p \
                     WHERE site IN (SELECT value FROM json_each(?1)) AND at = \
                     (SELECT max(at) FROM predictions WHERE site = p.site AND position = p.position) \
                     ORDER BY site, position"
                ))?;
                let rows = stmt.query_map([list], from_row)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let order: HashMap<&str, usize> = sites
            .iter()
            .enumerate()
            .map(|(i, site)| (site.as_str(), i))
            .collect();
        rows.sort_by_key(|p| order.get(p.site.as_str()).copied());
        Ok(rows)
    }

    async fn predictions_of(
        &self,
        serial: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredPrediction>> {
        let serial = serial.to_owned();
        self.read("reading predictions of a segment", move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM (SELECT * FROM predictions WHERE serial = ?1 \
                 ORDER BY at DESC LIMIT ?2) ORDER BY at"
            ))?;
            let rows = stmt.query_map(params![serial, limit as i64], from_row)?;
            rows.collect()
        })
        .await
    }
}
