"""Preprocessing: per-image normalisation, the image store, development selection and splits."""
