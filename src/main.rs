use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = poslab::cli::Cli::parse();
    // a feature run prints its own progress; its devices only speak up when something is wrong
    let filter = match (&cli.command, cli.log.as_str()) {
        (poslab::cli::Command::Run(_), "info") => "warn",
        (poslab::cli::Command::Chaos(_), "info") => "error",
        (_, f) => f,
    };
    poslab::cli::init_tracing(filter);
    match poslab::cmd::dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("poslab: {err:#}");
            ExitCode::from(2)
        }
    }
}
