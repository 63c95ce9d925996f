"""scan_archive(): walk any folder layout, index patient -> exam (by date) -> CT series, pair masks.

Only headers are read (see headers.py); with ``cache_dir`` the header records persist in an SQLite index so
that a re-scan reads only new or changed files. Problems with single files or series (unreadable file,
missing PatientID or date, a mask that pairs with nothing) become ``Archive.issues``; the scan itself only
fails when the archive folder does not exist.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import logging
import multiprocessing
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from hpd_imaging.archive import cache as _cache
from hpd_imaging.archive import headers as _headers
from hpd_imaging.archive import index_cache as _index_cache
from hpd_imaging.archive.cache import HeaderCache
from hpd_imaging.archive.choose import choose_ct, not_candidate_reason
from hpd_imaging.archive.images_manifest import read_images_manifest
from hpd_imaging.archive.manifest import read_manifest
from hpd_imaging.archive.pairing import (
    PairedMask,
    StackIndex,
    looks_like_label_map,
    pair_dicom_mask,
    pair_labelmap_by_convention,
)
from hpd_imaging.archive.rulers import ruler_reports
from hpd_imaging.archive.stacks import Stack, build_stacks
from hpd_imaging.domain import MaskRef, MaskSource, Timepoint
from hpd_imaging.errors import ConfigError
from hpd_imaging.settings.archive import ArchiveSettings

logger = logging.getLogger(__name__)

DEFAULT_SETTINGS = ArchiveSettings()  # frozen pydantic model: safe to share as a default
ProgressCallback = Callable[[int, int], None]  # (files done, files total)

SERIES_COLUMNS = [
    "patient_id",
    "scan_date",
    "study_uid",
    "series_uid",
    "stack_key",
    "modality",
    "n_slices",
    "rows",
    "columns",
    "pixel_spacing_mm",
    "slice_thickness_mm",
    "series_description",
    "series_number",
    "convolution_kernel",
    "image_type",
    "chosen",
    "choice_reason",
    "mask_files",
    "mask_pairing",
    "structures",
    "folder",
]


@dataclass(frozen=True)
class ArchiveIssue:
    """One problem met while scanning: which patient (may be ''), which file or folder, what and why."""

    patient_id: str
    path: str
    message: str


@dataclass
class Archive:
    """The indexed archive: what the pipeline iterates over (contracts.md)."""

    study_dir: Path
    timepoints: dict[str, list[Timepoint]] = field(default_factory=dict)
    issues: list[ArchiveIssue] = field(default_factory=list)
    n_files: int = 0
    n_non_dicom_skipped: int = 0
    clinical_path: Path | None = None
    manifest_path: Path | None = None
    images_manifest_path: Path | None = None  # images.csv: NIfTI/NRRD exams (archive/images_manifest.py)
    stacks: list[Stack] = field(default_factory=list)  # every image stack found, chosen or not
    masks: list[PairedMask] = field(default_factory=list)  # every mask found, paired or not
    scan_stats: dict[str, float] = field(default_factory=dict)  # n_read, n_cached, seconds
    _rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def patients(self) -> list[str]:
        return sorted(self.timepoints)

    def series_table(self) -> pd.DataFrame:
        """series.csv: one row per image stack (chosen CT, alternatives, excluded stacks with the reason)."""
        return pd.DataFrame(self._rows, columns=SERIES_COLUMNS)


def _walk(root: Path, skip: set[Path]) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every regular file under ``root``; os.scandir gives the stat cheaply.

    Paths stay strings here: on 100,000 files pathlib object creation and comparison cost seconds.

    Symbolic links are followed (archives assembled with links, git-annex/DataLad datasets); a folder reached
    twice through links is walked once, so link cycles cannot loop.
    """
    stack = [root]
    seen_dirs: set[Path] = set()
    while stack:
        folder = stack.pop()
        real = folder.resolve()
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            logger.warning("%s: cannot list folder: %s", folder, exc)
            continue
        for entry in entries:
            try:
                if entry.is_dir():
                    if not skip or Path(entry.path) not in skip:
                        stack.append(Path(entry.path))
                elif entry.is_file():
                    st = entry.stat()
                    yield entry.path, st.st_size, st.st_mtime_ns
            except OSError as exc:  # dangling link, permission denied
                logger.warning("%s: cannot stat: %s", entry.path, exc)


#: A pool of header readers: one process per HEADERS_PER_READER headers to read, and only from MIN_READERS
#: processes. Measured on a shared 2-core machine (4,828 headers of 512x512 CT slices): one process 4.3-4.6 s,
#: 2 forkserver readers 5.4 s, 2 spawned readers 10.3 s: a reader pays ~2 s to import pandas/pydicom (once, in
#: the fork server) and 2 readers on 2 busy cores win nothing. From 4 readers (cores to spare: a 32-core
#: machine running 32 workers) the ~1 ms per header divides and the import is paid once.
HEADERS_PER_READER = 500
MIN_READERS = 4


def _reader_context() -> Any:
    """forkserver, not fork: the caller may run threads (progress display, a Dask client) that fork would
    copy mid-lock; not spawn: each spawned reader would import pandas and pydicom again (~2 s each). The
    fork server imports this module once; its children start in milliseconds."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hpd_imaging.archive.scan"])
    return context


def _read_one(path: str) -> dict[str, Any]:  # module level: picklable for the pool
    """Header record of one file; NIfTI/NRRD/MetaImage told from DICOM by content, never by the name."""
    from hpd_imaging.io.filetype import is_volume_file

    if is_volume_file(path):
        return _headers.read_labelmap_header(Path(path))
    return _headers.read_header(Path(path))


def scan_archive(
    study_dir: Path,
    *,
    cache_dir: Path | None = None,
    settings: ArchiveSettings = DEFAULT_SETTINGS,
    progress: ProgressCallback | None = None,
) -> Archive:
    """Index an imaging archive from headers only (see the package docstring for the rules)."""
    t0 = time.perf_counter()
    study_dir = Path(study_dir).resolve()
    if not study_dir.is_dir():
        raise ConfigError(
            f"{study_dir}: expected an archive folder, got {'a file' if study_dir.exists() else 'nothing'}"
        )
    archive = Archive(study_dir=study_dir)

    def issue(patient_id: str, path: Path | str, message: str) -> None:
        path_text = str(path)
        with contextlib.suppress(ValueError):  # lexical: a linked file is named by its path in the archive
            path_text = Path(path).relative_to(study_dir).as_posix()
        archive.issues.append(ArchiveIssue(patient_id, path_text, message))
        logger.info("%s: %s", path_text, message)

    skip: set[Path] = set()
    if cache_dir is not None:
        skip.add(Path(cache_dir).resolve())
    with _gc_paused():  # one small tuple per file, no cycles
        files = sorted(_walk(study_dir, skip))
    archive.n_files = len(files)

    with contextlib.ExitStack() as resources:
        cache: HeaderCache | None = None
        index_key = ""
        if cache_dir is not None and settings.use_cache:
            cache = resources.enter_context(HeaderCache(Path(cache_dir) / settings.cache_file_name))
            index_key = _index_cache.index_key(study_dir, files, settings, _cache.RECORD_VERSION)
            with _gc_paused():  # unpickling a Path per file, no cycles
                reused = _reuse_index(cache, study_dir, index_key, len(files), t0, progress)
            if reused is not None:
                return reused
        records = _load_records(files, study_dir, cache, settings, progress)
        archive.scan_stats.update(records.pop("__stats__"))
        with _gc_paused():
            _build_index(archive, files, records, settings, issue)
            archive.scan_stats["seconds"] = time.perf_counter() - t0
            payload = _index_cache.dumps_archive(archive) if cache is not None else None
        if cache is not None and payload is not None:
            cache.store_index(str(study_dir), index_key, *payload)
    _log_summary(archive)
    return archive


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while many small acyclic objects are made (decoded records, stacks).

    Why: every few hundred allocations CPython's collector walks all tracked objects; with one dict per file
    alive that made up ~20 % of a re-scan after a change. Only wrapped around code that parses no image
    headers (at most a DICOMDIR: pydicom datasets may hold cycles), and the collector's state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _reuse_index(
    cache: HeaderCache, study_dir: Path, key: str, n_files: int, t0: float, progress: ProgressCallback | None
) -> Archive | None:
    """The cached index of an unchanged archive (same files, sizes, mtimes, settings, code), else None."""
    payload = cache.load_index(str(study_dir), key)
    if payload is None:
        return None
    try:
        archive = _index_cache.restricted_loads(payload)
        if not isinstance(archive, Archive):
            raise TypeError(f"expected an Archive, got {type(archive).__name__}")
        source = _index_cache.RecordsSource(cache.db_path, str(study_dir), key)
        _index_cache.attach_records_source(
            archive.stacks + [m.stack for m in archive.masks if m.stack is not None], source
        )
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign cache row only costs a full re-scan
        logger.warning("%s: cached index unusable (%s); re-indexing", cache.db_path, exc)
        cache.drop_index(str(study_dir))
        return None
    if progress:
        progress(n_files, n_files)
    for found in archive.issues:  # the log of a re-scan tells the same story as the scan that built it
        logger.info("%s: %s", found.path, found.message)
    archive.scan_stats = {
        "n_read": 0.0,
        "n_cached": float(n_files),
        "index_reused": 1.0,
        "seconds": time.perf_counter() - t0,
    }
    _log_summary(archive)
    return archive


def _build_index(
    archive: Archive,
    files: list[tuple[str, int, int]],
    records: dict[str, Any],
    settings: ArchiveSettings,
    issue: Callable[[str, Path | str, str], None],
) -> None:
    """Group the header records into stacks, pair the masks, choose a CT per exam (fills ``archive``)."""
    study_dir = archive.study_dir

    images: list[tuple[Path, dict[str, Any]]] = []
    dicom_masks: list[tuple[Path, dict[str, Any]]] = []
    sr_files: list[tuple[Path, dict[str, Any]]] = []
    labelmaps: dict[Path, dict[str, Any]] = {}
    manifest = study_dir / settings.manifest_name
    images_manifest = study_dir / settings.images_manifest_name
    clinical = study_dir / settings.clinical_name
    # compared as text and built from a memoised parent: the walk's paths are already normalised, and parsing
    # every full path with pathlib was a fifth of a re-scan
    manifest_text, clinical_text, images_text = str(manifest), str(clinical), str(images_manifest)
    make_path = _index_cache._path_from_text
    for path_text, _, _ in files:
        record = records[path_text]
        path = make_path(path_text)
        kind = record.get("kind")
        if path_text == manifest_text:
            archive.manifest_path = path
        elif path_text == images_text:
            archive.images_manifest_path = path
        elif path_text == clinical_text:
            archive.clinical_path = path
        elif kind == "image":
            images.append((path, record))
        elif kind in ("seg", "rtstruct"):
            dicom_masks.append((path, record))
        elif kind == "labelmap":
            labelmaps[path] = record  # label map or NIfTI/NRRD image: decided after reading masks.csv
        elif kind == "error":
            issue(record.get("patient_id", ""), path, record.get("message", "unreadable"))
        elif kind == "dicomdir":
            _check_dicomdir(path, issue)
        elif kind == "non_dicom":
            archive.n_non_dicom_skipped += 1
        elif kind == "other_dicom" and record.get("modality") == "SR":
            sr_files.append((path, record))
        # other other_dicom (presentation states, ...) is indexed nowhere but is no problem

    archive.stacks = build_stacks(images, study_dir, settings, issue)
    candidates = [s for s in archive.stacks if not not_candidate_reason(s, settings)]
    index = StackIndex(candidates)

    paired: list[PairedMask] = []
    for path, record in dicom_masks:
        pm = pair_dicom_mask(path, record, index, settings, issue)
        if pm.stack is None:
            issue(pm.ref.patient_id, path, f"{pm.ref.source.value}: pairs with no CT series of the archive")
        paired.append(pm)
    listed: set[Path] = set()
    if archive.manifest_path is not None:
        manifest_pairs, listed = read_manifest(archive.manifest_path, study_dir, index, labelmaps, issue)
        paired.extend(manifest_pairs)
    image_timepoints: list[Timepoint] = []
    image_rows: list[dict[str, Any]] = []
    if archive.images_manifest_path is not None:
        image_timepoints, image_listed, image_rows = read_images_manifest(
            archive.images_manifest_path, study_dir, labelmaps, issue
        )
        listed |= image_listed
    for path, header in labelmaps.items():
        if path in listed:
            continue
        if not looks_like_label_map(path, header):
            archive.n_non_dicom_skipped += 1
            logger.debug("%s: NIfTI/NRRD image, not a label map; skipped", path)
            continue
        pm_or_none = pair_labelmap_by_convention(path, header, index, study_dir, settings, issue)
        if pm_or_none is None:
            issue(
                "",
                path,
                "label map: pairs with no CT series (not in masks.csv, no naming convention applies)",
            )
            archive.masks.append(PairedMask(MaskRef(path=path, source=MaskSource.LABELMAP), None))
            continue
        paired.append(pm_or_none)
    paired.extend(ruler_reports(sr_files, issue))
    archive.masks.extend(paired)

    _build_timepoints(archive, paired, settings, issue)
    for tp in image_timepoints:  # NIfTI/NRRD exams of images.csv; a DICOM exam of the same date wins
        known = {t.scan_date for t in archive.timepoints.get(tp.patient_id, [])}
        if tp.scan_date in known:
            issue(
                tp.patient_id,
                tp.ct.files[0],
                f"images.csv: exam {tp.scan_date} also has a DICOM CT; kept that",
            )
            continue
        archive.timepoints.setdefault(tp.patient_id, []).append(tp)
        archive.timepoints[tp.patient_id].sort(key=lambda t: t.scan_date)
    archive._rows.extend(image_rows)


def _log_summary(archive: Archive) -> None:
    logger.info(
        "%s: %d files (%d read, %d from cache, %d non-DICOM skipped), %d patients, %d issues in %.2f s",
        archive.study_dir,
        archive.n_files,
        archive.scan_stats.get("n_read", 0),
        archive.scan_stats.get("n_cached", 0),
        archive.n_non_dicom_skipped,
        len(archive.timepoints),
        len(archive.issues),
        archive.scan_stats["seconds"],
    )


def _load_records(
    files: list[tuple[str, int, int]],
    study_dir: Path,
    cache: HeaderCache | None,
    settings: ArchiveSettings,
    progress: ProgressCallback | None,
) -> dict[str, Any]:
    """Header record of every file: from the cache when size and mtime_ns match, else read (and cached)."""
    cached = cache.load(str(study_dir) + os.sep) if cache else {}
    out: dict[str, Any] = {}
    to_read: list[tuple[str, int, int]] = []
    loads = json.loads
    with _gc_paused():
        for path, size, mtime in files:
            hit = cached.get(path)
            if hit is not None and hit[0] == size and hit[1] == mtime:
                out[path] = loads(hit[2])
            else:
                to_read.append((path, size, mtime))
    n_cached = len(files) - len(to_read)
    total = len(files)
    if progress:
        progress(n_cached, total)
    jobs = [p for p, _, _ in to_read]
    n_readers = min(settings.workers, len(jobs) // HEADERS_PER_READER)
    if n_readers >= MIN_READERS:
        with ProcessPoolExecutor(n_readers, mp_context=_reader_context()) as pool:
            results = list(pool.map(_read_one, jobs, chunksize=64))
    else:
        results = []
        for i, job in enumerate(jobs):
            results.append(_read_one(job))
            if progress and (i % 500 == 499):
                progress(n_cached + i + 1, total)
    for (path, _, _), record in zip(to_read, results, strict=True):
        out[path] = record
    if progress:
        progress(total, total)
    if cache is not None:
        seen = {p for p, _, _ in files}
        removed = [p for p in cached if p not in seen]
        cache.store(((p, s, m, out[p]) for p, s, m in to_read), removed)
    out["__stats__"] = {"n_read": float(len(to_read)), "n_cached": float(n_cached)}
    return out


def _check_dicomdir(path: Path, issue: Callable[[str, Path | str, str], None]) -> None:
    """A DICOMDIR is not needed to find files (the walk finds them); check that what it lists is there.

    The records are read directly: pydicom's FileSet silently drops records whose file is missing (it only
    warns), which is exactly what we want to report.
    """
    try:
        from pydicom import dcmread

        ds = dcmread(path)
        missing: list[str] = []
        n_listed = 0
        for record in ds.get("DirectoryRecordSequence", None) or []:
            file_id = record.get("ReferencedFileID", None)
            if not file_id:
                continue
            parts = [file_id] if isinstance(file_id, str) else list(file_id)
            n_listed += 1
            if not path.parent.joinpath(*parts).is_file():
                missing.append("/".join(parts))
    except Exception as exc:  # noqa: BLE001 - a damaged DICOMDIR is one issue
        issue("", path, f"DICOMDIR cannot be read: {exc}")
        return
    if missing:
        issue(
            "",
            path,
            f"DICOMDIR lists {len(missing)} file(s) that are absent (of {n_listed}), e.g. {missing[0]}",
        )


def _build_timepoints(
    archive: Archive,
    paired: list[PairedMask],
    settings: ArchiveSettings,
    issue: Callable[[str, Path | str, str], None],
) -> None:
    exams: dict[tuple[str, dt.date], list[Stack]] = defaultdict(list)
    for s in archive.stacks:
        if s.study_date is None:
            issue(
                s.patient_id,
                s.files[0].parent,
                f"series {s.stack_id}: no valid StudyDate/SeriesDate; not indexed",
            )
            archive._rows.append(
                _row(s, False, "excluded: no valid StudyDate/SeriesDate", [], archive.study_dir)
            )
            continue
        exams[(s.patient_id, s.study_date)].append(s)

    masks_by_stack: dict[str, list[PairedMask]] = defaultdict(list)
    masks_by_exam: dict[tuple[str, Any], list[PairedMask]] = defaultdict(list)
    for pm in paired:
        if pm.stack is not None:
            masks_by_stack[pm.stack.stack_id].append(pm)
        elif pm.exam is not None:
            masks_by_exam[pm.exam].append(pm)

    rel = archive.study_dir
    for (pid, date), stacks in sorted(exams.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        counts = {s.stack_id: len(masks_by_stack.get(s.stack_id, [])) for s in stacks}
        choice = choose_ct(stacks, counts, settings)
        exam_masks = masks_by_exam.get((pid, date), [])
        chosen_masks: list[MaskRef] = []
        if choice.chosen is not None:
            chosen_masks = [pm.ref for pm in masks_by_stack.get(choice.chosen.stack_id, [])]
            for pm in exam_masks:  # label maps known only by exam folder go with the chosen CT
                chosen_masks.append(_with_series(pm.ref, choice.chosen))
            tp = Timepoint(
                patient_id=pid,
                scan_date=date,
                ct=choice.chosen.to_series_ref(),
                masks=tuple(chosen_masks),
                alternatives=tuple(s.to_series_ref() for s in choice.alternatives),
                choice_reason=choice.reason,
            )
            archive.timepoints.setdefault(pid, []).append(tp)
        else:
            lonely = [pm for s in stacks for pm in masks_by_stack.get(s.stack_id, [])] + exam_masks
            if lonely or any(s.is_ct for s in stacks):
                issue(pid, stacks[0].files[0].parent, f"exam {date}: no CT volume ({choice.reason})")
        for alt in choice.alternatives:
            for pm in masks_by_stack.get(alt.stack_id, []):
                issue(
                    pid,
                    pm.ref.path,
                    f"mask paired with series {alt.stack_id}, which was not chosen for {date}",
                )
        for s in stacks:
            if choice.chosen is s:
                reason, masks = choice.reason, chosen_masks
            elif s.stack_id in choice.excluded:
                reason, masks = (
                    f"excluded: {choice.excluded[s.stack_id]}",
                    [pm.ref for pm in masks_by_stack.get(s.stack_id, [])],
                )
            else:
                chosen_id = choice.chosen.stack_id if choice.chosen else ""
                reason = f"alternative: not chosen (chosen {chosen_id})"
                masks = [pm.ref for pm in masks_by_stack.get(s.stack_id, [])]
            archive._rows.append(_row(s, choice.chosen is s, reason, masks, rel))
    for tps in archive.timepoints.values():
        tps.sort(key=lambda t: t.scan_date)


def _with_series(ref: MaskRef, stack: Stack) -> MaskRef:
    return replace(ref, referenced_series_uid=stack.series_uid, frame_of_reference_uid=stack.for_uid)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _row(stack: Stack, chosen: bool, reason: str, masks: list[MaskRef], root: Path) -> dict[str, Any]:
    folders = sorted({_relative(folder, root) for folder in {f.parent for f in stack.files}})
    return {
        "patient_id": stack.patient_id,
        "scan_date": stack.study_date.isoformat() if stack.study_date else "",
        "study_uid": stack.study_uid,
        "series_uid": stack.series_uid,
        "stack_key": stack.stack_key,
        "modality": stack.modality,
        "n_slices": stack.n_slices,
        "rows": stack.rows,
        "columns": stack.columns,
        "pixel_spacing_mm": "x".join(f"{v:g}" for v in stack.pixel_spacing) if stack.pixel_spacing else "",
        "slice_thickness_mm": stack.slice_thickness,
        "series_description": stack.series_description,
        "series_number": stack.series_number,
        "convolution_kernel": stack.kernel,
        "image_type": "\\".join(stack.image_type),
        "chosen": chosen,
        "choice_reason": reason,
        "mask_files": ";".join(_relative(m.path, root) for m in masks),
        "mask_pairing": ";".join(m.pairing for m in masks),
        "structures": "; ".join(f"{m.path.name}: {s}" for m in masks for s in m.structures),
        "folder": ";".join(folders),
    }
