"""A pyradiomics extractor limited to the features a fitted model reads.

Why: screening one exam needs only the radiomic features the final Radiomics and DL-Radiomics models
selected (imputation and min-max scaling work column by column, so the others cannot change a prediction);
computing only those makes `cinescar screen` several times faster. pyradiomics computes each feature
independently of which others are enabled, so the restricted extraction gives bit-identical values
(tests/test_screening_bundle.py checks it).

The subset is set through pyradiomics' public API (`disableAllImageTypes` / `enableImageTypeByName`,
`disableAllFeatures` / `enableFeaturesByName`), keeping each image type's custom settings from the
parameter file.
"""

from __future__ import annotations

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
    classes: dict[str, list[str]] = {}
    for name in features:
        parts = name.split("_", 2)
        image_type = image_type_of(parts[0], list(configured)) if len(parts) == 3 else None
        if image_type is None:  # a name this logic does not understand: compute everything, stay exact
            log.info("radiomics feature %s not mapped to an image type: extracting every feature", name)
            return extractor
        if image_type not in types:
            types.append(image_type)
        names = classes.setdefault(parts[1], [])
        if parts[2] not in names:
            names.append(parts[2])
    extractor.disableAllImageTypes()
    for image_type in types:
        extractor.enableImageTypeByName(image_type, customArgs=configured[image_type])
    extractor.disableAllFeatures()
    extractor.enableFeaturesByName(**classes)
    return extractor
