"""`livechat-bridge run | check | demo | report | purge` (also `python -m bridge`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time as clock
from datetime import UTC, datetime, time
from pathlib import Path

from bridge.config import Config, ConfigError, load_config
from bridge.config_reader import check_listen
from bridge.core.protocol import EMAIL_RE
from bridge.signals import wait_for_signal
from bridge.startup import StartupError, with_listen

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_OPEN_CHATS = 3  # `purge --email`: the visitor has chats not ended yet, left alone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livechat-bridge", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the bridge with a config file")
    run.add_argument("-c", "--config", type=Path, required=True)
    run.add_argument("--listen", type=_listen, metavar="HOST:PORT",
                     help="serve visitors here instead of [server] listen")
    check = commands.add_parser("check", help="validate a config file; exit 2 on problems")
    check.add_argument("-c", "--config", type=Path, required=True)
    demo = commands.add_parser("demo", help="private homeserver + bridge + demo shop page")
    demo.add_argument("--state", type=Path, default=Path("state/demo"),
                      help="folder for the demo's servers, accounts, database and config "
                      "(default state/demo; one subfolder per backend)")
    demo.add_argument("--listen", type=_listen, default="127.0.0.1:8080", metavar="HOST:PORT",
                      help="serve the widget and shop page here (default 127.0.0.1:8080)")
    demo.add_argument("--backend", choices=["matrix", "xmpp"], default="matrix")
    report = commands.add_parser(
        "report", help="chats, waiting time, duration and ratings from the database",
        description="Conversations and offline tickets created from --since (inclusive) "
        "to --until (exclusive), both UTC dates; all time by default.")
    report.add_argument("-c", "--config", type=Path, required=True)
    report.add_argument("--format", choices=["table", "csv", "json"], default="table",
                        help="output format (default table)")
    report.add_argument("--by", choices=["queue", "agent", "day"], default="queue",
                        help="one row per queue, agent or UTC day (default queue)")
    report.add_argument("--since", type=_utc_date, metavar="YYYY-MM-DD",
                        help="first UTC day included (from 00:00 UTC)")
    report.add_argument("--until", type=_utc_date, metavar="YYYY-MM-DD",
                        help="first UTC day NOT included (up to 00:00 UTC of that day)")
    _add_purge(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # nio warns of every error answer (a refused login too) that it parses; the bridge
    # reports each in its own words, so the warning is only noise before the real line.
    logging.getLogger("nio.responses").setLevel(logging.ERROR)
    # slixmpp narrates every step of a stream at INFO, and a refused login (which the bridge
    # reports in its own words, naming the key to fix) as an ERROR: noise on the console.
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("slixmpp").setLevel(logging.WARNING)
    logging.getLogger("slixmpp.features.feature_mechanisms").setLevel(logging.CRITICAL)
    if args.command == "check":
        return _check(args.config)
    if args.command == "report":
        return _report(args)
    if args.command == "purge":
        return _purge(args)
    try:
        if args.command == "run":
            return _run(args.config, args.listen)
        from bridge.demo import run_demo

        return asyncio.run(run_demo(args.state, args.listen, args.backend))
    except KeyboardInterrupt:  # Ctrl-C while starting: stopping is what was asked for
        return 130


def _run(path: Path, listen: str | None) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        _print_problems(path, exc)
        return EXIT_CONFIG
    if listen is not None:
        config = with_listen(config, listen)
    return asyncio.run(_serve(config, path))


def _listen(text: str) -> str:
    problem = check_listen(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _check(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        _print_problems(path, exc)
        return EXIT_CONFIG
    print(f"{path}: OK ({config.backend} backend, {len(config.agents)} agents, "
          f"{len(config.queues)} queues)")
    for warning in config_warnings(config):
        print(f"{path}: warning: {warning}")
    return 0


def config_warnings(config: Config) -> list[str]:
    """What works but falls short for visitors: texts in the wrong language, a colour that
    white text does not read on."""
    from bridge.core.colors import LIGHT_TEXT, TEXT_CONTRAST, contrast
    from bridge.i18n import missing_texts

    warnings = missing_texts(config)
    ratio = contrast(config.widget.color, LIGHT_TEXT)
    if ratio < TEXT_CONTRAST:
        warnings.append(f"widget.color: white text on {config.widget.color} has a contrast of "
                        f"{ratio:.1f}:1, below WCAG's {TEXT_CONTRAST}:1; the widget uses dark "
                        "text on it instead (a darker colour keeps white text readable)")
    return warnings


def _utc_date(text: str) -> datetime:
    """A YYYY-MM-DD argument as 00:00 UTC of that day."""
    try:
        return datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _report(args: argparse.Namespace) -> int:
    from bridge.report import build_report, render
    from bridge.store import Store, StoreError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        _print_problems(args.config, exc)
        return EXIT_CONFIG
    since, until = args.since, args.until
    if since is not None and until is not None and until <= since:
        print(f"livechat-bridge report: --until {until:%Y-%m-%d} must be a later day than "
              f"--since {since:%Y-%m-%d} (--until is exclusive)", file=sys.stderr)
        return EXIT_CONFIG
    path = config.storage.path
    if not path.is_file():
        print(f"{path}: no database here (storage.path in {args.config})", file=sys.stderr)
        return 1
    try:
        store = Store(path)
    except StoreError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    try:
        chats, tickets = store.report_records(
            since.timestamp() if since is not None else None,
            until.timestamp() if until is not None else None)
    finally:
        store.close()
    sys.stdout.write(render(build_report(chats, tickets, args.by), args.format))
    return 0


def _add_purge(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    purge = commands.add_parser(
        "purge", help="delete ended chats older than N days, or erase one visitor's",
        description="Delete ended conversations with their lines, files, audit events and "
        "tickets (docs/retention.md). Safe while the bridge runs on the same database.")
    purge.add_argument("-c", "--config", type=Path, required=True)
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--ended-before", type=_days, metavar="DAYS", dest="days",
                       help="conversations that ended more than DAYS days ago, and tickets "
                       "created before then that were delivered")
    which.add_argument("--email", type=_email, metavar="ADDRESS",
                       help="erase a visitor: their ended conversations and their tickets "
                       "(letter case ignored); exit 3 if they have chats not ended yet")
    purge.add_argument("--dry-run", action="store_true",
                       help="print what would go and change nothing")
    purge.add_argument("--format", choices=["text", "json"], default="text",
                       help="output format (default text)")


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of days (expected a whole number, at least 1)")
    return days


def _email(text: str) -> str:
    if not EMAIL_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an email address (expected name@example.com)")
    return text


def _purge(args: argparse.Namespace) -> int:
    from bridge.blobs import Blobs
    from bridge.purge import open_notice, purge, render, selection_for
    from bridge.store import Store, StoreError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        _print_problems(args.config, exc)
        return EXIT_CONFIG
    path = config.storage.path
    if not path.is_file():
        print(f"{path}: no database here (storage.path in {args.config})", file=sys.stderr)
        return 1
    try:
        store = Store(path)  # WAL, busy timeout: beside a running bridge, like `report`
    except StoreError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    selection = selection_for(days=args.days, email=args.email, now=clock.time())
    try:
        result = purge(store, Blobs(config.storage.files_dir), selection,
                       dry_run=args.dry_run, clock=clock.time)
    except StoreError as exc:
        print(f"{path}: {exc}; what was deleted before stays deleted: run it again",
              file=sys.stderr)
        return 1
    finally:
        store.close()
    sys.stdout.write(render(result, args.format))
    if result.open_conversations:
        sys.stderr.write(open_notice(result))
        return EXIT_OPEN_CHATS
    return 0


def _print_problems(path: Path, exc: ConfigError) -> None:
    print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


async def _serve(config: Config, path: Path) -> int:
    from bridge.app import Bridge
    from bridge.backends.base import BackendError

    try:
        bridge = Bridge(config)
        await bridge.start()  # a failed start has closed all it opened
    except (BackendError, StartupError) as exc:
        # One line naming the key to fix: a traceback would bury it.
        print(f"{path}: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        await wait_for_signal()
    finally:
        await bridge.stop()
    return 0

