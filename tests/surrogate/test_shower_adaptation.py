"""Adaptation to geometry B: LoRA trains adapters only, the base stays bit-identical, adapters
save separately and refuse another base model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detopt.errors import ConfigError, DataError
from detopt.surrogate import TrainConfig
from detopt.surrogate.shower.adaptation import AdaptedShower, LoraSettings, adapt, lora_targets

from .shower_fixtures import small_dataset, trained_tiny_model

CONFIG = TrainConfig(epochs=2, batch_size=32, device="cpu", seed=5, lr=5e-3)


@pytest.fixture(scope="module")
def base_and_b():
    model, _ = trained_tiny_model("conv", epochs=1)
    b = small_dataset("B", seed=7, n_conditions=4, showers=20)
    return model, b


def _noise(n: int, dim: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(11))


def test_lora_trains_only_adapters_and_leaves_the_base_bit_identical(base_and_b) -> None:
    base, b = base_and_b
    before = {k: v.clone() for k, v in base.state_dict().items()}
    checksum = base.checksum()
    adapted = adapt(base, b.conditions, b.maps, "lora", CONFIG, LoraSettings(rank=4, alpha=8))
    assert base.checksum() == checksum
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    targets, saved = lora_targets(base.denoiser)
    assert "conv1.0" in targets and "out_norm" in saved  # convolutions take LoRA, GroupNorm is saved whole
    # Inside the adapted copy the frozen base layers still hold the base's weights, but for the
    # conditions' input weights, which take B's standardization of the conditions (folded in exactly).
    inner = {
        k.replace("base_model.model.", "").replace("base_layer.", "").replace("original_module.", ""): v
        for k, v in adapted.network.state_dict().items() if "lora_" not in k and "modules_to_save" not in k
    }
    base_denoiser = base.denoiser.state_dict()
    assert set(inner) == set(base_denoiser)
    folded = "embedding.embed_in.weight"
    assert all(torch.equal(inner[k], base_denoiser[k]) for k in base_denoiser if k != folded)
    n = base.cond_standardizer.n_features
    assert torch.allclose(inner[folded][:, :n], base_denoiser[folded][:, :n] * adapted.model.cond_standardizer.std
                          / base.cond_standardizer.std)
    # What the adapter stores: LoRA matrices and the normalization layers, far fewer than the base.
    stored = adapted._adapter_state()
    assert stored and all(("lora_" in k) or ("norm" in k) for k in stored)
    assert adapted.trainable_parameters < base.n_parameters
    assert adapted.result is not None and adapted.result.epochs_run == 2


def test_lora_adapter_round_trip_and_refusal_of_another_base(base_and_b, tmp_path: Path) -> None:
    base, b = base_and_b
    adapted = adapt(base, b.conditions, b.maps, "lora", CONFIG, LoraSettings(rank=4, alpha=8))
    adapted.save(tmp_path / "lora")
    assert not (tmp_path / "lora" / "shower_model.safetensors").exists()  # adapter only, not the base
    assert json.loads((tmp_path / "lora" / "adapter.json").read_text())["refit_normalization"] is True
    loaded = AdaptedShower.load(tmp_path / "lora", base)
    noise = _noise(6, base.representation.code_dim)
    assert torch.equal(adapted.sample(b.conditions[:6], n_steps=3, noise=noise),
                       loaded.sample(b.conditions[:6], n_steps=3, noise=noise))
    # The adapter changes the samples (it learned something from geometry B).
    with pytest.warns(UserWarning):
        plain = base.sample(b.conditions[:6], n_steps=3, noise=noise)
    assert not torch.equal(plain, loaded.sample(b.conditions[:6], n_steps=3, noise=noise))
    other, _ = trained_tiny_model("conv", epochs=2)
    with pytest.raises(DataError, match="base_checksum"):
        AdaptedShower.load(tmp_path / "lora", other)


def test_lora_samples_through_merged_weights_with_the_same_maps(base_and_b) -> None:
    base, b = base_and_b
    adapted = adapt(base, b.conditions, b.maps, "lora", CONFIG, LoraSettings(rank=4, alpha=8))
    merged = adapted.sampling_network()
    assert merged is not adapted.network and not any("lora_" in k for k in merged.state_dict())
    noise = _noise(6, base.representation.code_dim)
    unmerged = adapted.model.sample(b.conditions[:6], n_steps=3, noise=noise, network=adapted.network,
                                    code_range=adapted.code_range, condition_range=adapted.condition_range)
    assert torch.allclose(adapted.sample(b.conditions[:6], n_steps=3, noise=noise), unmerged, rtol=1e-4, atol=1e-6)
    assert adapted.sampling_network() is merged  # merged once


def test_bitfit_changes_only_biases_and_full_changes_weights(base_and_b, tmp_path: Path) -> None:
    base, b = base_and_b
    start = base.denoiser.state_dict()
    bitfit = adapt(base, b.conditions, b.maps, "bitfit", CONFIG)
    changed = [k for k, v in bitfit.network.state_dict().items() if not torch.equal(v, start[k])]
    # (the conditions' input weights only take B's standardization of the conditions, see below)
    assert changed and all(k.endswith("bias") or k == "embedding.embed_in.weight" for k in changed)
    bitfit.save(tmp_path / "bitfit")
    again = AdaptedShower.load(tmp_path / "bitfit", base)
    assert all(torch.equal(v, bitfit.network.state_dict()[k]) for k, v in again.network.state_dict().items())
    full = adapt(base, b.conditions, b.maps, "full", CONFIG)
    assert any(not torch.equal(v, start[k]) for k, v in full.network.state_dict().items() if k.endswith("weight"))


def test_scratch_trains_a_new_model_with_its_own_training_range(base_and_b, tmp_path: Path) -> None:
    base, b = base_and_b
    scratch = adapt(base, b.conditions, b.maps, "scratch", CONFIG)
    assert scratch.model is not base and scratch.base_checksum is None
    assert scratch.extrapolation(b.conditions) == []  # trained on B: no warning on B
    scratch.save(tmp_path / "s")
    loaded = AdaptedShower.load(tmp_path / "s")
    noise = _noise(3, base.representation.code_dim)
    assert torch.equal(scratch.sample(b.conditions[:3], n_steps=2, noise=noise),
                       loaded.sample(b.conditions[:3], n_steps=2, noise=noise))


def test_bad_adaptation_settings_are_config_errors(base_and_b) -> None:
    base, b = base_and_b
    with pytest.raises(ConfigError, match="method"):
        adapt(base, b.conditions, b.maps, "prefix", CONFIG)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lora.rank"):
        LoraSettings(rank=0)


def test_refitting_the_output_normalization_puts_geometry_b_on_its_energy_scale(base_and_b) -> None:
    """B's maps hold ~7% of the beam energy (scintillator only); A's normalization does not know that."""
    base, b = base_and_b
    _, ids = b.condition_ids()
    rows = ids == 0
    noise = _noise(int(rows.sum()), base.representation.code_dim)
    sim_total = float(b.maps[rows].sum(axis=(1, 2)).mean())
    totals = {}
    for refit in (True, False):
        adapted = adapt(base, b.conditions, b.maps, "lora", CONFIG, LoraSettings(rank=4, alpha=8),
                        refit_normalization=refit)
        maps = adapted.sample(b.conditions[rows], n_steps=3, noise=noise)
        totals[refit] = float(maps.sum(dim=(1, 2)).mean())
    assert sim_total < 0.2 * float(b.column("energy_gev")[rows][0])
    assert abs(totals[True] / sim_total - 1.0) < 0.1
    assert abs(totals[False] / sim_total - 1.0) > abs(totals[True] / sim_total - 1.0)


def test_the_adapted_model_standardizes_conditions_on_the_new_geometry(base_and_b) -> None:
    """B spans a narrow slice of A's conditions (one material); its own standardization gives the
    residual fit full resolution, and the adapted denoiser starts from exactly the base's function."""
    base, b = base_and_b
    adapted = adapt(base, b.conditions, b.maps, "full", TrainConfig(epochs=1, batch_size=32, device="cpu", seed=5, lr=1e-12))
    features = adapted.model.condition_features(torch.as_tensor(b.conditions))
    assert torch.allclose(adapted.model.cond_standardizer.mean, features.mean(dim=0).to(adapted.model.dtype), atol=1e-5)
    assert not torch.allclose(adapted.model.cond_standardizer.mean, base.cond_standardizer.mean)
    # With a vanishing learning rate the adapted denoiser computes what the base's computes on the same showers.
    x = _noise(len(b), base.representation.code_dim)
    t = torch.arange(len(b)) % base.denoiser.n_train_steps
    with torch.no_grad():
        old = base.denoiser(x, t, base._denoiser_cond(base.cond_standardizer(base.condition_features(torch.as_tensor(b.conditions)))))
        new = adapted.network(x, t, adapted.model._denoiser_cond(adapted.model.cond_standardizer(features)))
    assert torch.allclose(old, new, atol=1e-4 * float(old.abs().max()))
