"""``python -m tools.fuzz --cases 100000``: the long fuzz run (the test suite runs 1,200 cases).

Exit code 0 when every case ended in a clear error or a valid result, 1 when some case crashed, hung, ran
out of its memory budget or raised something other than an HpdImagingError (listed, with how to rebuild
each case: ``--case N --keep DIR`` writes its files).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000, help="number of cases (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="fuzz run seed (default 0)")
    parser.add_argument("--start", type=int, default=0, help="first case index (default 0)")
    parser.add_argument("--real-data", type=Path, default=None, help="../shared/data/real: add real seeds")
    parser.add_argument("--memory-mb", type=int, default=1024, help="memory budget per case (MiB)")
    parser.add_argument("--time-limit-s", type=float, default=10.0, help="time limit per case (s)")
    parser.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--case", type=int, default=None, help="only rebuild case N into --keep")
    parser.add_argument("--keep", type=Path, default=None, help="folder for the rebuilt case's files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("highdicom").setLevel(logging.WARNING)

    if args.case is not None:
        return _rebuild(args)

    from tools.fuzz.harness import run_fuzz

    def progress(done: int, total: int) -> None:
        if done % 1000 == 0 or done == total:
            print(f"{done}/{total} cases", file=sys.stderr)

    report = run_fuzz(
        args.cases,
        args.seed,
        real_data=args.real_data,
        memory_mb=args.memory_mb,
        time_limit_s=args.time_limit_s,
        start=args.start,
        progress=progress,
    )
    print(report.summary())
    for failure in report.failures[:50]:
        print(json.dumps(failure, default=str))
    if args.report is not None:
        args.report.write_text(json.dumps(report.to_json(), indent=1, default=str))
    return 1 if report.failures else 0


def _rebuild(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    from tools.fuzz.corpus import build_corpus
    from tools.fuzz.worker import build_case, load_corpus, write_case

    keep = args.keep or Path(f"fuzz_case_{args.case}")
    with tempfile.TemporaryDirectory() as tmp:
        build_corpus(Path(tmp), args.real_data)
        seed, mutant = build_case(load_corpus(Path(tmp)), args.seed, args.case)
        inputs = write_case(mutant, keep)
        if seed["ct"]:  # mask cases are read on this CT
            shutil.copytree(Path(tmp) / seed["ct"], keep / "reference_ct")
    print(f"case {args.case}: seed {seed['name']} ({mutant.target}), {mutant.mutation}; files in {inputs}")
    if seed["ct"]:
        print(f"reference CT (load_ct it, then load_masks the case file on it): {keep / 'reference_ct'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
