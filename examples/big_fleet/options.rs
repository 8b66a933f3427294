//! The options of `big_fleet`.

use crate::flags;

pub(crate) const USAGE: &str = "\
big_fleet: hundreds of pods, thousands of agents, agents failing and recovering

USAGE:
    REDIS_URL=redis://127.0.0.1:PORT cargo run --release --example big_fleet -- [OPTIONS]

OPTIONS:
    --pods N            breakers, each with its own store, pool and watcher [default: 256]
    --agents N          agents in the fleet [default: 10000]
    --spread N          agents each pod calls [default: 80]
    --calls-per-sec N   calls each pod makes per second [default: 100]
    --flaps-per-sec N   agents that die per second [default: 2]
    --dead-ms N         how long a dead agent stays dead [default: 1000]
    --secs N            length of the measured window [default: 20]
    --pool-size N       each store's pool_size [default: 4]
    --timeout-ms N      each store's timeout [default: 100, the crate's]
    --staleness-ms N    each pod's max_staleness (pings every half of it) [default: 1000, the crate's]
    --flush-ms N        each pod's flush_interval [default: 1000, the crate's]
    -h, --help          this text";

#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) pods: usize,
    pub(crate) agents: usize,
    pub(crate) spread: usize,
    pub(crate) calls_per_sec: u64,
    pub(crate) flaps_per_sec: u64,
    pub(crate) dead_ms: u64,
    pub(crate) secs: u64,
    pub(crate) pool_size: usize,
    pub(crate) timeout_ms: u64,
    pub(crate) staleness_ms: u64,
    pub(crate) flush_ms: u64,
}

pub(crate) fn parse_args() -> Result<Option<Options>, String> {
    let mut o = Options {
        pods: 256,
        agents: 10_000,
        spread: 80,
        calls_per_sec: 100,
        flaps_per_sec: 2,
        dead_ms: 1000,
        secs: 20,
        pool_size: 4,
        timeout_ms: 100,
        staleness_ms: 1000,
        flush_ms: 1000,
    };
    let go_on = flags::parse(|flag| {
        match flag.name.as_str() {
            "--pods" => o.pods = flag.number(1, 2048)? as usize,
            "--agents" => o.agents = flag.number(1, 200_000)? as usize,
            "--spread" => o.spread = flag.number(1, 200_000)? as usize,
            "--calls-per-sec" => o.calls_per_sec = flag.number(1, 100_000)?,
            "--flaps-per-sec" => o.flaps_per_sec = flag.number(0, 10_000)?,
            "--dead-ms" => o.dead_ms = flag.number(10, 60_000)?,
            "--secs" => o.secs = flag.number(1, 120)?,
            "--pool-size" => o.pool_size = flag.number(1, 64)? as usize,
            "--timeout-ms" => o.timeout_ms = flag.number(1, 10_000)?,
            "--staleness-ms" => o.staleness_ms = flag.number(10, 600_000)?,
            "--flush-ms" => o.flush_ms = flag.number(10, 600_000)?,
            _ => return Err(flag.unknown()),
        }
        Ok(())
    })?;
    if !go_on {
        return Ok(None);
    }
    o.spread = o.spread.min(o.agents);
    Ok(Some(o))
}
