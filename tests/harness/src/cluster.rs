//! A private Postgres server (its own data directory and port), for tests that stop or restart
//! the server: the machine's shared server is never touched.
//!
//! The server binaries come from `/usr/lib/postgresql/<newest>/bin` (or `$SETTLE_PG_BIN`).
//! `initdb` refuses to run as root, so when the test runs as root every server command runs as
//! the `postgres` user through `runuser`, in a data directory handed to that user. The server
//! listens on 127.0.0.1 only, trusts local connections, and is stopped (`immediate`) when the
//! value is dropped; the temporary directory goes with it.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::{Error, Result};

/// Environment variable naming the directory of `initdb`, `pg_ctl` and `postgres`.
pub const PG_BIN_ENV: &str = "SETTLE_PG_BIN";

/// Where Debian's packages put the server binaries, one directory per major version.
const PG_LIB: &str = "/usr/lib/postgresql";

/// The unprivileged user the server runs as when the test runs as root.
const SERVER_USER: &str = "postgres";

/// A running private Postgres server, stopped when dropped.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_root: bool,
    // Dropped last: the server is stopped before its directory goes.
    dir: tempfile::TempDir,
}

impl PgCluster {
    /// Initialises a data directory in a new temporary directory and starts a server on a free
    /// loopback port; returns once it accepts connections.
    pub fn start() -> Result<Self> {
        let bin = pg_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("settle-pg-")
            .tempdir()
            .map_err(|source| io("creating the cluster directory", source))?;
        let as_root = std::fs::metadata("/proc/self")
            .map_err(|source| io("reading /proc/self", source))?
            .uid()
            == 0;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(|source| io("creating the data directory", source))?;
        let cluster = Self {
            bin,
            data,
            port: free_port()?,
            as_root,
            dir,
        };
        if as_root {
            // The server user must own the data directory and reach it (and write its socket dir).
            for path in [cluster.dir.path(), cluster.data.as_path()] {
                cluster.checked(
                    "chown",
                    Command::new("chown").arg(SERVER_USER).arg(path).output(),
                )?;
            }
        }
        cluster.checked(
            "initdb",
            cluster
                .server_command("initdb")
                .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
                .args(["--no-sync", "-D"])
                .arg(&cluster.data)
                .output(),
        )?;
        cluster.pg_ctl(&["start"])?;
        Ok(cluster)
    }

    /// The admin URL of the server (user `postgres`, database `postgres`).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Restarts the server (`pg_ctl restart -m fast`): every open connection is ended. Returns
    /// once the server accepts connections again.
    pub fn restart(&self) -> Result<()> {
        self.pg_ctl(&["restart", "-m", "fast"])
    }

    /// Stops the server (`pg_ctl stop -m fast`).
    pub fn stop(&self) -> Result<()> {
        self.pg_ctl(&["stop", "-m", "fast"])
    }

    /// Starts a stopped server again; returns once it accepts connections.
    pub fn start_again(&self) -> Result<()> {
        self.pg_ctl(&["start"])
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let options = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.checked(
            "pg_ctl",
            self.server_command("pg_ctl")
                .args(args)
                .args(["-w", "-t", "60", "-D"])
                .arg(&self.data)
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(options)
                .output(),
        )
    }

    /// A command running `tool` from the server binaries, as the server user when root.
    fn server_command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_root {
            let mut command = Command::new("runuser");
            command
                .args(["-u", SERVER_USER, "--"])
                .arg(path)
                .current_dir(self.dir.path());
            command
        } else {
            Command::new(path)
        }
    }

    fn checked(&self, what: &str, output: std::io::Result<Output>) -> Result<()> {
        let output = output.map_err(|source| io(what, source))?;
        if output.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        Err(Error::Cluster(format!(
            "{what} failed ({}): {}{}\n{log}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        )))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Best effort: a server that is already stopped makes pg_ctl fail, which is fine.
        let _ = self
            .server_command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&self.data)
            .output();
    }
}

fn io(what: &str, source: std::io::Error) -> Error {
    Error::Cluster(format!("{what}: {source}"))
}

/// A port that was free a moment ago; the server takes it at once.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| io("finding a free port", source))
}

/// `$SETTLE_PG_BIN`, else the newest `/usr/lib/postgresql/<major>/bin` that has `pg_ctl`.
fn pg_bin() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    newest_bin(Path::new(PG_LIB)).ok_or_else(|| {
        Error::Cluster(format!(
            "no Postgres server binaries under {PG_LIB}/<version>/bin; install the postgresql package (./scripts/setup) or set {PG_BIN_ENV}"
        ))
    })
}

fn newest_bin(lib: &Path) -> Option<PathBuf> {
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_with_pg_ctl_wins() {
        let lib = tempfile::tempdir().expect("temp dir");
        for (version, with_ctl) in [("14", true), ("16", true), ("17", false), ("notes", true)] {
            let bin = lib.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).expect("bin dir");
            if with_ctl {
                std::fs::write(bin.join("pg_ctl"), b"").expect("pg_ctl");
            }
        }
        assert_eq!(
            newest_bin(lib.path()),
            Some(lib.path().join("16").join("bin"))
        );
        assert_eq!(newest_bin(&lib.path().join("missing")), None);
    }
}
