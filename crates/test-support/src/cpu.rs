//! CPU time per process for benchmarks: user + system time from `/proc/<pid>/stat`, so a figure
//! says what each process (the service, PostgreSQL's backends together, the node, the client)
//! spent per operation, whoever got the machine's cores.

use std::collections::BTreeMap;
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// User + system CPU time of a process so far (`None` once it is gone).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    stat_ticks(pid, 11..13)
}

/// User + system CPU time of a process and of its children that ended and were waited for
/// (PostgreSQL's postmaster collects that of the backends it reaped: connections replaced during a
/// run still count).
pub fn cpu_time_with_ended_children(pid: u32) -> Option<Duration> {
    stat_ticks(pid, 11..15)
}

/// The sum of the `/proc/<pid>/stat` fields `range` (counted after the command name) in seconds.
fn stat_ticks(pid: u32, range: std::ops::Range<usize>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime and cstime are fields 14 to 17 of the line, 12 to 15 after the name.
    let mut ticks = 0u64;
    for i in range {
        ticks += fields.get(i)?.parse::<u64>().ok()?;
    }
    Some(Duration::from_secs_f64(ticks as f64 / ticks_per_second() as f64))
}

/// Every process whose command name is `name` (e.g. all of PostgreSQL's: `postgres`).
pub fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
        .collect()
}

/// What a set of processes is, by label: one pid, or every process of a name.
#[derive(Debug, Clone)]
pub enum Watched {
    /// One process.
    Pid(u32),
    /// Every process with this command name at each reading (backends come and go).
    Named(String),
}

/// CPU time of labelled processes between two readings.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    watched: Vec<(String, Watched)>,
    start: BTreeMap<String, Duration>,
}

impl CpuMeter {
    /// Watches `processes` and takes the first reading.
    pub fn start(processes: Vec<(String, Watched)>) -> Self {
        let mut meter = Self { watched: processes, start: BTreeMap::new() };
        meter.start = meter.read();
        meter
    }

    fn read(&self) -> BTreeMap<String, Duration> {
        self.watched
            .iter()
            .map(|(label, w)| {
                let total = match w {
                    Watched::Pid(pid) => cpu_time(*pid).unwrap_or_default(),
                    Watched::Named(name) => {
                        pids_named(name).into_iter().filter_map(cpu_time_with_ended_children).sum()
                    }
                };
                (label.clone(), total)
            })
            .collect()
    }

    /// CPU time each process spent since the start (a process whose backends ended meanwhile
    /// may read lower: clamped at zero).
    pub fn elapsed(&self) -> BTreeMap<String, Duration> {
        self.read()
            .into_iter()
            .map(|(label, now)| {
                let before = self.start.get(&label).copied().unwrap_or_default();
                (label, now.saturating_sub(before))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_spends_cpu_when_it_works() {
        let me = std::process::id();
        let meter = CpuMeter::start(vec![("me".into(), Watched::Pid(me))]);
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(meter.elapsed()["me"] > Duration::ZERO);
        assert!(cpu_time(u32::MAX).is_none());
    }
}
