"""``detopt shower dataset|train|adapt|evaluate|gradients``: the shower-level diffusion surrogate.

All commands work in one folder DIR: data sets in ``DIR/data/NAME.parquet``, models in
``DIR/models/NAME/``, adapters in ``DIR/adapters/NAME/``; every command writes ``DIR/<tag>.json``
(its numbers, the exact command line, warnings) and ``DIR/<tag>_*.png``, then regenerates
``DIR/index.html``, which gathers them. Thin: parse, call ``detopt.surrogate.shower`` and
``detopt.evaluation``, print. torch is imported inside the commands only.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from detopt.errors import ConfigError

shower_app = typer.Typer(
    name="shower",
    help="Shower-level diffusion surrogate: data sets, training, adaptation (LoRA), evaluation, gradients.",
    no_args_is_help=True,
)

DirArg = Annotated[Path, typer.Argument(help="Work folder (data/, models/, adapters/, the JSON, figures and index.html).")]
SeedOpt = Annotated[int, typer.Option("--seed", "-s", help="Random seed (>= 0), recorded in the outputs.")]


def _name(value: str, field: str) -> str:
    if not value or any(c in value for c in "/\\") or value.startswith("."):
        raise ConfigError(field, f"must be a plain name (no '/', not starting with '.'), got {value!r}")
    return value


def _whole(value: int, field: str, low: int = 1, high: int = 10**9) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(field, f"must be a whole number in [{low}, {high}], got {value!r}")
    return value


def _number(value: float, field: str, low: float, high: float, *, open_low: bool = False) -> float:
    ok = isinstance(value, (int, float)) and (value > low if open_low else value >= low) and value <= high
    if not ok:
        raise ConfigError(field, f"must be a number in {'(' if open_low else '['}{low}, {high}], got {value!r}")
    return float(value)


def _list(text: str, field: str, convert: Any, allowed: tuple[str, ...] | None = None) -> list[Any]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise ConfigError(field, f"needs at least one comma-separated value, got {text!r}")
    try:
        values = [convert(s) for s in items]
    except ValueError:
        raise ConfigError(field, f"cannot read {text!r} as a comma-separated list") from None
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ConfigError(field, f"unknown values {bad}; allowed: {', '.join(allowed)}")
    return values


GeometryFileOpt = Annotated[Path | None, typer.Option(
    "--geometry-file", help="Your own detector family: a YAML file of layers in cm (see docs/shower.md, "
                            "examples/shower_geometry_wsi.yaml); instead of --geometry.")]


def _geometry(name: str | None, path: Path | None) -> Any:
    """The geometry of ``--geometry`` (default A) or ``--geometry-file``, never both; errors name the option."""
    from detopt.cli.errors import renamed
    from detopt.simulation.shower_dataset import get_geometry, load_shower_geometry

    if name is not None and path is not None:
        raise ConfigError("--geometry-file", "give either --geometry or --geometry-file, not both")
    if path is not None:
        try:
            return load_shower_geometry(path)
        except ConfigError as exc:
            field = exc.field.removeprefix("geometry_file").removeprefix("geometry.")  # the key in the file
            raise ConfigError("--geometry-file", f"{field + ': ' if field else ''}{exc.message}") from None
    try:
        return get_geometry(name if name is not None else "A")
    except ConfigError as exc:
        raise renamed(exc, "--geometry") from None


def _data_path(folder: Path, name: str, field: str = "--data", must_exist: bool = True) -> Path:
    path = folder / "data" / f"{_name(name, field)}.parquet"
    if must_exist and not path.is_file():
        raise ConfigError(field, f"no data set {name!r} in {folder / 'data'} (make it with `detopt shower dataset`)")
    return path


def _model_dir(folder: Path, name: str, field: str = "--model", must_exist: bool = True) -> Path:
    path = folder / "models" / _name(name, field)
    if must_exist and not path.is_dir():
        raise ConfigError(field, f"no model {name!r} in {folder / 'models'} (train one with `detopt shower train`)")
    return path


def _finish(folder: Path, tag: str, numbers: dict[str, Any], extra: dict[str, Any] | None = None,
            warnings: list[str] | None = None) -> Path:
    """Write ``folder/tag.json`` (numbers, command, warnings, extra) and regenerate ``index.html``."""
    from detopt.atomic import write_text_atomic
    from detopt.surrogate.shower.study import write_index

    document = {
        "command": "detopt " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "",
        "simulator_source_sha256": _simulator_source_hash(),
        "numbers": numbers,
        "warnings": warnings or [],
        **(extra or {}),
    }
    path = folder / f"{tag}.json"
    write_text_atomic(path, json.dumps(document, indent=2, default=float) + "\n")
    write_index(folder)
    return path


def _simulator_source_hash() -> str:
    """SHA-256 of the built-in simulator's source files: tells whether two outputs saw the same physics."""
    import hashlib

    import detopt.simulation as simulation

    digest = hashlib.sha256()
    for path in sorted(Path(simulation.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _train_config(epochs: int, batch_size: int, lr: float, patience: int, ema: float, seed: int, device: str) -> Any:
    from detopt.surrogate.training import TrainConfig

    try:
        return TrainConfig(
            lr=lr, epochs=epochs, batch_size=batch_size, patience=patience if patience > 0 else None,
            ema_decay=ema if ema > 0 else None, lr_schedule="cosine", seed=seed, device=device,  # type: ignore[arg-type]
        )
    except ConfigError as exc:
        raise ConfigError("--" + exc.field.removeprefix("train.").replace("_", "-"), exc.message) from None


@shower_app.command()
def dataset(
    folder: DirArg,
    name: Annotated[str, typer.Option("--name", "-n", help="Data set name (DIR/data/NAME.parquet).")],
    geometry: Annotated[str | None, typer.Option("--geometry", "-g", help="Detector family: A (homogeneous blocks, the default) or B (Pb/scintillator).")] = None,
    geometry_file: GeometryFileOpt = None,
    conditions: Annotated[int, typer.Option("--conditions", help="Number of random conditions (beam, material, size).")] = 100,
    showers: Annotated[int, typer.Option("--showers", help="Showers per condition.")] = 100,
    energy: Annotated[str, typer.Option("--energy", "-e", help="Beam energy range MIN:MAX in GeV (log-uniform).")] = "1:100",
    particles: Annotated[str, typer.Option("--particles", "-p", help="Comma-separated particles: gamma, e-, pi+.")] = "gamma,e-",
    voxels: Annotated[str, typer.Option("--voxels", help="Map grid DEPTHxRADIAL.")] = "12x8",
    seed: SeedOpt = 0,
) -> None:
    """Simulate a data set of voxelized showers (built-in simulator) over random conditions."""
    from detopt.cli import options

    _name(name, "--name")
    _whole(conditions, "--conditions", 1, 10**6)
    _whole(showers, "--showers", 2, 10**7)
    energy_range = options.parse_energy(energy)
    n_depth, n_radial = options.parse_voxels(voxels)
    options.check_seed(seed)
    geo = _geometry(geometry, geometry_file)

    import numpy as np

    from detopt.cli.errors import renamed
    from detopt.evaluation import observables as obs
    from detopt.evaluation.plots import plot_profile
    from detopt.simulation import VoxelGrid
    from detopt.simulation.shower_dataset import generate_shower_dataset

    from detopt.cli.progress import StageProgress

    try:
        with StageProgress("condition", f"simulating {name}") as progress:
            data = generate_shower_dataset(
                geo, n_conditions=conditions, showers_per_condition=showers, energy_range=energy_range,
                particles=particles, grid=VoxelGrid(n_depth=n_depth, n_radial=n_radial), seed=seed,
                progress=lambda done, total: progress("condition", done, total),
            )
    except ConfigError as exc:
        raise renamed(exc, "--" + exc.field.replace("_", "-")) from None
    folder.mkdir(parents=True, exist_ok=True)
    path = data.to_parquet(_data_path(folder, name, must_exist=False))
    tag = f"dataset_{name}"
    plot_profile(obs.energy_per_slice(data.maps), obs.energy_per_slice(data.maps), np.arange(n_depth + 1.0),
                 folder / f"{tag}_depth_profile.png", xlabel="depth slice", title=f"data set {name}", logy=True)
    total = obs.total_energy(data.maps)
    numbers = {
        "n_showers": len(data), "n_conditions": conditions, "showers_per_condition": showers,
        "n_depth": n_depth, "n_radial": n_radial, "seed": seed,
        "mean_deposit_over_beam": float(np.mean(total / data.column("energy_gev"))),
    }
    _finish(folder, tag, numbers, {"geometry": geo.model_dump(mode="json"), "file": str(path)})
    typer.echo(f"wrote {path}: {len(data):,} showers, {conditions} conditions of geometry {geo.name}, grid {voxels}")


#: The ``train`` option that sets each model field, for error messages.
TRAIN_OPTION_OF_FIELD: dict[str, str] = {"width": "--width", "channels": "--width", "n_blocks": "--blocks"}


@shower_app.command()
def train(
    folder: DirArg,
    data: Annotated[str, typer.Option("--data", "-d", help="Training data set name (DIR/data/NAME.parquet).")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name (DIR/models/NAME/).")] = "base",
    denoiser: Annotated[str, typer.Option("--denoiser", help="Network: mlp (residual MLP), conv (CNN over depth x radius) or unet (U-Net over depth x radius, for 32x32 maps).")] = "mlp",
    width: Annotated[int, typer.Option("--width", help="mlp: hidden width; conv: channels; unet: channels at full resolution, twice that below (conv, unet: multiple of 8).")] = 128,
    blocks: Annotated[int, typer.Option("--blocks", help="Residual blocks (unet: per resolution level, down and up).")] = 3,
    levels: Annotated[int, typer.Option("--levels", help="unet: resolution levels, 2-4 (each halves depth and radius).")] = 3,
    components: Annotated[int, typer.Option("--components", help="mlp only: generate the total energy and this many leading principal components of the voxel residuals instead of every voxel (0: every voxel; 64 for 32x32 maps).")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", help="Maximum epochs.")] = 100,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Showers per Adam step.")] = 256,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (cosine decay).")] = 2e-3,
    patience: Annotated[int, typer.Option("--patience", help="Early stopping after this many epochs without gain (0: off).")] = 15,
    ema: Annotated[float, typer.Option("--ema", help="EMA decay of the weights (0: off).")] = 0.995,
    guidance_dropout: Annotated[float, typer.Option("--guidance-dropout", help="Conditioning dropout for classifier-free guidance (0: off).")] = 0.0,
    residual: Annotated[str, typer.Option("--residual", help="Conditional normalization: mlp (mean and width of every code entry as a network of the conditions, fitted by likelihood), shash (mlp plus the skewness and tail of the total energy), mean_scale (linear), mean, none.")] = "mlp",
    fraction_floor: Annotated[float, typer.Option("--fraction-floor", help="Floor added to the voxel fractions before their log (saved with the model); below it a voxel's code is linear in its fraction.")] = 5e-4,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "auto",
    seed: SeedOpt = 0,
) -> None:
    """Train a ShowerDiffusion model on a data set (early stopping, EMA)."""
    _whole(width, "--width", 8, 8192)
    _whole(blocks, "--blocks", 1, 64)
    if denoiser not in ("mlp", "conv", "unet"):
        raise ConfigError("--denoiser", f"must be mlp, conv or unet, got {denoiser!r}")
    if components and denoiser != "mlp":
        raise ConfigError("--components", f"works with --denoiser mlp only (got --denoiser {denoiser}); leave it at 0")
    _number(guidance_dropout, "--guidance-dropout", 0.0, 0.9)
    config = _train_config(epochs, batch_size, lr, patience, ema, seed, device)
    data_path = _data_path(folder, data)
    out = _model_dir(folder, name, "--name", must_exist=False)

    from detopt.simulation.shower_dataset import ShowerDataset
    from detopt.surrogate.shower import ShowerDiffusion

    ds = ShowerDataset.from_parquet(data_path)
    options: dict[str, Any] = {"width": width, "n_blocks": blocks} if denoiser == "mlp" else {"channels": width, "n_blocks": blocks}
    if denoiser == "unet":
        options["levels"] = levels
    if components:
        options["components"] = components
    try:
        model = ShowerDiffusion.build(
            denoiser, ds.n_depth, ds.n_radial, ds.condition_names, options,
            residual=residual, guidance_dropout=guidance_dropout, fraction_floor=fraction_floor,  # type: ignore[arg-type]
        )
    except ConfigError as exc:
        field = exc.field.removeprefix("denoiser.")
        raise ConfigError(TRAIN_OPTION_OF_FIELD.get(field, "--" + field.replace("_", "-")), exc.message) from None
    from detopt.cli.progress import StageProgress

    with StageProgress("epoch", f"training {name}") as progress:
        result = model.fit(ds.conditions, ds.maps, config, on_epoch=lambda done, total: progress("epoch", done, total))
    model.to("cpu").save(out)
    numbers = {
        **({"explained_variance": model.latent.explained_variance} if model.latent is not None else {}),
        "n_parameters": model.n_parameters, "n_showers": len(ds), "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch, "best_val_loss": result.best_loss, "train_seconds": result.seconds,
        "stopped_early": int(result.stopped_early), "seed": seed,
    }
    _plot_losses(result, folder / f"train_{name}_loss.png")
    _finish(folder, f"train_{name}", numbers, {"model": model.to_config(), "training": result.to_dict(),
                                               "train_config": config.to_dict(), "data": data})
    typer.echo(f"trained {name} ({model.n_parameters:,} parameters, {denoiser}) on {len(ds):,} showers: "
               f"best validation loss {result.best_loss:.4f} at epoch {result.best_epoch} ({result.seconds:.0f} s); "
               f"saved {out}")


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def _save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    from detopt.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _plot_losses(result: Any, path: Path) -> None:
    fig, ax = _figure((5, 3.5))
    ax.plot(range(1, len(result.train_loss) + 1), result.train_loss, label="training")
    if result.val_loss:
        ax.plot(range(1, len(result.val_loss) + 1), result.val_loss, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("diffusion loss")
    ax.legend(frameon=False)
    _save_figure(fig, path)


@shower_app.command()
def evaluate(
    folder: DirArg,
    model_name: Annotated[str, typer.Option("--model", "-m", help="Model name (DIR/models/NAME/).")],
    data: Annotated[str, typer.Option("--data", "-d", help="Test data set (held-out conditions).")],
    adapter: Annotated[str | None, typer.Option("--adapter", help="Evaluate with this adapter (DIR/adapters/NAME/).")] = None,
    steps: Annotated[int, typer.Option("--steps", help="Sampling steps: 10 is fast; widths need ~50 (or --sampler dpm).")] = 10,
    sampler_name: Annotated[str, typer.Option("--sampler", help="ddim, or dpm (DPM-Solver++ 2M: deterministic, second order).")] = "ddim",
    eta: Annotated[float, typer.Option("--eta", help="DDIM eta: 0 deterministic, 1 as stochastic as DDPM.")] = 0.0,
    guidance: Annotated[float, typer.Option("--guidance", help="Classifier-free guidance weight w (0: off).")] = 0.0,
    min_energy: Annotated[float, typer.Option("--min-energy", help="Only beams >= this energy (GeV; 0: all).")] = 10.0,
    tag: Annotated[str | None, typer.Option("--tag", help="Output name (default evaluate_MODEL_DATA).")] = None,
    floor: Annotated[bool, typer.Option("--floor/--no-floor", help="Also score a second simulation of the test conditions (what a perfect surrogate gets; needs the simulator that made the test set).")] = False,
    seed: SeedOpt = 0,
) -> None:
    """Compare the surrogate with the simulation on a test set: observables, separation power, AUC, figures."""
    _whole(steps, "--steps", 1, 1000)
    _number(guidance, "--guidance", 0.0, 100.0)
    _number(min_energy, "--min-energy", 0.0, 1e6)
    _check_sampler(sampler_name, eta)
    model_dir = _model_dir(folder, model_name)
    data_path = _data_path(folder, data)
    tag = _name(tag, "--tag") if tag else f"evaluate_{model_name}_{data}" + (f"_{adapter}" if adapter else "")

    from detopt.simulation.shower_dataset import ShowerDataset
    from detopt.surrogate.shower import ShowerDiffusion
    from detopt.surrogate.shower.adaptation import AdaptedShower
    from detopt.surrogate.shower.study import evaluate_sampler, evaluation_figures

    model = ShowerDiffusion.load(model_dir)
    sampler: Any = model.sample
    if adapter:
        adapted = AdaptedShower.load(folder / "adapters" / _name(adapter, "--adapter"), model)
        sampler, model = adapted.sample, adapted.model

    sampler = functools.partial(sampler, method=sampler_name, eta=eta)
    ds = ShowerDataset.from_parquet(data_path)
    ev = evaluate_sampler(sampler, model, ds, n_steps=steps, seed=seed, guidance=guidance,
                          min_energy_gev=min_energy if min_energy > 0 else None, floor=floor)
    label = f"DPM-Solver++ {steps}" if sampler_name == "dpm" else f"DDIM {steps}" + (f" eta {eta:g}" if eta else "")
    evaluation_figures(ev, folder, f"{tag}_", f"{model_name} on {data}, {label}")
    _finish(folder, tag, {**ev.numbers, "seed": seed, "sampler_is_dpm": int(sampler_name == "dpm"), "eta": eta},
            {"per_condition": ev.per_condition, "sampler": sampler_name}, ev.extrapolation)
    n = ev.numbers
    typer.echo(
        f"{tag}: rel. RMSE of means: E {n['total_energy_gev_rel_rmse_mean']:.4f}, radius {n['radius_cm_rel_rmse_mean']:.4f}, "
        f"dispersion {n['dispersion_cm_rel_rmse_mean']:.4f}; widths: E {n['total_energy_gev_rel_rmse_width']:.4f}, "
        f"radius {n['radius_cm_rel_rmse_width']:.4f}, dispersion {n['dispersion_cm_rel_rmse_width']:.4f}; "
        f"separation power (E, pooled) {n['separation_power_total_energy_pooled']:.4f}; "
        f"AUC {n.get('classifier_auc', float('nan')):.3f}"
    )
    for message in ev.extrapolation:
        typer.echo(f"warning: extrapolation: {message}", err=True)


def _check_sampler(sampler_name: str, eta: float) -> None:
    _number(eta, "--eta", 0.0, 1.0)
    if sampler_name not in ("ddim", "dpm"):
        raise ConfigError("--sampler", f"must be ddim or dpm, got {sampler_name!r}")
    if sampler_name == "dpm" and eta != 0.0:
        raise ConfigError("--eta", f"DPM-Solver++ is deterministic: eta must be 0, got {eta}")


@shower_app.command()
def adapt(
    folder: DirArg,
    base: Annotated[str, typer.Option("--base", help="Pre-trained model name (DIR/models/NAME/), e.g. trained on geometry A.")],
    data: Annotated[str, typer.Option("--data", "-d", help="Full training set of the new geometry.")],
    test: Annotated[str, typer.Option("--test", help="Test set of the new geometry (held-out conditions).")],
    fractions: Annotated[str, typer.Option("--fractions", help="Comma-separated shares of --data to adapt on.")] = "0.01,0.05,0.2",
    subsample: Annotated[str, typer.Option("--subsample", help="How a share is drawn: showers (that share of the showers of every condition) or conditions (that share of the conditions, all their showers).")] = "showers",
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated: lora, bitfit, full, scratch.")] = "lora,bitfit,full,scratch",
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank (4-16 typical).")] = 8,
    adam_steps: Annotated[int, typer.Option("--adam-steps", help="Optimizer steps per adaptation (equal for every size).")] = 1500,
    reference_steps: Annotated[int, typer.Option("--reference-steps", help="Steps of the reference model trained on all of --data.")] = 4000,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 256,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (cosine decay).")] = 2e-3,
    steps: Annotated[int, typer.Option("--steps", help="Sampling steps for the evaluation.")] = 10,
    sampler_name: Annotated[str, typer.Option("--sampler", help="ddim, or dpm (DPM-Solver++ 2M) for the evaluation.")] = "ddim",
    eta: Annotated[float, typer.Option("--eta", help="DDIM eta for the evaluation.")] = 0.0,
    min_energy: Annotated[float, typer.Option("--min-energy", help="Evaluate beams >= this energy (GeV).")] = 10.0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "auto",
    refit_normalization: Annotated[bool, typer.Option("--refit-normalization/--keep-normalization", help="Refit the normalization (standardization of conditions and codes, conditional residual) on the new data, stored with the adapter, or keep the base's.")] = True,
    tag: Annotated[str, typer.Option("--tag", help="Output name (DIR/TAG.json, DIR/adapters/TAG_METHOD_FRACTION/).")] = "adapt",
    seed: SeedOpt = 0,
) -> None:
    """Adapt a pre-trained model to a new geometry with LoRA / BitFit / full fine-tuning / scratch at several data sizes."""
    fracs = _list(fractions, "--fractions", float)
    for f in fracs:
        _number(f, "--fractions", 0.0, 1.0, open_low=True)
    chosen = _list(methods, "--methods", str, ("lora", "bitfit", "full", "scratch"))
    from detopt.simulation.shower_dataset import SUBSAMPLE_BY

    if subsample not in SUBSAMPLE_BY:
        raise ConfigError("--subsample", f"must be {' or '.join(SUBSAMPLE_BY)}, got {subsample!r}")
    _whole(adam_steps, "--adam-steps")
    _whole(reference_steps, "--reference-steps")
    _whole(steps, "--steps", 1, 1000)
    _check_sampler(sampler_name, eta)
    tag = _name(tag, "--tag")
    base_dir = _model_dir(folder, base, "--base")
    data_path, test_path = _data_path(folder, data), _data_path(folder, test, "--test")
    config = _train_config(1, batch_size, lr, 0, 0.995, seed, device)

    from detopt.simulation.shower_dataset import ShowerDataset
    from detopt.surrogate.shower import ShowerDiffusion
    from detopt.surrogate.shower.adaptation import LoraSettings, adapt as adapt_model
    from detopt.surrogate.shower.study import (
        aligned_conditions, evaluate_sampler, evaluation_figures, observable_score, steps_to_epochs,
    )

    try:
        lora = LoraSettings(rank=rank, alpha=2.0 * rank)
    except ConfigError as exc:
        raise ConfigError("--rank", exc.message) from None
    model = ShowerDiffusion.load(base_dir)
    full, test_set = ShowerDataset.from_parquet(data_path), ShowerDataset.from_parquet(test_path)
    rows: list[dict[str, Any]] = []
    warnings_seen: list[str] = []

    def run(method: str, fraction: float, train_steps: int, label: str | None = None) -> dict[str, Any]:
        subset = full if fraction >= 1.0 else full.subsample(fraction, seed, by=subsample)
        cond = aligned_conditions(model, subset.condition_names, subset.conditions)
        cfg = steps_to_epochs(len(subset), config, train_steps)
        adapted = adapt_model(model, cond, subset.maps, method, cfg, lora if method == "lora" else None,  # type: ignore[arg-type]
                              refit_normalization=refit_normalization)
        label = label or f"{method}_{fraction:g}"  # the reference has its own name: --fraction 1 must not overwrite it
        adapted.save(folder / "adapters" / f"{tag}_{label}")
        sampler = functools.partial(adapted.sample, method=sampler_name, eta=eta)
        ev = evaluate_sampler(sampler, adapted.model, test_set, n_steps=steps, seed=seed,
                              min_energy_gev=min_energy if min_energy > 0 else None, classifier=False)
        warnings_seen.extend(ev.extrapolation)
        n = ev.numbers
        row = {
            "method": method, "fraction": fraction, "n_showers": len(subset), "trainable_parameters": adapted.trainable_parameters,
            "train_seconds": adapted.result.seconds if adapted.result else 0.0,
            "epochs": cfg.epochs, "observable_score": observable_score(n),
            **{k: n[k] for k in n if k.endswith("_rel_rmse_mean") or k.endswith("_rel_rmse_width")},
        }
        typer.echo(f"{label:>16}: {len(subset):6d} showers, score {row['observable_score']:.4f} "
                   f"(E {n['total_energy_gev_rel_rmse_mean']:.4f}, r {n['radius_cm_rel_rmse_mean']:.4f}, "
                   f"disp {n['dispersion_cm_rel_rmse_mean']:.4f}), {row['train_seconds']:.0f} s")
        if method == "lora" and abs(fraction - 0.05) < 1e-9:
            evaluation_figures(ev, folder, f"{tag}_lora_0.05_", f"LoRA r={rank}, 5% of {data}")
        return row

    from detopt.cli.progress import StageProgress

    total = 1 + len(fracs) * len(chosen)
    with StageProgress("adaptation", "adaptations") as progress:
        progress("adaptation", 0, total)
        progress("scratch on all showers (reference)", 0, 1)
        reference = run("scratch", 1.0, reference_steps, label="reference_scratch_all")
        rows.append(reference)
        for fraction in fracs:
            for method in chosen:
                progress("adaptation", len(rows), total)
                progress(f"{method} on {100 * fraction:g}%", 0, 1)
                rows.append(run(method, fraction, adam_steps))
        progress("adaptation", total, total)
    numbers: dict[str, Any] = {"reference_full_scratch_score": reference["observable_score"], "lora_rank": rank, "seed": seed,
                               "refit_normalization": int(refit_normalization), "subsample_by_conditions": int(subsample == "conditions")}
    for r in rows[1:]:
        numbers[f"{r['method']}_{r['fraction']:g}_score"] = r["observable_score"]
        numbers[f"{r['method']}_{r['fraction']:g}_over_reference"] = r["observable_score"] / reference["observable_score"]
    _plot_adaptation(rows, chosen, folder / f"{tag}_scores.png")
    _finish(folder, tag, numbers, {"rows": rows, "base": base, "data": data, "test": test}, sorted(set(warnings_seen)))


def _plot_adaptation(rows: list[dict[str, Any]], methods: list[str], path: Path) -> None:
    fig, ax = _figure((5.5, 3.8))
    for method in methods:
        pts = sorted((r["fraction"], r["observable_score"]) for r in rows[1:] if r["method"] == method)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=method)
    ax.axhline(rows[0]["observable_score"], color="0.4", ls="--", label="scratch on 100%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("share of the full training set")
    ax.set_ylabel("RMS of rel. RMSE of means")
    ax.legend(frameon=False, fontsize=8)
    _save_figure(fig, path)


@shower_app.command()
def gradients(
    folder: DirArg,
    model_name: Annotated[str, typer.Option("--model", "-m", help="Model name (DIR/models/NAME/).")],
    geometry: Annotated[str | None, typer.Option("--geometry", "-g", help="Detector family of the designs: A (the default) or B.")] = None,
    geometry_file: GeometryFileOpt = None,
    designs: Annotated[int, typer.Option("--designs", help="Number of random designs (5 or more for a meaningful sign check).")] = 5,
    utility: Annotated[str, typer.Option("--utility", help="energy_resolution, containment or lateral_containment.")] = "energy_resolution",
    parameters: Annotated[str, typer.Option("--parameters", help="Comma-separated: depth_cm, r_max_cm.")] = "depth_cm,r_max_cm",
    energy: Annotated[float, typer.Option("--energy", "-e", help="Beam energy of every design (GeV).")] = 50.0,
    particle: Annotated[str, typer.Option("--particle", help="Beam particle.")] = "e-",
    showers: Annotated[int, typer.Option("--showers", help="Showers per utility evaluation.")] = 2000,
    repeats: Annotated[int, typer.Option("--repeats", help="Seeds per gradient (error bars).")] = 6,
    relative_step: Annotated[float, typer.Option("--relative-step", help="Finite-difference half-step / parameter.")] = 0.1,
    steps: Annotated[int, typer.Option("--steps", help="DDIM steps.")] = 10,
    radius_cm: Annotated[float | None, typer.Option(
        "--radius-cm", help="Radius (cm) of lateral_containment; default: the Moliere radius of each design's "
                            "(effective) material.")] = None,
    tag: Annotated[str, typer.Option("--tag", help="Output name (DIR/TAG.json, DIR/TAG_comparison.png).")] = "gradients",
    seed: SeedOpt = 0,
) -> None:
    """Gradient of a design utility: autograd through deterministic DDIM vs finite differences of the simulation."""
    _whole(designs, "--designs", 1, 1000)
    _whole(showers, "--showers", 10, 10**7)
    _whole(repeats, "--repeats", 2, 1000)
    _whole(steps, "--steps", 1, 1000)
    _number(relative_step, "--relative-step", 0.0, 0.5, open_low=True)
    _number(energy, "--energy", 0.0, 1e5, open_low=True)
    if radius_cm is not None:
        _number(radius_cm, "--radius-cm", 0.0, 1e4, open_low=True)
    params = _list(parameters, "--parameters", str, ("depth_cm", "r_max_cm"))
    tag = _name(tag, "--tag")
    geo = _geometry(geometry, geometry_file)
    model_dir = _model_dir(folder, model_name)

    import numpy as np

    from detopt.cli.errors import renamed
    from detopt.evaluation.gradients import (
        compare_gradients, finite_difference_utility_gradient, make_utility, shower_design_simulator,
    )
    from detopt.evaluation.plots import plot_gradients
    from detopt.simulation import VoxelGrid, parse_particles
    from detopt.simulation.shower_dataset import draw_shower_conditions
    from detopt.surrogate.shower import ShowerDiffusion
    from detopt.surrogate.shower.study import surrogate_utility_gradient

    try:
        (species,) = parse_particles(particle)[:1]
    except ConfigError as exc:
        raise renamed(exc, "--particle") from None
    model = ShowerDiffusion.load(model_dir)
    grid = VoxelGrid(n_depth=model.n_depth, n_radial=model.n_radial)

    def utility_radius(cond: Any) -> float | None:
        """lateral_containment's radius: --radius-cm, else the Moliere radius of the design's material."""
        if utility != "lateral_containment":
            return None
        return radius_cm if radius_cm is not None else float(geo.effective(cond.material)[0].moliere_radius_cm)

    def utility_for(cond: Any) -> Any:
        try:
            return make_utility(utility, n_depth=model.n_depth, n_radial=model.n_radial,
                                radial_power=grid.radial_power, radius_cm=utility_radius(cond))
        except ConfigError as exc:
            raise renamed(exc, "--radius-cm" if exc.field == "radius_cm" else "--utility") from None

    conds = draw_shower_conditions(geo, designs, np.random.default_rng(seed), particles=[species], energies_gev=[energy])
    # A geometry of layers in cm is built of whole cells: the design is the calorimeter actually simulated.
    conds = [replace(c, depth_cm=geo.built_depth_cm(c.depth_cm, grid.n_depth)) for c in conds]
    utility_for(conds[0])  # an unknown --utility fails before any simulation
    auto, auto_err, fd, fd_err, rows, messages = [], [], [], [], [], []
    for k, cond in enumerate(conds):
        fn = utility_for(cond)
        sim = shower_design_simulator(geo, cond, showers, grid)
        design = {p: float(getattr(cond, p)) for p in params}
        if utility == "containment":
            design["energy_gev"] = float(cond.energy_gev)
        f = finite_difference_utility_gradient(fn, sim, design, params, relative_step=relative_step,
                                               n_repeats=repeats, seed=seed + 1000 * k)
        messages += model.extrapolation(_condition_row(model, geo, cond))
        g, g_err, u = surrogate_utility_gradient(model, geo, cond, fn, params, n_showers=showers, n_repeats=repeats,
                                                 n_steps=steps, seed=seed + 1000 * k)
        auto.append(g), auto_err.append(g_err), fd.append(f.mean), fd_err.append(f.stderr)
        rows.append({"design": cond.as_dict(), "autograd": g.tolist(), "autograd_stderr": g_err.tolist(),
                     "fd": f.as_dict(), "surrogate_utility": u, "radius_cm": utility_radius(cond)})
        typer.echo(f"design {k}: {cond.material} depth {cond.depth_cm:.1f} cm r_max {cond.r_max_cm:.2f} cm | U sim "
                   f"{f.utility:.4f} surr {u:.4f} | autograd {np.round(g, 5).tolist()} FD {np.round(f.mean, 5).tolist()} "
                   f"+- {np.round(f.stderr, 5).tolist()}")
    scale = np.array([[float(getattr(c, p)) for p in params] for c in conds])
    # Relative derivatives (dU / d ln theta): parameters in cm of different size weigh alike.
    comparison = compare_gradients(np.array(auto) * scale, np.array(fd) * scale, np.array(fd_err) * scale)
    numbers = {**{k: v for k, v in comparison.as_dict().items() if not isinstance(v, list)},
               "n_designs": designs, "showers": showers, "repeats": repeats, "seed": seed, "ddim_steps": steps}
    plot_gradients(np.array(auto), np.array(fd), np.array(fd_err), params, folder / f"{tag}_comparison.png",
                   design_labels=[f"{c.material} {c.depth_cm:.0f}cm" for c in conds], title=f"dU/dtheta, U = {utility}")
    _finish(folder, tag, numbers, {"designs": rows, "cosines": list(comparison.cosines), "utility": utility,
                                           "parameters": params}, sorted(set(messages)))
    typer.echo(f"sign agreement {comparison.sign_agreement:.3f} over {comparison.n_significant} significant FD "
               f"components; mean cosine {comparison.cosine:.3f} (per design {np.round(comparison.cosines, 3).tolist()})")


def _condition_row(model: Any, geometry: Any, condition: Any) -> Any:
    from detopt.simulation.shower_dataset import SHOWER_CONDITIONS, condition_vector
    from detopt.surrogate.shower.study import aligned_conditions

    return aligned_conditions(model, SHOWER_CONDITIONS, condition_vector(geometry, condition)[None, :])
