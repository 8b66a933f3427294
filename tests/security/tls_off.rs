//! Without the cargo feature `tls`, TLS settings are a clear error, never a
//! plain-text connection.

use fleet_breaker::RedisStore;

#[tokio::test]
async fn rediss_without_the_tls_feature_names_the_feature() {
    for builder in [
        RedisStore::builder("rediss://127.0.0.1:1"),
        RedisStore::builder("redis://127.0.0.1:1").tls_root_certs("-----BEGIN CERTIFICATE-----"),
    ] {
        let error = builder.build().await.expect_err("no TLS support built in");
        assert!(error.is_invalid_input(), "{error:?}");
        assert!(error.to_string().contains("cargo feature `tls`"), "{error}");
    }
}
