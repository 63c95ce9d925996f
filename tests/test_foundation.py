"""Foundation: package metadata, CLI entry point, domain invariants, config validation."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from hpd_imaging import __version__
from hpd_imaging.cli import app
from hpd_imaging.domain import CtImage, ImageGeometry, LesionMask, MaskSource
from hpd_imaging.errors import ConfigError, GeometryError, MaskError
from hpd_imaging.settings import PipelineConfig, load_config


def test_version_option_prints_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"hpd-imaging {__version__}"


def test_geometry_affine_maps_index_to_lps() -> None:
    g = ImageGeometry(shape=(3, 4, 5), spacing_mm=(0.5, 0.7, 2.5), origin_mm=(-10.0, 20.0, 30.0))
    xyz = g.index_to_lps(np.array([2.0, 3.0, 1.0]))
    np.testing.assert_allclose(xyz, [-9.0, 22.1, 32.5])
    np.testing.assert_allclose(g.lps_to_index(xyz), [2.0, 3.0, 1.0])
    assert g.voxel_volume_mm3 == pytest.approx(0.875)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spacing_mm": (1.0, 0.0, 1.0)}, "positive finite spacings"),
        ({"origin_mm": (0.0, float("nan"), 0.0)}, "finite 3D origin"),
        ({"direction": (1, 0, 0, 0.5, 1, 0, 0, 0, 1)}, "orthonormal"),
    ],
)
def test_geometry_refuses_invalid_values(kwargs: dict, message: str) -> None:
    base = {"shape": (2, 2, 2), "spacing_mm": (1.0, 1.0, 1.0), "origin_mm": (0.0, 0.0, 0.0)}
    base.update(kwargs)
    with pytest.raises(GeometryError, match=message):
        ImageGeometry(**base)


def test_ct_and_mask_must_match_their_grid() -> None:
    g = ImageGeometry(shape=(2, 3, 4), spacing_mm=(1.0, 1.0, 1.0), origin_mm=(0.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match=r"expected voxel array of shape \(2, 3, 4\), got \(2, 3, 5\)"):
        CtImage(hu=np.zeros((2, 3, 5), np.int16), geometry=g, source="ct.dcm")
    with pytest.raises(MaskError, match="expected a boolean mask"):
        LesionMask(mask=np.zeros((2, 3, 4), np.uint8), geometry=g, label="1", source=MaskSource.LABELMAP)


def test_sitk_round_trip_keeps_geometry() -> None:
    g = ImageGeometry(
        shape=(2, 3, 4),
        spacing_mm=(0.7, 0.8, 5.0),
        origin_mm=(1.0, 2.0, 3.0),
        direction=(0, 1, 0, 1, 0, 0, 0, 0, -1),
    )
    hu = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    back = CtImage.from_sitk(CtImage(hu=hu, geometry=g).to_sitk())
    assert back.geometry.is_close(g)
    np.testing.assert_array_equal(back.hu, hu)


def test_config_refuses_unknown_keys(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("loader:\n  irregular_geometry: guess\n")
    with pytest.raises(ConfigError, match=r"loader.irregular_geometry.*got 'guess'"):
        load_config(bad)


def test_default_config_is_valid_and_hash_is_stable() -> None:
    first, second = load_config().config_hash(), load_config().config_hash()
    assert first == second and len(first) == 64
    changed = PipelineConfig.model_validate({"tracking": {"max_match_distance_mm": 5.0}})
    assert changed.config_hash() != PipelineConfig().config_hash()


def test_log_lines_go_to_stderr_not_stdout(capsys) -> None:
    import logging

    from hpd_imaging.commands._common import configure_logging

    configure_logging("INFO")
    logging.getLogger("hpd_imaging.test").warning("a warning for the console")
    captured = capsys.readouterr()
    assert "a warning for the console" in captured.err
    assert "a warning for the console" not in captured.out


def test_quiet_console_keeps_full_log_file(tmp_path, capsys) -> None:
    import logging

    from hpd_imaging.commands._common import configure_logging

    log_file = tmp_path / "run.log"
    configure_logging("INFO", log_file, quiet=True)
    logging.getLogger("hpd_imaging.test").info("an info line")
    logging.getLogger("hpd_imaging.test").warning("a warning line")
    for handler in logging.getLogger().handlers:
        handler.flush()
    err = capsys.readouterr().err
    assert "a warning line" in err and "an info line" not in err
    text = log_file.read_text()
    assert (
        "INFO hpd_imaging.test: an info line" in text and "WARNING hpd_imaging.test: a warning line" in text
    )


def test_cli_import_stays_light() -> None:
    """`hpd-imaging --help` must stay fast: the CLI module may not import the heavy scientific stack."""
    import subprocess
    import sys

    code = (
        "import sys, hpd_imaging.cli\n"
        "heavy = ['numpy', 'pandas', 'pydicom', 'SimpleITK', 'sklearn', 'radiomics', 'dask', 'highdicom',"
        " 'scipy']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = result.stdout.strip()
    assert loaded == ""


# ---- domain: valid by construction (issue 14) ------------------------------------------------------------


def test_course_refuses_a_measurement_of_a_lesion_it_does_not_list() -> None:
    import datetime as dt

    from hpd_imaging.domain import Lesion, LesionMeasurement, PatientCourse

    m = LesionMeasurement("L9", None, None, 12.0, None, None, scan_date=dt.date(2024, 1, 1))
    with pytest.raises(
        ValueError, match=r"measurement of lesion 'L9' on 2024-01-01, but the course lists no such"
    ):
        PatientCourse("P1", lesions=(Lesion("L1"),), measurements=(m,))
    with pytest.raises(ValueError, match=r"lesion 'L1' measured twice on 2024-01-01"):
        PatientCourse("P1", (Lesion("L1"),), (dataclasses_replace(m, "L1"), dataclasses_replace(m, "L1")))
    with pytest.raises(ValueError, match=r"fragment of 'L7', which the course does not list"):
        PatientCourse("P1", (Lesion("L1", role="fragment", fragment_of="L7"),), ())


def dataclasses_replace(m, lesion_id: str):
    import dataclasses

    return dataclasses.replace(m, lesion_id=lesion_id)


def test_domain_enums_accept_enum_or_string_and_name_the_choices() -> None:
    import datetime as dt

    from hpd_imaging.domain import HpdAssessment, HpdLabel, Lesion, LesionRole, Timepoint, TimepointRole

    assert Lesion("L1", role="TARGET").role is LesionRole.TARGET
    assert Lesion("L1", role=LesionRole.NEW).role is LesionRole.NEW
    assert Timepoint("P", dt.date(2024, 1, 1), role="baseline").role is TimepointRole.BASELINE
    assert HpdAssessment("champiat2017", "hpd", "r").label is HpdLabel.HPD
    with pytest.raises(ValueError, match=r"role: expected one of target, non_target, new.*got 'targte'"):
        Lesion("L1", role="targte")
    with pytest.raises(ValueError, match=r"expected role fragment exactly when fragment_of is set"):
        Lesion("L2", fragment_of="L1")


def test_measurement_and_clinical_facts_refuse_nan() -> None:
    import datetime as dt

    from hpd_imaging.domain import ClinicalFacts, LesionMeasurement

    with pytest.raises(
        ValueError, match=r"expected short_axis_mm >= 0 and finite \(or None when missing\), got nan"
    ):
        LesionMeasurement("L1", 10, 5.0, 3.0, float("nan"), 3.0)
    assert LesionMeasurement("L1", None, None, 3.0, None, None).volume_mm3 is None
    with pytest.raises(ValueError, match=r"expected ecog_baseline as an ECOG grade 0-5 or None, got nan"):
        ClinicalFacts(ecog_baseline=float("nan"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"covariate age: expected a value or None, got nan"):
        ClinicalFacts(covariates=(("age", float("nan")),))
    with pytest.raises(ValueError, match=r"treatment_stop_date on or after ici_start_date 2024-02-01"):
        ClinicalFacts(ici_start_date=dt.date(2024, 2, 1), treatment_stop_date=dt.date(2024, 1, 1))
