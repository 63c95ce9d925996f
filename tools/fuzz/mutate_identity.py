"""Identity, date and transfer-syntax mutators, and fuzzed clinical tables (issue 16).

The fault audit of issue 16 found its bugs with these inputs: a TransferSyntaxUID that is a UID but not a
transfer syntax (a SOP class UID, a private or malformed value), identity fields that disagree between files
of one patient (PatientID, PatientName, PatientBirthDate, study/series/frame-of-reference UIDs) and clinical
dates that contradict the scans (an ICI start after every scan, a death before a scan or in the future).
Each mutator takes a parsed dataset and the case's random stream and returns what it did, like those of
:mod:`tools.fuzz.mutate`; :func:`clinical_table` writes a clinical.csv for the case's patient that the
worker reads with ``read_clinical`` and checks with ``check_clinical_dates``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from pydicom.dataset import Dataset
from pydicom.uid import UID

# UIDs that are not transfer syntaxes (or not UIDs at all), and real transfer syntaxes the decoders may lack
NOT_TRANSFER_SYNTAXES = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage (a SOP class, not a transfer syntax)
    "1.2.840.10008.1.1",  # Verification SOP class
    "1.2.840.10008.1.2.999",  # in the DICOM root, unknown
    "1.2.826.0.1.3680043.8.498.1",  # a private UID
    "1.2.3.4",
    "foo",
    "1.2.840.10008.1.2.1 ",  # trailing space (pydicom strips it: must stay readable)
    "1.2.840.10008.1.2.1\x00",
    "9" * 64,
)
OTHER_TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.4.50",  # JPEG baseline on raw pixels
    "1.2.840.10008.1.2.4.201",  # HTJ2K
    "1.2.840.10008.1.2.4.100",  # MPEG2 video
    "1.2.840.10008.1.2.8.1",  # SMPTE ST 2110-20 (deflated image frame compression)
)
IDENTITY_FIELDS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "AccessionNumber",
    "StudyID",
)
IDENTITY_VALUES = ("", " ", "OTHER_PATIENT", "../../etc", "A\\B", "Ünïcødé^Näme", "X" * 64, "0" * 200, "\x00")
DATE_FIELDS = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "PatientBirthDate")
DATE_VALUES = (
    "", "20361301", "20200230", "00000000", "99991231", "19000101", "20360101", "2020-01-01", "2020",
    "20200101120000", "abcdefgh", "-2020101",
)  # fmt: skip


def transfer_syntax_not_a_syntax(ds: Dataset, rng: random.Random) -> str:
    value = rng.choice(NOT_TRANSFER_SYNTAXES + OTHER_TRANSFER_SYNTAXES)
    ds.file_meta.TransferSyntaxUID = UID(value)
    return f"TransferSyntaxUID = {value!r} (pixels unchanged)"


def identity_field(ds: Dataset, rng: random.Random) -> str:
    keyword = rng.choice(IDENTITY_FIELDS)
    value = rng.choice(IDENTITY_VALUES)
    setattr(ds, keyword, value)
    return f"{keyword} = {value[:40]!r}"


def date_field(ds: Dataset, rng: random.Random) -> str:
    keyword = rng.choice(DATE_FIELDS)
    value = rng.choice(DATE_VALUES)
    setattr(ds, keyword, value)
    return f"{keyword} = {value!r}"


IDENTITY_MUTATORS: tuple[Callable[[Dataset, random.Random], str], ...] = (
    transfer_syntax_not_a_syntax,
    identity_field,
    identity_field,
    date_field,
)

_CLINICAL_BAD_TEXT = (
    "2020-13-01", "01/02/2020", "2020-02-30", "0000-00-00", "2036-01-01x", "９９", "x" * 300,
)  # fmt: skip


def _study_date(ds: Dataset) -> dt.date:
    try:
        return dt.datetime.strptime(str(ds.get("StudyDate", "")), "%Y%m%d").date()
    except ValueError:
        return dt.date(2020, 1, 1)


def clinical_table(ds: Dataset, rng: random.Random) -> tuple[bytes, str]:
    """A clinical.csv for the dataset's patient whose dates are shifted around the scan date (an ICI start
    after the scan, a death before it, dates decades in the future) or are not ISO dates at all."""
    pid = str(ds.get("PatientID", "") or "FUZZ")
    scan = _study_date(ds)
    cells: dict[str, str] = {}
    for column in ("ici_start_date", "death_date", "treatment_stop_date", "progression_date"):
        roll = rng.random()
        if roll < 0.2:
            cells[column] = ""
        elif roll < 0.8:
            days = rng.choice((-3650, -400, -30, -1, 0, 1, 30, 400, 6000, 365 * 16, 365 * 900))
            try:
                cells[column] = (scan + dt.timedelta(days=days)).isoformat()
            except OverflowError:
                cells[column] = "9999-12-31"
        else:
            cells[column] = rng.choice(_CLINICAL_BAD_TEXT)
    rows = [f"{pid},{','.join(cells.values())}"]
    if rng.random() < 0.2:  # a second row: a duplicate or an unknown patient
        rows.append(f"{rng.choice((pid, 'UNKNOWN'))},{cells['ici_start_date']},,,")
    text = "patient_id," + ",".join(cells) + "\n" + "\n".join(rows) + "\n"
    return text.encode("utf-8"), "clinical.csv " + "; ".join(f"{k}={v[:20]!r}" for k, v in cells.items())
