use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = poslab::cli::Cli::parse();
    poslab::cli::init_tracing(&cli.log);
    match poslab::cmd::dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("poslab: {err:#}");
            ExitCode::from(2)
        }
    }
}
