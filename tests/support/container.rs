//! A Redis container through testcontainers (cargo feature `testcontainers`),
//! for machines with a Docker engine and no `redis-server` on `PATH`.
//!
//! ## Behavior
//!
//! - Runs the official `redis:7` image (the module's default tag is 5.0,
//!   older than the commands the scripts use), mapped to a random host port.
//! - The container is removed when dropped. It cannot be killed and
//!   restarted on the same host port, so [`TestRedis::is_owned`] is false.
//!
//! [`TestRedis::is_owned`]: super::TestRedis::is_owned

use testcontainers::{ContainerAsync, ImageExt, runners::AsyncRunner};
use testcontainers_modules::redis::{REDIS_PORT, Redis};

/// Image tag: Redis 7, like the `redis-server` the machines install.
const TAG: &str = "7";

/// A running Redis container, its URL and host port.
pub(super) struct Started {
    pub(super) container: ContainerAsync<Redis>,
    pub(super) url: String,
    pub(super) port: u16,
}

/// Starts the container and waits until Redis accepts connections.
///
/// # Errors
///
/// The testcontainers error, as a message (no Docker engine, no image, ...).
pub(super) async fn start() -> Result<Started, String> {
    let container = Redis::default()
        .with_tag(TAG)
        .start()
        .await
        .map_err(|e| format!("cannot start a redis:{TAG} container: {e}"))?;
    let host = container
        .get_host()
        .await
        .map_err(|e| format!("cannot read the container's host: {e}"))?;
    let port = container
        .get_host_port_ipv4(REDIS_PORT)
        .await
        .map_err(|e| format!("cannot read the container's mapped port: {e}"))?;
    Ok(Started {
        container,
        url: format!("redis://{host}:{port}"),
        port,
    })
}
