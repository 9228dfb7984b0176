"""The DL-Radiomics (fused) model: `model` fits and compares classifiers on fused features per fold,
`run` reads/writes the stage's files and chooses k and the classifier over folds."""
