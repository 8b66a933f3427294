//! The service under test: the `fleet-breaker serve` binary.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::timeout;

use crate::TOKEN;

/// `fleet-breaker serve` on a free loopback port, killed on drop.
pub(crate) struct Server {
    pub(crate) base: String,
    http: reqwest::Client,
    _child: tokio::process::Child,
}

impl Server {
    /// Starts the binary and waits for its `listening on http://ADDR` line.
    pub(crate) async fn start(redis_url: &str, prefix: &str) -> Server {
        Self::start_with(redis_url, prefix, &[]).await
    }

    /// [`start`](Self::start) with more `serve` flags.
    pub(crate) async fn start_with(redis_url: &str, prefix: &str, flags: &[&str]) -> Server {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleet-breaker"))
            .args(["serve", "--bind", "127.0.0.1:0", "--redis-url", redis_url])
            .args(["--prefix", prefix, "--admin-token", TOKEN])
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start fleet-breaker serve");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let listening = async {
            while let Some(line) = lines.next_line().await.expect("read serve's stdout") {
                if let Some((_, addr)) = line.split_once("listening on ") {
                    return Some(addr.trim().to_owned());
                }
            }
            None
        };
        let base = timeout(Duration::from_secs(20), listening)
            .await
            .expect("`fleet-breaker serve` did not say where it listens within 20 s")
            .expect("`fleet-breaker serve` exited before listening (its errors are above)");
        // Keep reading, so that the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            base,
            http: reqwest::Client::new(),
            _child: child,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("JSON")
    }

    /// `POST /api/circuit-breaker/force/{agent}` with the admin token.
    pub(crate) async fn force(&self, agent: &str, state: &str) {
        let path = format!("/api/circuit-breaker/force/{agent}");
        let answer = self.post(&path, json!({ "state": state })).await;
        assert_eq!(answer["status"], "forced", "{answer}");
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }
}
