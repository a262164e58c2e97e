"""The ``kqi`` command line (a thin layer: parsing, progress display, one-line errors).

    kqi demo [--out DIR]
    kqi run --cells F --tests F --kpis F [--complaints F] [--subscribers F] [--samples F|DIR]
            --out DIR [--config F.toml] [--engine local|spark] [--spark-master URL]
    kqi samples --samples F|DIR [--cells F] --out DIR      # drive-test / MR samples alone
    kqi map --cells F [--complaints F] --out DIR         # a cell list alone: map, KMZ, GeoJSON
    kqi city --out DIR [--cells N --days N --seed N]     # only generate a synthetic city
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from kqi import __version__
from kqi.errors import KqiError

# soft_wrap: long lines are not cut into pieces when the output is a file or a pipe
_err = Console(stderr=True, highlight=False, soft_wrap=True)
_out = Console(highlight=False, soft_wrap=True)


#: the first-run note is printed once a process (``kqi demo`` runs the pipeline twice)
_COMPILE_NOTE = "compiling kernels (first run only) ..."
_compile_noted = [False]


class _ProgressPrinter:
    """Prints one line per finished stage; while a long stage runs, its rows so far and rows/s
    (kqi.progress: refreshed in place on a terminal, a plain line every few seconds otherwise);
    and, when the run compiles numba kernels (nothing in numba's cache yet), one line that says
    so when the first compile starts."""

    def __init__(self, quiet: bool) -> None:
        from kqi.progress import Ticker

        self.quiet = quiet
        tty = _err.is_terminal
        self._ticker = None if quiet else Ticker(sys.stderr, tty=tty, after=0.5 if tty else 2.0)
        self._t0 = 0.0
        self._unlisten = None
        if not quiet and not _compile_noted[0]:
            from kqi._numba import on_first_compile

            self._unlisten = on_first_compile(self._compiling)

    def _compiling(self) -> None:
        if _compile_noted[0]:
            return
        _compile_noted[0] = True
        # on a terminal the ticker's line is cleared first (it redraws itself on its next tick)
        clear = "\r\x1b[K" if _err.is_terminal else ""
        text = f"{clear}  {_COMPILE_NOTE}\n"
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (OSError, ValueError):  # a closed or broken stderr stops nothing
            pass

    def __call__(self, stage: str, event: str) -> None:
        if self._ticker is None:
            return
        if event == "start":
            self._t0 = time.perf_counter()
            self._ticker.start(stage)
        else:
            from kqi.progress import rows_text

            rows = self._ticker.stop()
            secs = time.perf_counter() - self._t0
            tail = f", {rows_text(rows, secs)}" if rows else ""
            _err.print(f"  [green]✓[/green] {stage} [dim]({secs:.1f} s{tail})[/dim]")

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    if quiet:
        level = logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)
    from kqi.privacy import ScrubFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubFilter())  # no subscriber number in a log line


def _verbosity_option(fn: Any) -> Any:
    """-v / -q accepted after the subcommand too (``kqi run ... -q``), as scripts write them."""

    def set_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
        if value:
            root = ctx.find_root()
            root.obj["verbose"] = max(root.obj["verbose"], value)
            _setup_logging(root.obj["verbose"], root.obj["quiet"])

    def set_quiet(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            root = ctx.find_root()
            root.obj["quiet"] = True
            _setup_logging(root.obj["verbose"], True)

    fn = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=set_quiet,
                      help="Only errors.")(fn)
    return click.option("-v", "--verbose", count=True, expose_value=False, callback=set_verbose,
                        help="More log output (-vv for debug).")(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kqi")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug, and tracebacks).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """kqi: find poor-quality cells from app-perception tests, diagnose why, link complaints,
    and write a ranked work-order list, an Excel workbook and a map."""
    _setup_logging(verbose, quiet)
    ctx.obj = {"verbose": verbose, "quiet": quiet}


def _run_pipeline(ctx: click.Context, **kwargs: Any):
    from kqi.pipeline import run

    printer = _ProgressPrinter(ctx.obj["quiet"])
    try:
        return run(progress=printer, **kwargs)
    finally:
        printer.close()


def _report(result: Any, quiet: bool, lines: list[str] | None = None) -> None:
    if quiet:
        return
    from kqi.summary import console_lines

    _out.print()
    if lines is None:
        lines = console_lines(result.summary, result.out / "rejects")
    for line in lines:
        _out.print(line)
    _out.print(f"\nwrote to [bold]{result.out}[/bold]:")
    for p in sorted({*result.files}):
        try:
            rel = p.relative_to(result.out)
        except ValueError:
            rel = p
        _out.print(f"  {rel}")
    if (result.out / "map.html").exists():
        _out.print(f"\nopen the map: {(result.out / 'map.html').resolve().as_uri()}")


#: an input: a local path, or with the Spark engine a URI (kept as text: a Path would fold
#: "hdfs://nn/x" into "hdfs:/nn/x")
_INPUT = click.Path(path_type=str)


def _engine_options(fn: Any) -> Any:
    fn = click.option("--spark-master", "spark_master", default=None, metavar="URL",
                      help="Spark master (local[2], spark://host:7077, yarn ...); implies "
                           "--engine spark. Default: [engine] master, else local[*].")(fn)
    return click.option("--engine", type=click.Choice(["local", "spark"]), default=None,
                        help="Where tests and KPIs are aggregated: local (numba, polars) or "
                             "spark (pip install 'kqi[spark]' and Java). Default: [engine] name "
                             "in the config, else local.")(fn)


def _with_engine(cfg: Any, engine: str | None, master: str | None) -> Any:
    """The config with the command line's engine choice over ``[engine]``."""
    import dataclasses

    e = cfg.engine
    if master:
        e = dataclasses.replace(e, name="spark", master=master)
    if engine:
        e = dataclasses.replace(e, name=engine)
    return dataclasses.replace(cfg, engine=e)


def _output_options(config_more: str = "") -> Any:
    """``--out`` (the output folder) and ``--config`` of ``kqi run``, ``kqi samples`` and
    ``kqi map``; ``config_more`` adds to the config's help."""
    def add(fn: Any) -> Any:
        fn = click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                          default=None,
                          help=f"TOML config overriding the defaults{config_more}.")(fn)
        return click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                            required=True, help="Output folder.")(fn)
    return add


def _city_options(fn: Any) -> Any:
    """``--cells``, ``--days`` and ``--seed`` of a synthetic city (``kqi demo``, ``kqi city``)."""
    fn = click.option("--seed", type=int, default=7, show_default=True,
                      help="Random seed: the same seed gives the same city.")(fn)
    fn = click.option("--days", type=click.IntRange(1, 62), default=7, show_default=True,
                      help="Days of tests, KPIs and complaints (14 or more shows complaint "
                           "increases).")(fn)
    return click.option("--cells", "n_cells", type=click.IntRange(30, 500_000), default=1600,
                        show_default=True, help="Number of cells in the synthetic city.")(fn)


@cli.command()
@_verbosity_option
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("kqi-demo"), show_default=True, help="Folder for the city and the results.")
@_city_options
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML config overriding the defaults.")
@_engine_options
@click.pass_context
def demo(ctx: click.Context, out: Path, n_cells: int, days: int, seed: int,
         config_path: Path | None, engine: str | None, spark_master: str | None) -> None:
    """Make a synthetic city, run two weeks of it with one history file, and show the follow-up.

    Week 1 is analysed into OUT/week1, week 2 (some poor cells fixed, some not, some new) into
    OUT; both are recorded in OUT/history.duckdb.
    """
    from kqi.config import load_config
    from kqi.synth import make_followup

    cfg = _with_engine(load_config(config_path), engine, spark_master)
    quiet = ctx.obj["quiet"]
    history = out / "history.duckdb"
    _clear_demo_history(history, days)
    net: dict[str, Any] = {"seed": seed, "n_cells": n_cells, "days": days}
    if not quiet:
        _err.print(f"generating a synthetic city of {n_cells} cells, two periods of {days} days, "
                   f"in {out / 'input'} and {out / 'input-week2'} ...")
    week1 = make_followup(out / "input", week=0, **net)
    week2 = make_followup(out / "input-week2", week=1, **net)
    if not quiet:
        _err.print("[bold]week 1[/bold]")
    first = _run_pipeline(ctx, cells=week1.cells, tests=week1.tests, kpis=week1.kpis,
                          complaints=week1.complaints, subscribers=week1.subscribers,
                          out=out / "week1", config=cfg, history=history)
    if not quiet:
        _out.print(f"week 1: {first.work_orders.height} work orders opened -> {out / 'week1'}")
        _err.print("[bold]week 2[/bold]")
    result = _run_pipeline(ctx, cells=week2.cells, tests=week2.tests, kpis=week2.kpis,
                           complaints=week2.complaints, subscribers=week2.subscribers,
                           out=out, config=cfg, history=history)
    _report(result, quiet)
    if not quiet:
        _out.print(f"history of both weeks: {history} (kqi history --history {history} runs)")


def _clear_demo_history(path: Path, days: int) -> None:
    """An earlier demo's history is removed so the two weeks start afresh; any other file at
    that path is left alone and the demo stops (it never deletes a file it did not write)."""
    if not path.exists():
        return
    import datetime as dt

    from kqi.history import History
    from kqi.synth import DEFAULT_START

    start = dt.date.fromisoformat(DEFAULT_START)
    demo_runs = {History.run_id_for(start + dt.timedelta(days=k * days),
                                    start + dt.timedelta(days=(k + 1) * days - 1)) for k in (0, 1)}
    with History.open(path, create=False) as h:
        recorded = set(h.runs()["run_id"].to_list())
    if recorded <= demo_runs:
        path.unlink()
        return
    raise KqiError(f"{path}: a history that an earlier kqi demo did not write; "
                   "choose another --out for the demo")


@cli.command("run")
@_verbosity_option
@click.option("--cells", type=_INPUT, required=True, help="Cells (engineering parameters).")
@click.option("--tests", type=_INPUT, required=True,
              help="App-perception tests (per test, or pre-aggregated); with --engine spark also "
                   "a folder of parts or a URI (hdfs://, s3a://).")
@click.option("--kpis", type=_INPUT, required=True, help="Hourly cell KPIs.")
@click.option("--complaints", type=_INPUT, default=None, help="Complaint tickets.")
@click.option("--subscribers", type=_INPUT, default=None,
              help="Subscribers per cell or region (for complaints per 10k subscribers).")
@_output_options()
@click.option("--history", "history", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="DuckDB run history (created when missing): follow up earlier orders, record "
                   "this run.")
@click.option("--samples", type=click.Path(path_type=Path), default=None,
              help="Drive-test / MR samples: a file or a folder of files (docs/samples.md).")
@_engine_options
@click.pass_context
def run_cmd(ctx: click.Context, cells: str, tests: str, kpis: str, complaints: str | None,
            subscribers: str | None, out: Path, config_path: Path | None,
            history: Path | None, samples: Path | None, engine: str | None,
            spark_master: str | None) -> None:
    """Analyse input files and write the results into OUT."""
    from kqi.config import load_config

    cfg = _with_engine(load_config(config_path), engine, spark_master)
    result = _run_pipeline(ctx, cells=cells, tests=tests, kpis=kpis, complaints=complaints,
                           subscribers=subscribers, out=out, config=cfg, history=history,
                           samples=samples)
    _report(result, ctx.obj["quiet"])


@cli.command("samples")
@_verbosity_option
@click.option("--samples", type=click.Path(path_type=Path), required=True,
              help="Drive-test / MR samples: a file or a folder of files, read recursively.")
@click.option("--cells", type=click.Path(path_type=Path), default=None,
              help="Cells (engineering parameters); cells it lacks are estimated from samples.")
@_output_options(" ([samples] bin_m ...)")
@click.pass_context
def samples_cmd(ctx: click.Context, samples: Path, cells: Path | None, out: Path,
                config_path: Path | None) -> None:
    """Drive-test / MR samples alone: coverage bins, per-cell figures, cells estimated from
    their samples (cells_estimated.csv, a cells file kqi run reads) and a map."""
    from kqi.config import load_config
    from kqi.samples import run_samples

    cfg = load_config(config_path)
    printer = _ProgressPrinter(ctx.obj["quiet"])
    try:
        printer("samples", "start")
        run = run_samples(samples, cells=cells, out=out, config=cfg)
        printer("samples", "done")
    finally:
        printer.close()
    _report(run, ctx.obj["quiet"])


@cli.command("map")
@_verbosity_option
@click.option("--cells", type=click.Path(path_type=Path), required=True,
              help="Cells (engineering parameters).")
@click.option("--complaints", type=click.Path(path_type=Path), default=None,
              help="Complaint tickets (drawn, linked to cells, ranked into hotspots).")
@_output_options()
@click.pass_context
def map_cmd(ctx: click.Context, cells: Path, complaints: Path | None, out: Path,
            config_path: Path | None) -> None:
    """Draw a cell list (no tests needed): map.html, sectors.kmz, cells.geojson."""
    from kqi.cellmap import console_lines, map_cells
    from kqi.config import load_config

    cfg = load_config(config_path)
    printer = _ProgressPrinter(ctx.obj["quiet"])
    try:
        result = map_cells(cells=cells, complaints=complaints, out=out, config=cfg,
                           progress=printer)
    finally:
        printer.close()
    _report(result, ctx.obj["quiet"], lines=console_lines(result.summary, out / "rejects"))


@cli.command()
@_verbosity_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder the city's files are written to (cells.csv, app_tests.csv, ...).")
@_city_options
@click.option("--gbk", is_flag=True, help="Write cells and complaints in GBK with Chinese headers.")
@click.option("--week", type=click.IntRange(0, 52), default=0, show_default=True,
              help="A follow-up period of the same network (1 = the next DAYS days): some poor "
                   "cells fixed, some not, some new; the truth in followup_truth.csv.")
@click.option("--character", type=click.Choice(["plain", "hard"]), default="plain",
              show_default=True,
              help="hard: noise floor, load noise, traffic peaks, near-threshold and mixed causes, "
                   "missing KPI columns drawn from the seed (docs/synthetic-city.md).")
@click.pass_context
def city(ctx: click.Context, out: Path, n_cells: int, days: int, seed: int, gbk: bool,
         week: int, character: str) -> None:
    """Only generate a synthetic city (input files and the planted truth)."""
    from kqi.synth import make_city, make_followup

    kw: dict[str, Any] = {"encoding": "gbk", "chinese_headers": True} if gbk else {}
    kw["character"] = character
    if week:
        c = make_followup(out, seed=seed, n_cells=n_cells, days=days, week=week, **kw)
    else:
        c = make_city(out, seed=seed, n_cells=n_cells, days=days, **kw)
    if not ctx.obj["quiet"]:
        _out.print(f"wrote a synthetic city to {out}: {c.cells.name}, {c.tests.name}, {c.kpis.name}, "
                   f"{c.complaints.name}, {c.truth.name}")


@cli.command("map-assets")
@_verbosity_option
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def map_assets(ctx: click.Context, folder: Path | None) -> None:
    """Fetch Leaflet and its plugins (npm registry) for maps that work offline.

    Without FOLDER they go to ~/.cache/kqi/map-assets, which later maps use by themselves.
    """
    from kqi.maps import fetch_assets

    root = fetch_assets(folder)
    if not ctx.obj["quiet"]:
        _out.print(f"map assets ready in {root}; maps made from now on carry them (work offline)")


def _scrubbed(exc: BaseException) -> str:
    """An error's message on one line, phone numbers masked."""
    from kqi.privacy import scrub_text

    return scrub_text(" ".join(str(exc).split())) or ""


#: the commands that cluster: the helper process starts before anything else is imported
_HELPED = ("run", "demo")


def _command(argv: list[str]) -> str | None:
    """The subcommand of a command line (the group's own options take no values)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI (``argv``, else ``sys.argv[1:]``); a KqiError becomes one line on stderr and
    exit code 2 (``SystemExit``, as every other exit: the caller's process goes on)."""
    verbose = any(a in ("-v", "-vv", "--verbose") for a in (argv or sys.argv[1:]))
    from kqi import _prefetch

    _prefetch.own_process = True  # the command line: this process is kqi's own
    from kqi import _sidecar

    if _command(argv if argv is not None else sys.argv[1:]) in _HELPED:
        # hdbscan and folium imported in a helper process meanwhile (kqi/_sidecar.py)
        _sidecar.start()
    try:
        _main(argv, verbose)
    finally:
        _sidecar.stop()


def console() -> NoReturn:
    """The ``kqi`` console script: :func:`main`, then the process ends (:func:`_exit`).

    The process is kqi's own: its C allocator keeps freed memory for the next chunk
    (kqi/_malloc.py)."""
    from kqi._malloc import keep_freed_memory

    keep_freed_memory()
    try:
        main()
    except SystemExit as exc:
        _exit(exc.code)
    _exit(0)


def _exit(code: str | int | None) -> NoReturn:
    """End the console process as Python's own exit would, without its teardown.

    The exit handlers run (logging flushed, Spark's gateway ended, temporary folders removed) and
    the streams are flushed; then the process ends at once, instead of spending 0.3-0.5 s of a
    short run freeing numba's compiled code and every module's objects, which nothing needs.
    A thread still working (not a daemon) gets the ordinary exit, which waits for it.
    """
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
        sys.exit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):  # as SystemExit("message") does (or any other object):
        # printed, exit code 1
        with contextlib.suppress(Exception):
            print(code, file=sys.stderr)
        code = 1
    # the handlers Python's exit would run, run now (atexit has no public call for this; it is
    # the one the interpreter makes)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is None:  # started with the descriptor closed (cron: ``kqi ... >&-``)
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (kqi ... | head): as Python's exit would
            code = code or 120
    os._exit(code & 0xFF)


def _main(argv: list[str] | None, verbose: bool) -> None:
    try:
        cli.main(args=argv, prog_name="kqi", standalone_mode=False)
    except click.exceptions.Abort:
        _err.print("kqi: aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KqiError as exc:
        click.echo(f"kqi: error: {_scrubbed(exc)}", err=True)
        sys.exit(2)
    except Exception as exc:  # last resort: one line, traceback only on request
        if verbose:
            traceback.print_exc()
        click.echo(f"kqi: internal error: {type(exc).__name__}: {_scrubbed(exc)} (run with -v for details; "
                   "please report it)", err=True)
        sys.exit(3)


# --------------------------------------------------------------------------------------------
# kqi history: read the run history (docs/history.md, "Command line")
# --------------------------------------------------------------------------------------------

@cli.group("history")
@_verbosity_option
@click.option("--history", "history_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The history file (default: [history] path of --config).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="TOML config ([history] path and lock_wait_s).")
@click.pass_context
def history_cmd(ctx: click.Context, history_path: Path | None, config_path: Path | None) -> None:
    """Show the run history: runs, orders, or one cell's dossier."""
    from kqi.config import load_config

    cfg = load_config(config_path)
    path = history_path or (Path(cfg.history.path) if cfg.history.path else None)
    # checked when a subcommand opens the history, so that `kqi history orders --help` works
    ctx.obj["history"] = (path, cfg.history.lock_wait_s)


def _open_history(ctx: click.Context) -> Any:
    from kqi.history import History

    path, wait = ctx.find_root().obj["history"]
    if path is None:
        raise click.UsageError("give --history FILE (or [history] path in --config)")
    # reading never creates a file: a typo must not leave an empty history behind
    return History.open(path, lock_wait_s=wait, create=False)


def _show(df: Any, title: str, as_csv: bool) -> None:
    """A polars frame as a rich table on the console, or as CSV on stdout."""
    if as_csv:
        click.echo(df.write_csv(), nl=False)
        return
    import datetime as dt

    from rich.table import Table

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3f}"
        if isinstance(v, dt.datetime):
            return f"{v:%Y-%m-%d %H:%M}"
        return str(v)

    table = Table(title=title, title_justify="left")
    for name in df.columns:
        table.add_column(name.removeprefix("good_rate_"), overflow="fold")
    for row in df.iter_rows():
        table.add_row(*(cell(v) for v in row))
    # a pipe or a file has no width: do not fold the table into 80 columns there
    console = _out if _out.is_terminal else Console(highlight=False, width=10_000)
    console.print(table)


_csv_option = click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout instead of a table.")


@history_cmd.command("runs")
@_csv_option
@click.pass_context
def history_runs(ctx: click.Context, as_csv: bool) -> None:
    """Every recorded run, in window order."""
    with _open_history(ctx) as h:
        df = h.runs()
    if not as_csv:
        df = df.drop("inputs", "config", "window_start", "window_end")
    _show(df, f"runs in {ctx.find_root().obj['history'][0]}", as_csv)


@history_cmd.command("orders")
@click.option("--status", type=click.Choice(["open", "escalated", "closed"]), default=None,
              help="Only orders in this state (open, escalated or closed).")
@_csv_option
@click.pass_context
def history_orders(ctx: click.Context, status: str | None, as_csv: bool) -> None:
    """Every work order's current state (after the newest run that lists it)."""
    with _open_history(ctx) as h:
        df = h.orders(status)
    if not as_csv:  # status and order_status as one column (kqi.history.order_state)
        from kqi.history import order_state

        df = df.select("order_id", "cell_id", order_state(df), "opened", "first_seen",
                       "runs_poor", "runs_open", "cause_at_open", "last_verdict", "run_id")
    _show(df, "orders" + (f" ({status})" if status else ""), as_csv)


@history_cmd.command("cell")
@click.argument("cell_id")
@_csv_option
@click.pass_context
def history_cell(ctx: click.Context, cell_id: str, as_csv: bool) -> None:
    """One cell run by run: good-rates, poor services, cause, complaints, order and verdict."""
    from kqi.history import HistoryError

    with _open_history(ctx) as h:
        dossier = h.cell_dossier(cell_id)
        path = h.path
    timeline = dossier["timeline"]
    if timeline.height == 0:
        raise HistoryError(f"{path}: cell {cell_id!r} is in no recorded run")
    _show(timeline, f"cell {cell_id}", as_csv)


if __name__ == "__main__":  # pragma: no cover
    console()
