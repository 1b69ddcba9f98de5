//! The operator under test: the real binary, run as a child process against the
//! bed with this test's own registry selector, AWS key and log file.

use crate::bed::{Bed, TestNames};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Operator {
    child: Child,
    log: PathBuf,
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
        let log = std::env::temp_dir().join(format!(
            "ecr-operator-{}-{}.log",
            names.id,
            std::process::id()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecr-operator"));
        cmd.args(["run", "--namespace", &names.ns("op")])
            .args(["--registry-selector", &format!("test={}", names.id)])
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
        }
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
