"""The real-size archives of benchmarks/real_size.py: made once into the data folder and reused.

``hpd-imaging synth`` makes ``real_distinct`` patients (uncompressed, seed 21, 3 timepoints of
``real_matrix`` x ``real_matrix`` x ``real_slices``, SEG masks); the JPEG 2000 archive is that one transcoded
slice by slice (same voxels); each is then filled up to ``real_patients`` with copies under new identities.
Each step writes ``.bench_synth.json`` (what made it: reused while equal) and ``.bench_cost.json`` (what it
cost: wall and CPU seconds, peak RSS per process, bytes on disk), so that a later run with ``--data-dir``
reuses the archive and still reports what generating it cost.
"""

from __future__ import annotations

import json
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks._common import BenchOptions, log, read_cost, synth_archive, write_cost


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def archive_names(opts: BenchOptions, compression: str) -> tuple[str, str]:
    """(synthesised source, filled archive) folder names under the data folder."""
    src = f"real_src_{opts.real_distinct}p_{opts.real_matrix}x{opts.real_slices}"
    return src, f"real_{opts.real_patients}p_{opts.real_matrix}x{opts.real_slices}_{compression}"


def generation_cost(opts: BenchOptions, compression: str) -> dict[str, Any]:
    """What making the archive of ``compression`` cost, step by step, as recorded when it was made."""
    src, full = archive_names(opts, compression)
    steps = {"synth": opts.data_dir / f"{src}_none"}
    if compression != "none":
        steps["transcode"] = opts.data_dir / f"{src}_{compression}"
    steps["clone"] = opts.data_dir / full
    return {k: read_cost(v) for k, v in steps.items()}


def real_synth_args(opts: BenchOptions, patients: int) -> list[str]:
    """``hpd-imaging synth`` arguments of the real-size exams: ``patients`` x (baseline + 1 follow-up) of
    ``real_matrix`` x ``real_slices`` over synth's 240 mm scan, uncompressed, seed 21 (the order is part of
    the archive's cache key, .bench_synth.json)."""
    return [
        "--patients",
        str(patients),
        "--followups",
        "1",
        "--matrix",
        str(opts.real_matrix),
        "--slice-thickness-mm",
        f"{240.0 / opts.real_slices:g}",
        "--compression",
        "none",
        "--seed",
        "21",
    ]


def real_archive(opts: BenchOptions, compression: str) -> Path:
    """The real-size archive of one compression: ``real_patients`` patients, the same voxels for both.

    ``hpd-imaging synth`` makes ``real_distinct`` patients (uncompressed); that archive is transcoded to JPEG
    2000 with the call synth itself makes (:func:`transcode_archive`), and each is then filled up to
    ``real_patients`` with copies of those patients under new identities (:func:`clone_archive`). Why not one
    synth run of 12 patients per compression: at 512x512x200 each synth process holds ~4 GB (every exam's
    float volumes and masks) and needs ~100 CPU-s per patient (~40 minutes for 12 on this shared machine),
    while a copy with new UIDs costs a file read and write; every patient's work in the pipeline is the same
    as a fresh patient's (nothing is cached across patients), only the variety of lesions is smaller.
    """
    src_name, name = archive_names(opts, compression)
    src = synth_archive(
        f"{src_name}_none", [*real_synth_args(opts, opts.real_distinct), "--workers", "2"], opts.data_dir
    )
    if compression != "none":
        src = transcode_archive(src, src.with_name(src.name.removesuffix("_none") + f"_{compression}"))
    return clone_archive(src, opts.data_dir / name, opts.real_patients)


def _transcode_one(args: tuple[Path, Path]) -> None:
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    src, dst = args
    ds = pydicom.dcmread(src)
    ds.compress(JPEG2000Lossless, ds.pixel_array, generate_instance_uid=False)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)


def transcode_archive(src: Path, dst: Path) -> Path:
    """JPEG 2000 lossless copy of ``src`` (every CT slice; other files copied), reused while ``src`` is."""
    from concurrent.futures import ProcessPoolExecutor

    stamp = dst / ".bench_synth.json"
    wanted = {"transcoded_from": json.loads((src / ".bench_synth.json").read_text()), "to": "jpeg2000"}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    log(f"transcoding {src.name} -> {dst.name} (JPEG 2000 lossless)")
    t = time.perf_counter()
    cpu0 = _children_cpu_s()
    truth = json.loads((src / "ground_truth.json").read_text())
    ct_dirs = {tp["ct_dir"] for p in truth["patients"] for tp in p["timepoints"]}
    jobs: list[tuple[Path, Path]] = []
    for path in sorted(src.rglob("*")):
        if not path.is_file() or path.name == ".bench_synth.json":
            continue
        rel = path.relative_to(src)
        if str(rel.parent) in ct_dirs:
            jobs.append((path, dst / rel))
        else:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dst / rel)
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_transcode_one, jobs, chunksize=16))
    stamp.write_text(json.dumps(wanted))
    write_cost(dst, "transcode", time.perf_counter() - t, _children_cpu_s() - cpu0, [])
    log(f"transcoded {len(jobs)} slices in {time.perf_counter() - t:.0f} s")
    return dst


_STANDARD_UID_ROOT = "1.2.840.10008."  # DICOM's own UIDs (SOP classes, transfer syntaxes): never remapped


def _remap_uids(ds: Any, suffix: str) -> None:
    """Every UI value of ``ds`` (sequences included) mapped to a new UID derived from (old, suffix).

    The same old UID gives the same new one in every file of the clone, so every reference stays consistent
    (SEG -> source CT instances, series, frame of reference, tracking UIDs).
    """
    from pydicom.uid import generate_uid

    def new(uid: str) -> str:
        uid = str(uid)
        return (
            uid if not uid or uid.startswith(_STANDARD_UID_ROOT) else generate_uid(entropy_srcs=[uid, suffix])
        )

    def visit(d: Any, elem: Any) -> None:
        if elem.VR == "UI" and elem.value:
            elem.value = [new(v) for v in elem.value] if elem.VM > 1 else new(elem.value)

    ds.walk(visit)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.walk(visit)


def _clone_file(args: tuple[Path, Path, str, str]) -> None:
    import pydicom

    src, dst, patient_id, suffix = args
    ds = pydicom.dcmread(src)
    _remap_uids(ds, suffix)
    ds.PatientID = patient_id
    ds.PatientName = patient_id
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)


def clone_archive(src: Path, dst: Path, n_patients: int) -> Path:
    """``src`` filled up to ``n_patients``: its own patients linked, then copies of them in turn with a new
    patient ID, new UIDs and their own clinical.csv / ground_truth.json rows. Reused while ``src`` is."""
    from concurrent.futures import ProcessPoolExecutor

    stamp = dst / ".bench_synth.json"
    wanted = {"cloned_from": json.loads((src / ".bench_synth.json").read_text()), "patients": n_patients}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    t = time.perf_counter()
    cpu0 = _children_cpu_s()
    truth = json.loads((src / "ground_truth.json").read_text())
    originals = truth["patients"]
    lines = (src / "clinical.csv").read_text().splitlines()
    clinical = {row.split(",", 1)[0]: row for row in lines[1:]}
    patients, rows, jobs = [], [lines[0]], []
    for i in range(n_patients):
        base = originals[i % len(originals)]
        pid = base["patient_id"]
        if i < len(originals):
            (dst / pid).symlink_to((src / pid).resolve(), target_is_directory=True)
            patients.append(base)
            rows.append(clinical[pid])
            continue
        new_pid = f"{pid}C{i // len(originals)}"
        entry = json.loads(json.dumps(base).replace(f'"{pid}/', f'"{new_pid}/'))
        entry["patient_id"] = new_pid
        patients.append(entry)
        rows.append(new_pid + clinical[pid][len(pid) :])
        for path in sorted((src / pid).rglob("*")):
            if path.is_file():
                jobs.append((path, dst / new_pid / path.relative_to(src / pid), new_pid, new_pid))
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_clone_file, jobs, chunksize=16))
    (dst / "clinical.csv").write_text("\n".join(rows) + "\n")
    (dst / "ground_truth.json").write_text(json.dumps({**truth, "patients": patients}))
    stamp.write_text(json.dumps(wanted))
    write_cost(dst, "clone", time.perf_counter() - t, _children_cpu_s() - cpu0, [])
    log(
        f"cloned {src.name} up to {n_patients} patients ({len(jobs)} files) in "
        f"{time.perf_counter() - t:.0f} s"
    )
    return dst
