//! Runs the real Envoy on loopback with ephemeral ports.
//!
//! The template is rendered with the listener and admin on port 0; Envoy
//! writes the admin address to `--admin-address-path`, and the listener's
//! bound port is read from admin `/listeners?format=json`. Nothing is picked
//! in advance, so there is no port race with parallel tests. Hot restart is
//! disabled (no shared memory, no base id to collide). Envoy's stdout and
//! stderr go to `envoy.log` in the instance's temp dir; errors carry its
//! tail, and a test that panics keeps the dir and prints where it is.
//!
//! The process is killed and reaped on drop (also while a test panics), and
//! asks the kernel to SIGKILL it should the test process die first.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::http::{self, Request};
use crate::render::{self, HostPort, RenderParams};
use crate::{paths, Error};

/// How long Envoy may take to become ready (V8 compiles the module at
/// start-up, on a 2-core machine shared with compilers).
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(25);
const LISTENER_NAME: &str = "meshward_ingress";

/// The secret environment variables the VM reads (`host_env_keys`).
pub const PLACEHOLDER_KEY_VAR: &str = "MESHWARD_PLACEHOLDER_KEY";
pub const AUDIT_SECRET_VAR: &str = "MESHWARD_AUDIT_SECRET";
pub const APPROVAL_KEY_VAR: &str = "MESHWARD_APPROVAL_KEY";
/// `MESHWARD_APPROVAL_KEY` for policies with approval-required tools.
pub const TEST_APPROVAL_KEY: &str = "meshward-e2e-approval-key-0123456789abcdef";

/// `MESHWARD_AUDIT_SECRET` for configs whose policy enables audit.
pub const TEST_AUDIT_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// The key the tests give the filter unless told otherwise.
pub const TEST_PLACEHOLDER_KEY: &str = "meshward-e2e-placeholder-key-0123456789abcdef0123456789abcdef";

/// How to run one Envoy.
#[derive(Debug, Clone)]
pub struct EnvoyConfig {
    pub provider: SocketAddr,
    /// Nothing listens there in the tests (yet).
    pub sink: SocketAddr,
    /// Load the meshward filter (`false`: a plain proxy, to test the harness).
    pub with_filter: bool,
    /// The plugin configuration, verbatim.
    pub policy_json: String,
    /// `MESHWARD_PLACEHOLDER_KEY` in Envoy's environment; `None` = unset.
    pub placeholder_key: Option<String>,
    /// More environment for Envoy.
    pub env: Vec<(String, String)>,
    /// HTTP filters (YAML list items, indented as the template's
    /// `http_filters`) placed before the meshward filter, e.g. `jwt_authn`.
    pub filters_before: Vec<String>,
    /// Load this module instead of the built filter (e.g. a guest that traps).
    pub wasm_module: Option<PathBuf>,
    /// Text replacements in the rendered config, each of which must match,
    /// e.g. another failure policy in place of `fail_open: false`.
    pub config_edits: Vec<(String, String)>,
    /// Deliver the filter the way Istio does, through extension config
    /// discovery (ECDS), here from a watched file: [`Envoy::update_filter`]
    /// then swaps the filter's configuration while Envoy runs.
    pub filter_via_ecds: bool,
    /// A program (and its arguments) to run Envoy under, e.g. valgrind:
    /// `[program, args..] envoy envoy-args..`. It must keep Envoy's pid
    /// (exec, not fork), so [`Envoy::pid`] stays Envoy's.
    pub run_under: Vec<String>,
    /// How long Envoy may take to serve (a VM compiled under valgrind
    /// takes minutes).
    pub ready_timeout: Duration,
}

impl EnvoyConfig {
    /// The filter with `policies/default.json` and [`TEST_PLACEHOLDER_KEY`].
    pub fn new(provider: SocketAddr) -> Result<Self, Error> {
        Ok(EnvoyConfig {
            provider,
            sink: SocketAddr::from(([127, 0, 0, 1], 9)),
            with_filter: true,
            policy_json: paths::read(&paths::default_policy())?,
            placeholder_key: Some(TEST_PLACEHOLDER_KEY.to_owned()),
            env: Vec::new(),
            filters_before: Vec::new(),
            wasm_module: None,
            config_edits: Vec::new(),
            filter_via_ecds: false,
            run_under: Vec::new(),
            ready_timeout: READY_TIMEOUT,
        })
    }
}

/// How a launch ended.
#[derive(Debug)]
pub enum Launch {
    /// Serving: admin `/ready` said LIVE and the listener is bound.
    Ready(Envoy),
    /// Envoy exited before becoming ready.
    Exited(EnvoyExit),
}

/// An Envoy that exited during start-up.
#[derive(Debug)]
pub struct EnvoyExit {
    pub status: ExitStatus,
    pub log: String,
    pub config: String,
}

/// A running Envoy; killed and reaped on drop.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    dir: Option<tempfile::TempDir>,
    listener: SocketAddr,
    admin: SocketAddr,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// The last `max` bytes of a log, for error messages.
pub fn tail(log: &str, max: usize) -> &str {
    if log.len() <= max {
        return log;
    }
    let mut start = log.len() - max;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

/// Renders the template for `cfg` with the listener and admin on port 0,
/// then applies `cfg.config_edits`.
pub fn render_for(cfg: &EnvoyConfig, wasm: Option<&Path>) -> Result<String, Error> {
    let template = paths::read(&paths::template())?;
    let mut config = render::render(
        &template,
        &RenderParams {
            listener: HostPort::new("127.0.0.1", 0),
            admin: HostPort::new("127.0.0.1", 0),
            provider: cfg.provider.into(),
            sink: cfg.sink.into(),
            wasm,
            policy_json: &cfg.policy_json,
        },
    )?;
    for (from, to) in &cfg.config_edits {
        if !config.contains(from.as_str()) {
            return Err(Error::Render(format!("config edit: {from:?} is not in the rendered config")));
        }
        config = config.replace(from.as_str(), to);
    }
    Ok(config)
}

const FILTER_BEGIN: &str = "          # meshward-filter:begin\n";
const FILTER_END: &str = "          # meshward-filter:end\n";
const ECDS_FILE: &str = "meshward-filter.yaml";

/// Splits a rendered config into the config with the wasm filter replaced by
/// an ECDS reference to `ecds_path`, and the ECDS resource file holding the
/// filter's own configuration (the template's filter block, re-indented).
fn split_filter_for_ecds(config: &str, ecds_path: &Path) -> Result<(String, String), Error> {
    let missing = || Error::Render("the template's filter markers are missing".into());
    let begin = config.find(FILTER_BEGIN).ok_or_else(missing)? + FILTER_BEGIN.len();
    let end = config[begin..].find(FILTER_END).ok_or_else(missing)? + begin;
    let mut lines = config[begin..end].lines();
    if lines.next().map(str::trim) != Some("- name: envoy.filters.http.wasm") {
        return Err(Error::Render("the filter block does not start with the wasm filter".into()));
    }
    let mut resource = String::from(
        "resources:\n- \"@type\": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig\n  name: meshward\n",
    );
    for line in lines {
        resource.push_str(line.get(10..).unwrap_or("").trim_end());
        resource.push('\n');
    }
    let reference = format!(
        "          - name: meshward\n            config_discovery:\n              config_source:\n                \
         resource_api_version: V3\n                path_config_source: {{ path: {} }}\n              \
         type_urls: [\"type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\"]\n",
        render::quote(&ecds_path.display().to_string())
    );
    Ok((format!("{}{reference}{}", &config[..begin], &config[end..]), resource))
}

/// `envoy --mode validate -c config`: `Ok(log)` when valid, else
/// [`Error::EnvoyInvalid`].
pub fn validate(config: &Path) -> Result<String, Error> {
    let envoy = paths::envoy_binary()?;
    let out = Command::new(&envoy)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(config)
        .arg("--disable-hot-restart")
        .env(PLACEHOLDER_KEY_VAR, TEST_PLACEHOLDER_KEY)
        .env(AUDIT_SECRET_VAR, TEST_AUDIT_SECRET)
        .env(APPROVAL_KEY_VAR, TEST_APPROVAL_KEY)
        .output()
        .map_err(io(format!("running {}", envoy.display())))?;
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(log)
    } else {
        Err(Error::EnvoyInvalid { config: config.to_owned(), status: out.status, log })
    }
}

impl Envoy {
    /// Starts Envoy and waits until it serves; an early exit is an error.
    pub fn start(cfg: &EnvoyConfig) -> Result<Envoy, Error> {
        match Self::launch(cfg)? {
            Launch::Ready(envoy) => Ok(envoy),
            Launch::Exited(exit) => Err(Error::EnvoyExited { status: exit.status, log: exit.log }),
        }
    }

    /// Starts Envoy and waits until it either serves or exits.
    pub fn launch(cfg: &EnvoyConfig) -> Result<Launch, Error> {
        let envoy_bin = paths::envoy_binary()?;
        let wasm = match (&cfg.wasm_module, cfg.with_filter) {
            (_, false) => None,
            (Some(module), true) => Some(module.clone()),
            (None, true) => Some(paths::wasm_module()?),
        };
        let mut config = render_for(cfg, wasm.as_deref())?;
        if !cfg.filters_before.is_empty() {
            const MARK: &str = "          # meshward-filter:begin";
            let at = config.find(MARK).ok_or_else(|| Error::Render("the template has no filter marker".into()))?;
            config.insert_str(at, &cfg.filters_before.concat());
        }
        let dir = tempfile::Builder::new().prefix("meshward-e2e-").tempdir().map_err(io("creating a temp dir"))?;
        if cfg.filter_via_ecds {
            let ecds_path = dir.path().join(ECDS_FILE);
            let (main, resource) = split_filter_for_ecds(&config, &ecds_path)?;
            std::fs::write(&ecds_path, resource).map_err(io("writing the ECDS resource"))?;
            config = main;
        }
        let config_path = dir.path().join("envoy.yaml");
        let admin_path = dir.path().join("admin.addr");
        let log_path = dir.path().join("envoy.log");
        std::fs::write(&config_path, &config).map_err(io("writing envoy.yaml"))?;
        let log = File::create(&log_path).map_err(io("creating envoy.log"))?;
        let log2 = log.try_clone().map_err(io("cloning the log handle"))?;

        let mut cmd = match cfg.run_under.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&envoy_bin);
                cmd
            }
            None => Command::new(&envoy_bin),
        };
        cmd.arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--concurrency", "1", "--disable-hot-restart", "-l", "info"])
            // xDS (here file-based ECDS) wants the node to have a name.
            .args(["--service-node", "meshward-e2e", "--service-cluster", "meshward-e2e"])
            .env_remove(PLACEHOLDER_KEY_VAR)
            .env_remove(AUDIT_SECRET_VAR)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        if let Some(key) = &cfg.placeholder_key {
            cmd.env(PLACEHOLDER_KEY_VAR, key);
        }
        for (k, v) in &cfg.env {
            cmd.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        // The death signal fires when the spawning thread exits, which for a
        // test is after the Envoy has been dropped anyway.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(io(format!("starting {}", envoy_bin.display())))?;
        // From here on, Drop kills and reaps it.
        let mut envoy = Envoy {
            child,
            dir: Some(dir),
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let deadline = Instant::now() + cfg.ready_timeout;
        loop {
            if let Some(status) = envoy.child.try_wait().map_err(io("polling Envoy"))? {
                let exit = EnvoyExit { status, log: envoy.log(), config };
                // Already reaped; nothing to kill. Keep the dir only on panic.
                return Ok(Launch::Exited(exit));
            }
            if envoy.admin.port() == 0 {
                if let Some(addr) =
                    std::fs::read_to_string(&admin_path).ok().and_then(|s| s.trim().parse::<SocketAddr>().ok())
                {
                    envoy.admin = addr;
                }
            }
            if envoy.admin.port() != 0 && envoy.is_live() {
                if let Some(listener) = envoy.bound_listener()? {
                    envoy.listener = listener;
                    return Ok(Launch::Ready(envoy));
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::EnvoyNotReady { waited: cfg.ready_timeout, log: envoy.log() });
            }
            std::thread::sleep(POLL);
        }
    }

    fn is_live(&self) -> bool {
        http::send(self.admin, &Request::get("/ready"))
            .map(|r| r.status == 200 && r.text().trim() == "LIVE")
            .unwrap_or(false)
    }

    fn bound_listener(&self) -> Result<Option<SocketAddr>, Error> {
        let resp = http::send(self.admin, &Request::get("/listeners?format=json"))?;
        let json = resp.json()?;
        let found =
            json["listener_statuses"].as_array().into_iter().flatten().find(|l| l["name"] == LISTENER_NAME).and_then(
                |l| {
                    let sa = &l["local_address"]["socket_address"];
                    let ip: std::net::IpAddr = sa["address"].as_str()?.parse().ok()?;
                    let port = u16::try_from(sa["port_value"].as_u64()?).ok()?;
                    (port != 0).then_some(SocketAddr::new(ip, port))
                },
            );
        Ok(found)
    }

    /// Where clients connect.
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// The admin interface.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The instance's temp dir (config, log, admin address).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("envoy.log")
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path()).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Sends a request to the listener.
    pub fn send(&self, req: &Request) -> Result<http::Response, Error> {
        http::send(self.listener, req)
    }

    /// Sends a request to the listener over HTTP/2 (h2c, prior knowledge).
    pub fn send_h2c(&self, req: &Request) -> Result<http::Response, Error> {
        crate::h2c::send(self.listener, req)
    }

    /// Replaces the filter's configuration while Envoy runs, as a control
    /// plane would: renders `cfg` and atomically swaps the ECDS resource
    /// file Envoy watches (needs `filter_via_ecds`). Envoy applies it
    /// asynchronously; watch `extension_config_discovery.*` stats.
    pub fn update_filter(&self, cfg: &EnvoyConfig) -> Result<(), Error> {
        let ecds_path = self.dir().join(ECDS_FILE);
        if !ecds_path.exists() {
            return Err(Error::Render("this Envoy was not started with filter_via_ecds".into()));
        }
        let wasm = match &cfg.wasm_module {
            Some(module) => module.clone(),
            None => paths::wasm_module()?,
        };
        let (_, resource) = split_filter_for_ecds(&render_for(cfg, Some(&wasm))?, &ecds_path)?;
        let staged = self.dir().join(format!("{ECDS_FILE}.next"));
        std::fs::write(&staged, resource).map_err(io("staging the ECDS resource"))?;
        std::fs::rename(&staged, &ecds_path).map_err(io("swapping the ECDS resource"))
    }

    /// Every stat whose name contains `part`, as (name, value).
    pub fn stats_containing(&self, part: &str) -> Result<Vec<(String, u64)>, Error> {
        let resp = http::send(self.admin, &Request::get("/stats"))?;
        Ok(resp
            .text()
            .lines()
            .filter(|line| line.contains(part))
            .filter_map(|line| {
                let (k, v) = line.split_once(':')?;
                Some((k.trim().to_owned(), v.trim().parse().ok()?))
            })
            .collect())
    }

    /// The process id, e.g. to read its memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A counter or gauge from admin `/stats` (`None` if Envoy has no such
    /// stat). E.g. `cluster.llm_provider.upstream_rq_total`: requests Envoy
    /// started towards the provider, aborted ones included.
    pub fn stat(&self, name: &str) -> Result<Option<u64>, Error> {
        let resp = http::send(self.admin, &Request::get(&format!("/stats?filter=^{name}$")))?;
        Ok(resp.text().lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == name).then(|| v.trim().parse().ok()).flatten()
        }))
    }

    /// Is the Envoy process still running?
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // Either may fail only if the process is already gone and reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!("meshward-e2e: test failed; Envoy config and log kept in {}", kept.display());
            }
        }
    }
}
