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

from cinescar.models import MODEL_COLORS as COLORS  # noqa: E402
from cinescar.models import MODEL_LABELS as LABELS  # noqa: E402

COHORT_TITLES = {"val": "validation", "test": "internal test cohort", "external": "external cohort"}


def roc_figure(roc: pd.DataFrame, metrics: pd.DataFrame, final_models: dict, cohort: str, level: float) -> Figure:
    """ROC curves of the final models on one cohort, with bootstrap bands and the screening operating points."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--")
    for model, info in final_models.items():
        r = roc[(roc["model"] == model) & (roc["cohort"] == cohort)]
        if r.empty:
            continue
        op = info.get("operating_point", "validation")
        m = metrics[(metrics["model"] == model) & (metrics["fold"] == info["fold"]) & (metrics["cohort"] == cohort)
                    & (metrics["operating_point"] == op)]  # fmt: skip
        auc = f" AUC {m['auc'].iloc[0]:.2f}" if len(m) else ""
        color = COLORS.get(model)
        which = "mean of folds" if int(info["fold"]) < 0 else f"fold {info['fold']}"
        ax.fill_between(r["fpr"], r["tpr_low"], r["tpr_high"], color=color, alpha=0.15, lw=0)
        ax.plot(r["fpr"], r["tpr"], color=color, lw=2, label=f"{LABELS.get(model, model)} ({which}){auc}")
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
    m = metrics[(metrics["cohort"] == cohort) & (metrics["operating_point"] == "validation") & (metrics["fold"] >= 0)]
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


def _color(model: str, i: int) -> str:
    return COLORS.get(model) or plt.get_cmap("tab10")(i % 10)


def cohort_title(cohort: str) -> str:
    """'external:Rome' -> 'external cohort Rome'; the fixed cohorts by COHORT_TITLES."""
    if cohort.startswith("external:"):
        return f"external cohort {cohort.split(':', 1)[1]}"
    return COHORT_TITLES.get(cohort, cohort)


def _of_risk(df: pd.DataFrame, risk: str | None) -> pd.DataFrame:
    """Rows of one `risk` (as scored / recalibrated); every row for tables written before the column existed."""
    return df if risk is None or "risk" not in df.columns else df[df["risk"] == risk]


def reliability_figure(reliability: pd.DataFrame, calibration: pd.DataFrame, cohort: str,
                       flexible: pd.DataFrame | None = None, risk: str | None = None) -> Figure:  # fmt: skip
    """Calibration of the final models on one cohort: the flexible (spline) curve with its bootstrap band where
    there is one, and the binned reliability points (marker area ∝ patients in the bin); each model's Brier
    score and calibration slope (or why there is none) in the legend."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=110)
    ax.plot([0, 1], [0, 1], color="0.7", lw=1, ls="--", label="perfect calibration")
    r = _of_risk(reliability[reliability["cohort"] == cohort], risk)
    calibration = _of_risk(calibration, risk)
    flex = _of_risk(flexible[flexible["cohort"] == cohort], risk) if flexible is not None and len(flexible) else None
    for i, (model, rm) in enumerate(r.groupby("model", sort=False)):
        c = calibration[(calibration["model"] == model) & (calibration["cohort"] == cohort)]
        extra = ""
        if len(c):
            slope = c["cal_slope"].iloc[0]
            extra = f" Brier {c['brier'].iloc[0]:.2f}, slope " + (f"{slope:.2f}" if slope == slope else "–")
        color = _color(model, i)
        fm = flex[flex["model"] == model] if flex is not None else pd.DataFrame()
        if len(fm):
            ax.plot(fm["prob"], fm["observed"], "-", color=color, lw=1.6, label=f"{LABELS.get(model, model)}{extra}")
            ax.fill_between(fm["prob"], fm["observed_low"], fm["observed_high"], color=color, alpha=0.12, lw=0)
            ax.scatter(rm["mean_prob"], rm["observed"], s=12 * rm["n"], color=color, alpha=0.3, lw=0)
        else:
            ax.plot(rm["mean_prob"], rm["observed"], ":o", color=color, lw=1.0, ms=3,
                    label=f"{LABELS.get(model, model)}{extra} (bins only)")  # fmt: skip
            ax.scatter(rm["mean_prob"], rm["observed"], s=12 * rm["n"], color=color, alpha=0.25, lw=0)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed share LGE+")
    what = f", {risk}" if risk else ""
    ax.set_title(f"Calibration, final models, {cohort_title(cohort)}{what}\nlines: spline fit, band: bootstrap; "
                 "dots: bins, area ∝ patients", fontsize=9)  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize=6)
    fig.tight_layout()
    return fig


def decision_figure(curves: pd.DataFrame, cohort: str, risk: str | None = None) -> Figure:
    """Decision curves of the final models on one cohort against "LGE for all" and "LGE for none", with the
    bootstrap band of each model's net benefit where there is one."""
    d = _of_risk(curves[curves["cohort"] == cohort], risk)
    fig, ax = plt.subplots(figsize=(6.0, 4.2), dpi=110)
    if d.empty:
        return fig
    first = d[d["model"] == d["model"].iloc[0]]
    ax.plot(first["threshold"], first["treat_all"], color="k", lw=1.2, ls="--", label="LGE for all")
    ax.plot(first["threshold"], first["treat_none"], color="0.5", lw=1.2, ls=":", label="LGE for none")
    for i, (model, dm) in enumerate(d.groupby("model", sort=False)):
        ax.plot(dm["threshold"], dm["net_benefit"], color=_color(model, i), lw=1.6, label=LABELS.get(model, model))
        if "net_benefit_low" in dm.columns and dm["net_benefit_low"].notna().any():
            ax.fill_between(dm["threshold"], dm["net_benefit_low"], dm["net_benefit_high"], color=_color(model, i),
                            alpha=0.10, lw=0)  # fmt: skip
    top = float(first["treat_all"].iloc[0])  # ≈ prevalence: no policy beats it at the lowest threshold
    low = max(-0.2, min(-0.05, float(d["net_benefit"].min()) - 0.02))
    ax.set_ylim(low, max(0.05, top + 0.05))
    ax.set_xlabel("threshold probability p_t (LGE scan when p ≥ p_t)")
    ax.set_ylabel("net benefit")
    ax.set_title(f"Decision curves, final models, {cohort_title(cohort)}" + (f", {risk}" if risk else "")
                 + "\nbands: bootstrap", fontsize=9)
    ax.axhline(0, color="0.85", lw=0.8)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def instability_figure(points: pd.DataFrame, summary: pd.DataFrame, cohort: str) -> Figure:
    """Prediction instability plot (Riley & Collins 2023): each fold model's probability against the final
    (mean) model's, one panel per image model, with the cut-off; spread around the diagonal = instability."""
    d = points[points["cohort"] == cohort]
    models = list(dict.fromkeys(d["model"]))
    fig, axes = plt.subplots(1, max(len(models), 1), figsize=(3.4 * max(len(models), 1), 3.6), dpi=110,
                             squeeze=False)  # fmt: skip
    for ax, model in zip(axes[0], models, strict=False):
        dm = d[d["model"] == model]
        s = summary[(summary["model"] == model) & (summary["cohort"] == cohort)]
        for lge, marker in ((0, "o"), (1, "^")):
            g = dm[dm["lge"] == lge]
            ax.scatter(g["final_prob"], g["prob"], s=10, marker=marker, alpha=0.5, color=COLORS.get(model),
                       label="LGE+" if lge else "LGE−")  # fmt: skip
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        if len(s):
            c = float(s["cutoff"].iloc[0])
            ax.axvline(c, color="0.3", lw=0.8, ls=":")
            ax.axhline(c, color="0.3", lw=0.8, ls=":")
            ax.set_title(f"{LABELS.get(model, model)}\nMAPE {s['mape'].iloc[0]:.3f}; calls differ "
                         f"{100 * s['share_calls_differ'].iloc[0]:.0f} %", fontsize=8)  # fmt: skip
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("final (mean) model probability", fontsize=8)
        ax.set_ylabel("each fold model's probability", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    fig.suptitle(f"Prediction instability across fold models, {cohort_title(cohort)}", fontsize=9)
    fig.tight_layout()
    return fig


def flow_figure(flow: pd.DataFrame) -> Figure:
    """Participant flow (TRIPOD+AI 20a) as boxes: manifest sources on top, analysis roles below."""
    top, bottom = flow[flow["stage"] == "manifest"], flow[flow["stage"] == "analysed"]
    top = top.assign(_ext=top["source"].astype(str).str.startswith("external")).sort_values(["_ext", "source"])
    lost = flow[flow["stage"] == "not in any analysis"]
    fig, ax = plt.subplots(figsize=(7.5, 3.2), dpi=110)
    ax.axis("off")

    def box(x: float, y: float, text: str) -> None:
        ax.text(x, y, text, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "#f2f2f2", "edgecolor": "0.4"})  # fmt: skip

    xs = {}
    for i, r in enumerate(top.itertuples()):
        xs[str(r.source)] = (i + 0.5) / max(len(top), 1)
        box(xs[str(r.source)], 0.85, f"manifest: {r.source}\n{r.n_patients} patients, {r.n_pos} LGE+")
    internal = next((x for s, x in xs.items() if not s.startswith("external")), 0.5)
    for i, r in enumerate(bottom.itertuples()):
        x = (i + 0.5) / max(len(bottom), 1)
        box(x, 0.2, f"{r.source}\n{r.n_patients} patients, {r.n_pos} LGE+")
        role = str(r.source)
        src = next((v for s, v in xs.items() if s.startswith("external") and role.startswith("external")
                    and (s == "external" or s.split(":", 1)[-1] in role)), internal)  # fmt: skip
        ax.annotate("", xy=(x, 0.32), xytext=(src, 0.74), arrowprops={"arrowstyle": "->", "color": "0.5"})
    if len(lost):
        box(0.9, 0.52, f"not in any\nanalysis: {int(lost['n_patients'].iloc[0])}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Participant flow", fontsize=9)
    return fig
