//! One module per subcommand: its `Args` (clap) and its `run`.

use std::process::ExitCode;

use crate::cli::Command;

pub mod card;
pub mod chaos;
pub mod decode;
pub mod ecr;
pub mod host;
pub mod load;
pub mod printer;
pub mod proxy;
pub mod run;
pub mod schema;
pub mod steps;
pub mod terminal;
pub mod tms;
pub mod zvt_terminal;

pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Host(args) => host::run(args),
        Command::Decode(args) => decode::run(args),
        Command::Load(args) => load::run(args),
        Command::Printer(args) => printer::run(args),
        Command::Card(args) => card::run(args),
        Command::Ecr(args) => ecr::run(args),
        Command::ZvtTerminal(args) => zvt_terminal::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Run(args) => run::run(args),
        Command::Terminal(args) => terminal::run(args),
        Command::Tms(args) => tms::run(args),
        Command::Steps(args) => steps::run(args),
        Command::Chaos(args) => chaos::run(args),
    }
}
