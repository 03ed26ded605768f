"""`exchange demo [--serve]`: the embedded default with the demo set and its story, ready to
try."""

from __future__ import annotations

from dataclasses import replace

import click

from exchange.app import create_app
from exchange.audit.events import Actor, AuditKind
from exchange.audit.sealer import seal_all
from exchange.cli import main
from exchange.cli.audit import verify
from exchange.cli.context import CliContext
from exchange.clock import london_date
from exchange.demo.script import StoryClock, Timeline, run_script
from exchange.demo.setup import prepare_demo
from exchange.install import initialise
from exchange.registry.service import apply_bootstrap, known_roles
from exchange.registry.specs import parse_bootstrap
from exchange.server import exposure_warning
from exchange.server import serve as run_server


@main.command()
@click.option("--serve", "then_serve", is_flag=True, help="Serve the API and console afterwards.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.pass_context
def demo(ctx: click.Context, then_serve: bool, host: str, port: int, workers: int) -> None:
    """Initialise, load the demo set and, the first time, tell the demo story (idempotent)."""
    cli: CliContext = ctx.obj
    settings = cli.settings
    for line in initialise(settings, cli.clock):
        click.echo(line)
    demo_set = prepare_demo(settings.data_dir)
    database = cli.database()
    now = cli.clock.now()
    # The story replays the last seven weeks on its own clock; the demo set is loaded as
    # it begins, so every record and audit event is in the order the story tells.
    story_clock = StoryClock(Timeline(london_date(now)).start)
    with database.transaction() as session:
        spec = parse_bootstrap(demo_set.bootstrap, known_roles(session))
        changes = apply_bootstrap(session, spec, story_clock, Actor.operator(), AuditKind.BOOTSTRAP)
    seal_all(database)
    if not changes:
        click.echo(
            "demo set already loaded (its story was told then; "
            "remove the data directory to replay it)"
        )
    else:
        click.echo(f"demo set loaded ({len(changes)} change(s)); the story, through the API:")
        quiet = replace(settings, log_level="WARNING")  # the steps are the output, not request logs
        run_script(
            create_app(quiet, clock=story_clock, database=database),
            demo_set.private_keys,
            settings.token_url,
            story_clock,
            lambda line: click.echo(f"  {line}"),
            now,
        )
        seal_all(database)
        click.echo("  and the audit trail holds together:")
        click.echo("  ", nl=False)
        ctx.invoke(verify, start=1)
    base = settings.public_base_url
    click.echo("")
    click.echo(f"  API:       {base}/fhir/metadata   (health: {base}/healthz)")
    click.echo(f"  OpenAPI:   {base}/openapi.json")
    click.echo(f"  Console:   {base}/console/")
    click.echo("  Console logins (password change and TOTP set-up at first login):")
    for user in demo_set.bootstrap["users"]:
        click.echo(
            f"    {user['username']:<14} {user['password']}   roles: {', '.join(user['roles'])}"
        )
    click.echo(f"  Demo client private keys (ES256 JWK): {demo_set.directory}/")
    for client_id, path in demo_set.private_keys.items():
        click.echo(f"    {client_id:<18} {path.name}")
    key = demo_set.private_keys["la01-case-system"]
    click.echo("  Try it (in another terminal, once the server is up):")
    click.echo(f"    TOKEN=$(.venv/bin/exchange token la01-case-system --key {key} --print-token)")
    click.echo(f'    curl -s -H "Authorization: Bearer $TOKEN" {base}/fhir/Organization')
    click.echo("")
    if then_serve:
        warning = exposure_warning(settings, host)
        if warning:
            click.echo(warning, err=True)
        click.echo(f"serving on http://{host}:{port} with {workers} worker(s); Ctrl-C stops")
        run_server(settings, host, port, workers)
