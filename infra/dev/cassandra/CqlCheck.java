// Readiness check for the dev Cassandra node: one real CQL query over the
// native protocol. Uses the DataStax 3.x driver that cassandra-all already
// ships (cassandra-driver-core, shaded classifier), so it needs no extra jar.
//
//   java -cp '<cassandra libs>/*:<dir of CqlCheck.class>' CqlCheck 127.0.0.1 9042
//
// Prints the server's release_version and exits 0, or prints why and exits 1.
import com.datastax.driver.core.Cluster;
import com.datastax.driver.core.Row;
import com.datastax.driver.core.Session;
import com.datastax.driver.core.SocketOptions;

public final class CqlCheck {
    public static void main(String[] args) {
        String host = args.length > 0 ? args[0] : "127.0.0.1";
        int port = args.length > 1 ? Integer.parseInt(args[1]) : 9042;
        // No try-with-resources: closing the driver waits ~2 s for Netty to
        // wind down; System.exit ends the check at once.
        try {
            Cluster cluster = Cluster.builder()
                    .addContactPoint(host)
                    .withPort(port)
                    .withoutJMXReporting()
                    .withoutMetrics()
                    .withSocketOptions(new SocketOptions()
                            .setConnectTimeoutMillis(3000)
                            .setReadTimeoutMillis(5000))
                    .build();
            Session session = cluster.connect();
            Row row = session.execute("SELECT release_version FROM system.local").one();
            if (row == null) {
                System.err.println("cql: system.local returned no row");
                System.exit(1);
            }
            System.out.println(row.getString("release_version"));
        } catch (RuntimeException e) {
            System.err.println("cql: " + e);
            System.exit(1);
        }
        System.exit(0);
    }
}
