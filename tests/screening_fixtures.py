"""A tiny trained study, made by calling each stage's library function in the workflow's order.

Used by `tests/test_screening_bundle.py` (once per session) and by `benchmarks/screen_speed.py`. It writes
exactly the files the workflow writes (architecture.md, "Artifacts") under `root/results/`, so the bundle is
built from the same inputs as in a real run; only the sizes are small (2 folds, a CNN of base width 2, one
epoch, one fusion classifier, a short pyradiomics parameter file).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from conftest import make_cohort  # noqa: E402

# Original + Square images, three feature classes: ~20 ms per image instead of ~150 ms for the shipped file,
# and two image types, so the screening's "extract only the features the models read" logic is exercised.
TINY_RADIOMICS_PARAMS = """\
setting:
  force2D: false
  label: 1
  minimumROIDimensions: 2
  minimumROISize: 16
  binCount: 32
  normalize: true
  normalizeScale: 100
  voxelArrayShift: 300
  resampledPixelSpacing:
  distances: [1]
  symmetricalGLCM: true
  additionalInfo: false
imageType:
  Original: {}
  Square: {}
featureClass:
  shape2D:
  firstorder:
  glcm:
"""


@dataclass
class TinyStudy:
    """Where the tiny study's files are (all under `root`, the study's working directory)."""

    root: Path
    cohort: Path
    cfg: dict

    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def folds(self) -> list[int]:
        return list(range(int(self.cfg["splits"]["folds"])))

    def workflow_inputs(self) -> dict:
        """The `bundle` rule's inputs, as keyword arguments of `build_bundle_from_workflow`."""
        p = self.path
        return dict(
            final_models=p("results/evaluation/final_models.json"),
            metrics=p("results/evaluation/metrics.csv"),
            radiomics_models=[p(f"results/radiomics/fold{f}/model.joblib") for f in self.folds],
            radiomics_chosen_k=p("results/radiomics/chosen_k.json"),
            dl_models=[p(f"results/dl/fold{f}/model.ckpt") for f in self.folds],
            dl_hparams=[p(f"results/dl/fold{f}/hparams.json") for f in self.folds],
            fusion_models=[p(f"results/fusion/fold{f}/model.joblib") for f in self.folds],
            fusion_choice=p("results/fusion/choice.json"),
            radiomics_params=Path(self.cfg["radiomics"]["params"]),
            index=p("results/preprocess/index.parquet"),
            splits=p("results/splits/splits.json"),
            manifest=self.cohort / "manifest.csv",
        )


@contextmanager
def working_dir(path: Path):
    """MLflow's offline records and every relative `results/` path land in `path`."""
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def tiny_config(root: Path, params_file: Path, base_width: int = 2, max_epochs: int = 1, folds: int = 2,
                radiomics_k: tuple[int, ...] = (5,)) -> dict:
    from cinescar.config import load_config

    return load_config(overrides={
        "seed": 3,
        "cohort": {"path": str(root / "cohort"), "synthetic": False, "name": "tiny"},
        "splits": {"folds": folds, "test_fraction": 0.25},
        "mlflow": {"enabled": False},
        "radiomics": {"params": str(params_file), "k_candidates": list(radiomics_k), "inner_folds": 3},
        "dl": {"network": {"base_width": base_width}, "training": {"max_epochs": max_epochs},
               "tuning": {"enabled": False}, "gradcam": {"n_images": 1}},
        "fusion": {"k_candidates": [5], "classifiers": ["logistic_l1"], "threads": 1},
        "evaluation": {"n_bootstrap": 0},
    })


def train_tiny_study(root: Path, n_internal: int = 14, n_external: int = 2, n_slices: int = 4, size: int = 48,
                     params_text: str = TINY_RADIOMICS_PARAMS, base_width: int = 2, max_epochs: int = 1,
                     params_file: Path | None = None) -> TinyStudy:
    """Cohort -> preprocessing -> splits -> radiomics -> DL -> fusion -> evaluation, all under `root`."""
    from cinescar.cohort.contract import read_manifest, slugify
    from workflow_names import evaluation_outputs, gather_dl, train_dl_fold
    from cinescar.evaluation.study import evaluate_study
    from cinescar.fusion import run as fusion_run
    from cinescar.cohort.splits import make_splits, save_splits
    from cinescar.preprocessing.store import gather_index, preprocess_center
    from cinescar.radiomics import run as radiomics_run
    from cinescar.radiomics.extract import extract_center, gather_features

    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    cohort = make_cohort(root / "cohort", n_internal=n_internal, n_external=n_external, size=size,
                         n_slices=n_slices)
    if params_file is None:
        params_file = root / "radiomics_params.yaml"
        params_file.write_text(params_text)
    cfg = tiny_config(root, Path(params_file).resolve(), base_width=base_width, max_epochs=max_epochs)
    study = TinyStudy(root=root, cohort=cohort, cfg=cfg)
    folds = study.folds
    with working_dir(root):
        manifest = read_manifest(cohort)
        slugs = sorted({slugify(c) for c in manifest["center"]})
        pre = Path("results/preprocess")
        for slug in slugs:
            preprocess_center(cohort, slug, pre / "centers" / slug, cfg)
        gather_index([pre / "centers" / s / "index.parquet" for s in slugs], pre / "index.parquet")
        save_splits(make_splits(manifest, cfg["splits"]["test_fraction"], len(folds), cfg["seed"]),
                    "results/splits/splits.json")

        rad = Path("results/radiomics")
        for slug in slugs:
            extract_center(pre / "centers" / slug / "index.parquet", params_file, rad / "centers" / f"{slug}.parquet",
                           rad / "centers" / f"{slug}.failures.csv")
        gather_features([rad / "centers" / f"{s}.parquet" for s in slugs],
                        [rad / "centers" / f"{s}.failures.csv" for s in slugs], rad / "features.parquet",
                        rad / "failures.csv")
        for f in folds:
            radiomics_run.run_fold(rad / "features.parquet", pre / "index.parquet", "results/splits/splits.json", f,
                                   cfg, rad / f"fold{f}/scores.json", rad / f"fold{f}/predictions_by_k.parquet",
                                   rad / f"fold{f}/model.joblib", rad / f"fold{f}/selected.csv")
        radiomics_run.choose([rad / f"fold{f}/scores.json" for f in folds],
                             [rad / f"fold{f}/predictions_by_k.parquet" for f in folds],
                             [rad / f"fold{f}/selected.csv" for f in folds], rad / "chosen_k.json",
                             rad / "predictions.parquet", rad / "selected_features.csv", rad / "cv_scores.csv",
                             rad / "feature_recurrence.csv")

        for f in folds:
            train_dl_fold(pre, None, cfg, f, f"results/dl/fold{f}", f"results/dl/gradcam/fold{f}",
                          splits="results/splits/splits.json")
        gather_dl([f"results/dl/fold{f}/predictions.parquet" for f in folds], "results/dl/predictions.parquet")

        fus = Path("results/fusion")
        for f in folds:
            fusion_run.run_fold(rad / "features.parquet", f"results/dl/fold{f}/features.parquet", pre / "index.parquet",
                                "results/splits/splits.json", f, cfg, fus / f"fold{f}/scores.json",
                                fus / f"fold{f}/predictions_by_config.parquet", fus / f"fold{f}/model.joblib")
        fusion_run.choose([fus / f"fold{f}/scores.json" for f in folds],
                          [fus / f"fold{f}/predictions_by_config.parquet" for f in folds], cfg, fus / "choice.json",
                          fus / "classifiers.csv", fus / "predictions.parquet", fus / "selected_features.csv")

        evaluate_study({m: f"results/{m}/predictions.parquet" for m in ("radiomics", "dl", "fusion")},
                       pre / "index.parquet", "results/splits/splits.json", cohort / "manifest.csv",
                       evaluation_outputs("results/evaluation"), cfg,
                       selected_features={"radiomics": (rad / "selected_features.csv", rad / "chosen_k.json"),
                                          "fusion": (fus / "selected_features.csv", fus / "choice.json")},
                       fusion_classifiers=fus / "classifiers.csv", fusion_choice=fus / "choice.json")
    return study


def build_segmenter_bundle(study: TinyStudy) -> Path:
    """The tiny study's bundle with a smoke-sized segmenter trained (cross-fitted, two networks) on its
    development patients' masks: `results/bundle_seg` under the study's root."""
    from cinescar.config import load_config
    from cinescar.screening.publish import build_bundle
    from cinescar.segmentation.run import crossfit_job, train_job

    root = study.root / "results" / "segmentation"
    cfg = load_config(overrides={"seed": 3, "mlflow": {"enabled": False}, "preprocessing": {"size": 64},
                                 "segmentation": {"channels": [4, 8, 16], "max_epochs": 3, "crop": 32,
                                                  "batch_size": 8, "learning_rate": 0.01}})
    with working_dir(study.root):
        crossfit_job({"splits": str(study.path("results/splits/splits.json"))},
                     {"crossfit": str(root / "crossfit.json")}, {"cfg": cfg})
        for k in (0, 1):
            train_job({"manifest": str(study.cohort / "manifest.csv"), "crossfit": str(root / "crossfit.json")},
                      {"model": str(root / f"fold{k}/model.pt"), "meta": str(root / f"fold{k}/model.json")},
                      {"cfg": cfg}, k)
        out = study.root / "results" / "bundle_seg"
        build_bundle(out, **study.workflow_inputs(), cfg={**study.cfg, "segmentation": cfg["segmentation"]},
                     segmentation_models=[root / f"fold{k}/model.pt" for k in (0, 1)],
                     segmentation_metas=[root / f"fold{k}/model.json" for k in (0, 1)])
    return out
