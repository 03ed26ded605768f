"""The `exchange` command: install, register, serve, verify.

Every failure an operator can cause or fix ends in one sentence on stderr and a non-zero
exit code, never a traceback (unless `--debug`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from exchange.audit.events import Actor, AuditKind
from exchange.audit.sealer import seal_all
from exchange.cli.context import CliContext, NotInitialisedError, pass_context
from exchange.crypto.keyring import KeyringError
from exchange.db import DatabaseError, DatabaseUnreachable
from exchange.errors import DomainError
from exchange.install import initialise
from exchange.registry.service import RegistryError, apply_bootstrap, known_roles
from exchange.registry.specs import BootstrapError, parse_bootstrap
from exchange.server import exposure_warning
from exchange.server import serve as run_server
from exchange.settings import SettingsError

_OPERATOR_ERRORS = (
    SettingsError,
    NotInitialisedError,
    RegistryError,
    KeyringError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
)


class ExchangeGroup(click.Group):
    """Turns operator errors into one sentence and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BootstrapError as error:
            click.echo("error: the file is invalid, so nothing was applied:", err=True)
            for problem in error.problems:
                click.echo(f"  - {problem}", err=True)
            sys.exit(1)
        except _OPERATOR_ERRORS as error:
            _fail(ctx, error, str(error))
        except DomainError as error:
            _fail(ctx, error, error.message)
        except DatabaseUnreachable as error:
            _fail(
                ctx,
                error,
                "the database cannot be reached "
                "(check EXCHANGE_DATABASE_URL and that it is running)",
            )
        except DatabaseError as error:
            _fail(
                ctx,
                error,
                f"the database refused the change ({type(error).__name__}); "
                "run `exchange init` if it was never migrated",
            )
        except Exception as error:  # noqa: BLE001 - the last line of defence for operators
            _fail(
                ctx,
                error,
                f"unexpected error ({type(error).__name__}); run with --debug for details",
            )


def _fail(ctx: click.Context, error: BaseException, message: str) -> NoReturn:
    if ctx.obj is not None and getattr(ctx.obj, "debug", False):
        raise error
    click.echo(f"error: {message.rstrip('.')}.", err=True)
    sys.exit(1)


@click.group(cls=ExchangeGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """SEND health-advice exchange: operator commands."""
    ctx.obj = CliContext(debug=debug)


@main.command()
@pass_context
def init(cli: CliContext) -> None:
    """Create or migrate the database, data directory, keyring and console secret."""
    done = initialise(cli.settings, cli.clock)
    for line in done:
        click.echo(line)
    click.echo("initialised" if done else "already initialised: nothing to do")


def read_bootstrap_file(path: Path) -> Any:
    """Parse a bootstrap file as JSON or YAML (by extension; JSON is valid YAML too)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FileNotFoundError(f"cannot read {path} ({error.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise BootstrapError([f"{path.name}: not valid JSON or YAML"]) from None


@main.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_context
def bootstrap(cli: CliContext, file: Path) -> None:
    """Upsert organisations, agreements, clients and users from FILE (JSON or YAML)."""
    document = read_bootstrap_file(file)
    database = cli.database()
    with database.transaction() as session:
        spec = parse_bootstrap(document, known_roles(session))
        changes = apply_bootstrap(session, spec, cli.clock, Actor.operator(), AuditKind.BOOTSTRAP)
    seal_all(database)
    for change in changes:
        click.echo(str(change))
    click.echo(f"{len(changes)} change(s) applied" if changes else "no changes")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@pass_context
def serve(cli: CliContext, host: str, port: int, workers: int) -> None:
    """Run the service under gunicorn with N worker processes."""
    warning = exposure_warning(cli.settings, host)
    if warning:
        click.echo(warning, err=True)
    run_server(cli.settings, host, port, workers)


from exchange.cli import audit as _audit  # noqa: E402,F401
from exchange.cli import consent as _consent  # noqa: E402,F401
from exchange.cli import demo as _demo  # noqa: E402,F401
from exchange.cli import documents as _documents  # noqa: E402,F401
from exchange.cli import registry as _registry  # noqa: E402,F401
from exchange.cli import report as _report  # noqa: E402,F401
from exchange.cli import six_weeks as _six_weeks  # noqa: E402,F401
from exchange.cli import token as _token  # noqa: E402,F401
