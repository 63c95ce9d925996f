"""One small exception family.

Every message says what was expected, what was received, where it came from and, when it helps, what to do:
``"<file>: <rule>: expected X, got Y"``. The pipeline turns any :class:`HpdImagingError` raised while
processing one patient into one row of errors.csv (patient, stage, file, message) and goes on.
"""

from __future__ import annotations

#: longest message an error keeps (characters): a value quoted in a message (a YAML document, a contour, a
#: pydantic input) must not turn one error into megabytes on the console and in errors.csv
MAX_MESSAGE_CHARS = 2000


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters: head and tail kept, the middle replaced by a count."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    marker = f" ... [{len(text) - limit} characters omitted] ... "
    head = max(0, limit - tail - len(marker))
    return text[:head] + marker + text[len(text) - tail :]


class HpdImagingError(Exception):
    """Base class of all errors the pipeline reports to users.

    ``path`` names the offending file or folder when there is one, so that errors.csv can list it in its own
    column. Messages longer than :data:`MAX_MESSAGE_CHARS` are shortened (head and tail kept).
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(shorten(str(message)))
        self.path = shorten(path, 1000) if path is not None else None


class ConfigError(HpdImagingError):
    """A settings file or command-line option is invalid (CLI exit code 2)."""


class DicomReadError(HpdImagingError):
    """A DICOM file could not be parsed or decoded, or lacks a required attribute."""


class GeometryError(HpdImagingError):
    """Image geometry is inconsistent or refused (gaps, gantry tilt, mismatched grids, bad spacing)."""


class MaskError(HpdImagingError):
    """A segmentation is unusable (empty, wrong frame of reference, off the CT grid, unknown label)."""


class ClinicalDataError(HpdImagingError):
    """clinical.csv (or a measurement table) breaks its schema: bad date, unknown patient, duplicate row."""


class MeasurementError(HpdImagingError):
    """A lesion could not be measured (e.g. empty mask)."""


class RadiomicsError(HpdImagingError):
    """Feature extraction failed for one lesion (e.g. a single-voxel mask)."""


class ModelError(HpdImagingError):
    """A model cannot be trained, evaluated or loaded (too few labels, untrusted or tampered file)."""


class InputLimitError(HpdImagingError):
    """An input exceeds a configured safety limit (declared pixel data size, contour points, time)."""


class EnvironmentFaultError(HpdImagingError):
    """The machine, not the input, stops the run: the output folder cannot be written (full disk, read-only
    or unwritable --out), a Dask cluster cannot start or lost every worker, another run holds --out.

    The CLI exits 2 with this one-sentence message (the path, what is wrong, what to do); finished patients
    are kept, so a rerun after the fix resumes.
    """
