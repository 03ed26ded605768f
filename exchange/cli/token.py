"""`exchange token CLIENT_ID --key FILE`: obtain an access token as a client would."""

from __future__ import annotations

import json
from pathlib import Path

import click
import requests

from exchange.auth.client import load_private_key, request_token
from exchange.cli import main
from exchange.cli.context import CliContext, pass_context


@main.command()
@click.argument("client_id")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The client's private JWK (e.g. var/demo/<client>.private.jwk.json).",
)
@click.option(
    "--scope", help="Space-separated scopes to ask for (default: all the client may have)."
)
@click.option("--print-token", is_flag=True, help="Print only the access token.")
@pass_context
def token(
    cli: CliContext, client_id: str, key_file: Path, scope: str | None, print_token: bool
) -> None:
    """Sign a client assertion and exchange it at the token endpoint (a client-side helper)."""
    try:
        key = load_private_key(key_file)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    try:
        answer = request_token(client_id, key, cli.settings.token_url, scope)
    except requests.RequestException:
        raise click.ClickException(
            f"the token endpoint {cli.settings.token_url} cannot be reached"
        ) from None
    if "access_token" not in answer:
        raise click.ClickException(
            f"the token request was refused: {answer.get('error')}: "
            f"{answer.get('error_description')}"
        )
    click.echo(answer["access_token"] if print_token else json.dumps(answer, indent=2))
