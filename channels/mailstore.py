"""Mailbox reading, the exactly-once state store, outboxes and the mailbox runner, under their old names.

A thin re-export kept so that ``from channels import mailstore`` goes on working; the code lives in
``channels.email_sources`` (mbox, Maildir, zip, stdin), ``channels.email_state`` (the state store),
``channels.email_outbox`` (Maildir drafts, SMTP) and ``channels.email_runner`` (a mailbox run).
"""
from .email_outbox import MaildirOutbox, SmtpSender, draft_name
from .email_runner import ACTIONS, Runner
from .email_sources import (CHUNK, HEAD_BYTES, Item, count_mbox, delivery_order, open_source, read_bytes,
                            read_maildir, read_mbox, read_stream, read_zip, zip_members)
from .email_state import StateStore, default_state

__all__ = ["ACTIONS", "CHUNK", "HEAD_BYTES", "Item", "MaildirOutbox", "Runner", "SmtpSender", "StateStore",
           "count_mbox", "default_state", "delivery_order", "draft_name", "open_source", "read_bytes",
           "read_maildir", "read_mbox", "read_stream", "read_zip", "zip_members"]
