"""A TransferSyntaxUID that is a UID but not a transfer syntax (the cause of the 13 bugs of issue 16's 10,000
case fuzz run): a clear DicomReadError naming the file and the value, from every image reader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from hpd_imaging.archive import scan_archive
from hpd_imaging.errors import DicomReadError
from hpd_imaging.io import load_ct, load_masks
from tools.fuzz.corpus import build_corpus
from tools.fuzz.mutate import dataset_bytes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root)
    return root / "synthetic"


def _retag(path: Path, value: str) -> None:
    """Rewrite the TransferSyntaxUID as a broken writer would (pydicom's writer refuses such values)."""
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = value
    path.write_bytes(dataset_bytes(ds))


@pytest.mark.parametrize("value", ["1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", "foo"])
@pytest.mark.parametrize("seed", ["ct", "ct_implicit", "ct_rle"])
def test_ct_with_a_uid_that_is_not_a_transfer_syntax(
    corpus: Path, tmp_path: Path, seed: str, value: str
) -> None:
    folder = shutil.copytree(corpus / seed, tmp_path / seed)
    bad = sorted(folder.iterdir())[1]
    _retag(bad, value)
    with pytest.raises(
        DicomReadError, match=rf"{bad}: TransferSyntaxUID .*got '{value}', which is not a transfer"
    ):
        load_ct(sorted(folder.iterdir()))
    scan_archive(folder)  # the scan never raises on it


def test_seg_and_enhanced_ct_with_a_uid_that_is_not_a_transfer_syntax(corpus: Path, tmp_path: Path) -> None:
    ct = load_ct(sorted((corpus / "ct").iterdir()))
    seg = shutil.copy(corpus / "seg_binary.dcm", tmp_path / "seg.dcm")
    _retag(Path(seg), "1.2.3.4")
    with pytest.raises(DicomReadError, match=r"seg.dcm: TransferSyntaxUID .*got '1.2.3.4'"):
        load_masks(Path(seg), ct)
    ect = Path(shutil.copy(corpus / "ect.dcm", tmp_path / "ect.dcm"))
    _retag(ect, "1.2.840.10008.1.1")
    with pytest.raises(DicomReadError, match=r"ect.dcm: TransferSyntaxUID .*got '1.2.840.10008.1.1'"):
        load_ct([ect])


def test_a_real_transfer_syntax_still_reads(corpus: Path, tmp_path: Path) -> None:
    """The boundary: explicit VR little endian written as such is read (not refused by the new check)."""
    folder = shutil.copytree(corpus / "ct", tmp_path / "ct")
    _retag(sorted(folder.iterdir())[1], "1.2.840.10008.1.2.1")
    assert load_ct(sorted(folder.iterdir())).hu.shape[0] == 3
