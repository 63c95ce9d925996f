"""A NIfTI header with a non-finite sform/qform/pixdim made ITK loop forever in ReadImageInformation (C++,
deaf to signals: fuzz seed 1602, case 5305). It is now refused from the header bytes, naming file and value.
Each read runs in a child process with a time limit: the old behaviour fails the test instead of hanging."""

from __future__ import annotations

import gzip
import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from hpd_imaging.io._niftiguard import nifti_header_problem
from tools.fuzz.corpus import build_corpus

READ = """
import sys
from pathlib import Path
from hpd_imaging.archive import scan_archive
from hpd_imaging.errors import DicomReadError
from hpd_imaging.io import load_ct, load_masks
case, ct_dir = Path(sys.argv[1]), Path(sys.argv[2])
issues = scan_archive(case.parent).issues
print("SCAN", [i.message for i in issues if i.path.endswith(case.name)])
try:
    load_masks(case, load_ct(sorted(ct_dir.iterdir())))
    print("LOADED")
except DicomReadError as exc:
    print("REFUSED", exc)
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root)
    return root / "synthetic"


def _patched(src: Path, dst: Path, offset: int, value: float) -> Path:
    data = bytearray(src.read_bytes())
    data[offset : offset + 4] = struct.pack("<f", value)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(gzip.compress(bytes(data)) if dst.name.endswith(".gz") else bytes(data))
    return dst


@pytest.mark.parametrize(
    ("offset", "value", "field", "name"),
    [
        (300, -math.inf, "srow_x/y/z", "labels.nii"),  # srow_y[1]: the fuzz case
        (284, math.nan, "srow_x/y/z", "labels.nii.gz"),
        (80, math.inf, "pixdim", "labels.nii"),
    ],
)
def test_non_finite_nifti_geometry_is_refused_not_a_hang(
    corpus: Path, tmp_path: Path, offset: int, value: float, field: str, name: str
) -> None:
    case = _patched(corpus / "labels.nii", tmp_path / "case" / name, offset, value)
    proc = subprocess.run(
        [sys.executable, "-c", READ, str(case), str(corpus / "ct")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"REFUSED {case}: NIfTI header {field}: expected finite numbers, got {value!r}" in proc.stdout
    assert f"NIfTI header {field}" in proc.stdout.split("SCAN", 1)[1].split("\n", 1)[0]


def test_finite_headers_pass(corpus: Path) -> None:
    assert nifti_header_problem(corpus / "labels.nii") is None
    assert nifti_header_problem(corpus / "labels.nii.gz") is None
    assert nifti_header_problem(corpus / "rtstruct.dcm") is None  # not NIfTI: not this guard's business


def test_corrupt_gzip_is_left_to_the_reader(corpus: Path, tmp_path: Path) -> None:
    """A damaged .nii.gz stream (zlib.error, not an OSError) is no concern of the guard: no exception here,
    SimpleITK refuses the file (fuzz seed 1602: 50 cases raised zlib.error from the first guard)."""
    data = bytearray((corpus / "labels.nii.gz").read_bytes())
    for i in range(20, 90, 7):
        data[i] ^= 0x5A
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(bytes(data))
    assert nifti_header_problem(bad) is None
