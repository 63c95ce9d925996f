"""Archive walking and manifests: symlink loops end, manifest paths that leave the archive are refused.

The scan follows symbolic links on purpose (archives assembled with links, DataLad/git-annex datasets whose
files are links into .git/annex); a folder reached twice is walked once, so a link cycle cannot loop or
duplicate slices. A masks.csv row whose mask_path leaves the archive (``..``, absolute) is one issue, never a
read.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hpd_imaging.archive import scan_archive
from tools.fuzz import corpus


def _series(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(corpus.N_SLICES):
        corpus.ct_slice(k).save_as(folder / f"{k}.dcm", enforce_file_format=True)


def test_symlink_loops_end_and_add_no_slices(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    _series(root / "FUZZ01" / "CT")
    (root / "FUZZ01" / "CT" / "loop_to_parent").symlink_to("..", target_is_directory=True)
    (root / "FUZZ01" / "self").symlink_to(".", target_is_directory=True)
    (root / "FUZZ01" / "CT" / "loop_to_root").symlink_to(root, target_is_directory=True)
    (root / "a").symlink_to("b")  # a dangling pair of links
    (root / "b").symlink_to("a")
    t0 = time.perf_counter()
    archive = scan_archive(root)
    assert time.perf_counter() - t0 < 30
    assert archive.n_files == corpus.N_SLICES  # each real file once, whatever the number of paths to it
    [timepoint] = archive.timepoints["FUZZ01"]
    assert len(timepoint.ct.files) == corpus.N_SLICES
    assert not [i for i in archive.issues if "duplicate" in i.message]


def test_symlinked_series_outside_the_walk_order_is_read_once(tmp_path: Path) -> None:
    """A series linked in twice (two names for one folder) gives one stack, not duplicate slices."""
    root = tmp_path / "archive"
    _series(root / "FUZZ01" / "CT")
    (root / "FUZZ01" / "CT_again").symlink_to(root / "FUZZ01" / "CT", target_is_directory=True)
    archive = scan_archive(root)
    assert archive.n_files == corpus.N_SLICES
    assert len(archive.timepoints["FUZZ01"][0].ct.files) == corpus.N_SLICES


@pytest.mark.parametrize(
    "mask_path",
    ["../outside/labels.nii.gz", "FUZZ01/../../outside/labels.nii.gz", "{outside}/labels.nii.gz", ""],
)
def test_manifest_paths_that_leave_the_archive_are_refused(tmp_path: Path, mask_path: str) -> None:
    root = tmp_path / "archive"
    _series(root / "FUZZ01" / "CT")
    outside = tmp_path / "outside"
    outside.mkdir()
    corpus.write_labelmap(outside / "labels.nii.gz")
    mask_path = mask_path.format(outside=outside)
    (root / "masks.csv").write_text(
        f"patient_id,folder,mask_path,label,lesion_id\nFUZZ01,FUZZ01/CT,{mask_path},1,L1\n"
    )
    archive = scan_archive(root)
    assert [i.message for i in archive.issues] == [
        f"masks.csv line 2: mask_path '{mask_path}' escapes the archive; refused"
    ]
    assert archive.timepoints["FUZZ01"][0].masks == ()
    assert not any(str(outside) in str(m.ref.path) for m in archive.masks)


def test_manifest_path_inside_the_archive_is_paired(tmp_path: Path) -> None:
    """The control: the same row pointing inside the archive pairs the label map with the series."""
    root = tmp_path / "archive"
    _series(root / "FUZZ01" / "CT")
    corpus.write_labelmap(root / "FUZZ01" / "labels.nii.gz")
    (root / "masks.csv").write_text(
        "patient_id,folder,mask_path,label,lesion_id\nFUZZ01,FUZZ01/CT,FUZZ01/labels.nii.gz,1,L1\n"
    )
    archive = scan_archive(root)
    [mask] = archive.timepoints["FUZZ01"][0].masks
    assert Path(mask.path) == root / "FUZZ01" / "labels.nii.gz"
    assert os.path.commonpath([root, mask.path]) == str(root)
