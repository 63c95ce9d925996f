"""Settings of the CT and mask loaders (owned by the io stage).

Tolerances follow specs/dicom_io_notes.md section 6: a slice gap differing from the regular spacing by more
than ``max(spacing_tolerance_mm, spacing_tolerance_rel * spacing)`` is irregular, and so is a slice whose
in-plane offset (gantry tilt / shear) exceeds ``max(spacing_tolerance_mm, spacing_tolerance_rel * pixel)``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hpd_imaging.settings.base import Section


class LoaderSettings(Section):
    # what to do with gaps, uneven spacing or gantry tilt: refuse (default) or resample onto a regular grid
    irregular_geometry: Literal["refuse", "resample"] = "refuse"
    # label maps whose grid differs from the CT: refuse (default) or resample nearest-neighbour
    labelmap_mismatch: Literal["refuse", "resample"] = "refuse"
    # absolute / relative tolerance on slice gaps and in-plane slice offsets (checklist item 3)
    spacing_tolerance_mm: float = Field(default=0.01, gt=0)
    spacing_tolerance_rel: float = Field(default=0.01, gt=0, lt=1)
    # resampling of irregular stacks: HU outside the acquired field of view, and a cap on the slice count
    # (like dcm2niix _Eq: at most this factor times the acquired number of slices)
    resample_fill_hu: float = -1024.0
    resample_max_slice_factor: float = Field(default=2.0, ge=1.0)
    # label map / SEG grid vs CT grid: tolerance on origin/spacing (mm) and direction cosines
    labelmap_tolerance_mm: float = Field(default=0.01, gt=0)
    labelmap_tolerance_direction: float = Field(default=1e-4, gt=0)
    # DICOM SEG FRACTIONAL segments: voxels at or above this fraction belong to the lesion
    fractional_threshold: float = Field(default=0.5, gt=0, le=1)
    # RTSTRUCT safety limit: total contour points in one file (a hostile file must not exhaust memory)
    max_contour_points: int = Field(default=5_000_000, gt=0)
    # RTSTRUCT time limit: polygon filling tests every pixel of a contour's bounding box against every vertex;
    # at ~2 ns per test 1e11 is a few minutes (a million-point contour over 512 x 512 would be ~10 minutes)
    max_contour_fill_work: int = Field(default=100_000_000_000, gt=0)
    # safety limit on the decoded CT volume (voxels), checked from headers before any allocation
    max_ct_voxels: int = Field(default=2_000_000_000, gt=0)
    # safety limit on the pixel data one file declares (Rows x Columns x SamplesPerPixel x BitsAllocated/8 x
    # NumberOfFrames, or a NIfTI/NRRD header's size), checked before any decoding (docs/robustness.md)
    max_pixel_data_bytes: int = Field(default=4 * 2**30, gt=0)
    # safety limit on the masks one segmentation file becomes: masks x CT voxels (one byte each), checked
    # before they are built (a label map with thousands of values, or of noise split into components)
    max_mask_bytes: int = Field(default=8 * 2**30, gt=0)
    # threads (JPEG 2000: imagecodecs releases the GIL, also inside Dask workers) or processes (JPEG, JPEG-LS,
    # RLE: pydicom's decoders hold the GIL; not inside daemonic processes) that decode a compressed series;
    # None = the usable cores (CPU affinity, i.e. os.cpu_count() unless restricted); 1 decodes serially in
    # the calling thread (hpd_imaging/io/_pixeldecode.py)
    decode_workers: int | None = Field(default=None, ge=1)
    # series with fewer slices decode serially on the process pool's path (its start-up and hand-over would
    # not pay); the JPEG 2000 thread pool starts from 2 slices
    parallel_decode_min_slices: int = Field(default=16, ge=2)

    # --- which structures of a segmentation are lesions (io/structures.py; order: type, category, name) ---
    # RTSTRUCT RT ROI Interpreted Type (PS3.3 C.8.8.8): these are lesions ...
    lesion_rt_roi_types: tuple[str, ...] = ("GTV", "CTV", "ITV")
    # ... and these are not (planning volumes, organs at risk, body outline, markers, devices)
    non_lesion_rt_roi_types: tuple[str, ...] = (
        "EXTERNAL",
        "ORGAN",
        "AVOIDANCE",
        "MARKER",
        "PTV",
        "BOLUS",
        "SUPPORT",
        "FIXATION",
        "ISOCENTER",
        "REGISTRATION",
        "CONTROL",
        "CAVITY",
        "CONTRAST_AGENT",
        "TREATED_VOLUME",
        "IRRAD_VOLUME",
        "DOSE_REGION",
        "BRACHY_CHANNEL",
        "BRACHY_ACCESSORY",
        "BRACHY_SRC_APP",
        "BRACHY_CHNL_SHLD",
        "DOSE_MEASUREMENT",
    )
    # SEG / Slicer segmented property category codes (SNOMED CT): lesion vs not-lesion categories;
    # "Tissue" (85756007) and unknown categories fall through to the name rule
    lesion_category_codes: tuple[str, ...] = ("49755003", "M-01000")  # Morphologically abnormal structure
    non_lesion_category_codes: tuple[str, ...] = (
        "91723000",
        "123037004",
        "T-D000A",  # Anatomical structure
        "91720002",
        "T-D0080",  # Body substance
        "260787004",
        "A-00004",  # Physical object
        "309825002",
        "R-42018",  # Spatial and relational concept (e.g. "Background")
        "49062001",
        "A-00002",  # Device
    )
    # names (ROI name, segment label, property type), lower-cased with non-letters as spaces, searched with
    # these patterns when the type and category do not decide
    lesion_name_pattern: str = (
        r"\b(gtv|ctv|itv|lesions?|tumou?rs?|mets?|metastas\w*|nodes?|nodules?|ln|lymph|mass|masses|neoplasm"
        r"|cancer|carcinoma|target)\b"
    )
    non_lesion_name_pattern: str = (
        r"^(body|external|outline|skin|couch\w*|table|bolus|markers?|ptv\w*|prv\w*|support|background"
        r"|ring\w*|dose\w*)\b"
    )
    # a structure that no rule decides (no type, no category, a name matching neither pattern, or a bare
    # label value): a lesion (what a lesion-only annotation tool writes) or not
    unclassified_structures: Literal["lesion", "not_lesion"] = "lesion"
    # --- memory bound per region: radiomics of a larger region is skipped with an error row ---
    max_radiomics_region_mm3: float = Field(default=1_000_000.0, gt=0)  # 1 litre
    # --- per-worker memory budget (MiB) for one patient's data (issue 21; docs/robustness.md) ---
    # what a worker may hold at once for the patient it processes: the CT volumes loaded (an exam whose CT
    # would pass it is an error row naming the file, the rule and the value: the patient is not assessed)
    # and, at radiomics, the CT, its working copy and the region's estimated pyradiomics arrays (a region
    # that would pass it is skipped with an error row, the other lesions go on). Masks are lesion-sized
    # crops and count too. The interpreter and its libraries (~0.4 GiB measured) come on top. None = no
    # budget. Estimates: hpd_imaging/pipeline/memory.py.
    memory_budget_mib: float | None = Field(default=1536.0, gt=0)


# the defaults, as one frozen instance usable as a keyword default
DEFAULT_LOADER_SETTINGS = LoaderSettings()
