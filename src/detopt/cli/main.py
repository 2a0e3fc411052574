"""The ``detopt`` command: parse, call the library, print.

Kept thin and quick to start: only typer and the light option parsers are imported
here; numpy, the detector and the simulator are imported inside the commands, and
torch and dask never (``detopt --help`` must stay fast). Bad input anywhere ends in
one line ``error: <field>: <message>`` and exit status 2 (:mod:`detopt.cli.errors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from detopt import __version__
from detopt.cli.benchmark import benchmark  # typer only; the rest is imported inside the command
from detopt.cli.errors import OneLineErrorGroup
from detopt.cli.shower import shower_app  # typer only; torch is imported inside its commands

if TYPE_CHECKING:
    from detopt.detector import SamplingCalorimeter
    from detopt.simulation import EventBatch, Simulator

__all__ = ["app"]

app = typer.Typer(
    name="detopt",
    cls=OneLineErrorGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"detopt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the detopt version and exit."),
    ] = False,
) -> None:
    """End-to-end optimization of particle-detector designs with diffusion-model surrogates.

    Start with `detopt materials` and `detopt simulate --events 10000`.
    """


@app.command()
def materials() -> None:
    """List the material table: density, X0, interaction lengths, Moliere radius, E_c, dE/dx, Z_eff."""
    from detopt.cli.render import console, estimate_notes, materials_table
    from detopt.detector import material_table

    table = material_table()
    out = console()
    out.print(materials_table(table))
    notes = estimate_notes(table)
    out.print("Values from the PDG tables (pdg.lbl.gov/AtomicNuclearProperties); R_M = X0 E_s / E_c (PDG eq. 34.37).")
    if notes:
        out.print("* estimated, not a PDG table value:", highlight=False)
        for note in notes:
            out.print(f"  {note}", highlight=False, markup=False)


@app.command()
def simulate(
    design: Annotated[
        Path | None,
        typer.Option(
            "--design", "-d", help="Design file (.yaml/.json: detector + parameters). Default: the AIDO example."
        ),
    ] = None,
    events: Annotated[int, typer.Option("--events", "-n", help="Number of events (> 0).")] = 10_000,
    particles: Annotated[
        str, typer.Option("--particles", "-p", help="Comma-separated particles, drawn with equal probability: gamma, e-, pi+.")
    ] = "gamma,pi+",
    energy: Annotated[
        str, typer.Option("--energy", "-e", help="Beam energy in GeV, uniform in MIN:MAX (0 < MIN <= MAX), or one value.")
    ] = "1:20",
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed (>= 0); the same seed gives the same events.")] = 0,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the events to this Parquet file (atomically).")
    ] = None,
    voxels: Annotated[
        str | None, typer.Option("--voxels", help="Also record voxel maps DEPTHxRADIAL, e.g. 24x16.")
    ] = None,
) -> None:
    """Simulate a design with the built-in fast shower simulator and print a summary.

    The design file's current design is simulated: every thickness value and the most
    probable material of each layer. Without --design: the AIDO paper's starting detector.
    """
    from detopt.cli import options
    from detopt.cli.errors import renamed
    from detopt.errors import ConfigError

    n_events = options.check_events(events)
    energy_range = options.parse_energy(energy)
    run_seed = options.check_seed(seed)
    grid_shape = options.parse_voxels(voxels) if voxels is not None else None
    if output is not None:
        options.check_output_path(output)

    from detopt.simulation import parse_particles

    try:
        species = parse_particles(particles)
    except ConfigError as exc:
        raise renamed(exc, "--particles") from None

    from detopt.examples import aido_design_space, aido_layout, load_design_file

    if design is not None:
        layout, space = load_design_file(design)
        title = f"Design {design}"
    else:
        layout, space = aido_layout(), aido_design_space()
        title = "AIDO starting detector (built-in example)"
    current = space.current_design()
    detector = layout.build(current)

    from detopt.cli.render import console, layers_table, particles_table
    from detopt.cli.summary import summarize_layers, summarize_particles
    from detopt.simulation import FastShowerSimulator, VoxelGrid

    grid = None if grid_shape is None else VoxelGrid(n_depth=grid_shape[0], n_radial=grid_shape[1])
    simulator = FastShowerSimulator(voxels=grid)
    batch = _simulate_with_progress(simulator, detector, n_events, species, energy_range, run_seed)
    batch = replace(
        batch,
        metadata={
            **batch.metadata,
            "detopt_version": __version__,
            "design_file": None if design is None else str(design),
            "design": current,
            "design_space": space.to_dict(),
            "layout": layout.model_dump(mode="json"),
        },
    )
    out = console()
    if output is not None:
        try:
            batch.to_parquet(output)
        except OSError as exc:
            raise ConfigError("--output", f"cannot write {str(output)!r}: {exc.strerror or exc}") from None

    e_lo, e_hi = energy_range
    beam = f"{e_lo:g} GeV" if e_lo == e_hi else f"{e_lo:g}-{e_hi:g} GeV (uniform)"
    out.print(
        f"{n_events:,} events of {', '.join(species)}, {beam}, seed {run_seed}; "
        f"depth {detector.depth_cm:.4g} cm = {detector.radiation_lengths:.4g} X0 = "
        f"{detector.pion_interaction_lengths:.3g} lambda_pi",
        highlight=False,
    )
    out.print(layers_table(summarize_layers(batch, detector), title))
    out.print(particles_table(summarize_particles(batch)))
    if output is not None:
        out.print(f"wrote {output}", highlight=False)
    else:
        out.print("events not saved: give -o FILE.parquet to write them", highlight=False)


@app.command()
def optimize(
    config: Annotated[Path, typer.Argument(help="Run configuration (YAML), e.g. examples/quick.yaml.")],
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", "-r", help="Run directory (default: from the configuration).")
    ] = None,
    iterations: Annotated[int | None, typer.Option("--iterations", "-i", help="Override the number of iterations.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Override the number of Dask workers.")] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help="Where the driver trains the networks: cpu, cuda or auto (CUDA when available; the default)."),
    ] = None,
) -> None:
    """Run the SRSO optimization of CONFIG; rerun on the same run directory to resume."""
    from detopt.optimize.cli_commands import optimize_command

    raise typer.Exit(optimize_command(config, run_dir, iterations, workers, device=device))


@app.command()
def status(run: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Show a run's completed iterations, current design, losses and constraints."""
    from detopt.optimize.cli_commands import status_command

    raise typer.Exit(status_command(run))


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="A run directory.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Report folder, or the HTML file to write (default RUN/report).")] = None,
) -> None:
    """Write the figures and a self-contained HTML report of a run."""
    from detopt.optimize.cli_commands import report_command

    raise typer.Exit(report_command(run, output))


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory.")],
    events: Annotated[int, typer.Option("--events", "-n", help="Fresh events per design.")] = 8000,
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="Run configuration of the problem (needed for a run started from Python).")] = None,
    simulator: Annotated[Optional[str], typer.Option(
        "--simulator", help="Judge a calorimeter with this simulator instead of the run's: fastsim or geant4.")] = None,
) -> None:
    """Judge the start and the current design of a run by fresh simulation (writes RUN/evaluation.json)."""
    from detopt.optimize.cli_commands import evaluate_command

    raise typer.Exit(evaluate_command(run, events, config=config, simulator=simulator))


geant4_app = typer.Typer(name="geant4", help="The Geant4 backend (needs the geant4 extra; see docs/geant4.md).", no_args_is_help=True)
app.add_typer(geant4_app)

app.add_typer(shower_app)
app.command("benchmark")(benchmark)


@geant4_app.command("offline-data")
def geant4_offline_data(
    directory: Annotated[Path, typer.Argument(help="Folder to write the substitute data sets into.")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files already there.")] = False,
) -> None:
    """Generate approximate substitute Geant4 data sets for machines without the official ones (docs/geant4.md)."""
    from detopt.simulation.geant4.offline_data import offline_data_command

    typer.echo(offline_data_command(directory, overwrite=overwrite))


def _simulate_with_progress(
    simulator: Simulator,
    detector: SamplingCalorimeter,
    n_events: int,
    species: Sequence[str],
    energy_range: tuple[float, float],
    seed: int,
) -> EventBatch:
    """:func:`~detopt.cli.runner.simulate_in_chunks` under a progress bar on stderr (drawn on a terminal only)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from detopt.cli.render import console
    from detopt.cli.runner import simulate_in_chunks

    err = console(stderr=True)
    columns = (
        TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("events"), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=not err.is_terminal, transient=False) as progress:
        task = progress.add_task("simulate", total=n_events)
        return simulate_in_chunks(
            simulator, detector, n_events, species, energy_range, seed,
            on_chunk=lambda m: progress.advance(task, m),
        )
