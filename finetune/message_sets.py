"""Scoring the agent on whole-message sets: emails, chats and calls as they arrive, by kind and channel.

A set is JSON lines written for this project by people who had seen neither the model nor its data
(``data/messages/eval/``), each line a message with its ``kind``:

- ``ordinary``: one request, calm or mildly annoyed: the intent must be right, the message answered, and
  no other request found in it;
- ``two_requests``: two requests of different intents: both must be found (``intents``);
- ``handover``: a person must take over (``handover``: person, legal, complaint, public, angry);
- ``out_of_scope``: a banking or other request outside the intents the agent knows: escalated.

``channel`` is email, chat, call (the customer's side as a recogniser writes it) or call_dialogue (both
sides, one labelled turn a line). ``score`` gives each figure the issue's targets name, overall and by
channel, and the messages that missed.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from agent.types import AgentError

KINDS = ("ordinary", "two_requests", "handover", "out_of_scope")
# figure -> (the kinds it counts, what counts as a hit)
FIGURES = {
    "intent right": ("ordinary two_requests", lambda m, u, found: u.intent in m["intents"]),
    "ordinary escalated": ("ordinary", lambda m, u, found: u.escalate),
    "ordinary given another request": ("ordinary", lambda m, u, found: len(set(found)) > 1),
    "both requests found": ("two_requests", lambda m, u, found: set(m["intents"]) <= set(found)),
    "two-request messages escalated": ("two_requests", lambda m, u, found: u.escalate),
    "hand-over escalated": ("handover", lambda m, u, found: u.escalate),
    "out of scope escalated": ("out_of_scope", lambda m, u, found: u.escalate),
}
FEWER_IS_BETTER = ("ordinary escalated", "ordinary given another request", "two-request messages escalated")


@dataclass
class Score:
    counts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # figure -> [hits, of]
    misses: list[dict] = field(default_factory=list)

    def rate(self, figure: str, channel: str | None = None) -> float | None:
        hits, total = self.counts.get(figure if channel is None else f"{figure} | {channel}", (0, 0))
        return hits / total if total else None

    def lines(self, by_channel: bool = True) -> list[str]:
        out = []
        for figure in FIGURES:
            hits, total = self.counts.get(figure, (0, 0))
            if not total:
                continue
            channels = sorted(k.split(" | ")[1] for k in self.counts if k.startswith(figure + " | "))
            detail = ", ".join(f"{c} {self.counts[f'{figure} | {c}'][0]}/{self.counts[f'{figure} | {c}'][1]}"
                               for c in channels) if by_channel else ""
            out.append(f"{figure:32} {hits:4d}/{total:<4d} {hits / total:6.1%}   {detail}")
        return out


def read_set(path: str | Path) -> list[dict]:
    messages = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            m = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AgentError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if "kind" not in m and m.get("intent"):  # a set of ordinary requests (data/examples/entity_heavy*)
            m["kind"] = "ordinary"
        if m.get("kind") not in KINDS or not m.get("text"):
            raise AgentError(f"{path}:{number}: each line needs 'text' and a 'kind' among {', '.join(KINDS)}")
        m.setdefault("intents", [m["intent"]] if m.get("intent") else [])
        messages.append(m)
    return messages


@dataclass
class Outcome:
    """What the agent made of one message."""

    intent: str | None
    found: list[str]  # every request it found, main first
    escalate: bool  # not answered: escalated (or, from a mailbox, anything but a reply)
    confidence: float | None = None
    reason: str | None = None
    evidence: str | None = None


def understood(agent, text: str) -> Outcome:
    """``agent.understand`` on one message, as the Python API and ``support-agent classify`` give it."""
    u = agent.understand(text)
    return Outcome(u.intent, [r["intent"] for r in u.intents] or [u.intent], u.escalate, u.confidence, u.reason,
                   u.evidence)


def mailbox(mbox: str | Path, labels: str | Path) -> list[tuple[bytes, dict]]:
    """(raw message, label) for each message of an mbox, labels (JSONL) matched by Message-ID."""
    import mailbox as stdlib_mailbox

    wanted = {}
    for line in Path(labels).read_text(encoding="utf-8").splitlines():
        if line.strip():
            label = json.loads(line)
            label.setdefault("intents", [label["intent"]] if label.get("intent") else [])
            wanted[label["message_id"].strip("<>")] = label
    out = []
    for message in stdlib_mailbox.mbox(str(mbox)):
        label = wanted.get(str(message["Message-ID"] or "").strip().strip("<>"))
        if label is not None:
            out.append((message.as_bytes(), {**label, "text": str(message["Subject"] or ""), "channel": "email"}))
    return out


def answered_email(agent, raw: bytes) -> Outcome:
    """The email channel on one raw message (as ``support-agent email`` handles it, nothing written)."""
    from channels import email

    result, _ = email.process(raw, agent)
    found = [r["intent"] for r in result.extra.get("intents") or []] or [result.intent]
    return Outcome(result.intent, found, result.action != "replied", result.confidence, result.reason,
                   result.extra.get("evidence"))


def score(messages: list[dict], outcomes) -> Score:
    """Every figure, overall and by channel, for ``messages`` and the agent's ``outcomes`` of them."""
    result = Score()
    for m, u in zip(messages, outcomes):
        found = u.found
        missed = False
        for figure, (kinds, hit) in FIGURES.items():
            if m["kind"] not in kinds.split():
                continue
            ok = bool(hit(m, u, found))
            for key in (figure, f"{figure} | {m.get('channel', '?')}"):
                result.counts[key][0] += ok
                result.counts[key][1] += 1
            # A miss is a hit where the figure counts failures (escalated ordinary messages) and vice versa.
            missed |= ok == (figure in FEWER_IS_BETTER)
        if missed:
            result.misses.append({"kind": m["kind"], "channel": m.get("channel"), "want": m["intents"],
                                  "handover": m.get("handover"), "got": found, "confidence": u.confidence,
                                  "reason": u.reason, "evidence": u.evidence, "text": m["text"]})
    return result
