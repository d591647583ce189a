"""gpucost from Python: what a transformer costs on a GPU.

Functions over the same Rust code as the ``gpucost`` command line, returning plain dicts
equal to the JSON documents it prints:

- ``score(candidates, space=PATH)``: one answer per candidate, like ``gpucost score``;
- ``predict(model, hw, ...)``: like ``gpucost predict --format json``;
- ``frontier(space=PATH)``: like ``gpucost frontier --format json``;
- ``search_layouts(model, hw, gpus, ...)``: like ``gpucost predict --gpus N --search-parallelism
  --format json``, the fastest layouts of N GPUs that fit;
- ``offline_throughput(model, hw, ...)``: like ``gpucost predict --offline-throughput --format
  json``, the serving layout's output tokens per second at full load.

A search space is given either as a path (``space=``) or as TOML text (``space_toml=``).
Refusals (an unknown model, GPU or field, a bad size, a bad space) raise ``ValueError`` with the
message the command line prints; in ``score`` a candidate that cannot be scored gets
``{"error": "candidate I: why"}`` in its slot instead.
"""

import inspect
import json
import math
import operator
import os
import warnings
from collections.abc import Mapping

from . import _gpucost

__all__ = ["score", "predict", "frontier", "search_layouts", "offline_throughput", "__version__"]
__version__ = _gpucost.__version__


def _plain(value):
    """json.dumps fallback: numpy scalars and the like as the Python numbers they hold."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _dumps(value):
    return json.dumps(value, allow_nan=False, default=_plain)


def _space(space, space_toml):
    """(path, text): exactly one of them."""
    if (space is None) == (space_toml is None):
        raise ValueError(
            "give the search space as space=PATH (a TOML file) or space_toml=TEXT, exactly one"
        )
    if space_toml is not None:
        if not isinstance(space_toml, str):
            raise TypeError("space_toml is the text of a space TOML file")
        return None, space_toml
    path = os.fsdecode(os.fspath(space))
    if "\n" in path:
        raise ValueError("space is a path to a TOML file; pass TOML text as space_toml=")
    return path, None


def _stack(roofline, stack):
    if not isinstance(stack, str):
        raise TypeError("stack is a string: production, ours, all, or one implementation")
    if roofline and stack != "production":
        raise ValueError("roofline cannot be used with stack (the roofline prices every op)")
    return stack


def score(candidates, space=None, hw=None, roofline=False, stack="production", *, space_toml=None):
    """Scores candidates of a search space, as ``gpucost score --space SPACE`` does per line.

    candidates: a list of dicts of space fields (``{"layers": 24, "hidden_size": 3072, ...}``);
        fields left out keep the space's base model and workload.
    space: path to a space TOML file; or ``space_toml``: its text (a measured-loss file it names
        is then relative to the current folder).
    hw: a catalog GPU or a profile .toml (default: the space's ``workload.hw``).
    roofline: price with the uncalibrated roofline; stack: which measured implementations price
        ops (production, ours, all, or one).

    Returns one dict per candidate, in order: ``{"schema_version", "objectives", "error_pct",
    "fits_training", "fits_serving", "loss_source"}``, or ``{"error": "candidate I: why"}``.
    Raises ValueError when the space or the system cannot be loaded.
    """
    if isinstance(candidates, (Mapping, str, bytes)):
        raise TypeError("candidates is a list of dicts of space fields")
    path, text = _space(space, space_toml)
    stack = _stack(roofline, stack)
    texts, unencodable = [], {}
    for i, candidate in enumerate(candidates):
        try:
            texts.append(_dumps(candidate))
        except (TypeError, ValueError) as e:
            texts.append("null")
            unencodable[i] = {"error": f"candidate {i}: not JSON: {e}"}
    answers = json.loads(
        _gpucost.score(texts, path, text, None if hw is None else str(hw), bool(roofline), stack)
    )
    for i, error in unencodable.items():
        answers[i] = error
    return answers


def predict(
    model,
    hw,
    dtype="bf16",
    batch=1,
    seq=4096,
    prompt=1024,
    gen=256,
    *,
    kv_dtype=None,
    recompute="none",
    fused_attention=True,
    dropout=False,
    price_per_hour=None,
    roofline=False,
    stack="production",
    calibration=None,
    breakdown=False,
    layout=None,
    gpus_per_node=None,
    speculative_acceptance=None,
):
    """Predicts one architecture on one GPU, as ``gpucost predict --format json`` does.

    model: a short name (``"llama-3-8b"``), a path to a Hugging Face config.json or a native
        .toml, or a Hugging Face config as a dict.
    hw: a catalog GPU (``"h100-sxm"``) or a profile .toml.
    dtype, kv_dtype, batch, seq, prompt, gen, recompute (none, selective, full),
    fused_attention, dropout, price_per_hour, roofline, stack, calibration, breakdown: the command line's
        flags of the same names (``fused_attention=False`` is ``--no-fused-attention``).
    layout: how the training step is split over GPUs, a dict of ``tp``, ``pp``, ``dp``, ``ep``,
        ``cp``, ``micro_batch`` (0: the whole local batch), ``virtual_stages``, ``zero``
        (``"none"``, ``"stage1"``, ``"stage2"``, ``"stage3"``), ``sequence_parallel``,
        ``overlap_grad_reduce``, ``expert_imbalance`` (docs/clusters.md); serving takes its
        tp, pp and dp. gpus_per_node: overrides the profile's.
    speculative_acceptance: decode speculatively with the model's multi-token-prediction
        modules, each drafted token accepted with this probability (``--speculative-acceptance``).

    A context beyond the model's positions gives a ``UserWarning`` (the command line's line).

    Returns the prediction document as a dict. Raises ValueError with the command line's
    message for any input it refuses.
    """
    # Every argument of this call, by name: the defaults live in the signature above only.
    request = _build_request(**locals())
    document, said = json.loads(_gpucost.predict(_request_text(request)))
    for line in said:
        warnings.warn(line, stacklevel=2)
    return document


def _build_request(
    *,
    model,
    hw,
    dtype,
    batch,
    seq,
    prompt,
    gen,
    kv_dtype,
    recompute,
    fused_attention,
    dropout,
    price_per_hour,
    roofline,
    stack,
    calibration,
    breakdown,
    layout,
    gpus_per_node,
    speculative_acceptance,
):
    """The JSON request of ``predict``'s arguments (the Rust side checks every value)."""
    if isinstance(model, Mapping):
        model = dict(model)
    else:
        model = os.fsdecode(os.fspath(model))
    if roofline and (stack != "production" or calibration is not None):
        raise ValueError("roofline cannot be used with calibration or stack")
    if layout is not None and not isinstance(layout, Mapping):
        raise ValueError("layout must be a dict (tp, pp, dp, ...)")
    return {
        "model": model,
        "hw": os.fsdecode(os.fspath(hw)),
        "dtype": dtype,
        "kv_dtype": kv_dtype,
        "batch": batch,
        "seq": seq,
        "prompt": prompt,
        "gen": gen,
        "recompute": recompute,
        "fused_attention": fused_attention,
        "dropout": dropout,
        "price_per_hour": price_per_hour,
        "roofline": roofline,
        "stack": stack,
        "calibration": None if calibration is None else os.fsdecode(os.fspath(calibration)),
        "breakdown": breakdown,
        "layout": {} if layout is None else dict(layout),
        "gpus_per_node": gpus_per_node,
        "speculative_acceptance": speculative_acceptance,
    }


def _request_text(request):
    try:
        return _dumps(request)
    except (TypeError, ValueError) as e:
        bad = [k for k, v in request.items() if isinstance(v, float) and not math.isfinite(v)]
        raise ValueError(f"request: {', '.join(bad) or 'a value'}: {e}") from None


def search_layouts(model, hw, gpus, top=10, **options):
    """The fastest layouts of ``gpus`` GPUs for a training step that fit in memory, as
    ``gpucost predict --gpus N --search-parallelism --format json`` lists them.

    model, hw and the keywords of ``predict`` (dtype, batch, seq, recompute, gpus_per_node, ...)
    set the step; a ``layout`` is not taken (the search chooses it). Returns the document as a
    dict: ``layouts``, fastest first, each with ``parallelism``, ``step_time_s``,
    ``tokens_per_s``, ``mfu``, ``memory_bytes_per_gpu``, ``pipeline_bubble_fraction`` and
    ``communication_fraction``. Raises ValueError when no layout fits.
    """
    if "layout" in options:
        raise ValueError("search_layouts chooses the layout; do not pass one")
    try:
        gpus, top = operator.index(gpus), operator.index(top)
    except TypeError:
        raise ValueError("gpus and top must be integers") from None
    if gpus < 1 or top < 1:
        raise ValueError(f"gpus and top must be positive, got {gpus} and {top}")
    try:
        # predict's signature gives the defaults of what is not passed.
        call = inspect.signature(predict).bind(model, hw, **options)
    except TypeError as e:
        raise ValueError(str(e)) from None
    call.apply_defaults()
    request = _build_request(**call.arguments)
    return json.loads(_gpucost.search_layouts(_request_text(request), gpus, top))


def offline_throughput(model, hw, **options):
    """Output tokens per second of the serving layout at full load, as ``gpucost predict
    --offline-throughput --format json`` gives it: every request ``prompt`` tokens in and ``gen``
    out, as many sequences as the KV cache holds, prefills between decode steps.

    model, hw and the keywords of ``predict`` (dtype, kv_dtype, prompt, gen, layout with tp and
    pp, ...) set the serving side. Returns the document as a dict; its ``offline`` entry holds
    ``concurrency``, ``output_tokens_per_s``, ``output_tokens_per_s_per_gpu``,
    ``decode_step_s``, ``prefill_s_per_request``, ``kv_bytes_per_sequence`` and ``error_pct``.
    Raises ValueError when not one sequence fits beside the weights.
    """
    try:
        call = inspect.signature(predict).bind(model, hw, **options)
    except TypeError as e:
        raise ValueError(str(e)) from None
    call.apply_defaults()
    request = _build_request(**call.arguments)
    return json.loads(_gpucost.offline_throughput(_request_text(request)))


def frontier(space=None, hw=None, top=0, roofline=False, stack="production", *, space_toml=None):
    """Prices and ranks every candidate of a space, as ``gpucost frontier --format json`` does.

    space / space_toml, hw, roofline, stack: as for ``score``.
    top: the candidates returned, frontier first (0, the default: all).

    Returns the frontier document as a dict: ``candidates`` (each with ``fields``,
    ``objectives``, ``error_pct``, ``fits_training``, ``fits_serving``, ``loss_source``,
    ``pareto_rank``, ``crowding``, ``possibly_optimal``), beside ``drawn``, ``valid``,
    ``invalid``, ``frontier_size``, ``possibly_optimal``, ``hypervolume``, ``objectives``,
    ``scaling_law``, ``hardware`` and ``cost_model``. Raises ValueError on a bad space.
    """
    path, text = _space(space, space_toml)
    stack = _stack(roofline, stack)
    try:
        n = operator.index(top)
    except TypeError:
        n = -1
    if isinstance(top, bool) or n < 0:
        raise ValueError(f"top must be a whole number, 0 or more, got {top!r}")
    return json.loads(
        _gpucost.frontier(path, text, None if hw is None else str(hw), bool(roofline), stack, n)
    )
