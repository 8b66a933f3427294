//! A loopback webhook receiver that records what it gets and can be told to
//! fail or hang.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use fleet_breaker::Transition;
use fleet_breaker::alerts::{ATTEMPT_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use tokio::task::JoinHandle;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) delivery_id: String,
    pub(crate) attempt: u64,
    pub(crate) content_type: String,
    pub(crate) transition: Option<Transition>,
    /// The body as JSON (`Null` when it is not JSON).
    pub(crate) json: serde_json::Value,
    /// The raw body.
    pub(crate) body: Vec<u8>,
    /// `X-Fleet-Breaker-Timestamp` and `X-Fleet-Breaker-Signature`, empty
    /// when missing.
    pub(crate) timestamp: String,
    pub(crate) signature: String,
}

impl Received {
    /// Verifies the signature as the docs tell a receiver to, computed
    /// here with `hmac` directly (not the crate's own function): recompute
    /// HMAC-SHA256(secret, "TIMESTAMP.BODY"), compare in constant time,
    /// and refuse a timestamp more than 5 minutes from now.
    pub(crate) fn verify(&self, secret: &str) -> Result<(), String> {
        use hmac::{Hmac, Mac};
        let timestamp: u64 = self
            .timestamp
            .parse()
            .map_err(|_| format!("bad timestamp {:?}", self.timestamp))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if now.abs_diff(timestamp) > 300 {
            return Err(format!(
                "timestamp {timestamp} is more than 5 min from {now}"
            ));
        }
        let hex = self
            .signature
            .strip_prefix("v1=")
            .ok_or_else(|| format!("no v1= in {:?}", self.signature))?;
        let given: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("not hex: {e}"))?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(self.timestamp.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        mac.verify_slice(&given)
            .map_err(|_| "signature mismatch".to_owned())
    }
}

#[derive(Default)]
struct Book {
    /// Every request, as it arrives.
    arrived: Vec<Received>,
    /// Requests answered 200.
    accepted: Vec<Received>,
    hang_next: usize,
    fail_next: usize,
    always_fail: bool,
}

/// An HTTP server on `127.0.0.1:0`, stopped on drop.
pub(crate) struct Receiver {
    url: String,
    book: Arc<Mutex<Book>>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Answers 200 to everything.
    pub(crate) async fn start() -> Self {
        let book = Arc::new(Mutex::new(Book::default()));
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(Arc::clone(&book));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serve the receiver");
        });
        Self { url, book, task }
    }

    /// Answers 500 to the next `n` requests.
    pub(crate) fn fail_next(&self, n: usize) {
        self.book.lock().unwrap().fail_next = n;
    }

    /// Answers 500 to every request.
    pub(crate) fn always_fail(&self) {
        self.book.lock().unwrap().always_fail = true;
    }

    /// Never answers the next `n` requests.
    pub(crate) fn hang_next(&self, n: usize) {
        self.book.lock().unwrap().hang_next = n;
    }

    pub(crate) fn url(&self) -> String {
        self.url.clone()
    }

    /// Every request so far.
    pub(crate) fn arrived(&self) -> Vec<Received> {
        self.book.lock().unwrap().arrived.clone()
    }

    /// The requests answered 200 so far.
    pub(crate) fn accepted(&self) -> Vec<Received> {
        self.book.lock().unwrap().accepted.clone()
    }
}

enum Answer {
    Hang,
    Fail,
    Accept,
}

async fn hook(State(book): State<Arc<Mutex<Book>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let received = Received {
        delivery_id: header(DELIVERY_HEADER),
        attempt: header(ATTEMPT_HEADER).parse().unwrap_or(0),
        content_type: header("content-type"),
        transition: serde_json::from_slice(&body).ok(),
        json: serde_json::from_slice(&body).unwrap_or_default(),
        body: body.to_vec(),
        timestamp: header(TIMESTAMP_HEADER),
        signature: header(SIGNATURE_HEADER),
    };
    let answer = {
        let mut book = book.lock().unwrap();
        book.arrived.push(received.clone());
        if book.hang_next > 0 {
            book.hang_next -= 1;
            Answer::Hang
        } else if book.fail_next > 0 || book.always_fail {
            book.fail_next = book.fail_next.saturating_sub(1);
            Answer::Fail
        } else {
            book.accepted.push(received);
            Answer::Accept
        }
    };
    match answer {
        Answer::Hang => {
            // Never answers: the sender's timeout or crash ends the request.
            std::future::pending::<()>().await;
            StatusCode::SERVICE_UNAVAILABLE
        }
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Accept => StatusCode::OK,
    }
}
