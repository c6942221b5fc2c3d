"""Command line: `python -m labkit.zoo list | info NAME | build NAME [--verify] | ship NAME |
build-replicas | check-rehearsal ROOT | downloads` (see --help)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from labkit.atomic import dumps_json
from labkit.cli import run_cli
from labkit.errors import EXIT_FAILURE
from labkit.rehearsal import check_rehearsed
from labkit.tables import add_json_flag, print_tables, table_console
from labkit.zoo.build import build_cached, build_local
from labkit.zoo.catalog import CATALOG, ZooItem, as_zoo_name, parse_name, replicas
from labkit.zoo.downloads import as_rows, cached_sizes, paper_downloads
from labkit.zoo.reproduce import reproduce
from labkit.zoo.shipped import SHIPPED_ROOT, ship, shipped_dir
from labkit.zoo.store import cache_key, is_built, item_dir, read_card


def _build_dir(item: ZooItem, size: str, seed: int) -> Path:
    key = cache_key(size, seed, item.version, {})
    return shipped_dir(item, key) or item_dir(item.kind, item.name, key)


def _item(args: argparse.Namespace) -> tuple[ZooItem, str, int]:
    item, size = parse_name(as_zoo_name(args.name), args.size)
    return item, size, item.default_seed if args.seed is None else args.seed


def _list(console: Console, as_json: bool) -> None:
    table = Table(title="labkit zoo (built = cached or shipped at the default seed)")
    table.add_column("name", no_wrap=True)
    for column in ("kind", "stands in for", "sizes", "version", "built"):
        table.add_column(column)
    for item in CATALOG.values():
        built = [s for s in item.sizes if is_built(_build_dir(item, s, item.default_seed))]
        table.add_row(
            item.zoo_name,
            item.kind,
            item.stands_in_for,
            ", ".join(item.sizes),
            item.version,
            ", ".join(built) or "-",
        )
    print_tables([table], as_json=as_json, console=console)


def _info(console: Console, item: ZooItem, size: str, seed: int) -> None:
    console.print(f"[bold]{item.zoo_name}[/bold] ({item.kind}): {item.description}")
    console.print(f"stands in for: {item.stands_in_for}")
    console.print(
        f"sizes: {', '.join(item.sizes)}; default seed {item.default_seed}; version {item.version}"
    )
    console.print(f"builder: {item.builder}; options: {', '.join(item.options) or 'none'}")
    path = _build_dir(item, size, seed)
    if is_built(path):
        where = "shipped in the repository" if path.is_relative_to(SHIPPED_ROOT) else "built"
        console.print(f"{where} at {path}:")
        console.print_json(dumps_json(read_card(path)))
    else:
        console.print(
            f"{size} (seed {seed}) not built yet: python -m labkit.zoo build {item.zoo_name}@{size}"
        )


def _build_replicas(console: Console, size: str, seed: int | None, force: bool) -> None:
    """Build every replica (models at `size`, data sets at their one size), one line each."""
    for item in replicas():
        chosen = size if size in item.sizes else "default"
        item_seed = item.default_seed if seed is None else seed
        path = build_local(item, chosen, item_seed, {}, force=force)
        card = read_card(path)
        console.print(
            f"{item.zoo_name}@{chosen} (seed {item_seed}) replicates {', '.join(item.replica_of)}: "
            f"{path} (built in {card['build_seconds']:.1f} s)",
            soft_wrap=True,
        )


def _downloads(console: Console, args: argparse.Namespace) -> None:
    """Every paper config's hub downloads (id, config, split, how much is read) and cached sizes."""
    rows = as_rows(paper_downloads(args.config), cached_sizes(args.hf_cache))
    if args.json:
        print(dumps_json(rows))
        return
    cwd, last = Path.cwd(), None
    for row in rows:
        path = Path(row["paper_config"])
        if path != last:
            console.print(
                f"[bold]{path.relative_to(cwd) if path.is_relative_to(cwd) else path}[/bold]"
            )
            last = path
        where = " ".join(f"{k}={row[k]}" for k in ("config", "split") if row[k] is not None)
        console.print(
            f"  {row['kind']:<7} {row['hub_id']} {where} ({row['read']}): {row['size']}",
            soft_wrap=True,
            highlight=False,
        )


def main(args: argparse.Namespace) -> int | None:
    """Run one zoo subcommand."""
    console = table_console()
    if args.command == "list":
        _list(console, args.json)
        return None
    if args.command == "build-replicas":
        _build_replicas(console, args.size, args.seed, args.force)
        return None
    if args.command == "check-rehearsal":
        records = check_rehearsed(args.root)
        console.print(f"{len(records)} run records under {args.root}, each says rehearsal: true")
        return None
    if args.command == "downloads":
        _downloads(console, args)
        return None
    item, size, seed = _item(args)
    if args.command == "info":
        _info(console, item, size, seed)
        return None
    if args.command == "ship":
        built = build_cached(item, size, seed, {})
        path = ship(built, item, cache_key(size, seed, item.version, {}))
        console.print(f"shipped {item.zoo_name}@{size} (seed {seed}): {path}", soft_wrap=True)
        return None
    if args.verify:
        result = reproduce(item, size, seed)
        console.print(result.verdict(), soft_wrap=True)
        return None if result.identical else EXIT_FAILURE
    path = build_local(item, size, seed, {}, force=args.force)
    console.print(f"{item.zoo_name}@{size} (seed {seed}) at {path}")
    console.print_json(dumps_json(read_card(path)))
    return None


def parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m labkit.zoo`."""
    top = argparse.ArgumentParser(prog="python -m labkit.zoo", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    add_json_flag(commands.add_parser("list", help="list every zoo item and which sizes are built"))
    for command, help_text in (
        ("info", "show an item's catalogue entry and, if built, its zoo card"),
        ("build", "build an item into the cache (no-op if built or shipped, unless --force)"),
        ("ship", "copy an item's cache build into the repository as its shipped build"),
    ):
        sub = commands.add_parser(command, help=help_text)
        sub.add_argument(
            "name", help="zoo name, e.g. local:tiny-gpt2, tiny-gpt2 or local:shapes10@small"
        )
        sub.add_argument("--size", help="size (default: the one in NAME, else 'default')")
        sub.add_argument("--seed", type=int, help="seed (default: the item's default seed)")
        if command == "build":
            how = sub.add_mutually_exclusive_group()
            how.add_argument(
                "--force", action="store_true", help="rebuild, replacing the old at the end"
            )
            how.add_argument(
                "--verify",
                action="store_true",
                help="rebuild a model in a temp directory and compare its weights with the shipped "
                "(else cached) build; exit 1 if they differ (nothing is replaced)",
            )
    sub = commands.add_parser(
        "build-replicas",
        help="build the replica of every hub model and data set the paper configs name (rehearsals)",
    )
    sub.add_argument(
        "--size",
        choices=("default", "test"),
        default="default",
        help="models' training length: default (what rehearsals load) or test (same shape, 4 steps)",
    )
    sub.add_argument("--seed", type=int, help="seed (default: each item's default seed)")
    sub.add_argument("--force", action="store_true", help="rebuild, replacing the old at the end")
    sub = commands.add_parser(
        "check-rehearsal",
        help="every run record under ROOT says rehearsal: true (exit 1 if one does not)",
    )
    sub.add_argument("root", help="a folder of rehearsal runs")
    sub = commands.add_parser(
        "downloads",
        help="what each paper config will download from the hub, with sizes the local HF cache knows",
    )
    sub.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="PATH",
        help="only this paper config (repeatable; default: every paper config of every system)",
    )
    sub.add_argument(
        "--hf_cache", metavar="DIR", help="the HF hub cache to read sizes from (default: HF's own)"
    )
    sub.add_argument("--json", action="store_true", help="one JSON list of rows instead of lines")
    return top


if __name__ == "__main__":
    run_cli(parser(), main)
