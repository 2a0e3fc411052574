"""Training, prediction, warm start, persistence and error handling of ``Reconstruction``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from detopt.errors import ConfigError, DataError
from detopt.reconstruction import (
    LinearCalibration,
    NotFittedError,
    Reconstruction,
    ReconstructionConfig,
    TrainingError,
)

from .conftest import Synthetic, make_synthetic

#: Small but sufficient for the synthetic data; the paper's widths are tested in test_network.
SMALL = {"preprocess_hidden": (32, 32), "main_hidden": (32, 32, 32)}
FAST = ReconstructionConfig(lr=3e-3, epochs=60, batch_size=128, patience=10, seed=0)


def _new() -> Reconstruction:
    return Reconstruction(n_design=2, n_features=3, n_context=2, **SMALL)


@pytest.fixture(scope="module")
def trained(synthetic_train: Synthetic) -> Reconstruction:
    s = synthetic_train
    reco = _new()
    reco.fit(s.design, s.features, s.context, s.e_true, FAST)
    return reco


def test_learns_the_design_dependent_calibration(trained: Reconstruction, synthetic_test: Synthetic) -> None:
    """Held-out eq.-10 loss: far below the best constant guess and below a per-particle linear fit.

    Features fluctuate by 5% per layer, so the ideal loss is about 0.05^2 E^2/(E+1)/3 ~ 0.01;
    a constant prediction costs ~3; the summed-energy calibration cannot follow the design.
    """
    s = synthetic_test
    net_loss = trained.loss(s.design, s.features, s.context, s.e_true)
    h = trained.history
    assert h is not None and h.initial_train_loss > 2.0
    assert net_loss < 0.05
    linear = LinearCalibration().fit(s.features, s.context, s.e_true).loss(s.features, s.context, s.e_true)
    assert linear > 0.2
    assert net_loss < 0.2 * linear


def test_predict_types_and_shapes(trained: Reconstruction, synthetic_test: Synthetic) -> None:
    s = synthetic_test.slice(slice(0, 50))
    out = trained.predict(s.design, s.features, s.context)
    assert isinstance(out, np.ndarray) and out.shape == (50,) and out.dtype == np.float64
    out_t = trained.predict(torch.tensor(s.design), torch.tensor(s.features), torch.tensor(s.context))
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (50,) and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.numpy(), out, rtol=1e-6)
    # One design vector shared by all events broadcasts.
    one = trained.predict(s.design[0], s.features, s.context)
    full = trained.predict(np.repeat(s.design[:1], 50, axis=0), s.features, s.context)
    np.testing.assert_array_equal(one, full)


def test_per_design_loss(trained: Reconstruction, synthetic_test: Synthetic) -> None:
    s = synthetic_test
    ids = np.arange(len(s.e_true)) % 4 * 10  # designs 0, 10, 20, 30
    got_ids, losses = trained.per_design_loss(ids, s.design, s.features, s.context, s.e_true)
    np.testing.assert_array_equal(got_ids, [0, 10, 20, 30])
    per_event = trained.per_event_loss(s.design, s.features, s.context, s.e_true)
    for k, i in enumerate(got_ids):
        assert losses[k] == pytest.approx(per_event[ids == i].mean(), rel=1e-12)
    with pytest.raises(DataError, match="design_ids"):
        trained.per_design_loss(ids[:-1], s.design, s.features, s.context, s.e_true)
    with pytest.raises(DataError, match="design_ids: expected integers"):
        trained.per_design_loss(ids * 1.0, s.design, s.features, s.context, s.e_true)


def test_same_seed_same_model(synthetic_train: Synthetic) -> None:
    s = synthetic_train.slice(slice(0, 600))
    cfg = ReconstructionConfig(epochs=3, seed=7)
    a, b = _new(), _new()
    a.fit(s.design, s.features, s.context, s.e_true, cfg)
    b.fit(s.design, s.features, s.context, s.e_true, cfg)
    np.testing.assert_array_equal(a.predict(s.design, s.features, s.context), b.predict(s.design, s.features, s.context))
    assert a.history is not None and b.history is not None
    assert a.history.train_loss == b.history.train_loss


def test_early_stopping_keeps_best_epoch(synthetic_train: Synthetic) -> None:
    s = synthetic_train.slice(slice(0, 400))
    reco = _new()
    res = reco.fit(s.design, s.features, s.context, s.e_true, ReconstructionConfig(lr=3e-3, epochs=400, patience=3, seed=1))
    assert res.stopped_early
    assert len(res.val_loss) == res.best_epoch + 1 + 3
    assert res.best_val_loss == min(res.val_loss)
    assert res.n_train + res.n_val == 400 and res.n_val == 80


def test_save_load_round_trip(trained: Reconstruction, synthetic_test: Synthetic, tmp_path: Path) -> None:
    s = synthetic_test
    trained.save(tmp_path / "reco")
    assert sorted(p.name for p in (tmp_path / "reco").iterdir()) == [
        "optimizer.safetensors",
        "reconstruction.json",
        "weights.safetensors",
    ]
    meta = json.loads((tmp_path / "reco" / "reconstruction.json").read_text())
    assert meta["hyperparameters"] == {
        "n_design": 2, "n_features": 3, "n_context": 2, "preprocess_hidden": [32, 32], "main_hidden": [32, 32, 32],
    }
    loaded = Reconstruction.load(tmp_path / "reco")
    for name in ("design_scaler", "feature_scaler", "context_scaler", "target_scaler"):
        for buf in ("mean", "std"):
            key = f"{name}.{buf}"
            assert torch.equal(loaded.net.state_dict()[key], trained.net.state_dict()[key]), key
    # The standardization is not the identity: it really was stored.
    assert float(loaded.net.target_scaler.mean) == pytest.approx(float(np.mean(make_synthetic(3000, 0).e_true)), rel=0.05)
    np.testing.assert_array_equal(
        loaded.predict(s.design, s.features, s.context), trained.predict(s.design, s.features, s.context)
    )
    assert loaded.history is not None and trained.history is not None
    assert loaded.history.val_loss == trained.history.val_loss
    assert loaded.config == trained.config


@pytest.fixture()
def saved(trained: Reconstruction, tmp_path: Path) -> Path:
    return trained.save(tmp_path / "reco")


def test_load_corrupt_weights(saved: Path) -> None:
    w = saved / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(DataError, match="weights.safetensors: SHA-256 differs"):
        Reconstruction.load(saved)


def test_load_garbage_weights_even_with_matching_checksum(saved: Path) -> None:
    import hashlib

    w = saved / "weights.safetensors"
    w.write_bytes(b"not a safetensors file")
    meta = json.loads((saved / "reconstruction.json").read_text())
    meta["weights_sha256"] = hashlib.sha256(b"not a safetensors file").hexdigest()
    (saved / "reconstruction.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="not a readable safetensors file"):
        Reconstruction.load(saved)


def test_load_mismatched_normalization(saved: Path) -> None:
    """A weights file whose feature standardization has the wrong size is refused by name."""
    import hashlib

    from safetensors.torch import load, save

    w = saved / "weights.safetensors"
    state = load(w.read_bytes())  # not load_file: it maps the file we are about to overwrite
    state["feature_scaler.mean"] = torch.zeros(4)
    blob = save(state)
    w.write_bytes(blob)
    meta = json.loads((saved / "reconstruction.json").read_text())
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (saved / "reconstruction.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"feature_scaler.mean has shape \(4,\), expected \(3,\)"):
        Reconstruction.load(saved)
    state["feature_scaler.mean"] = torch.zeros(3)
    state["target_scaler.std"] = torch.zeros(1)
    blob = save(state)
    w.write_bytes(blob)
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (saved / "reconstruction.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"target_scaler.std must be > 0"):
        Reconstruction.load(saved)


def test_load_bad_json_and_missing_files(saved: Path, tmp_path: Path) -> None:
    (saved / "reconstruction.json").write_text("{not json")
    with pytest.raises(DataError, match="reconstruction.json: not valid JSON"):
        Reconstruction.load(saved)
    (saved / "reconstruction.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(DataError, match="format 'other/9'"):
        Reconstruction.load(saved)
    with pytest.raises(DataError, match="missing"):
        Reconstruction.load(tmp_path / "nowhere")


def test_warm_start_continues_from_previous_loss(synthetic_train: Synthetic) -> None:
    """Warm start (weights, standardization, Adam moments) picks up where the last fit ended.

    New events of the same kind (as in the next SRSO iteration): the first epoch's training
    loss is close to the previous final loss, and far below a fresh model's first epoch.
    """
    first, second = synthetic_train.slice(slice(0, 1500)), synthetic_train.slice(slice(1500, 3000))
    cfg = ReconstructionConfig(lr=3e-3, epochs=40, batch_size=128, patience=None, seed=0)
    prev = _new()
    res_prev = prev.fit(first.design, first.features, first.context, first.e_true, cfg)
    prev_final = res_prev.train_loss[-1]

    warm_cfg = ReconstructionConfig(lr=3e-3, epochs=2, batch_size=128, seed=1)
    warm = _new()
    res_warm = warm.fit(second.design, second.features, second.context, second.e_true, warm_cfg, init_from=prev)
    fresh = _new()
    res_fresh = fresh.fit(second.design, second.features, second.context, second.e_true, warm_cfg)

    assert res_warm.warm_start and not res_fresh.warm_start
    # Before any update the warm model *is* the previous one.
    assert res_warm.initial_val_loss is not None
    initial = (res_warm.n_train * res_warm.initial_train_loss + res_warm.n_val * res_warm.initial_val_loss) / 1500
    assert initial == pytest.approx(prev.loss(second.design, second.features, second.context, second.e_true), rel=1e-5)
    assert res_warm.train_loss[0] < 1.5 * prev_final
    assert res_warm.train_loss[0] < 0.01 * res_fresh.train_loss[0]
    # The previous model is untouched.
    assert prev.history is res_prev


def test_warm_start_survives_save_load(trained: Reconstruction, synthetic_test: Synthetic, tmp_path: Path) -> None:
    loaded = Reconstruction.load(trained.save(tmp_path / "reco"))
    assert loaded.optimizer_state is not None and trained.optimizer_state is not None
    for name, st in trained.optimizer_state.items():
        for k, v in st.items():
            assert torch.equal(loaded.optimizer_state[name][k], v)
    s = synthetic_test.slice(slice(0, 300))
    cfg = ReconstructionConfig(epochs=2, seed=3)
    a, b = _new(), _new()
    a.fit(s.design, s.features, s.context, s.e_true, cfg, init_from=trained)
    b.fit(s.design, s.features, s.context, s.e_true, cfg, init_from=loaded)
    np.testing.assert_array_equal(a.predict(s.design, s.features, s.context), b.predict(s.design, s.features, s.context))


def test_warm_start_needs_same_architecture(trained: Reconstruction, synthetic_test: Synthetic) -> None:
    s = synthetic_test
    other = Reconstruction(2, 3, 2)  # paper widths, not SMALL
    with pytest.raises(ConfigError) as info:
        other.fit(s.design, s.features, s.context, s.e_true, FAST, init_from=trained)
    assert info.value.field == "init_from"
    with pytest.raises(ConfigError, match="never fitted"):
        _new().fit(s.design, s.features, s.context, s.e_true, FAST, init_from=_new())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("what", ["design", "features", "context", "e_true"])
def test_non_finite_input_is_refused(what: str, bad: float, synthetic_test: Synthetic) -> None:
    s = synthetic_test.slice(slice(0, 20))
    args = {"design": s.design.copy(), "features": s.features.copy(), "context": s.context.copy(), "e_true": s.e_true.copy()}
    args[what].flat[3] = bad
    reco = _new()
    with pytest.raises(DataError, match=rf"{what}: contains 1 NaN or inf"):
        reco.fit(args["design"], args["features"], args["context"], args["e_true"], FAST)
    assert not reco.fitted


def test_wrong_shapes_are_refused(synthetic_test: Synthetic) -> None:
    s = synthetic_test.slice(slice(0, 20))
    reco = _new()
    with pytest.raises(DataError, match=r"features: expected shape \(n_events, 3\)"):
        reco.fit(s.design, s.features[:, :2], s.context, s.e_true)
    with pytest.raises(DataError, match=r"design: expected shape \(20, 2\)"):
        reco.fit(s.design[:10], s.features, s.context, s.e_true)
    with pytest.raises(DataError, match=r"context: expected shape \(20, 2\)"):
        reco.fit(s.design, s.features, s.context[:, :1], s.e_true)
    with pytest.raises(DataError, match="context: this reconstruction takes 2"):
        reco.fit(s.design, s.features, None, s.e_true)
    with pytest.raises(DataError, match=r"e_true: expected shape \(20,\)"):
        reco.fit(s.design, s.features, s.context, s.e_true[:, None])
    with pytest.raises(DataError, match="e_true: true energies must be >= 0 GeV"):
        reco.fit(s.design, s.features, s.context, -s.e_true)


def test_not_fitted() -> None:
    s = make_synthetic(5, seed=0)
    with pytest.raises(NotFittedError):
        _new().predict(s.design, s.features, s.context)
    with pytest.raises(NotFittedError):
        _new().save("unused")


def test_diverging_training_stops_with_message(synthetic_train: Synthetic) -> None:
    """An absurd learning rate blows the weights up; fit raises and keeps no NaN model."""
    s = synthetic_train.slice(slice(0, 500))
    reco = _new()
    with pytest.raises(TrainingError, match=r"training diverged \(lr = 1e\+30\)"):
        reco.fit(s.design, s.features, s.context, s.e_true, ReconstructionConfig(lr=1e30, epochs=50))
    assert not reco.fitted
    with pytest.raises(NotFittedError):
        reco.predict(s.design, s.features, s.context)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"patience": 0}, "patience"),
        ({"seed": -1}, "seed"),
        ({"device": "quantum"}, "device"),
        ({"num_threads": 0}, "num_threads"),
    ],
)
def test_bad_config(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        ReconstructionConfig(**kwargs)
    assert info.value.field == field


def test_config_round_trip() -> None:
    cfg = ReconstructionConfig(lr=0.01, patience=None, device="cpu")
    assert ReconstructionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown reconstruction setting"):
        ReconstructionConfig.from_dict({"learning_rate": 0.1})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(synthetic_train: Synthetic) -> None:
    s = synthetic_train.slice(slice(0, 600))
    cpu, gpu = _new(), _new()
    cpu.fit(s.design, s.features, s.context, s.e_true, ReconstructionConfig(epochs=3, seed=0))
    gpu.fit(s.design, s.features, s.context, s.e_true, ReconstructionConfig(epochs=3, seed=0, device="cuda"))
    assert gpu.device.type == "cuda"
    out_gpu = gpu.predict(torch.tensor(s.design, device="cuda"), torch.tensor(s.features, device="cuda"),
                          torch.tensor(s.context, device="cuda"))
    assert out_gpu.device.type == "cuda"
    np.testing.assert_allclose(out_gpu.cpu().numpy(), cpu.predict(s.design, s.features, s.context), rtol=1e-3, atol=1e-3)
