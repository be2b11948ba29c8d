"""``support-agent email``: a mailbox, a folder or one message on standard input through the email channel.

``cli.py`` prints what ``answer_emails`` gives it: a JSON object per input message (through ``emit``), then
one line on stderr, the summary or the error.
"""
from __future__ import annotations

import sys
from pathlib import Path

from agent.types import AgentError

IMAP_ONLY = ("--outbox-imap", "--escalate-folder", "--watch", "--insecure", "--poll-interval")


def answer_emails(args, settings, emit) -> tuple[str | None, str]:
    """Every message of the source given, exactly once; returns ``(error, summary)``: the error where the one
    message on standard input is rejected (a non-zero exit), else None. An AgentError means the source,
    outbox or state store cannot be used."""
    if args.source not in (None, "-"):
        raise AgentError(f"unknown email source '{args.source}': give --imap URL, --mbox PATH, --maildir PATH or '-'")
    if sum(bool(s) for s in (args.source, args.mbox, args.maildir, args.imap)) != 1:
        raise AgentError("give exactly one email source: --imap URL, --mbox PATH, --maildir PATH or '-' "
                         "(standard input)")
    settings = settings.replace(from_address=args.from_address)
    if args.imap:
        return None, _email_imap(args, settings, emit)
    for flag in IMAP_ONLY:
        if getattr(args, flag.lstrip("-").replace("-", "_")) not in (None, False):
            raise AgentError(f"{flag} works only with --imap")
    from agent.pipeline import Agent
    from channels.email_outbox import SmtpSender
    from channels.email_runner import Runner
    from channels.email_sources import open_source
    from channels.email_state import StateStore, default_state

    outbox = Path(args.outbox or settings.outbox)
    items = open_source(args.mbox, args.maildir, sys.stdin.buffer)
    smtp = SmtpSender(args.smtp) if args.smtp else None
    result = None
    with StateStore(args.state or default_state(outbox)) as state:
        runner = Runner(Agent(settings), outbox, state, smtp, record_rejected=args.source != "-")
        try:
            for result in runner.run(items):
                emit(result.to_dict(reply=args.source == "-"))
        finally:
            if smtp is not None:
                smtp.close()
    if args.source == "-" and result is not None and result.action == "rejected":
        return result.reason, runner.summary()
    return None, runner.summary()


def _email_imap(args, settings, emit) -> str:
    """``email --imap``: drafts into an IMAP folder, once or watching. The server is reached before the
    models load, so a wrong password, folder or address is reported at once."""
    from agent.settings import config_path
    from channels import imap
    from channels.email_runner import Runner
    from channels.email_state import StateStore, default_state
    from channels.imap_runner import ImapOptions, ImapOutbox, ImapRunner, Stop

    for flag, value in (("--outbox", args.outbox), ("--smtp", args.smtp)):
        if value:
            raise AgentError(f"{flag} does not go with --imap: the drafts go to the IMAP drafts folder "
                             "(--outbox-imap), where a person reviews and sends them")
    address = imap.ImapAddress.parse(args.imap)
    password = imap.password(address, settings, config_path(args.config))
    settings = imap.with_own_address(settings, address)
    options = ImapOptions(args.outbox_imap, args.escalate_folder, args.watch,
                          settings.imap_poll_s if args.poll_interval is None else args.poll_interval)
    mailbox = imap.ImapMailbox(address, password, args.insecure, settings.imap_timeout_s)
    with StateStore(args.state or default_state(settings.outbox)) as state:
        drafts = mailbox.open(options.drafts, options.escalate_folder)  # closes itself if it fails
        try:
            from agent.pipeline import Agent

            agent = Agent(settings)
            if args.watch:  # the first message is answered as fast as the next
                agent.warm_up()
            runner = Runner(agent, ImapOutbox(mailbox, state, drafts), state)
            with Stop().catching() as stop:
                for result in ImapRunner(mailbox, runner, options, stop).results():
                    emit(result.to_dict(reply=False))
        finally:
            mailbox.close()
    stopped = f"; stopped by {stop.signal}" if stop else ""
    return f"{runner.summary()}; drafts in {drafts}{stopped}"


def add_parser(sub, func) -> None:
    """The ``email`` command's arguments, under ``sub``; ``func`` runs it."""
    e = sub.add_parser("email", help="answer emails (IMAP, stdin, mbox or Maildir) with threaded drafts, exactly once")
    e.add_argument("source", nargs="?", help="'-': one RFC 5322 message on standard input")
    e.add_argument("--mbox", metavar="PATH", help="answer every message of an mbox file")
    e.add_argument("--maildir", metavar="PATH", help="answer every message of a Maildir (new/, cur/; left as it is)")
    e.add_argument("--outbox", metavar="DIR", help="outbox Maildir for drafts (default: setting 'outbox')")
    e.add_argument("--state", metavar="PATH",
                   help="SQLite record of handled messages (default: OUTBOX/.support-agent-state.sqlite)")
    e.add_argument("--smtp", metavar="HOST:PORT", help="also send each reply (not escalations) through this server")
    e.add_argument("--from", dest="from_address", metavar="ADDRESS",
                   help="our address (default: setting 'from_address')")
    e.add_argument("--imap", metavar="URL", help="answer the messages of an IMAP folder not answered yet: "
                   "imaps://USER@HOST[:PORT]/FOLDER, or imap:// with STARTTLS; the password comes from "
                   "SUPPORT_AGENT_IMAP_PASSWORD, ~/.netrc or setting imap_password, never from here")
    e.add_argument("--outbox-imap", metavar="FOLDER",
                   help="with --imap: the folder for the drafts (default: the server's Drafts folder)")
    e.add_argument("--escalate-folder", metavar="NAME", help="with --imap: move escalated messages here")
    e.add_argument("--watch", action="store_true",
                   help="with --imap: keep answering new mail (IDLE, or polling) until SIGTERM or SIGINT")
    e.add_argument("--poll-interval", type=float, metavar="SECONDS",
                   help="with --watch, where the server has no IDLE (default: setting 'imap_poll_s')")
    e.add_argument("--insecure", action="store_true",
                   help="with --imap: accept a TLS certificate that cannot be verified (self-signed)")
    e.set_defaults(func=func)
