"""A multi-objective architecture search with Optuna, priced by gpucost.

NSGA-II (Deb et al. 2002, as Optuna's NSGAIISampler implements it) chooses layers, hidden size,
heads, KV heads and MLP ratio over the ranges of examples/space-dense.toml (with finer steps than
its grid); each generation is scored in one call to gpucost.score against that space's base
model, workload and scaling law. The objectives are the space's: predicted loss, training
GPU-hours and time per output token, all minimized. Its constraints (parameters between 1B and
8.5B, serving fits on one GPU) are given to Optuna as constraint values, so infeasible candidates
lose to feasible ones; a candidate gpucost cannot score is recorded as pruned. Prints the Pareto
set of feasible trials.

    pip install ./python "optuna>=5,<6"
    python3 examples/optuna_search.py --trials 200 --seed 0
"""

import argparse
import os
import sys

import optuna

import gpucost

HERE = os.path.dirname(os.path.abspath(__file__))
OBJECTIVES = ["loss", "training_gpu_hours", "tpot_s"]
# examples/space-dense.toml's [constraints].
PARAMS_MIN, PARAMS_MAX = 1e9, 8.5e9


def suggest(trial):
    """One candidate: the space fields gpucost.score takes."""
    return {
        "layers": trial.suggest_int("layers", 16, 40, step=2),
        "hidden_size": trial.suggest_int("hidden_size", 2048, 4608, step=256),
        "heads": trial.suggest_categorical("heads", [16, 32]),
        "kv_heads": trial.suggest_categorical("kv_heads", [4, 8]),
        "mlp_ratio": trial.suggest_float("mlp_ratio", 2.5, 4.0, step=0.25),
    }


def record(study, trial, answer):
    """Tells Optuna what gpucost answered for `trial`."""
    if "error" in answer:
        trial.set_user_attr("error", answer["error"])
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    o = answer["objectives"]
    if any(o[name] is None for name in OBJECTIVES):
        trial.set_user_attr("error", "an objective has no value")
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    params = o["params_total"]
    # Feasible when every value is 0 or less; scaled to billions of parameters.
    trial.set_constraint("params_min", (PARAMS_MIN - params) / 1e9)
    trial.set_constraint("params_max", (params - PARAMS_MAX) / 1e9)
    trial.set_constraint("fits_serving", 0.0 if answer["fits_serving"] else 1.0)
    trial.set_user_attr("params_total", params)
    study.tell(trial, [o[name] for name in OBJECTIVES])


def table(trials):
    header = ["trial", "layers", "hidden", "heads", "kv", "mlp", "params", "loss",
              "GPU-hours", "TPOT"]
    rows = []
    for t in sorted(trials, key=lambda t: t.values[0]):
        p = t.params
        params = t.user_attrs["params_total"]
        rows.append([
            str(t.number), str(p["layers"]), str(p["hidden_size"]), str(p["heads"]),
            str(p["kv_heads"]), f"{p['mlp_ratio']:.2f}", f"{params / 1e9:.2f}B",
            f"{t.values[0]:.4f}", f"{t.values[1]:,.0f}", f"{t.values[2] * 1e3:.2f} ms",
        ])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=200, help="candidates to score (default 200)")
    ap.add_argument("--seed", type=int, default=0, help="the sampler's seed (default 0)")
    ap.add_argument("--population", type=int, default=20,
                    help="NSGA-II population: candidates per generation (default 20)")
    ap.add_argument("--space", default=os.path.join(HERE, "space-dense.toml"),
                    help="the space whose base model, workload and law price candidates")
    ap.add_argument("--hw", default=None, help="a GPU (default: the space's workload.hw)")
    args = ap.parse_args()
    if args.trials < 1 or args.population < 2:
        ap.error("--trials must be at least 1 and --population at least 2")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(population_size=args.population, seed=args.seed)
    study = optuna.create_study(directions=["minimize"] * len(OBJECTIVES), sampler=sampler)
    done = 0
    while done < args.trials:
        # One generation at a time, scored in one call.
        trials = [study.ask() for _ in range(min(args.population, args.trials - done))]
        answers = gpucost.score([suggest(t) for t in trials], space=args.space, hw=args.hw)
        for trial, answer in zip(trials, answers):
            record(study, trial, answer)
        done += len(trials)

    states = [t.state for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    feasible = [t for t in complete if all(v <= 0 for v in t.constraints.values())]
    pruned = states.count(optuna.trial.TrialState.PRUNED)
    # NSGA-II may propose a candidate again: each shape is shown once, at its first trial.
    best, seen = [], set()
    for t in sorted(study.best_trials, key=lambda t: t.number):
        key = tuple(sorted(t.params.items()))
        if key not in seen:
            seen.add(key)
            best.append(t)
    print(f"{len(states)} trials (NSGA-II, seed {args.seed}): {len(feasible)} feasible, "
          f"{len(complete) - len(feasible)} infeasible, {pruned} not scored")
    print(f"Pareto set over {', '.join(OBJECTIVES)}: {len(best)} distinct candidates\n")
    print(table(best) if best else "(no feasible trial)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
