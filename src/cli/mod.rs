//! The command line: one file per subcommand. Errors leave here as `anyhow` with context; a
//! `crate::Error` anywhere in the chain means the user's input was at fault (exit code 2).

/// `writeln!` into a String, which cannot fail.
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

mod args;
#[cfg(feature = "measure")]
mod bench;
#[cfg(feature = "measure")]
mod bench_collective;
#[cfg(feature = "measure")]
mod calibrate;
#[cfg(feature = "measure")]
mod compose;
#[cfg(feature = "measure")]
mod devices;
mod format;
mod frontier;
mod frontier_plot;
mod hw;
#[cfg(feature = "measure")]
mod plot;
mod predict;
mod predict_op;
#[cfg(feature = "measure")]
mod report;
#[cfg(feature = "measure")]
mod results;
mod score;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "gpucost",
    version,
    about = "What a transformer costs on a GPU: training step, time to first token, time per token, memory, energy, dollars."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Predict training and inference cost of a model on a GPU.
    Predict(predict::PredictArgs),
    /// Predict the cost of one matmul or attention kernel.
    PredictOp(predict_op::PredictOpArgs),
    /// Price and rank every candidate of a search space: the Pareto frontier.
    Frontier(frontier::FrontierArgs),
    /// Score candidates for an optimizer: JSON Lines in on stdin, one line of objectives out each.
    Score(score::ScoreArgs),
    /// The hardware catalog.
    #[command(subcommand)]
    Hw(hw::HwCommand),
    /// Every backend and adapter, and why a missing one is missing.
    #[cfg(feature = "measure")]
    Devices(devices::DevicesArgs),
    /// Check, then time, kernel variants over a shape set; write the results.
    #[cfg(feature = "measure")]
    Bench(bench::BenchArgs),
    /// Summarise results files, each kernel beside the vendor library.
    #[cfg(feature = "measure")]
    Report(report::ReportArgs),
    /// Combine results folders (from several machines) into one.
    #[command(subcommand)]
    #[cfg(feature = "measure")]
    Results(results::ResultsCommand),
    /// Fit the cost model to measured results; write gpucost-calibrations/<profile>.calibration.json.
    #[cfg(feature = "measure")]
    Calibrate(calibrate::CalibrateArgs),
    /// Predictions against measurements: published cluster throughput (--published), or
    /// leave-one-out validation of the kernel calibration against the roofline (--results).
    Validate(validate::ValidateArgs),
    /// SVG charts of results: the roofline, or held-out predictions against measurements.
    #[command(subcommand)]
    #[cfg(feature = "measure")]
    Plot(plot::PlotCommand),
    /// Run a transformer block on the device; compare its time with the sum of op predictions.
    #[cfg(feature = "measure")]
    Compose(compose::ComposeArgs),
}

/// Output format shared by every subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Writes a command's output to stdout. A closed pipe (`gpucost ... | head`) is not an error.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Predict(args) => predict::run(args),
        Command::PredictOp(args) => predict_op::run(args),
        Command::Frontier(args) => frontier::run(args),
        Command::Score(args) => score::run(args),
        Command::Hw(cmd) => hw::run(cmd),
        #[cfg(feature = "measure")]
        Command::Devices(args) => devices::run(args),
        #[cfg(feature = "measure")]
        Command::Bench(args) => bench::run(args),
        #[cfg(feature = "measure")]
        Command::Report(args) => report::run(args),
        #[cfg(feature = "measure")]
        Command::Results(cmd) => results::run(cmd),
        #[cfg(feature = "measure")]
        Command::Calibrate(args) => calibrate::calibrate(args),
        Command::Validate(args) => validate::run(args),
        #[cfg(feature = "measure")]
        Command::Plot(cmd) => plot::run(cmd),
        #[cfg(feature = "measure")]
        Command::Compose(args) => compose::run(args),
    }
}
