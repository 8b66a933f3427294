//! TLS (`rediss://`, cargo feature `tls`) against a TLS-only `redis-server`
//! whose certificate a CA made by the test signed.

use std::time::{Duration, Instant};

use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, RedisStore, StoreError, Transition,
    TransitionReason,
};
use futures::StreamExt;

use crate::support::alone::run_alone;
use crate::support::{init_tracing, unique_prefix, wait_until};
use crate::tls_server::{Pki, TlsRedis};

/// The bound the store is built with where a test checks how fast it fails.
const TIMEOUT: Duration = Duration::from_millis(500);

/// Child-process handshake of [`system_roots_come_from_ssl_cert_file`].
const CHILD_URL_VAR: &str = "FLEET_BREAKER_TEST_TLS_URL";

macro_rules! tls_redis_or_skip {
    ($start:expr) => {
        match $start.await {
            Some(server) => server,
            None => {
                eprintln!("skipped: no redis-server on PATH to start with --tls-port");
                return;
            }
        }
    };
}

fn agent(name: &str) -> AgentId {
    AgentId::new(name).expect("a valid agent id")
}

async fn tls_store(server: &TlsRedis, test: &str) -> RedisStore {
    RedisStore::builder(server.url())
        .tls_root_certs(server.ca_pem())
        .prefix(unique_prefix(test))
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("a store over TLS")
}

/// The next transition on `stream`, within 3 s.
async fn next(stream: &mut (impl futures::Stream<Item = Transition> + Unpin)) -> Transition {
    tokio::time::timeout(Duration::from_secs(3), stream.next())
        .await
        .expect("a transition within 3 s")
        .expect("the stream is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_over_rediss_decides_records_and_hears_its_transitions() {
    init_tracing();
    let server = tls_redis_or_skip!(TlsRedis::start());
    let store = tls_store(&server, "tls-breaker").await;
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .build()
        .expect("a valid config");
    let breaker = CircuitBreaker::builder()
        .store(store)
        .config(config)
        .local_cache(true)
        .build()
        .expect("a valid breaker");
    wait_until(
        "the watcher subscribes over TLS",
        Duration::from_secs(5),
        || async { breaker.is_watching() },
    )
    .await;
    let mut transitions = Box::pin(breaker.subscribe());
    let a = agent("model-a");

    let permit = breaker.acquire(&a).await.expect("a closed circuit admits");
    permit.success().await;
    for _ in 0..2 {
        let permit = breaker.acquire(&a).await.expect("a closed circuit admits");
        permit.failure("connection refused").await;
    }

    let opened = next(&mut transitions).await;
    assert_eq!(
        (opened.from, opened.to, opened.generation, opened.reason),
        (
            CircuitState::Closed,
            CircuitState::Open,
            1,
            TransitionReason::FailureThreshold
        )
    );
    let rejected = breaker
        .acquire(&a)
        .await
        .expect_err("an open circuit rejects");
    assert_eq!(rejected.state, CircuitState::Open);
    let metrics = breaker.metrics(&a).await.expect("metrics over TLS");
    assert_eq!(metrics.state, CircuitState::Open);
    assert_eq!(metrics.metrics.failure_count, 2);

    breaker.reset(&a).await.expect("reset over TLS");
    let reset = next(&mut transitions).await;
    assert_eq!(
        (reset.to, reset.generation, reset.reason),
        (CircuitState::Closed, 2, TransitionReason::Reset)
    );
    assert!(breaker.is_watching(), "the TLS subscription stays up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_redis_url_to_the_tls_port_fails_within_the_timeout_and_says_rediss() {
    init_tracing();
    let server = tls_redis_or_skip!(TlsRedis::start());
    let started = Instant::now();

    let error = RedisStore::builder(server.plain_url())
        .timeout(TIMEOUT)
        .build()
        .await
        .expect_err("plain TCP to a TLS port cannot work");

    let took = started.elapsed();
    assert!(
        took < TIMEOUT + Duration::from_millis(250),
        "failed after {took:?}"
    );
    assert!(error.is_store_unavailable(), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("rediss://") || matches!(error, StoreError::Timeout(_)),
        "the message points at TLS: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_ca_is_not_trusted_is_refused() {
    init_tracing();
    let server = tls_redis_or_skip!(TlsRedis::start());
    let stranger = Pki::new(&["127.0.0.1"]);

    // Trusting another CA, and trusting the system roots (the default).
    for builder in [
        RedisStore::builder(server.url()).tls_root_certs(stranger.ca_pem),
        RedisStore::builder(server.url()),
    ] {
        let error = builder
            .timeout(TIMEOUT)
            .build()
            .await
            .expect_err("an unknown issuer is refused");
        assert!(error.is_store_unavailable(), "{error:?}");
        let message = error.to_string().to_lowercase();
        assert!(message.contains("certificate"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused() {
    init_tracing();
    let server = tls_redis_or_skip!(TlsRedis::start_with(Pki::new(&["redis.example"])));

    let error = RedisStore::builder(server.url())
        .tls_root_certs(server.ca_pem())
        .timeout(TIMEOUT)
        .build()
        .await
        .expect_err("a certificate for redis.example does not serve 127.0.0.1");

    let message = error.to_string().to_lowercase();
    assert!(message.contains("certificate"), "{message}");
}

#[tokio::test]
async fn tls_settings_that_would_weaken_or_cannot_work_are_refused_before_connecting() {
    let ca = Pki::new(&["127.0.0.1"]).ca_pem;
    for (builder, says) in [
        (
            RedisStore::builder("rediss://127.0.0.1:1/#insecure"),
            "#insecure",
        ),
        (
            RedisStore::builder("redis://127.0.0.1:1").tls_root_certs(ca.clone()),
            "not TLS",
        ),
        (
            RedisStore::builder("rediss://127.0.0.1:1").tls_root_certs("not a certificate"),
            "no PEM certificate",
        ),
    ] {
        let error = builder.build().await.expect_err("refused");
        assert!(error.is_invalid_input(), "{error:?}");
        assert!(error.to_string().contains(says), "{error}");
    }
}

/// `SSL_CERT_FILE` replaces the system roots (rustls-native-certs 0.8), so
/// a private CA can be trusted with no code. Checked in a child process:
/// the variable is the process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_roots_come_from_ssl_cert_file() {
    let server = tls_redis_or_skip!(TlsRedis::start());
    let stdout = run_alone("tls::ssl_cert_file_child", |child| {
        child
            .env("SSL_CERT_FILE", server.ca_path())
            .env_remove("SSL_CERT_DIR")
            .env(CHILD_URL_VAR, server.url());
    })
    .await;
    assert!(stdout.contains("connected with SSL_CERT_FILE"), "{stdout}");
}

#[tokio::test]
#[ignore = "run by system_roots_come_from_ssl_cert_file, in a child process"]
async fn ssl_cert_file_child() {
    let Ok(url) = std::env::var(CHILD_URL_VAR) else {
        eprintln!("nothing to do: run by system_roots_come_from_ssl_cert_file");
        return;
    };
    RedisStore::builder(url)
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("SSL_CERT_FILE's CA is trusted");
    println!("connected with SSL_CERT_FILE");
}
