//! The real Cassandra started by `scripts/services.sh` answers the scylla
//! driver: keyspace and table creation, a prepared write, a read back.

use std::time::Duration;

use obs_tests::{cassandra_node, unique};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

#[tokio::test]
async fn create_keyspace_write_and_read_a_row() {
    let node = cassandra_node();
    let session: Session = SessionBuilder::new()
        .known_node(&node)
        .connection_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap_or_else(|e| {
            panic!("cassandra at {node} did not answer (scripts/services.sh up): {e}")
        });

    let (version,): (String,) = session
        .query_unpaged("SELECT release_version FROM system.local", &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert!(
        version.starts_with('5') || version.starts_with('4'),
        "{version}"
    );

    let keyspace = unique("obs_test_");
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
                 {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await
        .unwrap();
    session
        .query_unpaged(
            format!(
                "CREATE TABLE IF NOT EXISTS {keyspace}.latest \
                 (site text, device text, attribute text, value double, \
                  PRIMARY KEY ((site), device, attribute))"
            ),
            &[],
        )
        .await
        .unwrap();
    let insert = session
        .prepare(format!(
            "INSERT INTO {keyspace}.latest (site, device, attribute, value) VALUES (?, ?, ?, ?)"
        ))
        .await
        .unwrap();
    for (device, value) in [("m1/segment/01", 12.5_f64), ("m1/segment/02", -3.25)] {
        session
            .execute_unpaged(&insert, ("nrt", device, "piston", value))
            .await
            .unwrap();
    }
    let rows: Vec<(String, f64)> = session
        .query_unpaged(
            format!("SELECT device, value FROM {keyspace}.latest WHERE site = ?"),
            ("nrt",),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String, f64)>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            ("m1/segment/01".to_string(), 12.5),
            ("m1/segment/02".to_string(), -3.25)
        ]
    );

    session
        .query_unpaged(format!("DROP KEYSPACE {keyspace}"), &[])
        .await
        .unwrap();
}
