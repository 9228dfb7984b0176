"""Evaluation of the three models: patient-level screening (`screening`), metrics (`metrics`), DeLong's test
(`delong`), the paper's tables (`tables`), the whole study's numbers (`study`) and the HTML report (`report`)."""
