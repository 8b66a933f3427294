//! Reading the scripts' replies into [`Applied`] values.
//!
//! Every script answers a flat array (documented at the top of
//! `lua/lib.lua`); anything else is [`StoreError::InvalidData`], never a
//! panic:
//!
//! | index | value |
//! |---|---|
//! | 0 | now_ms |
//! | 1 | the transition's JSON message, or `""` |
//! | 2..=12 | the 11 hash fields, in the order of DESIGN.md section 3 (`None` as 0) |
//! | 13 | probes: an array `id, deadline_ms, id, deadline_ms, ...` |
//! | 14 | epoch (the hash field `epoch`, 0 when absent) |
//! | 15, 16 | the hash fields `window` and `reporters` (`""` when absent) |
//! | 17 | the agent's settings: an array `name, value, name, value, ...` |
//! | 18..=20 | acquire only: `"granted", generation, probe (0/1)` or `"rejected", state, retry_after_ms (-1: none)` |

use ::redis::Value;

use super::super::{Applied, Corruption, StoreError};
use crate::agent_id::AgentId;
use crate::model::{CircuitState, Decision, Grant, Lease, Snapshot, Transition};

/// Fields of the common part of every reply.
const COMMON: usize = 18;

/// The reply of the acquire script.
pub(super) fn acquire(value: Value, agent: &AgentId) -> Result<Applied<Decision>, StoreError> {
    let mut reply = Reply::new(value, agent, COMMON + 3)?
        .ok_or_else(|| invalid(agent, "the acquire script answered nil".to_owned()))?;
    let (snapshot, transition, now_ms) = reply.common()?;
    let decision = match reply.text("decision")?.as_str() {
        "granted" => Decision::Granted(Grant {
            generation: reply.uint("granted generation")?,
            probe: match reply.uint("probe flag")? {
                0 => false,
                1 => true,
                other => {
                    return Err(reply.invalid(format!("probe flag is {other}, expected 0 or 1")));
                }
            },
        }),
        "rejected" => Decision::Rejected {
            state: reply.state("rejecting state")?,
            retry_after_ms: match reply.int("retry_after_ms")? {
                -1 => None,
                ms => Some(u64::try_from(ms).map_err(|_| {
                    reply.invalid(format!("retry_after_ms is {ms}, expected -1 or more"))
                })?),
            },
        },
        other => {
            return Err(reply.invalid(format!(
                "decision is {other:?}, expected \"granted\" or \"rejected\""
            )));
        }
    };
    Ok(Applied {
        value: decision,
        snapshot,
        transition,
        now_ms,
    })
}

/// The reply of a script that answers nil for an unknown agent (reset,
/// force, snapshot), or always the common array (record).
pub(super) fn unit(value: Value, agent: &AgentId) -> Result<Option<Applied<()>>, StoreError> {
    let Some(mut reply) = Reply::new(value, agent, COMMON)? else {
        return Ok(None);
    };
    let (snapshot, transition, now_ms) = reply.common()?;
    Ok(Some(Applied {
        value: (),
        snapshot,
        transition,
        now_ms,
    }))
}

/// What a script's error says when the agent's stored state is corrupt
/// (see `corrupt` in `lua/load.lua`).
const CORRUPT_DATA: &str = "fleet-breaker: corrupt data: ";

/// [`StoreError::Corrupt`] from the detail of a script's error reply, if it
/// is the scripts' corrupt-data error; `None` for any other error.
pub(super) fn corruption(detail: &str, agent: &AgentId) -> Option<StoreError> {
    let json = detail.strip_prefix(CORRUPT_DATA)?;
    Some(match serde_json::from_str::<Corruption>(json) {
        Ok(corruption) => StoreError::Corrupt {
            agent: agent.clone(),
            corruption,
        },
        Err(e) => StoreError::InvalidData {
            what: format!("state of agent {agent}"),
            detail: format!("{detail} (unreadable: {e})"),
        },
    })
}

fn invalid(agent: &AgentId, detail: String) -> StoreError {
    StoreError::InvalidData {
        what: format!("script reply for agent {agent}"),
        detail,
    }
}

/// A reply being read front to back.
struct Reply<'a> {
    items: std::vec::IntoIter<Value>,
    /// Index of the next item, for error messages.
    index: usize,
    agent: &'a AgentId,
}

impl<'a> Reply<'a> {
    /// `None` for a nil reply; an error unless an array of `len` items.
    fn new(value: Value, agent: &'a AgentId, len: usize) -> Result<Option<Self>, StoreError> {
        match value {
            // RESP3 gives Lua's `false` as a boolean.
            Value::Nil | Value::Boolean(false) => Ok(None),
            Value::Array(items) if items.len() == len => Ok(Some(Self {
                items: items.into_iter(),
                index: 0,
                agent,
            })),
            Value::Array(items) => Err(invalid(
                agent,
                format!("{} items, expected {len}", items.len()),
            )),
            other => Err(invalid(agent, format!("expected an array, got {other:?}"))),
        }
    }

    fn invalid(&self, detail: String) -> StoreError {
        invalid(
            self.agent,
            format!("item {}: {detail}", self.index.saturating_sub(1)),
        )
    }

    fn next(&mut self, name: &str) -> Result<Value, StoreError> {
        self.index += 1;
        self.items
            .next()
            .ok_or_else(|| self.invalid(format!("{name} is missing")))
    }

    fn int(&mut self, name: &str) -> Result<i64, StoreError> {
        match self.next(name)? {
            Value::Int(n) => Ok(n),
            other => Err(self.invalid(format!("{name} is {other:?}, expected an integer"))),
        }
    }

    fn uint(&mut self, name: &str) -> Result<u64, StoreError> {
        let n = self.int(name)?;
        u64::try_from(n).map_err(|_| self.invalid(format!("{name} is {n}, expected 0 or more")))
    }

    /// A time where 0 stands for `None`.
    fn optional_ms(&mut self, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(Some(self.uint(name)?).filter(|&ms| ms != 0))
    }

    fn text(&mut self, name: &str) -> Result<String, StoreError> {
        match self.next(name)? {
            Value::BulkString(bytes) => {
                String::from_utf8(bytes).map_err(|_| self.invalid(format!("{name} is not UTF-8")))
            }
            Value::SimpleString(text) => Ok(text),
            other => Err(self.invalid(format!("{name} is {other:?}, expected a string"))),
        }
    }

    fn state(&mut self, name: &str) -> Result<CircuitState, StoreError> {
        let text = self.text(name)?;
        text.parse()
            .map_err(|e| self.invalid(format!("{name}: {e}")))
    }

    /// The 15 items every script answers: the snapshot, the transition and
    /// the time.
    fn common(&mut self) -> Result<(Snapshot, Option<Transition>, u64), StoreError> {
        let now_ms = self.uint("now_ms")?;
        let message = self.text("transition")?;
        let mut snapshot = Snapshot {
            state: self.state("state")?,
            failure_count: self.uint("failure_count")?,
            success_count: self.uint("success_count")?,
            total_rejections: self.uint("total_rejections")?,
            last_failure_ms: self.optional_ms("last_failure_ms")?,
            last_success_ms: self.optional_ms("last_success_ms")?,
            backoff_ms: self.uint("backoff_ms")?,
            open_until_ms: self.uint("open_until_ms")?,
            half_open_successes: {
                let n = self.uint("half_open_successes")?;
                u32::try_from(n)
                    .map_err(|_| self.invalid(format!("half_open_successes is {n}, beyond u32")))?
            },
            generation: self.uint("generation")?,
            forced_until_ms: self.optional_ms("forced_until_ms")?,
            probes: Vec::new(),
            epoch: 0,
            window: crate::model::Window::default(),
            settings: crate::config::AgentSettings::default(),
        };
        snapshot.probes = self.probes()?;
        snapshot.epoch = self.uint("epoch")?;
        let (window, reporters) = (self.text("window")?, self.text("reporters")?);
        snapshot.window = super::stored::parse_window(&window, &reporters)
            .map_err(|field| self.invalid(format!("{field} is unreadable")))?;
        snapshot.settings = self.settings()?;
        let transition = if message.is_empty() {
            None
        } else {
            let transition: Transition = serde_json::from_str(&message)
                .map_err(|e| self.invalid(format!("transition message {message:?}: {e}")))?;
            if transition.agent_id != *self.agent {
                return Err(self.invalid(format!("transition message of another agent: {message}")));
            }
            Some(transition)
        };
        Ok((snapshot, transition, now_ms))
    }

    fn settings(&mut self) -> Result<crate::config::AgentSettings, StoreError> {
        let items = match self.next("settings")? {
            Value::Array(items) if items.len() % 2 == 0 => items,
            other => {
                return Err(self.invalid(format!(
                    "settings is {other:?}, expected an array of name, value pairs"
                )));
            }
        };
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(Value::BulkString(name)), Some(Value::BulkString(value))) =
            (items.next(), items.next())
        {
            pairs.push((
                String::from_utf8_lossy(&name).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            ));
        }
        super::stored::parse_settings(&pairs).map_err(|(field, value, expected)| {
            self.invalid(format!("setting {field} is {value:?}, expected {expected}"))
        })
    }

    fn probes(&mut self) -> Result<Vec<Lease>, StoreError> {
        let items = match self.next("probes")? {
            Value::Array(items) if items.len() % 2 == 0 => items,
            other => {
                return Err(self.invalid(format!(
                    "probes is {other:?}, expected an array of id, deadline pairs"
                )));
            }
        };
        let mut leases = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(id), Some(deadline)) = (items.next(), items.next()) {
            let permit_id = match id {
                Value::BulkString(bytes) => String::from_utf8(bytes)
                    .map_err(|_| self.invalid("a probe permit id is not UTF-8".to_owned()))?,
                other => return Err(self.invalid(format!("probe permit id is {other:?}"))),
            };
            let deadline_ms = match deadline {
                Value::Int(n) => u64::try_from(n).ok(),
                _ => None,
            }
            .ok_or_else(|| {
                self.invalid(format!("the deadline of probe {permit_id:?} is unreadable"))
            })?;
            leases.push(Lease {
                permit_id,
                deadline_ms,
            });
        }
        Ok(leases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> AgentId {
        AgentId::new("agent-1").expect("valid id")
    }

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn common(transition: &str) -> Vec<Value> {
        let mut items = vec![
            Value::Int(1_700_000_000_123),
            bulk(transition),
            bulk("half_open"),
        ];
        items.extend(
            [
                0,
                0,
                2,
                0,
                1_699_999_999_000,
                1500,
                1_700_000_000_000,
                1,
                3,
                0,
            ]
            .map(Value::Int),
        );
        items.push(Value::Array(vec![
            bulk("p-1"),
            Value::Int(1_700_000_030_123),
        ]));
        items.push(Value::Int(1_700_000_000_000_456));
        items.extend([bulk(""), bulk(""), Value::Array(vec![])]);
        items
    }

    #[test]
    fn an_acquire_reply_becomes_a_decision_and_a_snapshot() {
        let message = r#"{"agent_id":"agent-1","from":"open","to":"half_open","generation":3,"at_ms":1700000000123,"reason":"backoff_elapsed","backoff_seconds":5.062,"open_until_ms":1700000000000}"#;
        let mut items = common(message);
        items.extend([bulk("granted"), Value::Int(3), Value::Int(1)]);
        let applied = acquire(Value::Array(items), &agent()).expect("a valid reply");
        assert_eq!(
            applied.value,
            Decision::Granted(Grant {
                generation: 3,
                probe: true
            })
        );
        assert_eq!(applied.now_ms, 1_700_000_000_123);
        assert_eq!(applied.snapshot.last_failure_ms, None);
        assert_eq!(applied.snapshot.last_success_ms, Some(1_699_999_999_000));
        assert_eq!(applied.snapshot.probes[0].deadline_ms, 1_700_000_030_123);
        assert_eq!(applied.snapshot.epoch, 1_700_000_000_000_456);
        let transition = applied.transition.expect("a transition");
        assert_eq!(
            transition.backoff_seconds.to_bits(),
            (5062.0_f64 / 1000.0).to_bits()
        );
    }

    #[test]
    fn a_corrupt_data_error_names_the_field_and_value() {
        let detail = r#"fleet-breaker: corrupt data: {"key":"p:{agent-1}:state","field":"failure_count","value":"-5","expected":"an integer from 0 to 2^53 - 1"}"#;
        let error = corruption(detail, &agent()).expect("a corrupt-data error");
        let found = error.corruption().expect("StoreError::Corrupt");
        assert_eq!(found.field, "failure_count");
        assert_eq!(found.value.as_deref(), Some("-5"));
        assert!(error.to_string().contains("failure_count"), "{error}");
        let missing =
            r#"fleet-breaker: corrupt data: {"key":"k","field":"state","expected":"closed"}"#;
        let error = corruption(missing, &agent()).expect("a corrupt-data error");
        assert_eq!(error.corruption().and_then(|c| c.value.clone()), None);
        assert!(error.to_string().contains("state is missing"), "{error}");
        // Unreadable JSON is still an error, never a panic.
        let garbled = corruption("fleet-breaker: corrupt data: {oops", &agent());
        assert!(matches!(garbled, Some(StoreError::InvalidData { .. })));
        assert!(corruption("fleet-breaker: invalid argument: x", &agent()).is_none());
    }

    #[test]
    fn a_malformed_reply_is_invalid_data_not_a_panic() {
        let mut short = common("");
        short.pop();
        for bad in [
            Value::Okay,
            Value::Array(short),
            Value::Array({
                let mut items = common("");
                items[2] = bulk("ajar");
                items
            }),
            Value::Array({
                let mut items = common("{not json");
                items.truncate(COMMON);
                items
            }),
        ] {
            let error = unit(bad, &agent()).expect_err("malformed");
            assert!(matches!(error, StoreError::InvalidData { .. }), "{error:?}");
        }
        assert_eq!(unit(Value::Nil, &agent()).expect("nil"), None);
    }
}
