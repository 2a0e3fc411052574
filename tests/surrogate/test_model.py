"""ConditionalDiffusion: physical units in and out, warm start, save/load and its failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detopt.errors import ConfigError, DataError
from detopt.surrogate import ConditionalDiffusion, NoiseSchedule, TrainConfig

FAST = TrainConfig(epochs=4, batch_size=128, patience=None, device="cpu", seed=1)


def _data(n: int = 800, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies of order 10 GeV and a 3-feature condition, far from unit scale on purpose."""
    g = torch.Generator().manual_seed(seed)
    cond = torch.cat([torch.rand(n, 2, generator=g) * 5, torch.randint(0, 2, (n, 1), generator=g).float()], dim=1)
    x = 10.0 + 2.0 * cond[:, :1] + 0.5 * torch.randn(n, 1, generator=g)
    return cond, x


@pytest.fixture(scope="module")
def trained() -> ConditionalDiffusion:
    cond, x = _data()
    model = ConditionalDiffusion.mlp(3, 1, hidden=(32, 32), time_embedding="sinusoidal")
    model.fit(cond, x, FAST)
    return model


def test_samples_come_back_in_physical_units(trained: ConditionalDiffusion) -> None:
    cond = torch.tensor([[1.0, 2.0, 0.0]]).repeat(4000, 1)
    x = trained.sample(cond, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4000, 1)
    assert float(x.mean()) == pytest.approx(12.0, abs=0.5)  # 10 + 2 * 1


def test_normalization_is_fitted_on_training_data(trained: ConditionalDiffusion) -> None:
    cond, x = _data()
    assert torch.allclose(trained.x_standardizer.mean, x.mean(0), rtol=1e-5)
    assert torch.allclose(trained.cond_standardizer.std, cond.std(0, unbiased=False), rtol=1e-5)


def test_fit_is_reproducible() -> None:
    cond, x = _data()
    a = ConditionalDiffusion.mlp(3, 1, hidden=(16,))
    b = ConditionalDiffusion.mlp(3, 1, hidden=(16,))
    ra, rb = a.fit(cond, x, FAST), b.fit(cond, x, FAST)
    assert ra.val_loss == rb.val_loss
    z = torch.randn(10, 1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.sample(cond[:10], noise=z), b.sample(cond[:10], noise=z))


def test_warm_start_keeps_weights_and_normalization(trained: ConditionalDiffusion) -> None:
    cond, x = _data(seed=1)
    shifted = x + 100.0  # a new iteration whose data moved
    model = ConditionalDiffusion.mlp(3, 1, hidden=(32, 32), time_embedding="sinusoidal")
    model.fit(cond, shifted, TrainConfig(lr=1e-12, epochs=1, device="cpu"), init_from=trained)
    for key, value in trained.state_dict().items():  # normalization kept, weights moved by ~lr
        assert torch.allclose(model.state_dict()[key], value, atol=1e-6), key
    z = torch.randn(20, 1, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(model.sample(cond[:20], noise=z), trained.sample(cond[:20], noise=z), atol=1e-4)
    model.fit(cond, shifted, TrainConfig(epochs=2, device="cpu"), init_from=model)  # continue in place
    assert torch.equal(model.x_standardizer.mean, trained.x_standardizer.mean)
    with pytest.raises(ConfigError, match="init_from"):
        ConditionalDiffusion.mlp(3, 1, hidden=(8,)).fit(cond, x, FAST, init_from=trained)


def test_save_load_round_trip_gives_identical_samples(trained: ConditionalDiffusion, tmp_path: Path) -> None:
    trained.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]
    loaded = ConditionalDiffusion.load(tmp_path / "m")
    cond, _ = _data(50, seed=2)
    for method in ("ddim", "ddpm", "dpm++2m"):
        a = trained.sample(cond, method, generator=torch.Generator().manual_seed(5))  # type: ignore[arg-type]
        b = loaded.sample(cond, method, generator=torch.Generator().manual_seed(5))  # type: ignore[arg-type]
        assert torch.equal(a, b)
    document = json.loads((tmp_path / "m" / "model.json").read_text())
    assert document["schedule"] == trained.schedule.to_config()
    assert document["normalization"]["x_mean"] == pytest.approx(trained.x_standardizer.mean.tolist())


def _saved(trained: ConditionalDiffusion, tmp_path: Path) -> Path:
    folder = tmp_path / "m"
    trained.save(folder)
    return folder


def test_corrupt_weights_file(trained: ConditionalDiffusion, tmp_path: Path) -> None:
    folder = _saved(trained, tmp_path)
    weights = folder / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-5] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="model.safetensors.*corrupt"):
        ConditionalDiffusion.load(folder)
    weights.write_bytes(b"not a safetensors file")
    doc = json.loads((folder / "model.json").read_text())
    doc.pop("weights_sha256")
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="model.safetensors: cannot read"):
        ConditionalDiffusion.load(folder)


def test_mismatched_normalization(trained: ConditionalDiffusion, tmp_path: Path) -> None:
    folder = _saved(trained, tmp_path)
    doc = json.loads((folder / "model.json").read_text())
    doc["normalization"]["x_std"] = [v * 2 for v in doc["normalization"]["x_std"]]
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="normalization.x_std disagrees"):
        ConditionalDiffusion.load(folder)
    doc["normalization"]["cond_mean"] = [0.0]
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="normalization.cond_mean must list 3 numbers"):
        ConditionalDiffusion.load(folder)


def test_hyper_parameters_that_do_not_match_the_weights(trained: ConditionalDiffusion, tmp_path: Path) -> None:
    folder = _saved(trained, tmp_path)
    doc = json.loads((folder / "model.json").read_text())
    doc["denoiser"]["config"]["hidden"] = [32, 16]
    doc.pop("weights_sha256")
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="shape mismatch"):
        ConditionalDiffusion.load(folder)
    doc["denoiser"]["config"]["hidden"] = [32, 32, 32]
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="missing tensors"):
        ConditionalDiffusion.load(folder)
    doc["denoiser"]["config"]["activation"] = "sigmoid"
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="invalid hyper-parameters"):
        ConditionalDiffusion.load(folder)


def test_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="model.json: file not found"):
        ConditionalDiffusion.load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        ConditionalDiffusion.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(DataError, match="format"):
        ConditionalDiffusion.load(tmp_path)


def test_bad_training_data() -> None:
    model = ConditionalDiffusion.mlp(3, 1, hidden=(8,))
    cond, x = _data(20)
    x_nan = x.clone()
    x_nan[3, 0] = float("nan")
    with pytest.raises(DataError, match="x: 1 entries are NaN or inf"):
        model.fit(cond, x_nan, FAST)
    cond_inf = cond.clone()
    cond_inf[0, 1] = float("inf")
    with pytest.raises(DataError, match="cond: 1 entries"):
        model.fit(cond_inf, x, FAST)
    with pytest.raises(DataError, match=r"x: expected shape \(n, 1\)"):
        model.fit(cond, x[:, 0], FAST)
    with pytest.raises(DataError, match=r"cond: expected shape \(n, 3\)"):
        model.fit(cond[:, :2], x, FAST)
    with pytest.raises(DataError, match="expected 20 rows"):
        model.fit(cond, x[:10], FAST)
    with pytest.raises(DataError, match=r"cond: expected shape \(n, 3\)"):
        model.sample(cond[:, :2], generator=torch.Generator())
    with pytest.raises(ConfigError, match="method"):
        model.sample(cond, "euler", generator=torch.Generator())  # type: ignore[arg-type]


def test_cosine_schedule_requires_v_prediction() -> None:
    with pytest.raises(ConfigError, match="prediction"):
        ConditionalDiffusion.mlp(2, 1, schedule=NoiseSchedule("cosine"), prediction="epsilon")


@pytest.mark.parametrize("residual", ["none", "mean", "mean_scale"])
def test_float64_models_and_residual_modes_round_trip(residual: str, tmp_path: Path) -> None:
    cond, x = _data(300)
    model = ConditionalDiffusion.mlp(3, 1, hidden=(8,), residual=residual).double()  # type: ignore[arg-type]
    model.fit(cond.double(), x.double(), TrainConfig(epochs=2, device="cpu"))
    model.save(tmp_path)
    loaded = ConditionalDiffusion.load(tmp_path)
    assert loaded.dtype == torch.float64 and loaded.residual.mode == residual
    z = torch.randn(7, 1, dtype=torch.float64)
    assert torch.equal(model.sample(cond[:7].double(), noise=z), loaded.sample(cond[:7].double(), noise=z))
