//! One module per subcommand: its `Args` (clap) and its `run`.

use std::process::ExitCode;

use crate::cli::Command;

pub mod decode;
pub mod host;
pub mod load;

pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Host(args) => host::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Load(args) => load::run(args),
    }
}
