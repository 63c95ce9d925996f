"""Refuse NIfTI headers whose geometry is not finite before SimpleITK reads them.

Why: ITK's NIfTI reader loops forever (in C++, deaf to signals) on a header whose sform or qform holds an
infinite or NaN value (found by issue 16's fuzz run, seed 1602 case 5305: two flipped bits made srow_y[1]
-inf). The 348-byte NIfTI-1 header (540-byte NIfTI-2) is parsed here with :mod:`struct`: pixdim, the
quaternion and offsets (when qform_code > 0) and the sform rows (when sform_code > 0) must be finite.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

# byte offsets of NIfTI-1 (float32, keyed by sizeof_hdr 348) and NIfTI-2 (float64, 540) header fields
_LAYOUTS: dict[int, dict[str, int]] = {
    348: {"float_bytes": 4, "pixdim": 76, "qform_code": 252, "sform_code": 254, "quatern": 256, "srow": 280},
    540: {"float_bytes": 8, "pixdim": 104, "qform_code": 344, "sform_code": 348, "quatern": 352, "srow": 400},
}


def nifti_header_problem(path: Path | str) -> str | None:
    """A sentence naming what is not finite in a NIfTI header, or None (also for non-NIfTI files)."""
    name = str(path).lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        return None
    try:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(540)
    except (OSError, EOFError, zlib.error):  # BadGzipFile is an OSError; a corrupt stream is a zlib.error
        return None  # unreadable or truncated: SimpleITK reports it (it does not hang on those)
    for endian in ("<", ">"):
        if len(head) < 4:
            return None
        size = struct.unpack(f"{endian}i", head[:4])[0]
        layout = _LAYOUTS.get(size)
        if layout is None or len(head) < size:
            continue
        n = layout["float_bytes"]
        f = "d" if n == 8 else "f"
        code_fmt = f"{endian}i" if size == 540 else f"{endian}h"

        def floats(offset: int, count: int, e: str = endian, f: str = f, n: int = n) -> tuple[float, ...]:
            return struct.unpack(f"{e}{count}{f}", head[offset : offset + count * n])

        checks = {"pixdim": floats(layout["pixdim"], 8)}
        if struct.unpack(
            code_fmt, head[layout["qform_code"] : layout["qform_code"] + struct.calcsize(code_fmt)]
        )[0]:
            checks["quatern/qoffset"] = floats(layout["quatern"], 6)
        if struct.unpack(
            code_fmt, head[layout["sform_code"] : layout["sform_code"] + struct.calcsize(code_fmt)]
        )[0]:
            checks["srow_x/y/z"] = floats(layout["srow"], 12)
        for field, values in checks.items():
            bad = [v for v in values if not math.isfinite(v)]
            if bad:
                return (
                    f"{path}: NIfTI header {field}: expected finite numbers, got {bad[0]!r} "
                    f"(all: {', '.join(f'{v:.6g}' for v in values)}); the file's geometry is corrupt"
                )
        return None
    return None
