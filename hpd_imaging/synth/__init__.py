"""Synthetic longitudinal CT archives with exact ground truth (specs/synthetic_archives.md).

Public API: :func:`generate_archive` (write an archive, return the ground-truth dict) and
:class:`SynthSettings`. Submodules: settings, anatomy, lesions (shape + exact measurements), kinetics,
clinical, texture (planted signal), plan (random draws per patient), render (pixels), dicom_writer (CT + SEG),
mask_formats (RTSTRUCT, NIfTI), generate (orchestration + ground_truth.json).
"""

from hpd_imaging.settings.synth import PHENOTYPES, SynthSettings
from hpd_imaging.synth.generate import generate_archive

__all__ = ["PHENOTYPES", "SynthSettings", "generate_archive"]
