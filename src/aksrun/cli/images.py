"""`aksrun image build|ls`: the runner and dependency images in the configured registry."""

from __future__ import annotations

import json
from typing import Any

import click

from ..core.config import load_config


@click.group("image")
def image() -> None:
    """Build and list aksrun's images (ACR Tasks: no Docker needed)."""


@image.command("build")
@click.argument("packages", nargs=-1)
@click.option("-r", "--requirements", "requirements_file", type=click.Path(dir_okay=False),
              help="A requirements file: build the dependency image for it.")
@click.option("--python", help="Python X.Y of the image (default: this interpreter's).")
@click.option("--base", help="Base image of the runner (default: MCR's python slim image).")
@click.option("--registry", help="Registry name (default: AZURE_CONTAINER_REGISTRY).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def image_build(packages: tuple[str, ...], requirements_file: str | None, python: str | None,
                base: str | None, registry: str | None, as_json: bool) -> None:
    """Build the runner image, or with PACKAGES / -r FILE the image with those requirements.

    An image already in the registry is not built again (tags name the content).
    """
    from ..errors import ConfigError
    from ..images.context import read_requirements_file
    from ..images.progress import BuildProgress
    from ..images.resolve import Images

    if packages and requirements_file:
        raise ConfigError("give either PACKAGES or --requirements FILE, not both.")
    requirements = list(packages) or (read_requirements_file(requirements_file)
                                      if requirements_file else [])
    config = load_config({"registry": registry, "base_image": base})
    images = Images(config, python=python)
    what = "the dependency image" if requirements else "the runner image"
    with BuildProgress(what, enabled=None if not as_json else False) as progress:
        images.on_line, images.on_status = progress.on_line, progress.on_status
        result = images.for_requirements(requirements) if requirements else images.runner()
    data: dict[str, Any] = {
        "reference": result.reference, "repository": result.repository, "tag": result.tag,
        "built": result.built, "run_id": result.run_id, "seconds": round(result.seconds, 1),
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    verb = (f"built in {result.seconds:.0f} s (ACR run {result.run_id})" if result.built
            else "already in the registry")
    click.echo(f"{result.repository}:{result.tag}: {verb}")
    click.echo(result.reference)


@image.command("ls")
@click.option("--registry", help="Registry name (default: AZURE_CONTAINER_REGISTRY).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def image_ls(registry: str | None, as_json: bool) -> None:
    """aksrun's images in the registry, with their Python, aksrun version and requirements."""
    from ..images.registry import RegistryImages

    config = load_config({"registry": registry})
    if not config.login_server:
        from ..errors import ConfigError

        raise ConfigError("no container registry configured: set AZURE_CONTAINER_REGISTRY "
                          "(e.g. myacr) or pass --registry.")
    found = list(RegistryImages(config).images())
    if as_json:
        click.echo(json.dumps([{
            "repository": i.repository, "tag": i.tag, "digest": i.digest,
            "reference": i.reference, "python": i.python, "aksrun": i.aksrun_version,
            "requirements": list(i.requirements), "created": i.created,
        } for i in found], indent=2))
        return
    if not found:
        click.echo(f"no aksrun images in {config.login_server} yet: `aksrun image build` "
                   "makes the runner image.", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("repository", "tag", "python", "aksrun", "requirements", "created")
    for i in found:
        tag = i.tag if len(i.tag) <= 32 else i.tag[:12] + "…"
        table.add_row(i.repository, tag, i.python, i.aksrun_version,
                      ", ".join(i.requirements) or "-", i.created[:19])
    Console().print(table)
