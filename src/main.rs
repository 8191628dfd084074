use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bearer_proxy::cli::main(bearer_proxy::cli::Cli::parse())
}
