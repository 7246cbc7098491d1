//! The fan-out run's parameters: the flags, checked once into a typed
//! config before anything connects.

use std::net::IpAddr;
use std::time::Duration;

use crate::cli::FanoutArgs;
use crate::publisher::Plan;
use crate::report::FanoutSettings;
use crate::sources;
use crate::swarm::SwarmConfig;
use crate::sys;
use crate::target::Target;

use super::FanoutError;
use super::churning::ChurnPlan;

/// A fan-out run, validated: every later phase reads this, never the flags.
#[derive(Debug)]
pub(super) struct FanoutConfig {
    /// Names the run in the summary and the JSON.
    pub(super) label: String,
    /// Draw the progress bar even when stderr is not a terminal.
    pub(super) progress: bool,
    /// The server to sample, if any.
    pub(super) server_pid: Option<u32>,
    /// Subscribers asked for, over all shards.
    pub(super) subscribers: usize,
    /// Processes holding the subscribers (1: this one).
    pub(super) shards: usize,
    /// This process's open-file limit, raised to the hard limit.
    pub(super) fd_limit: u64,
    /// Source addresses of the subscribers, round-robin over all shards.
    pub(super) sources: Vec<IpAddr>,
    /// Events to publish.
    pub(super) events: u32,
    /// Events per second.
    pub(super) rate: f64,
    /// Pause between the last subscription opening and the first event.
    pub(super) warmup: Duration,
    /// Stop waiting for deliveries when nothing arrived for this long.
    pub(super) drain: Duration,
    /// Publishing connections, at least 1.
    pub(super) pub_connections: usize,
    /// What the publisher does.
    pub(super) plan: Plan,
    /// What every shard is asked to do, except its share of the subscribers.
    pub(super) swarm: SwarmConfig,
    /// The parameters as the report records them.
    pub(super) settings: FanoutSettings,
    /// Churn alongside the second half of the events (`--churn-rate`).
    pub(super) churn: Option<ChurnPlan>,
}

impl FanoutConfig {
    /// Checks the flags, raises the open-file limit, resolves both URLs and
    /// plans shards and source addresses.
    pub(super) async fn from_args(args: &FanoutArgs) -> Result<Self, FanoutError> {
        let common = &args.common;
        if args.rate.is_nan() || args.rate <= 0.0 {
            return Err(FanoutError::Invalid("--rate must be above 0".to_owned()));
        }
        let fd_limit = sys::raise_fd_limit()?;
        let sub_target = Target::resolve(&common.sub_url).await?;
        let request = sub_target.subscribe_request(&common.headers)?;
        let n = args.subscribers;
        // This process holds the churn's connections besides any
        // subscribers.
        let churn_fds = if args.churn_rate > 0.0 {
            args.churn_in_flight.max(1)
        } else {
            0
        };
        let shards = plan_shards(n, args.shards, fd_limit, churn_fds)?;
        let sources = match &common.source_ips {
            Some(spec) => sources::parse(spec)?,
            None => sources::default_for(sub_target.addr.ip(), n as u64),
        };
        check_ports(n as u64, &sources)?;
        let churn = ChurnPlan::from_args(args, &sub_target, request, &sources)?;
        let run = sys::run_id();
        let events = args.events;
        let pub_connections = args.pub_connections.max(1);
        // Check the publish URL now rather than after connecting everyone.
        Target::resolve(&args.pub_url).await?;
        let plan = Plan {
            url: args.pub_url.clone(),
            format: args.pub_format,
            topic: args.topic.clone(),
            payload: args.payload,
            headers: args.pub_headers.clone(),
            timeout: Duration::from_secs_f64(args.pub_timeout.max(0.001)),
            events,
            rate: args.rate,
            connections: pub_connections,
            run,
        };
        let swarm = SwarmConfig {
            sub_url: common.sub_url.clone(),
            headers: common.headers.clone(),
            count: n,
            connect_rate: args.connect_rate / shards as f64,
            sources: sources.clone(),
            first_index: 0,
            index_stride: shards,
            events,
            run,
            connect_timeout_ms: (common.connect_timeout * 1000.0) as u64,
            delayed_ack: args.delayed_ack,
            phases: churn.as_ref().map(|plan| plan.split),
        };
        let settings = FanoutSettings {
            sub_url: common.sub_url.clone(),
            pub_url: args.pub_url.clone(),
            pub_format: args.pub_format,
            topic: args.topic.clone(),
            subscribers: n as u64,
            connect_rate: args.connect_rate,
            events: u64::from(events),
            rate: args.rate,
            payload_bytes: args.payload,
            warmup_s: args.warmup,
            drain_s: args.drain,
            shards,
            source_ips: sources::describe(&sources),
            server_pid: common.server_pid,
            delayed_ack: args.delayed_ack,
            pub_connections,
        };
        Ok(Self {
            label: common.label.clone(),
            progress: common.progress,
            server_pid: common.server_pid,
            subscribers: n,
            shards,
            fd_limit,
            sources,
            events,
            rate: args.rate,
            warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
            drain: Duration::from_secs_f64(args.drain.max(0.0)),
            pub_connections,
            plan,
            swarm,
            settings,
            churn,
        })
    }

    /// What shard number `index` is asked to do: its share of the
    /// subscribers, numbered so that shards interleave over the sources.
    pub(super) fn swarm_config(&self, index: usize) -> SwarmConfig {
        let (n, shards) = (self.subscribers, self.shards);
        SwarmConfig {
            count: n / shards + usize::from(index < n % shards),
            first_index: index,
            ..self.swarm.clone()
        }
    }
}

/// How many processes hold the subscribers, checked against the open-file
/// limit. This process also holds `parent_fds` other connections (the
/// churn's): with one process they share its limit; with more, the
/// subscribers live in child processes.
pub(super) fn plan_shards(
    subscribers: usize,
    asked: usize,
    fd_limit: u64,
    parent_fds: usize,
) -> Result<usize, FanoutError> {
    let room = fd_limit.saturating_sub(sys::RESERVED_FDS).max(1) as usize;
    if parent_fds > room {
        return Err(FanoutError::Invalid(format!(
            "--churn-in-flight {parent_fds} exceeds the open-file limit ({fd_limit}, of which {} \
             are kept for the tool)",
            sys::RESERVED_FDS
        )));
    }
    let room_here = room - parent_fds;
    let shards = match asked {
        0 if subscribers <= room_here => 1,
        0 => subscribers.div_ceil(room).max(2),
        asked => asked,
    };
    let per_process = subscribers.div_ceil(shards);
    if per_process > if shards == 1 { room_here } else { room } {
        let least = match subscribers.div_ceil(room) {
            1 if parent_fds > 0 => 2,
            least => least,
        };
        let churn = if parent_fds > 0 {
            format!(" and {parent_fds} churn connections")
        } else {
            String::new()
        };
        return Err(FanoutError::Invalid(format!(
            "{per_process} subscribers{churn} per process exceed the open-file limit ({fd_limit}, \
             of which {} are kept for the tool): use --shards {least} or more",
            sys::RESERVED_FDS,
        )));
    }
    Ok(shards)
}

/// Refuses a plan that puts more connections on one source address than
/// there are ephemeral ports.
fn check_ports(connections: u64, sources: &[IpAddr]) -> Result<(), FanoutError> {
    let ports = sources::ephemeral_ports();
    let per_source = connections.div_ceil(sources.len().max(1) as u64);
    if per_source > ports {
        return Err(FanoutError::Invalid(format!(
            "{per_source} connections per source address exceed the {ports} ephemeral ports: \
             spread them with --source-ips (e.g. --source-ips {})",
            connections.div_ceil(ports * 9 / 10)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::plan_shards;

    #[test]
    fn shards_fit_the_fd_limit() {
        assert_eq!(plan_shards(10_000, 0, 20_000, 0).unwrap(), 1);
        assert_eq!(plan_shards(100_000, 0, 20_000, 0).unwrap(), 6);
        assert_eq!(plan_shards(100_000, 8, 20_000, 0).unwrap(), 8);
        let err = plan_shards(100_000, 2, 20_000, 0).unwrap_err().to_string();
        assert!(err.contains("--shards 6"), "{err}");
    }

    #[test]
    fn churn_connections_share_this_process_limit() {
        // 10,000 subscribers and 1,000 churn connections fit one process.
        assert_eq!(plan_shards(10_000, 0, 20_000, 1_000).unwrap(), 1);
        // 19,500 and 1,000 do not: the subscribers go to two shards.
        assert_eq!(plan_shards(19_500, 0, 20_000, 1_000).unwrap(), 2);
        let err = plan_shards(19_500, 1, 20_000, 1_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--shards 2"), "{err}");
        assert!(plan_shards(10, 0, 20_000, 20_000).is_err());
    }
}
