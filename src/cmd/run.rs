//! `poslab run`: the feature suite against a bench.

use std::path::PathBuf;
use std::process::ExitCode;

use poslab_bench::Bench;

use crate::run::runner::{self, RunSpec};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Feature files or directories (`FILE:LINE` runs one scenario)
    #[arg(default_value = "features", value_name = "PATHS")]
    pub paths: Vec<String>,

    /// Bench file (default: scenarios/default.yaml, every node emulated, simulated time)
    #[arg(long, value_name = "FILE")]
    pub bench: Option<PathBuf>,

    /// Tag expression, e.g. "@smoke and not @hil"
    #[arg(long, value_name = "EXPR")]
    pub tags: Option<String>,

    /// Seed of every random choice of the run (printed with every failure)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,

    /// Write a JUnit XML report here
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write a Cucumber JSON report here
    #[arg(long, value_name = "FILE")]
    pub cucumber_json: Option<PathBuf>,

    /// Directory for the HTML evidence report (report.html) and the scenarios' work files
    #[arg(long, default_value = "target/poslab-run", value_name = "DIR")]
    pub out: PathBuf,

    /// Run the K-th of N shards (1-based), e.g. 2/4
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,

    /// Print only the summary
    #[arg(long)]
    pub quiet: bool,
}

pub fn load_bench(path: Option<&std::path::Path>) -> anyhow::Result<Bench> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            Ok(Bench::load(&p.display().to_string(), &text)?)
        }
        None => Ok(Bench::load(
            "scenarios/default.yaml",
            include_str!("../../scenarios/default.yaml"),
        )?),
    }
}

pub fn parse_shard(text: &str) -> anyhow::Result<(u32, u32)> {
    let (k, n) = text
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("--shard {text}: expected K/N, e.g. 1/4"))?;
    let (k, n): (u32, u32) = (
        k.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--shard {text}: K is not a number"))?,
        n.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--shard {text}: N is not a number"))?,
    );
    if n == 0 || k == 0 || k > n {
        anyhow::bail!("--shard {text}: K must be between 1 and N");
    }
    Ok((k, n))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let bench = load_bench(args.bench.as_deref())?;
    let spec = RunSpec {
        paths: args.paths.clone(),
        bench,
        tags: args.tags.clone(),
        seed: args.seed,
        out: args.out.clone(),
        shard: args.shard.as_deref().map(parse_shard).transpose()?,
        replay_prefix: "poslab run".into(),
        bench_arg: args.bench.as_ref().map(|p| p.display().to_string()),
        quiet: args.quiet,
    };
    let report = runner::run(spec)?;
    let html = args.out.join("report.html");
    crate::report::write_all(
        &report,
        args.junit.as_deref(),
        args.cucumber_json.as_deref(),
        Some(&html),
    )?;
    let (passed, failed, other) = report.counts();
    println!(
        "\n{} scenarios: {passed} passed, {failed} failed, {other} undefined or skipped ({:.1} s, bench {}, {} time, seed {})",
        passed + failed + other,
        report.duration.as_secs_f64(),
        report.bench,
        report.time,
        report.seed
    );
    println!("evidence: {}", html.display());
    if passed + failed + other == 0 {
        eprintln!("poslab: no scenario matched");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
