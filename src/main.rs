//! The `gpucost` binary: parse the command line and dispatch; the work lives in the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = gpucost::cli::Cli::parse();
    match gpucost::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("error: {}", msg.replace('\n', " "));
            // A user's mistake (bad file, flag or name) exits 2; anything else is our failure.
            if e.chain().any(|c| c.is::<gpucost::Error>()) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
