//! A `docker-registry serve` of one test's own: plain HTTP on a free loopback
//! port, htpasswd (bcrypt) auth for exactly one user, storage in a temporary
//! directory; killed when dropped. Like the bed's registry (tests/bed/registry/
//! start), but with a password the test chooses, e.g. the one a fault-proxy
//! `token` rule hands out for one region.

use crate::support::bed::Bed;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateRegistry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, for image references and authfiles.
    pub host: String,
}

impl PrivateRegistry {
    /// Starts the registry accepting only `user` with `password`.
    pub fn start(user: &str, password: &str) -> Self {
        let mut dir = tempfile::Builder::new()
            .prefix("private-registry-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("run htpasswd (apache2-utils, tests/bed/registry/install)");
        assert!(
            out.status.success(),
            "htpasswd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(d.join("htpasswd"), &out.stdout).unwrap();
        // docker-registry cannot report a port it chose: pick a free one, and
        // try another if it is taken in between.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let config = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {data}\n\
                 http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: ecr-operator-test\n    path: {htpasswd}\n",
                data = d.join("data").display(),
                htpasswd = d.join("htpasswd").display(),
            );
            std::fs::write(d.join("config.yml"), config).unwrap();
            let log = std::fs::File::create(d.join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(d.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("run docker-registry");
            let mut registry = Self {
                child,
                dir,
                host: format!("127.0.0.1:{port}"),
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if std::net::TcpStream::connect(&registry.host).is_ok() {
                    return registry;
                }
                if let Ok(Some(_)) = registry.child.try_wait() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "docker-registry did not listen on {}: {}",
                    registry.host,
                    registry.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                registry.log().contains("address already in use"),
                "docker-registry exited during start-up: {}",
                registry.log()
            );
            // Dropping would remove the directory: take it back first.
            let _ = registry.child.wait();
            dir = std::mem::replace(&mut registry.dir, tempfile::tempdir().unwrap());
        }
        panic!("docker-registry found no free port after 5 tries");
    }

    /// Copies the bed's image (BED_IMAGE) in as `repo:tag` with `user`/`password`;
    /// returns the image reference.
    pub fn push_bed_image(&self, repo_tag: &str, user: &str, password: &str) -> String {
        let bed = Bed::get();
        let image = format!("{}/{repo_tag}", self.host);
        let out = Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg("--src-creds")
            .arg(format!("AWS:{}", bed.var("BED_ECR_PASSWORD")))
            .arg("--dest-creds")
            .arg(format!("{user}:{password}"))
            .arg(format!("docker://{}", bed.var("BED_IMAGE")))
            .arg(format!("docker://{image}"))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy into {image}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        image
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("registry.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
