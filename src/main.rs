//! The `partnergate` command line: the gateway's commands (from the `partnergate` library) and
//! the tools around it (`partnergate-client`, `partnergate-devtools`), in one binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use partnergate::config::{LogFormat, Settings};
use partnergate::policy::{FieldType, Policy};
use partnergate::{cli, server};
use partnergate_client::{Identity, crm_sync, import};
use partnergate_devtools::{bench, synthetic};

/// partnergate: the privacy-preserving data-sharing gateway between the partners of an ESF+
/// local partnership. Partner CRMs connect over mutual TLS; every access is policy-checked
/// and audited.
#[derive(Parser)]
#[command(name = "partnergate", version, propagate_version = true)]
struct Cli {
    /// The installation folder: partnergate.toml, certs/, data/ and (by default) policies/.
    #[arg(long, global = true, env = "PARTNERGATE_HOME", default_value = ".")]
    home: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the development PKI, the keys, the database and partnergate.toml (keeps what exists).
    Init(InitArgs),
    /// Run the gateway: the mTLS API and the plain health/metrics listener.
    Serve(ServeArgs),
    /// Init if needed, load a synthetic caseload, print ready-to-paste curl commands, and serve.
    Demo(DemoArgs),
    /// Issue, rotate and revoke client certificates; re-sign the revocation list.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Compile, check and explain the joint-controller agreement; generate the registers.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Load generator and side-by-side benchmarks (see bench/README.md).
    Bench(bench::BenchArgs),
    /// Each partner's membership, clients, certificate expiry and participants in view.
    Partners,
    /// The reference CRM client: mirror this partner's view into a local SQLite file.
    CrmSync(crm_sync::SyncArgs),
    /// Migrate existing files from CSV (header = field names) through the API, as a client.
    Import(ImportArgs),
    /// Rotate the master key (online) and retire old versions.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Verify, export and report on the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Aggregate reports, small cells suppressed (with the gateway stopped; it serves
    /// GET /v1/reports/esf itself).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Apply the agreement's retention schedule: `plan` (dry run, counts only) or `run`
    /// (purge what is due; `serve` does this daily by itself).
    #[command(subcommand)]
    Retention(RetentionCommand),
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Per category: participants due now, the months the others fall due, none yet.
    Plan,
    /// Purge what is due today (with the gateway stopped), audited per participant.
    Run,
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The ESF+ common indicators for a period, as JSON, CSV (for upload) and HTML with charts.
    Esf {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day (inclusive), YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// Output folder.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Your staff id, recorded as acting user in the audit log.
        #[arg(long, default_value = "operator")]
        acting_user: String,
    },
}

#[derive(Args)]
struct InitArgs {
    /// Replace existing certificates and keys (destroys access to existing data!).
    #[arg(long)]
    force: bool,
    /// Where the agreement lives, written into partnergate.toml (default: policies).
    #[arg(long)]
    policy_dir: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address of the mTLS API [default: 127.0.0.1:8443, or PARTNERGATE_LISTEN].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Address of /healthz and /metrics [default: 127.0.0.1:9464, or PARTNERGATE_HEALTH_LISTEN].
    #[arg(long)]
    health_listen: Option<std::net::SocketAddr>,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// How many synthetic participants to load (only into an empty database).
    #[arg(long, default_value_t = 300)]
    participants: usize,
    /// Seed of the synthetic caseload.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Load the data and print the commands, but do not serve.
    #[arg(long)]
    no_serve: bool,
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Issue a client certificate signed by the partnership CA. A client has one valid
    /// certificate at a time: if its current one is still valid (not expired, not revoked),
    /// this is refused unless --rotate, which revokes the current one. A running server then
    /// refuses the old certificate within two seconds, on open connections too.
    Issue {
        /// The client name (certificate CN), e.g. crm.ocmw-gent.
        #[arg(long)]
        client: String,
        /// Replace a still-valid certificate: revoke it (reason superseded) and issue a new one.
        #[arg(long)]
        rotate: bool,
        #[command(flatten)]
        crl: CrlValidity,
    },
    /// Revoke a client's current certificate, or any certificate by serial number. A running
    /// server refuses it within two seconds (at once on SIGHUP), on open connections too; no
    /// restart needed.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["client", "serial"])))]
    Revoke {
        /// The client name (certificate CN): revokes its current certificate.
        #[arg(long)]
        client: Option<String>,
        /// A serial number in hexadecimal (`3af012…` or `3A:F0:12:…`, as printed by `certs
        /// issue`/`revoke` or `openssl x509 -serial`).
        #[arg(long)]
        serial: Option<String>,
        #[command(flatten)]
        crl: CrlValidity,
    },
    /// Re-sign the revocation list (same entries, new thisUpdate and nextUpdate, next number).
    /// The server refuses every client once the list is past its nextUpdate: run this
    /// regularly (e.g. daily from cron); a running server picks it up within two seconds.
    Crl {
        #[command(flatten)]
        crl: CrlValidity,
    },
}

#[derive(Args)]
struct CrlValidity {
    /// Days until the nextUpdate of the re-signed revocation list (1-366).
    #[arg(long, default_value_t = partnergate::pki::DEFAULT_CRL_VALIDITY_DAYS)]
    crl_valid_days: u32,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Compile policies/agreement.toml into policies/model.conf and policies/policy.csv.
    Compile,
    /// Check the agreement for unsafe or inconsistent grants, and list every escalation path:
    /// self-assignments that widen a partner's own view (allowed only where `self_assign`
    /// names them) and consents whose recording widens the recorder's own reading.
    Check,
    /// Print the decision matrix (role × purpose × category → read/write/condition).
    Explain {
        /// Only this role.
        #[arg(long)]
        role: Option<String>,
        /// Only this purpose.
        #[arg(long)]
        purpose: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Generate the Art. 30 processing register and the Art. 26(2) participant summary.
    Register {
        /// Output folder.
        #[arg(long, default_value = "register")]
        out: PathBuf,
    },
}

#[derive(Args)]
struct ImportArgs {
    /// The client whose certificate the import uses (it becomes toeleider), e.g. crm.ocmw-gent.
    #[arg(long)]
    client: String,
    /// The gateway [default: https://localhost:<listen port from the config>].
    #[arg(long)]
    url: Option<String>,
    /// The staff id recorded as acting user in the audit log.
    #[arg(long, default_value = "import")]
    acting_user: String,
    /// Where rejected rows go [default: FILE.rejects.csv].
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// The CSV file; its header names the fields (identity.insz, identity.given_name, ...).
    file: PathBuf,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a master key version and re-wrap every data key under it while the server runs.
    Rotate,
    /// Remove master key versions below V from the key file (refused while any key uses them).
    Retire {
        /// The lowest version to keep.
        #[arg(long)]
        below: u32,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify an exported audit file offline, with only the public key.
    Verify {
        /// The export (JSON lines) from GET /v1/audit/export or `audit export`.
        file: PathBuf,
        /// The Ed25519 public key file (certs/audit-signing.pub).
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Export the log (JSON lines with signed checkpoints) from the database, offline.
    Export {
        /// First sequence number.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Archive records older than the audit retention period (default 10 years) into a
    /// verified export, then remove them; the live chain starts at a signed anchor checkpoint.
    /// With the gateway stopped.
    Prune {
        /// Folder for the archive (written, read back and verified before anything goes).
        #[arg(long)]
        archive: PathBuf,
        /// Override `[retention] audit_years`.
        #[arg(long)]
        older_than_years: Option<u32>,
    },
    /// Write a self-contained HTML report for the DPO: accesses, refusals, unusual patterns.
    Report {
        /// Output file.
        #[arg(long, default_value = "audit-report.html")]
        out: PathBuf,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn settings(home: &std::path::Path, serve: Option<&ServeArgs>) -> Result<Settings, String> {
    let mut s = Settings::load(home).map_err(|e| e.to_string())?;
    if let Some(a) = serve {
        if let Some(l) = a.listen {
            s.config.listen = l;
        }
        if let Some(l) = a.health_listen {
            s.config.health_listen = l;
        }
    }
    Ok(s)
}

/// `partnergate demo`'s data: the showcase participant and the synthetic caseload of
/// `participants` in all for `seed`, loaded (into an empty database) with a progress bar.
async fn demo_load(
    settings: &Settings,
    participants: usize,
    seed: u64,
) -> Result<cli::DemoInfo, String> {
    fn demo(p: synthetic::SyntheticParticipant) -> cli::DemoParticipant {
        let synthetic::SyntheticParticipant {
            fields,
            involvements,
            consents,
            notes,
        } = p;
        cli::DemoParticipant {
            fields,
            involvements,
            consents,
            notes,
        }
    }
    let bar = std::cell::OnceCell::new();
    let info = cli::demo_load(
        settings,
        demo(synthetic::demo_showcase()),
        || {
            synthetic::caseload(seed, participants.saturating_sub(1))
                .into_iter()
                .map(demo)
                .collect()
        },
        |done, total| {
            bar.get_or_init(|| partnergate_devtools::progress(total, "participants"))
                .set_position(done);
        },
    )
    .await?;
    if let Some(loaded) = info.loaded {
        if let Some(bar) = bar.get() {
            bar.finish();
        }
        eprintln!("loaded {loaded} synthetic participants (seed {seed})");
    }
    Ok(info)
}

/// `partnergate import`'s columns: each CSV header names a field of the agreement, and the
/// field's type says how its cells are sent.
fn import_column(policy: &Policy, header: &str) -> Option<import::Column> {
    let ty = policy.field(header)?.ty;
    let cell = match ty {
        FieldType::Bool => import::CellType::Bool,
        FieldType::Integer { .. } => import::CellType::Integer,
        _ => import::CellType::Text,
    };
    Some(import::Column {
        cell,
        expects: ty.expected(),
    })
}

/// glibc gives threads that allocate at once their own arenas (up to 8 per core) and keeps what
/// they free: verification's parallel hashing took the gateway's peak from 111 to 231 MB that
/// way. Two arenas keep the peak flat at the same speed (bench/README.md, issue 14). An operator's
/// `MALLOC_ARENA_MAX` wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: runs first in main, before any other thread exists; it only sets a parameter.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // Before anything reads the clock: a moved clock is for tests only, so say so loudly.
    match partnergate::clock::init_from_env() {
        Ok(Some(at)) => eprintln!(
            "partnergate: warning: {} is set; the clock started at {at} instead of the system time (tests only)",
            partnergate::clock::ENV
        ),
        Ok(None) => {}
        Err(e) => {
            eprintln!("partnergate: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("partnergate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let home = cli.home;
    match cli.command {
        Command::Init(a) => {
            let report = cli::init(&home, a.policy_dir.as_deref(), a.force).await?;
            print!("{report}");
            Ok(())
        }
        Command::Serve(a) => {
            let s = settings(&home, Some(&a))?;
            init_logging(s.config.log_format);
            server::serve(s, server::shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::Demo(a) => {
            if !home.join(partnergate::config::CONFIG_FILE).exists() {
                print!("{}", cli::init(&home, None, false).await?);
            }
            let s = settings(&home, Some(&a.serve))?;
            init_logging(s.config.log_format);
            let info = demo_load(&s, a.participants, a.seed).await?;
            print!("{}", cli::demo_commands(&s, &info));
            if a.no_serve {
                return Ok(());
            }
            server::serve(s, server::shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::Certs(c) => {
            let s = settings(&home, None)?;
            match c {
                CertsCommand::Issue {
                    client,
                    rotate,
                    crl,
                } => cli::certs_issue(&s, &client, rotate, crl.crl_valid_days),
                CertsCommand::Revoke {
                    client,
                    serial,
                    crl,
                } => {
                    cli::certs_revoke(&s, client.as_deref(), serial.as_deref(), crl.crl_valid_days)
                }
                CertsCommand::Crl { crl } => cli::certs_crl(&s, crl.crl_valid_days),
            }
        }
        Command::Policy(c) => {
            let s = settings(&home, None)?;
            let dir = s.policy_dir();
            match c {
                PolicyCommand::Compile => cli::policy_compile(&dir),
                PolicyCommand::Check => cli::policy_check(&dir),
                PolicyCommand::Explain {
                    role,
                    purpose,
                    json,
                } => cli::policy_explain(&dir, role.as_deref(), purpose.as_deref(), json),
                PolicyCommand::Register { out } => cli::policy_register(&dir, &out),
            }
        }
        Command::Bench(a) => {
            print!("{}", bench::run(a).await?);
            Ok(())
        }
        Command::Partners => {
            let s = settings(&home, None)?;
            print!("{}", cli::partners(&s).await?);
            Ok(())
        }
        Command::CrmSync(a) => {
            let stats = crm_sync::run(&a).await?;
            println!(
                "synced {}: {} pages, {} upserts, {} removals",
                a.db.display(),
                stats.pages,
                stats.upserts,
                stats.removals
            );
            Ok(())
        }
        Command::Import(a) => {
            let s = settings(&home, None)?;
            let policy = Policy::load(&s.policy_dir()).map_err(|e| e.to_string())?;
            let url = a
                .url
                .unwrap_or_else(|| format!("https://localhost:{}", s.config.listen.port()));
            let rejects = a
                .rejects
                .unwrap_or_else(|| import::default_rejects_path(&a.file));
            let identity =
                Identity::from_certs_dir(&s.certs_dir(), &a.client).map_err(|e| e.to_string())?;
            let summary = import::run(
                |header| import_column(&policy, header),
                &url,
                &identity,
                &a.acting_user,
                &a.file,
                &rejects,
            )
            .await?;
            println!(
                "imported {}: {} registered, {} already known, {} rejected (see {})",
                a.file.display(),
                summary.created,
                summary.existing,
                summary.rejected,
                rejects.display()
            );
            Ok(())
        }
        Command::Keys(c) => {
            let s = settings(&home, None)?;
            match c {
                KeysCommand::Rotate => cli::keys_rotate(&s).await,
                KeysCommand::Retire { below } => cli::keys_retire(&s, below).await,
            }
        }
        Command::Audit(c) => match c {
            AuditCommand::Verify { file, public_key } => cli::audit_verify(&file, &public_key),
            AuditCommand::Export { from, out } => {
                cli::audit_export(&settings(&home, None)?, from, &out).await
            }
            AuditCommand::Report { out } => cli::audit_report(&settings(&home, None)?, &out).await,
            AuditCommand::Prune {
                archive,
                older_than_years,
            } => {
                let s = settings(&home, None)?;
                print!(
                    "{}",
                    partnergate::offline::audit_prune(&s, &archive, older_than_years).await?
                );
                Ok(())
            }
        },
        Command::Retention(c) => {
            let s = settings(&home, None)?;
            let out = match c {
                RetentionCommand::Plan => partnergate::offline::retention_plan(&s).await?,
                RetentionCommand::Run => partnergate::offline::retention_run(&s).await?,
            };
            print!("{out}");
            Ok(())
        }
        Command::Report(ReportCommand::Esf {
            from,
            to,
            out,
            acting_user,
        }) => {
            let s = settings(&home, None)?;
            print!(
                "{}",
                partnergate::offline::report_esf(&s, &from, &to, &out, &acting_user).await?
            );
            Ok(())
        }
    }
}
