//! The server's memory and CPU, read from `/proc`.
//!
//! A server may be one process with many threads (Tidings) or a master and
//! its workers (nginx): a sample covers the given process and all of its
//! descendants. Threads share their process's memory, so VmRSS is counted
//! once per process; PSS (from `smaps_rollup`) splits shared pages between
//! the processes that map them, so it does not count nginx's shared memory
//! zone twice.

use std::collections::HashMap;
use std::fs;

use serde::{Deserialize, Serialize};

/// The server's usage at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcSample {
    /// Resident memory, summed over the processes (VmRSS), in bytes.
    pub rss_bytes: u64,
    /// Proportional set size, summed over the processes, in bytes (0 where
    /// `smaps_rollup` is unreadable).
    pub pss_bytes: u64,
    /// Processes counted: the server and its descendants.
    pub processes: u32,
    /// Threads, summed over the processes.
    pub threads: u32,
    /// Open file descriptors, summed over the processes.
    pub fds: u64,
    /// CPU time used so far (user plus system, all threads), in seconds.
    pub cpu_s: f64,
}

/// The server process is gone or its `/proc` entry unreadable.
#[derive(Debug, thiserror::Error)]
#[error("cannot read /proc/{pid}: {source}")]
pub struct ProcError {
    /// The process asked about.
    pid: u32,
    /// The underlying error.
    source: std::io::Error,
}

/// Samples `pid` and its descendants.
pub fn sample(pid: u32) -> Result<ProcSample, ProcError> {
    let ticks = clock_ticks();
    let mut out = ProcSample::default();
    for p in tree(pid) {
        let status = match fs::read_to_string(format!("/proc/{p}/status")) {
            Ok(status) => status,
            // A descendant may exit between the listing and the read.
            Err(source) if p == pid => return Err(ProcError { pid, source }),
            Err(_) => continue,
        };
        out.processes += 1;
        out.rss_bytes += status_kib(&status, "VmRSS:") * 1024;
        out.threads += u32::try_from(status_kib(&status, "Threads:")).unwrap_or(0);
        if let Ok(rollup) = fs::read_to_string(format!("/proc/{p}/smaps_rollup")) {
            out.pss_bytes += status_kib(&rollup, "Pss:") * 1024;
        }
        if let Ok(entries) = fs::read_dir(format!("/proc/{p}/fd")) {
            out.fds += entries.count() as u64;
        }
        if let Some((utime, stime)) = fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|stat| cpu_ticks(&stat))
        {
            out.cpu_s += (utime + stime) as f64 / ticks;
        }
    }
    Ok(out)
}

/// `pid` and every process descending from it.
fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| parent(&stat))
            {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while let Some(&p) = out.get(i) {
        if let Some(kids) = children.get(&p) {
            out.extend(kids.iter().copied().filter(|k| *k != pid));
        }
        i += 1;
    }
    out
}

/// The fields of `/proc/PID/stat` after the command name (which may hold
/// spaces and parentheses, so it is skipped up to the last `)`).
fn stat_fields(stat: &str) -> impl Iterator<Item = &str> {
    let after = stat
        .rfind(')')
        .and_then(|at| stat.get(at + 1..))
        .unwrap_or("");
    after.split_ascii_whitespace()
}

/// The parent pid in `/proc/PID/stat` (field 4).
fn parent(stat: &str) -> Option<u32> {
    stat_fields(stat).nth(1)?.parse().ok()
}

/// utime and stime in `/proc/PID/stat` (fields 14 and 15), in clock ticks.
fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let mut fields = stat_fields(stat).skip(11);
    let utime = fields.next()?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// The number after `key` in a `/proc` key-value file (kB for sizes).
fn status_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_ascii_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second, the unit of `/proc/PID/stat` CPU times.
fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::{cpu_ticks, parent, sample};

    #[test]
    fn parses_stat_with_an_awkward_name() {
        let stat = "42 (a) b (c) S 7 42 42 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0";
        assert_eq!(parent(stat), Some(7));
        assert_eq!(cpu_ticks(stat), Some((250, 31)));
    }

    #[test]
    fn samples_this_process_and_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = sample(std::process::id()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(me.processes >= 2, "{me:?}");
        assert!(me.rss_bytes > 1024 * 1024, "{me:?}");
        assert!(me.threads >= 1 && me.fds >= 3, "{me:?}");
        assert!(sample(u32::MAX).is_err());
    }
}
