//! What every kernel declares beside its source: the variant it implements, the ops and dtypes it
//! serves, its output tile, and how its backend runs it. Each backend keeps one table of these
//! next to the kernel sources (`kernels/wgsl/specs.rs`, `kernels/cuda/specs.rs`); variant lists,
//! tiles, kernel file lists and the kernel tests are all read from the tables, so a new kernel is
//! its source file and one table entry.

use super::Variant;
use crate::model::dtype::DType;
use crate::model::ops::{MemoryKind, Op, OpClass};

/// A kernel source file, embedded in the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// The file name under `kernels/<backend>/`.
    pub file: &'static str,
    pub text: &'static str,
}

/// The ops a kernel serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    Matmul,
    Attention,
    /// The memory-bound ops of these kinds.
    Memory(&'static [MemoryKind]),
    /// The gated-delta-rule scan.
    Scan,
}

impl Serves {
    pub fn class(self) -> OpClass {
        match self {
            Serves::Matmul => OpClass::Matmul,
            Serves::Attention => OpClass::Attention,
            Serves::Memory(_) => OpClass::Memory,
            Serves::Scan => OpClass::Scan,
        }
    }

    pub fn covers(self, op: &Op) -> bool {
        match (self, op) {
            (Serves::Matmul, Op::Matmul(_))
            | (Serves::Attention, Op::Attention(_))
            | (Serves::Scan, Op::Scan(_)) => true,
            (Serves::Memory(kinds), Op::Memory(m)) => kinds.contains(&m.kind),
            _ => false,
        }
    }
}

/// One kernel implementation as its backend declares it. `K` is the backend's part: the
/// sources, entry points and dispatch rule.
#[derive(Clone, Copy)]
pub struct KernelSpec<K: 'static> {
    /// The name results records carry ("backend:variant"), the idea, vendor or ours, the tile.
    pub variant: Variant,
    pub serves: Serves,
    /// The op dtypes it runs (a matmul's input dtype).
    pub dtypes: &'static [DType],
    /// Shape limits beyond the op class and dtype (e.g. one query row for split-KV decode).
    pub accepts: fn(&Op) -> bool,
    pub kernel: K,
}

impl<K> KernelSpec<K> {
    /// Whether this kernel is offered for `op`.
    pub fn takes(&self, op: &Op) -> bool {
        self.implements(op) && (self.accepts)(op)
    }

    /// Whether this kernel is what its variant name means for `op`'s class and dtype, shape
    /// limits aside (two kernels may share a name across dtypes, as cuBLAS does).
    pub fn implements(&self, op: &Op) -> bool {
        self.serves.covers(op) && self.dtypes.contains(&op.dtype())
    }
}

/// No shape limit beyond the class and dtype.
pub fn any_shape(_: &Op) -> bool {
    true
}

/// The kernel of `table` that `variant` names for `op`.
pub fn find<'a, K>(
    table: &'a [KernelSpec<K>],
    variant: &str,
    op: &Op,
) -> Option<&'a KernelSpec<K>> {
    table
        .iter()
        .find(|s| s.variant.name == variant && s.implements(op))
}

/// The variant names of `table` for `op`'s class and dtype, in table order, each once (for error
/// messages).
pub fn names_for<K>(table: &[KernelSpec<K>], op: &Op) -> String {
    let mut names: Vec<&str> = Vec::new();
    for s in table.iter().filter(|s| s.implements(op)) {
        if !names.contains(&s.variant.name) {
            names.push(s.variant.name);
        }
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The tile `table` declares for `variant` on ops of `class`.
pub fn tile<K>(table: &[KernelSpec<K>], variant: &str, class: OpClass) -> Option<(u32, u32)> {
    table
        .iter()
        .find(|s| s.variant.name == variant && s.serves.class() == class)?
        .variant
        .tile
}

/// The distinct files among `sources`, first seen first.
pub fn unique_sources(sources: impl IntoIterator<Item = Source>) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for s in sources {
        if !out.iter().any(|o| o.file == s.file) {
            out.push(s);
        }
    }
    out
}
