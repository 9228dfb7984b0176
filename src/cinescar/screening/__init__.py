"""Screening a new exam with a trained study (docs/screening.md).

- `bundle` -- the study's final models frozen as one versioned, hash-checked folder (`results/bundle/`).
- `screen` -- one exam in, per-model patient probability and screening decision out (`cinescar screen`).
- `pyfunc` -- the same bundle as an MLflow `pyfunc` model, registered in the model registry.
- `cli`    -- the `cinescar screen` subcommand.

Submodules are imported by their users: `screen` must start fast, `pyfunc` needs MLflow.
"""
