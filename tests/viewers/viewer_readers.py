"""Run the viewers' own readers on our DICOM outputs (helpers for the viewer tests).

* OHIF: dcmjs + @cornerstonejs/adapters through Node (``ohif_hydrate.mjs`` next to this file; the packages are
  pinned in package.json / package-lock.json and installed by ``npm ci`` here, which .ci/run does).
* 3D Slicer: dcmqi's ``tid1500reader`` (what QuantitativeReporting's DICOMTID1500Plugin calls for a TID 1500
  SR that references a SEG) and ``segimage2itkimage`` (PyPI ``dcmqi``, a dev dependency).
* dicom3tools ``dciodvfy`` (Debian package dicom3tools).

Every helper returns ``None``-free data or raises; the tests skip with a reason when a tool is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OHIF_SCRIPT = HERE / "ohif_hydrate.mjs"
NODE_MODULES = HERE / "node_modules"


def dcmqi_tool(name: str) -> str | None:
    """Path of a dcmqi command-line tool: on PATH, else next to the running Python (the uv venv's bin)."""
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def ohif_missing_reason() -> str | None:
    """Why the OHIF check cannot run here, or ``None`` when it can."""
    if shutil.which("node") is None:
        return "Node.js is not installed (the OHIF adapters run in Node; .ci/run installs the npm packages)"
    if not (NODE_MODULES / "@cornerstonejs" / "adapters").is_dir() or not (NODE_MODULES / "dcmjs").is_dir():
        return f"{NODE_MODULES} lacks dcmjs / @cornerstonejs/adapters: run `npm ci` in {HERE}"
    return None


def ohif_hydrate(sr_path: Path, ct_files: list[Path]) -> dict:
    """OHIF's rehydration of ``sr_path``:
    {"tools": {toolType: [...]}, "rehydratable": [...], "warnings": [...]}."""
    proc = subprocess.run(
        ["node", str(OHIF_SCRIPT), str(sr_path), *map(str, ct_files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=HERE,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"node {OHIF_SCRIPT.name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def tid1500_table(sr_path: Path, work: Path) -> list[dict]:
    """dcmqi ``tid1500reader`` rows as QuantitativeReporting builds its table: one dict per measurement group
    with TrackingIdentifier, TrackingUniqueIdentifier, ReferencedSegment, timePoint and {column: value} where
    the columns are named from the *first* group's measurement items and filled by position (as the plugin's
    ``metadata2vtkTableNode`` does)."""
    tool = dcmqi_tool("tid1500reader")
    assert tool is not None
    out = work / f"{sr_path.parent.name}_{sr_path.stem}.json"
    proc = subprocess.run(
        [tool, "--inputDICOM", str(sr_path), "--outputMetadata", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"tid1500reader {sr_path} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    measurements = json.loads(out.read_text())["Measurements"]
    if not measurements:
        return []
    columns = [
        f"{item['quantity']['CodeMeaning']} [{item['units']['CodeValue']}]"
        for item in measurements[0]["measurementItems"]
    ]
    rows = []
    for m in measurements:
        row = {
            key: m.get(key)
            for key in ("TrackingIdentifier", "TrackingUniqueIdentifier", "ReferencedSegment", "timePoint")
        }
        row["qualitativeEvaluations"] = m.get("qualitativeEvaluations", [])
        for column, item in zip(columns, m["measurementItems"], strict=False):
            row[column] = float(item["value"])
        row["_n_items"] = len(m["measurementItems"])
        rows.append(row)
    return rows


def seg_segments(seg_path: Path, work: Path) -> dict[str, dict]:
    """Segments as dcmqi ``segimage2itkimage`` (Slicer's SEG reader) writes them, by SegmentLabel:
    {"voxels": count in its NRRD, "rgb": recommendedDisplayRGBValue, "tracking_id", "tracking_uid"}."""
    import SimpleITK as sitk

    tool = dcmqi_tool("segimage2itkimage")
    assert tool is not None
    out = work / f"seg_{seg_path.parent.parent.name}_{seg_path.parent.name}"
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [tool, "--inputDICOM", str(seg_path), "--outputDirectory", str(out), "--outputType", "nrrd"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"segimage2itkimage {seg_path} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    meta = json.loads((out / "meta.json").read_text())
    segments: dict[str, dict] = {}
    for n, attributes in enumerate(meta["segmentAttributes"], start=1):  # one NRRD per group of segments
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"{n}.nrrd")))
        for segment in attributes:
            segments[segment["SegmentLabel"]] = {
                "voxels": int((image == int(segment["labelID"])).sum()),
                "rgb": tuple(segment.get("recommendedDisplayRGBValue", ())),
                "tracking_id": segment.get("TrackingIdentifier"),
                "tracking_uid": segment.get("TrackingUniqueIdentifier"),
            }
    return segments


def dciodvfy_findings(path: Path) -> list[str]:
    """The ``Error`` and ``Warning`` lines dciodvfy prints for ``path``."""
    tool = shutil.which("dciodvfy")
    assert tool is not None
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120, check=False)
    return [
        line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(("Error", "Warning"))
    ]
