"""A pyradiomics extractor limited to the features a fitted model reads.

Why: screening one exam needs only the radiomic features the final Radiomics and DL-Radiomics models
selected (imputation and min-max scaling work column by column, so the others cannot change a prediction);
computing only those makes `cinescar screen` several times faster. pyradiomics computes each feature
independently of which others are enabled, so the restricted extraction gives bit-identical values
(tests/test_screening_bundle.py checks it).

The subset is set through pyradiomics' public API (`disableAllImageTypes` / `enableImageTypeByName`,
`disableAllFeatures` / `enableFeaturesByName`), keeping each image type's custom settings from the
parameter file. One pyradiomics extractor computes every enabled feature class on every enabled image type
(a cross product): models reading `logarithm_ngtdm_Strength`, `gradient_glcm_Idm` and first-order features
of five other types got NGTDM and GLCM on all ten filtered images (Wavelet gives four). So image types are
grouped by the feature classes they need, and each group gets its own extractor (`GroupedExtractor`, one
`execute`): 12 instead of 30 class computations per image there, 0.57-0.58 x the time (20 images, busy
2-core machine). One extractor per image type repeats pyradiomics' per-call loading, normalisation and mask
check more often (~10 ms an image each) and measured no faster (0.61-0.64 x). pyradiomics filters and
crops each image type separately after that same loading, so the values equal one extractor's
(tests/test_screening_bundle.py; benchmarks/dicom_screen_speed.py prints the probabilities).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from cinescar.radiomics.extract import make_extractor

log = logging.getLogger(__name__)


def image_type_of(prefix: str, types: list[str]) -> str | None:
    """pyradiomics image type of a feature-name prefix ('wavelet-LH' -> Wavelet, 'squareroot' -> SquareRoot)."""
    key = prefix.replace("-", "").lower()
    hits = [t for t in types if key.startswith(t.lower())]
    return max(hits, key=len) if hits else None


def restricted_extractor(params_path: str | Path, features: list[str] | None):
    """The parameter file's extractor, limited to the image types and features in `features` (None: all).

    A feature name this mapping does not understand (not `<imagetype>_<class>_<feature>`, or an image type
    the parameter file does not enable) makes it return the full extractor: slower, never different.
    """
    extractor = make_extractor(params_path)
    if features is None:
        return extractor
    configured = dict(extractor.enabledImagetypes)  # image type -> its custom settings from the parameter file
    types: list[str] = []
    per_type: dict[str, dict[str, list[str]]] = {}  # image type -> feature class -> features
    for name in features:
        parts = name.split("_", 2)
        image_type = image_type_of(parts[0], list(configured)) if len(parts) == 3 else None
        if image_type is None:  # a name this logic does not understand: compute everything, stay exact
            log.info("radiomics feature %s not mapped to an image type: extracting every feature", name)
            return extractor
        if image_type not in types:
            types.append(image_type)
        names = per_type.setdefault(image_type, {}).setdefault(parts[1], [])
        if parts[2] not in names:
            names.append(parts[2])
    groups: dict[tuple[str, ...], list[str]] = {}  # the feature classes an image type needs -> those types
    for image_type in types:
        groups.setdefault(tuple(sorted(per_type[image_type])), []).append(image_type)
    subs = []
    for classes, group in groups.items():  # one extractor per group: only its types, only their classes
        sub = copy.deepcopy(extractor)
        sub.disableAllImageTypes()
        for image_type in group:
            sub.enableImageTypeByName(image_type, customArgs=configured[image_type])
        sub.disableAllFeatures()
        sub.enableFeaturesByName(**{c: list(dict.fromkeys(f for t in group for f in per_type[t][c])) for c in classes})
        subs.append(sub)
    return subs[0] if len(subs) == 1 else GroupedExtractor(subs)


class GroupedExtractor:
    """Several pyradiomics extractors (one per group of image types) behind the one `execute` that
    `extract.extract_image` calls."""

    def __init__(self, parts: list):
        self.parts = parts

    @property
    def enabledImagetypes(self) -> dict:
        return {t: a for p in self.parts for t, a in p.enabledImagetypes.items()}

    @property
    def settings(self) -> dict:
        return self.parts[0].settings

    def execute(self, image, mask, *args, **kwargs) -> dict:
        out: dict = {}
        for part in self.parts:  # the first raises on an invalid mask, as one extractor would
            out.update(part.execute(image, mask, *args, **kwargs))
        return out
