//! Output helpers: plain aligned tables and JSON, RFC 3339 times.

use prost_types::Timestamp;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A left-aligned text table.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.to_vec());
    }

    /// The table as text, one line per row.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = line(&self.header);
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A timestamp from Unix ns.
pub fn from_ns(ns: i64) -> Timestamp {
    Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

/// RFC 3339 text of a timestamp.
pub fn rfc3339(ts: &Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp(ts.seconds)
        .map(|t| t + time::Duration::nanoseconds(i64::from(ts.nanos)))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{}s", ts.seconds))
}

/// Parses an RFC 3339 time given on the command line.
pub fn timestamp(text: &str) -> anyhow::Result<Timestamp> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        anyhow::anyhow!("{text:?} is not an RFC 3339 time (2026-12-03T10:00:00Z): {e}")
    })?;
    Ok(Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_times_round_trip() {
        let mut table = Table::new(["site", "samples"]);
        table.row(["nrt".into(), "12".into()]);
        table.row(["lapalma".into(), "3".into()]);
        assert_eq!(
            table.render(),
            "site     samples\nnrt      12\nlapalma  3\n"
        );
        let ts = timestamp("2026-12-03T10:00:00.5Z").unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_796_292_000, 500_000_000));
        assert_eq!(rfc3339(&ts), "2026-12-03T10:00:00.5Z");
        assert!(
            timestamp("yesterday")
                .unwrap_err()
                .to_string()
                .contains("RFC 3339")
        );
    }
}
