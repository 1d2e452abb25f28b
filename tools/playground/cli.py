"""``python -m tools.playground``: run a cluster and drive it in the browser.

    python -m tools.playground [--part part2|part3|part6] [-n 5] [--seed S]
        [--port P] [--no-browser] [--replay FILE | --scenario NAME]
        [--speed X] [--outdir DIR]

It prints the page's URL, opens it in a browser where one is available,
and runs until Ctrl-C. Exit status: 0 after Ctrl-C, 2 for bad input (one
line says what is wrong).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import threading
import webbrowser
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from tools.sim.args import BAD_INPUT, SEED_LIMIT, ArgumentParser, seed

from .live import STAGE_VARIABLES
from .scenarios import SCENARIOS, load_scenario
from .session import (
    MAX_SERVERS,
    BadSessionError,
    Session,
    parse_session,
    parse_speed,
)
from .stages import DEFAULT_STAGE, STAGES
from .web import Playground

DEFAULT_PORT = 8700

DEFAULT_OUTDIR = Path(tempfile.gettempdir()) / "raft-playground"
"""Where saved sessions, logs and their pages go unless told otherwise."""


def servers(text: str) -> int:
    """An argparse type: a cluster size."""
    if not text.isdigit() or not 1 <= int(text) <= MAX_SERVERS:
        raise argparse.ArgumentTypeError(
            f"a cluster has 1 to {MAX_SERVERS} servers, not {text!r}"
        )
    return int(text)


def port(text: str) -> int:
    """An argparse type: a TCP port (0: any free one)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {text!r}")
    return int(text)


def speed(text: str) -> float:
    """An argparse type: a speed, ``0.05`` or ``1/20``."""
    try:
        value = float(Fraction(text))
        return parse_speed(value)
    except (ValueError, ZeroDivisionError, BadSessionError):
        raise argparse.ArgumentTypeError(
            f"a speed is 1/100 to 1 (real time), such as 1/20 or 0.05, not {text!r}"
        ) from None


def build_arg_parser() -> ArgumentParser:
    """The command line."""
    parser = ArgumentParser(
        prog="python -m tools.playground",
        description=(
            "Run a cluster of a Raft stage's real code on tools.sim's virtual "
            "clock and drive it from a page in the browser: pause, step, "
            "slow down, crash and restart servers, cut links, partition the "
            "cluster, submit commands, take snapshots (part6). Every session "
            "can be saved and replayed exactly."
        ),
    )
    parser.add_argument(
        "--part",
        choices=list(STAGES),
        help=f"the stage to run (default: {DEFAULT_STAGE})",
    )
    parser.add_argument(
        "-n",
        type=servers,
        metavar="N",
        help="how many servers, 1 to 9 (default: 5)",
    )
    parser.add_argument(
        "--seed", type=seed, metavar="S", help="the run's seed (default: a random one)"
    )
    parser.add_argument(
        "--port",
        type=port,
        default=DEFAULT_PORT,
        metavar="P",
        help=f"the port of the page (default: {DEFAULT_PORT}; 0: any free one)",
    )
    parser.add_argument(
        "--no-browser",
        action="store_true",
        help="print the page's URL, but do not open a browser",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="replay a saved session exactly (it pauses where it was saved)",
    )
    start.add_argument(
        "--scenario",
        choices=SCENARIOS,
        metavar="NAME",
        help=f"start with a scenario: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--speed",
        type=speed,
        metavar="X",
        help="the speed to start at, 1/100 to 1 (default: 1/20, or the session's)",
    )
    parser.add_argument(
        "--outdir",
        type=Path,
        default=DEFAULT_OUTDIR,
        metavar="DIR",
        help=f"where saved sessions and logs go (default: {DEFAULT_OUTDIR})",
    )
    return parser


def session_of(args: argparse.Namespace) -> tuple[Session, str]:
    """The session the command line asks for, and where it comes from."""
    if args.replay is not None or args.scenario is not None:
        given = [
            option
            for option, value in (("--seed", args.seed), ("-n", args.n))
            if value is not None
        ]
        if given:
            what = "--replay" if args.replay is not None else "--scenario"
            raise BadSessionError(
                f"{what} takes its seed and size from the session: drop "
                f"{' and '.join(given)}"
            )
    if args.replay is not None:
        path: Path = args.replay
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise BadSessionError(f"cannot read {path}: {error}") from None
        try:
            session = parse_session(text)
        except BadSessionError as error:
            raise BadSessionError(f"{path}: {error}") from None
        if args.part is not None and args.part != session.part:
            raise BadSessionError(
                f"{path} is a session of {session.part}, not of {args.part}: "
                f"replay it without --part"
            )
        source = f"replay of {path}"
    elif args.scenario is not None:
        session = load_scenario(args.scenario)
        if args.part is not None and args.part != session.part:
            raise BadSessionError(
                f"the scenario {args.scenario} runs {session.part}, not {args.part}"
            )
        source = f"scenario {args.scenario}"
    else:
        session = Session(
            args.part or DEFAULT_STAGE,
            args.n or 5,
            random.randrange(SEED_LIMIT) if args.seed is None else args.seed,
        )
        source = "a new run"
    if args.speed is not None:
        session.speed = args.speed
    return session, source


def open_browser(url: str) -> bool:
    """Open ``url`` in a graphical browser, if there is one (never a
    terminal's browser: the terminal is the playground's)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    if isinstance(browser, webbrowser.GenericBrowser) and not isinstance(
        browser, webbrowser.BackgroundBrowser
    ):
        return False  # lynx and the like: they would take over the terminal
    return browser.open(url)


def announce(
    playground: Playground, session: Session, source: str, args: argparse.Namespace
) -> None:
    """Print what runs and where, and open the page in a browser unless
    ``--no-browser``."""
    title = f"{session.title}: " if session.title else ""
    print(
        f"Raft playground: {title}{session.part} ({session.stage.lesson}), "
        f"{session.servers} servers, seed {session.seed} ({source})"
    )
    print(f"  {playground.url}")
    if not args.no_browser and not open_browser(playground.url):
        print("  (open it in a browser)")
    ignored = [name for name in STAGE_VARIABLES if os.environ.get(name)]
    if ignored:
        print(
            f"  ({' and '.join(ignored)} ignored: a session runs on the reliable "
            "network, so that it replays exactly)"
        )
    print(f"Saved sessions and logs go to {args.outdir}. Ctrl-C stops it.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_arg_parser().parse_args(argv)
    prog = "python -m tools.playground"
    try:
        session, source = session_of(args)
    except BadSessionError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return BAD_INPUT
    try:
        playground = Playground(
            session, port=args.port, outdir=args.outdir.resolve(), source=source
        )
    except OSError as error:
        print(
            f"{prog}: cannot serve on port {args.port}: {error.strerror}; choose "
            "another with --port (--port 0: any free one)",
            file=sys.stderr,
        )
        return BAD_INPUT
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    playground.start()
    try:
        try:
            announce(playground, session, source, args)
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        print("stopping...", flush=True)
    finally:
        # Also when a print fails (standard output closed by its reader):
        # the playground's threads must end, or the process never would.
        playground.close()
    print("stopped.", flush=True)
    return 0
