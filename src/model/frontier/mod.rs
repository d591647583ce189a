//! The architecture frontier: a search space of candidates (`space`), their objectives from the
//! cost model and a scaling law (`objectives`, `quality`), and the Pareto ranking over them
//! (`pareto`, `search`) — which architectures are worth training, without training any.

pub mod measured;
pub mod objectives;
pub mod pareto;
pub mod quality;
pub mod search;
pub mod space;
