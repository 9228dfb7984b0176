"""The myocardium segmenter trained inside the study (issue 22; docs/segmentation.md).

A 2D MONAI U-Net segments each short-axis slice on a 1 x 1 mm field centred on the image (a field cannot be
centred on a mask that does not exist yet), into background, myocardium and LV cavity. The predicted
myocardium, resampled back to the image's own grid, is handed to the unchanged preprocessing as if it were a
manual mask; the cavity gives the LV volumes (LVEF, end-systole picking for DICOM cines).

Modules: `labels` (label map), `field` (image <-> segmentation field), `network` (plain nn.Module), `train`
(one network), `crossfit` (which development patients each network may see), `inference` (ensemble,
stacks back to image geometry), `qc` (per-exam flags), `measures` (Dice, HD95, volumes, agreement),
`run` (the workflow's job layer: the only module that reads rule inputs and writes outputs).
"""
