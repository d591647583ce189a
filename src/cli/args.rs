//! Flag values every subcommand resolves the same way, once, with one clear line on a mistake
//! (clap's own errors span several lines, so values are taken as text and checked here).

use crate::error::Error;
use crate::model::ops::limits;

#[cfg(feature = "measure")]
pub use crate::api::flags::positive;
pub use crate::api::flags::{bounded, dtype, stack};

/// How the work is split over GPUs (docs/clusters.md): shared by the commands that predict.
#[derive(Debug, Clone, clap::Args)]
pub struct LayoutArgs {
    /// Tensor-parallel ranks (each layer's matmuls split over them).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub tp: i64,
    /// Pipeline stages.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub pp: i64,
    /// Data-parallel replicas: `--batch` is the global batch over them (training); serving
    /// replicas, each with `--batch` sequences (serving). Default 1, or what `--gpus` leaves.
    #[arg(long, allow_negative_numbers = true)]
    pub dp: Option<i64>,
    /// Expert-parallel ranks (MoE; out of the data-parallel ranks; training).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub ep: i64,
    /// Context-parallel ranks (each sequence split; training).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub cp: i64,
    /// Sequences per microbatch per data-parallel rank (default: the whole local batch without a
    /// pipeline, 1 with one).
    #[arg(long, allow_negative_numbers = true)]
    pub micro_batch: Option<i64>,
    /// Model chunks per pipeline stage: the interleaved schedule (1: plain 1F1B).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub virtual_stages: i64,
    /// ZeRO stage over the data-parallel ranks: 0, 1 (optimizer state), 2 (+ gradients), 3
    /// (+ weights; FSDP).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub zero: i64,
    /// Sequence parallelism with --tp: norms and residuals split too.
    #[arg(long)]
    pub sequence_parallel: bool,
    /// Reduce gradients after the backward pass instead of overlapping them with it.
    #[arg(long)]
    pub no_overlap_grad_reduce: bool,
    /// Tokens the busiest expert gets over the balanced share (MoE), from 1.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub expert_imbalance: f64,
    /// GPUs per node (default: the hardware profile's).
    #[arg(long, allow_negative_numbers = true)]
    pub gpus_per_node: Option<i64>,
}

impl LayoutArgs {
    /// The training layout (the serving one takes its tp, pp and dp); with `gpus`, the
    /// data-parallel ranks are what the other groups leave of them.
    pub fn training(
        &self,
        gpus: Option<u64>,
    ) -> Result<crate::model::parallel::Parallelism, Error> {
        use crate::model::parallel::{Parallelism, Zero};
        let ranks = |flag: &str, v: i64| bounded(flag, v, limits::RANKS);
        let pp = ranks("pp", self.pp)?;
        Ok(Parallelism {
            tp: ranks("tp", self.tp)?,
            pp,
            dp: self.data_ranks(gpus)?,
            ep: ranks("ep", self.ep)?,
            cp: ranks("cp", self.cp)?,
            micro_batch: match self.micro_batch {
                Some(m) => bounded("micro-batch", m, limits::TOKENS)?,
                None => 0,
            },
            virtual_stages: ranks("virtual-stages", self.virtual_stages)?,
            zero: u64::try_from(self.zero)
                .ok()
                .and_then(Zero::from_level)
                .ok_or_else(|| {
                    Error::Unsupported(format!("--zero must be 0, 1, 2 or 3, got {}", self.zero))
                })?,
            sequence_parallel: self.sequence_parallel,
            overlap_grad_reduce: !self.no_overlap_grad_reduce,
            expert_imbalance: self.expert_imbalance,
        })
    }

    /// `--dp`, or `--gpus` ÷ (tp × pp × cp); both given, they must agree.
    fn data_ranks(&self, gpus: Option<u64>) -> Result<u64, Error> {
        let ranks = |flag: &str, v: i64| bounded(flag, v, limits::RANKS);
        let dp = self.dp.map(|d| ranks("dp", d)).transpose()?;
        let Some(gpus) = gpus else {
            return Ok(dp.unwrap_or(1));
        };
        let others = [("tp", self.tp), ("pp", self.pp), ("cp", self.cp)]
            .into_iter()
            .try_fold(1u64, |a, (f, v)| {
                Ok::<u64, Error>(a.saturating_mul(ranks(f, v)?))
            })?;
        let implied = gpus / others;
        if implied == 0 || implied * others != gpus || dp.is_some_and(|d| d != implied) {
            return Err(Error::Unsupported(format!(
                "--gpus {gpus} is not --tp x --pp x --cp = {others} times {}",
                match dp {
                    Some(d) => format!("--dp {d}"),
                    None => "a whole number of data-parallel replicas".into(),
                }
            )));
        }
        Ok(implied)
    }

    pub fn gpus_per_node(&self) -> Result<Option<u64>, Error> {
        self.gpus_per_node
            .map(|g| bounded("gpus-per-node", g, limits::RANKS))
            .transpose()
    }
}
