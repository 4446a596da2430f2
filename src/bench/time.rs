//! One clock decision per run (design §3): simulated time (tokio's paused clock on a
//! current-thread runtime) only when every node is emulated and every link in memory; the
//! wall clock as soon as a real device, a process or a real socket is in the loop. Mixing
//! the paused clock with real transports fires timers while bytes are still in flight.

use poslab_bench::{Bench, TimeMode};

/// Builds the runtime a bench runs on.
pub fn runtime_for(mode: TimeMode) -> std::io::Result<tokio::runtime::Runtime> {
    match mode {
        TimeMode::Simulated => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build(),
        TimeMode::Real => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}

/// The runtime for `bench` ([`Bench::time_mode`]).
pub fn runtime(bench: &Bench) -> std::io::Result<tokio::runtime::Runtime> {
    runtime_for(bench.time_mode())
}

/// Where the wall clock of a simulated-time run starts: Monday 2026-11-02 09:00:00 UTC.
/// Every wall-clock reading of such a run (the journal's `wall`, the host's and the
/// terminal's clocks, the cash register's date and time) is this epoch plus tokio's paused
/// clock, so the same seed writes the same bytes. Real-time runs read the system clock.
pub const SIMULATED_EPOCH_SECS: u64 = 1_793_610_000;

thread_local! {
    /// This thread's simulated wall clock: (epoch, tokio instant it corresponds to).
    static SIMULATED_WALL: std::cell::Cell<Option<(std::time::SystemTime, tokio::time::Instant)>> =
        const { std::cell::Cell::new(None) };
}

/// Keeps this thread's wall clock simulated while it lives (see [`SIMULATED_EPOCH_SECS`]).
pub struct SimulatedWall {
    before: Option<(std::time::SystemTime, tokio::time::Instant)>,
}

impl SimulatedWall {
    /// Starts the simulated wall clock at the epoch, now by tokio's clock. Call it inside
    /// the simulated-time runtime (its paused clock is the one that runs the wall clock).
    pub fn start() -> SimulatedWall {
        let epoch = std::time::UNIX_EPOCH + std::time::Duration::from_secs(SIMULATED_EPOCH_SECS);
        let before = SIMULATED_WALL.with(|w| w.replace(Some((epoch, tokio::time::Instant::now()))));
        SimulatedWall { before }
    }

    /// [`SimulatedWall::start`] for a simulated-time run, nothing for a real-time one.
    pub fn for_mode(mode: TimeMode) -> Option<SimulatedWall> {
        (mode == TimeMode::Simulated).then(SimulatedWall::start)
    }
}

impl Drop for SimulatedWall {
    fn drop(&mut self) {
        SIMULATED_WALL.with(|w| w.set(self.before));
    }
}

/// Sets this thread's simulated wall clock back to the epoch, now by tokio's clock (a new
/// scenario's bench starts there, wherever the scenario stands in the run, so that its
/// replay command draws the same bytes). Nothing on a real-time thread.
pub fn restart_simulated_wall() {
    SIMULATED_WALL.with(|w| {
        if w.get().is_some() {
            let epoch =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(SIMULATED_EPOCH_SECS);
            w.set(Some((epoch, tokio::time::Instant::now())));
        }
    });
}

/// The wall clock: simulated on a thread running a simulated-time run, the system clock
/// otherwise.
pub fn wall_now() -> std::time::SystemTime {
    match SIMULATED_WALL.with(|w| w.get()) {
        Some((epoch, at)) => epoch + at.elapsed(),
        None => std::time::SystemTime::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_all_emulated_bench_gets_simulated_time() {
        let text = include_str!("../../scenarios/default.yaml");
        let bench = Bench::load("default.yaml", text).unwrap();
        let rt = runtime(&bench).unwrap();
        let wall = std::time::Instant::now();
        let simulated = rt.block_on(async {
            let start = tokio::time::Instant::now();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            start.elapsed()
        });
        assert!(simulated >= Duration::from_secs(3600));
        // an hour of simulated time is not an hour of real time
        assert!(wall.elapsed() < Duration::from_secs(600));
    }

    #[test]
    fn the_simulated_wall_clock_starts_at_the_epoch_and_runs_with_tokio() {
        let rt = runtime_for(TimeMode::Simulated).unwrap();
        let (a, b) = rt.block_on(async {
            let _wall = SimulatedWall::start();
            let a = wall_now();
            tokio::time::sleep(Duration::from_secs(90)).await;
            (a, wall_now())
        });
        let epoch = std::time::UNIX_EPOCH + Duration::from_secs(SIMULATED_EPOCH_SECS);
        assert_eq!(a, epoch);
        assert_eq!(b.duration_since(a).unwrap(), Duration::from_secs(90));
        assert_eq!(
            humantime::format_rfc3339_seconds(epoch).to_string(),
            "2026-11-02T09:00:00Z"
        );
        // outside the guard the thread reads the system clock again
        let system = std::time::SystemTime::now();
        let wall = wall_now();
        assert!(wall >= system && wall.duration_since(system).unwrap() < Duration::from_secs(60));
    }

    #[test]
    fn a_process_bench_gets_real_time_on_a_multi_thread_runtime() {
        let text = include_str!("../../scenarios/process.yaml");
        let bench = Bench::load("process.yaml", text).unwrap();
        assert_eq!(bench.time_mode(), TimeMode::Real);
        let rt = runtime(&bench).unwrap();
        assert_eq!(
            rt.handle().runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        );
    }
}
