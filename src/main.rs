//! The `gpucost` binary: parse the command line and dispatch; the work lives in the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread exists to read the environment.
    #[cfg(feature = "measure")]
    unsafe {
        gpucost::measure::backend::quiet_vulkan_device_select()
    };
    let cli = match gpucost::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return command_line_error(e),
    };
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

/// Help and version print as clap writes them; a mistake on the command line, which clap spells
/// over several lines with a usage block, becomes one line and exit code 2 like every other
/// refusal.
fn command_line_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    // The message and its details (missing flags, possible values, a tip), without the usage.
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        match line.strip_prefix("tip: ") {
            Some(tip) => parts.push(format!("; {tip}")),
            None if parts.is_empty() => parts.push(line.to_string()),
            None => parts.push(format!(" {line}")),
        }
    }
    let message = parts.concat();
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("error: {message} (see --help)");
    ExitCode::from(2)
}
