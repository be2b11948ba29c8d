"""The agent: a ``Message`` in, a ``Reply`` out. Channels call it; it never imports a channel."""
from __future__ import annotations

from functools import cached_property

from . import guards, logs, records
from .compose import acknowledged, also_asked, body, frame, grounding
from .entities import extract
from .intent import IntentClassifier, Prediction
from .knowledge import Entry, KnowledgeBase, Retriever
from .escalation import decide
from .handover import given_reason
from .sentiment import sentiment
from .settings import Settings
from .types import AgentError, Message, Reply, Understanding, without_surrogates

log = logs.get("agent")
# The top intent's own entries come first (the most similar one, where it has several); when it has
# none, an intent among the classifier's candidates with at least this probability lends its passage.
CANDIDATE_FLOOR = 0.1
DRAFTERS = ("composer", "generator")
# The draft is run back through the classifier; a correct draft is about its intent but is not a
# customer message, so it counts when its intent is among the top few (top-5 holds the intent of
# 96% of the shipped knowledge base's answers, top-1 only 73%).
DRAFT_INTENT_TOP_K = 5


class Agent:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.load()
        self._warm = False
        if self.settings.torch_threads > 0:
            import torch

            torch.set_num_threads(self.settings.torch_threads)

    @cached_property
    def classifier(self) -> IntentClassifier:
        return IntentClassifier(self.settings.intent_model, models_dir=self.settings.models_dir, settings=self.settings)

    @cached_property
    def knowledge(self) -> KnowledgeBase:
        return KnowledgeBase.load(self.settings.knowledge_base)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.knowledge, self.classifier.encoder.encode)

    @cached_property
    def generator(self):
        from .generator import Generator  # loads torch generation code only when drafting with it

        return Generator(self.settings.generator_model, self.settings.cache_dir, self.settings.models_dir)

    def warm_up(self) -> "Agent":
        """Load every model (and run it once) now rather than on the first message; idempotent."""
        if not self._warm:
            self.classifier.predict(["hello"])
            _ = self.retriever
            if self.settings.drafter == "generator":
                self.generator.draft("hello", "Hello.", "email")
            self._warm = True
        return self

    def understand(self, text: str) -> Understanding:
        """Intent, entities and sentiment; escalate (with the reason) when a person should answer."""
        return self._understand(text)[0]

    def _understand(self, text: str) -> tuple[Understanding, Prediction | None]:
        # Line breaks are kept: they separate an email's greeting, paragraphs and signature, and a
        # transcript's turns (agent.sentences reads them).
        text = "\n".join(" ".join(line.split()) for line in without_surrogates(text).strip().splitlines())
        entities = extract(text)
        if not text.strip():
            return Understanding("none", 0.0, [], True, "empty message: nothing to answer", entities,
                                 vars(sentiment(text))), None
        prediction = self.classifier.classify([text])[0]
        mood = sentiment(prediction.reading.text or text)
        escalation = decide(prediction, self.classifier.threshold, mood)
        best, parts = prediction.top[0], prediction.reading.parts
        intents = [{"intent": intent, "probability": probability,
                    "sentence": parts[part].text if 0 <= part < len(parts) else prediction.reading.text}
                   for intent, probability, part in prediction.requests]
        return Understanding(best.intent, best.probability, prediction.top[1:], bool(escalation), escalation.reason,
                             entities, vars(given_reason(mood, escalation.reason)), intents,
                             escalation.evidence), prediction

    def handle(self, message: Message) -> Reply:
        with logs.about(*message.known_names()):
            return self.respond(message, *self._understand(message.text))

    def respond(self, message: Message, u: Understanding, prediction: Prediction | None) -> Reply:
        """Retrieval, drafting and guards for an understood message."""
        entry, reason, ranked = None, u.reason, []
        if not u.escalate:  # an escalation gets a holding reply: nothing to retrieve
            ranked = self.retriever.search(prediction.embedding, prediction.probabilities)
            candidates = {s.intent for s in u.top if s.probability >= CANDIDATE_FLOOR}
            entry = (next((e for e, _ in ranked if e.intent == u.intent), None)
                     or next((e for e, _ in ranked if e.intent in candidates), None))
            if entry is None:
                reason = f"no approved answer for intent '{u.intent}' in the knowledge base"
        apologise = u.sentiment.get("label") == "negative"
        further = self._further_entries(u, ranked) if entry is not None else []
        text, source, fallback = self._draft(message, u, entry, apologise, further)
        reply = Reply(text=text, intent=u.intent, confidence=u.confidence, top=u.top, escalate=entry is None,
                      reason=reason, entities=u.entities, source=source,
                      passages=_passages(entry, further, ranked),
                      sentiment=u.sentiment, fallback_reason=fallback, intents=u.intents,
                      evidence=u.evidence if entry is None else None)
        logs.event(log, "reply", channel=message.channel, intent=u.intent, confidence=u.confidence,
                   escalate=reply.escalate, reason=reason, sentiment=u.sentiment.get("score"), entity_kinds=sorted({e.kind for e in u.entities}))
        if fallback:
            logs.event(log, "generator_fallback", intent=u.intent, reason=fallback)
        if self.settings.records_file:  # the learning loop's raw material; masked inside append
            records.append(self.settings.records_file, records.from_reply(message, reply))
        return reply

    def _further_entries(self, u: Understanding, ranked: list[tuple[Entry, float]]) -> list[Entry]:
        """An approved answer for each further request of the message (its intent's most relevant
        entry), where the knowledge base has one."""
        found = []
        for request in u.intents[1:]:
            # the most relevant of its entries, or its first where retrieval for the main request missed them all
            entry = next((e for e, _ in ranked if e.intent == request["intent"]),
                         next(iter(self.knowledge.for_intent(request["intent"])), None))
            if entry is not None:
                found.append(entry)
        return found

    def _draft(self, message: Message, u: Understanding, entry: Entry | None, apologise: bool,
               further: list[Entry] = ()) -> tuple[str, str, str | None]:
        """``(reply, source, why the generator's draft was not used)``; ``further``: the answers to the
        message's other requests, added after the main one."""
        if self.settings.drafter not in DRAFTERS:
            raise AgentError(f"unknown drafter '{self.settings.drafter}' (choose {' or '.join(DRAFTERS)})")
        business = self.knowledge.business
        others = also_asked(further, u.entities, message.channel)
        composed = " ".join(filter(None, [body(entry, u.entities, message.channel, apologise), others]))
        if entry is None or self.settings.drafter != "generator":
            return frame(composed, message.channel, business, message.customer_name), "composer", None
        passage = grounding(entry, u.entities)
        draft = self.generator.draft(message.text, passage, message.channel)
        why = guards.check(draft, [message.text, passage,
                                   *(e.value for e in u.entities)], entry.facts, u.intent,
                           lambda d: [s.intent for s in self.classifier.predict([d], k=DRAFT_INTENT_TOP_K)[0]],
                           details=acknowledged(entry, u.entities))
        if why:
            return frame(composed, message.channel, business, message.customer_name), "composer", why
        draft = " ".join(filter(None, [draft, others]))
        return frame(draft, message.channel, business, message.customer_name), "generator", None


def _passages(entry: Entry | None, further: list[Entry], ranked: list[tuple[Entry, float]]) -> list[str]:
    """What the draft is grounded in: the main request's answer, each further request's, then the other
    retrieved answers; none for an escalation."""
    if entry is None:
        return []
    used = [entry, *further]
    return [e.answer for e in used] + [e.answer for e, _ in ranked if all(e is not u for u in used)]
