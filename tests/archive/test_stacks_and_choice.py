"""Series grouping, stack splitting and the choice of the CT series of an exam."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from archive_factory import seg, write, write_series

from hpd_imaging.archive import ArchiveSettings, scan_archive
from hpd_imaging.archive.choose import KERNEL_SHARP, KERNEL_SOFT, KERNEL_UNKNOWN, kernel_class

SAG = (0, 1, 0, 0, 0, -1)


def test_localizer_with_same_series_uid_is_split_out_and_never_chosen(tmp_path: Path) -> None:
    write_series(tmp_path, 6, series_uid="1.2.826.0.2.1")
    write_series(
        tmp_path,
        1,
        prefix="scout",
        series_uid="1.2.826.0.2.1",
        iop=SAG,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
    )
    archive = scan_archive(tmp_path)
    (tp,) = archive.timepoints["P1"]
    assert tp.ct.n_slices == 6
    assert not any(p.name.startswith("scout") for p in tp.ct.files)
    table = archive.series_table().set_index("stack_key")
    assert table.loc["orientation=0,1,0,0,0,-1;localizer", "choice_reason"] == (
        "excluded: localizer/scout (ImageType LOCALIZER)"
    )
    assert bool(table.loc["orientation=1,0,0,0,1,0;image", "chosen"]) is True


def test_stacks_split_by_matrix_and_pixel_spacing(tmp_path: Path) -> None:
    write_series(tmp_path, 5, prefix="a", series_uid="1.2.826.0.3.1")
    write_series(tmp_path, 3, prefix="b", series_uid="1.2.826.0.3.1", rows=8, columns=8)
    write_series(tmp_path, 4, prefix="c", series_uid="1.2.826.0.3.1", spacing=(0.5, 0.5))
    archive = scan_archive(tmp_path)
    table = archive.series_table()
    assert sorted(table["n_slices"]) == [3, 4, 5]
    assert sorted(table["stack_key"]) == [
        "matrix=4x4;spacing=0.5x0.5",
        "matrix=4x4;spacing=1x1",
        "matrix=8x8;spacing=1x1",
    ]
    (tp,) = archive.timepoints["P1"]
    assert tp.ct.n_slices == 5 and tp.ct.stack_key == "matrix=4x4;spacing=1x1"
    assert tp.choice_reason.startswith("rule most_slices: 5 slices vs 4 slices")
    assert [a.n_slices for a in tp.alternatives] == [4, 3]


def test_repeated_positions_split_by_acquisition_number(tmp_path: Path) -> None:
    # two phases over the same 4 positions, told apart by AcquisitionNumber only
    write_series(tmp_path, 4, prefix="art", series_uid="1.2.826.0.4.1", acquisition_number=1)
    write_series(tmp_path, 4, prefix="ven", series_uid="1.2.826.0.4.1", acquisition_number=2)
    archive = scan_archive(tmp_path)
    table = archive.series_table().sort_values("stack_key")
    assert table["stack_key"].tolist() == ["acquisition=1", "acquisition=2"]
    assert table["n_slices"].tolist() == [4, 4]
    (tp,) = archive.timepoints["P1"]
    assert {p.name[:3] for p in tp.ct.files} in ({"art"}, {"ven"})


def test_acquisition_number_alone_does_not_split_a_volume(tmp_path: Path) -> None:
    # step-and-shoot scanners number every rotation: distinct positions must stay one stack
    for i in range(4):
        write_series(
            tmp_path, 1, z0=float(i), prefix=f"s{i}", series_uid="1.2.826.0.5.1", acquisition_number=i + 1
        )
    archive = scan_archive(tmp_path)
    (tp,) = archive.timepoints["P1"]
    assert tp.ct.n_slices == 4 and tp.ct.stack_key == ""


def test_repeated_positions_without_separating_header_are_reported(tmp_path: Path) -> None:
    write_series(tmp_path, 3, prefix="a", series_uid="1.2.826.0.6.1", acquisition_number=None)
    write_series(tmp_path, 3, prefix="b", series_uid="1.2.826.0.6.1", acquisition_number=None)
    archive = scan_archive(tmp_path)
    assert any("repeated slice positions" in i.message for i in archive.issues)


def test_blank_series_uid_falls_back_to_frame_of_reference_orientation_matrix(tmp_path: Path) -> None:
    write_series(tmp_path / "x", 5, series_uid="", study_uid="", for_uid="1.2.826.0.7.9")
    write_series(tmp_path / "y", 3, series_uid="", study_uid="", for_uid="1.2.826.0.7.8")
    archive = scan_archive(tmp_path)
    table = archive.series_table()
    assert sorted(table["n_slices"]) == [3, 5]
    uids = set(table["series_uid"])
    assert len(uids) == 2 and all(u.startswith("2.25.") for u in uids)
    # the derived UID is deterministic: a second scan gives the same UIDs
    assert set(scan_archive(tmp_path).series_table()["series_uid"]) == uids
    assert sum("blank SeriesInstanceUID" in i.message for i in archive.issues) == 2


@pytest.fixture(scope="module")
def reconstructions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exam with four reconstructions (148 files), written once for the module."""
    root = tmp_path_factory.mktemp("reconstructions")
    write_series(
        root / "lung", 40, dz=1.0, series_uid="1.2.826.0.8.1", kernel="B70f", thickness=1.0, series_number=2
    )
    write_series(
        root / "soft", 40, dz=1.0, series_uid="1.2.826.0.8.2", kernel="B30f", thickness=1.0, series_number=3
    )
    write_series(
        root / "thick", 8, dz=5.0, series_uid="1.2.826.0.8.3", kernel="B30f", thickness=5.0, series_number=4
    )
    write_series(root / "sag", 60, series_uid="1.2.826.0.8.4", kernel="B30f", iop=SAG, series_number=5)
    return root


def test_soft_tissue_kernel_wins_over_lung_kernel(tmp_path: Path) -> None:
    write_series(tmp_path / "lung", 40, series_uid="1.2.826.0.9.1", kernel="B70f", series_number=2)
    write_series(tmp_path / "soft", 40, series_uid="1.2.826.0.9.2", kernel="B30f", series_number=3)
    (tp,) = scan_archive(tmp_path).timepoints["P1"]
    assert tp.ct.series_instance_uid == "1.2.826.0.9.2"
    assert tp.choice_reason == (
        "rule soft_tissue_kernel: kernel 'B30f' (soft tissue) vs kernel 'B70f' (lung/bone) of 1.2.826.0.9.1"
    )


def test_original_reconstruction_wins_over_derived_slab(tmp_path: Path) -> None:
    write_series(
        tmp_path / "mip", 40, series_uid="1.2.826.0.9.3", image_type=("DERIVED", "SECONDARY", "AXIAL")
    )
    write_series(tmp_path / "orig", 30, series_uid="1.2.826.0.9.4")
    (tp,) = scan_archive(tmp_path).timepoints["P1"]
    assert tp.ct.series_instance_uid == "1.2.826.0.9.4"
    assert tp.choice_reason == "rule original_image: ImageType ORIGINAL vs ImageType DERIVED of 1.2.826.0.9.3"


def test_choice_rules_in_order_axial_kernel_slices(reconstructions: Path) -> None:
    archive = scan_archive(reconstructions)
    (tp,) = archive.timepoints["P1"]
    assert tp.ct.series_instance_uid == "1.2.826.0.8.2"
    assert tp.choice_reason == "rule most_slices: 40 slices vs 8 slices of 1.2.826.0.8.3"
    # alternatives best first: 5 mm soft tissue (axial, soft), 1 mm lung kernel (axial), sagittal (not axial)
    assert [a.series_instance_uid for a in tp.alternatives] == [
        "1.2.826.0.8.3",
        "1.2.826.0.8.1",
        "1.2.826.0.8.4",
    ]
    table = archive.series_table().set_index("series_uid")
    assert table["chosen"].to_dict() == {
        "1.2.826.0.8.1": False,
        "1.2.826.0.8.2": True,
        "1.2.826.0.8.3": False,
        "1.2.826.0.8.4": False,
    }
    assert table.loc["1.2.826.0.8.1", "choice_reason"] == "alternative: not chosen (chosen 1.2.826.0.8.2)"


def test_segmentation_reference_overrides_the_rules(reconstructions: Path, tmp_path: Path) -> None:
    tmp_path = tmp_path / "copy"
    shutil.copytree(reconstructions, tmp_path)
    write(seg(ref_series_uid="1.2.826.0.8.1", frame_z=[10.0]), tmp_path / "seg.dcm")
    archive = scan_archive(tmp_path)
    (tp,) = archive.timepoints["P1"]
    assert tp.ct.series_instance_uid == "1.2.826.0.8.1"
    assert tp.choice_reason.startswith("referenced by 1 segmentation(s)")
    assert [m.path.name for m in tp.masks] == ["seg.dcm"]
    row = archive.series_table().set_index("series_uid").loc["1.2.826.0.8.1"]
    assert row["mask_files"] == "seg.dcm" and row["mask_pairing"] == "series_uid"


def test_choice_rule_order_is_a_setting(reconstructions: Path) -> None:
    settings = ArchiveSettings(choice_rules=("most_slices", "axial"))
    (tp,) = scan_archive(reconstructions, settings=settings).timepoints["P1"]
    assert tp.ct.series_instance_uid == "1.2.826.0.8.4"
    assert tp.choice_reason.startswith("rule most_slices: 60 slices vs 40 slices")


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        ("B30f", KERNEL_SOFT),
        ("Br38f\\3", KERNEL_SOFT),
        ("B70f", KERNEL_SHARP),
        ("I70f", KERNEL_SHARP),
        ("STANDARD", KERNEL_SOFT),
        ("SOFT", KERNEL_SOFT),
        ("LUNG", KERNEL_SHARP),
        ("BONEPLUS", KERNEL_SHARP),
        ("FC08", KERNEL_SOFT),
        ("FC52", KERNEL_SHARP),
        ("", KERNEL_UNKNOWN),
        ("XYZ", KERNEL_UNKNOWN),
    ],
)
def test_kernel_classes(kernel: str, expected: int) -> None:
    assert kernel_class(kernel) == expected


# ---------------------------------------------------------------------------------------------- real data


def test_pydicom_scouts_split_out_and_outlier_slice_stays(real_data: Path) -> None:
    folder = real_data / "pydicom_small" / "src" / "pydicom" / "data" / "test_files" / "dicomdirtests"
    archive = scan_archive(folder)
    scouts = {"6293", "6924"}
    (tp,) = archive.timepoints["98890234"]
    assert sorted(p.name for p in tp.ct.files) == ["2062", "2392", "2693", "3023", "3353"]
    for tps in archive.timepoints.values():
        for t in tps:
            assert not scouts & {p.name for p in t.ct.files}
    table = archive.series_table()
    scout_rows = table[table["choice_reason"] == "excluded: localizer/scout (ImageType LOCALIZER)"]
    assert len(scout_rows) == 2 and set(scout_rows["n_slices"]) == {1}
    # 77654033/CT2: acquisitions 4, 44, 45, 45 at distinct positions (one ~200 mm away): one stack of 4; the
    # loader, not the scanner, refuses the irregular spacing
    (ct2,) = archive.timepoints["77654033"]
    assert ct2.ct.n_slices == 4 and ct2.ct.stack_key == ""


def test_enhanced_ct_is_one_stack_of_its_frames(real_data: Path, tmp_path: Path) -> None:
    (tmp_path / "eCT.dcm").symlink_to(
        real_data / "pydicom_small" / "data_store" / "data" / "eCT_Supplemental.dcm"
    )
    archive = scan_archive(tmp_path)
    (tp,) = archive.timepoints["0010"]
    assert [p.name for p in tp.ct.files] == ["eCT.dcm"]
    row = archive.series_table().iloc[0]
    assert row["n_slices"] == 2 and row["rows"] == 512 and bool(row["chosen"])
    assert tp.ct.image_orientation_patient == (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # from the shared groups


def test_totalsegmentator_blank_uids_grouped_into_one_series(real_data: Path) -> None:
    folder = real_data / "totalseg_ct_jpeg2000" / "tests" / "reference_files"
    archive = scan_archive(folder)
    (tp,) = archive.timepoints["example_ct_dicom"]  # PatientID is blank: folder name
    assert tp.ct.n_slices == 20 and tp.ct.rows == 512 and tp.ct.columns == 512
    assert tp.ct.series_instance_uid.startswith("2.25.")
    assert tp.ct.frame_of_reference_uid == "1.3.12.2.1107.5.1.4.60064.30000022120807274275100000041"
    assert tp.ct.convolution_kernel == "Br38f\\3"
    messages = " ".join(i.message for i in archive.issues)
    assert "without PatientID" in messages and "blank SeriesInstanceUID" in messages
    # its multi-label NIfTI sits in the exam folder and has the CT's size: paired by convention
    assert [(m.path.name, m.pairing) for m in tp.masks] == [("example_seg_dicom.nii.gz", "folder")]
