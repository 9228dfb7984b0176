"""Cohorts: the input contract, its validation, the synthetic cohort and importers."""
