//! Smoke test of the load generator: a small demo caseload, the real server, and each
//! scenario for a fraction of a second over real mutual TLS. Checks plumbing, not speed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use partnergate_devtools::bench::{BenchArgs, Scenario, run};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_partnergate")
}

fn partnergate(home: &Path, args: &[&str]) {
    let out = Command::new(bin())
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run partnergate");
    assert!(
        out.status.success(),
        "partnergate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kills the server when the test ends, pass or fail.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` on free ports and returns it with its API URL.
fn serve(home: &Path) -> (Server, String) {
    let mut child = Command::new(bin())
        .arg("--home")
        .arg(home)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--health-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("partnergate: api listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server printed its API address");
    (server, url)
}

fn args(scenario: Scenario, url: &str, certs: &Path, work: &Path) -> BenchArgs {
    let mut a = BenchArgs::new(scenario);
    a.url = url.to_owned();
    a.certs = certs.to_owned();
    a.connections = 2;
    a.seconds = 0.5;
    a.participants = 40;
    a.pids_file = work.join("pids.txt");
    a.json = Some(PathBuf::from("-"));
    a
}

async fn json(a: BenchArgs) -> serde_json::Value {
    let name = a.scenario.name();
    let text = run(a).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).expect("JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    partnergate(&home, &["init", "--policy-dir", policies.to_str().unwrap()]);
    partnergate(&home, &["demo", "--no-serve", "--participants", "40"]);
    let (_server, url) = serve(&home);
    let certs = home.join("certs");
    let work = dir.path();
    let started = Instant::now();

    let mut a = args(Scenario::Prepare, &url, &certs, work);
    a.sample_out = Some(work.join("sample.json"));
    let prep = json(a).await;
    assert!(prep["pids"].as_u64().unwrap() >= 1, "{prep}");
    assert_eq!(prep["missing"], 0, "{prep}");
    let sample: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("sample.json")).unwrap()).unwrap();
    assert!(sample["fields"].is_object(), "{sample}");

    for scenario in [Scenario::Reads, Scenario::Mixed, Scenario::Registrations] {
        let r = json(args(scenario, &url, &certs, work)).await;
        assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["connections"], 2, "{r}");
    }

    let mut a = args(Scenario::Static, &url, &certs, work);
    a.path = "/v1/me".into();
    let r = json(a).await;
    assert_eq!(r["errors"], 0, "{r}");

    let mut a = args(Scenario::AuditVerify1m, &url, &certs, work);
    a.repeat = 1;
    let r = json(a).await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["records"].as_u64().unwrap() > 0, "{r}");

    // The whole sequence stays quick: the smoke test must not slow the suite down.
    assert!(started.elapsed() < Duration::from_secs(60));
}
