//! The one integration test binary: a module per area.

mod bench;
mod card;
mod chaos;
mod cli_help;
mod crypto_peer;
mod decode;
mod determinism;
mod ecr;
mod host;
mod http;
mod iso8583_peer;
mod peers;
mod printer;
mod proxy;
mod run;
mod sans_io;
mod security;
mod tms;
