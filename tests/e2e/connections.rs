//! Connections and privileges as on a managed PostgreSQL: a role that is not a superuser,
//! authenticated with SCRAM (scripts/services asks members of `walrelay_scram_users` for a
//! password), its password read from `source.postgres.password_file`, a publication created
//! in advance by the tables' owner; and the errors that name what is missing.
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::{read_topic, relay_yaml, scratch_dir, services, unique, Db, Relay};

const WAIT: Duration = Duration::from_secs(120);

/// A URL for `role` (no password in it) on `db`'s database.
fn url_as(db: &Db, role: &str) -> String {
    let (scheme_and_user, rest) = db.url.split_once('@').expect("user@host in the URL");
    let (scheme, _) = scheme_and_user.split_once("://").expect("scheme");
    format!("{scheme}://{role}@{rest}")
}

/// The relay's configuration as `role`, its password in a file, the publication left alone.
fn yaml_as(db: &Db, role: &str, password: &str, slot: &str, prefix: &str) -> String {
    let dir = scratch_dir("pwfile");
    let file = dir.join("password");
    std::fs::write(&file, format!("{password}\n")).expect("password file");
    relay_yaml(db, slot, &["public.t"], prefix, &services().brokers, "", "")
        .replace(&db.url, &url_as(db, role))
        .replace(
            "    publication: ",
            &format!(
                "    password_file: {}\n    publication_mode: disabled\n    publication: ",
                file.display()
            ),
        )
        .replace(&format!("publication: {slot}"), "publication: owner_pub")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_role_with_scram_and_a_password_file() {
    let db = Db::create("managed").await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO t VALUES (1, 'one'), (2, 'two');
         CREATE PUBLICATION owner_pub FOR TABLE t;",
    )
    .await;
    let role = unique("mgd");
    let password = format!("pw {role} ü");
    db.exec(&format!(
        "CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{password}' IN ROLE walrelay_scram_users;
         CREATE ROLE {role}_norep LOGIN PASSWORD '{password}' IN ROLE walrelay_scram_users;"
    ))
    .await;
    let prefix = unique("mgd");
    let topic = format!("{prefix}.public.t");

    // A wrong password: the server's refusal, and the relay stops (no retry loop).
    let slot = unique("mgd");
    let mut relay = Relay::start(&slot, &yaml_as(&db, &role, "wrong", &slot, &prefix));
    let log = tokio::task::block_in_place(|| relay.failure_log(WAIT));
    assert!(
        log.contains("password authentication failed"),
        "the server's refusal is shown: {log}"
    );

    // No REPLICATION attribute: the error says which grant is missing.
    let slot = unique("mgd");
    let mut relay = Relay::start(
        &slot,
        &yaml_as(&db, &format!("{role}_norep"), &password, &slot, &prefix),
    );
    let log = tokio::task::block_in_place(|| relay.failure_log(WAIT));
    assert!(
        log.contains(&format!("role `{role}_norep` may not replicate"))
            && log.contains(&format!("ALTER ROLE {role}_norep WITH REPLICATION")),
        "{log}"
    );

    // REPLICATION but no SELECT on the table: the snapshot stops, naming the grant.
    let slot = unique("mgd");
    let mut relay = Relay::start(&slot, &yaml_as(&db, &role, &password, &slot, &prefix));
    let log = tokio::task::block_in_place(|| relay.failure_log(WAIT));
    assert!(
        log.contains("may not read") && log.contains("GRANT SELECT ON public.t TO"),
        "{log}"
    );

    // Granted: the same relay (its interrupted snapshot is taken again) reads and streams.
    db.exec(&format!("GRANT SELECT ON t TO {role}")).await;
    relay.restart();
    read_topic(&topic, WAIT, "the snapshot", |r| r.len() >= 2);
    db.exec("INSERT INTO t VALUES (3, 'three'); UPDATE t SET v = 'uno' WHERE id = 1;")
        .await;
    let records = read_topic(&topic, WAIT, "the changes", |r| r.len() >= 4);
    relay.assert_running();
    let events: Vec<_> = records
        .iter()
        .map(|r| {
            let p = r.payload();
            (p["op"].clone(), p["after"].clone())
        })
        .collect();
    assert_eq!(
        events,
        vec![
            (json!("r"), json!({"id": 1, "v": "one"})),
            (json!("r"), json!({"id": 2, "v": "two"})),
            (json!("c"), json!({"id": 3, "v": "three"})),
            (json!("u"), json!({"id": 1, "v": "uno"})),
        ]
    );
    let user: String = db
        .client
        .query_one(
            "SELECT usename::text FROM pg_stat_replication WHERE usename = $1",
            &[&role],
        )
        .await
        .expect("the walsender runs as the managed role")
        .get(0);
    assert_eq!(user, role);
    relay.stop();
}

/// TLS with `sslmode=verify-full`: against the CA that signed the server's certificate, both
/// connections (SQL and replication) are encrypted and the rows flow; a certificate from another
/// CA, and a host name the certificate does not name (`localhost` for a certificate of IP
/// 127.0.0.1), are refused with an error naming the check, without retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_full() {
    let s = services();
    let db = Db::create("tls").await;
    db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL); INSERT INTO t VALUES (1, 'one');",
    )
    .await;
    let prefix = unique("tls");
    let topic = format!("{prefix}.public.t");
    let url = |host: &str, ca: &Path| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            db.url.replace("127.0.0.1", host),
            ca.display()
        )
    };
    let yaml = |slot: &str, url: &str| {
        relay_yaml(&db, slot, &["public.t"], &prefix, &s.brokers, "", "").replace(&db.url, url)
    };

    for (what, url) in [
        ("another CA", url("127.0.0.1", &s.pg_other_ca)),
        (
            "a host name not in the certificate",
            url("localhost", &s.pg_ca),
        ),
    ] {
        let slot = unique("tls");
        let mut relay = Relay::start(&slot, &yaml(&slot, &url));
        let log = tokio::task::block_in_place(|| relay.failure_log(WAIT));
        assert!(
            log.contains("TLS to PostgreSQL failed (sslmode=verify-full)")
                && log.contains("certificate verify failed")
                && log.contains("Check sslrootcert"),
            "{what}: the error names the check and the fix: {log}"
        );
        assert!(
            !log.contains("restarting from the last confirmed position"),
            "{what}: not retried: {log}"
        );
    }

    let slot = unique("tls");
    let mut relay = Relay::start(&slot, &yaml(&slot, &url("127.0.0.1", &s.pg_ca)));
    read_topic(&topic, WAIT, "the snapshot over TLS", |r| !r.is_empty());
    db.exec("INSERT INTO t VALUES (2, 'two')").await;
    let records = read_topic(&topic, WAIT, "the insert over TLS", |r| r.len() >= 2);
    relay.assert_running();
    assert_eq!(records[1].payload()["after"], json!({"id": 2, "v": "two"}));
    // Both of the relay's connections to this database are encrypted.
    let rows = db
        .client
        .query(
            "SELECT a.backend_type, s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = $1 AND a.application_name = 'walrelay' ORDER BY 1",
            &[&db.name],
        )
        .await
        .expect("pg_stat_ssl");
    let seen: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        seen,
        vec![
            ("client backend".to_string(), true),
            ("walsender".to_string(), true)
        ]
    );
    relay.stop();
}
