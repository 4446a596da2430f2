//! `poslab schema`: the JSON Schema of bench files (`scenarios/*.yaml`), the same text as
//! the shipped `scenarios/bench.schema.json`, for editors' YAML support. `--check` loads
//! bench files instead and reports every problem (unknown keys and node kinds, a node both
//! emulated and real, addresses and ports, placeholders no node provides, links) as
//! `file:line:column`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Check these bench files instead of printing the schema; exits 1 if any has a problem
    #[arg(long, value_name = "BENCH", num_args = 1..)]
    pub check: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.check.is_empty() {
        std::io::stdout().write_all(poslab_bench::schema_json().as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for path in &args.check {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => {
                eprintln!("{name}: cannot read: {err}");
                failed = true;
                continue;
            }
        };
        match poslab_bench::Bench::load(&name, &text) {
            Ok(bench) => println!(
                "{name}: ok ({} nodes, {} links, {} time)",
                bench.nodes().count(),
                bench.links().len(),
                bench.time_mode()
            ),
            Err(err) => {
                eprintln!("{err}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
