"""Benchmark: does "sensitivity ≥ target" hold on new patients? Each cut-off rule, simulated.

    .venv/bin/python benchmarks/operating_point.py                      # 57 LGE+ / 100 LGE− development patients
    .venv/bin/python benchmarks/operating_point.py --pos 20 --neg 42    # the default run's development size
    .venv/bin/python benchmarks/operating_point.py --sims 300           # quicker

The simulated study: K fold models; a patient's latent logit z = μ·y + N(0, 1); fold model f scores it
z + δ_f + ε (δ_f ~ N(0, σ_δ²): the fold's calibration offset; ε ~ N(0, τ²): the patient-level fold-to-fold
noise). Each development patient is scored out of fold by one model (the pooled out-of-fold validation
scores the cut-off is set on). New patients are scored either by one fold model (the scale the cut-off was
set on) or by the shipped final model, the mean of the K fold models' probabilities. Population sensitivity
and specificity at each replicate's cut-off come from 20,000 new patients per class.

Rules (cinescar.evaluation.screening.choose_cutoff):
- point: the highest cut-off reaching the target on the development patients (the default);
- tolerance c: the highest cut-off reaching it on new patients with confidence c (screening.sensitivity_confidence;
  Beta(j, m − j + 1) law).
Each rule is applied to a single fold model and to the mean final model at the cut-off set on the out-of-fold
scores (what the pipeline ships), and — for comparison only — to the mean model at a cut-off set on its own
scale ("mean, own-scale cut": development patients scored out of sample by every fold model, i.e. cross-fitted
ensemble scores, which the pipeline does not have: each development patient is out of sample for one model).

Prints, per rule and model: mean realised sensitivity, P(sensitivity ≥ target), mean specificity, the
machine and the command.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cinescar.evaluation.screening import choose_cutoff  # noqa: E402


def simulate(pos: int, neg: int, folds: int, mu: float, tau: float, sigma_delta: float, target: float,
             confidences: list[float], sims: int, n_new: int, seed: int) -> dict[str, np.ndarray]:  # fmt: skip
    """{'<rule>|<model>': (sims, 2) array of realised sensitivity and specificity on new patients}."""
    rng = np.random.default_rng(seed)
    rules = [("point", None)] + [(f"tolerance {c:g}", c) for c in confidences]
    models = ("single fold model", "mean final model", "mean, own-scale cut")
    out = {f"{r}|{m}": np.empty((sims, 2)) for r, _ in rules for m in models}
    y = np.r_[np.ones(pos, int), np.zeros(neg, int)]
    for s in range(sims):
        delta = rng.normal(0.0, sigma_delta, folds)
        fold_of = rng.permutation(np.arange(y.size) % folds)  # each development patient validated in one fold
        dev = expit(mu * y + rng.normal(size=y.size) + delta[fold_of] + rng.normal(0.0, tau, y.size))
        # what cross-fitted ensemble scores would give: the development patients scored on the mean model's
        # own scale, out of sample (needs every fold model out of sample for them: not in this pipeline)
        own = expit(mu * y[:, None] + rng.normal(size=(y.size, 1)) + delta[None, :]
                    + rng.normal(0.0, tau, (y.size, folds))).mean(axis=1)
        # new patients: latent logit, then each fold model's own noise
        z = {c: mu * c + rng.normal(size=n_new) for c in (1, 0)}
        fold_scores = {c: expit(z[c][:, None] + delta[None, :] + rng.normal(0.0, tau, (n_new, folds))) for c in (1, 0)}
        single = {c: fold_scores[c][:, 0] for c in (1, 0)}  # one fold model (fold 0; folds are exchangeable)
        mean = {c: fold_scores[c].mean(axis=1) for c in (1, 0)}
        for rule, conf in rules:
            t = choose_cutoff(y, dev, target, conf)
            t_own = choose_cutoff(y, own, target, conf)
            for name, sc, cut in ((models[0], single, t), (models[1], mean, t), (models[2], mean, t_own)):
                out[f"{rule}|{name}"][s] = [np.mean(sc[1] >= cut), np.mean(sc[0] < cut)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pos", type=int, default=57, help="LGE+ development patients (m)")
    ap.add_argument("--neg", type=int, default=100, help="LGE- development patients")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--mu", type=float, default=1.2, help="signal on the logit scale (AUC of z about 0.80)")
    ap.add_argument("--tau", type=float, default=0.8, help="patient-level fold-to-fold noise SD (logit)")
    ap.add_argument("--sigma-delta", type=float, default=0.3, help="SD of the folds' calibration offsets (logit)")
    ap.add_argument("--target", type=float, default=0.90)
    ap.add_argument("--confidence", type=float, nargs="*", default=[0.8, 0.95])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--new", type=int, default=20000, help="new patients per class per replicate")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.perf_counter()
    res = simulate(a.pos, a.neg, a.folds, a.mu, a.tau, a.sigma_delta, a.target, a.confidence, a.sims, a.new, a.seed)
    wall = time.perf_counter() - t0
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})")
    print(f"study: {a.pos} LGE+ / {a.neg} LGE- development patients, {a.folds} folds, mu={a.mu}, tau={a.tau}, "
          f"sigma_delta={a.sigma_delta}, target sensitivity {a.target}; {a.sims} simulated studies, "
          f"{a.new} new patients per class each; {wall:.1f} s")
    print(f"{'rule':<16}{'scored by':<22}{'mean sens':>10}{'P(sens>=target)':>17}{'mean spec':>11}")
    for key, v in res.items():
        rule, model = key.split("|")
        print(f"{rule:<16}{model:<22}{v[:, 0].mean():>10.3f}{np.mean(v[:, 0] >= a.target):>17.3f}{v[:, 1].mean():>11.3f}")


if __name__ == "__main__":
    main()
