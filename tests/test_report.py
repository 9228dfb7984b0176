"""The study evaluation end to end on fixture files, and the self-contained HTML report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cinescar.errors import CinescarError, CohortError
from cinescar.evaluation.report import build_report
from cinescar.evaluation.report_inputs import ReportInputs
from cinescar.evaluation.study import evaluate_study
from workflow_names import evaluation_outputs

MODELS = {"radiomics": 0.8, "dl": 1.0, "fusion": 1.6}  # separation of LGE+ from LGE- images per model
N_IMAGES = 3


def make_study(root: Path, n_internal: int = 54, n_external: int = 20, folds: int = 3, seed: int = 0) -> dict:
    """manifest.csv, index.parquet, splits.json and the three models' predictions in the shared contract."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    pids = [f"P{i:03d}" for i in range(n_internal + n_external)]
    lge = {p: int(i % 5 in (1, 3)) for i, p in enumerate(pids)}
    cohort = {p: "internal" if i < n_internal else "external" for i, p in enumerate(pids)}
    manifest = pd.DataFrame({
        "patient_id": pids, "cohort": [cohort[p] for p in pids], "lge": [lge[p] for p in pids],
        "center": ["Ext" if cohort[p] == "external" else "AB"[i % 2] for i, p in enumerate(pids)],
        "vendor": ["Philips" if cohort[p] == "external" else "Siemens" for p in pids],
        "sex": rng.choice(["M", "F"], len(pids)), "age": rng.normal(50, 15, len(pids)).round(),
        "LVM": [rng.normal(180 if lge[p] else 140, 40) for p in pids]})
    manifest.loc[2, "age"] = np.nan
    for col in ("ed_image", "ed_mask", "es_image", "es_mask"):
        manifest[col] = "unused.nii.gz"
    manifest.to_csv(root / "manifest.csv", index=False)
    index = pd.DataFrame([{"image_id": f"{p}_ED_{j:02d}", "patient_id": p, "cohort": cohort[p], "lge": lge[p],
                           "dev_selected": j < 2} for p in pids for j in range(N_IMAGES)])
    index.to_parquet(root / "index.parquet")
    internal = [p for p in pids if cohort[p] == "internal"]
    test, dev = internal[:14], internal[14:]
    fold_list = [{"fold": f, "train": sorted(set(dev) - set(dev[f::folds])), "val": sorted(dev[f::folds])}
                 for f in range(folds)]
    splits = {"seed": seed, "test": sorted(test), "external": pids[n_internal:], "folds": fold_list}
    (root / "splits.json").write_text(json.dumps(splits))
    paths = {}
    for model, strength in MODELS.items():
        rows = []
        for f in fold_list:
            for split, group in (("val", f["val"]), ("test", test), ("external", splits["external"])):
                for p in group:
                    for j in range(N_IMAGES):
                        z = rng.normal(strength * lge[p], 1.0) - 1.0
                        rows.append({"image_id": f"{p}_ED_{j:02d}", "patient_id": p, "fold": f["fold"],
                                     "split": split, "dev_selected": j < 2, "lge": lge[p],
                                     "prob": 1 / (1 + np.exp(-z))})
        paths[model] = root / f"{model}.parquet"
        pd.DataFrame(rows).to_parquet(paths[model])
    pd.DataFrame({"fold": [0, 1, 2, 0], "k": 2, "rank": [1, 1, 1, 2],
                  "feature": ["original_glcm_Idm", "original_glcm_Idm", "wavelet-LL_firstorder_Mean", "x"]}
                 ).to_csv(root / "rad_selected.csv", index=False)  # fmt: skip
    (root / "rad_choice.json").write_text(json.dumps({"k": 2}))
    pd.DataFrame({"classifier": ["logistic_l1", "svm"], "k": 20, "fold_0": [0.8, 0.7], "mean": [0.8, 0.7],
                  "sd": [0.01, 0.02], "chosen": [True, False]}).to_csv(root / "classifiers.csv", index=False)
    (root / "choice.json").write_text(json.dumps({"k": 20, "classifier": "logistic_l1", "criterion": "test"}))
    return paths


CFG = {"seed": 1, "cohort": {"name": "fixture"}, "mlflow": {"enabled": False},
       "screening": {"target_sensitivity": 0.9, "cutoff_on_test": False},
       "evaluation": {"n_bootstrap": 50, "gradcam_examples": 2, "alpha": 0.05, "ci_level": 0.95}}  # fmt: skip


def _evaluate(root: Path, cfg: dict, out: str = "evaluation") -> dict:
    paths = make_study(root)
    return evaluate_study(paths, root / "index.parquet", root / "splits.json", root / "manifest.csv",
                          evaluation_outputs(root / out), cfg, selected_features={"radiomics": (root / "rad_selected.csv", root / "rad_choice.json")},
                          fusion_classifiers=root / "classifiers.csv", fusion_choice=root / "choice.json")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    cwd = Path.cwd()
    import os

    os.chdir(root)  # MLflow's offline records land in the fixture folder
    try:
        files = _evaluate(root, CFG)
    finally:
        os.chdir(cwd)
    return root, files


def test_evaluation_files_and_rules(study):
    root, files = study
    metrics = pd.read_csv(files["metrics"])
    assert {"model", "fold", "cohort", "operating_point", "cutoff", "sensitivity", "specificity", "ppv", "npv",
            "accuracy", "auc", "spared_scar_free", "spared_all"} <= set(metrics.columns)
    assert set(metrics["operating_point"]) == {"pooled", "validation"}
    # the per-fold cut-off reaches the target on its validation patients, and is reused unchanged on the test
    # cohorts; the pooled cut-off is one value per model, for every fold and the final model
    val = metrics[(metrics["cohort"] == "val") & (metrics["operating_point"] == "validation")]
    assert (val["sensitivity"] >= 0.9).all()
    for (model, fold), g in metrics[metrics["operating_point"] == "validation"].groupby(["model", "fold"]):
        assert g["cutoff"].nunique() == 1
    for model, g in metrics[metrics["operating_point"] == "pooled"].groupby("model"):
        assert g["cutoff"].nunique() == 1
    final = json.loads(files["final_models"].read_text())
    for model, info in final.items():  # default final model: the mean of the fold models, not a fold
        assert info["fold"] == -1 and info["rule"] == "mean" and not info["optimistic"]
        assert info["folds"] == [0, 1, 2] and info["operating_point"] == "pooled"
    delong = pd.read_csv(files["delong"])
    assert set(delong["scope"]) == {"fold 0", "fold 1", "fold 2", "final"}
    assert len(delong) == 4 * 2 * 3 and delong["p"].between(0, 1).all()
    fin = delong[(delong["scope"] == "final") & (delong["cohort"] == "external")]
    assert (fin["fold_a"] == fin["model_a"].map(lambda m: final[m]["fold"])).all()
    t3 = pd.read_csv(files["table3"])
    assert set(t3["model"]) == set(MODELS) and {"fold_0", "fold_1", "fold_2", "mean", "sd"} <= set(t3.columns)
    t4 = pd.read_csv(files["table4"])
    assert sorted(t4["model"]) == sorted(MODELS)
    t1 = pd.read_csv(files["table1"])
    assert set(t1["section"]) == {"All internal patients", "Development cohort", "Internal testing cohort"}
    assert pd.read_csv(files["table_s2"]).iloc[0]["feature"] == "original_glcm_Idm"
    assert pd.read_csv(files["table_s1"])["chosen"].tolist() == [True, False]
    assert json.loads(files["summary"].read_text())["fusion_choice"]["k"] == 20
    roc = pd.read_csv(files["roc"])
    assert set(roc["cohort"]) == {"test", "external"} and set(roc["model"]) == set(MODELS)


def test_optimistic_variant_is_labelled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = {**CFG, "screening": {"target_sensitivity": 0.9, "cutoff_on_test": True}}
    files = _evaluate(tmp_path, cfg)
    metrics = pd.read_csv(files["metrics"])
    assert set(metrics["operating_point"]) == {"pooled", "validation", "optimistic"}
    assert set(metrics.loc[metrics["operating_point"] == "optimistic", "cohort"]) == {"test", "external"}
    build_report(ReportInputs.from_folder(files["metrics"].parent), tmp_path / "report.html", cfg)
    text = (tmp_path / "report.html").read_text()
    assert "OPTIMISTIC" in text and "cutoff_on_test" in text


def test_a_patient_without_predictions_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = make_study(tmp_path)
    dl = pd.read_parquet(paths["dl"])
    dl[dl["patient_id"] != "P000"].to_parquet(paths["dl"])  # P000 is an internal-test patient
    with pytest.raises(CohortError, match="patient P000"):
        evaluate_study(paths, tmp_path / "index.parquet", tmp_path / "splits.json", None,
                       evaluation_outputs(tmp_path / "ev"), CFG)


def test_report_is_self_contained(study, tmp_path):
    root, files = study
    gradcam = tmp_path / "gradcam"
    from PIL import Image

    for fold in (0, 1):
        (gradcam / f"fold{fold}").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (255, 0, 0)).save(gradcam / f"fold{fold}" / f"cam_{i}.png")
        (gradcam / f"fold{fold}" / "done.json").write_text(json.dumps({"images": ["cam_0.png", "cam_1.png"]}))
        Image.new("RGB", (8, 8), (0, 255, 0)).save(gradcam / f"fold{fold}" / "a_stale_from_an_earlier_run.png")
    figure = tmp_path / "cohort.png"
    Image.new("RGB", (8, 8), (0, 0, 255)).save(figure)
    inputs = ReportInputs.from_folder(files["metrics"].parent, gradcam=gradcam.glob("fold*/done.json"))
    out = build_report(inputs, tmp_path / "report" / "report.html", CFG, cohort_figure=figure)
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # nothing is fetched from elsewhere: every image is inline, no scripts or stylesheets are linked
    assert not re.findall(r'(?:src|href)="(?!data:)', text)
    images = re.findall(r'src="data:image/png;base64,', text)
    assert len(images) >= 3 + 2 + 1  # two ROC plots + per-fold AUC, two Grad-CAMs, the cohort figure
    final = json.loads(files["final_models"].read_text())
    first = final["dl"]["fold"] if final["dl"]["fold"] >= 0 else 0  # the mean final model has no fold of its own
    assert f"gradcam/fold{first}/cam_0.png" in text  # the final DL model's fold (if any) comes first
    assert "a_stale_from_an_earlier_run" not in text  # only the Grad-CAMs the training job declared
    assert "Chosen with the internal test cohort's labels" in text  # and captioned as chosen on the test labels
    for heading in ("Table 1", "Table 2", "Table 3", "Table 4", "Table S1", "Table S2", "DeLong", "Grad-CAM"):
        assert heading in text
    assert "target_sensitivity: 0.9" in text and "scikit-learn" in text  # config YAML and package versions
    assert "Chosen: k = 20" in text and "logistic_l1" in text  # Table S1 and the fusion's choice
    assert json.loads((out.parent / "versions.json").read_text())["numpy"] == np.__version__


def test_report_headline_and_evidence(study, tmp_path):
    """The headline box opens the report; every evidence section is there, numbers shown with their interval."""
    root, files = study
    text = build_report(ReportInputs.from_folder(files["metrics"].parent), tmp_path / "report.html",
                        CFG).read_text(encoding="utf-8")
    box = text.index("At a glance")
    assert box < text.index("<h2>Final models</h2>") < text.index("Final models with intervals")
    for heading in ("Calibration", "Clinical utility", "Subgroups: centre, vendor, sex, age", "AUC differences",
                    "Per 100 patients", "LGE avoided /100", "Do the images add to the clinical variables?", "TRIPOD+AI",
                    "Missing clinical values before imputation", "Number of images and the score",
                    "Sample size (expected 95 % half-widths"):
        assert heading in text, heading
    assert re.search(r"\d\.\d\d \(\d\.\d\d–\d\.\d\d\)", text)  # e.g. 0.80 (0.52–0.95)
    ev = json.loads(files["evidence"].read_text())
    assert [c["role"] for c in ev["cohorts"]] == ["development (out-of-fold validation)", "internal test", "external"]
    assert ev["cohorts"][1]["n_patients"] == 14 and ev["proportion_interval"] == "wilson"


def test_report_reads_the_files_its_rule_declares(study, tmp_path):
    """Issue 26: the report opens the files its rule declares, wherever they lie, not names in one folder: each
    evaluation file moved to a folder of its own and declared there gives the same report, byte for byte; a file
    the report reads but the rule does not declare, or two declared files of one name, are clear errors."""
    root, files = study
    by_folder = build_report(ReportInputs.from_folder(files["metrics"].parent), tmp_path / "a" / "report.html",
                             CFG).read_text(encoding="utf-8")
    declared: dict[str, str | list[str]] = {}
    for i, (key, path) in enumerate(sorted(files.items())):
        moved = tmp_path / "declared" / f"d{i}" / Path(path).name
        moved.parent.mkdir(parents=True)
        moved.write_bytes(Path(path).read_bytes())
        declared[key] = str(moved)
    declared["mlflow"] = str(tmp_path / "no-such-tracking-state.json")  # a dependency only: never read
    by_rule = build_report(ReportInputs.from_rule(declared), tmp_path / "b" / "report.html",
                           CFG).read_text(encoding="utf-8")
    assert by_rule == by_folder and "At a glance" in by_rule

    with pytest.raises(CinescarError, match="reads 'utility.csv', which its rule does not declare"):
        build_report(ReportInputs.from_rule({k: v for k, v in declared.items() if k != "utility"}),
                     tmp_path / "c" / "report.html", CFG)
    with pytest.raises(CinescarError, match="two inputs named 'metrics.csv'"):
        ReportInputs.from_rule({**declared, "tables": [declared["table1"], str(tmp_path / "x" / "metrics.csv")]})
