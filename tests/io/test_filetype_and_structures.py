"""File type by content and the lesion-vs-structure rules, on small synthetic inputs."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from hpd_imaging.io import LoaderSettings
from hpd_imaging.io.filetype import FileKind, sniff
from hpd_imaging.io.structures import classify_structure, normalise_name


def _image(path: Path) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), dtype=np.int16)), str(path))
    return path


@pytest.mark.parametrize(
    ("written", "renamed", "kind"),
    [
        ("a.nii", "a.dcm", FileKind.NIFTI),
        ("a.nii.gz", "a.bin", FileKind.NIFTI),
        ("a.nrrd", "a.nii", FileKind.NRRD),
        ("a.mha", "a.nrrd", FileKind.METAIMAGE),
    ],
)
def test_volume_kinds_by_magic_whatever_the_name(
    tmp_path: Path, written: str, renamed: str, kind: FileKind
) -> None:
    path = _image(tmp_path / written).rename(tmp_path / renamed)
    assert sniff(path) is kind


def test_nifti2_and_big_endian_headers(tmp_path: Path) -> None:
    n2 = bytearray(544)
    n2[:4] = struct.pack("<i", 540)
    n2[4:8] = b"n+2\x00"
    (tmp_path / "n2").write_bytes(bytes(n2))
    assert sniff(tmp_path / "n2") is FileKind.NIFTI
    be = bytearray(352)
    be[:4] = struct.pack(">i", 348)
    be[344:348] = b"n+1\x00"
    (tmp_path / "be.gz").write_bytes(gzip.compress(bytes(be)))
    assert sniff(tmp_path / "be.gz") is FileKind.NIFTI
    wrong = bytearray(be)
    wrong[:4] = struct.pack(">i", 349)  # sizeof_hdr must be exactly 348
    (tmp_path / "wrong").write_bytes(bytes(wrong))
    assert sniff(tmp_path / "wrong") is FileKind.UNKNOWN


def _dicom_part10(path: Path) -> Path:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.filterwarnings("ignore:End of file reached")
def test_dicom_with_preamble_and_raw_dataset(tmp_path: Path) -> None:
    assert sniff(_dicom_part10(tmp_path / "x.nrrd")) is FileKind.DICOM
    raw = Dataset()
    raw.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    raw.Modality = "CT"
    from io import BytesIO

    from pydicom.filebase import DicomFileLike

    buffer = BytesIO()
    fp = DicomFileLike(buffer)
    fp.is_little_endian, fp.is_implicit_VR = True, True
    pydicom.filewriter.write_dataset(fp, raw)
    (tmp_path / "raw").write_bytes(buffer.getvalue())
    assert buffer.getvalue()[:2] == b"\x08\x00"
    assert sniff(tmp_path / "raw") is FileKind.DICOM
    # looks like a raw stream but does not parse as a dataset with a SOP class or modality
    (tmp_path / "fake").write_bytes(b"\x08\x00" + b"\xff" * 30)
    assert sniff(tmp_path / "fake") is FileKind.UNKNOWN
    (tmp_path / "text.dcm").write_text("patient_id,scan_date\n")
    assert sniff(tmp_path / "text.dcm") is FileKind.UNKNOWN


def test_name_normalisation() -> None:
    assert normalise_name("GTV_Mass_CT") == "gtv mass ct"
    assert normalise_name("Met1 (liver)") == "met liver"


@pytest.mark.parametrize(
    ("evidence", "is_lesion", "reason"),
    [
        ({"name": "BODY", "rt_roi_type": "EXTERNAL"}, False, "EXTERNAL is not a lesion type"),
        ({"name": "Brainstem", "rt_roi_type": "ORGAN"}, False, "ORGAN is not"),
        ({"name": "Marker1", "rt_roi_type": "MARKER"}, False, "MARKER is not"),
        ({"name": "PTV_60", "rt_roi_type": "PTV"}, False, "PTV is not"),
        ({"name": "whatever", "rt_roi_type": "CTV"}, True, "CTV is a lesion type"),
        ({"name": "x", "rt_roi_type": "gtv"}, True, "GTV is a lesion type"),
        # a type outside both lists falls through to the name
        ({"name": "lung met", "rt_roi_type": "UNKNOWN_TYPE"}, True, "lesion name pattern"),
        (
            {"name": "Rib", "category_code": "123037004", "category_meaning": "Anatomical Structure"},
            False,
            "not a lesion category",
        ),
        (
            {
                "name": "Seg 1",
                "category_code": "49755003",
                "category_meaning": "Morphologically Abnormal Structure",
            },
            True,
            "is a lesion category",
        ),
        (
            {"name": "Segment", "category_code": "85756007", "property_meaning": "Nodule"},
            True,
            "'Nodule' matches",
        ),
        ({"name": "Lesion_3"}, True, "lesion name pattern"),
        ({"name": "Tumour"}, True, "lesion name pattern"),
        ({"name": "LN 4R"}, True, "lesion name pattern"),
        ({"name": "Couch Surface"}, False, "non-lesion name pattern"),
        ({"name": "External"}, False, "non-lesion name pattern"),
        ({"name": "metal"}, True, "kept as lesion"),  # 'met' is a word, 'metal' is not: unclassified
        ({"name": "3"}, True, "kept as lesion"),
    ],
)
def test_structure_rules(evidence: dict, is_lesion: bool, reason: str) -> None:
    got, why = classify_structure(**evidence)
    assert got is is_lesion
    assert reason in why


def test_unclassified_setting_and_custom_types() -> None:
    strict = LoaderSettings(unclassified_structures="not_lesion")
    assert classify_structure(name="3", settings=strict) == (
        False,
        "no type or category, name '3' matches no pattern: not a lesion (unclassified_structures)",
    )
    assert classify_structure(name="Lesion 1", settings=strict)[0] is True
    ptv_ok = LoaderSettings(lesion_rt_roi_types=("GTV", "PTV"), non_lesion_rt_roi_types=())
    assert classify_structure(name="PTV", rt_roi_type="PTV", settings=ptv_ok)[0] is True
