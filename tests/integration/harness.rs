#![allow(dead_code)]
//! Starts the real `partnergate` binary on a fresh home folder and talks to it over mTLS.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use partnergate_client::{GatewayClient, Identity};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_partnergate")
}

/// The repository's policies folder.
pub fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// Runs `partnergate --home HOME args...` to completion and returns (success, stdout+stderr).
pub fn run(home: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run partnergate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The PostgreSQL server the suite runs against, if any (`PARTNERGATE_TEST_DATABASE_URL`).
pub fn postgres_server() -> Option<String> {
    std::env::var("PARTNERGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether the suite runs on PostgreSQL.
pub fn on_postgres() -> bool {
    postgres_server().is_some()
}

/// Creates a new, empty database on the server and returns its URL.
pub fn create_database(server: &str) -> String {
    use sqlx::Connection;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("t_{}_{n}", std::process::id());
    let server = server.to_string();
    let statement = format!("CREATE DATABASE {name}");
    // Its own thread and runtime: callers may be inside a test's runtime already.
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&server).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let base = server.rsplit_once('/').map_or(&*server, |(b, _)| b);
                format!("{base}/{name}")
            })
    })
    .join()
    .unwrap()
}

/// A fresh installation: `init` run in a temporary folder against the repository's policies.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Self::with_policies(&policies())
    }

    /// A new installation loaded with the synthetic demo caseload of `participants`; `demo`'s
    /// output is returned (the curl commands it prints).
    pub fn with_demo(participants: u32) -> (Self, String) {
        let home = Self::new();
        let n = participants.to_string();
        let (ok, out) = home.run(&["demo", "--no-serve", "--participants", &n]);
        assert!(ok, "{out}");
        (home, out)
    }

    /// An installation whose agreement lives in `policy_dir` (tests that change it).
    ///
    /// With `PARTNERGATE_TEST_DATABASE_URL` set (`tests/postgres/with-cluster.sh`), the
    /// installation gets its own new database on that PostgreSQL server, named in its
    /// `partnergate.toml` as an operator would; otherwise its SQLite file.
    pub fn with_policies(policy_dir: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = postgres_server().map(|server| create_database(&server));
        let mut init = Command::new(bin());
        init.arg("--home").arg(dir.path()).args([
            "init",
            "--policy-dir",
            policy_dir.to_str().unwrap(),
        ]);
        if let Some(url) = &database {
            init.env("PARTNERGATE_DATABASE_URL", url);
        }
        let out = init.output().expect("run partnergate init");
        assert!(
            out.status.success(),
            "init failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(url) = &database {
            let config = dir.path().join("partnergate.toml");
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str(&format!("database_url = {url:?}\n"));
            std::fs::write(&config, text).unwrap();
        }
        Self { dir }
    }

    /// The PostgreSQL database of this installation, if it runs on PostgreSQL.
    pub fn database_url(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.path().join("partnergate.toml")).ok()?;
        let line = text.lines().find(|l| l.starts_with("database_url = "))?;
        Some(
            line["database_url = ".len()..]
                .trim_matches('"')
                .to_string(),
        )
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn certs(&self) -> PathBuf {
        self.path().join("certs")
    }

    pub fn run(&self, args: &[&str]) -> (bool, String) {
        run(self.path(), args)
    }

    /// Starts `serve` on free ports.
    pub fn start(&self) -> Gateway {
        self.start_with_env(&[])
    }

    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Gateway {
        let log = self.path().join("server.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(bin())
            .arg("--home")
            .arg(self.path())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--health-listen",
                "127.0.0.1:0",
            ])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut api, mut health) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while api.is_none() || health.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "server did not start; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            };
            if let Some(a) = line.strip_prefix("partnergate: api listening on https://") {
                api = Some(a.parse().unwrap());
            }
            if let Some(a) = line.strip_prefix("partnergate: health listening on http://") {
                health = Some(a.parse().unwrap());
            }
        }
        Gateway {
            child: Some(child),
            api: api.unwrap(),
            health: health.unwrap(),
            certs: self.certs(),
            log,
        }
    }
}

/// A running gateway process.
pub struct Gateway {
    child: Option<Child>,
    pub api: SocketAddr,
    pub health: SocketAddr,
    pub certs: PathBuf,
    pub log: PathBuf,
}

impl Gateway {
    pub fn base(&self) -> String {
        format!("https://localhost:{}", self.api.port())
    }

    /// A client presenting `client`'s certificate from the installation.
    pub fn client(&self, client: &str) -> GatewayClient {
        let id = Identity::from_certs_dir(&self.certs, client).expect("client identity");
        GatewayClient::new(&self.base(), &id, 8).expect("client")
    }

    /// A client with an explicit identity.
    pub fn client_with(&self, id: &Identity) -> GatewayClient {
        GatewayClient::new(&self.base(), id, 8).expect("client")
    }

    /// The server's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            panic!("server did not stop on SIGTERM");
        }
    }

    /// SIGKILL: a crash.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A plain HTTP GET on the health listener (tiny, no client crate needed).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}
