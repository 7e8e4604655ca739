//! `partnergate bench`: a closed-loop load generator that speaks mutual TLS like a partner CRM.
//!
//! Every worker owns one [`GatewayClient`] with a pool of one connection, so `--connections N`
//! means exactly N kept-alive TLS connections, each with one request in flight. A worker first
//! sends one untimed warm-up request (the TLS handshake happens there), then all workers start
//! the timed phase together and run until `--seconds` have passed. Latencies are kept in a plain
//! vector of microseconds and sorted once at the end (no histogram crate needed at this scale).
//!
//! Scenarios (see `bench/README.md` for what each one means and the targets):
//! - `prepare`: finds the read partner's pids of the demo caseload through `POST /v1/lookup`
//!   and writes them to `--pids-file`; with `--sample-out` it also saves one typical read body
//!   (the static file nginx serves in the side-by-side run).
//! - `reads`, `mixed`, `registrations`, `static`: timed load, reported as requests/s, p50, p99
//!   and errors.
//! - `sync_10k`: one reference client pages through `GET /v1/changes` until the feed is done.
//! - `audit_verify_1m`: times `GET /v1/audit/verify` on the log as it stands.
//! - `summary`: merges the JSON results of one run into `bench/results/latest.json` and prints
//!   the side-by-side table (gateway vs nginx).
//!
//! The entry point is [`run`]; the command line is [`BenchArgs`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use partnergate_client::{GatewayClient, Identity, Method};
use serde_json::{Value, json};

use partnergate_core::insz::Insz;

/// Which benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Look up the read partner's pids of the demo caseload and write them to `--pids-file`.
    Prepare,
    /// Audited reads of random participants by their trajectgezel (`GET /v1/participants/{pid}`).
    Reads,
    /// Registrations of fresh participants by a toeleider (`POST /v1/participants`).
    Registrations,
    /// 90 % reads, 10 % `PATCH` with `If-Match` from the preceding read (412 is a conflict).
    Mixed,
    /// `GET --path` with the same client and headers: the baseline against nginx.
    Static,
    /// A full sync of one partner's caseload through `GET /v1/changes`.
    #[value(name = "sync_10k")]
    Sync10k,
    /// `GET /v1/audit/verify` on the current audit log.
    #[value(name = "audit_verify_1m")]
    AuditVerify1m,
    /// Merge the JSON results in `--results-dir` into one report (`--json`) and print it.
    Summary,
}

impl Scenario {
    /// The scenario's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prepare => "prepare",
            Self::Reads => "reads",
            Self::Registrations => "registrations",
            Self::Mixed => "mixed",
            Self::Static => "static",
            Self::Sync10k => "sync_10k",
            Self::AuditVerify1m => "audit_verify_1m",
            Self::Summary => "summary",
        }
    }

    /// The client certificate a scenario uses unless `--client` says otherwise.
    pub fn default_client(self) -> &'static str {
        match self {
            Self::Registrations | Self::Sync10k => "crm.ocmw-gent",
            Self::AuditVerify1m => "dpo.stad-gent",
            _ => "crm.jobandco",
        }
    }
}

/// `partnergate bench`: load and side-by-side benchmarks over real mutual TLS.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// What to run.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Base URL of the gateway (or of nginx for `static`).
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    pub url: String,
    /// The certs folder: `ca.pem` and `clients/<client>.pem|.key`.
    #[arg(long, default_value = "certs")]
    pub certs: PathBuf,
    /// Client certificate CN [default: crm.jobandco for reads/mixed/static/prepare,
    /// crm.ocmw-gent for registrations and sync_10k, dpo.stad-gent for audit_verify_1m].
    #[arg(long)]
    pub client: Option<String>,
    /// Concurrent connections (one worker, one connection, one request in flight each).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Duration of the timed phase, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Write the result as JSON to this file (`-` returns the JSON instead of the table).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The pids to read, one a line (written by `prepare`, read by `reads` and `mixed`).
    #[arg(long, default_value = "bench-pids.txt")]
    pub pids_file: PathBuf,
    /// URL path for `static`.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// `prepare`: the seed of the demo caseload (`partnergate demo --seed`).
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// `prepare`: the size of the demo caseload (`partnergate demo --participants`).
    #[arg(long, default_value_t = 10_000)]
    pub participants: usize,
    /// `prepare`: the partner whose trajectgezel cases to read [default: the client CN after
    /// its first dot, e.g. jobandco].
    #[arg(long)]
    pub partner: Option<String>,
    /// `prepare`: also save one typical read response body here (the nginx static file).
    #[arg(long)]
    pub sample_out: Option<PathBuf>,
    /// `mixed`: percentage of operations that are PATCH.
    #[arg(long, default_value_t = 10)]
    pub patch_percent: u32,
    /// `sync_10k`: page size (`limit`).
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// `audit_verify_1m`: how many times to verify (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// `summary`: the folder with one run's JSON results.
    #[arg(long, default_value = "bench/results/run")]
    pub results_dir: PathBuf,
    /// `summary`: gateway peak resident memory (VmHWM) under read load, in MB.
    #[arg(long)]
    pub server_rss_mb: Option<f64>,
    /// `summary`: gateway peak resident memory (VmHWM) over the whole run, in MB.
    #[arg(long)]
    pub server_hwm_mb: Option<f64>,
    /// `summary`: extra `key=value` facts about the run (e.g. `demo_load_s=41.2`).
    #[arg(long = "extra", value_name = "KEY=VALUE")]
    pub extra: Vec<String>,
}

impl BenchArgs {
    /// Arguments for `scenario` with every other option at its default.
    pub fn new(scenario: Scenario) -> Self {
        Self {
            scenario,
            url: "https://127.0.0.1:8443".into(),
            certs: "certs".into(),
            client: None,
            connections: 32,
            seconds: 10.0,
            json: None,
            pids_file: "bench-pids.txt".into(),
            path: "/".into(),
            seed: 2026,
            participants: 10_000,
            partner: None,
            sample_out: None,
            patch_percent: 10,
            limit: 1000,
            repeat: 3,
            results_dir: "bench/results/run".into(),
            server_rss_mb: None,
            server_hwm_mb: None,
            extra: Vec::new(),
        }
    }

    fn client_cn(&self) -> &str {
        self.client
            .as_deref()
            .unwrap_or(self.scenario.default_client())
    }
}

/// Runs one scenario and returns its report: a table, or JSON when `--json -`.
pub async fn run(args: BenchArgs) -> Result<String, String> {
    let result = match args.scenario {
        Scenario::Summary => return summary(&args),
        Scenario::Prepare => prepare(&args).await?,
        Scenario::Reads | Scenario::Registrations | Scenario::Mixed | Scenario::Static => {
            load(&args).await?
        }
        Scenario::Sync10k => sync(&args).await?,
        Scenario::AuditVerify1m => audit_verify(&args).await?,
    };
    let text = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
    match args.json.as_deref() {
        Some(p) if p == Path::new("-") => return Ok(text),
        Some(p) => write_file(p, &(text + "\n"))?,
        None => {}
    }
    Ok(table(std::slice::from_ref(&result)))
}

// ---------------------------------------------------------------------------------------------
// Clients and helpers.

fn identity(args: &BenchArgs, cn: &str) -> Result<Identity, String> {
    Identity::from_certs_dir(&args.certs, cn).map_err(|e| e.to_string())
}

fn client(
    args: &BenchArgs,
    identity: &Identity,
    purpose: &str,
    actor: &str,
) -> Result<GatewayClient, String> {
    GatewayClient::new(&args.url, identity, 1)
        .map(|c| c.acting(purpose, actor))
        .map_err(|e| e.to_string())
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_pids(path: &Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("pids file {}: {e}", path.display()))?;
    let pids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if pids.is_empty() {
        return Err(format!("pids file {} is empty", path.display()));
    }
    Ok(pids)
}

/// A tiny xorshift generator: enough to pick pids, no crate needed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The nearest-rank percentile `p` (0–100) of sorted latencies in microseconds, in ms.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[idx]) / 1000.0
}

// ---------------------------------------------------------------------------------------------
// The timed load: reads, registrations, mixed, static.

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Ok,
    /// An expected conflict (412 on a PATCH in `mixed`): not an error, but reported.
    Conflict,
    Error,
}

/// One timed request.
struct Sample {
    micros: u32,
    status: Option<u16>,
    class: Class,
    patch: bool,
}

/// What one worker counted.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    errors: u64,
    conflicts: u64,
    patches: u64,
    first_error: Option<String>,
}

impl Tally {
    fn add(&mut self, s: Sample, detail: Option<String>) {
        self.latencies_us.push(s.micros);
        match s.status {
            Some(code) => *self.statuses.entry(code).or_default() += 1,
            None => self.transport_errors += 1,
        }
        match s.class {
            Class::Ok => {}
            Class::Conflict => self.conflicts += 1,
            Class::Error => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = detail;
                }
            }
        }
        if s.patch {
            self.patches += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.transport_errors += other.transport_errors;
        self.errors += other.errors;
        self.conflicts += other.conflicts;
        self.patches += other.patches;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Unique valid national numbers for registrations: born 1930–1959 (the demo caseload is born
/// 1960–2006, so they never collide with it), one serial after the other, starting at a
/// per-run offset so that a second run against the same home rarely meets the first.
struct InszSeq {
    next: AtomicU64,
}

impl InszSeq {
    const FIRST_DAY: time::Date = time::macros::date!(1930 - 01 - 01);
    const DAYS: u64 = 10_957; // 1930-01-01 ..= 1959-12-31
    const SERIALS: u64 = 998;

    fn new(start: u64) -> Self {
        Self {
            next: AtomicU64::new(start),
        }
    }

    fn for_run() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        // A new block of 100 days every ten seconds, round robin over the thirty years.
        Self::new((secs / 10) % (Self::DAYS / 100) * 100 * Self::SERIALS)
    }

    fn take(&self) -> (String, time::Date, u16) {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % (Self::DAYS * Self::SERIALS);
        let day = Self::FIRST_DAY + time::Duration::days((n / Self::SERIALS) as i64);
        let serial = (n % Self::SERIALS) as u16 + 1;
        (
            Insz::synthetic(day, serial).as_str().to_string(),
            day,
            serial,
        )
    }
}

const GIVEN: &[&str] = &[
    "An", "Elif", "Jonas", "Mohamed", "Sara", "Pieter", "Yasmina", "Ivan",
];
const FAMILY: &[&str] = &[
    "Peeters",
    "Yilmaz",
    "Janssens",
    "El Amrani",
    "Maes",
    "Petrov",
];
const STREETS: &[&str] = &[
    "Sleepstraat",
    "Dampoortstraat",
    "Brugsepoortstraat",
    "Wondelgemstraat",
];

/// A registration body: a fresh INSZ and a dozen fields a toeleider may write.
fn registration_body(seq: &InszSeq, rng: &mut Rng) -> Value {
    let (insz, birth, serial) = seq.take();
    let gender = if serial % 2 == 1 { "male" } else { "female" };
    let given = GIVEN[rng.below(GIVEN.len())];
    let family = FAMILY[rng.below(FAMILY.len())];
    let n = rng.next();
    json!({"fields": {
        "identity.insz": insz.as_str(),
        "identity.given_name": given,
        "identity.family_name": family,
        "identity.birth_date": format!("{:04}-{:02}-{:02}", birth.year(), u8::from(birth.month()), birth.day()),
        "identity.gender": gender,
        "identity.language": "nl",
        "contact.phone": format!("+32 47{} {:02} {:02} {:02}", n % 10, (n >> 8) % 100, (n >> 16) % 100, (n >> 24) % 100),
        "contact.email": format!("deelnemer{}@example.org", n % 1_000_000),
        "contact.address": format!("{} {}, 9000 Gent", STREETS[rng.below(STREETS.len())], 1 + n % 200),
        "esf.labour_status_entry": "long_term_unemployed",
        "esf.education_level": "isced_0_2",
        "esf.third_country_national": n.is_multiple_of(3),
        "trajectory.status": "referred",
        "trajectory.referral_channel": "OCMW sociale dienst",
    }})
}

enum Kind {
    Reads(Arc<Vec<String>>),
    Mixed(Arc<Vec<String>>, u32),
    Registrations(Arc<InszSeq>),
    Static(Arc<str>),
}

struct Worker {
    client: GatewayClient,
    kind: Arc<Kind>,
    rng: Rng,
    /// `mixed`: the pid and version of this worker's last read.
    last_read: Option<(String, i64)>,
    seq: u64,
}

impl Worker {
    async fn step(&mut self) -> (Sample, Option<String>) {
        let kind = Arc::clone(&self.kind);
        self.seq += 1;
        let started = Instant::now();
        let (res, patch) = match &*kind {
            Kind::Reads(pids) => {
                let pid = &pids[self.rng.below(pids.len())];
                (
                    self.client.get(&format!("/v1/participants/{pid}")).await,
                    false,
                )
            }
            Kind::Static(path) => (self.client.get(path).await, false),
            Kind::Registrations(seq) => {
                let body = registration_body(seq, &mut self.rng);
                (self.client.post("/v1/participants", &body).await, false)
            }
            Kind::Mixed(pids, patch_pct) => {
                let do_patch =
                    self.last_read.is_some() && self.rng.below(100) < *patch_pct as usize;
                if do_patch {
                    let (pid, version) = self.last_read.take().unwrap_or_default();
                    let body = json!({"fields": {
                        "trajectory.next_steps": format!("bench update {}", self.seq),
                        "measure.let_go_scale": 1 + self.seq % 10,
                    }});
                    let v = version.to_string();
                    let res = self
                        .client
                        .send(
                            Method::PATCH,
                            &format!("/v1/participants/{pid}"),
                            &[("if-match", &v)],
                            Some(&body),
                        )
                        .await;
                    (res, true)
                } else {
                    let pid = pids[self.rng.below(pids.len())].clone();
                    let res = self.client.get(&format!("/v1/participants/{pid}")).await;
                    if let Ok(r) = &res
                        && r.status.is_success()
                        && let Some(v) = r.json().get("version").and_then(Value::as_i64)
                    {
                        self.last_read = Some((pid, v));
                    }
                    (res, false)
                }
            }
        };
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        match res {
            Ok(r) => {
                let code = r.status.as_u16();
                // A registration that finds its number registered (200) did not register: it
                // would flatter the figure (a rerun on the same home meets the earlier numbers).
                let existing = matches!(&*kind, Kind::Registrations(_)) && code == 200;
                let class = if r.status.is_success() && !existing {
                    Class::Ok
                } else if patch && code == 412 {
                    Class::Conflict
                } else {
                    Class::Error
                };
                let detail = (class == Class::Error).then(|| {
                    format!(
                        "HTTP {code}: {}",
                        String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    )
                });
                (
                    Sample {
                        micros,
                        status: Some(code),
                        class,
                        patch,
                    },
                    detail,
                )
            }
            Err(e) => (
                Sample {
                    micros,
                    status: None,
                    class: Class::Error,
                    patch,
                },
                Some(e.to_string()),
            ),
        }
    }
}

async fn load(args: &BenchArgs) -> Result<Value, String> {
    let n = args.connections.max(1);
    let cn = args.client_cn().to_owned();
    let id = identity(args, &cn)?;
    let kind = Arc::new(match args.scenario {
        Scenario::Reads => Kind::Reads(Arc::new(read_pids(&args.pids_file)?)),
        Scenario::Mixed => Kind::Mixed(Arc::new(read_pids(&args.pids_file)?), args.patch_percent),
        Scenario::Registrations => Kind::Registrations(Arc::new(InszSeq::for_run())),
        _ => Kind::Static(args.path.as_str().into()),
    });
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
    // Everyone warms up (handshake), then the timed phase starts for all at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut worker = Worker {
            client: client(args, &id, "trajectory_guidance", &format!("bench-{i}"))?,
            kind: Arc::clone(&kind),
            rng: Rng::new(seed ^ ((i as u64 + 1) << 20)),
            last_read: None,
            seq: (i as u64) << 40,
        };
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let (warm, warm_detail) = worker.step().await;
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            let mut tally = Tally::default();
            if warm.class == Class::Error {
                // A worker that cannot even warm up still reports why, once.
                tally.first_error = warm_detail;
            }
            while Instant::now() < deadline {
                let (sample, detail) = worker.step().await;
                let transport = sample.status.is_none();
                tally.add(sample, detail);
                if transport {
                    // Don't spin on a dead server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            tally
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut total = Tally::default();
    for t in tasks {
        total.merge(t.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let requests = total.latencies_us.len() as u64;
    let mut out = json!({
        "name": args.scenario.name(),
        "url": args.url,
        "client": cn,
        "connections": n,
        "duration_s": round2(elapsed),
        "requests": requests,
        "rps": round2(requests as f64 / elapsed),
        "p50_ms": round3(percentile_ms(&total.latencies_us, 50.0)),
        "p90_ms": round3(percentile_ms(&total.latencies_us, 90.0)),
        "p99_ms": round3(percentile_ms(&total.latencies_us, 99.0)),
        "max_ms": round3(percentile_ms(&total.latencies_us, 100.0)),
        "errors": total.errors,
        "transport_errors": total.transport_errors,
        "statuses": total.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    if args.scenario == Scenario::Mixed {
        out["patches"] = json!(total.patches);
        out["conflicts_412"] = json!(total.conflicts);
    }
    if let Some(e) = total.first_error {
        out["first_error"] = json!(e);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// prepare: the read partner's pids of the demo caseload.

async fn prepare(args: &BenchArgs) -> Result<Value, String> {
    let started = Instant::now();
    let cn = args.client_cn().to_owned();
    let partner = args
        .partner
        .clone()
        .or_else(|| cn.split_once('.').map(|(_, p)| p.to_owned()))
        .unwrap_or_else(|| cn.clone());
    // The same caseload `partnergate demo --participants N --seed S` loaded: the showcase
    // participant plus N-1 generated ones.
    let mut caseload = vec![crate::synthetic::demo_showcase()];
    caseload.extend(crate::synthetic::caseload(
        args.seed,
        args.participants.saturating_sub(1),
    ));
    let inszs: Vec<String> = caseload
        .iter()
        .filter(|p| {
            p.involvements
                .iter()
                .any(|(p, r)| *p == partner && r == "trajectgezel")
        })
        .filter_map(|p| p.fields.get("identity.insz")?.as_str().map(str::to_owned))
        .collect();
    if inszs.is_empty() {
        return Err(format!("partner {partner} is trajectgezel in no demo case"));
    }
    let id = identity(args, &cn)?;
    let inszs = Arc::new(inszs);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..args.connections.clamp(1, 16) {
        let c = client(args, &id, "duplicate_check", &format!("bench-prepare-{i}"))?;
        let (inszs, next) = (Arc::clone(&inszs), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut found = Vec::new();
            let mut missing = 0u64;
            let mut first_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(insz) = inszs.get(i) else { break };
                match c.post("/v1/lookup", &json!({ "insz": insz })).await {
                    Ok(r) if r.status.is_success() => {
                        if let Some(pid) = r.json().get("pid").and_then(Value::as_str) {
                            found.push((i, pid.to_owned()));
                        }
                    }
                    Ok(r) => {
                        missing += 1;
                        first_error.get_or_insert_with(|| {
                            format!(
                                "lookup: HTTP {}: {}",
                                r.status,
                                String::from_utf8_lossy(&r.body)
                            )
                        });
                    }
                    Err(e) => {
                        missing += 1;
                        first_error.get_or_insert_with(|| format!("lookup: {e}"));
                    }
                }
            }
            (found, missing, first_error)
        }));
    }
    let mut pids = Vec::new();
    let mut missing = 0;
    let mut first_error = None;
    for t in tasks {
        let (f, m, e) = t.await.map_err(|e| e.to_string())?;
        pids.extend(f);
        missing += m;
        first_error = first_error.or(e);
    }
    // A read scenario over a fraction of the caseload measures a warmer cache than the
    // real one; so every look-up must answer (the bench server lifts the rate limit).
    if let Some(e) = &first_error {
        return Err(format!(
            "{missing} of {} look-ups failed, first: {e}",
            inszs.len()
        ));
    }
    pids.sort();
    let pids: Vec<String> = pids.into_iter().map(|(_, p)| p).collect();
    if pids.is_empty() {
        return Err(format!(
            "no pid found for {} cases of {partner}: {}",
            inszs.len(),
            first_error.unwrap_or_default()
        ));
    }
    write_file(&args.pids_file, &(pids.join("\n") + "\n"))?;

    // One typical read: of up to 64 reads, the body of median size.
    let mut sample_bytes = None;
    if let Some(out) = &args.sample_out {
        let c = client(args, &id, "trajectory_guidance", "bench-prepare")?;
        let mut bodies = Vec::new();
        for pid in pids.iter().take(64) {
            let r = c
                .get(&format!("/v1/participants/{pid}"))
                .await
                .map_err(|e| e.to_string())?;
            if r.status.as_u16() != 200 {
                return Err(format!(
                    "read of a prepared pid answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            bodies.push(r.body);
        }
        bodies.sort_by_key(|b| b.len());
        let body = &bodies[bodies.len() / 2];
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(out, body).map_err(|e| format!("{}: {e}", out.display()))?;
        sample_bytes = Some(body.len());
    }
    Ok(json!({
        "name": "prepare",
        "client": cn,
        "partner": partner,
        "cases": inszs.len(),
        "pids": pids.len(),
        "missing": missing,
        "first_error": first_error,
        "sample_bytes": sample_bytes,
        "seconds": round3(started.elapsed().as_secs_f64()),
    }))
}

// ---------------------------------------------------------------------------------------------
// sync_10k and audit_verify_1m: one client, timed end to end.

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

async fn sync(args: &BenchArgs) -> Result<Value, String> {
    let cn = args.client_cn().to_owned();
    let id = identity(args, &cn)?;
    let c = client(args, &id, "trajectory_guidance", "bench-sync")?;
    // Warm the connection (handshake) outside the timed part.
    c.get("/v1/me").await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (mut upserts, mut removes, mut pages, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut pids = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/v1/changes?limit={}", args.limit),
            Some(c) => format!("/v1/changes?since={}&limit={}", query_escape(c), args.limit),
        };
        let mut r = c.get(&path).await.map_err(|e| e.to_string())?;
        if cursor.is_none() && matches!(r.status.as_u16(), 400 | 422) {
            // An endpoint that insists on `since`: start from the beginning explicitly.
            r = c
                .get(&format!("/v1/changes?since=0&limit={}", args.limit))
                .await
                .map_err(|e| e.to_string())?;
        }
        if !r.status.is_success() {
            return Err(format!(
                "GET {path}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        pages += 1;
        bytes += r.body.len() as u64;
        let v = r.json();
        let changes = v
            .get("changes")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("GET {path}: no \"changes\" array"))?;
        for ch in changes {
            match ch.get("op").and_then(Value::as_str) {
                Some("remove") => removes += 1,
                _ => upserts += 1,
            }
            if let Some(pid) = ch.get("pid").and_then(Value::as_str) {
                pids.insert(pid.to_owned());
            }
        }
        let next = v.get("next").and_then(|n| match n {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let done = changes.is_empty() || next.is_none() || next == cursor;
        cursor = next.or(cursor);
        if done {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let records = upserts + removes;
    Ok(json!({
        "name": "sync_10k",
        "client": cn,
        "connections": 1,
        "seconds": round3(seconds),
        "records": records,
        "upserts": upserts,
        "removes": removes,
        "participants": pids.len(),
        "pages": pages,
        "bytes": bytes,
        "records_per_s": round2(records as f64 / seconds),
        "seconds_per_10k": round3(if records > 0 { seconds * 10_000.0 / records as f64 } else { 0.0 }),
        "errors": 0,
    }))
}

async fn audit_verify(args: &BenchArgs) -> Result<Value, String> {
    let cn = args.client_cn().to_owned();
    let id = identity(args, &cn)?;
    let c = client(args, &id, "audit", "bench-dpo")?;
    c.get("/v1/me").await.map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let mut last = Value::Null;
    for _ in 0..args.repeat.max(1) {
        let started = Instant::now();
        let r = c.get("/v1/audit/verify").await.map_err(|e| e.to_string())?;
        times.push(started.elapsed().as_secs_f64());
        if !r.status.is_success() {
            return Err(format!(
                "GET /v1/audit/verify: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        last = r.json();
    }
    times.sort_by(f64::total_cmp);
    let seconds = times[times.len() / 2];
    let records = last.get("records").and_then(Value::as_u64).unwrap_or(0);
    Ok(json!({
        "name": "audit_verify_1m",
        "client": cn,
        "connections": 1,
        "seconds": round3(seconds),
        "records": records,
        "ok": last.get("ok").cloned().unwrap_or(Value::Null),
        "records_per_s": round2(records as f64 / seconds),
        "seconds_per_1m": round3(if records > 0 { seconds * 1e6 / records as f64 } else { 0.0 }),
        "runs": times.len(),
        "errors": u64::from(last.get("ok") != Some(&Value::Bool(true))),
    }))
}

// ---------------------------------------------------------------------------------------------
// Reports.

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.decimals$}"))
}

/// One table for results of any scenario (timed-load columns, or seconds and records).
fn table(results: &[Value]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:>5} {:>7} {:>9} {:>10} {:>8} {:>8} {:>7} {:>10} {:>7} {:>9} {:>9}",
        "scenario",
        "conns",
        "secs",
        "requests",
        "rps",
        "p50_ms",
        "p99_ms",
        "errors",
        "nginx_rps",
        "ratio",
        "records",
        "records/s"
    );
    for r in results {
        let name = r.get("name").and_then(Value::as_str).unwrap_or("?");
        let secs = num(r, "duration_s").or_else(|| num(r, "seconds"));
        let _ = writeln!(
            out,
            "{:<16} {:>5} {:>7} {:>9} {:>10} {:>8} {:>8} {:>7} {:>10} {:>7} {:>9} {:>9}",
            name,
            cell(num(r, "connections"), 0),
            cell(secs, 2),
            cell(num(r, "requests"), 0),
            cell(num(r, "rps"), 0),
            cell(num(r, "p50_ms"), 2),
            cell(num(r, "p99_ms"), 2),
            cell(num(r, "errors"), 0),
            cell(num(r, "nginx_rps"), 0),
            cell(num(r, "ratio"), 2),
            cell(num(r, "records").or_else(|| num(r, "pids")), 0),
            cell(num(r, "records_per_s"), 0),
        );
        for k in ["conflicts_412", "first_error"] {
            if let Some(v) = r.get(k).filter(|v| !v.is_null()) {
                let _ = writeln!(out, "{:<16}   {k}: {v}", "");
            }
        }
    }
    out
}

/// The machine, in one line: CPU model, cores, memory, kernel.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0 / 1024.0).round());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {} GB RAM, Linux {kernel}",
        mem_gb.map_or("?".into(), |g| g.to_string())
    )
}

/// Merges one run's results (`<scenario>.json`, and `static.json` from nginx) into the report
/// shape of `bench/results/latest.json`, and prints the side-by-side table.
fn summary(args: &BenchArgs) -> Result<String, String> {
    let dir = &args.results_dir;
    let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(name) = v.get("name").and_then(Value::as_str) {
            by_name.insert(name.to_owned(), v);
        }
    }
    let nginx = by_name.get("static").cloned();
    let order = [
        "reads",
        "mixed",
        "registrations",
        "sync_10k",
        "audit_verify_1m",
    ];
    let mut scenarios = Vec::new();
    for name in order {
        let Some(mut v) = by_name.get(name).cloned() else {
            continue;
        };
        if let (Some(ng), Some(rps)) = (&nginx, num(&v, "rps"))
            && let Some(nrps) = num(ng, "rps").filter(|x| *x > 0.0)
        {
            v["nginx_rps"] = json!(nrps);
            v["nginx_p50_ms"] = ng.get("p50_ms").cloned().unwrap_or(Value::Null);
            v["nginx_p99_ms"] = ng.get("p99_ms").cloned().unwrap_or(Value::Null);
            v["ratio"] = json!(round3(rps / nrps));
        }
        scenarios.push(v);
    }
    if let Some(mut ng) = nginx {
        ng["name"] = json!("nginx_static");
        scenarios.push(ng);
    }
    let mut extra = serde_json::Map::new();
    for kv in &args.extra {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--extra {kv}: expected KEY=VALUE"))?;
        let v = v.parse::<f64>().map_or_else(|_| json!(v), |x| json!(x));
        extra.insert(k.to_owned(), v);
    }
    if let Some(p) = by_name.get("prepare") {
        extra.insert("prepare".into(), p.clone());
    }
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    let report = json!({
        "date": date,
        "machine": machine(),
        "server_rss_mb": args.server_rss_mb,
        "server_hwm_mb": args.server_hwm_mb,
        "scenarios": scenarios,
        "run": extra,
    });
    let mut text = String::new();
    let _ = writeln!(text, "partnergate bench, {date}\n{}\n", machine());
    text.push_str(&table(&scenarios));
    let _ = writeln!(
        text,
        "\nserver RSS (VmHWM under read load): {} MB",
        cell(args.server_rss_mb, 1)
    );
    text.push_str(&targets(&report));
    let json_text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    match args.json.as_deref() {
        Some(p) if p == Path::new("-") => return Ok(json_text),
        Some(p) => write_file(p, &(json_text + "\n"))?,
        None => {}
    }
    Ok(text)
}

/// The targets of `bench/README.md`, checked against a summary report.
fn targets(report: &Value) -> String {
    let find = |name: &str| {
        report["scenarios"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let reads = find("reads");
    let regs = find("registrations");
    let sync = find("sync_10k");
    let audit = find("audit_verify_1m");
    let checks: [(&str, Option<f64>, Option<bool>); 6] = [
        (
            "reads >= 0.5 x nginx (ratio)",
            num(&reads, "ratio"),
            num(&reads, "ratio").map(|r| r >= 0.5),
        ),
        (
            "reads p99 < 10 ms",
            num(&reads, "p99_ms"),
            num(&reads, "p99_ms").map(|p| p < 10.0),
        ),
        (
            "registrations >= 2000/s",
            num(&regs, "rps"),
            num(&regs, "rps").map(|r| r >= 2000.0),
        ),
        (
            "sync of 10k < 2 s (s per 10k)",
            num(&sync, "seconds_per_10k"),
            num(&sync, "seconds_per_10k").map(|s| s < 2.0),
        ),
        (
            "audit verify of 1M < 2 s (s per 1M)",
            num(&audit, "seconds_per_1m"),
            num(&audit, "seconds_per_1m").map(|s| s < 2.0),
        ),
        (
            "server peak RSS over the run < 150 MB",
            num(report, "server_hwm_mb"),
            num(report, "server_hwm_mb").map(|m| m < 150.0),
        ),
    ];
    let mut out = String::from("\ntargets:\n");
    for (what, value, met) in checks {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        let _ = writeln!(out, "  {what:<38} {:>10}  {verdict}", cell(value, 3));
    }
    out
}

#[cfg(test)]
mod tests {
    use partnergate_core::insz::Insz;

    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v, 100.0), 100.0);
        assert_eq!(percentile_ms(&[], 99.0), 0.0);
        assert_eq!(percentile_ms(&[7000], 50.0), 7.0);
    }

    #[test]
    fn registration_inszs_are_valid_unique_and_outside_the_demo_range() {
        let seq = InszSeq::new((InszSeq::DAYS - 2) * InszSeq::SERIALS);
        let mut rng = Rng::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5000 {
            let body = registration_body(&seq, &mut rng);
            let insz = body["fields"]["identity.insz"].as_str().unwrap().to_owned();
            let parsed = Insz::parse(&insz).expect("valid INSZ");
            let born = parsed.birth_date().expect("birth date");
            assert!(born.year() < 1960, "{born}");
            assert_eq!(
                body["fields"]["identity.birth_date"],
                format!(
                    "{:04}-{:02}-{:02}",
                    born.year(),
                    u8::from(born.month()),
                    born.day()
                )
            );
            assert!(seen.insert(insz), "duplicate");
        }
        assert!(
            registration_body(&seq, &mut rng)["fields"]
                .as_object()
                .unwrap()
                .len()
                >= 12
        );
    }

    #[test]
    fn query_escape_keeps_cursors_intact() {
        assert_eq!(query_escape("abc-1_2.3~"), "abc-1_2.3~");
        assert_eq!(query_escape("a+b/c="), "a%2Bb%2Fc%3D");
    }

    #[test]
    fn summary_merges_and_computes_ratios() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, v: Value| {
            std::fs::write(dir.path().join(format!("{name}.json")), v.to_string()).unwrap()
        };
        w(
            "reads",
            json!({"name": "reads", "connections": 32, "rps": 3000.0, "p50_ms": 5.0, "p99_ms": 9.0, "errors": 0}),
        );
        w(
            "static",
            json!({"name": "static", "connections": 32, "rps": 6000.0, "p50_ms": 2.0, "p99_ms": 4.0, "errors": 0}),
        );
        w(
            "sync",
            json!({"name": "sync_10k", "seconds": 1.5, "records": 10000, "seconds_per_10k": 1.5}),
        );
        let out = dir.path().join("latest.json");
        let mut args = BenchArgs::new(Scenario::Summary);
        args.results_dir = dir.path().to_owned();
        args.json = Some(out.clone());
        args.server_rss_mb = Some(80.0);
        args.extra = vec!["demo_load_s=12.5".into(), "quick=yes".into()];
        let text = summary(&args).unwrap();
        assert!(text.contains("reads"), "{text}");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
        assert_eq!(v["scenarios"][0]["name"], "reads");
        assert_eq!(v["scenarios"][0]["ratio"], 0.5);
        assert_eq!(v["scenarios"][0]["nginx_rps"], 6000.0);
        assert_eq!(v["scenarios"][1]["name"], "sync_10k");
        assert_eq!(v["server_rss_mb"], 80.0);
        assert_eq!(v["run"]["demo_load_s"], 12.5);
        assert!(v["machine"].as_str().unwrap().contains("cores"));
        assert!(targets(&v).contains("met"));
    }
}
