"""`hpd-imaging radiomics CT MASK`: one row per lesion, exit codes 0 / 2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from hpd_imaging.cli import app


def test_cli_on_sts_nifti(sts_data: Path, tmp_path: Path) -> None:
    params = tmp_path / "p.yaml"
    params.write_text("imageType:\n  Original: {}\nfeatureClass:\n  firstorder:\nsetting:\n  binWidth: 25\n")
    out = tmp_path / "f.csv"
    root = sts_data / "nifti" / "STS_025"
    image, mask = str(root / "CT_image.nii.gz"), str(root / "CT_mask.nii.gz")
    result = CliRunner().invoke(app, ["radiomics", image, mask,
                                      "--params", str(params), "--out", str(out), "--patient-id", "STS_025"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert len(table) == 1 and table.loc[0, "patient_id"] == "STS_025" and table.loc[0, "region"] == "lesion"
    assert "original_firstorder_Mean" in table and len(table.loc[0, "params_sha256"]) == 64
    assert (tmp_path / "f.diagnostics.csv").exists()


def test_cli_bad_params_exit_2(sts_data: Path, tmp_path: Path) -> None:
    params = tmp_path / "bad.yaml"
    params.write_text("setting:\n  binWidth: wide\n")
    root = sts_data / "nifti" / "STS_025"
    image, mask = str(root / "CT_image.nii.gz"), str(root / "CT_mask.nii.gz")
    result = CliRunner().invoke(app, ["radiomics", image, mask,
                                      "--params", str(params)])
    assert result.exit_code == 2
    assert "bad.yaml: pyradiomics parameter schema violated" in result.output


def test_cli_ibsi_tags_names_columns_by_tag(sts_data: Path, tmp_path: Path) -> None:
    params = tmp_path / "p.yaml"
    params.write_text("imageType:\n  Original: {}\nfeatureClass:\n  firstorder:\nsetting:\n  binWidth: 25\n")
    out = tmp_path / "f.csv"
    root = sts_data / "nifti" / "STS_025"
    image, mask = str(root / "CT_image.nii.gz"), str(root / "CT_mask.nii.gz")
    plain = tmp_path / "plain.csv"
    for target, extra in ((out, ["--ibsi-tags"]), (plain, [])):
        result = CliRunner().invoke(app, ["radiomics", image, mask, "--params", str(params), "--out",
                                          str(target), *extra])
        assert result.exit_code == 0, result.output
    tagged, named = pd.read_csv(out), pd.read_csv(plain)
    assert "stat_mean" in tagged and "original_firstorder_Mean" not in tagged
    assert tagged.loc[0, "stat_mean"] == named.loc[0, "original_firstorder_Mean"]  # new name, same value
    # pyradiomics' Kurtosis is not IBSI's excess kurtosis: it keeps its own name
    assert "original_firstorder_Kurtosis" in tagged and "stat_kurt" not in tagged


def test_cli_unknown_engine_exit_2(sts_data: Path, tmp_path: Path) -> None:
    root = sts_data / "nifti" / "STS_025"
    image, mask = str(root / "CT_image.nii.gz"), str(root / "CT_mask.nii.gz")
    result = CliRunner().invoke(app, ["radiomics", image, mask, "--engine", "lifex"])
    assert result.exit_code == 2
    assert "engine: expected one of ['pyradiomics', 'mirp', 'both'], got 'lifex'" in result.output
    result = CliRunner().invoke(app, ["radiomics", image, mask, "--engine", "mirp"])
    assert result.exit_code == 2
    assert "radiomics_ct.yaml: engine mirp computes IBSI features with MIRP; expected an ibsi: section" in \
        " ".join(result.output.split())
