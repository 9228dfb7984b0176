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

This module holds the format, its verification and loading; building a bundle from the workflow's files is
`cinescar.screening.publish` (the `bundle` job, issue 26).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from cinescar import __version__
from cinescar.errors import CinescarError
from cinescar.models import IMAGE_MODELS
from cinescar.screening.members import load_cnn_member, load_json, load_sklearn, load_yaml, member_error

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


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
