"""The fuzz worker: a child process that builds and runs cases under a memory limit and a per-case alarm.

It is started by :mod:`tools.fuzz.harness` (never imported by library code), prints one JSON line when
ready, then for every case a ``start`` line (so the parent knows which case hung or crashed the process) and a
``result`` line. The parent enforces the hard time limit by killing the process; here ``SIGALRM`` turns a
slow case into a ``hang`` result while Python code is running.

A case runs every reader that applies to its files:

* ``archive``: :func:`hpd_imaging.archive.scan_archive` on the case folder (header reading, stack building,
  pairing); it must never raise, problems become issues;
* ``loader``: :func:`hpd_imaging.io.load_ct` for CT seeds, :func:`hpd_imaging.io.load_masks` (SEG, RTSTRUCT,
  label map dispatch) on the seed's reference CT for mask seeds; it must return a valid object or raise an
  :class:`hpd_imaging.errors.HpdImagingError` whose message names the file.

Statuses: ``ok`` (read fine), ``refused`` (a clear HpdImagingError), ``bug`` (any other exception, or an error
that does not name its file), ``memory`` (MemoryError anywhere in the chain: the memory budget was reached,
so a guard is missing), ``hang`` (the alarm fired).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import resource
import shutil
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from tools.fuzz.mutate import Mutant, mutate

_SEED_SCAN_DATE = dt.date(2024, 1, 1)  # StudyDate of the synthetic seeds
STATUS_ORDER = ("ok", "refused", "hang", "memory", "bug")


class CaseTimeout(BaseException):  # noqa: N818 - BaseException so that `except Exception` cannot swallow it
    """Raised by SIGALRM inside a case that runs past its time limit."""


def fuzz_settings() -> Any:
    """Loader limits of the harness: they must keep every case within the worker's memory budget."""
    from hpd_imaging.settings.io import LoaderSettings

    return LoaderSettings(
        max_ct_voxels=50_000_000,  # 100 MB of int16
        max_pixel_data_bytes=256 * 2**20,
        max_contour_points=200_000,
    )


def load_corpus(corpus_dir: Path) -> list[dict[str, Any]]:
    index = json.loads((corpus_dir / "corpus.json").read_text())
    seeds = []
    for seed in index["seeds"]:
        files = {Path(f).name: (corpus_dir / f).read_bytes() for f in seed["files"]}
        seeds.append({**seed, "data": files})
    return seeds


def build_case(seeds: list[dict[str, Any]], fuzz_seed: int, index: int) -> tuple[dict[str, Any], Mutant]:
    """Case ``index`` of run ``fuzz_seed``: targets in turn, then the seeds of that target in turn; the
    mutation comes from the case's own random stream."""
    targets = sorted({s["target"] for s in seeds})
    target = targets[index % len(targets)]
    of_target = [s for s in seeds if s["target"] == target]
    seed = of_target[(index // len(targets)) % len(of_target)]
    rng = random.Random(f"{fuzz_seed}:{index}")
    return seed, mutate(seed, seed["data"], rng)


def write_case(mutant: Mutant, folder: Path) -> Path:
    """Write the case's files into ``folder/input`` (emptied first); returns that folder."""
    if folder.exists():
        shutil.rmtree(folder)
    inputs = folder / "input"
    inputs.mkdir(parents=True)
    for name, data in mutant.files.items():
        (inputs / name).write_bytes(data)
    return inputs


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _classify(exc: BaseException, where: str) -> dict[str, Any]:
    from hpd_imaging.errors import HpdImagingError

    chain = _chain(exc)
    if isinstance(exc, CaseTimeout):
        return {"status": "hang", "detail": "time limit reached"}
    if any(isinstance(e, MemoryError) for e in chain):
        return {"status": "memory", "detail": f"{type(exc).__name__}: {exc}"[:500]}
    if isinstance(exc, HpdImagingError):
        message = str(exc)
        named = where in message or (exc.path is not None and where in exc.path)
        if not named:
            return {"status": "bug", "detail": f"unnamed file: {type(exc).__name__}: {message}"[:500]}
        return {"status": "refused", "detail": f"{type(exc).__name__}: {message}"[:300]}
    tb = "".join(traceback.format_exception(exc)[-4:])
    return {"status": "bug", "detail": f"{type(exc).__name__}: {exc}"[:300], "traceback": tb[-1500:]}


def _worst(results: dict[str, dict[str, Any]]) -> str:
    return max((r["status"] for r in results.values()), key=STATUS_ORDER.index, default="ok")


def run_case(
    seed: dict[str, Any], mutant: Mutant, inputs: Path, references: dict[str, Any], settings: Any
) -> dict[str, dict[str, Any]]:
    """Run the archive scan and the loader of the seed's target on one written case."""
    from hpd_imaging.archive import scan_archive
    from hpd_imaging.io import load_ct, load_masks

    results: dict[str, dict[str, Any]] = {}
    archive = None
    try:
        archive = scan_archive(inputs)
        json.dumps([vars(i) for i in archive.issues])  # issues end up in CSV/JSON outputs
        results["archive"] = {"status": "ok", "detail": f"{len(archive.issues)} issue(s)"}
    except BaseException as exc:  # noqa: BLE001 - the scan must never raise: anything here is a finding
        if isinstance(exc, KeyboardInterrupt):
            raise
        results["archive"] = _classify(exc, str(inputs))
        if results["archive"]["status"] == "refused":  # the scan contract: issues, never exceptions
            results["archive"]["status"] = "bug"
    if "clinical.csv" in mutant.files:
        results["clinical"] = _clinical(inputs / "clinical.csv", archive)
    main = inputs / mutant.main
    try:
        if mutant.target == "ct":
            ct = load_ct(inputs if len(mutant.files) > 1 else main, settings)
            if ct.hu.shape != ct.geometry.shape:
                raise AssertionError(f"CtImage voxels {ct.hu.shape} vs geometry {ct.geometry.shape}")
            results["loader"] = {"status": "ok", "detail": f"CT {ct.hu.shape}"}
        else:
            ct = references[seed["ct"]]
            masks = load_masks(main, ct, settings=settings)
            if any(m.mask.shape != ct.geometry.shape for m in masks):
                raise AssertionError("a mask is not on the CT grid")
            results["loader"] = {"status": "ok", "detail": f"{len(masks)} mask(s)"}
    except BaseException as exc:  # noqa: BLE001 - classified below
        if isinstance(exc, KeyboardInterrupt):
            raise
        where = str(inputs) if mutant.target == "ct" and len(mutant.files) > 1 else str(main)
        results["loader"] = _classify(exc, where)
    return results


def _clinical(path: Path, archive: Any) -> dict[str, Any]:
    """read_clinical + check_clinical_dates: a refused table must name the file, the checks never raise."""
    from hpd_imaging.archive.clinical import check_clinical_dates, read_clinical

    try:
        # a mask-only case has no CT in its folder: the table is then read without the patient check and
        # its dates checked against the seeds' scan date
        known = archive.patients if archive is not None and archive.patients else None
        table = read_clinical(path, known_patients=known)
        if known is not None:
            scans = {p: [t.scan_date for t in tps] for p, tps in archive.timepoints.items()}
        else:
            scans = {str(p): [_SEED_SCAN_DATE] for p in table["patient_id"]}
        issues = check_clinical_dates(table, scans, source=path.name)
        return {"status": "ok", "detail": f"{len(issues)} date issue(s): {sorted({i.rule for i in issues})}"}
    except BaseException as exc:  # noqa: BLE001 - classified
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _classify(exc, str(path))


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz.worker")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--time-limit-s", type=float, default=10.0)
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    import SimpleITK as sitk  # noqa: N813

    from hpd_imaging.io import load_ct

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    seeds = load_corpus(args.corpus)
    references = {s["ct"]: load_ct(args.corpus / s["ct"]) for s in seeds if s["ct"] is not None}
    settings = fuzz_settings()
    # memory budget: what the process holds now plus the allowance; a bigger allocation raises MemoryError
    vm_bytes = _vm_size()
    if args.memory_mb > 0:
        soft_hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = vm_bytes + args.memory_mb * 2**20
        hard = soft_hard[1] if soft_hard[1] != resource.RLIM_INFINITY else limit
        resource.setrlimit(resource.RLIMIT_AS, (min(limit, hard), hard))
    signal.signal(signal.SIGALRM, _on_alarm)
    _emit({"ready": True, "vm_mb": vm_bytes // 2**20, "n_seeds": len(seeds)})
    case_dir = args.work / f"case_{os.getpid()}"
    selftest = _parse_self_test(os.environ.get("HPD_FUZZ_SELFTEST", ""))
    for index in range(args.start, args.stop):
        t0 = time.perf_counter()
        seed, mutant = build_case(seeds, args.seed, index)
        _emit({"start": index, "seed": seed["name"], "mutation": mutant.mutation})
        inputs = write_case(mutant, case_dir)
        signal.setitimer(signal.ITIMER_REAL, args.time_limit_s)
        try:
            if index in selftest:
                results = _self_test(selftest[index])
            else:
                results = run_case(seed, mutant, inputs, references, settings)
        except CaseTimeout:
            results = {"case": {"status": "hang", "detail": f"over {args.time_limit_s} s"}}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        _emit(
            {
                "case": index,
                "seed": seed["name"],
                "target": mutant.target,
                "mutation": mutant.mutation,
                "status": _worst(results),
                "results": results,
                "seconds": round(time.perf_counter() - t0, 4),
            }
        )
    shutil.rmtree(case_dir, ignore_errors=True)
    return 0


def _parse_self_test(text: str) -> dict[int, str]:
    """``HPD_FUZZ_SELFTEST="hang:3,crash:5"``: make those cases misbehave, to test the harness's verdicts."""
    out: dict[int, str] = {}
    for part in filter(None, text.split(",")):
        kind, _, index = part.partition(":")
        out[int(index)] = kind
    return out


def _self_test(kind: str) -> dict[str, dict[str, Any]]:
    """Misbehave like a broken reader would: the harness must report each of these as a failure."""
    if kind == "hang":  # Python-level: interrupted by SIGALRM
        time.sleep(3600)
    elif kind == "stall":  # deaf to SIGALRM (like a loop in C code): the parent must kill the worker
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)
    elif kind == "crash":  # a native library dying
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "memory":  # an allocation beyond the budget
        try:
            bytearray(8 * 2**30)
        except MemoryError as exc:
            return {"loader": _classify(exc, "")}
    elif kind == "bug":
        try:
            raise KeyError("self-test")
        except KeyError as exc:
            return {"loader": _classify(exc, "")}
    return {"loader": {"status": "ok", "detail": f"self-test {kind}"}}


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    raise SystemExit(main())
