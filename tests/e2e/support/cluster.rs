//! A private, throwaway PostgreSQL cluster for the tests that change server settings the shared
//! cluster must keep (`wal_level`, `max_slot_wal_keep_size`): initdb'd in a temporary folder,
//! started on a free loopback port, stopped and removed on drop. Run as the `postgres` OS user
//! when the tests run as root (initdb refuses root).
use std::path::PathBuf;
use std::process::Command;

use super::{services, unique};

pub struct PrivateCluster {
    pub dir: PathBuf,
    pub port: u16,
}

fn as_postgres(program: PathBuf) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivateCluster {
    /// initdb and start, with `settings` (`name=value`) on top of wal_level=logical.
    pub fn start(settings: &[&str]) -> PrivateCluster {
        let bin = &services().pg_bin;
        let dir = std::env::temp_dir().join(unique("walrelay-pg"));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let _ = Command::new("chown").args(["postgres"]).arg(&dir).status();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut initdb = as_postgres(bin.join("initdb"));
        initdb.arg("-D").arg(dir.join("data")).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]);
        run(initdb, "initdb");
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\nmax_wal_senders = 4\nmax_replication_slots = 4\nwal_level = logical\n",
            dir.display()
        );
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        let conf_path = dir.join("data/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("postgresql.conf");
        let cluster = PrivateCluster { dir, port };
        cluster.pg_ctl(&["start", "-w", "-t", "60"]);
        cluster
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut c = as_postgres(services().pg_bin.join("pg_ctl"));
        c.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(args);
        run(c, &format!("pg_ctl {}", args.join(" ")));
    }

    /// Restarts with `settings` given on the command line (they override the file).
    pub fn restart_with(&self, settings: &[&str]) {
        let options = settings
            .iter()
            .map(|s| format!("-c {s}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.pg_ctl(&["restart", "-w", "-t", "60", "-m", "fast", "-o", &options]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let mut c = as_postgres(services().pg_bin.join("pg_ctl"));
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "immediate"]);
        let _ = c.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
