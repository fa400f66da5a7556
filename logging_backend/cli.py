"""The `stagelog` command line: each command is a thin wrapper over a module function."""

from __future__ import annotations

import typer

app = typer.Typer(help="Log every arrow of a Triton pipeline into ClickHouse.", no_args_is_help=True)

# Commands are added below, one section per owning module (see docs/architecture.md).


def main() -> None:
    """Entry point of the `stagelog` script."""
    app()


if __name__ == "__main__":
    main()
