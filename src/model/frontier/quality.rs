//! The quality proxy: predicted loss from a parametric scaling law L(N, D) = E + A/N^α + B/D^β,
//! with N parameters trained on D tokens.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A scaling law's coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScalingLaw {
    pub e: f64,
    pub a: f64,
    pub b: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl ScalingLaw {
    /// Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", §3.3 (Approach 3):
    /// E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28.
    pub const HOFFMANN: ScalingLaw = ScalingLaw {
        e: 1.69,
        a: 406.4,
        b: 410.7,
        alpha: 0.34,
        beta: 0.28,
    };

    /// Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt", the refit of
    /// Approach 3: E = 1.8172, A = 482.01, B = 2085.43, α = 0.3478, β = 0.3658.
    pub const BESIROGLU: ScalingLaw = ScalingLaw {
        e: 1.8172,
        a: 482.01,
        b: 2085.43,
        alpha: 0.3478,
        beta: 0.3658,
    };

    /// A law by name: "hoffmann" (also "chinchilla") or "besiroglu".
    pub fn named(name: &str) -> Option<ScalingLaw> {
        match name {
            "hoffmann" | "chinchilla" => Some(ScalingLaw::HOFFMANN),
            "besiroglu" => Some(ScalingLaw::BESIROGLU),
            _ => None,
        }
    }

    /// The predicted loss of `n` parameters trained on `d` tokens.
    pub fn loss(&self, n: f64, d: f64) -> f64 {
        self.e + self.a / n.powf(self.alpha) + self.b / d.powf(self.beta)
    }

    /// Refuses coefficients that give no finite, meaningful loss, naming `file`.
    pub fn validate(&self, file: &str) -> Result<()> {
        let all = [
            ("e", self.e),
            ("a", self.a),
            ("b", self.b),
            ("alpha", self.alpha),
            ("beta", self.beta),
        ];
        for (name, v) in all {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::field(
                    file,
                    &format!("quality.{name}"),
                    format!("must be a finite, non-negative number, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// The parameter count a law is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParameterCount {
    /// Every parameter, embeddings included.
    Total,
    /// Without the embedding tables and an untied head.
    NonEmbedding,
    /// What one token touches (for mixture-of-experts: the routed top-k experts).
    Active,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_laws_give_the_hand_computed_losses() {
        // 70B parameters on 1.4T tokens (Chinchilla): 1.69 + 406.4/70e9^0.34 + 410.7/1.4e12^0.28.
        let h = ScalingLaw::HOFFMANN.loss(70e9, 1.4e12);
        let by_hand = 1.69 + 406.4 / 70e9f64.powf(0.34) + 410.7 / 1.4e12f64.powf(0.28);
        assert!((h - by_hand).abs() < 1e-12);
        assert!((h - 1.9366).abs() < 1e-3, "{h}"); // 1.69 + 0.0835 + 0.1631
        let b = ScalingLaw::BESIROGLU.loss(1e9, 20e9);
        let by_hand = 1.8172 + 482.01 / 1e9f64.powf(0.3478) + 2085.43 / 20e9f64.powf(0.3658);
        assert!((b - by_hand).abs() < 1e-12);
        assert!((b - 2.5301).abs() < 1e-3, "{b}"); // 1.8172 + 0.3569 + 0.3560
    }

    #[test]
    fn more_parameters_or_tokens_never_raise_the_loss() {
        let l = ScalingLaw::HOFFMANN;
        assert!(l.loss(2e9, 1e11) < l.loss(1e9, 1e11));
        assert!(l.loss(1e9, 2e11) < l.loss(1e9, 1e11));
        assert!(ScalingLaw::named("chinchilla") == Some(ScalingLaw::HOFFMANN));
        assert!(ScalingLaw::named("kaplan").is_none());
    }
}
