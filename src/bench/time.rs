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
