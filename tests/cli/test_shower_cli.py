"""``detopt shower``: a tiny dataset -> train -> evaluate run, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from detopt.cli.main import app

runner = CliRunner()


def _run(*args: str) -> Result:
    return runner.invoke(app, ["shower", *args])


def _assert_one_line_error(result: Result, field: str, text: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {field}: "), lines[0]
    assert text in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shower")
    for name, seed in (("A", 1), ("A_test", 2)):
        result = _run("dataset", str(folder), "--name", name, "--conditions", "4", "--showers", "30",
                      "--voxels", "4x3", "--energy", "10:100", "--seed", str(seed))
        assert result.exit_code == 0, result.output
    result = _run("train", str(folder), "--data", "A", "--name", "tiny", "--width", "16", "--blocks", "1",
                  "--epochs", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return folder


def test_dataset_train_evaluate_write_numbers_figures_and_a_page(work: Path) -> None:
    result = _run("evaluate", str(work), "--model", "tiny", "--data", "A_test", "--steps", "3", "--floor")
    assert result.exit_code == 0, result.output
    document = json.loads((work / "evaluate_tiny_A_test.json").read_text())
    numbers = document["numbers"]
    # A second simulation of the same conditions: 30 showers of a few-% resolution pin the mean
    # deposit to ~1%; that is what a perfect surrogate would score here.
    assert 0.0 < numbers["floor_total_energy_gev_rel_rmse_mean"] < 0.03
    assert len(document["simulator_source_sha256"]) == 64
    assert numbers["n_showers"] == 120 and numbers["n_conditions"] == 4 and numbers["ddim_steps"] == 3
    for key in ("total_energy_gev_rel_rmse_mean", "radius_cm_rel_rmse_width", "classifier_auc",
                "separation_power_total_energy_pooled"):
        assert 0.0 <= numbers[key] < 10.0, key
    assert document["command"].startswith("detopt ")
    assert (work / "evaluate_tiny_A_test_total_energy_gev.png").stat().st_size > 1000
    train = json.loads((work / "train_tiny.json").read_text())["numbers"]
    assert train["n_showers"] == 120 and train["epochs_run"] == 2
    page = (work / "index.html").read_text()
    assert "evaluate_tiny_A_test" in page and "train_tiny_loss.png" in page and "dataset_A" in page


def test_held_out_energies_outside_the_training_range_are_recorded(work: Path) -> None:
    result = _run("dataset", str(work), "--name", "high", "--conditions", "2", "--showers", "10",
                  "--voxels", "4x3", "--energy", "150:200", "--seed", "3")
    assert result.exit_code == 0, result.output
    result = _run("evaluate", str(work), "--model", "tiny", "--data", "high", "--steps", "2")
    assert result.exit_code == 0, result.output
    document = json.loads((work / "evaluate_tiny_high.json").read_text())
    assert document["numbers"]["n_extrapolation_warnings"] >= 1
    assert any(w.startswith("energy_gev: 20 of 20 rows outside the training range") for w in document["warnings"])
    assert "extrapolation" in result.stderr


@pytest.mark.parametrize(
    ("args", "field", "text"),
    [
        (["dataset", "{w}", "--name", "x", "--conditions", "0"], "--conditions", "[1, 1000000]"),
        (["dataset", "{w}", "--name", "x", "--voxels", "4"], "--voxels", "DEPTHxRADIAL"),
        (["dataset", "{w}", "--name", "x", "--geometry", "C"], "--geometry", "allowed: A, B"),
        (["dataset", "{w}", "--name", "../x"], "--name", "plain name"),
        (["train", "{w}", "--data", "missing"], "--data", "no data set 'missing'"),
        (["train", "{w}", "--data", "A", "--denoiser", "transformer"], "--denoiser", "mlp, conv or unet"),
        (["train", "{w}", "--data", "A", "--lr", "-1"], "--lr", "> 0"),
        (["train", "{w}", "--data", "A", "--denoiser", "unet", "--levels", "5"], "--levels", "[2, 3, 4]"),
        (["train", "{w}", "--data", "A", "--fraction-floor", "2"], "--fraction-floor", "(0, 1)"),
        (["train", "{w}", "--data", "A", "--denoiser", "unet", "--components", "4"], "--components", "mlp only"),
        (["train", "{w}", "--data", "A", "--components", "13"], "--components", "[0, 12]"),
        (["evaluate", "{w}", "--model", "tiny", "--data", "A_test", "--steps", "0"], "--steps", "[1, 1000]"),
        (["evaluate", "{w}", "--model", "nope", "--data", "A_test"], "--model", "no model 'nope'"),
        (["adapt", "{w}", "--base", "tiny", "--data", "A", "--test", "A_test", "--methods", "prefix"], "--methods",
         "allowed: lora, bitfit, full, scratch"),
        (["adapt", "{w}", "--base", "tiny", "--data", "A", "--test", "A_test", "--rank", "0"], "--rank", "[1, 64]"),
        (["adapt", "{w}", "--base", "tiny", "--data", "A", "--test", "A_test", "--subsample", "events"], "--subsample",
         "showers or conditions"),
        (["adapt", "{w}", "--base", "tiny", "--data", "A", "--test", "A_test", "--sampler", "euler"], "--sampler",
         "ddim or dpm"),
        (["adapt", "{w}", "--base", "tiny", "--data", "A", "--test", "A_test", "--sampler", "dpm", "--eta", "1"], "--eta",
         "eta must be 0"),
        (["gradients", "{w}", "--model", "tiny", "--parameters", "x0_cm"], "--parameters", "allowed: depth_cm"),
        (["gradients", "{w}", "--model", "tiny", "--utility", "lateral_containment", "--radius-cm", "0"],
         "--radius-cm", "(0.0, "),
        (["gradients", "{w}", "--model", "tiny", "--utility", "sharpness"], "--utility", "unknown utility"),
    ],
    ids=lambda v: " ".join(v[3:]) if isinstance(v, list) else None,
)
def test_bad_input_is_one_line_exit_2(work: Path, args: list[str], field: str, text: str) -> None:
    result = _run(*[a.replace("{w}", str(work)) for a in args])
    _assert_one_line_error(result, field, text)


def test_a_data_set_of_another_grid_is_a_clear_error(work: Path) -> None:
    result = _run("dataset", str(work), "--name", "other", "--conditions", "2", "--showers", "5",
                  "--voxels", "5x3", "--energy", "10:100")
    assert result.exit_code == 0, result.output
    result = _run("evaluate", str(work), "--model", "tiny", "--data", "other", "--steps", "2")
    assert result.exit_code == 2
    assert "expected shape (n, 4, 3)" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("radius", [None, "2.5"])
def test_gradients_of_lateral_containment_use_the_moliere_radius_or_radius_cm(work: Path, radius: str | None) -> None:
    from detopt.simulation.shower_dataset import get_geometry

    tag = f"lateral_{radius or 'moliere'}".replace(".", "_")
    args = ["gradients", str(work), "--model", "tiny", "--utility", "lateral_containment", "--designs", "1",
            "--showers", "10", "--repeats", "2", "--steps", "2", "--tag", tag]
    result = _run(*args, *(["--radius-cm", radius] if radius else []))
    assert result.exit_code == 0, result.output
    document = json.loads((work / f"{tag}.json").read_text())
    (row,) = document["designs"]
    expected = float(radius) if radius else get_geometry("A").effective(row["design"]["material"])[0].moliere_radius_cm
    assert row["radius_cm"] == pytest.approx(expected)
    assert 0.0 < row["fd"]["utility"] <= 1.0 and len(row["autograd"]) == 2


def test_adapting_on_all_the_data_keeps_the_reference_adapter(work: Path) -> None:
    """``--fractions 1`` with scratch trains the same thing as the reference, but into its own folder."""
    result = _run("adapt", str(work), "--base", "tiny", "--data", "A", "--test", "A_test", "--fractions", "1",
                  "--methods", "scratch", "--adam-steps", "4", "--reference-steps", "4", "--steps", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    adapters = sorted(p.name for p in (work / "adapters").iterdir())
    assert "adapt_reference_scratch_all" in adapters and "adapt_scratch_1" in adapters


def test_evaluate_offers_dpm_solver_and_ddim_with_eta(work: Path) -> None:
    for args in (["--sampler", "dpm"], ["--eta", "1"]):
        result = _run("evaluate", str(work), "--model", "tiny", "--data", "A_test", "--steps", "3", "--tag", "s_" + args[1], *args)
        assert result.exit_code == 0, result.output
    dpm = json.loads((work / "s_dpm.json").read_text())["numbers"]
    assert dpm["sampler_is_dpm"] == 1
    refused = _run("evaluate", str(work), "--model", "tiny", "--data", "A_test", "--sampler", "dpm", "--eta", "0.5")
    _assert_one_line_error(refused, "--eta", "deterministic")


def test_a_model_on_principal_components_trains_records_its_share_and_evaluates(work: Path) -> None:
    result = _run("train", str(work), "--data", "A", "--name", "pca", "--width", "16", "--blocks", "1", "--components", "3",
                  "--epochs", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    numbers = json.loads((work / "train_pca.json").read_text())["numbers"]
    # 3 of the 12 voxel residuals' components: a real share of their variance, not all of it
    assert 0.25 < numbers["explained_variance"] < 1.0
    result = _run("evaluate", str(work), "--model", "pca", "--data", "A_test", "--steps", "3", "--tag", "pca_eval")
    assert result.exit_code == 0, result.output
    assert 0.0 <= json.loads((work / "pca_eval.json").read_text())["numbers"]["total_energy_gev_rel_rmse_mean"] < 1.0
