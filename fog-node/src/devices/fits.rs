//! Minimal FITS writer for the simulated camera: one primary HDU with a
//! 16-bit image.
//!
//! [`build_fits`] is pure (header cards + big-endian data, each padded to a
//! multiple of 2880 bytes); [`write_fits`] is the thin file writer.
//! Header cards are 80 ASCII characters: keyword in columns 1–8, `= ` in
//! columns 9–10, fixed-format values (logical and numbers right-justified to
//! column 30, strings quoted from column 11).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Size of a FITS block, bytes.
pub const BLOCK: usize = 2880;
/// Size of a header card, bytes.
pub const CARD: usize = 80;

/// Errors of the FITS writer; each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum FitsError {
    /// The output folder could not be created.
    #[error("failed to create fits folder {path}: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("failed to write fits file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file name is not a plain file name.
    #[error("invalid fits file name {name:?}: must be a plain file name")]
    BadName {
        /// The name given.
        name: String,
    },
}

/// The exposure metadata written into the header.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposureHeader {
    /// Start of the exposure, ISO 8601 UTC (`2025-01-01T21:30:00.000`).
    pub date_obs: String,
    /// Exposure time, s.
    pub exptime_s: f64,
    /// Filter name.
    pub filter: String,
    /// Airmass at the start.
    pub airmass: f64,
    /// Telescope name.
    pub telescope: String,
    /// Instrument name.
    pub instrument: String,
    /// CCD temperature, °C.
    pub ccd_temperature_c: f64,
    /// Exposure sequence number.
    pub exposure_number: u64,
}

fn card(out: &mut String, keyword: &str, value: &str, comment: &str) {
    let mut c = format!("{keyword:<8}= {value:>20}");
    if !comment.is_empty() {
        let _ = write!(c, " / {comment}");
    }
    push_card(out, c);
}

fn push_card(out: &mut String, mut c: String) {
    c.truncate(CARD);
    let _ = write!(out, "{c:<80}");
}

/// A FITS string value: printable ASCII only, quotes doubled, at least 8 characters.
fn fits_string(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|ch| if (' '..='~').contains(&ch) { ch } else { '?' })
        .take(60)
        .collect::<String>()
        .replace('\'', "''");
    format!("'{clean:<8}'")
}

fn string_card(out: &mut String, keyword: &str, value: &str, comment: &str) {
    let mut c = format!("{keyword:<8}= {:<20}", fits_string(value));
    if !comment.is_empty() {
        let _ = write!(c, " / {comment}");
    }
    push_card(out, c);
}

fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
    } else {
        "0.0".to_owned()
    }
}

/// The deterministic test pattern: bias + fixed-pattern ripple + one star
/// whose peak grows with exposure time.
pub fn pattern_value(x: usize, y: usize, width: usize, height: usize, h: &ExposureHeader) -> i16 {
    let ripple = ((x * 7 + y * 13 + h.exposure_number as usize) % 50) as f64;
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let r2 = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
    let peak = (50.0 * h.exptime_s).clamp(0.0, 20_000.0);
    let star = peak * (-r2 / (2.0 * 2.0 * 2.0)).exp();
    (1000.0 + ripple + star)
        .round()
        .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// Builds a complete FITS file (primary HDU, BITPIX = 16, NAXIS = 2).
pub fn build_fits(h: &ExposureHeader, width: usize, height: usize) -> Vec<u8> {
    let mut header = String::with_capacity(BLOCK);
    card(&mut header, "SIMPLE", "T", "conforms to FITS standard");
    card(&mut header, "BITPIX", "16", "16-bit signed integers");
    card(&mut header, "NAXIS", "2", "two-dimensional image");
    card(&mut header, "NAXIS1", &width.to_string(), "columns");
    card(&mut header, "NAXIS2", &height.to_string(), "rows");
    string_card(
        &mut header,
        "DATE-OBS",
        &h.date_obs,
        "UTC start of exposure",
    );
    card(
        &mut header,
        "EXPTIME",
        &float(h.exptime_s),
        "exposure time [s]",
    );
    string_card(&mut header, "FILTER", &h.filter, "filter name");
    card(
        &mut header,
        "AIRMASS",
        &float(h.airmass),
        "airmass at start",
    );
    string_card(&mut header, "TELESCOP", &h.telescope, "telescope");
    string_card(&mut header, "INSTRUME", &h.instrument, "instrument");
    card(
        &mut header,
        "CCD-TEMP",
        &float(h.ccd_temperature_c),
        "CCD temperature [degC]",
    );
    card(
        &mut header,
        "EXPNUM",
        &h.exposure_number.to_string(),
        "exposure number",
    );
    string_card(&mut header, "ORIGIN", "observatory hub simulator", "");
    push_card(&mut header, "END".to_owned());
    let mut bytes = header.into_bytes();
    bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, b' ');

    let data_start = bytes.len();
    bytes.reserve(width * height * 2 + BLOCK);
    for y in 0..height {
        for x in 0..width {
            bytes.extend_from_slice(&pattern_value(x, y, width, height, h).to_be_bytes());
        }
    }
    let data_len = bytes.len() - data_start;
    bytes.resize(data_start + data_len.div_ceil(BLOCK) * BLOCK, 0);
    bytes
}

/// Writes `bytes` to `dir/file_name`, creating `dir` if needed; returns the path.
pub fn write_fits(dir: &Path, file_name: &str, bytes: &[u8]) -> Result<PathBuf, FitsError> {
    let plain = Path::new(file_name)
        .file_name()
        .is_some_and(|n| n == file_name);
    if !plain {
        return Err(FitsError::BadName {
            name: file_name.to_owned(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| FitsError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(file_name);
    std::fs::write(&path, bytes).map_err(|source| FitsError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// `YYYY-MM-DDThh:mm:ss.sss` (UTC) of a Unix time in ns.
pub fn iso8601_utc(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let millis = unix_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ExposureHeader {
        ExposureHeader {
            date_obs: iso8601_utc(1_735_767_000_123_000_000),
            exptime_s: 120.0,
            filter: "R".to_owned(),
            airmass: 1.234,
            telescope: "OBS-4M".to_owned(),
            instrument: "OBSCAM's".to_owned(),
            ccd_temperature_c: -100.0,
            exposure_number: 42,
        }
    }

    /// Parses the header cards into (keyword, raw value) until END.
    fn cards(bytes: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for chunk in bytes.chunks(CARD) {
            let text = std::str::from_utf8(chunk).expect("ascii header");
            let key = text[..8].trim().to_owned();
            if key == "END" {
                out.push((key, String::new()));
                break;
            }
            assert_eq!(&text[8..10], "= ", "card {text:?}");
            let value = text[10..]
                .split(" / ")
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            out.push((key, value));
        }
        out
    }

    #[test]
    fn bytes_parse_back() {
        let h = header();
        let bytes = build_fits(&h, 32, 24);
        assert_eq!(bytes.len() % BLOCK, 0);
        assert!(bytes[..BLOCK].is_ascii());
        let cards = cards(&bytes);
        let get = |k: &str| {
            cards
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(cards[0], ("SIMPLE".to_owned(), "T".to_owned()));
        assert_eq!(&bytes[29..30], b"T", "logical in column 30");
        assert_eq!(get("BITPIX").as_deref(), Some("16"));
        assert_eq!(get("NAXIS").as_deref(), Some("2"));
        assert_eq!(get("NAXIS1").as_deref(), Some("32"));
        assert_eq!(get("NAXIS2").as_deref(), Some("24"));
        assert_eq!(
            get("DATE-OBS").as_deref(),
            Some("'2025-01-01T21:30:00.123'")
        );
        assert_eq!(get("FILTER").as_deref(), Some("'R       '"));
        assert_eq!(get("INSTRUME").as_deref(), Some("'OBSCAM''s'"));
        let exptime: f64 = get("EXPTIME").expect("EXPTIME").parse().expect("number");
        assert_eq!(exptime, 120.0);
        let airmass: f64 = get("AIRMASS").expect("AIRMASS").parse().expect("number");
        assert!((airmass - 1.234).abs() < 1e-9);
        assert!(get("TELESCOP").is_some());
        assert_eq!(cards.last().map(|c| c.0.as_str()), Some("END"));

        // header is one block; data follows, big-endian
        let header_len = cards.len() * CARD;
        assert!(header_len <= BLOCK);
        let data = &bytes[BLOCK..];
        assert_eq!(data.len(), (32 * 24 * 2usize).div_ceil(BLOCK) * BLOCK);
        let first = i16::from_be_bytes([data[0], data[1]]);
        assert_eq!(first, pattern_value(0, 0, 32, 24, &h));
        let centre = 2 * (12 * 32 + 16);
        let star = i16::from_be_bytes([data[centre], data[centre + 1]]);
        assert!(star > 6000, "star peak {star}");
        assert!(
            data[32 * 24 * 2..].iter().all(|&b| b == 0),
            "data padded with zeros"
        );
    }

    #[test]
    fn writer_names_the_path_on_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = build_fits(&header(), 8, 8);
        let path = write_fits(dir.path(), "a.fits", &bytes).expect("written");
        assert_eq!(std::fs::read(&path).expect("read back"), bytes);

        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").expect("write");
        let err = write_fits(&blocker.join("sub"), "b.fits", &bytes).expect_err("not a folder");
        assert!(err.to_string().contains("file"), "{err}");
        assert!(matches!(
            write_fits(dir.path(), "../x.fits", &bytes),
            Err(FitsError::BadName { .. })
        ));
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00.000");
        assert_eq!(
            iso8601_utc(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000"
        );
        assert_eq!(
            iso8601_utc(1_735_689_599_999_000_000),
            "2024-12-31T23:59:59.999"
        );
    }
}
