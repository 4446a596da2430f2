//! `poslab chaos`: random fault plans over the lifecycle scenarios, the money checked after
//! each scenario; a violation is shrunk to a minimal plan and printed with its replay.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::chaos::{ChaosSpec, FaultPlan};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bench file (default: scenarios/default.yaml, every node emulated, simulated time)
    #[arg(long, value_name = "FILE")]
    pub bench: Option<PathBuf>,

    /// How many runs (run k has seed SEED+k and its own random plan)
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub runs: u32,

    /// Seed of the first run; a run's seed gives its plan and its scenarios' seeds
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,

    /// Feature files or directories the plans are run over
    #[arg(
        long,
        num_args = 1..,
        value_name = "PATHS",
        default_values_t = [
            "features/transactions/purchase.feature".to_string(),
            "features/close-of-day/settlement.feature".to_string(),
        ]
    )]
    pub features: Vec<String>,

    /// Tag expression of the scenarios to run
    #[arg(long, default_value = "not @hil", value_name = "EXPR")]
    pub tags: String,

    /// Items of a generated plan, at most
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_items: u32,

    /// Re-runs the shrinker may spend on one violation
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub shrink_budget: u32,

    /// Replay this plan (JSON, as a violation wrote it) once with --seed
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,

    /// Directory for the plans of violations, chaos.json and the last run's files
    #[arg(long, default_value = "target/poslab-chaos", value_name = "DIR")]
    pub out: PathBuf,

    /// MUTATION TESTING ONLY: the reference terminal skips the reversal of a request whose
    /// answer it did not get (money-unsafe), to prove that chaos finds and shrinks it
    #[arg(long)]
    pub unsafe_no_reversal: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let bench = super::run::load_bench(args.bench.as_deref())?;
    let plan = match &args.plan {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            Some(
                serde_json::from_str::<FaultPlan>(&text)
                    .map_err(|e| anyhow::anyhow!("{}: not a fault plan: {e}", p.display()))?,
            )
        }
        None => None,
    };
    if args.unsafe_no_reversal {
        println!("WARNING: --unsafe-no-reversal: the terminal does not reverse unanswered requests (mutation testing of the money checks)");
    }
    let spec = ChaosSpec {
        bench,
        bench_arg: args.bench.as_ref().map(|p| p.display().to_string()),
        features: args.features.clone(),
        tags: Some(args.tags.clone()),
        seed: args.seed,
        runs: args.runs,
        max_items: args.max_items,
        shrink_budget: args.shrink_budget,
        plan,
        out: args.out.clone(),
        unsafe_no_reversal: args.unsafe_no_reversal,
    };
    let report = spec.run(|line| println!("{line}"))?;
    let runs = report.runs.len();
    let per_minute = runs as f64 * 60.0 / report.elapsed.as_secs_f64().max(1e-9);
    println!(
        "\n{runs} run(s), {} money violation(s) ({:.1} s, {per_minute:.1} runs/min, seeds {}..={}); report: {}",
        report.findings.len(),
        report.elapsed.as_secs_f64(),
        args.seed,
        args.seed.wrapping_add(runs.saturating_sub(1) as u64),
        args.out.join("chaos.json").display()
    );
    Ok(if report.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
