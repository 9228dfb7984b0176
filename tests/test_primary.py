"""The one pre-specified primary comparison and its one verdict rule (cinescar.evaluation.primary, issue 24)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cinescar.evaluation.delong import delong_test
from cinescar.evaluation.evidence import clinical_comparison
from cinescar.evaluation.primary import compare, primary_comparison, resolve_spec, verdict
from cinescar.evaluation.study import incremental_verdicts


def _patients(rng: np.random.Generator, signal: float, n_val: int = 60, n_test: int = 40, n_ext: int = 30,
              test_labels: np.ndarray | None = None) -> pd.DataFrame:  # fmt: skip
    """Fold rows (val: each development patient in one fold; test per fold) and the final model's rows."""
    rows = []
    yv = rng.integers(0, 2, n_val)
    for i, y in enumerate(yv):
        rows.append({"fold": i % 3, "split": "val", "patient_id": f"v{i}", "lge": int(y),
                     "prob": float(stats.norm.cdf(signal * y + rng.normal()))})
    yt = rng.integers(0, 2, n_test) if test_labels is None else test_labels
    ye = rng.integers(0, 2, n_ext)
    for split, ys in (("test", yt), ("external", ye)):
        for i, y in enumerate(ys):
            p = float(stats.norm.cdf(signal * y + rng.normal()))
            rows += [{"fold": f, "split": split, "patient_id": f"{split[0]}{i}", "lge": int(y), "prob": p}
                     for f in (0, 1, 2, -1)]
    return pd.DataFrame(rows)


def _study(seed: int = 0, **kw) -> tuple[dict, dict]:
    strengths = {"clinical": 0.5, "radiomics_clinical": 0.8, "dl_clinical": 2.0, "fusion_clinical": 1.0}
    base = _patients(np.random.default_rng(seed), 0.0, **kw)  # the patients and labels every model sees
    y = base["lge"].to_numpy()
    pats = {}
    for i, (m, s) in enumerate(strengths.items()):
        noise = np.random.default_rng([seed, i]).normal(size=len(base))
        pats[m] = base.assign(prob=stats.norm.cdf(s * y + noise))
    return pats, {m: {"fold": -1} for m in pats}


def test_auto_chooses_on_development_only_and_prefers_external():
    pats, _ = _study()
    spec = resolve_spec({"evaluation": {}}, pats)
    assert spec.model == "dl_clinical" and spec.reference == "clinical" and spec.cohort == "external"
    assert "development" in spec.how_chosen
    # relabelling the test and external patients cannot change the choice
    shuffled = {m: p.assign(lge=np.where(p["split"] == "val", p["lge"], 1 - p["lge"])) for m, p in pats.items()}
    assert resolve_spec({"evaluation": {}}, shuffled).model == spec.model
    no_ext = {m: p[p["split"] != "external"] for m, p in pats.items()}
    assert resolve_spec({"evaluation": {}}, no_ext).cohort == "test"
    named = resolve_spec({"evaluation": {"primary_comparison": {"model": "fusion_clinical", "cohort": "test"}}}, pats)
    assert (named.model, named.cohort) == ("fusion_clinical", "test")
    assert isinstance(resolve_spec({}, {"dl_clinical": pats["dl_clinical"]}), str)  # no clinical model: a reason


@pytest.mark.parametrize("seed", range(40))
def test_delong_interval_excludes_zero_exactly_when_p_below_alpha(seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(12, int), np.zeros(30, int)]
    a = y * rng.uniform(0, 1.2) + rng.normal(size=y.size)
    b = y * 0.3 + rng.normal(size=y.size)
    r = compare(y, a, b, "delong", alpha=0.05)
    d = delong_test(y, a, b)
    assert r["diff"] == pytest.approx(d.diff) and r["p"] == pytest.approx(d.p)
    assert (r["p"] < 0.05) == (r["diff_low"] > 0 or r["diff_high"] < 0)
    assert (verdict(r["diff_low"], r["diff_high"]) == "yes") == (r["p"] < 0.05 and r["diff"] > 0)


def test_bootstrap_method_is_one_rule_too():
    rng = np.random.default_rng(3)
    agree = 0
    for _ in range(30):
        y = np.r_[np.ones(10, int), np.zeros(25, int)]
        a, b = y * 1.0 + rng.normal(size=y.size), y * 0.3 + rng.normal(size=y.size)
        r = compare(y, a, b, "bootstrap", alpha=0.05, n_boot=400, seed=1)
        agree += (r["p"] < 0.05) == (r["diff_low"] > 0 or r["diff_high"] < 0)
    assert agree >= 29  # equal up to the replicates' discreteness at the boundary


def test_table_and_sentences_give_the_same_answer():
    pats, final = _study(seed=5)
    cfg = {"evaluation": {"alpha": 0.05}, "seed": 1}
    pc = primary_comparison(cfg, pats, final)
    assert pc["available"] and pc["verdict"] == verdict(pc["diff_low"], pc["diff_high"])
    # the headline table's rows, from DeLong Wald intervals of every pair
    from cinescar.evaluation.evidence import auc_differences, Resamples

    diffs = auc_differences(pats, final, ["test", "external"], {}, Resamples(0, 0), 0.95)
    rows = clinical_comparison(diffs, list(pats), pc)
    assert rows[0]["role"] == "primary" and rows[0]["verdict"] == pc["verdict"]
    assert rows[0]["diff"] == pytest.approx(pc["diff"])
    assert all(r["verdict"] == "descriptive" for r in rows[1:]) and len(rows) == 6
    # DeLong Wald at 95 % in the table = the primary's interval at 1 − α = 0.95
    assert (rows[0]["diff_low"], rows[0]["diff_high"]) == pytest.approx((pc["diff_low"], pc["diff_high"]))
    from cinescar.evaluation.study import incremental_table

    sentences = incremental_verdicts(incremental_table(pats, final), 0.05, 0.95, pc)
    assert sentences[0].startswith("Primary comparison (pre-specified)")
    assert all(s.startswith("Descriptive:") for s in sentences[1:])
    assert not any("added discrimination" in s for s in sentences[1:])
