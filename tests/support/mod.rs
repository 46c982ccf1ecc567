//! Helpers for the end-to-end tests of the `weft` binary: running it with a sanitized
//! environment and a timeout, a `weft serve` child that is killed on drop, a Sonar
//! simulator in the test process, polling with deadlines and scenario copies that can
//! only ever reach loopback.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use weft_sonar_sim::{RunningSim, SimConfig, Simulator};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_weft");

/// The token the test simulators accept.
pub const SIM_TOKEN: &str = "sim-token";

/// How long a one-shot command (`validate`, `run`, `executions list`...) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long to wait for something asynchronous to happen (executions, deliveries).
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// A proxy address nothing listens on: any request that is not to loopback fails instead
/// of reaching a real host.
const DEAD_PROXY: &str = "http://127.0.0.1:9";

/// The repository root (the `weft` package lives in `crates/cli`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A file or folder of the repository.
pub fn repo(path: &str) -> PathBuf {
    repo_root().join(path)
}

/// A test fixture (`tests/fixtures/...`).
pub fn fixture(path: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(path)
}

/// `weft` with an environment that cannot leak to a real host: proxies point at a dead
/// loopback port (loopback itself is exempt), and no `WEFT_*` / `SONAR_*` variable of the
/// caller's environment is inherited, nor tokio's thread count (`TOKIO_WORKER_THREADS`: a test
/// counts the runtime's threads). Runs in the repository root.
pub fn weft_cmd() -> Command {
    let mut cmd = Command::new(BIN);
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if name.starts_with("WEFT_") || name.starts_with("SONAR_") {
            cmd.env_remove(&var);
        }
    }
    for var in [
        "TOKIO_WORKER_THREADS",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HTTP_PROXY", DEAD_PROXY)
        .env("HTTPS_PROXY", DEAD_PROXY)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("NO_COLOR", "1")
        .current_dir(repo_root())
        .stdin(Stdio::null());
    cmd
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Panics with both outputs unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Standard output parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs a prepared command to the end, killing it after `timeout`.
pub fn run_cmd(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: status.code(),
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// `weft ARGS...` with extra environment variables, to the end.
pub fn weft_sync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = weft_cmd();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_cmd(cmd, COMMAND_TIMEOUT)
}

/// [`weft_sync`] off the async runtime's threads.
pub async fn weft(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        weft_sync(&args, &env)
    })
    .await
    .unwrap()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An HTTP client that never uses a proxy.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap()
}

/// Calls `probe` every `every` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

/// Copies example scenarios from `scenarios/` into `dest`, pointing their Sonar connection
/// at `${SONAR_BASE_URL}` instead of the sandbox host.
pub fn copy_examples(dest: &Path, names: &[&str]) {
    for name in names {
        let text = std::fs::read_to_string(repo(&format!("scenarios/{name}.yaml"))).unwrap();
        std::fs::write(dest.join(format!("{name}.yaml")), loopback_only(&text)).unwrap();
    }
}

/// Rewrites a scenario's `sandbox: true` into `base_url: ${SONAR_BASE_URL}`, and checks that
/// no other way to a real host is left.
pub fn loopback_only(text: &str) -> String {
    let out = text.replace("sandbox: true", "base_url: ${SONAR_BASE_URL}");
    assert!(
        !out.contains("sandbox"),
        "unexpected sandbox setting:\n{out}"
    );
    if out.contains("app: sonar") {
        assert!(out.contains("base_url: ${SONAR_BASE_URL}"), "{out}");
    }
    out
}

/// Copies test fixtures (`tests/fixtures/scenarios/NAME.yaml`) into `dest`.
pub fn copy_fixtures(dest: &Path, names: &[&str]) {
    for name in names {
        let text = std::fs::read_to_string(fixture(&format!("scenarios/{name}.yaml"))).unwrap();
        std::fs::write(dest.join(format!("{name}.yaml")), loopback_only(&text)).unwrap();
    }
}

/// Copies scenario fixtures from `tests/fixtures/{folder}/NAME.yaml` into `dest`, pointing any
/// Sonar connection at `${SONAR_BASE_URL}` (as [`copy_fixtures`]).
pub fn copy_fixtures_from(folder: &str, dest: &Path, names: &[&str]) {
    for name in names {
        let text = std::fs::read_to_string(fixture(&format!("{folder}/{name}.yaml"))).unwrap();
        std::fs::write(dest.join(format!("{name}.yaml")), loopback_only(&text)).unwrap();
    }
}

/// Every example scenario name (`scenarios/*.yaml`), sorted.
pub fn example_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo("scenarios"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A Sonar simulator in the test process, on an ephemeral loopback port.
pub struct Sim {
    /// The running simulator.
    pub running: RunningSim,
    http: reqwest::Client,
}

impl Sim {
    /// Starts one accepting [`SIM_TOKEN`].
    pub async fn start() -> Sim {
        Sim::start_with(SimConfig::default()).await
    }

    /// Starts one with the given configuration (other tokens, delivery schedule).
    pub async fn start_with(config: SimConfig) -> Sim {
        let running = Simulator::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        Sim {
            running,
            http: http(),
        }
    }

    /// The API base URL (a connection's `base_url`).
    pub fn base_url(&self) -> String {
        self.running.base_url()
    }

    /// The environment a `weft` child needs to reach this simulator.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("SONAR_BASE_URL".to_owned(), self.base_url()),
            ("SONAR_TOKEN".to_owned(), SIM_TOKEN.to_owned()),
        ]
    }

    /// POSTs to the control surface (`/_sim/...`) and returns the answer; panics unless 2xx.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/_sim/{path}", self.running.root_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "/_sim/{path} answered {status}: {value}"
        );
        value
    }

    /// `GET /_sim/state`.
    pub async fn state(&self) -> Value {
        self.http
            .get(format!("{}/_sim/state", self.running.root_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The registered webhooks.
    pub async fn webhooks(&self) -> Vec<Value> {
        self.state().await["webhooks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The messages, inbound and outbound.
    pub async fn messages(&self) -> Vec<Value> {
        self.state().await["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Whether a webhook delivery is still pending.
    pub async fn deliveries_pending(&self) -> bool {
        self.state().await["deliveries"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x["status"] == "pending"))
    }
}

/// How to start `weft serve`.
#[derive(Clone, Debug)]
pub struct ServeOpts {
    /// Scenario folder.
    pub dir: PathBuf,
    /// Database file.
    pub db: PathBuf,
    /// Where stdout and stderr go (appended across restarts).
    pub log: PathBuf,
    /// Extra arguments (`--body-limit 1024`...).
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// The address part of `--listen` (`127.0.0.1`; `0.0.0.0` to test a non-loopback
    /// bind). The tests always connect through 127.0.0.1.
    pub listen_host: String,
}

impl ServeOpts {
    /// `DIR` = `root/scenarios`, `--db root/weft.db`, log `root/serve.log`.
    pub fn in_dir(root: &Path) -> ServeOpts {
        let dir = root.join("scenarios");
        std::fs::create_dir_all(&dir).unwrap();
        ServeOpts {
            dir,
            db: root.join("weft.db"),
            log: root.join("serve.log"),
            args: Vec::new(),
            env: Vec::new(),
            listen_host: "127.0.0.1".to_owned(),
        }
    }
}

/// A `weft serve` child process on a loopback port; killed (SIGKILL) when dropped.
pub struct Serve {
    child: Option<Child>,
    /// The port it listens on (kept across restarts, so hook URLs stay the same).
    pub port: u16,
    /// How it was started.
    pub opts: ServeOpts,
    http: reqwest::Client,
}

impl Serve {
    /// Starts `weft serve` on a free port and waits until `/healthz` answers 200.
    pub async fn start(opts: ServeOpts) -> Serve {
        let mut serve = Serve {
            child: None,
            port: free_port(),
            opts,
            http: http(),
        };
        // The port was free when picked; should another process take it meanwhile, try
        // another one.
        for _ in 0..3 {
            match serve.spawn_and_wait().await {
                Ok(()) => return serve,
                Err(log) if log.contains("cannot listen") => serve.port = free_port(),
                Err(log) => panic!("weft serve exited early\n--- log\n{log}"),
            }
        }
        panic!("weft serve found no free port\n--- log\n{}", serve.log());
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The database path as a string.
    pub fn db(&self) -> String {
        self.opts.db.display().to_string()
    }

    /// The environment given to the child (for `weft deactivate`, which loads scenarios).
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.opts
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The process id of the running child.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("weft serve is not running").id()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "weft serve is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.opts.log)
            .unwrap();
        let mut cmd = weft_cmd();
        let port = self.port.to_string();
        cmd.arg("serve")
            .arg(&self.opts.dir)
            .args(["--listen", &format!("{}:{port}", self.opts.listen_host)])
            .arg("--db")
            .arg(&self.opts.db)
            .args(["--public-url", &self.url()])
            .args(&self.opts.args)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    /// Spawns the child and waits for `/healthz`; `Err(log)` if it exited first.
    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.spawn();
        let url = format!("{}/healthz", self.url());
        let deadline = Instant::now() + EVENTUALLY;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("exit status {status}\n{}", self.log()));
            }
            if let Ok(resp) = self.http.get(&url).send().await {
                if resp.status() == 200 {
                    return Ok(());
                }
            }
            assert!(
                Instant::now() < deadline,
                "weft serve did not become healthy\n--- log\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts it again (same port, db and scenarios) after a stop.
    pub async fn restart(&mut self) {
        if let Err(log) = self.spawn_and_wait().await {
            panic!("weft serve did not restart\n--- log\n{log}");
        }
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; waits at most `timeout` for the process to exit and returns its status.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weft serve did not exit within {timeout:?} of SIGTERM\n--- log\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the child printed so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.opts.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// `GET /healthz` as JSON.
    pub async fn health(&self) -> Value {
        self.http
            .get(format!("{}/healthz", self.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `GET path` (e.g. `/metrics`), optionally with `Authorization: Bearer TOKEN`: the
    /// status and the body.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, String) {
        let mut req = self.http.get(format!("{}{path}", self.url()));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Waits until the queue is empty (nothing waiting, nothing running), twice in a row.
    pub async fn wait_idle(&self) {
        let deadline = Instant::now() + EVENTUALLY;
        let mut quiet = 0;
        while quiet < 2 {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for an empty queue: {}",
                self.health().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            quiet = if self.health().await["queue_depth"] == 0 {
                quiet + 1
            } else {
                0
            };
        }
    }

    /// Waits until weft's queue is empty and the simulator has no delivery pending, twice in
    /// a row.
    pub async fn settle(&self, sim: &Sim) {
        let deadline = Instant::now() + EVENTUALLY;
        let mut quiet = 0;
        while quiet < 2 {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for weft and the simulator to settle"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
            let idle = self.health().await["queue_depth"] == 0;
            let pending = sim.deliveries_pending().await;
            quiet = if idle && !pending { quiet + 1 } else { 0 };
        }
    }

    /// POSTs a JSON body to a hook URL.
    pub async fn post_json(&self, url: &str, body: &Value) -> reqwest::Response {
        self.http.post(url).json(body).send().await.unwrap()
    }

    /// `weft executions list --json` (optionally for one scenario), newest first.
    pub async fn executions(&self, scenario: Option<&str>) -> Vec<Value> {
        let db = self.db();
        let mut args = vec![
            "executions",
            "list",
            "--db",
            &db,
            "--json",
            "--limit",
            "10000",
        ];
        if let Some(s) = scenario {
            args.extend(["--scenario", s]);
        }
        weft(&args, &[])
            .await
            .expect_code(0)
            .json()
            .as_array()
            .cloned()
            .unwrap()
    }

    /// `weft executions show ID --json`.
    pub async fn execution(&self, id: &str) -> Value {
        let db = self.db();
        weft(&["executions", "show", id, "--db", &db, "--json"], &[])
            .await
            .expect_code(0)
            .json()
    }

    /// `weft hooks list --json` with this server's public URL: `[{scenario, module_id, url}]`.
    pub async fn hooks(&self) -> Vec<Value> {
        let db = self.db();
        let url = self.url();
        weft(
            &["hooks", "list", "--db", &db, "--public-url", &url, "--json"],
            &[],
        )
        .await
        .expect_code(0)
        .json()
        .as_array()
        .cloned()
        .unwrap()
    }

    /// The hook URL of a scenario.
    pub async fn hook_url(&self, scenario: &str) -> String {
        self.hooks()
            .await
            .iter()
            .find(|h| h["scenario"] == scenario)
            .unwrap_or_else(|| panic!("no hook for `{scenario}`"))["url"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- weft serve log ({})\n{}",
                self.opts.log.display(),
                self.log()
            );
        }
    }
}

/// A set of strings from an iterator of JSON values (panics on non-strings).
pub fn strings<'a>(values: impl IntoIterator<Item = &'a Value>) -> BTreeSet<String> {
    values
        .into_iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// `{"n": n}` bodies.
pub fn numbered(n: u64) -> Value {
    json!({ "n": n })
}
