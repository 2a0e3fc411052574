"""``detopt shower dataset --geometry-file``: a W / Si data set from the example, one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from detopt.cli.main import app
from detopt.simulation.shower_dataset import ShowerDataset

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shower_geometry_wsi.yaml"
CRYSTAL = Path(__file__).resolve().parents[2] / "examples" / "shower_geometry_cef3.yaml"
CELL = "sampling:\n  cell:\n    - {material: absorber, thickness_cm: 0.35}\n    - {material: Si, thickness_cm: 0.03, active: true}\n"


def _dataset(folder: Path, *extra: str) -> Result:
    return runner.invoke(app, ["shower", "dataset", str(folder), "--name", "wsi", "--conditions", "2", "--showers", "10",
                               "--voxels", "6x4", "--energy", "10:20", *extra])


def test_dataset_from_the_example_geometry_file(tmp_path: Path) -> None:
    result = _dataset(tmp_path, "--geometry-file", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    data = ShowerDataset.from_parquet(tmp_path / "data" / "wsi.parquet")
    assert data.maps.shape == (20, 6, 4) and data.metadata["geometry"]["name"] == "W-Si"
    assert (data.maps.sum(axis=(1, 2)) > 0).all()
    numbers = json.loads((tmp_path / "dataset_wsi.json").read_text())["numbers"]
    assert 0.005 < numbers["mean_deposit_over_beam"] < 0.0149  # visible energy: below f_mip = 1.48%


def test_dataset_of_a_crystal_from_its_material_file(tmp_path: Path) -> None:
    result = _dataset(tmp_path, "--geometry-file", str(CRYSTAL))
    assert result.exit_code == 0, result.output
    data = ShowerDataset.from_parquet(tmp_path / "data" / "wsi.parquet")
    assert data.metadata["geometry"]["extra_materials"][0]["name"] == "CeF3"
    assert set(data.column("x0_cm")) == {1.70} and set(data.column("sampling_fraction")) == {1.0}
    numbers = json.loads((tmp_path / "dataset_wsi.json").read_text())["numbers"]
    assert 0.7 < numbers["mean_deposit_over_beam"] <= 1.0  # a homogeneous block sees the whole shower but leakage


def _bad(tmp_path: Path, text: str | None) -> Result:
    path = tmp_path / "geo.yaml"
    if text is not None:
        path.write_text(text)
    return _dataset(tmp_path, "--geometry-file", str(path))


@pytest.mark.parametrize(("text", "words"), [
    (None, "not found"),
    ("name: [unclosed\n", "malformed YAML"),
    ("name: a\nname: b\nmaterials: [W]\n", "given twice"),
    ("name: a\nmaterials: [W]\n" + CELL.replace("Si,", "Adamantium,"), "sampling.cell[1].material: unknown material 'Adamantium'"),
    ("name: a\nmaterials: [Wolfram]\n", "materials: unknown material 'Wolfram'"),
    ("name: a\nmaterials: [W]\n" + CELL.replace("0.35", "-0.35"), "sampling.cell[0].thickness_cm: must be a finite number > 0 cm"),
    ("name: a\nmaterials: [W]\n" + CELL.replace("0.35", ".nan"), "sampling.cell[0].thickness_cm: must be a finite number > 0 cm"),
    ("name: a\nmaterials: [W]\n" + CELL.replace(", active: true", ""), "sampling.cell: needs at least one layer with active: true"),
    ("name: a\nmaterials: [W]\n" + CELL + "  cells_per_slice: 0\n", "sampling.cells_per_slice: Input should be greater than or equal to 1"),
    ("name: a\nmaterials: [W]\nmaterials_file: none.yaml\n" + CELL, "materials_file: material file"),
])
def test_bad_geometry_files_are_one_line_errors_naming_the_key(tmp_path: Path, text: str | None, words: str) -> None:
    result = _bad(tmp_path, text)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --geometry-file: "), result.stderr
    assert words in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize("command", ["dataset", "gradients"])
def test_geometry_and_geometry_file_are_exclusive(tmp_path: Path, command: str) -> None:
    extra = ["--name", "x"] if command == "dataset" else ["--model", "m"]
    result = runner.invoke(app, ["shower", command, str(tmp_path), *extra, "--geometry", "B", "--geometry-file", str(EXAMPLE)])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --geometry-file: give either --geometry or --geometry-file, not both"
