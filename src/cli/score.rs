//! `gpucost score --space SPACE.toml`: a JSON Lines stream for optimizers. Each line on stdin is
//! one candidate — an object of space fields ("layers", "hidden_size", "dtype", …; fields left
//! out keep the space's base model and workload) — and each answer on stdout is one line of
//! objectives, in order, flushed per line. A bad line gets `{"error": "..."}` and the stream goes
//! on.

use crate::model::frontier::objectives::{Objective, score, use_measured_loss};
use crate::model::frontier::space::{Axis, Field, Space, Value};
use crate::model::plan::{Plan, plan_into};
use crate::model::price::{Pricer, price};
use crate::model::schema;
use crate::model::system::System;
use anyhow::Result;
use clap::Args;
use serde_json::{Map, json};
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
    let (space, system) = super::frontier::load(&a.space, &a.system)?;
    let mut pricer = Pricer::new(&system);
    // One copy of the space whose axes each line replaces (a clone per line would dominate).
    let mut one = space.clone();
    let mut plan = Plan::default();
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    for (n, line) in stdin.split(b'\n').enumerate() {
        let line = line?;
        let answer = if line.len() > MAX_LINE {
            json!({"error": format!("line {}: longer than {MAX_LINE} bytes", n + 1)})
        } else if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        } else {
            match answer(&mut one, &system, &mut pricer, &mut plan, &line) {
                Ok(v) => v,
                Err(e) => json!({"error": format!("line {}: {e}", n + 1)}),
            }
        };
        let written = serde_json::to_writer(&mut out, &answer)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            r => r?,
        }
    }
    Ok(())
}

/// The objectives of one candidate line, or why it cannot be scored.
fn answer(
    one: &mut Space,
    system: &System,
    pricer: &mut Pricer,
    plan: &mut Plan,
    line: &[u8],
) -> std::result::Result<serde_json::Value, String> {
    let fields: Map<String, serde_json::Value> =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object: {e}"))?;
    one.axes.clear();
    for (key, v) in &fields {
        let field = Field::by_name(key).ok_or_else(|| format!("{key}: unknown field"))?;
        let value = Value::from_json(field, v).map_err(|e| format!("{key}: {e}"))?;
        one.axes.push(Axis {
            field,
            values: vec![value],
        });
    }
    let point = vec![0u32; one.axes.len()];
    let (arch, execution) = one.realize(&point)?;
    // `realize` checked the model and the execution.
    plan_into(plan, &arch, &execution);
    let cost = price(&arch, &execution, plan, pricer).map_err(|e| e.to_string())?;
    let mut s = score(one, &arch, &execution, &cost, &system.hw);
    if let Some(loss) = one.measured_loss(&point) {
        use_measured_loss(&mut s, loss);
    }
    let objectives = super::frontier::objectives_json(Some(&s));
    let bars: Map<String, serde_json::Value> = Objective::ALL
        .iter()
        .filter(|o| s.bar(**o) > 0.0)
        .map(|o| (o.name().to_string(), json!(s.bar(*o))))
        .collect();
    Ok(json!({
        "schema_version": schema::SCORE,
        "objectives": objectives,
        "error_pct": bars,
        "fits_training": s.fits_training,
        "fits_serving": s.fits_serving,
        "loss_source": if s.loss_measured { "measured" } else { "scaling_law" },
    }))
}
