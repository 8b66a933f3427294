//! [`RedisTarget`]: which Redis deployment a store uses (one server, a
//! Redis Cluster, or a master found through Sentinel), from a URL, a list
//! or the environment.

use std::fmt;

use super::super::StoreError;
use super::builder::redact_url;

/// The environment variable of a single Redis: one URL.
pub const ENV_URL: &str = "REDIS_URL";
/// The environment variable of a Redis Cluster: seed node URLs, comma-separated.
pub const ENV_CLUSTER_URLS: &str = "REDIS_CLUSTER_URLS";
/// The environment variable of Sentinel: sentinel URLs, comma-separated.
pub const ENV_SENTINEL_URLS: &str = "REDIS_SENTINEL_URLS";
/// The environment variable of Sentinel: the name of the monitored master.
pub const ENV_SENTINEL_MASTER: &str = "REDIS_SENTINEL_MASTER";

/// Where a fleet's breaker state lives; see [`RedisStore::connect`](super::RedisStore::connect).
///
/// ## Behavior
///
/// - [`RedisTarget::parse`] reads one string:
///   - `redis://[user:password@]host:port[/db]` (or `rediss://`): one Redis;
///   - `redis+cluster://[user:password@]host:port,host:port,...`: a Redis
///     Cluster, given by one or more seed nodes (list several, so a pod
///     that starts while one is down still finds the cluster);
///   - `redis+sentinel://[user:password@]host:port,host:port,.../MASTER[/db]`:
///     the master named `MASTER` of the sentinels listed. The sentinels
///     are asked without a password; the user, password and db are the
///     master's.
/// - A bare comma-separated list of `redis://` URLs (the form of
///   `REDIS_CLUSTER_URLS` and of a `--redis-cluster` flag) is read by
///   [`RedisTarget::cluster_list`]; sentinels by [`RedisTarget::sentinel_list`].
/// - [`RedisTarget::from_env`] reads `REDIS_CLUSTER_URLS`, or
///   `REDIS_SENTINEL_URLS` with `REDIS_SENTINEL_MASTER`, or `REDIS_URL`
///   (which may itself use the `+cluster` / `+sentinel` schemes); setting
///   more than one of the three is an error, none is `Ok(None)`.
/// - TLS (`rediss://`) is supported for a single Redis only; a cluster or
///   sentinel target with TLS is refused with a clear error.
/// - `Debug` and `Display` print passwords as `set`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTarget {
    /// One Redis (or a proxy in front of one), by URL.
    Single(String),
    /// A Redis Cluster, by the URLs of one or more of its nodes.
    Cluster(Vec<String>),
    /// The master that Sentinel names, followed through failovers.
    Sentinel {
        /// URLs of the sentinels (`redis://host:port`). A user, password or
        /// db in them are the master's, not the sentinels'.
        sentinels: Vec<String>,
        /// The name the sentinels monitor the master under.
        master_name: String,
    },
}

impl RedisTarget {
    /// Reads one target string; see the type's `## Behavior`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidSettings`] naming what is wrong: an empty
    /// string or list, a sentinel URL without a master name, a scheme that
    /// is not `redis`, `rediss`, `redis+cluster` or `redis+sentinel`.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let text = text.trim();
        let Some((scheme, rest)) = text.split_once("://") else {
            return invalid(format!(
                "{:?} is not a Redis URL; expected redis://host:port, \
                 redis+cluster://host:port,host:port or \
                 redis+sentinel://host:port,host:port/MASTER",
                redact_url(text)
            ));
        };
        match scheme {
            "redis+cluster" | "rediss+cluster" => {
                let (userinfo, hosts, path) = split_multi(rest);
                let nodes = hosts
                    .iter()
                    .map(|host| format!("{}://{userinfo}{host}{path}", base_scheme(scheme)))
                    .collect();
                Self::cluster(nodes)
            }
            "redis+sentinel" | "rediss+sentinel" => {
                let (userinfo, hosts, path) = split_multi(rest);
                let mut parts = path.trim_start_matches('/').splitn(2, '/');
                let master_name = parts.next().unwrap_or_default().to_owned();
                let db = parts.next().map(|db| format!("/{db}")).unwrap_or_default();
                let sentinels = hosts
                    .iter()
                    .map(|host| format!("{}://{userinfo}{host}{db}", base_scheme(scheme)))
                    .collect();
                Self::sentinel(sentinels, master_name)
            }
            _ => Ok(Self::Single(text.to_owned())),
        }
    }

    /// A cluster from a comma-separated list of node URLs, the form of
    /// `REDIS_CLUSTER_URLS` and of a `--redis-cluster URL,URL` flag.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidSettings`] for an empty list or a TLS URL.
    pub fn cluster_list(list: &str) -> Result<Self, StoreError> {
        Self::cluster(split_list(list))
    }

    /// Sentinel from a comma-separated list of sentinel URLs and the
    /// master's name, the form of `REDIS_SENTINEL_URLS` and
    /// `REDIS_SENTINEL_MASTER`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidSettings`] for an empty list or name, or a TLS URL.
    pub fn sentinel_list(list: &str, master_name: &str) -> Result<Self, StoreError> {
        Self::sentinel(split_list(list), master_name.trim().to_owned())
    }

    /// The target the environment names; see the type's `## Behavior`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidSettings`] when more than one deployment is set,
    /// `REDIS_SENTINEL_URLS` is set without `REDIS_SENTINEL_MASTER`, or a
    /// value does not parse.
    pub fn from_env() -> Result<Option<Self>, StoreError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`RedisTarget::from_env`] over any source of variables (for tests and
    /// for configuration files that mimic the environment).
    ///
    /// # Errors
    ///
    /// As [`RedisTarget::from_env`].
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, StoreError> {
        let var = |name: &str| get(name).filter(|value| !value.trim().is_empty());
        let (url, cluster, sentinels) =
            (var(ENV_URL), var(ENV_CLUSTER_URLS), var(ENV_SENTINEL_URLS));
        let set = [&url, &cluster, &sentinels]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if set > 1 {
            return invalid(format!(
                "more than one of {ENV_URL}, {ENV_CLUSTER_URLS} and {ENV_SENTINEL_URLS} is set; \
                 set the one that names your deployment"
            ));
        }
        if let Some(list) = cluster {
            return Self::cluster_list(&list).map(Some);
        }
        if let Some(list) = sentinels {
            let Some(master) = var(ENV_SENTINEL_MASTER) else {
                return invalid(format!(
                    "{ENV_SENTINEL_URLS} is set but {ENV_SENTINEL_MASTER} is not; set it to the \
                     name the sentinels monitor the master under (`sentinel monitor NAME ...`)"
                ));
            };
            return Self::sentinel_list(&list, &master).map(Some);
        }
        url.map(|url| Self::parse(&url)).transpose()
    }

    /// `cluster`, `sentinel` or `single`, for logs and health.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Single(_) => "single",
            Self::Cluster(_) => "cluster",
            Self::Sentinel { .. } => "sentinel",
        }
    }

    fn cluster(nodes: Vec<String>) -> Result<Self, StoreError> {
        if nodes.is_empty() {
            return invalid("the Redis Cluster node list is empty; give at least one URL".into());
        }
        refuse_tls(&nodes, "a Redis Cluster")?;
        Ok(Self::Cluster(nodes))
    }

    fn sentinel(sentinels: Vec<String>, master_name: String) -> Result<Self, StoreError> {
        if sentinels.is_empty() {
            return invalid("the sentinel list is empty; give at least one URL".into());
        }
        if master_name.is_empty() {
            return invalid(
                "no master name for Sentinel; give the name the sentinels monitor \
                 (redis+sentinel://host:port/NAME, or REDIS_SENTINEL_MASTER)"
                    .into(),
            );
        }
        refuse_tls(&sentinels, "Sentinel")?;
        Ok(Self::Sentinel {
            sentinels,
            master_name,
        })
    }

    /// The target with passwords shown as `set`.
    fn redacted(&self) -> String {
        let list = |urls: &[String]| {
            urls.iter()
                .map(|url| redact_url(url))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Self::Single(url) => redact_url(url),
            Self::Cluster(nodes) => format!("cluster {}", list(nodes)),
            Self::Sentinel {
                sentinels,
                master_name,
            } => format!("sentinel {} master {master_name}", list(sentinels)),
        }
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisTarget({})", self.redacted())
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn invalid<T>(message: String) -> Result<T, StoreError> {
    Err(StoreError::InvalidSettings(message))
}

fn base_scheme(scheme: &str) -> &'static str {
    if scheme.starts_with("rediss") {
        "rediss"
    } else {
        "redis"
    }
}

/// `user:pw@h1:p1,h2:p2/path` -> (`user:pw@`, [h1:p1, h2:p2], `/path`).
fn split_multi(rest: &str) -> (String, Vec<String>, String) {
    let (authority, path) = rest
        .find('/')
        .map_or((rest, ""), |at| (&rest[..at], &rest[at..]));
    let (userinfo, hosts) = authority
        .rsplit_once('@')
        .map_or((String::new(), authority), |(user, hosts)| {
            (format!("{user}@"), hosts)
        });
    let hosts = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .collect();
    (userinfo, hosts, path.to_owned())
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect()
}

fn refuse_tls(urls: &[String], what: &str) -> Result<(), StoreError> {
    if urls
        .iter()
        .any(|url| url.starts_with("rediss://") || url.starts_with("valkeys://"))
    {
        return invalid(format!(
            "TLS is supported with one Redis only, not yet with {what}; use redis:// URLs"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_url_is_one_redis() {
        let target = RedisTarget::parse("redis://h:1/2").expect("valid");
        assert_eq!(target, RedisTarget::Single("redis://h:1/2".into()));
    }

    #[test]
    fn the_cluster_scheme_lists_seed_nodes_with_shared_credentials() {
        let target = RedisTarget::parse("redis+cluster://u:pw@a:1, b:2").expect("valid");
        assert_eq!(
            target,
            RedisTarget::Cluster(vec!["redis://u:pw@a:1".into(), "redis://u:pw@b:2".into()])
        );
        assert!(!format!("{target:?}").contains("pw"));
        assert_eq!(
            RedisTarget::cluster_list("redis://a:1,redis://b:2").expect("valid"),
            RedisTarget::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()])
        );
    }

    #[test]
    fn the_sentinel_scheme_names_the_master_and_its_db() {
        let target =
            RedisTarget::parse("redis+sentinel://:pw@a:26379,b:26379/mymaster/3").expect("valid");
        assert_eq!(
            target,
            RedisTarget::Sentinel {
                sentinels: vec![
                    "redis://:pw@a:26379/3".into(),
                    "redis://:pw@b:26379/3".into()
                ],
                master_name: "mymaster".into(),
            }
        );
        assert!(!target.to_string().contains("pw"), "{target}");
        let error = RedisTarget::parse("redis+sentinel://a:26379").expect_err("no master");
        assert!(error.is_invalid_input(), "{error}");
    }

    #[test]
    fn the_environment_names_one_deployment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        assert_eq!(RedisTarget::from_vars(vars(&[])).expect("ok"), None);
        assert_eq!(
            RedisTarget::from_vars(vars(&[(ENV_CLUSTER_URLS, "redis://a:1,redis://b:2")]))
                .expect("ok"),
            Some(RedisTarget::Cluster(vec![
                "redis://a:1".into(),
                "redis://b:2".into()
            ]))
        );
        assert_eq!(
            RedisTarget::from_vars(vars(&[
                (ENV_SENTINEL_URLS, "redis://a:26379"),
                (ENV_SENTINEL_MASTER, "m"),
            ]))
            .expect("ok")
            .map(|t| t.kind()),
            Some("sentinel")
        );
        for bad in [
            &[(ENV_URL, "redis://a:1"), (ENV_CLUSTER_URLS, "redis://b:2")][..],
            &[(ENV_SENTINEL_URLS, "redis://a:26379")][..],
            &[(ENV_CLUSTER_URLS, "rediss://a:1")][..],
        ] {
            let error = RedisTarget::from_vars(vars(bad)).expect_err("refused");
            assert!(error.is_invalid_input(), "{error}");
        }
    }
}
