"""One table per cohort of a finished study: the clinical model, each image model, each image + clinical model
and the controls, with AUC (95 % interval), the AUC difference against the clinical model (interval) and
DeLong's p, LGE scans avoided and scar missed per 100 patients at the operating point (intervals), and the
calibration slope (interval). It only reads `results/evaluation/*.csv` of a run directory: every number is the
study's own, nothing is recomputed here.

Usage (from the repository root):
    .venv/bin/python benchmarks/evidence_table.py                      # the default run in the repository
    .venv/bin/python benchmarks/evidence_table.py --directory runs/acdc

Cohorts: `val` is the development patients scored out of fold (the cut-off was set there: its LGE-avoided
figures are in-sample and are not shown), `test` the internal test cohort, then each external cohort.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from cinescar.evaluation.html_parts import _fmt_p as _p  # noqa: E402  (the report's p format)
from cinescar.evaluation.tables import format_interval as _ci  # noqa: E402  (the report's interval format)
from cinescar.models import MODEL_LABELS  # noqa: E402


def table(evaluation: Path, cohort: str) -> pd.DataFrame:
    inc = pd.read_csv(evaluation / "incremental.csv")
    cal = pd.read_csv(evaluation / "calibration.csv")
    util = pd.read_csv(evaluation / "utility.csv")
    final = pd.read_csv(evaluation / "final_metrics.csv")
    ops = pd.read_csv(evaluation / "operating_points.csv")
    fold = int(final["fold"].iloc[0]) if len(final) else -1
    rows = []
    for model in MODEL_LABELS:
        row: dict[str, str] = {"model": MODEL_LABELS[model]}
        if cohort == "val":
            op = ops[(ops.model == model) & (ops.operating_point == "pooled")]
            if op.empty:
                continue
            o = op.iloc[0]
            row["n (LGE+)"] = f"{int(o.n_patients)} ({int(o.n_pos)})"
            row["AUC"] = _ci(o.pooled_oof_auc, o.pooled_oof_auc_ci_low, o.pooled_oof_auc_ci_high)
        else:
            f = final[(final.model == model) & (final.cohort == cohort)]
            if f.empty:
                continue
            r = f.iloc[0]
            row["n (LGE+)"] = f"{int(r.n_patients)} ({int(r.n_pos)})"
            row["AUC"] = _ci(r.auc, r.auc_ci_low, r.auc_ci_high)
        i = inc[(inc.model == model) & (inc.cohort == cohort)]
        if not i.empty and model != "clinical":
            row["ΔAUC vs clinical"] = _ci(i.iloc[0]["diff"], i.iloc[0].diff_low, i.iloc[0].diff_high)
            row["DeLong p"] = _p(i.iloc[0].p)
        else:
            row["ΔAUC vs clinical"] = row["DeLong p"] = "–"
        u = util[(util.model == model) & (util.cohort == cohort) & (util.fold == fold)]
        if cohort != "val" and not u.empty:
            x = u.iloc[0]
            row["LGE avoided /100"] = _ci(x.avoided_per_100, x.avoided_per_100_low, x.avoided_per_100_high, 0)
            row["scar missed /100"] = _ci(x.missed_per_100, x.missed_per_100_low, x.missed_per_100_high, 0)
        else:
            row["LGE avoided /100"] = row["scar missed /100"] = "–"
        c = cal[(cal.model == model) & (cal.cohort == cohort) & (cal.fold == fold)]
        if "risk" in c.columns:
            c = c[c.risk == "as scored"]
        row["calibration slope"] = (_ci(c.iloc[0].cal_slope, c.iloc[0].cal_slope_low, c.iloc[0].cal_slope_high)
                                    if not c.empty else "–")
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--directory", type=Path, default=REPO, help="the study's run directory (holds results/)")
    args = ap.parse_args()
    evaluation = args.directory / "results" / "evaluation"
    final = pd.read_csv(evaluation / "final_metrics.csv")
    print(f"# evidence of the study in {args.directory.name or '.'} (machine: {platform.node()}, "
          f"{platform.processor() or platform.machine()})")
    print(f"# command: {' '.join(sys.argv)}")
    rule = final["rule"].iloc[0] if len(final) else "?"
    print(f"# final model rule: {rule}; operating point: pooled out-of-fold cut-off for sensitivity >= target")
    print("# intervals: AUC DeLong; ΔAUC vs clinical DeLong Wald (incremental.csv) with DeLong's p, descriptive "
          "except the primary comparison; per 100: Wilson; calibration slope: Wald (as scored)")
    summary = evaluation / "summary.json"
    if summary.exists():
        import json

        from cinescar.evaluation.primary import primary_sentence

        pc = json.loads(summary.read_text()).get("primary_comparison")
        if pc is not None:
            print(f"# {primary_sentence(pc)}")
    cohorts = ["val", "test"] + [c for c in final.cohort.unique() if c not in ("val", "test")]
    for cohort in cohorts:
        t = table(evaluation, cohort)
        if t.empty:
            continue
        title = {"val": "development patients, out of fold (cut-off set here)",
                 "test": "internal test"}.get(cohort, f"external cohort '{cohort}'")
        print(f"\n## {title}\n")
        print(t.to_markdown(index=False, disable_numparse=True))


if __name__ == "__main__":
    main()
