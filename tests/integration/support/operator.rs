//! The operator under test: the real binary, run as a child process against the
//! bed with this test's own registry selector, AWS key and log file.

use crate::support::bed::{Bed, TestNames};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Operator {
    child: Child,
    log: PathBuf,
    /// Port of the admin server (/healthz, /readyz, /metrics).
    pub admin_port: u16,
}

impl Operator {
    /// Runs `ecr-operator run` for the EcrRegistries labelled `test=<id>`, with the
    /// operator namespace `<id>-op` and this test's access key ID.
    pub fn start(bed: &Bed, names: &TestNames) -> Self {
        Self::start_with(bed, names, bed.kubeconfig(), &[])
    }

    pub fn start_with(
        bed: &Bed,
        names: &TestNames,
        kubeconfig: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = std::env::temp_dir().join(format!(
            "ecr-operator-{}-{}-{n}.log",
            names.id,
            std::process::id()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        // ECR_OPERATOR_BIN lets the benchmark run a release build under a debug harness.
        let bin = std::env::var("ECR_OPERATOR_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ecr-operator").into());
        let mut cmd = Command::new(bin);
        let admin_port = free_port();
        cmd.args(["run", "--namespace", &names.ns("op")])
            .args(["--registry-selector", &format!("test={}", names.id)])
            .args(["--admin-addr", &format!("127.0.0.1:{admin_port}")])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ENDPOINT_URL", bed.var("AWS_ENDPOINT_URL"))
            .env("AWS_REGION", bed.var("AWS_REGION"))
            .env("AWS_ACCESS_KEY_ID", names.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", bed.var("AWS_SECRET_ACCESS_KEY"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // The most verbose logs, so the leak checks see everything a user could turn on.
            .env(
                "RUST_LOG",
                "trace,hyper=debug,h2=debug,tower=debug,rustls=debug",
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file);
        Self {
            child: cmd.spawn().expect("start ecr-operator"),
            log,
            admin_port,
        }
    }

    /// GET on the admin server: (status code, body); (0, "") while it is not up.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.admin_port);
        match crate::support::http_client().get(url).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, secs: u64) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "operator still running {secs}s after SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "operator still running after {secs}s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asserts that no secret value ever reached the logs.
    pub fn assert_logs_hold_none_of<S: AsRef<str>>(&self, secrets: &[S]) {
        let logs = self.logs();
        assert!(!logs.is_empty(), "operator wrote no logs");
        for s in secrets {
            assert!(
                !logs.contains(s.as_ref()),
                "a secret value leaked into the operator's logs ({})",
                self.log.display()
            );
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("operator log kept at {}", self.log.display());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
