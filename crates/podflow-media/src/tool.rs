//! The one way podflow runs an external program (ffmpeg, ffprobe): in its own process
//! group, under a watchdog, with stderr drained as it runs into a bounded tail.
//!
//! Why by hand: `tokio::process` kills only the direct child on drop and has no deadline,
//! and no crate does all of this. The group matters because a tool may be a wrapper script
//! whose real work runs in a grandchild; the concurrent stderr drain matters because a
//! damaged file can make ffmpeg log more than a pipe holds, which stalls both processes.

use std::{
    ffi::OsString,
    io::Read,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use podflow_core::PortError;
use std::os::unix::process::CommandExt;

/// The most of a tool's stderr kept: its last lines say what failed.
const STDERR_TAIL: usize = 4096;

/// The most of a tool's stdout kept by [`run`]: probes print a few kilobytes.
const STDOUT_LIMIT: usize = 16 << 20;

/// How often the watchdog looks at the clock.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// How long tools may take, from one setting: a fixed time for anything (a probe, a stall
/// of the decoder) plus, for work over the whole audio, half a second per second of audio
/// (ffmpeg encodes an MP3 at dozens of times real time; this bound only catches hangs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToolDeadlines {
    pub fixed: Duration,
}

impl Default for ToolDeadlines {
    fn default() -> Self {
        Self {
            fixed: Duration::from_secs(120),
        }
    }
}

impl ToolDeadlines {
    /// Reads `PODFLOW_TOOL_TIMEOUT` (seconds); the default when unset or not a number.
    pub fn from_env() -> Self {
        std::env::var("PODFLOW_TOOL_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Self {
                fixed: Duration::from_secs_f64(s),
            })
            .unwrap_or_default()
    }

    /// For a probe, or the longest a streaming decoder may go without producing audio.
    pub fn fixed(&self) -> Duration {
        self.fixed
    }

    /// For work that reads the whole audio (encoding, cutting).
    pub fn for_audio(&self, seconds: f64) -> Duration {
        self.fixed + Duration::from_secs_f64(seconds.clamp(0.0, 1e7) * 0.5)
    }
}

/// Why a tool did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run {program} ({source})")]
    Missing {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {}; it was stopped{}", seconds(*after), tail_suffix(stderr_tail))]
    TimedOut {
        program: String,
        after: Duration,
        stderr_tail: String,
    },
    #[error("{program} failed ({status}): {}", last_line(stderr_tail))]
    Failed {
        program: String,
        status: ExitStatus,
        stderr_tail: String,
    },
}

impl ToolError {
    /// As a port error: a missing tool is setup, a hang may be load (retry), an exit with
    /// an error is the input's fault.
    pub fn into_port_error(self, what: &str) -> PortError {
        match &self {
            ToolError::Missing { program, source } => PortError::setup(format!(
                "cannot run {program} ({source}); install ffmpeg (Debian: apt-get install \
                 ffmpeg; on Lambda: the FfmpegLayerArn layer, see docs/deploy.md)"
            )),
            // Named in the message itself: steps end on media errors without a retry.
            ToolError::TimedOut { .. } => PortError::transient(format!(
                "making {what}: {self} (set PODFLOW_TOOL_TIMEOUT higher if this machine is \
                 just slow)"
            )),
            ToolError::Failed { stderr_tail, .. } => PortError::input(format!(
                "ffmpeg could not make {what} ({})",
                last_line(stderr_tail)
            )),
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{:.0} s", d.as_secs_f64().max(1.0))
}

fn tail_suffix(tail: &str) -> String {
    let line = last_line(tail);
    if line == "no output" {
        String::new()
    } else {
        format!(" (it last said: {line})")
    }
}

/// The last meaningful line a tool printed: its actual complaint.
pub fn last_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no output")
}

/// What a finished tool printed.
pub struct ToolOutput {
    pub stdout: Vec<u8>,
    pub stderr_tail: String,
}

/// Runs `program args` to the end within `deadline`, without blocking the async runtime.
/// Dropping the future (a stopped step) kills the tool's whole process group.
pub async fn run(
    program: &str,
    args: Vec<OsString>,
    deadline: Duration,
) -> Result<ToolOutput, ToolError> {
    let mut running = RunningTool::start(program, &args, Limit::Total(deadline))?;
    // The blocking thread cannot see the future dropped; this guard kills the group then.
    let mut guard = KillOnDrop(Some(running.group_killer()));
    let result = tokio::task::spawn_blocking(move || {
        let mut stdout = Vec::new();
        if let Some(pipe) = running.child.stdout.take() {
            read_capped(pipe, &mut stdout, STDOUT_LIMIT);
        }
        running.wait().map(|stderr_tail| ToolOutput {
            stdout,
            stderr_tail,
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(ToolError::Missing {
            program: program.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })
    });
    // Finished: the group is already reaped, so there is nothing left to kill.
    guard.0 = None;
    result
}

/// Runs `program args` to the end within `deadline`, blocking the calling thread: for
/// blocking code such as a speech engine.
pub fn run_blocking(
    program: &str,
    args: &[OsString],
    deadline: Duration,
) -> Result<ToolOutput, ToolError> {
    let mut running = RunningTool::start(program, args, Limit::Total(deadline))?;
    let mut stdout = Vec::new();
    if let Some(pipe) = running.child.stdout.take() {
        read_capped(pipe, &mut stdout, STDOUT_LIMIT);
    }
    let stderr_tail = running.wait()?;
    Ok(ToolOutput {
        stdout,
        stderr_tail,
    })
}

/// Reads a pipe to its end, keeping at most `limit` bytes (the rest is drained, so the
/// tool never blocks on a full pipe).
fn read_capped(mut pipe: impl Read, into: &mut Vec<u8>, limit: usize) {
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let room = limit.saturating_sub(into.len());
                into.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Kills a tool's group when the future that runs it is dropped before the end.
struct KillOnDrop(Option<GroupKiller>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(killer) = &self.0 {
            killer.kill();
        }
    }
}

/// What the watchdog enforces.
pub(crate) enum Limit {
    /// The whole run ends by then.
    Total(Duration),
    /// A reader waiting on the tool's output ([`RunningTool::waiting`]) gets some within
    /// this time; time spent by the reader itself (a busy speech engine) does not count.
    Stall(Duration),
}

/// Kills a process group (the tool and anything it started).
#[derive(Clone)]
pub(crate) struct GroupKiller {
    pgid: Option<rustix::process::Pid>,
}

impl GroupKiller {
    pub(crate) fn kill(&self) {
        if let Some(pgid) = self.pgid {
            // ESRCH (the group is gone) is the usual, harmless answer after a normal end.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

/// A started tool: its own process group, a stderr drain, and a watchdog that kills the
/// group when the limit passes. Dropping it kills the group.
pub(crate) struct RunningTool {
    pub(crate) child: Child,
    program: String,
    killer: GroupKiller,
    stderr_reader: Option<JoinHandle<()>>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    watchdog: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    fired: Arc<AtomicBool>,
    /// For [`Limit::Stall`]: milliseconds since `started` at which a reader began waiting,
    /// 0 when none is.
    waiting_since: Arc<AtomicU64>,
    started: Instant,
    limit: Duration,
}

impl RunningTool {
    pub(crate) fn start(program: &str, args: &[OsString], limit: Limit) -> Result<Self, ToolError> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| ToolError::Missing {
                program: program.to_owned(),
                source,
            })?;
        let killer = GroupKiller {
            pgid: i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw),
        };
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = child.stderr.take().map(|mut pipe| {
            let tail = Arc::clone(&stderr_tail);
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            if let Ok(mut kept) = tail.lock() {
                                kept.extend_from_slice(&chunk[..n]);
                                let excess = kept.len().saturating_sub(STDERR_TAIL);
                                kept.drain(..excess);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            })
        });
        let started = Instant::now();
        let fired = Arc::new(AtomicBool::new(false));
        let waiting_since = Arc::new(AtomicU64::new(0));
        let (limit, stall) = match limit {
            Limit::Total(d) => (d, false),
            Limit::Stall(d) => (d, true),
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let watchdog = {
            let killer = killer.clone();
            let fired = Arc::clone(&fired);
            let waiting_since = Arc::clone(&waiting_since);
            std::thread::spawn(move || {
                loop {
                    match stopped.recv_timeout(WATCH_EVERY) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let now = started.elapsed();
                    let over = if stall {
                        let since = waiting_since.load(Ordering::Acquire);
                        since != 0 && now.saturating_sub(Duration::from_millis(since)) > limit
                    } else {
                        now > limit
                    };
                    if over {
                        fired.store(true, Ordering::Release);
                        killer.kill();
                        return;
                    }
                }
            })
        };
        Ok(Self {
            child,
            program: program.to_owned(),
            killer,
            stderr_reader,
            stderr_tail,
            watchdog: Some((stop, watchdog)),
            fired,
            waiting_since,
            started,
            limit,
        })
    }

    pub(crate) fn group_killer(&self) -> GroupKiller {
        self.killer.clone()
    }

    /// Runs `read` (a read of the tool's output) as time the stall limit counts.
    pub(crate) fn waiting<T>(&self, read: impl FnOnce() -> T) -> T {
        let ms = (self.started.elapsed().as_millis() as u64).max(1);
        self.waiting_since.store(ms, Ordering::Release);
        let result = read();
        self.waiting_since.store(0, Ordering::Release);
        result
    }

    /// Waits for the tool; returns its stderr tail when it exits 0.
    pub(crate) fn wait(&mut self) -> Result<String, ToolError> {
        let status = self.child.wait();
        if let Some((stop, watchdog)) = self.watchdog.take() {
            let _ = stop.send(());
            let _ = watchdog.join();
        }
        // Stragglers of the group (a wrapper's children) would hold stderr open.
        self.killer.kill();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let stderr_tail = self
            .stderr_tail
            .lock()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .unwrap_or_default();
        if self.fired.load(Ordering::Acquire) {
            return Err(ToolError::TimedOut {
                program: self.program.clone(),
                after: self.limit,
                stderr_tail,
            });
        }
        match status {
            Ok(status) if status.success() => Ok(stderr_tail),
            Ok(status) => Err(ToolError::Failed {
                program: self.program.clone(),
                status,
                stderr_tail,
            }),
            Err(source) => Err(ToolError::Missing {
                program: self.program.clone(),
                source,
            }),
        }
    }
}

impl Drop for RunningTool {
    /// A tool dropped before its end (an error, a cancelled step) is killed with its group.
    fn drop(&mut self) {
        if let Some((stop, _)) = self.watchdog.take() {
            let _ = stop.send(());
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            self.killer.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        vec!["-c".into(), script.into()]
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    }

    #[test]
    fn a_tool_that_hangs_is_killed_with_its_children_at_the_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        // The shell ignores SIGTERM and waits on a grandchild: only the group kill ends both.
        let script = format!(
            "trap '' TERM; sleep 300 & echo $! > {}; wait",
            pidfile.display()
        );
        let started = Instant::now();
        let err = run_blocking("sh", &sh(&script), Duration::from_millis(400))
            .err()
            .expect("times out");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err, ToolError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("did not finish within"), "{err}");
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .expect("pid written")
            .trim()
            .parse()
            .expect("pid");
        for _ in 0..100 {
            if !alive(grandchild) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(grandchild), "sleep {grandchild} outlived its tool");
    }

    #[test]
    fn a_tool_that_floods_stderr_finishes_and_its_error_has_the_last_line() {
        // 1 MiB on stderr before any output: far more than a pipe holds.
        let script = "head -c 1048576 /dev/zero | tr '\\0' x >&2; echo >&2; \
                      echo 'Invalid data found' >&2; echo out; exit 3";
        let err = run_blocking("sh", &sh(script), Duration::from_secs(20))
            .err()
            .expect("fails");
        match err {
            ToolError::Failed { stderr_tail, .. } => {
                assert!(stderr_tail.len() <= STDERR_TAIL);
                assert_eq!(last_line(&stderr_tail), "Invalid data found");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_missing_tool_says_which_and_how_to_install_it() {
        let err = run_blocking("podflow-no-such-tool", &[], Duration::from_secs(1))
            .err()
            .expect("missing");
        let port = err.into_port_error("the MP3");
        assert_eq!(port.kind(), podflow_core::ErrorKind::Setup);
        assert!(port.to_string().contains("podflow-no-such-tool"));
        assert!(port.to_string().contains("apt-get install ffmpeg"));
    }

    #[tokio::test]
    async fn dropping_a_running_tool_kills_its_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let run = run("sh", sh(&script), Duration::from_secs(300));
        let _ = tokio::time::timeout(Duration::from_millis(500), run).await;
        let grandchild: u32 = std::fs::read_to_string(&pidfile)
            .expect("pid written")
            .trim()
            .parse()
            .expect("pid");
        for _ in 0..100 {
            if !alive(grandchild) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !alive(grandchild),
            "sleep {grandchild} outlived its dropped step"
        );
    }

    #[test]
    fn deadlines_scale_with_the_audio() {
        let d = ToolDeadlines {
            fixed: Duration::from_secs(10),
        };
        assert_eq!(d.for_audio(3600.0), Duration::from_secs(1810));
        assert_eq!(d.for_audio(-1.0), Duration::from_secs(10));
    }
}
