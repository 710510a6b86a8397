"""``rechenwerk recipe``: training recipes that work out of the box (docs/recipes.md).

Runs locally (no server): ``list``, ``show NAME``, ``init NAME DIR`` copies a recipe and
fills its job spec, ready for ``rechenwerk submit DIR/job.yaml``."""

from __future__ import annotations

from pathlib import Path

import typer

from rechenwerk.cli.output import console, err_console, handle_errors, print_json, print_table

# Written into job.yaml when no --project is given: `submit` then names the problem.
PROJECT_PLACEHOLDER = "CHANGE-ME"


def register(app: typer.Typer) -> None:
    recipe = typer.Typer(
        help="Training recipes that run out of the box: list, show, init NAME DIR.",
        no_args_is_help=True,
    )
    app.add_typer(recipe, name="recipe")

    @recipe.command("list")
    @handle_errors
    def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """The recipes, with their default shape and what they do."""
        from rechenwerk.recipes import RECIPES

        if as_json:
            print_json([{"name": r.name, "summary": r.summary, "gpus": r.gpus,
                         "walltime": r.walltime, "checkpoint_interval": r.checkpoint_interval}
                        for r in RECIPES.values()])
            return
        print_table(["RECIPE", "GPUS", "WALLTIME", "CHECKPOINTS", "WHAT"],
                    [(r.name, r.gpus, r.walltime, r.checkpoint_interval or "-", r.summary)
                     for r in RECIPES.values()])

    @recipe.command("show")
    @handle_errors
    def show(
        name: str = typer.Argument(..., help="Recipe name (see `rechenwerk recipe list`)."),
        file: str | None = typer.Option(None, "--file", "-f",
                                        help="Print this file of the recipe instead."),
    ) -> None:
        """A recipe's README and files (or one file with --file)."""
        from rechenwerk.recipes import get_recipe, read_recipe_file, recipe_files

        r = get_recipe(name)
        if file:
            typer.echo(read_recipe_file(r, file), nl=False)
            return
        typer.echo(read_recipe_file(r, "README.md"), nl=False)
        typer.echo("")
        typer.echo(f"files: {', '.join(recipe_files(r))}")
        typer.echo(f"defaults: {r.gpus} GPUs, walltime {r.walltime}"
                   + (f", checkpoint interval {r.checkpoint_interval}"
                      if r.checkpoint_interval else ""))
        typer.echo(f"start: rechenwerk recipe init {r.name} DIR --project SLUG")

    @recipe.command("init")
    @handle_errors
    def init(
        name: str = typer.Argument(..., help="Recipe name (see `rechenwerk recipe list`)."),
        directory: Path = typer.Argument(..., help="New or empty directory to create."),
        project: str | None = typer.Option(None, "--project", "-p",
                                           help="Project slug to charge."),
        gpus: int | None = typer.Option(None, "--gpus", help="Total GPUs (recipe default)."),
        nodes: int = typer.Option(1, "--nodes", help="Nodes; --gpus is split evenly."),
        walltime: str | None = typer.Option(None, "--walltime",
                                            help="e.g. 30m, 2h (recipe default)."),
        checkpoint_interval: str | None = typer.Option(
            None, "--checkpoint-interval", help="e.g. 5m (recipes that checkpoint)."),
        python: str | None = typer.Option(
            None, "--python",
            help="Python with torch on the compute nodes (default: this one)."),
    ) -> None:
        """Copy a recipe into DIR with a filled job.yaml, ready for `rechenwerk submit`."""
        from rechenwerk.recipes import init_recipe

        result = init_recipe(name, directory, project=project or PROJECT_PLACEHOLDER,
                             gpus=gpus, nodes=nodes, walltime=walltime,
                             checkpoint_interval=checkpoint_interval, python=python)
        console.print(f"initialised {result.recipe.name} in {result.directory}: "
                      f"{', '.join(result.files)}", highlight=False)
        if project is None:
            err_console.print(
                f"note: no --project given; set `project:` in {result.spec} or submit "
                "with --project SLUG", highlight=False)
        if python is None and not result.torch_found:
            err_console.print(
                "note: torch is not installed for this Python; install it with "
                "pip install 'rechenwerk[recipes]' (or pass --python)", highlight=False,
                markup=False)  # markup would swallow "[recipes]"
        console.print(f"next: rechenwerk submit {result.spec}", highlight=False)
