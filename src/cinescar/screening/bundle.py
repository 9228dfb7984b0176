"""The study's final models frozen as one versioned, hash-checked folder: the model bundle.

Why a bundle: screening a new exam must use exactly the models the study reported -- per model (Radiomics,
DL, DL-Radiomics) the final model of `results/evaluation/final_models.json` (by default all fold models, whose
patient probabilities are averaged; with `evaluation.final_model: best_on_test` the paper's one fold) and its
cut-off (by default the pooled out-of-fold validation cut-off) -- together with everything that turns an exam into
their inputs (preprocessing settings, the pyradiomics parameter file, the CNN that makes the fused model's
DL features). Copying those into one folder, with the SHA-256 of every file, means a bundle keeps working
after `results/` is cleaned or rerun, and can be shipped to another machine.

Layout (`results/bundle/`):

| file | content |
|---|---|
| `bundle.json` | format (`cinescar-bundle/3`), creation time, cinescar version, SHA-256 of every other file |
| `metadata.json` | per model the folds it averages, the final-model rule, the cut-off and its validation sensitivity, preprocessing settings, training ranges (for the out-of-distribution check), config, package versions, SHA-256 of the training manifest |
| `radiomics_params.yaml` | the pyradiomics parameter file, copied |
| `radiomics/fold{f}.skops` | the fitted `RadiomicsModel` of each fold the final model uses, at the chosen k (imputer, scaler, selected features, classifier) |
| `fusion/fold{f}.skops` | the fitted `FusionModel` of each fold the final model uses, at the chosen k and classifier |
| `cnn/fold{f}.pt`, `cnn/fold{f}.json` | CNN weights (a plain state_dict) and hyper-parameters of each fold a model needs: the DL model's, and the fused model's (its DL features come from its own fold's CNN) |

A model's patient probability is the mean over its fold models of each fold model's patient probability
(the maximum over the exam's images), as in the evaluation (`cinescar.evaluation.screening.final_probabilities`);
with one fold that is the fold model's own.

Loading runs no code from the bundle: `bundle.json` (plain JSON) is read first; the format version is
checked and the SHA-256 of *every* listed file is compared **before** anything is deserialized; then each
member is read by `cinescar.screening.members` in a format whose loading cannot execute code -- JSON and YAML
as data, CNN weights with `torch.load(weights_only=True)`, the scikit-learn models with `skops.io` trusting
only `members.TRUSTED_TYPES` -- and any member that fails is a `CinescarError` naming it and the bundle.
Format 2 (joblib pickles, which run code when loaded) is refused with the advice to rebuild. Hashes stored
next to the files detect corruption and accidental edits, not a deliberate forger who rewrites bundle.json
(who can now make a bundle give wrong numbers, but not run code); pin `bundle.json`'s own digest
(`expected_digest`, `cinescar screen --bundle-sha256`) for that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cinescar import __version__
from cinescar.versions import package_versions
from cinescar.errors import CinescarError
from cinescar.models import IMAGE_MODELS, MODEL_LABELS
from cinescar.screening.ood import training_ranges
from cinescar.screening.members import dump_sklearn, load_cnn_member, load_json, load_sklearn, load_yaml, member_error

log = logging.getLogger(__name__)

FORMAT_NAME = "cinescar-bundle"
FORMAT_VERSION = 3
"""3: scikit-learn models as skops files (radiomics|fusion/fold{f}.skops), loaded without running code;
2: every fold of the final model (mean rule), as joblib pickles (refused: they run code when loaded)."""
FORMAT = f"{FORMAT_NAME}/{FORMAT_VERSION}"
BUNDLE_JSON = "bundle.json"
METADATA_JSON = "metadata.json"
RADIOMICS_PARAMS = "radiomics_params.yaml"
RADIOMICS_MODEL = "radiomics/fold{fold}.skops"
FUSION_MODEL = "fusion/fold{fold}.skops"
MODELS = IMAGE_MODELS
"""The models a bundle ships: the paper's image models (the clinical and combined models need clinical inputs a
screened exam does not carry)."""


def _section(cfg: dict, *keys: str) -> dict[str, Any]:
    """A config section with the schema's defaults filled (for a config that was not validated)."""
    from cinescar.config import schema_section

    return schema_section(cfg, *keys)


def bundle_settings(cfg: dict) -> dict[str, Any]:
    """The `bundle` config section with the schema's defaults filled."""
    return _section(cfg, "bundle")


def _public(value: Any) -> Any:
    from cinescar.tracking import public

    return public(value)


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------- building


def _by_fold(paths: list[str | Path], fold: int, what: str) -> Path:
    """The one path of `paths` that lies in a `fold{fold}` folder (the workflow's per-fold layout)."""
    hits = [Path(p) for p in paths if Path(p).parent.name == f"fold{int(fold)}"]
    if len(hits) != 1:
        raise CinescarError(f"no single {what} file of fold {fold} among {[str(p) for p in paths]}")
    return hits[0]


def operating_points(final_models: str | Path, metrics: str | Path) -> dict[str, dict]:
    """Per model: the final model's folds, its cut-off (chosen on validation patients) and the validation sensitivity.

    The cut-off is `final_models.json`'s (written by the evaluation: the pooled out-of-fold cut-off, or a fold's
    own); `metrics.csv` must carry the same cut-off on the final model's rows (a disagreement means the two
    come from different evaluation runs). The validation sensitivity is the pooled validation patients' (in
    final_models.json), or, for a per-fold cut-off, the fold's `val` row of metrics.csv.
    """
    import pandas as pd

    final = json.loads(Path(final_models).read_text(encoding="utf-8"))
    missing = [m for m in MODELS if m not in final]
    if missing:
        raise CinescarError(f"{final_models} has no final model for {missing}")
    table = pd.read_csv(metrics)
    out = {}
    for model in MODELS:
        info = final[model]
        fold = int(info["fold"])
        folds = [int(f) for f in info.get("folds", [fold])]
        op = str(info.get("operating_point", "validation"))
        rows = table[(table["model"] == model) & (table["fold"] == fold) & (table["operating_point"] == op)]
        if rows.empty:
            raise CinescarError(f"{metrics} has no {op} rows for the final {model} model (fold {fold})")
        cutoff = float(info["cutoff"])
        if not np.allclose(rows["cutoff"].astype(float), cutoff, rtol=0, atol=1e-12):
            raise CinescarError(f"{final_models} and {metrics} disagree on the {model} cut-off of fold {fold} "
                                f"({cutoff} vs {rows['cutoff'].iloc[0]}): rerun the evaluation")
        val = info.get("validation")
        if op == "validation" or not val:
            row = rows[rows["cohort"] == "val"]
            if len(row) != 1:
                raise CinescarError(f"{metrics} has no validation row for {model} fold {fold}")
            val = {k: row.iloc[0][k] for k in ("sensitivity", "specificity", "n_patients")}
        out[model] = {
            "label": MODEL_LABELS[model],
            "fold": fold,
            "folds": folds,
            "aggregation": "mean over the fold models of each one's patient probability (maximum over images)",
            "cutoff": cutoff,
            "operating_point": op,
            "validation_sensitivity": float(val["sensitivity"]),
            "validation_specificity": float(val["specificity"]),
            "validation_patients": int(val["n_patients"]),
            "test_auc": info.get("test_auc"),
            "external_auc": info.get("external_auc"),
            "fold_rule": info.get("rule_label", info.get("rule", "fold with the highest internal-test AUC")),
            "optimistic": bool(info.get("optimistic", False)),
        }
    return out


def external_cohorts(manifest: str | Path) -> list[dict[str, Any]]:
    """The external cohorts the study scored (issue 12: a bundle says where it was tested), with n and LGE+ each.

    Names as the evaluation reports them (`evidence.external_names`: `external` or `external:<name>`); counts
    only, no patient."""
    import pandas as pd

    from cinescar.evaluation.evidence import external_names

    man = pd.read_csv(manifest, dtype={"patient_id": str}).drop_duplicates("patient_id").set_index("patient_id")
    names = pd.Series(external_names(man.reset_index(), None), dtype=object)
    lge = pd.to_numeric(man.loc[names.index, "lge"])
    return [{"name": str(name), "n_patients": int(len(g)), "n_pos": int(g.sum())}
            for name, g in lge.groupby(names.to_numpy(), sort=True)]


def _copy_cnn(ckpt: Path, hparams: Path, dest: Path, fold: int) -> dict[str, str]:
    """Copy one fold's CNN; check that it loads as plain weights (weights_only) into its network first."""
    from cinescar.dl.inference import load_model

    hp = json.loads(Path(hparams).read_text(encoding="utf-8"))
    if "network" not in hp:
        raise CinescarError(f"{hparams} has no 'network' hyper-parameters")
    load_model(ckpt, hparams)
    (dest / "cnn").mkdir(parents=True, exist_ok=True)
    weights, params = f"cnn/fold{fold}.pt", f"cnn/fold{fold}.json"
    shutil.copyfile(ckpt, dest / weights)
    (dest / params).write_text(json.dumps({"network": hp["network"], "fold": int(fold),
                                           "source": _public(str(ckpt))}, indent=1))
    return {"weights": weights, "hparams": params}


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Swap the finished bundle in, so a reader never sees a half-written one."""
    old = out_dir.with_name(out_dir.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old.exists():
        shutil.rmtree(old)


def build_bundle(
    out_dir: str | Path,
    *,
    final_models: str | Path,
    metrics: str | Path,
    radiomics_models: list[str | Path],
    radiomics_chosen_k: str | Path,
    dl_models: list[str | Path],
    dl_hparams: list[str | Path],
    fusion_models: list[str | Path],
    fusion_choice: str | Path,
    radiomics_params: str | Path,
    index: str | Path,
    splits: str | Path,
    manifest: str | Path,
    cfg: dict,
    run_cfg: dict | None = None,
    segmentation_models: list[str | Path] | None = None,
    segmentation_metas: list[str | Path] | None = None,
    segmentation_overlap: str | Path | None = None,
) -> Path:
    """Write the bundle folder `out_dir` from a finished study's files; returns the path of bundle.json.

    Per-fold inputs are lists over all folds (the workflow's layout); the folds named in `final_models`
    are picked from them. `cfg` holds the sections the bundle is made from (the rule's params); `run_cfg`,
    the workflow's whole config (default `cfg`), is only recorded (metadata `config`, `config_hash`, the
    training cohort's name) as the bundle's provenance.
    """
    from cinescar.config import config_hash
    from cinescar.fusion.run import load_model as load_fusion
    from cinescar.radiomics.run import load_model as load_radiomics

    out_dir = Path(out_dir)
    points = operating_points(final_models, metrics)
    folds = {m: points[m]["folds"] for m in MODELS}
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "radiomics").mkdir(parents=True)
    (tmp / "fusion").mkdir(parents=True)

    rad_files, fus_files, selected = {}, {}, {"radiomics": {}, "fusion": {}}
    for fold in folds["radiomics"]:
        rad = load_radiomics(_by_fold(radiomics_models, fold, "radiomics model"), chosen_k_path=radiomics_chosen_k)
        rad_files[str(fold)] = RADIOMICS_MODEL.format(fold=fold)
        dump_sklearn(rad, tmp / rad_files[str(fold)], rad_files[str(fold)])
        selected["radiomics"][str(fold)] = list(rad.selected)
    for fold in folds["fusion"]:
        fus = load_fusion(_by_fold(fusion_models, fold, "fusion model"), choice_path=fusion_choice)
        fus_files[str(fold)] = FUSION_MODEL.format(fold=fold)
        dump_sklearn(fus, tmp / fus_files[str(fold)], fus_files[str(fold)])
        selected["fusion"][str(fold)] = list(fus.selected)
    cnns = {}
    for fold in sorted({*folds["dl"], *folds["fusion"]}):
        cnns[str(fold)] = _copy_cnn(_by_fold(dl_models, fold, "DL model"), _by_fold(dl_hparams, fold, "DL hparams"),
                                    tmp, fold)
    if not Path(radiomics_params).is_file():
        raise CinescarError(f"pyradiomics parameter file not found: {radiomics_params}")
    shutil.copyfile(radiomics_params, tmp / RADIOMICS_PARAMS)

    segmenter = None
    if segmentation_models:
        from cinescar.segmentation.bundle_member import write_segmenter

        segmenter = write_segmenter(tmp, segmentation_models, segmentation_metas or [],
                                    _section(cfg, "segmentation", "qc"), segmentation_overlap)
    settings = bundle_settings(cfg)
    gradcam = _section(cfg, "dl", "gradcam")
    provenance = run_cfg or cfg
    models = {
        "radiomics": {**points["radiomics"], "files": rad_files, "k": int(rad.k), "failure_policy": rad.failure_policy,
                      "selected_features": selected["radiomics"]},
        "dl": {**points["dl"]},  # fold f's DL model is CNN f
        "fusion": {**points["fusion"], "files": fus_files, "k": int(fus.k), "classifier": fus.classifier_name,
                   "failure_policy": fus.failure_policy, "selected_features": selected["fusion"]},  # fold f's fused model reads CNN f's DL features
    }
    metadata = {
        "cinescar_version": __version__,
        "models": models,
        "cnn": cnns,
        "segmentation": segmenter,  # None: the study trained none; exams then need their masks
        "screening": {
            "target_sensitivity": float(_section(cfg, "screening")["target_sensitivity"]),
            "patient_probability": "mean over the model's fold models of each one's maximum over the exam's images",
            "positive": "patient probability >= cut-off (ties are positive)",
            "cutoff": "highest threshold whose sensitivity on the validation patients reaches the target "
                      "(pooled out-of-fold validation patients by default; see each model's operating_point)",
        },
        "preprocessing": dict(cfg.get("preprocessing", {})),
        "radiomics_params": RADIOMICS_PARAMS,
        "training_ranges": training_ranges(index, splits, sorted({f for fs in folds.values() for f in fs})),
        "ood_tolerance": float(settings["ood_tolerance"]),
        "gradcam": {"n_images": int(settings["gradcam_images"]), "layer": str(gradcam["layer"]),
                    "alpha": float(gradcam["alpha"])},
        "training_cohort": {"name": provenance.get("cohort", {}).get("name"), "manifest_sha256": sha256_file(manifest)},
        "external_cohorts": external_cohorts(manifest),  # scored on its own each; the report has their numbers
        "config": _public(provenance),  # the bundle is shipped: no credentials, no absolute paths
        "config_hash": config_hash(provenance),
        "versions": package_versions(),
    }
    (tmp / METADATA_JSON).write_text(json.dumps(metadata, indent=1, default=str))
    files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (tmp / BUNDLE_JSON).write_text(json.dumps({"format": FORMAT, "created_utc": created,
                                               "cinescar_version": __version__, "files": files}, indent=1))
    _replace_dir(tmp, out_dir)
    log.info("bundle %s: radiomics folds %s, DL folds %s, DL-Radiomics folds %s; %d files; bundle.json SHA-256 %s",
             out_dir, folds["radiomics"], folds["dl"], folds["fusion"], len(files),
             sha256_file(out_dir / BUNDLE_JSON))
    return out_dir / BUNDLE_JSON


# ---------------------------------------------------------------------------------------------- loading


def _safe_member(root: Path, name: str) -> Path:
    """A listed file name must stay inside the bundle (no absolute paths, no '..')."""
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or not name:
        raise CinescarError(f"bundle {root}: file name {name!r} in {BUNDLE_JSON} points outside the bundle")
    return root / rel


def verify_bundle(path: str | Path, expected_digest: str | None = None) -> tuple[dict, str]:
    """Check format version and every file's SHA-256 without deserializing anything; (bundle.json, its digest)."""
    listing, digest, _root, _data = _verified_bytes(path, expected_digest)
    return listing, digest


def _verified_bytes(path: str | Path, expected_digest: str | None = None) -> tuple[dict, str, Path, dict[str, bytes]]:
    """Read bundle.json and every file it lists once, check the digest, format and each SHA-256 on the bytes
    read, and return those bytes: loading deserializes exactly what was hashed (a file swapped between the
    check and the load cannot get in)."""
    root = Path(path)
    if root.is_file() and root.name == BUNDLE_JSON:
        root = root.parent
    index_file = root / BUNDLE_JSON
    if not index_file.is_file():
        raise CinescarError(f"{root} is not a cinescar bundle: it has no {BUNDLE_JSON}")
    raw = index_file.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if expected_digest is not None and digest != str(expected_digest).strip().lower():
        raise CinescarError(f"bundle {index_file} has SHA-256 {digest}, not the expected {expected_digest}: "
                            "refusing to load it")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CinescarError(f"{index_file} is not valid JSON ({exc})") from None
    fmt = str(manifest.get("format", "")) if isinstance(manifest, dict) else ""
    name, _, version = fmt.partition("/")
    if name != FORMAT_NAME or not version.isdigit():
        raise CinescarError(f"{index_file}: format {fmt!r} is not a cinescar bundle format ({FORMAT})")
    if int(version) == 2:
        raise CinescarError(f"bundle {root} has the old format {fmt}, whose scikit-learn models are joblib pickles "
                            f"(loading them can run code); cinescar {__version__} reads {FORMAT} only (skops, no "
                            "code): rebuild the bundle (snakemake results/bundle/bundle.json --forcerun bundle)")
    if int(version) != FORMAT_VERSION:
        raise CinescarError(f"bundle {root} has the incompatible format version {fmt}; cinescar {__version__} reads "
                            f"{FORMAT} only: rebuild the bundle (snakemake results/bundle/bundle.json) or use the "
                            f"cinescar version that made it ({manifest.get('cinescar_version', 'unknown')})")
    files = manifest.get("files")
    if not isinstance(files, dict) or METADATA_JSON not in files:
        raise CinescarError(f"{index_file} lists no files (or no {METADATA_JSON})")
    data: dict[str, bytes] = {}
    for name, expected in files.items():
        member = _safe_member(root, name)
        if not member.is_file():
            raise CinescarError(f"bundle file {member} is missing (listed in {index_file})")
        content = member.read_bytes()
        found = hashlib.sha256(content).hexdigest()
        if found != expected:
            raise CinescarError(f"bundle file {member} does not match its SHA-256 in {BUNDLE_JSON} (expected "
                                f"{str(expected)[:16]}..., found {found[:16]}...): the bundle was modified or "
                                "corrupted after it was built; refusing to load it")
        data[name] = content
    return manifest, digest, root, data


@dataclass
class Bundle:
    """A loaded bundle: the three final models (each a dict fold -> fold model), the CNNs, cut-offs, settings."""

    root: Path
    listing: dict
    digest: str
    meta: dict
    radiomics: dict[int, Any]
    fusion: dict[int, Any]
    cnns: dict[int, Any]
    _extractor: Any = field(default=None, repr=False)
    _params_bytes: bytes | None = field(default=None, repr=False)
    segmenter: Any = None
    """The cross-fitted segmentation networks (`cinescar.segmentation.inference.Segmenter`), or None."""
    """The pyradiomics parameter file as hashed at load time (the extractor is built from these bytes)."""

    @property
    def models(self) -> dict[str, dict]:
        return self.meta["models"]

    def folds(self, model: str) -> list[int]:
        """The fold models whose patient probabilities the final model averages."""
        return [int(f) for f in self.models[model]["folds"]]

    def cutoff(self, model: str) -> float:
        return float(self.models[model]["cutoff"])

    def cnn(self, model: str, fold: int | None = None) -> Any:
        """The CNN of a DL or DL-Radiomics fold model (fold f's model reads CNN f); default its first fold."""
        return self.cnns[int(self.folds(model)[0] if fold is None else fold)]

    @property
    def preprocess_settings(self):
        from cinescar.preprocessing.images import PreprocessSettings

        return PreprocessSettings.from_config({"preprocessing": self.meta["preprocessing"]})

    @property
    def radiomics_params(self) -> Path:
        return self.root / self.meta["radiomics_params"]

    def radiomics_features_needed(self) -> list[str] | None:
        """The radiomics features either model reads, or None when every feature must be computed.

        Imputation and min-max scaling work column by column, so unselected features cannot change a
        prediction -- except under `failure_policy: exclude`, where a failure in *any* feature excludes the
        image; then everything is extracted, as in the workflow.
        """
        from cinescar.fusion.model import DL_COLUMN

        fitted = [*self.radiomics.values(), *self.fusion.values()]
        if any(m.failure_policy == "exclude" for m in fitted):
            return None
        names = [n for m in fitted for n in m.selected if not DL_COLUMN.match(n)]
        return list(dict.fromkeys(names))

    def extractor(self):
        """A pyradiomics extractor built once from the bundle's parameter file, restricted to needed features."""
        if self._extractor is None:
            import tempfile

            from cinescar.radiomics.restricted import restricted_extractor

            needed = self.radiomics_features_needed()
            member = self.meta["radiomics_params"]
            with tempfile.TemporaryDirectory(prefix="cinescar-bundle-") as tmp:
                params = self.radiomics_params
                if self._params_bytes is not None:  # pyradiomics reads a file: the verified bytes, not the disk's
                    params = Path(tmp) / Path(member).name
                    params.write_bytes(self._params_bytes)
                try:
                    self._extractor = restricted_extractor(params, needed)
                except Exception as exc:  # pyradiomics' schema check (or a name it rejects): say which member
                    why = " ".join(str(exc).replace(str(params), member).split())[:300]
                    raise member_error(self.root, member,
                                       f"is not a usable pyradiomics parameter file ({why})") from None
        return self._extractor

    def describe(self) -> dict:
        """What a screening result says about the bundle that produced it."""
        return {"path": str(self.root), "format": self.listing["format"], "sha256": self.digest,
                "created_utc": self.listing.get("created_utc"), "cinescar_version": self.meta.get("cinescar_version"),
                "training_cohort": self.meta.get("training_cohort", {}),
                "external_cohorts": self.meta.get("external_cohorts", [])}


def _load_cnn(root: Path, weights: str, hparams: str, data: dict[str, bytes]) -> Any:
    """A CNN from verified bytes: the network its hyper-parameters member describes, weights with weights_only."""
    from cinescar.dl.network import build_network

    hp = load_json(root, hparams, data[hparams])
    if not isinstance(hp, dict) or not isinstance(hp.get("network"), dict):
        raise member_error(root, hparams, "has no 'network' hyper-parameters mapping")
    try:
        build_network(hp["network"])  # a hyper-parameters member that builds no network is named as such
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise member_error(root, hparams, f"describes no buildable network ({type(exc).__name__}: {exc})") from None
    return load_cnn_member(hp["network"], root, weights, data[weights])


def load_bundle(path: str | Path, expected_digest: str | None = None) -> Bundle:
    """Verify (format, every hash), then load from the very bytes that were hashed: JSON and YAML as data, CNN
    weights with weights_only, scikit-learn models with skops (trusted types only). Each file is read once."""
    from cinescar.fusion.model import FusionModel
    from cinescar.radiomics.model import RadiomicsModel

    listing, digest, root, data = _verified_bytes(path, expected_digest)
    meta = load_json(root, METADATA_JSON, data[METADATA_JSON])
    try:
        fold_files = {m: {int(f): name for f, name in meta["models"][m]["files"].items()} for m in ("radiomics", "fusion")}
        needed = {meta["radiomics_params"], *fold_files["radiomics"].values(), *fold_files["fusion"].values()}
        needed |= {f for entry in meta["cnn"].values() for f in (entry["weights"], entry["hparams"])}
        from cinescar.segmentation.bundle_member import segmenter_files

        needed |= segmenter_files(meta.get("segmentation"))
        for model in MODELS:
            float(meta["models"][model]["cutoff"])
        cnn_files = {int(fold): (entry["weights"], entry["hparams"]) for fold, entry in meta["cnn"].items()}
        meta["preprocessing"], meta["training_ranges"], meta["gradcam"], meta["screening"]  # noqa: B018
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CinescarError(f"bundle {root}: {METADATA_JSON} is malformed ({type(exc).__name__}: {exc}); rebuild the "
                            "bundle (snakemake results/bundle/bundle.json)") from None
    unlisted = sorted(needed - set(data))
    if unlisted:
        raise CinescarError(f"bundle {root}: {unlisted} are used but not listed (hashed) in {BUNDLE_JSON}")
    load_yaml(root, meta["radiomics_params"], data[meta["radiomics_params"]])
    theirs = meta.get("versions", {}).get("scikit-learn")
    from importlib.metadata import version

    if theirs and theirs != version("scikit-learn"):
        log.warning("bundle %s was made with scikit-learn %s, this environment has %s: predictions may differ",
                    root, theirs, version("scikit-learn"))
    cnns = {fold: _load_cnn(root, w, h, data) for fold, (w, h) in cnn_files.items()}
    radiomics = {f: load_sklearn(root, name, data[name], expected=RadiomicsModel)
                 for f, name in fold_files["radiomics"].items()}
    fusion = {f: load_sklearn(root, name, data[name], expected=FusionModel) for f, name in fold_files["fusion"].items()}
    segmenter = None
    if meta.get("segmentation"):
        from cinescar.segmentation.bundle_member import load_segmenter_member

        segmenter = load_segmenter_member(meta["segmentation"], data, root)
    return Bundle(root=root, listing=listing, digest=digest, meta=meta, radiomics=radiomics, fusion=fusion, cnns=cnns,
                  _params_bytes=data[meta["radiomics_params"]], segmenter=segmenter)
