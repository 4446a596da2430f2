//! The one integration test binary: a module per area.

mod cli_help;
mod peers;
mod sans_io;
