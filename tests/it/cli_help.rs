//! `--help` is what people read first: every command's help is a golden file.

use clap::CommandFactory;
use poslab::cli::Cli;

fn render(cmd: &mut clap::Command) -> String {
    cmd.render_long_help().to_string()
}

#[test]
fn top_level_help() {
    let mut cmd = Cli::command().term_width(100);
    insta::assert_snapshot!("help", render(&mut cmd));
}

#[test]
fn every_subcommand_help() {
    let mut root = Cli::command().term_width(100);
    root.build();
    let names: Vec<String> = root
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "help")
        .collect();
    assert!(!names.is_empty());
    for name in names {
        let sub = root.find_subcommand_mut(&name).expect("listed above");
        let mut sub = sub.clone().term_width(100);
        insta::assert_snapshot!(format!("help_{name}"), render(&mut sub));
    }
}

#[test]
fn the_binary_prints_the_same_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poslab"))
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .expect("run poslab --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Usage: poslab"), "{text}");
    for sub in Cli::command().get_subcommands() {
        assert!(
            text.contains(sub.get_name()),
            "{} missing from --help",
            sub.get_name()
        );
    }
}
