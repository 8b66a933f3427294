//! Per-webhook options: signatures, filters, the Slack and PagerDuty
//! formats, each checked by a local receiver.

use std::sync::Arc;
use std::time::Duration;

use fleet_breaker::alerts::{WebhookFilter, WebhookFormat, WebhookOptions, Webhooks};
use fleet_breaker::{
    AgentId, BreakerConfig, CircuitBreaker, CircuitState, ManualClock, MemoryStore,
};
use serde_json::{Value, json};

use crate::common::{
    WAIT, breaker, force_auto, force_open, hooks, known, open_agent_1, store, wait_all_acked,
};
use crate::receiver::Receiver;
use crate::support::{TestRedis, unique_prefix, wait_until};

const SECRET: &str = "a-shared-secret-of-32-bytes-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_carries_a_signature_the_receiver_verifies() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-signed");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    let handle = hooks(Vec::<String>::new())
        .webhook(receiver.url(), WebhookOptions::new().secret(SECRET))
        .build()
        .unwrap()
        .spawn_redis(&store)
        .await
        .unwrap();
    let (_, opened) = open_agent_1(&breaker(&store)).await;

    wait_until("the transition arrives", WAIT, || async {
        !receiver.accepted().is_empty()
    })
    .await;
    let got = &receiver.accepted()[0];
    assert_eq!(
        got.transition.as_ref(),
        Some(&opened),
        "the body is unchanged"
    );
    got.verify(SECRET).expect("a valid signature");
    assert!(got.verify("another-secret-of-enough-bytes").is_err());
    let mut tampered = got.clone();
    tampered.body.push(b' ');
    assert!(tampered.verify(SECRET).is_err(), "the body is signed");
    let mut replayed = got.clone();
    replayed.timestamp = (got.timestamp.parse::<u64>().unwrap() - 600).to_string();
    assert!(replayed.verify(SECRET).is_err(), "the timestamp is signed");
    handle.shutdown().await;
}

#[tokio::test]
async fn an_unsigned_webhook_has_no_signature_headers() {
    let receiver = Receiver::start().await;
    let breaker = CircuitBreaker::in_memory();
    let handle = Webhooks::builder([receiver.url()])
        .build()
        .unwrap()
        .spawn_in_process(&breaker);
    open_agent_1(&breaker).await;
    wait_until("the transition arrives", WAIT, || async {
        !receiver.accepted().is_empty()
    })
    .await;
    let got = &receiver.accepted()[0];
    assert_eq!((got.timestamp.as_str(), got.signature.as_str()), ("", ""));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_out_transition_is_acknowledged_without_a_post() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-filter");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    let filter = WebhookFilter::new()
        .to([CircuitState::ForcedOpen])
        .agents(["agent-1*"]);
    let handle = hooks(Vec::<String>::new())
        .webhook(receiver.url(), WebhookOptions::new().filter(filter))
        .build()
        .unwrap()
        .spawn_redis(&store)
        .await
        .unwrap();
    let breaker = breaker(&store);
    let other = AgentId::new("agent-2").unwrap();
    known(&breaker, &other).await;
    force_open(&breaker, &other).await; // another agent: filtered
    let (agent, opened) = open_agent_1(&breaker).await; // sent
    force_auto(&breaker, &agent).await; // to closed: filtered

    wait_until("three transitions are handled", WAIT, || async {
        let s = &handle.stats()[0];
        s.delivered + s.filtered == 3
    })
    .await;
    wait_all_acked(&redis, &prefix, &receiver.url()).await;
    let stats = &handle.stats()[0];
    assert_eq!((stats.delivered, stats.filtered, stats.failed), (1, 2, 0));
    let arrived = receiver.arrived();
    assert_eq!(arrived.len(), 1, "{arrived:?}");
    assert_eq!(arrived[0].transition.as_ref(), Some(&opened));
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_one_text_field_naming_the_agent_and_states() {
    let redis = TestRedis::start().await;
    let prefix = unique_prefix("alerts-slack");
    let store = store(&redis, &prefix).await;
    let receiver = Receiver::start().await;
    let handle = hooks(Vec::<String>::new())
        .webhook(
            receiver.url(),
            WebhookOptions::new().format(WebhookFormat::Slack),
        )
        .build()
        .unwrap()
        .spawn_redis(&store)
        .await
        .unwrap();
    let breaker = breaker(&store);
    let (agent, _) = open_agent_1(&breaker).await;
    force_auto(&breaker, &agent).await;

    wait_until("both messages arrive", WAIT, || async {
        receiver.accepted().len() == 2
    })
    .await;
    let texts: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|r| {
            let Value::Object(fields) = &r.json else {
                panic!("not a JSON object: {:?}", String::from_utf8_lossy(&r.body));
            };
            assert_eq!(fields.keys().collect::<Vec<_>>(), ["text"], "{fields:?}");
            assert_eq!(r.content_type, "application/json");
            fields["text"]
                .as_str()
                .expect("text is a string")
                .to_owned()
        })
        .collect();
    for (text, (from, to)) in texts
        .iter()
        .zip([("closed", "forced_open"), ("forced_open", "closed")])
    {
        assert!(
            text.contains(&format!("`agent-1` {from} -> *{to}*")),
            "{text}"
        );
        assert!(text.contains(&format!("fleet-breaker/{prefix}")), "{text}");
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn pagerduty_triggers_on_open_and_resolves_on_close_with_one_dedup_key_per_agent() {
    let receiver = Receiver::start().await;
    let clock = ManualClock::default();
    let breaker = CircuitBreaker::builder()
        .store(MemoryStore::with_clock(Arc::new(clock.clone())))
        .config(BreakerConfig::default())
        .build()
        .unwrap();
    let format = WebhookFormat::PagerDuty {
        routing_key: "R0UTINGKEY0123456789".into(),
    };
    let handle = Webhooks::builder(Vec::<String>::new())
        .webhook(receiver.url(), WebhookOptions::new().format(format))
        .build()
        .unwrap()
        .spawn_in_process(&breaker);

    let agent = AgentId::new("agent-1").unwrap();
    for _ in 0..5 {
        breaker.acquire(&agent).await.unwrap().failure("down").await;
    }
    clock.advance(Duration::from_secs(2));
    for _ in 0..3 {
        // The first acquire moves open to half-open; three probes close it.
        breaker.acquire(&agent).await.unwrap().success().await;
    }
    assert_eq!(
        breaker.snapshot(&agent).await.unwrap().state,
        CircuitState::Closed
    );

    wait_until("open, half-open and closed are handled", WAIT, || async {
        let s = &handle.stats()[0];
        s.delivered + s.filtered == 3
    })
    .await;
    let stats = &handle.stats()[0];
    assert_eq!(
        (stats.delivered, stats.filtered),
        (2, 1),
        "half_open is not sent"
    );
    let bodies: Vec<Value> = receiver.accepted().into_iter().map(|r| r.json).collect();
    let dedup = "fleet-breaker/fleet-breaker/agent-1";
    let trigger = &bodies[0];
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(trigger),
        ["dedup_key", "event_action", "payload", "routing_key"]
    );
    assert_eq!(trigger["routing_key"], "R0UTINGKEY0123456789");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], dedup);
    let payload = &trigger["payload"];
    for field in [
        "summary",
        "source",
        "severity",
        "timestamp",
        "custom_details",
    ] {
        assert!(
            !payload[field].is_null(),
            "payload.{field} missing: {payload}"
        );
    }
    assert_eq!(payload["source"], "agent-1");
    assert!(
        ["critical", "error", "warning", "info"].contains(&payload["severity"].as_str().unwrap()),
        "{payload}"
    );
    let timestamp = payload["timestamp"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{timestamp}"
    );
    assert!(payload["summary"].as_str().unwrap().contains("agent-1"));
    assert_eq!(payload["custom_details"]["to"], "open");
    assert_eq!(
        bodies[1],
        json!({
            "routing_key": "R0UTINGKEY0123456789",
            "event_action": "resolve",
            "dedup_key": dedup,
        })
    );
    handle.shutdown().await;
}

#[test]
fn bad_options_are_refused_naming_the_webhook() {
    let short = Webhooks::builder(Vec::<String>::new())
        .webhook(
            "https://example.com/a",
            WebhookOptions::new().secret("short"),
        )
        .build()
        .unwrap_err();
    assert!(short.is_invalid_input());
    assert!(
        short.to_string().contains("https://example.com/a"),
        "{short}"
    );
    assert!(short.to_string().contains("at least 16"), "{short}");
    assert!(
        !short.to_string().contains("short\""),
        "the secret is not shown"
    );
    let empty_key = Webhooks::builder(Vec::<String>::new())
        .webhook(
            "https://events.pagerduty.com/v2/enqueue",
            WebhookOptions::new().format(WebhookFormat::PagerDuty {
                routing_key: " ".into(),
            }),
        )
        .build()
        .unwrap_err();
    assert!(empty_key.to_string().contains("routing key"), "{empty_key}");
    let hooks = Webhooks::builder(Vec::<String>::new())
        .webhook(
            "https://events.pagerduty.com/v2/enqueue",
            WebhookOptions::new()
                .secret(SECRET)
                .format(WebhookFormat::PagerDuty {
                    routing_key: "R0UTINGKEY0123456789".into(),
                }),
        )
        .build()
        .unwrap();
    let debug = format!("{hooks:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("R0UTINGKEY"),
        "{debug}"
    );
}
