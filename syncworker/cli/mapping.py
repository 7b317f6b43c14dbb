"""`syncworker mapping check`: validate a mapping file and summarise it."""

from __future__ import annotations

from pathlib import Path

import typer

mapping_app = typer.Typer(
    help="The field mapping file.\n\nExample: `syncworker mapping check mapping.yaml`."
)


def register(app: typer.Typer) -> None:
    app.add_typer(mapping_app, name="mapping")


@mapping_app.command("check")
def mapping_check(path: Path) -> None:
    """Validate a mapping file and summarise it.

    Example: `syncworker mapping check mapping.yaml`.
    """
    from syncworker.mapping import load

    mapping = load(path)
    typer.echo(f"{path}: OK ({len(mapping.fields)} fields, crm system {mapping.crm_system})")
    for written, canonical in sorted(mapping.normalised_ids.items()):
        typer.echo(f"  {written} normalised to {canonical} (the form the CRM's API returns)")
