"""``masks.csv``: the optional manifest that pairs NIfTI/NRRD label maps with CT series.

Columns: ``patient_id``, ``series_uid`` or ``folder`` (a series folder relative to the archive root),
``mask_path`` (relative to the archive root), and per label value ``label``, ``lesion_id``, ``organ``,
``is_lymph_node``. Several rows with the same ``mask_path`` describe the labels of one multi-label map and
become its ``MaskRef.label_table``. A ``mask_path`` that resolves outside the archive (``../``, absolute
paths, symlinks) is refused: a manifest must not make the pipeline read arbitrary files.

A broken manifest never ends the scan: each bad row becomes one issue naming the line and the value.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.archive.pairing import PairedMask, StackIndex, _labelmap_ref, labelmap_size_matches
from hpd_imaging.archive.stacks import IssueSink, Stack

logger = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def read_manifest(
    manifest: Path,
    study_dir: Path,
    index: StackIndex,
    labelmap_headers: dict[Path, dict[str, Any]],
    issue: IssueSink,
) -> tuple[list[PairedMask], set[Path]]:
    """Pair the label maps listed in ``manifest``; returns the pairings and every path the manifest lists."""
    name = manifest.name
    try:
        table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - reported, scan goes on
        issue("", manifest, f"{name}: cannot be read as CSV: {exc}")
        return [], set()
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in ("patient_id", "mask_path") if c not in table.columns]
    if "series_uid" not in table.columns and "folder" not in table.columns:
        missing.append("series_uid or folder")
    if missing:
        issue("", manifest, f"{name}: missing required column(s) {missing}; found {list(table.columns)}")
        return [], set()

    root = os.path.normpath(study_dir)
    groups: dict[tuple[str, Path], list[tuple[int, dict[str, str]]]] = defaultdict(list)
    listed: set[Path] = set()
    for i, row in enumerate(table.to_dict("records")):
        line = i + 2  # header is line 1
        rel = row["mask_path"].strip()
        # lexical check (no symlink resolution): the walk follows links inside the archive, so a linked file
        # is archive content, but "../" or an absolute path leaves the archive and is refused
        target = Path(os.path.normpath(study_dir / rel))
        if not rel or Path(rel).is_absolute() or os.path.commonpath([root, target]) != root:
            issue(
                row["patient_id"],
                manifest,
                f"{name} line {line}: mask_path '{rel}' escapes the archive; refused",
            )
            continue
        listed.add(target)
        if not target.is_file():
            issue(row["patient_id"], manifest, f"{name} line {line}: mask_path '{rel}' does not exist")
            continue
        groups[(row["patient_id"].strip(), target)].append((line, row))

    out: list[PairedMask] = []
    for (pid, target), rows in groups.items():
        line, first = rows[0]
        stack = _find_stack(first, pid, study_dir, index)
        if stack is None:
            where = first.get("series_uid") or first.get("folder")
            issue(
                pid, target, f"{name} line {line}: no CT series '{where}' of patient '{pid}' in the archive"
            )
            continue
        header = labelmap_headers.get(target, {})
        if header.get("kind") == "labelmap" and not labelmap_size_matches(stack, header):
            issue(
                pid,
                target,
                f"{name} line {line}: label map size {header.get('size')} differs from the CT matrix "
                f"({stack.columns}, {stack.rows}, {stack.n_slices}); the loader will refuse or resample it",
            )
        table_rows: list[tuple[int, str, str, bool]] = []
        for line, row in rows:
            entry = _label_entry(row, line, name, pid, target, issue)
            if entry is not None:
                table_rows.append(entry)
        out.append(PairedMask(_labelmap_ref(target, stack, "manifest", tuple(table_rows)), stack))
    return out, listed


def _find_stack(row: dict[str, str], pid: str, study_dir: Path, index: StackIndex) -> Stack | None:
    candidates: list[Stack] = []
    uid = (row.get("series_uid") or "").strip()
    folder = (row.get("folder") or "").strip()
    if uid:
        candidates = index.by_series.get(uid, [])
    elif folder:
        target = Path(os.path.normpath(study_dir / folder))
        if os.path.commonpath([os.path.normpath(study_dir), target]) == os.path.normpath(study_dir):
            candidates = index.directly_in(target) or index.under(target)
    candidates = [s for s in candidates if not pid or s.patient_id == pid]
    if not candidates:
        return None
    return max(candidates, key=lambda s: (s.n_slices, s.stack_id))


def _label_entry(
    row: dict[str, str], line: int, name: str, pid: str, target: Path, issue: IssueSink
) -> tuple[int, str, str, bool] | None:
    label_text = (row.get("label") or "").strip()
    if not label_text:
        return None
    try:
        label = int(float(label_text))
        if label != float(label_text) or label <= 0:
            raise ValueError
    except ValueError:
        issue(
            pid, target, f"{name} line {line}, column label: expected a positive integer, got '{label_text}'"
        )
        return None
    ln_text = (row.get("is_lymph_node") or "").strip().lower()
    if ln_text not in _TRUE | _FALSE:
        issue(pid, target, f"{name} line {line}, column is_lymph_node: expected true/false, got '{ln_text}'")
        return None
    lesion_id = (row.get("lesion_id") or "").strip() or str(label)
    return (label, lesion_id, (row.get("organ") or "").strip(), ln_text in _TRUE)
