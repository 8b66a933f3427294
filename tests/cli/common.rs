//! What several command tests start: a short demo, a webhook receiver, a
//! running `serve`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::wait_until;
use crate::{command, run};

/// `demo --no-serve` for 3 s with 2 pods, agent-1 down a second in every
/// two (so every agent is called), on the store `store` names.
pub(crate) async fn short_demo(store: &[&str]) -> Output {
    let mut args: Vec<String> = store.iter().map(|a| (*a).to_owned()).collect();
    args.extend(
        [
            "demo",
            "--no-serve",
            "--duration",
            "3s",
            "--pods",
            "2",
            "--cycle",
            "2s",
        ]
        .map(str::to_owned),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    })
    .await
    .unwrap()
}

/// A loopback webhook receiver that answers 200 and keeps every body.
pub(crate) struct Hook {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    pub(crate) async fn start() -> Hook {
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post({
                let received = Arc::clone(&received);
                move |axum::Json(body): axum::Json<Value>| async move {
                    received.lock().unwrap().push(body);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hook { url, received }
    }

    /// The first body received, waiting up to `bound` for it.
    pub(crate) async fn first(&self, bound: Duration) -> Value {
        wait_until("the webhook receives the transition", bound, || {
            let received = Arc::clone(&self.received);
            async move { !received.lock().unwrap().is_empty() }
        })
        .await;
        self.received.lock().unwrap()[0].clone()
    }

    /// Every body received so far.
    pub(crate) fn all(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

/// A running `fleet-breaker serve`, killed and reaped on drop (even when
/// the test fails).
pub(crate) struct Serving {
    child: Child,
    /// `http://127.0.0.1:PORT`, from its "listening on" line.
    pub(crate) addr: String,
}

impl Serving {
    /// `fleet-breaker <args> serve --bind 127.0.0.1:0 <serve_args>`, once it
    /// says where it listens (after its consumer groups exist).
    pub(crate) async fn start(args: &[&str], serve_args: &[&str]) -> Serving {
        let mut child = command()
            .args(args)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(serve_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout_pipe = child.stdout.take().unwrap();
        let first = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout_pipe).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            std::thread::spawn(move || lines.for_each(drop));
            first
        })
        .await
        .unwrap();
        let addr = first
            .split("listening on ")
            .nth(1)
            .unwrap_or_else(|| panic!("serve says where it listens: {first:?}"))
            .to_owned();
        Serving { child, addr }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
