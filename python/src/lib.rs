//! `gpucost._gpucost`: the native half of the Python package. Each function takes plain values
//! and JSON text, calls `gpucost::api` (the code behind `gpucost predict`, `frontier` and
//! `score`), and returns JSON text that `gpucost/__init__.py` turns into dicts. The work runs
//! with the Python interpreter released, so other Python threads go on meanwhile.

use gpucost::api::{self, PredictRequest, Scoring, SpaceSource, SystemOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::Path;

/// A refusal as `ValueError`, with the one line the command line prints after "error: ".
fn refused(e: gpucost::Error) -> PyErr {
    PyValueError::new_err(e.to_string().replace('\n', " "))
}

fn internal(e: serde_json::Error) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(e.to_string())
}

/// The space from a path or from TOML text (the wrapper passes exactly one).
fn source<'a>(space_path: Option<&'a str>, space_toml: Option<&'a str>) -> SpaceSource<'a> {
    match (space_path, space_toml) {
        (Some(p), _) => SpaceSource::File(Path::new(p)),
        (None, t) => SpaceSource::Text {
            name: "space_toml",
            toml: t.unwrap_or(""),
        },
    }
}

/// The space (a path or TOML text) and the system it is priced on, as `score` and `frontier`
/// take them.
fn load_space(
    space_path: Option<String>,
    space_toml: Option<String>,
    hw: Option<String>,
    roofline: bool,
    stack: String,
) -> PyResult<(
    gpucost::model::frontier::space::Space,
    gpucost::model::system::System,
)> {
    let opts = SystemOptions {
        hw,
        roofline,
        stack,
    };
    api::load_space(source(space_path.as_deref(), space_toml.as_deref()), &opts).map_err(refused)
}

/// Scores each candidate (JSON text of an object of space fields); returns a JSON array with one
/// answer per candidate, in order: the objectives, or `{"error": "candidate I: why"}`.
#[pyfunction]
#[pyo3(signature = (candidates, space_path, space_toml, hw, roofline, stack))]
fn score(
    py: Python<'_>,
    candidates: Vec<String>,
    space_path: Option<String>,
    space_toml: Option<String>,
    hw: Option<String>,
    roofline: bool,
    stack: String,
) -> PyResult<String> {
    py.detach(|| {
        let (space, system) = load_space(space_path, space_toml, hw, roofline, stack)?;
        let mut scoring = Scoring::new(&space, &system);
        let answers: Vec<gpucost::api::Reply> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| scoring.answer_or_error(c.as_bytes(), || format!("candidate {i}")))
            .collect();
        serde_json::to_string(&answers).map_err(internal)
    })
}

/// The `gpucost predict --format json` document for a request (JSON text of `PredictRequest`).
#[pyfunction]
fn predict(py: Python<'_>, request: String) -> PyResult<String> {
    py.detach(|| {
        let request = PredictRequest::from_json(&request).map_err(refused)?;
        let p = request.run().map_err(refused)?;
        // The warnings the command line prints on stderr go beside the document.
        serde_json::to_string(&(&p.estimate, &p.warnings)).map_err(internal)
    })
}

/// The `gpucost predict --search-parallelism --format json` document: the `top` fastest
/// layouts of `gpus` GPUs that fit, for a request (JSON text of `PredictRequest`).
#[pyfunction]
fn search_layouts(py: Python<'_>, request: String, gpus: u64, top: usize) -> PyResult<String> {
    py.detach(|| {
        let request = PredictRequest::from_json(&request).map_err(refused)?;
        let doc = request.search_layouts(gpus, top).map_err(refused)?;
        serde_json::to_string(&doc).map_err(internal)
    })
}

/// The `gpucost predict --offline-throughput --format json` document, for a request (JSON text
/// of `PredictRequest`).
#[pyfunction]
fn offline_throughput(py: Python<'_>, request: String) -> PyResult<String> {
    py.detach(|| {
        let request = PredictRequest::from_json(&request).map_err(refused)?;
        let doc = request.offline_throughput().map_err(refused)?;
        serde_json::to_string(&doc).map_err(internal)
    })
}

/// The `gpucost frontier --format json` document: the first `top` candidates (0: all).
#[pyfunction]
#[pyo3(signature = (space_path, space_toml, hw, roofline, stack, top))]
fn frontier(
    py: Python<'_>,
    space_path: Option<String>,
    space_toml: Option<String>,
    hw: Option<String>,
    roofline: bool,
    stack: String,
    top: usize,
) -> PyResult<String> {
    py.detach(|| {
        let (space, system) = load_space(space_path, space_toml, hw, roofline, stack)?;
        let doc = api::frontier(&space, &system, top).map_err(refused)?;
        serde_json::to_string(&doc).map_err(internal)
    })
}

#[pymodule]
fn _gpucost(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    m.add_function(wrap_pyfunction!(frontier, m)?)?;
    m.add_function(wrap_pyfunction!(search_layouts, m)?)?;
    m.add_function(wrap_pyfunction!(offline_throughput, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
