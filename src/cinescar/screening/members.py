"""Reading and writing one bundle member (a file inside a bundle folder) without running code from it.

Why one module: a bundle is what a study hands to another site, so anyone who can write the folder (and
rewrite `bundle.json`'s hashes) can put any bytes in a member. Each loader here turns hash-verified bytes into
an object with a format whose loading cannot execute code, and turns *every* failure into one
`CinescarError` naming the member (its path inside the bundle) and the bundle folder -- never a library
traceback or "internal error". New members (e.g. a segmentation network's state_dict and hyper-parameter
JSON) reuse these functions instead of calling torch/json/skops directly.

- JSON (`load_json`), YAML (`load_yaml`): parsed as data (`yaml.safe_load`).
- Network weights (`load_state_dict`, `load_cnn_member`): `torch.load(weights_only=True)`, which refuses any
  pickled object other than tensors and plain containers.
- scikit-learn models (`dump_sklearn`, `load_sklearn`): `skops.io`, loaded with `trusted=TRUSTED_TYPES`, the
  explicit list of the non-default types the bundle's models contain. skops refuses a file holding any
  other type before creating an object of it; `dump_sklearn` refuses to *write* such a model, so a bundle
  never holds a member this loader would refuse (extend the list only after checking the new type, and
  tests/test_screening_bundle.py recomputes it from fitted objects).
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from cinescar.errors import CinescarError

log = logging.getLogger(__name__)

TRUSTED_TYPES: tuple[str, ...] = (
    "cinescar.radiomics.model.RadiomicsModel",
    "cinescar.fusion.model.FusionModel",
    "numpy.dtype",  # the imputer's and scaler's fitted dtype
    "sklearn.calibration._CalibratedClassifier",  # svm: CalibratedClassifierCV(SVC)
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # hist_gradient_boosting
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",  # mlp
    "sklearn.tree._tree.Tree",  # random_forest
)
"""The types, beyond skops' default-trusted ones (scikit-learn estimators, numpy arrays, builtins), that the
bundle's models contain: the two cinescar model classes and what each fusion classifier
(`cinescar.fusion.model.CLASSIFIERS`) holds once fitted. The one list `load_sklearn` trusts."""


def member_error(root: str | Path, member: str, problem: str) -> CinescarError:
    """The error of a bundle member that cannot be used: names the member, the bundle, and what to do."""
    return CinescarError(f"bundle {root}: member {member} {problem}; rebuild the bundle with this cinescar "
                         "(snakemake results/bundle/bundle.json) or get it again from its source")


def _why(exc: BaseException) -> str:
    """One line of a library's exception (torch's weights_only message spans a page)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def _bytes(root: str | Path, member: str, data: bytes | None) -> bytes:
    """The member's hash-verified bytes, or (data None) the file's bytes."""
    if data is not None:
        return data
    path = Path(root) / member
    try:
        return path.read_bytes()
    except OSError as exc:
        raise member_error(root, member, f"cannot be read ({_why(exc)})") from None


def load_json(root: str | Path, member: str, data: bytes | None = None) -> Any:
    """A JSON member as Python data."""
    try:
        return json.loads(_bytes(root, member, data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise member_error(root, member, f"is not valid JSON ({_why(exc)})") from None


def load_yaml(root: str | Path, member: str, data: bytes | None = None) -> dict:
    """A YAML member that must be a mapping (the pyradiomics parameter file), parsed as data only."""
    import yaml

    try:
        value = yaml.safe_load(_bytes(root, member, data).decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise member_error(root, member, f"is not valid YAML ({_why(exc)})") from None
    if not isinstance(value, dict):
        raise member_error(root, member, f"is not a YAML mapping (got {type(value).__name__})")
    return value


def load_state_dict(root: str | Path, member: str, data: bytes | None = None) -> dict[str, Any]:
    """A torch state_dict member (tensors by name), read with weights_only: a pickled object is refused."""
    import torch

    blob = _bytes(root, member, data)
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError (a pickled object), RuntimeError (not a torch zip), ...: any
        raise member_error(root, member, f"is not plain network weights ({_why(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise member_error(root, member, f"is not a state_dict of named tensors (got {type(state).__name__})")
    return state


def load_cnn_member(network: dict, root: str | Path, member: str, data: bytes | None = None) -> Any:
    """The DL stage's CNN (`cinescar.dl.inference.load_network`) with the member's weights (weights_only)."""
    from cinescar.dl.inference import load_network

    state = load_state_dict(root, member, data)
    try:
        return load_network(network, state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:  # missing/unexpected keys, shape mismatch
        raise member_error(root, member, f"does not fit its network ({_why(exc)})") from None


def dump_sklearn(obj: Any, path: str | Path, member: str) -> None:
    """Write a fitted model with skops; refuse one whose types `load_sklearn` would not trust.

    Why refuse at build time: a bundle that cannot be loaded safely is better not written at all (the
    alternative, a pickle behind a pinned digest, would run code wherever the bundle travels).
    """
    import skops.io as sio

    try:
        blob = sio.dumps(obj)
    except Exception as exc:  # skops names the attribute it cannot represent
        raise CinescarError(f"bundle member {member}: skops cannot store this {type(obj).__name__} "
                            f"({_why(exc)})") from None
    unknown = sorted(set(sio.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES))
    if unknown:
        raise CinescarError(f"bundle member {member}: the model holds type(s) {unknown} that bundle loading does "
                            "not trust (cinescar.screening.members.TRUSTED_TYPES); use another classifier or "
                            "extend that list after checking the types cannot run code when loaded")
    Path(path).write_bytes(blob)


def load_sklearn(root: str | Path, member: str, data: bytes | None = None, expected: type | None = None) -> Any:
    """A skops member, trusting only `TRUSTED_TYPES`; `expected`: the class the object must be.

    The untrusted types are listed before loading, so a forged file is refused before any object of it is
    created. scikit-learn version differences become one logged warning.
    """
    import skops.io as sio

    blob = _bytes(root, member, data)
    try:
        untrusted = sorted(set(sio.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES))
    except Exception as exc:  # not a zip, no schema, ...: skops raises whatever its reader hits
        raise member_error(root, member, f"is not a skops file ({_why(exc)})") from None
    if untrusted:
        raise member_error(root, member, f"holds type(s) {untrusted} that are not trusted; refusing to load it")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obj = sio.loads(blob, trusted=list(TRUSTED_TYPES))
    except Exception as exc:  # a malformed tree of trusted types
        raise member_error(root, member, f"cannot be loaded ({_why(exc)})") from None
    for w in caught:
        if "Version" in type(w.message).__name__ or "version" in str(w.message).lower():
            log.warning("bundle %s: %s: %s", root, member, w.message)
    if expected is not None and not isinstance(obj, expected):
        raise member_error(root, member, f"holds a {type(obj).__name__}, not a {expected.__name__}")
    return obj
