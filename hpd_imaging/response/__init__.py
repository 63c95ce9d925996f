"""Response stage: RECIST 1.1 / iRECIST / irRC / irRECIST / imRECIST per timepoint, growth kinetics (TGR,
volumetric TGR, TGK) and every published HPD definition side by side (specs/hpd_kinetics.md).

The stage reads a :class:`~hpd_imaging.domain.PatientCourse` (built by :mod:`hpd_imaging.course`, from images
by ``run`` or from a spreadsheet by the table adapter) and returns frozen, enum-valued records
(:mod:`hpd_imaging.response.records`); only the writers turn them into tables. Module order, one direction:
records <- patient <- recist <- immune <- kinetics <- hpd <- run (concordance, growth: leaves).

Public API::

    assess_course(course, config) -> PatientResponse        (typed records of one patient)
    assess_courses(courses, config=None) -> ResponseResult  (the four tables)
    run_response(measurements, clinical, config=None) -> ResponseResult   (table adapter + assess_courses)
    response_tables(result) -> {name: DataFrame} as written; write_outputs(result, kinetics_path)
    concordance_table(kinetics) -> DataFrame
    load_response_config(path=None) -> ResponseConfig
    DEFINITIONS: dict[str, HpdDefinition]
"""

from hpd_imaging.course.table import read_table
from hpd_imaging.response.concordance import concordance_table
from hpd_imaging.response.growth import fit_growth
from hpd_imaging.response.hpd import DEFINITIONS, HpdDefinition
from hpd_imaging.response.kinetics import tgk_per_month, tgr_pct_per_month
from hpd_imaging.response.records import PatientResponse
from hpd_imaging.response.run import (
    ResponseResult,
    assess_course,
    assess_courses,
    response_tables,
    run_response,
    write_outputs,
)
from hpd_imaging.settings.hpd import ResponseConfig, Threshold, load_response_config

__all__ = [
    "DEFINITIONS",
    "HpdDefinition",
    "PatientResponse",
    "ResponseConfig",
    "ResponseResult",
    "Threshold",
    "concordance_table",
    "fit_growth",
    "load_response_config",
    "read_table",
    "run_response",
    "response_tables",
    "assess_course",
    "assess_courses",
    "tgk_per_month",
    "tgr_pct_per_month",
    "write_outputs",
]
