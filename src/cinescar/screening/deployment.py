"""The deployment case (issue 22): models trained on manual contours, used on the segmenter's contours.

A site that screens the next patient off the scanner has no manual mask: the shipped models then read the
study's own segmenter's masks. This module compares, patient by patient, what the final models say on the
manual and on the predicted masks of the same patients (AUC both ways, paired DeLong, decision agreement at the
shipped cut-off, |change in probability|), and how reproducible the radiomics features the models read are
between the two masks (ICC(3,1) per feature). The jobs that screen the patients are in `screening/run.py`.

Development patients are scored by their own fold's model (out of fold), with masks from the segmentation
network that never saw them; internal-test and external patients by the final model (the mean of the fold
models) with the ensemble's masks -- the same patients and models as the study's own tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cinescar.evaluation.delong import delong_test
from cinescar.predictions import auc_or_nan
from cinescar.screening_rule import called_positive
from cinescar.segmentation.measures import icc_3_1

MASKS = ("manual", "predicted")
ICC_GOOD = 0.75  # Koo & Li 2016: 0.75-0.9 "good"; the goal: >= 0.75 for >= 80 % of the features
# the rows of deployment.csv: each role alone, and the pool the goal names (out of fold + external)
ROLE_GROUPS = {"development (out of fold)": ("development",), "test": ("test",), "external": ("external",),
               "out of fold + external": ("development", "external")}
PATIENT_COLUMNS = ["patient_id", "role", "fold", "lge", "model", "cutoff", "prob_manual", "prob_predicted"]


def compare_masks(patients: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One row per model and role group: n, AUC on manual and on predicted masks, their difference (predicted -
    manual) with DeLong's paired interval and p, decision agreement at the shipped cut-off, |delta p|."""
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + level / 2))
    rows = []
    for model, part in patients.groupby("model", sort=False):
        for group, roles in ROLE_GROUPS.items():
            g = part[part["role"].isin(roles)]
            g = g[np.isfinite(g["prob_manual"]) & np.isfinite(g["prob_predicted"])]
            n_missing = int(part["role"].isin(roles).sum() - len(g))
            if g.empty:
                continue
            y = g["lge"].to_numpy(int)
            pm, pp = g["prob_manual"].to_numpy(float), g["prob_predicted"].to_numpy(float)
            row = {"model": model, "role": group, "n": int(len(g)), "n_lge_pos": int(y.sum()),
                   "n_not_scored": n_missing, "auc_manual": auc_or_nan(y, pm), "auc_predicted": auc_or_nan(y, pp)}
            if min(y.sum(), len(y) - y.sum()) >= 2:  # DeLong's variance needs two patients of each class
                res = delong_test(y, pp, pm)
                row.update({"delta_auc": res.diff, "delta_auc_low": res.diff - z * res.se,
                            "delta_auc_high": res.diff + z * res.se, "delong_p": res.p})
            else:
                row.update({"delta_auc": np.nan, "delta_auc_low": np.nan, "delta_auc_high": np.nan,
                            "delong_p": np.nan})
            cut = g["cutoff"].to_numpy(float)
            same = called_positive(pm, cut) == called_positive(pp, cut)
            d = np.abs(pp - pm)
            row.update({"decision_agreement": float(same.mean()), "decisions_changed": int((~same).sum()),
                        "abs_dp_median": float(np.median(d)), "abs_dp_p90": float(np.quantile(d, 0.9)),
                        "abs_dp_max": float(d.max())})
            rows.append(row)
    return pd.DataFrame(rows)


def feature_icc(features: pd.DataFrame) -> pd.DataFrame:
    """ICC(3,1) between manual and predicted masks of each radiomics feature the models read, over images.

    `features`: long table (image_id, role, feature, manual, predicted). The ICC is taken over every image
    of the patients compared (one value per feature), and per role, so that the held-out patients' figure can
    be read alone."""
    rows = []
    for (feature, role), part in pd.concat([features.assign(role="all"), features]).groupby(["feature", "role"]):
        ok = np.isfinite(part["manual"]) & np.isfinite(part["predicted"])
        rows.append({"feature": feature, "role": role, "n_images": int(ok.sum()),
                     "icc_3_1": icc_3_1(part["manual"], part["predicted"]),
                     "manual_median": float(part["manual"].median()),
                     "predicted_median": float(part["predicted"].median())})
    out = pd.DataFrame(rows, columns=["feature", "role", "n_images", "icc_3_1", "manual_median", "predicted_median"])
    return out.sort_values(["role", "icc_3_1"], kind="stable").reset_index(drop=True)


def icc_summary(icc: pd.DataFrame) -> dict[str, float]:
    """Share of features with ICC >= 0.75 (all images), the number of features and the lowest ICC."""
    part = icc[icc["role"] == "all"]["icc_3_1"].dropna()
    if part.empty:
        return {"features": 0, "share_icc_good": float("nan"), "icc_min": float("nan"), "icc_median": float("nan")}
    return {"features": int(len(part)), "share_icc_good": float((part >= ICC_GOOD).mean()),
            "icc_min": float(part.min()), "icc_median": float(part.median())}
