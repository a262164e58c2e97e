"""Every option of every subcommand says what it is for, and ``kqi run --help`` lists the
inputs and options the data contract names."""

from __future__ import annotations

import click
from click.testing import CliRunner

from kqi.cli import cli


def _commands(cmd: click.Command, path: tuple[str, ...] = ("kqi",)):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, (*path, name))


def test_every_option_of_every_subcommand_has_help() -> None:
    walked = list(_commands(cli))
    assert len(walked) > 5  # the walk reached the subcommands (demo, run, city, history ...)
    bare = [f"{' '.join(path)} {'/'.join(p.opts)}" for path, cmd in walked for p in cmd.params
            if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert bare == []
    no_doc = [" ".join(path) for path, cmd in walked if not (cmd.help or cmd.short_help)]
    assert no_doc == []


def test_run_help_lists_the_contract_options() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"], terminal_width=100)
    assert result.exit_code == 0
    for option in ("--cells", "--tests", "--kpis", "--complaints", "--samples", "--out",
                   "--config", "--history", "--engine", "--subscribers"):
        assert f"  {option} " in result.output, option


def test_demo_and_city_share_the_city_options() -> None:
    """``--cells``, ``--days`` and ``--seed`` are one definition: the same type, default and
    help in ``kqi demo`` and ``kqi city``."""
    def city_options(name: str) -> dict[str, tuple[object, ...]]:
        cmd = cli.commands[name]
        return {p.opts[0]: (p.name, repr(p.type), p.default, p.help) for p in cmd.params
                if isinstance(p, click.Option) and p.opts[0] in ("--cells", "--days", "--seed")}

    demo, city = city_options("demo"), city_options("city")
    assert sorted(demo) == ["--cells", "--days", "--seed"]
    assert demo == city


def test_a_folder_given_as_config_is_refused_in_one_line_by_every_command(tmp_path) -> None:
    """``--config`` of a folder: click's one-line usage error, before any input is read."""
    for command in ("run", "map", "samples", "demo"):
        args = [command, "--config", str(tmp_path)]
        if command != "demo":
            args += ["--out", str(tmp_path / "out")]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (command, result.output)
        assert "'--config'" in result.output, command
        assert "is a directory" in result.output, command
        assert result.exception is None or isinstance(result.exception, SystemExit)
