//! Redis AUTH as an ACL user that holds only the commands the project runs
//! (directly and inside its scripts), on only its keys and channels: the
//! whole flow works, everything else is refused, and docs/operations.md
//! shows the same ACL line.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use fleet_breaker::alerts::Webhooks;
use fleet_breaker::router::FailoverRouter;
use fleet_breaker::store::BreakerStore;
use fleet_breaker::{AgentId, BreakerConfig, CircuitBreaker, CircuitState, ForceMode, RedisStore};

use crate::acl_helpers::{
    acl_log, acquire_within, admin, agent, failing_receiver, pubsub_clients, refused, until_state,
    with_user,
};
use crate::support::{TestRedis, init_tracing, unique_prefix, wait_until};

/// Every command fleet-breaker runs, in the order docs/operations.md lists them.
const COMMANDS: &[&str] = &[
    // Connections: the store's check and the watcher's pings; the pool's
    // recycle check is `UNWATCH` + `PING`.
    "ping",
    "unwatch",
    // The operations, functions of one library loaded when missing
    // (`lua/`); the heartbeat script by hash, loaded again after
    // `NOSCRIPT` (scripts by hash are also how the operations run where
    // functions are refused)...
    "fcall",
    "function|list",
    "function|load",
    "evalsha",
    "script|load",
    // ...and what they call (lua/): ACL checks these, with their keys and
    // channels, as if the client sent them.
    "time",
    "hmget",
    "exists",
    "zrange",
    "hset",
    "sadd",
    "zadd",
    "zrem",
    "zremrangebyscore",
    "del",
    "xadd",
    "publish",
    // ...the census of agents not closed, the expiry of idle ones and the
    // fleet heartbeat's lease (lua/heartbeat.lua).
    "hdel",
    "pexpire",
    "persist",
    // The agents set, page by page; the census (`HGETALL` of its hash);
    // the sweep of idle agents (a lease, then `EXISTS`, `SREM`, `HDEL`).
    "sscan",
    "scard",
    "smismember",
    "hgetall",
    "set",
    "srem",
    // The watcher: subscription, restart check, replay.
    "subscribe",
    "info",
    "xrevrange",
    "xread",
    // The router's journal: recent failures (`XADD`, `XREVRANGE`) and the
    // routing-decision counter.
    "incrby",
    "get",
    // Webhooks (`serve --webhook`): a consumer group per URL, retries
    // claimed back, dead letters written and acknowledged in one MULTI.
    "xgroup|create",
    "xgroup|delconsumer",
    "xreadgroup",
    "xack",
    "xpending",
    "xclaim",
    "multi",
    "exec",
];

/// `ACL SETUSER` arguments for `user` with `password` on `prefix`.
fn acl_rules(prefix: &str, password: &str) -> Vec<String> {
    let mut rules = vec![
        "reset".to_owned(),
        "on".to_owned(),
        format!(">{password}"),
        format!("~{prefix}:*"),
        format!("&{prefix}:*"),
    ];
    rules.extend(COMMANDS.iter().map(|c| format!("+{c}")));
    rules
}

#[test]
fn the_operations_page_shows_the_acl_line_that_these_tests_use() {
    let line = format!(
        "ACL SETUSER fleet {}",
        acl_rules("fleet-breaker", "CHANGE-ME").join(" ")
    );
    let page = include_str!("../../docs/operations.md");
    assert!(
        page.contains(&line),
        "docs/operations.md should show, in its Security section:\n{line}"
    );
}

/// A user of the test's own on `redis`, named `prefix`, with the rules of
/// [`acl_rules`] that `keep` keeps, and the command counts reset on a
/// server the test owns (from then on they are nearly all the user's): its
/// URL and password, and an admin connection. `None` where `REDIS_URL` names
/// a user already: the test needs to log in as its own.
async fn acl_user(
    redis: &TestRedis,
    prefix: &str,
    keep: impl Fn(&str) -> bool,
) -> Option<(String, String, MultiplexedConnection)> {
    let password = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let Some(url) = with_user(&redis.url(), prefix, &password) else {
        eprintln!("skipped: REDIS_URL names a user already; this test needs to log in as its own");
        return None;
    };
    let mut root = redis.connection().await;
    let mut setuser = vec!["ACL".to_owned(), "SETUSER".to_owned(), prefix.to_owned()];
    setuser.extend(
        acl_rules(prefix, &password)
            .into_iter()
            .filter(|rule| keep(rule)),
    );
    let setuser: Vec<&str> = setuser.iter().map(String::as_str).collect();
    let () = admin(&mut root, &setuser).await;
    if redis.is_owned() {
        redis.reset_stats().await;
    }
    Some((url, password, root))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acl_user_with_only_the_listed_commands_runs_breaker_watcher_and_router() {
    init_tracing();
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("acl");
    let user = prefix.clone();
    let Some((url, password, mut root)) = acl_user(&redis, &prefix, |_| true).await else {
        return;
    };

    // The store, as the ACL user; Debug shows the password as "set".
    let store = RedisStore::builder(url.clone())
        .prefix(prefix.clone())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("the ACL user connects and PINGs");
    let debug = format!("{store:?}");
    assert!(
        !debug.contains(&password) && !debug.contains("secret"),
        "{debug}"
    );
    assert!(debug.contains(&format!("{user}:set@")), "{debug}");
    // The feed (the watcher's client) too.
    let feed = format!("{:?}", store.feed());
    assert!(!feed.contains(&password), "{feed}");

    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .half_open_max_calls(1)
        .base_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_secs(1))
        .recovery_timeout(Duration::from_millis(200))
        .build()
        .expect("a valid config");
    let hooks_store = store.clone();
    let breaker = CircuitBreaker::builder()
        .store(store)
        .config(config)
        .local_cache(true)
        .max_staleness(Duration::from_millis(300))
        .build()
        .expect("a valid breaker");
    wait_until("the watcher subscribes", Duration::from_secs(5), || async {
        breaker.is_watching()
    })
    .await;
    let mut transitions = Box::pin(breaker.subscribe());
    let router = FailoverRouter::builder(breaker.clone())
        .max_retries(3)
        .build()
        .expect("a valid router");
    let (dead, ok) = (agent("acl-dead"), agent("acl-ok"));
    let dead_name = dead.to_string();
    let task = move |agent: AgentId, (): ()| {
        let fails = agent.as_str() == dead_name;
        async move {
            if fails {
                Err("connection refused")
            } else {
                Ok(())
            }
        }
    };

    // Routing: the dead agent fails twice, opens; the journal records it.
    for n in 0..2 {
        let routed = router
            .route_task(&format!("task-{n}"), [&dead, &ok], &task, ())
            .await
            .expect("acl-ok serves");
        assert_eq!(routed.agent, ok);
    }
    until_state(&mut transitions, &dead, CircuitState::Open).await;

    // Half-open: a probe whose lease lapses (the next acquire drops it),
    // then a probe that succeeds and closes the circuit.
    let lost = acquire_within(&breaker, &dead, Duration::from_secs(3)).await;
    assert!(lost.is_probe());
    until_state(&mut transitions, &dead, CircuitState::HalfOpen).await;
    let probe = acquire_within(&breaker, &dead, Duration::from_secs(3)).await;
    assert!(probe.is_probe());
    probe.success().await;
    until_state(&mut transitions, &dead, CircuitState::Closed).await;
    drop(lost);

    // Webhooks to a URL that always fails: tried, retried, dead-lettered.
    let hook = failing_receiver().await;
    let hooks = Webhooks::builder([hook.as_str()])
        .max_tries(2)
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(40))
        .poll_interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(500))
        .reclaim_idle(Duration::from_secs(1))
        .build()
        .expect("valid webhooks");
    let deliveries = hooks
        .spawn_redis(&hooks_store)
        .await
        .expect("the ACL user creates the consumer group");

    // Admin operations and metrics.
    breaker
        .force(&ok, ForceMode::Open, Some(Duration::from_secs(60)))
        .await
        .expect("force");
    until_state(&mut transitions, &ok, CircuitState::ForcedOpen).await;
    // That one transition is tried twice and dead-lettered; then the
    // instance, holding nothing, leaves the group.
    wait_until(
        "the transition is dead-lettered",
        Duration::from_secs(5),
        || async { deliveries.stats()[0].dead_lettered == 1 },
    )
    .await;
    deliveries.shutdown().await;
    breaker
        .force(&ok, ForceMode::Auto, None)
        .await
        .expect("force auto");
    breaker.reset(&dead).await.expect("reset");
    assert_eq!(
        breaker.metrics(&dead).await.expect("metrics").state,
        CircuitState::Closed
    );
    for _ in 0..3 {
        let permit = breaker.acquire(&ok).await.expect("a closed circuit admits");
        permit.success().await;
    }
    breaker.flush().await.expect("flush local counts");

    // The journal and health, fleet-wide.
    let failures = router.recent_failures(10).await.expect("recent failures");
    let tasks: Vec<&str> = failures.iter().map(|f| f.task_id.as_str()).collect();
    assert_eq!(tasks, ["task-1", "task-0"]);
    assert!(failures.iter().all(|f| f.agent_id == dead));
    assert_eq!(router.flush_routing_events().await.expect("INCRBY"), 2);
    assert_eq!(router.flush_routing_events().await.expect("GET"), 2);
    let health = router.health_status().await.expect("health");
    assert_eq!(health.total_agents, 2);
    let census = router.census().await.expect("census").expect("a census");
    assert_eq!(census.summary.total_agents, 2);
    // An agent whose keys are gone (expired) leaves the set at a sweep.
    let state_key = format!("{prefix}:{{acl-ok}}:state");
    let _: i64 = admin(&mut root, &["DEL", &state_key]).await;
    assert_eq!(hooks_store.sweep_idle(&config).await.expect("sweep"), 1);

    // The watcher reconnects (and replays the stream) as the ACL user.
    let before = pubsub_clients(&mut root, &user).await;
    assert_eq!(before.len(), 1, "one subscription: {before:?}");
    let killed: i64 = admin(&mut root, &["CLIENT", "KILL", "ID", &before[0]]).await;
    assert_eq!(killed, 1);
    wait_until(
        "the watcher is back: subscribed, replayed, resynced",
        Duration::from_secs(5),
        || {
            let mut root = root.clone();
            let (user, before, breaker) = (&user, &before, &breaker);
            async move {
                let now = pubsub_clients(&mut root, user).await;
                now.len() == 1 && now != *before && breaker.is_watching()
            }
        },
    )
    .await;
    breaker
        .reset(&dead)
        .await
        .expect("reset after the reconnect");
    until_state(&mut transitions, &dead, CircuitState::Closed).await;

    // Nothing the flow ran was refused...
    assert_eq!(acl_log(&mut root, &user).await, Vec::<String>::new());
    // ...and every command the ACL line allows was used (on a server of
    // our own: counts are server-wide, scripts may be loaded already).
    if redis.is_owned() {
        let stats = redis.command_stats().await;
        let unused: Vec<&str> = COMMANDS
            .iter()
            .copied()
            .filter(|c| stats.get(*c).is_none_or(|&n| n == 0))
            // The pool checks a connection it hands out again with UNWATCH +
            // PING; the store reuses its connections and goes back to the
            // pool only after a failure, which this healthy flow never has.
            .filter(|c| *c != "unwatch")
            .collect();
        assert!(unused.is_empty(), "allowed but never run: {unused:?}");
    } else {
        eprintln!("skipped the every-command-was-used check: REDIS_URL is shared");
    }

    // Everything else is refused to this user.
    let mut conn = redis::Client::open(url.as_str())
        .expect("the ACL URL")
        .get_multiplexed_async_connection()
        .await
        .expect("the ACL user connects");
    let other_key = format!("not-{prefix}:key");
    let outside_script = "return redis.call('GET', 'elsewhere')";
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(outside_script)
        .query_async(&mut conn)
        .await
        .expect("SCRIPT LOAD is allowed");
    let no_permission = "noperm";
    for (args, says) in [
        (vec!["FLUSHALL"], no_permission),
        (vec!["KEYS", "*"], no_permission),
        (vec!["CONFIG", "GET", "maxmemory"], no_permission),
        (vec!["EVAL", "return 1", "0"], no_permission),
        (vec!["GET", other_key.as_str()], no_permission),
        (vec!["PUBLISH", "elsewhere", "x"], no_permission),
        // Inside a script too (Redis 7.0 words it without the NOPERM code).
        (vec!["EVALSHA", sha.as_str(), "0"], "can't access"),
    ] {
        let error = refused(&mut conn, &args).await.to_lowercase();
        assert!(error.contains(says), "{}: {error}", args.join(" "));
    }
    let log = acl_log(&mut root, &user).await;
    assert!(log.iter().any(|e| e == "command flushall"), "{log:?}");
    assert!(log.iter().any(|e| e == "key elsewhere"), "{log:?}");

    drop((router, breaker));
    let _: i64 = admin(&mut root, &["ACL", "DELUSER", &user]).await;
}

/// A user whose ACL line predates the function library (no `+fcall
/// +function|load`, or a Redis before 7) still runs every operation: the
/// store falls back to its scripts by `EVALSHA`.
#[tokio::test]
async fn a_user_refused_functions_runs_the_operations_by_evalsha() {
    init_tracing();
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("acl-no-functions");
    let user = prefix.clone();
    let no_functions = |rule: &str| rule != "+fcall" && rule != "+function|load";
    let Some((url, _, mut root)) = acl_user(&redis, &prefix, no_functions).await else {
        return;
    };

    let store = RedisStore::builder(url)
        .prefix(prefix.clone())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("the ACL user connects");
    let breaker = CircuitBreaker::builder()
        .store(store)
        .policy(fleet_breaker::StorePolicy::FailClosed)
        .local_cache(false)
        .build()
        .expect("a valid breaker");
    let agent = agent("no-functions");
    for _ in 0..2 {
        let permit = breaker.acquire(&agent).await.expect("admitted by Redis");
        assert!(!permit.is_degraded(), "decided by Redis");
        permit.failure("boom").await;
    }
    let snapshot = breaker.snapshot(&agent).await.expect("a snapshot");
    assert_eq!(snapshot.failure_count, 2, "both failures were recorded");

    if redis.is_owned() {
        let stats = redis.command_stats().await;
        assert_eq!(stats.get("fcall"), None, "refused, never run: {stats:?}");
        let scripts = stats.get("evalsha").copied().unwrap_or(0);
        assert!(scripts >= 5, "every operation by EVALSHA: {stats:?}");
    }
    drop(breaker);
    let _: i64 = admin(&mut root, &["ACL", "DELUSER", &user]).await;
}
