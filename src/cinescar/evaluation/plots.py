"""Figures of the study report (matplotlib, Agg backend: no display needed on a cluster node).

Each function takes the evaluation's machine-readable tables and returns a matplotlib Figure; the report
embeds them as base64 PNG, so every plotted number is also in a CSV under results/evaluation/.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

COLORS = {"radiomics": "#1f77b4", "dl": "#ff7f0e", "fusion": "#2ca02c"}
LABELS = {"radiomics": "Radiomics", "dl": "DL", "fusion": "DL-Radiomics"}
COHORT_TITLES = {"val": "validation", "test": "internal test cohort", "external": "external cohort"}


def roc_figure(roc: pd.DataFrame, metrics: pd.DataFrame, final_models: dict, cohort: str, level: float) -> Figure:
    """ROC curves of the final models on one cohort, with bootstrap bands and the screening operating points."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    for model, info in final_models.items():
        r = roc[(roc["model"] == model) & (roc["cohort"] == cohort)]
        if r.empty:
            continue
        m = metrics[(metrics["model"] == model) & (metrics["fold"] == info["fold"]) & (metrics["cohort"] == cohort)
                    & (metrics["operating_point"] == "validation")]  # fmt: skip
        auc = f" AUC {m['auc'].iloc[0]:.2f}" if len(m) else ""
        color = COLORS.get(model)
        ax.fill_between(r["fpr"], r["tpr_low"], r["tpr_high"], color=color, alpha=0.15, lw=0)
        ax.plot(r["fpr"], r["tpr"], color=color, lw=2, label=f"{LABELS.get(model, model)} (fold {info['fold']}){auc}")
        if len(m):
            ax.plot(1 - m["specificity"].iloc[0], m["sensitivity"].iloc[0], "o", color=color, ms=7, mec="k")
    ax.set_xlabel("1 − specificity (scar-free patients called positive)")
    ax.set_ylabel("sensitivity")
    ax.set_title(f"Final models, {COHORT_TITLES.get(cohort, cohort)}\n"
                 f"bands: {level:.0%} bootstrap; dots: screening cut-off", fontsize=10)  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def fold_auc_figure(metrics: pd.DataFrame, cohort: str = "test") -> Figure:
    """Per-fold patient-level AUC (with DeLong CI) of the three models: the spread of Table 3."""
    m = metrics[(metrics["cohort"] == cohort) & (metrics["operating_point"] == "validation")]
    fig, ax = plt.subplots(figsize=(6.0, 3.4), dpi=110)
    models = list(dict.fromkeys(m["model"]))
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        mm = m[m["model"] == model].sort_values("fold")
        x = mm["fold"].to_numpy() + (i - (len(models) - 1) / 2) * width
        err = [(mm["auc"] - mm["auc_ci_low"]).clip(lower=0), (mm["auc_ci_high"] - mm["auc"]).clip(lower=0)]
        ax.errorbar(x, mm["auc"], yerr=err, fmt="o", color=COLORS.get(model), label=LABELS.get(model, model),
                    capsize=2)  # fmt: skip
    ax.set_xticks(sorted(m["fold"].unique()))
    ax.set_xlabel("fold")
    ax.set_ylabel("patient-level AUC")
    ax.set_title(f"AUC per fold, {COHORT_TITLES.get(cohort, cohort)} (bars: DeLong CI)", fontsize=10)
    ax.axhline(0.5, color="0.7", lw=1, ls="--")
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    fig.tight_layout()
    return fig


def to_base64_png(fig: Figure) -> str:
    """PNG bytes of a figure as base64 text (and close it: many figures in one process)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")
