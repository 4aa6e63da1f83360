//! `meshward-sink` — serve, manage reader keys, verify offline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use meshward_audit_proto::webhook::Secret;
use meshward_sink::server::{self, ServeConfig};
use meshward_sink::storage::{self, StoreConfig};
use meshward_sink::{auth, note, verify, SinkError};

const SECRET_ENV: &str = "MESHWARD_AUDIT_SECRET";

#[derive(Parser)]
#[command(
    name = "meshward-sink",
    version,
    about = "meshward's audit sink: a tamper-evident, Merkle-checkpointed log of decision events"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the HTTP service. Secrets come from the environment only:
    /// MESHWARD_AUDIT_SECRET (whsec_…; several separated by spaces during rotation)
    /// and optionally MESHWARD_SINK_SIGNING_KEY (PRIVATE+KEY+…; otherwise DATA_DIR/signing-key).
    Serve {
        #[arg(long, default_value = "127.0.0.1:8400")]
        listen: SocketAddr,
        #[arg(long)]
        data_dir: PathBuf,
        /// Checkpoint origin (first line of every checkpoint) and name of a newly created key.
        #[arg(long, default_value = "meshward-sink")]
        origin: String,
        /// Sign a checkpoint this often when the log has grown.
        #[arg(long, default_value_t = 10)]
        checkpoint_interval_secs: u64,
        /// Group commit: wait this long for more events before each fdatasync.
        #[arg(long, default_value_t = 1)]
        commit_window_ms: u64,
        /// Group commit: most events per fdatasync.
        #[arg(long, default_value_t = 4096)]
        commit_max_records: usize,
        /// Start a new segment file after this many MiB.
        #[arg(long, default_value_t = 64)]
        segment_max_mib: u64,
        #[arg(long, default_value_t = 8 << 20)]
        max_body_bytes: usize,
        /// Require a reader key with the `audit` capability for GET /v1/entries.
        #[arg(long)]
        entries_auth: bool,
        /// Remember each webhook-id this long (from receipt) to reject replays and re-sent retries.
        #[arg(long, default_value_t = 3600)]
        dedupe_window_secs: u64,
    },
    /// Manage reader keys.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Verify a checkpoint against an export or a data directory, offline.
    /// Exit 0: verified; 1: verification failed; 2: usage or I/O error.
    Verify {
        /// The signed checkpoint (GET /checkpoint saved to a file).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Verifier key (name+id+base64) or a file holding it.
        #[arg(long)]
        key: String,
        /// JSONL export of the entries (GET /v1/entries?start=0&end=SIZE).
        #[arg(long, conflicts_with = "data_dir", required_unless_present = "data_dir")]
        export: Option<PathBuf>,
        /// A copy of the sink's data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Earlier checkpoint(s) that this one must be consistent with.
        #[arg(long)]
        previous: Vec<PathBuf>,
    },
    /// Generate a checkpoint signing key: prints PRIVATE+KEY+… on stdout (for
    /// MESHWARD_SINK_SIGNING_KEY) and the verifier key on stderr.
    Keygen {
        #[arg(long, default_value = "meshward-sink")]
        name: String,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a reader key; the token is printed once, only its SHA-256 is stored.
    Create {
        #[arg(long)]
        data_dir: PathBuf,
        /// Tenant the key may read, or * for all tenants.
        #[arg(long)]
        tenant: String,
        /// Comma-separated: read, export, audit.
        #[arg(long, default_value = "read")]
        caps: String,
    },
    /// List reader keys (ids, tenants, capabilities; never tokens).
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Serve {
            listen,
            data_dir,
            origin,
            checkpoint_interval_secs,
            commit_window_ms,
            commit_max_records,
            segment_max_mib,
            max_body_bytes,
            entries_auth,
            dedupe_window_secs,
        } => {
            let mut store = StoreConfig::new(data_dir, origin);
            store.commit_window = Duration::from_millis(commit_window_ms);
            store.commit_max_records = commit_max_records;
            store.segment_max_bytes = segment_max_mib.max(1) << 20;
            store.dedupe_window = Duration::from_secs(dedupe_window_secs.max(600));
            serve(store, listen, Duration::from_secs(checkpoint_interval_secs.max(1)), entries_auth, max_body_bytes)
        }
        Cmd::Keys { cmd: KeysCmd::Create { data_dir, tenant, caps } } => {
            auth::parse_caps(&caps).and_then(|caps| auth::create_key(&data_dir, &tenant, caps)).map(|(token, key)| {
                println!("{token}");
                eprintln!(
                    "created reader key {} for tenant {:?} with caps {}; the token above is shown only once",
                    key.id,
                    key.tenant,
                    key.caps.join(",")
                );
            })
        }
        Cmd::Keys { cmd: KeysCmd::List { data_dir } } => auth::load_keys(&data_dir.join(auth::KEYS_FILE)).map(|keys| {
            for k in keys {
                println!("{}\t{}\t{}\t{}", k.id, k.tenant, k.caps.join(","), k.created);
            }
        }),
        Cmd::Verify { checkpoint, key, export, data_dir, previous } => {
            let opts = verify::VerifyOptions { checkpoint, key, export, data_dir, previous };
            match verify::verify(&opts) {
                Ok(Ok(s)) => {
                    println!(
                        "OK: checkpoint for {:?} verified: {} entries hash to root {}; every entry's inclusion proof verifies; \
                         consistent with {} earlier checkpoint(s) given and {} from the data directory's history",
                        s.origin, s.size, s.root_b64, s.previous_checked, s.history_checked
                    );
                    if s.entries_read > s.size {
                        println!(
                            "note: {} entries after the checkpoint are not covered by it",
                            s.entries_read - s.size
                        );
                    }
                    return ExitCode::SUCCESS;
                }
                Ok(Err(f)) => {
                    println!("FAIL: {f}");
                    return ExitCode::from(1);
                }
                Err(e) => Err(e),
            }
        }
        Cmd::Keygen { name } => note::NoteSigner::generate(&name).map(|s| {
            println!("{}", s.to_private_string());
            eprintln!("verifier key: {}", s.verifier().encode());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshward-sink: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(
    store: StoreConfig,
    listen: SocketAddr,
    interval: Duration,
    entries_auth: bool,
    max_body: usize,
) -> Result<(), SinkError> {
    let raw = std::env::var(SECRET_ENV)
        .map_err(|_| SinkError::Config(format!("{SECRET_ENV} must hold the whsec_… webhook secret")))?;
    let secrets = raw
        .split_whitespace()
        .map(Secret::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SinkError::Config(format!("{SECRET_ENV}: {e}")))?;
    if secrets.is_empty() {
        return Err(SinkError::Config(format!("{SECRET_ENV} is empty")));
    }
    let env_key = std::env::var(storage::SIGNING_KEY_ENV).ok();
    let signer = storage::load_or_create_signing_key(&store.data_dir, &store.origin, env_key.as_deref())?;
    let cfg =
        ServeConfig { store, secrets, signer, checkpoint_interval: interval, entries_auth, max_body_bytes: max_body };
    let running = server::start(cfg, listen)?;
    println!("meshward-sink listening on http://{}", running.addr);
    eprintln!("meshward-sink: verifier key {}", running.store.verifier_key());
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| SinkError::io("runtime", e))?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    });
    eprintln!("meshward-sink: shutting down");
    running.stop();
    Ok(())
}
