//! `obsctl segments ...` against a real hub (`cloud_hub::server::run`, the
//! embedded mode, in this test process) over TLS trusting the hub CA file:
//! the sample upload and its summary, client-side parse errors reported
//! with row and field (and rolling an atomic upload back), `show`, and a
//! 50 MB file streamed with bounded memory.
//!
//! Prints the measured upload throughputs (run with `--nocapture`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use cloud_hub::access::{MintedToken, Role};
use cloud_hub::config::{HubConfig, MqttConfig};
use obs_manufacturing::{Format, sample_csv_path};
use obsctl::cli::{Cli, Connection};
use obsctl::client::Hub;
use obsctl::segments::upload::{Counting, UploadRequest, read_into, upload};
use tokio_util::sync::CancellationToken;

fn free_addr() -> std::net::SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// A hub running in this process until dropped.
struct TestHub {
    dir: tempfile::TempDir,
    grpc: std::net::SocketAddr,
    token: String,
    stop: CancellationToken,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestHub {
    async fn start() -> TestHub {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = HubConfig {
            data_dir: dir.path().join("data"),
            public_host: "127.0.0.1".into(),
            mqtt: MqttConfig::Embedded {
                listen: free_addr(),
            },
            ..HubConfig::default()
        };
        config.grpc.listen = free_addr();
        config.http.listen = free_addr();
        cloud_hub::server::prepare_data_dir(&config.data_dir).expect("data dir");
        let minted = MintedToken::mint("optics-centre", Role::Optics);
        {
            let stores = cloud_hub::server::open_stores(&config)
                .await
                .expect("stores");
            stores
                .access
                .insert_api_token(&minted.record)
                .await
                .expect("token");
        }
        let stop = CancellationToken::new();
        let grpc = config.grpc.listen;
        tokio::spawn(cloud_hub::server::run(config, stop.clone()));
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(grpc).await.is_err() {
            assert!(Instant::now() < deadline, "the hub did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TestHub {
            dir,
            grpc,
            token: minted.token,
            stop,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("data/pki/ca.pem")
    }

    fn connection(&self) -> Connection {
        Connection {
            hub: self.grpc.to_string(),
            token: Some(self.token.clone()),
            ca_hash: None,
            ca_file: Some(self.ca_file()),
        }
    }

    /// Runs `obsctl ARGS` as the binary would (its `main` only parses and
    /// calls `cli::run`).
    async fn obsctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let ca = self.ca_file().display().to_string();
        let mut argv = vec![
            "obsctl",
            "--hub",
            &self.grpc.to_string(),
            "--token",
            &self.token,
            "--ca-file",
            &ca,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        argv.extend(args.iter().map(|a| a.to_string()));
        obsctl::cli::run(Cli::try_parse_from(argv)?).await
    }
}

/// Writes the sample rows again and again with fresh serials until
/// `target` bytes; returns the number of rows.
fn write_big_csv(path: &Path, target: u64) -> u64 {
    let sample = std::fs::read_to_string(sample_csv_path()).expect("samples");
    let mut lines = sample.lines();
    let header = lines.next().expect("header");
    let bodies: Vec<&str> = lines.map(|l| &l[l.find(',').expect("serial")..]).collect();
    let mut out = BufWriter::new(File::create(path).expect("create"));
    writeln!(out, "{header}").expect("write");
    let mut written = header.len() as u64 + 1;
    let mut rows = 0u64;
    while written < target {
        let body = bodies[(rows % bodies.len() as u64) as usize];
        let serial = format!("BULK-{rows:08}");
        writeln!(out, "{serial}{body}").expect("write");
        written += (serial.len() + body.len() + 1) as u64;
        rows += 1;
    }
    out.flush().expect("flush");
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_samples_upload_atomically_and_client_side_errors_name_row_and_field() {
    let hub = TestHub::start().await;
    let sample = sample_csv_path().display().to_string();
    hub.obsctl(&["segments", "upload", &sample])
        .await
        .expect("the samples upload");
    hub.obsctl(&[
        "--format",
        "json",
        "segments",
        "show",
        "CSOA-M1-T1-0001",
        "--history",
    ])
    .await
    .expect("show");

    // A second upload of the same file is idempotent.
    let client = Hub::connect_with_timeout(&hub.connection(), None)
        .await
        .expect("connect");
    let request = UploadRequest {
        path: sample_csv_path(),
        partial: false,
        replace: false,
        allow_extra: false,
    };
    let started = Instant::now();
    let again = upload(&client, &request, false).await.expect("upload");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        (
            again.received,
            again.stored,
            again.unchanged,
            again.rejected
        ),
        (66, 0, 66, 0)
    );
    println!(
        "66-record sample re-upload: {seconds:.3} s ({:.0} records/s)",
        66.0 / seconds
    );

    // A file with a bad number in row 2: client-side error, nothing stored.
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(sample_csv_path()).expect("samples");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replace("CSOA-M1-T1-0001", "CSOA-M1-T9-0001");
    lines[2] = lines[2]
        .replace("CSOA-M1-T1-0002", "CSOA-M1-T9-0002")
        .replace(",106.4,", ",heavy,");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, lines[..3].join("\n") + "\n").expect("write");
    let request = UploadRequest {
        path: bad.clone(),
        ..request
    };
    let summary = upload(&client, &request, false).await.expect("upload");
    assert_eq!(
        (
            summary.received,
            summary.stored,
            summary.rejected,
            summary.rolled_back
        ),
        (2, 0, 1, true)
    );
    let e = &summary.errors[0];
    assert_eq!(
        (e.row, e.serial.as_str(), e.field.as_str()),
        (2, "CSOA-M1-T9-0002", "mass_kg")
    );
    assert!(e.reason.contains("heavy"), "{e:?}");
    let rendered = obsctl::segments::upload::render(&summary);
    assert!(
        rendered.starts_with(&format!("{}: received 2", bad.display())),
        "{rendered}"
    );
    assert!(
        rendered.contains("row 2 CSOA-M1-T9-0002 mass_kg:"),
        "{rendered}"
    );
    let error = hub
        .obsctl(&["segments", "upload", &bad.display().to_string()])
        .await
        .expect_err("rejected rows fail the command");
    assert!(
        error
            .to_string()
            .contains("1 of 2 records rejected; nothing stored"),
        "{error}"
    );
    let missing = hub
        .obsctl(&["segments", "show", "CSOA-M1-T9-0001"])
        .await
        .expect_err("rolled back");
    assert!(missing.to_string().contains("NotFound"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_file_streams_through_a_bounded_queue_into_a_partial_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.csv");
    let rows = write_big_csv(&path, 50 * 1024 * 1024);
    let size = std::fs::metadata(&path).expect("metadata").len();
    let request = UploadRequest {
        path: path.clone(),
        partial: true,
        replace: false,
        allow_extra: false,
    };

    // The reader is at most a queue ahead of the stream: after the first
    // thousand messages it has read a few hundred kB of the 50 MB.
    let read = Arc::new(AtomicU64::new(0));
    let reader = Counting::new(File::open(&path).expect("open"), read.clone(), None);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reading = {
        let request = request.clone();
        tokio::task::spawn_blocking(move || read_into(reader, &request, Format::Csv, &tx))
    };
    for _ in 0..1000 {
        rx.recv().await.expect("a message");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ahead = read.load(Ordering::Relaxed);
    assert!(
        ahead < 2 * 1024 * 1024,
        "{ahead} bytes read for 1000 messages"
    );
    drop(rx);
    let report = reading.await.expect("reader");
    assert!(
        report.rows < rows,
        "the reader stopped when the stream went away"
    );

    // The whole file through the hub.
    let hub = TestHub::start().await;
    let client = Hub::connect_with_timeout(&hub.connection(), None)
        .await
        .expect("connect");
    let summary = upload(&client, &request, false).await.expect("upload");
    assert_eq!(summary.received as u64, rows);
    assert_eq!((summary.stored as u64, summary.rejected), (rows, 0));
    assert_eq!(summary.bytes, size);
    println!(
        "50 MB partial upload: {rows} records, {:.1} MB in {:.1} s ({:.0} records/s)",
        size as f64 / 1e6,
        summary.seconds,
        summary.records_per_second
    );
}
