//! Shards: holding subscribers in several processes.
//!
//! No process here may hold more than 20,000 open files (a hard limit), so
//! 100,000 subscribers take at least six processes. The parent starts K
//! copies of itself (`tidings-bench __shard`) and talks to each over its
//! stdin and stdout, one JSON message per line:
//!
//! - parent → shard: `config` (what to open), `start` (publishing begins),
//!   `end` (publishing ended after N events: drain and report);
//! - shard → parent: `progress` (counters, four times a second), `ready`
//!   (every connection attempt has ended), `result` (the shard's counts and
//!   histograms as (value, count) pairs), `error`.
//!
//! The parent publishes and adds the results up. The same [`Shard`] handle
//! also wraps subscribers held by the parent itself, so a one-process run
//! goes through the same steps.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;

use crate::swarm::{Counts, Swarm, SwarmConfig, SwarmResult};
use crate::sys;

/// How often a shard reports its counters.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A message from the parent to a shard.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToShard {
    /// What to open.
    Config {
        /// The shard's part of the run.
        config: SwarmConfig,
    },
    /// Publishing begins now.
    Start,
    /// Publishing ended.
    End {
        /// Events published successfully.
        published: u64,
        /// How long to wait with nothing arriving before reporting, ms.
        drain_ms: u64,
    },
}

/// A message from a shard to the parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromShard {
    /// Live counters.
    Progress {
        /// The counters.
        counts: Counts,
    },
    /// Every connection attempt has ended.
    Ready,
    /// The shard's result; it exits after sending it.
    Result {
        /// What the shard saw.
        result: Box<SwarmResult>,
    },
    /// The shard cannot go on.
    Error {
        /// Why.
        message: String,
    },
}

/// A shard failed.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The shard process could not be started or spoken to.
    #[error("shard {index}: {source}")]
    Io {
        /// Which shard.
        index: usize,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The shard reported an error or exited early.
    #[error("shard {index}: {message}")]
    Failed {
        /// Which shard.
        index: usize,
        /// What it said.
        message: String,
    },
}

/// What the parent knows of a shard process, updated by its reader task.
#[derive(Debug, Default)]
pub struct ChildState {
    /// The last counters it sent.
    counts: Cell<Counts>,
    /// It said `ready`.
    ready: Cell<bool>,
    /// Its result.
    result: RefCell<Option<SwarmResult>>,
    /// Its error, or why its output ended early.
    error: RefCell<Option<String>>,
}

/// Subscribers held by this process or by a shard process.
#[derive(Debug)]
pub enum Shard {
    /// Held here.
    Local {
        /// The subscribers.
        swarm: Rc<Swarm>,
        /// Opening them.
        connecting: JoinHandle<()>,
        /// Filled when the drain ends.
        result: Rc<RefCell<Option<SwarmResult>>>,
    },
    /// Held by a child process.
    Child {
        /// Which shard (for messages).
        index: usize,
        /// The process; killed if dropped.
        child: Box<Child>,
        /// Its stdin: where messages go.
        stdin: ChildStdin,
        /// What it said.
        state: Rc<ChildState>,
    },
}

impl Shard {
    /// Subscribers held by this process; starts opening them at once. Must
    /// run inside a `LocalSet`.
    pub fn local(swarm: Swarm) -> Self {
        let swarm = Rc::new(swarm);
        let connecting = tokio::task::spawn_local({
            let swarm = Rc::clone(&swarm);
            async move { swarm.connect_all().await }
        });
        Self::Local {
            swarm,
            connecting,
            result: Rc::default(),
        }
    }

    /// Starts shard process number `index` with its part of the run.
    pub async fn spawn(index: usize, config: &SwarmConfig) -> Result<Self, ShardError> {
        let io = |source| ShardError::Io { index, source };
        let exe = std::env::current_exe().map_err(io)?;
        let mut child = Command::new(exe)
            .arg("__shard")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(io)?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ShardError::Failed {
                index,
                message: "no pipes to the shard process".to_owned(),
            });
        };
        let state = Rc::new(ChildState::default());
        tokio::task::spawn_local({
            let state = Rc::clone(&state);
            async move {
                let mut lines = BufReader::new(stdout).lines();
                loop {
                    match lines.next_line().await {
                        Ok(Some(line)) => match serde_json::from_str::<FromShard>(&line) {
                            Ok(FromShard::Progress { counts }) => state.counts.set(counts),
                            Ok(FromShard::Ready) => state.ready.set(true),
                            Ok(FromShard::Result { result }) => {
                                state.counts.set(Counts {
                                    connected: result.connected,
                                    failed: result.failed,
                                    dropped: result.dropped_during_run,
                                    delivered: result.delivered,
                                });
                                *state.result.borrow_mut() = Some(*result);
                                return;
                            }
                            Ok(FromShard::Error { message }) => {
                                *state.error.borrow_mut() = Some(message);
                                return;
                            }
                            Err(err) => {
                                *state.error.borrow_mut() =
                                    Some(format!("bad message {line:?}: {err}"));
                                return;
                            }
                        },
                        Ok(None) => {
                            *state.error.borrow_mut() = Some("exited early".to_owned());
                            return;
                        }
                        Err(err) => {
                            *state.error.borrow_mut() = Some(format!("reading its output: {err}"));
                            return;
                        }
                    }
                }
            }
        });
        send(
            &mut stdin,
            &ToShard::Config {
                config: config.clone(),
            },
        )
        .await
        .map_err(io)?;
        Ok(Self::Child {
            index,
            child: Box::new(child),
            stdin,
            state,
        })
    }

    /// A handle that reads this shard's latest counters, for the progress
    /// display.
    pub fn view(&self) -> CountsView {
        CountsView(match self {
            Self::Local { swarm, .. } => View::Local(Rc::clone(swarm)),
            Self::Child { state, .. } => View::Child(Rc::clone(state)),
        })
    }

    /// The latest counters.
    pub fn counts(&self) -> Counts {
        match self {
            Self::Local { swarm, .. } => swarm.counts(),
            Self::Child { state, .. } => state.counts.get(),
        }
    }

    /// Whether every connection attempt has ended; an error if the shard
    /// failed.
    pub fn ready(&self) -> Result<bool, ShardError> {
        self.check()?;
        Ok(match self {
            Self::Local { connecting, .. } => connecting.is_finished(),
            Self::Child { state, .. } => state.ready.get(),
        })
    }

    /// Publishing begins.
    pub async fn start(&mut self) -> Result<(), ShardError> {
        match self {
            Self::Local { swarm, .. } => {
                swarm.start();
                Ok(())
            }
            Self::Child { index, stdin, .. } => {
                send(stdin, &ToShard::Start)
                    .await
                    .map_err(|source| ShardError::Io {
                        index: *index,
                        source,
                    })
            }
        }
    }

    /// Publishing ended after `published` events.
    pub async fn end(&mut self, published: u64, drain: Duration) -> Result<(), ShardError> {
        match self {
            Self::Local { swarm, result, .. } => {
                let swarm = Rc::clone(swarm);
                let result = Rc::clone(result);
                tokio::task::spawn_local(async move {
                    let r = swarm.finish(published, drain).await;
                    *result.borrow_mut() = Some(r);
                });
                Ok(())
            }
            Self::Child { index, stdin, .. } => {
                let drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX);
                send(
                    stdin,
                    &ToShard::End {
                        published,
                        drain_ms,
                    },
                )
                .await
                .map_err(|source| ShardError::Io {
                    index: *index,
                    source,
                })
            }
        }
    }

    /// The shard's result, once it has one; an error if it failed.
    pub fn take_result(&self) -> Result<Option<SwarmResult>, ShardError> {
        let taken = match self {
            Self::Local { result, .. } => result.borrow_mut().take(),
            Self::Child { state, .. } => state.result.borrow_mut().take(),
        };
        if taken.is_none() {
            self.check()?;
        }
        Ok(taken)
    }

    fn check(&self) -> Result<(), ShardError> {
        if let Self::Child { index, state, .. } = self
            && let Some(message) = state.error.borrow().clone()
        {
            return Err(ShardError::Failed {
                index: *index,
                message,
            });
        }
        Ok(())
    }

    /// Waits for a shard process to exit (after its result).
    pub async fn reap(self) {
        if let Self::Child {
            mut child, stdin, ..
        } = self
        {
            drop(stdin);
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }
}

/// Reads a shard's latest counters.
#[derive(Debug, Clone)]
pub struct CountsView(View);

/// Where a [`CountsView`] reads.
#[derive(Debug, Clone)]
enum View {
    /// Subscribers held here.
    Local(Rc<Swarm>),
    /// What a shard process last said.
    Child(Rc<ChildState>),
}

impl CountsView {
    /// The latest counters.
    pub fn counts(&self) -> Counts {
        match &self.0 {
            View::Local(swarm) => swarm.counts(),
            View::Child(state) => state.counts.get(),
        }
    }
}

async fn send(stdin: &mut ChildStdin, message: &ToShard) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stdin.write_all(&line).await?;
    stdin.flush().await
}

/// Writes one message on stdout, for the parent.
fn reply(message: &FromShard) {
    let mut stdout = std::io::stdout().lock();
    if let Ok(mut line) = serde_json::to_vec(message) {
        line.push(b'\n');
        // If the parent is gone there is no one to tell.
        let _ = stdout.write_all(&line);
        let _ = stdout.flush();
    }
}

/// The body of a shard process: reads its orders from stdin, holds its
/// subscribers, reports on stdout. Must run inside a `LocalSet`.
pub async fn run_child() {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let Some(ToShard::Config { config }) = next(&mut lines).await else {
        return reply_error("expected a config message first".to_owned());
    };
    let fd_limit = match sys::raise_fd_limit() {
        Ok(limit) => limit,
        Err(err) => return reply_error(err.to_string()),
    };
    if config.count as u64 + sys::RESERVED_FDS > fd_limit {
        return reply_error(format!(
            "{} subscribers do not fit under this process's open-file limit of {fd_limit}",
            config.count
        ));
    }
    let swarm = match Swarm::new(config, fd_limit).await {
        Ok(swarm) => Rc::new(swarm),
        Err(err) => return reply_error(err.to_string()),
    };
    let ticker = tokio::task::spawn_local({
        let swarm = Rc::clone(&swarm);
        async move {
            loop {
                reply(&FromShard::Progress {
                    counts: swarm.counts(),
                });
                tokio::time::sleep(PROGRESS_EVERY).await;
            }
        }
    });
    swarm.connect_all().await;
    reply(&FromShard::Ready);
    loop {
        match next(&mut lines).await {
            Some(ToShard::Start) => swarm.start(),
            Some(ToShard::End {
                published,
                drain_ms,
            }) => {
                let result = swarm
                    .finish(published, Duration::from_millis(drain_ms))
                    .await;
                ticker.abort();
                reply(&FromShard::Result {
                    result: Box::new(result),
                });
                return;
            }
            Some(ToShard::Config { .. }) => {}
            // The parent is gone.
            None => return,
        }
    }
}

fn reply_error(message: String) {
    reply(&FromShard::Error { message });
}

async fn next<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> Option<ToShard> {
    loop {
        let line = lines.next_line().await.ok()??;
        if line.trim().is_empty() {
            continue;
        }
        return serde_json::from_str(&line).ok();
    }
}
