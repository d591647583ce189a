//! Bring your own quality: losses (or any lower-is-better quality figure) a team measured on
//! models it trained, keyed by the space's fields, replacing the scaling-law proxy for the
//! candidates they match. JSON Lines (`{"layers": 24, "hidden_size": 2048, "loss": 2.41}`) or CSV
//! with a header row (`layers,hidden_size,loss`).

use crate::error::{Error, Result};
use crate::model::frontier::space::{Field, Value};

/// The most measured rows read (a team trains tens to thousands of models, not millions).
pub const MAX_ROWS: usize = 1_000_000;

/// One measured model: the field values it was trained with, and its loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub fields: Vec<(Field, Value)>,
    pub loss: f64,
}

/// Reads measured losses from `text` (JSONL, or CSV when `file` ends in `.csv`), naming the
/// file, line and column on any mistake.
pub fn parse(file: &str, text: &str) -> Result<Vec<Measured>> {
    let rows = if file.ends_with(".csv") {
        parse_csv(file, text)?
    } else {
        parse_jsonl(file, text)?
    };
    if rows.is_empty() {
        return Err(Error::field(file, "rows", "no measured losses"));
    }
    if rows.len() > MAX_ROWS {
        return Err(Error::field(
            file,
            "rows",
            format!("{} rows, more than {MAX_ROWS}", rows.len()),
        ));
    }
    for (i, a) in rows.iter().enumerate() {
        if rows[..i].iter().any(|b| b.fields == a.fields) {
            return Err(Error::field(
                file,
                &format!("row {}", i + 1),
                "the same fields are measured twice",
            ));
        }
    }
    Ok(rows)
}

fn row(
    file: &str,
    line: usize,
    cells: impl Iterator<Item = (String, serde_json::Value)>,
) -> Result<Measured> {
    let at = |key: &str| format!("line {line}: {key}");
    let (mut fields, mut loss) = (Vec::new(), None);
    for (key, v) in cells {
        if key == "loss" {
            match v.as_f64() {
                Some(l) if l.is_finite() && l > 0.0 => loss = Some(l),
                _ => return Err(Error::field(file, &at("loss"), "must be a positive number")),
            }
            continue;
        }
        let field =
            Field::by_name(&key).ok_or_else(|| Error::field(file, &at(&key), "unknown field"))?;
        let v = Value::from_json(field, &v).map_err(|e| Error::field(file, &at(&key), e))?;
        fields.push((field, v));
    }
    let loss = loss.ok_or_else(|| Error::field(file, &at("loss"), "missing"))?;
    if fields.is_empty() {
        return Err(Error::field(file, &at("fields"), "names no field"));
    }
    fields.sort_by_key(|(f, _)| Field::ALL.iter().position(|x| x == f));
    Ok(Measured { fields, loss })
}

fn parse_jsonl(file: &str, text: &str) -> Result<Vec<Measured>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| Error::field(file, &format!("line {}", i + 1), e.to_string()))?;
        rows.push(row(file, i + 1, map.into_iter())?);
    }
    Ok(rows)
}

fn parse_csv(file: &str, text: &str) -> Result<Vec<Measured>> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = header.split(',').map(|s| s.trim().to_string()).collect();
    let mut rows = Vec::new();
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != names.len() {
            return Err(Error::field(
                file,
                &format!("line {}", i + 1),
                format!("{} cells, the header has {}", cells.len(), names.len()),
            ));
        }
        // A cell is a number where it reads as one, else text (a dtype).
        let values = names.iter().zip(cells).map(|(n, c)| {
            let v = serde_json::from_str::<serde_json::Value>(c)
                .ok()
                .filter(serde_json::Value::is_number)
                .unwrap_or_else(|| serde_json::Value::String(c.to_string()));
            (n.clone(), v)
        });
        rows.push(row(file, i + 1, values)?);
    }
    Ok(rows)
}

/// The measured loss of the candidate whose field values are `value_of(field)`, if a row's
/// every field matches.
pub fn lookup(rows: &[Measured], value_of: impl Fn(Field) -> Option<Value>) -> Option<f64> {
    rows.iter()
        .find(|r| r.fields.iter().all(|(f, v)| value_of(*f) == Some(*v)))
        .map(|r| r.loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_and_csv_read_alike() {
        let j = parse(
            "l.jsonl",
            "{\"layers\": 24, \"mlp_ratio\": 3.5, \"loss\": 2.4}\n\n{\"layers\": 32, \"mlp_ratio\": 3.5, \"loss\": 2.3}\n",
        )
        .unwrap();
        let c = parse("l.csv", "layers,mlp_ratio,loss\n24,3.5,2.4\n32,3.5,2.3\n").unwrap();
        assert_eq!(j, c);
        let at = |layers| {
            lookup(&j, |f| match f {
                Field::Layers => Some(Value::Int(layers)),
                Field::MlpRatio => Some(Value::Ratio(3.5)),
                _ => None,
            })
        };
        assert_eq!(at(32), Some(2.3));
        assert_eq!(at(16), None);
    }

    #[test]
    fn mistakes_name_the_line_and_field() {
        let e = parse("l.jsonl", "{\"layers\": 24}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1: loss") && e.contains("missing"), "{e}");
        let e = parse("l.jsonl", "{\"depth\": 2, \"loss\": 2}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1: depth"), "{e}");
        let e = parse("l.csv", "layers,loss\n24\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("header has 2"), "{e}");
        let e = parse("l.csv", "layers,loss\n24,2.1\n24,2.2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("measured twice"), "{e}");
        let e = parse("l.jsonl", "{\"layers\": 24, \"loss\": -1}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("positive"), "{e}");
    }
}
