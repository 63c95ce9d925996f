"""``run_study()``: every stage, for every patient of an archive, on Dask, resumably.

Wiring only: each stage is a plain function of its own module. :mod:`.patient` is one patient's work (runs on
a worker, receives paths, never pixel arrays), :mod:`.execute` decides where it runs (in-process, a
LocalCluster, or an existing Dask scheduler), :mod:`.study` is the driver: indexing, resume keys, cohort
tables, errors.csv, run.json and the report.
"""

from hpd_imaging.pipeline.patient import ERROR_COLUMNS, PatientJob, assign_roles, process_patient
from hpd_imaging.pipeline.study import TABLES, WORK_DIR, RunSummary, run_study

__all__ = [
    "ERROR_COLUMNS",
    "TABLES",
    "WORK_DIR",
    "PatientJob",
    "RunSummary",
    "assign_roles",
    "process_patient",
    "run_study",
]
