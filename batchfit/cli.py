"""The ``batchfit`` command line: parse arguments, call the job layer, map errors.

Exit codes (README "Exit codes"): 0 done (failed pixels are flagged in the
store, not errors); 2 bad config, input or usage, with a short message and
no traceback; 1 the job itself failed; 130 interrupted (rerun to resume).
Set ``BATCHFIT_DEBUG=1`` or pass ``--debug`` to see tracebacks.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import click

from batchfit import __version__
from batchfit.errors import BatchfitError
from batchfit.status import format_counts

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchfit", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks (also BATCHFIT_DEBUG=1).")
def cli(debug: bool) -> None:
    """Fit a model to every pixel of an image stack, from a YAML job config."""


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True,
              help="Replace an output store made by a different config.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Number of workers (overrides cluster.n_workers / cluster.jobs).")
@click.option("--scheduler", metavar="ADDR", default=None,
              help="Run on an existing Dask scheduler, e.g. tcp://10.0.0.5:8786.")
@click.option("--quiet", is_flag=True, help="No progress bar; print only the summary.")
def submit(config: str, overwrite: bool, workers: int | None, scheduler: str | None,
           quiet: bool) -> None:
    """Run the job in CONFIG; rerunning an interrupted job finishes the missing chunks."""
    job = _load(config)
    run = _lookup("batchfit.pipeline", "run", "submit")
    summary = run(job, overwrite=overwrite, workers=workers, scheduler=scheduler, quiet=quiet)
    click.echo(format_summary(summary))


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
def validate(config: str) -> None:
    """Check CONFIG, its input, expressions and a few sample fits; write nothing."""
    job = _load(config)
    check = _lookup("batchfit.describe", "validate", "validate")
    click.echo(check(job))


@cli.command()
@click.argument("store", type=click.Path())
def status(store: str) -> None:
    """Show chunks done, success rate and status counts of a result STORE."""
    show = _lookup("batchfit.describe", "status", "status")
    click.echo(show(store))


@cli.command()
@click.argument("store", type=click.Path())
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the PNG maps (default: next to the store).")
@click.option("--pixel", "pixels", multiple=True, metavar="DIM=LABEL,...",
              help="Also draw this pixel's fit on pixels.png, e.g. --pixel y=3,x=5 "
                   "(repeatable).")
def report(store: str, out_dir: str | None, pixels: tuple[str, ...]) -> None:
    """Write PNG maps of every parameter, stderr, redchi and status, and pixel fits.

    pixels.png shows data, model, components and residual of chosen pixels.
    """
    make = _lookup("batchfit.report", "report", "report")
    result = make(store, out_dir, pixels) if pixels else make(store, out_dir)
    if result is not None:
        click.echo(result)


@cli.command()
@click.argument("folder", required=False, default="configs", type=click.Path(file_okay=False))
def examples(folder: str) -> None:
    """Make the data the example configs in FOLDER (default: configs) read, in FOLDER/data."""
    make = _lookup("batchfit.examples", "examples", "examples")
    click.echo(make(folder))


@cli.command()
@click.argument("folder", required=False, default="batchfit-demo", type=click.Path())
def demo(folder: str) -> None:
    """Make a small synthetic cube and config in FOLDER, and run it."""
    run_demo = _lookup("batchfit.demo", "demo", "demo")
    result = run_demo(folder)
    if result is not None:
        click.echo(result)


def _load(path: str):
    from batchfit.config import load_config

    return load_config(path)


def _lookup(module: str, name: str, command: str) -> Callable[..., Any]:
    """Find ``module.name`` at call time; a missing one is 'not available yet' (exit 1)."""
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise  # a dependency of the module is missing: a real failure
        found = None
    if found is None:
        click.echo(f"batchfit {command}: not available yet in this version "
                   f"({module}.{name} is missing)", err=True)
        raise click.exceptions.Exit(EXIT_FAILED)
    return found


def format_summary(summary: Any) -> str:
    """Lines of a finished job's summary: pixels, success rate, status counts, speed, output.

    ``pixels``, ``n_success`` and ``status_counts`` cover the whole store; ``fitted``,
    ``chunks_computed`` and ``fits_per_s`` this run only (a resumed job skips done chunks).
    """
    pixels, ok = summary.pixels, summary.n_success
    rate = 100.0 * ok / pixels if pixels else 0.0
    return "\n".join([
        f"pixels: {pixels} ({ok} succeeded, {rate:.1f}%)",
        f"status: {format_counts(summary.status_counts)}",
        f"this run: {summary.fitted} pixels in {summary.chunks_computed} chunks "
        f"({summary.chunks_skipped} chunks already done), {summary.fits_per_s:.1f} fits/s, "
        f"elapsed {summary.elapsed:.1f} s",
        *([f"neighbour refit: {summary.refit_improved} failed pixels recovered"]
          if getattr(summary, "refit_improved", 0) else []),
        f"output: {summary.output}",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script's entry point)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("BATCHFIT_DEBUG", "") not in ("", "0")
    try:
        code = cli.main(args=args, prog_name="batchfit", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # click turns KeyboardInterrupt (and EOF on a prompt) into Abort
        click.echo("\nbatchfit: interrupted. Finished chunks are kept: run the same "
                   "command again to resume.", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        return EXIT_BAD_INPUT
    except BatchfitError as exc:
        kind = type(exc).__name__.removesuffix("Error").lower()
        _report(f"batchfit: {kind} error: {exc}", debug)
        return EXIT_BAD_INPUT
    except Exception as exc:
        _report(f"batchfit: job failed: {type(exc).__name__}: {exc}\n"
                "(set BATCHFIT_DEBUG=1 or pass --debug for the traceback)", debug)
        return EXIT_FAILED
    return code if isinstance(code, int) else EXIT_OK


def _report(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    click.echo(message, err=True)
