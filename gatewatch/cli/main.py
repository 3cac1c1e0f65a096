"""``gatewatch``: argument parsing and dispatch. Exit 0 ok, 1 failed check, 2 bad usage/input."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Only the standard library at import time: a Ctrl-C while the engine's modules load (the
# first half second of every command) is then inside main's try, an exit 130 with no traceback
# (issue 16). The engine's modules are imported where they are used.
if TYPE_CHECKING:
    from engine.config import Config


class UsageError(Exception):
    """A user mistake: one line on stderr, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gatewatch",
        description="Gatewatch: an access gateway that records and controls database sessions.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("-c", "--config", type=Path,
                        help="policies file (default: $GATEWATCH_CONFIG)")
        return sp

    with_config(sub.add_parser("engine", help="run the engine"))
    demo = sub.add_parser("demo", help="run a complete local demo installation")
    demo.add_argument("--headless", action="store_true",
                      help="no TUI: print the connection details as one JSON line")
    demo.add_argument("-c", "--config", type=Path, help="policies file (default: the example)")
    demo.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                      help="postgres: two engine nodes sharing a PostgreSQL store")
    sessions = with_config(sub.add_parser("sessions", help="list recorded sessions"))
    sessions.add_argument("--json", action="store_true")
    sessions.add_argument("--limit", type=int, default=100)
    show = with_config(sub.add_parser("show", help="show one session and its statements"))
    show.add_argument("session", help="session id (or a unique prefix)")
    show.add_argument("--json", action="store_true")
    replay = with_config(sub.add_parser(
        "replay", help="move through a recorded session in time (a terminal UI)"))
    replay.add_argument("session", help="session id (or a unique prefix)")
    replay.add_argument("--theme", choices=["gatewatch-dark", "gatewatch-light",
                                            "gatewatch-high-contrast"])
    verify = with_config(sub.add_parser("verify", help="check the audit chain of the store"))
    verify.add_argument("session", nargs="?", help="only this session's records")
    verify.add_argument("--export", type=Path, metavar="FILE",
                        help="check that FILE, made by gatewatch export, matches the store")
    backup = with_config(sub.add_parser(
        "backup", help="copy the store while the engine runs, and verify the copy"))
    backup.add_argument("dest", type=Path, metavar="DEST",
                        help="the copy (a new file; the journal's newest records go beside it)")
    export = with_config(sub.add_parser(
        "export", help="write a session as evidence: asciicast, JSON lines or CSV"))
    export.add_argument("session", help="session id (or a unique prefix)")
    export.add_argument("--format", required=True, choices=["asciicast", "jsonl", "csv"])
    export.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write to FILE (default: standard output)")
    export.add_argument("--channel", type=int, metavar="N",
                        help="asciicast: follow SSH channel N (default: the first terminal)")
    policy = sub.add_parser("policy", help="work with policies files")
    psub = policy.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    check = psub.add_parser("check", help="validate a policies file")
    check.add_argument("file", type=Path)
    psub.add_parser("schema", help="print the JSON Schema of policies files (for editors)")
    explain = with_config(psub.add_parser(
        "explain", help="show how a statement would be judged (no engine needed)"))
    explain.add_argument("--connection", required=True)
    explain.add_argument("--user", required=True, help="the identity's name")
    what = explain.add_mutually_exclusive_group(required=True)
    what.add_argument("--sql", help="a SQL query string (PostgreSQL connections)")
    what.add_argument("--command", dest="shell_command",
                      help="a shell command line (SSH connections)")

    def operator(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        with_config(sp)
        sp.add_argument("--token", help="operator token (default: $GATEWATCH_TOKEN, else the "
                        "token `gatewatch login` cached)")
        return sp

    tui = operator(sub.add_parser("tui", help="the operator's terminal UI"))
    tui.add_argument("--theme", choices=["gatewatch-dark", "gatewatch-light",
                                         "gatewatch-high-contrast"])
    approvals = operator(sub.add_parser("approvals", help="list waiting approval requests"))
    approvals.add_argument("--json", action="store_true")
    for name, text in (("approve", "approve a held statement"),
                       ("deny", "deny a held statement")):
        sp = operator(sub.add_parser(name, help=text))
        sp.add_argument("request", metavar="ID", help="the approval request's id")
        sp.add_argument("--reason", help="why (recorded)")
    with_config(sub.add_parser(
        "login", help="sign in with the identity provider (device flow) and cache the token"))
    connect = with_config(sub.add_parser(
        "connect", help="open psql or ssh on a connection, signed in with the cached token",
        usage="gatewatch connect [-c FILE] [--user USER] [--dbname DB] NAME [-- ARG ...]",
        epilog="Arguments after -- go to psql or ssh unchanged."))
    connect.add_argument("name", metavar="NAME", help="the connection's name")
    connect.add_argument("--user", help="login name (default: the one in the token)")
    connect.add_argument("--dbname", help="database (default: the connection's first)")
    connect.set_defaults(args=[])
    kill = operator(sub.add_parser("kill", help="end a live session"))
    kill.add_argument("session", metavar="SESSION", help="session id (or a unique prefix)")
    kill.add_argument("--reason", help="why (recorded, and told to the client)")
    kill.add_argument("--lock-out", metavar="DURATION",
                      help="also keep the session's identity out for DURATION (30m, 2h, 1d): "
                      "its reconnections are refused (recorded; gatewatch unlock lifts it)")
    kill.add_argument("--scope", choices=["identity", "connection"], default="identity",
                      help="with --lock-out: out of every connection (identity, the default) "
                      "or only of the session's connection")
    reload = operator(sub.add_parser(
        "reload", help="make the running engine read its policies file again (as SIGHUP does)"))
    reload.add_argument("--json", action="store_true")
    lockouts = operator(sub.add_parser("lockouts", help="list the lock-outs in force"))
    lockouts.add_argument("--json", action="store_true")
    unlock = operator(sub.add_parser("unlock", help="lift a lock-out before it ends"))
    unlock.add_argument("lockout", metavar="ID", help="the lock-out's id (or a unique prefix)")
    unlock.add_argument("--reason", help="why (recorded)")
    return p


# With neither -c nor GATEWATCH_CONFIG, the policies file of the current directory: in a
# checkout (the example's) or an installation's own directory, `gatewatch sessions` works as the
# README writes it. A policies file is looked for nowhere else (no walking up, no home).
HERE = Path("policies.yaml")


def _config(args: argparse.Namespace) -> Config:
    from engine.config import load_config

    return load_config(_config_path(args))


def _config_path(args: argparse.Namespace) -> Path:
    path: Path | None = args.config or (Path(os.environ["GATEWATCH_CONFIG"])
                                        if os.environ.get("GATEWATCH_CONFIG") else None)
    if path is None and HERE.is_file():
        path = HERE
    if path is None:
        raise UsageError("no policies file: pass -c FILE or set GATEWATCH_CONFIG (or run "
                         "where policies.yaml is)")
    return path


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while modules load, before any handler of ours is set
        return 130


def _main(argv: list[str] | None) -> int:
    from engine.config import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if argv[:1] == ["connect"] and "--" in argv:  # psql/ssh arguments: argparse never sees them
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    args = _parser().parse_args(argv)
    if args.command == "connect":
        args.args = passthrough
    try:
        return _dispatch(args)
    except (UsageError, ConfigError) as exc:
        print(f"gatewatch: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `gatewatch sessions | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    from engine.config import ConfigError
    from gatewatch.cli import records
    from gatewatch.cli.runner import run, setup_logging
    from gatewatch.cli.shown import safe
    from store import StoreError, open_store

    if args.command == "policy" and args.policy_command == "schema":
        from engine.config.schema import schema_text

        sys.stdout.write(schema_text())
        return 0
    if args.command == "policy" and args.policy_command == "explain":
        from gatewatch.cli.explain import ExplainError, explain, explain_command

        try:
            if args.sql is not None:
                _, text = explain(_config(args), args.connection, args.user, args.sql)
            else:
                _, text = explain_command(_config(args), args.connection, args.user,
                                          args.shell_command)
        except ExplainError as exc:
            raise UsageError(str(exc)) from exc
        print(safe(text))
        return 0
    if args.command == "policy":
        if not args.file.is_file():
            raise UsageError(f"{args.file}: no such policies file")
        from engine.config.load import check_config

        try:
            config, warnings = check_config(args.file)
        except ConfigError as exc:  # a failed check (exit 1), not a usage mistake
            print(f"gatewatch: {exc}", file=sys.stderr)
            return 1
        for warning in warnings:  # the engine would run on it: exit 0, but say it
            print(f"gatewatch: warning: {warning}", file=sys.stderr)
        print(f"{args.file}: ok ({len(config.identities)} identities, "
              f"{len(config.connections)} connections"
              + (f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''})"
                 if warnings else ")"))
        return 0
    if args.command == "demo":
        from gatewatch.demo.account import AccountError
        from gatewatch.demo.pgcluster import ClusterError
        from gatewatch.demo.policies import PoliciesError
        from gatewatch.demo.run import default_policies, run_demo

        setup_logging("WARNING")
        try:
            return run(run_demo(args.config or default_policies(), headless=args.headless,
                                store=args.store))
        except (AccountError, ClusterError, PoliciesError) as exc:
            raise UsageError(f"demo: {exc}") from exc
    if args.command == "reload":
        try:
            config = _config(args)
        except ConfigError as exc:  # the engine refuses it too: ask it, so that it records it
            from gatewatch.cli import operate

            return operate.reload_unloadable(_config_path(args), exc, args.token,
                                             as_json=args.json)
    config = _config(args)
    if args.command in ("login", "connect"):
        from gatewatch.cli import login

        return login.command(config, args)
    if args.command == "replay":
        from recordings.replay import SessionNotFound
        from tui.replay import run_replay

        if not config.engine.store.exists():
            raise UsageError(f"no store at {config.engine.store}: nothing recorded yet")
        try:
            run_replay(config.engine.store, args.session,
                       args.theme or os.environ.get("GATEWATCH_THEME"))
        except (SessionNotFound, StoreError) as exc:
            raise UsageError(str(exc).strip('"')) from exc
        return 0
    if args.command in ("tui", "approvals", "approve", "deny", "kill", "lockouts", "unlock",
                        "reload"):
        from gatewatch.cli.login import LoginError, token_for

        try:  # --token, $GATEWATCH_TOKEN, or the operator's cached `gatewatch login`
            token = token_for(config, args.token)
        except LoginError as exc:
            if args.command == "tui":
                raise UsageError(str(exc)) from exc
            print(f"gatewatch: {exc}", file=sys.stderr)
            return 1  # as every failed operator command (see gatewatch.cli.operate)
    if args.command == "tui":
        from tui.main import TokenRefused, run_tui

        try:
            return run_tui(config.engine.control_socket, token, args.theme)
        except TokenRefused as exc:  # said before the screen is taken: exit 1, as operate's
            print(f"gatewatch: {exc}", file=sys.stderr)
            return 1
    if args.command in ("approvals", "approve", "deny", "kill", "lockouts", "unlock",
                        "reload"):
        from gatewatch.cli import operate

        try:
            if args.command == "reload":
                return operate.reload(config, token, as_json=args.json)
            if args.command == "approvals":
                print(safe(operate.approvals(config, token, as_json=args.json)))
            elif args.command == "kill":
                if args.scope != "identity" and not args.lock_out:
                    raise UsageError("--scope goes with --lock-out")
                print(safe(operate.kill(config, token, args.session, args.reason,
                                        args.lock_out, args.scope)))
            elif args.command == "lockouts":
                print(safe(operate.lockouts(config, token, as_json=args.json)))
            elif args.command == "unlock":
                print(safe(operate.unlock(config, token, args.lockout, args.reason)))
            else:
                print(safe(operate.decide(config, token, args.request,
                                          approve=args.command == "approve",
                                          reason=args.reason)))
        except operate.OperateError as exc:
            return operate.fail(str(exc))
        return 0
    if args.command == "engine":
        from engine.serve import serve

        setup_logging(config.engine.log_level)
        try:
            return run(serve(config))
        except StoreError as exc:
            raise UsageError(str(exc)) from exc
        except OSError as exc:
            raise UsageError(f"cannot start: {exc}") from exc
    if args.command == "backup":
        from gatewatch.cli.backup import backup_command

        return backup_command(config.engine.store, args.dest)
    shared = config.engine.store_url is not None  # a PostgreSQL store: nothing on this disk
    if args.command == "sessions" and not shared and not config.engine.store.exists():
        # Nothing recorded yet is an answer, not a mistake (a fresh checkout or installation).
        print("[]" if args.json else f"no sessions recorded yet (no store at "
              f"{config.engine.store})")
        return 0
    try:
        store = open_store(config.store_location(), readonly=True)
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    from recordings.sessions import find_session  # a prefix of at least 4 characters

    try:
        if args.command == "sessions":
            print(safe(records.sessions(store, as_json=args.json, limit=args.limit)))
            return 0
        if args.command == "show":
            session = find_session(store, args.session)
            if session is None:
                raise UsageError(f"no session {args.session!r} in {config.store_shown()}")
            print(safe(records.show(store, session, as_json=args.json)))
            return 0
        if args.command == "export":
            from gatewatch.cli.export import export_command

            return export_command(store, args.session, args.format, args.output, args.channel)
        if args.command == "verify" and args.export is not None:
            from gatewatch.cli.export import verify_export

            return verify_export(store, args.session, args.export)
        if args.command == "verify":
            if args.session and find_session(store, args.session) is None:
                raise UsageError(f"no session {args.session!r} in {config.store_shown()}")
            session_id = find_session(store, args.session)["id"] if args.session else None  # type: ignore[index]
            ok, message = records.verify_store(store, session_id)
            print(safe(message), file=sys.stdout if ok else sys.stderr)
            return 0 if ok else 1
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    finally:
        store.close()
    raise UsageError(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
