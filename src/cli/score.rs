//! `gpucost score --space SPACE.toml`: a JSON Lines stream for optimizers. Each line on stdin is
//! one candidate — an object of space fields ("layers", "hidden_size", "dtype", …; fields left
//! out keep the space's base model and workload) — and each answer on stdout is one line of
//! objectives, in order, flushed per line. A bad line gets `{"error": "..."}` and the stream goes
//! on. The answers are `api::Scoring`'s, as the Python package's are.

use crate::api::{Reply, Scoring, SpaceSource, load_space};
use anyhow::Result;
use clap::Args;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The space whose base model, workload and quality law candidates are scored under.
    #[arg(long)]
    space: PathBuf,
    #[command(flatten)]
    system: super::frontier::SystemArgs,
}

/// The longest line read (a candidate is a few hundred bytes).
const MAX_LINE: usize = 1 << 16;

pub fn run(a: ScoreArgs) -> Result<()> {
    let (space, system) = load_space(SpaceSource::File(&a.space), &a.system.options())?;
    let mut scoring = Scoring::new(&space, &system);
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    // One buffer for every answer: a line is serialized into it, then written and flushed whole.
    let mut buf = Vec::with_capacity(1024);
    for (n, line) in stdin.split(b'\n').enumerate() {
        let line = line?;
        let at = || format!("line {}", n + 1);
        let answer = if line.len() > MAX_LINE {
            Reply::error(&at(), &format!("longer than {MAX_LINE} bytes"))
        } else if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        } else {
            scoring.answer_or_error(&line, at)
        };
        buf.clear();
        serde_json::to_writer(&mut buf, &answer)?;
        buf.push(b'\n');
        let written = out.write_all(&buf).and_then(|()| out.flush());
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            r => r?,
        }
    }
    Ok(())
}
