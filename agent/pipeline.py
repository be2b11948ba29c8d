"""The agent: a ``Message`` in, a ``Reply`` out. Channels call it; it never imports a channel."""
from __future__ import annotations

from functools import cached_property

from . import logs
from .compose import compose
from .entities import extract
from .intent import IntentClassifier
from .knowledge import KnowledgeBase
from .sentiment import handover_reason, sentiment
from .settings import Settings
from .types import Message, Reply, Understanding

log = logs.get("agent")


class Agent:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.load()
        self._warm = False

    @cached_property
    def classifier(self) -> IntentClassifier:
        return IntentClassifier(self.settings.intent_model)

    @cached_property
    def knowledge(self) -> KnowledgeBase:
        return KnowledgeBase.load(self.settings.knowledge_base)

    def warm_up(self) -> "Agent":
        """Load every model (and run it once) now rather than on the first message; idempotent."""
        if not self._warm:
            self.classifier.predict(["hello"])
            _ = self.knowledge
            self._warm = True
        return self

    def understand(self, text: str) -> Understanding:
        """Intent, entities and sentiment; escalate (with the reason) when a person should answer."""
        text = " ".join(text.split())
        entities = extract(text)
        mood = sentiment(text)
        if not text:
            return Understanding("none", 0.0, [], True, "empty message: nothing to answer", entities, vars(mood))
        prediction = self.classifier.classify([text])[0]
        best = prediction.top[0]
        reason = handover_reason(text, mood)
        if reason is None and prediction.out_of_scope:
            reason = "out of scope: unlike any request the intent model knows"
        if reason is None and best.probability < self.classifier.threshold:
            reason = (f"low confidence: {best.probability:.2f} is below the threshold "
                      f"{self.classifier.threshold:.2f}")
        return Understanding(best.intent, best.probability, prediction.top[1:], reason is not None, reason,
                             entities, vars(mood))

    def handle(self, message: Message) -> Reply:
        u = self.understand(message.text)
        entry, reason = None, u.reason
        if not u.escalate:
            entries = self.knowledge.for_intent(u.intent)
            entry = entries[0] if entries else None
            if entry is None:
                reason = f"no approved answer for intent '{u.intent}' in the knowledge base"
        reply = Reply(
            text=compose(entry, u.entities, message.channel, self.knowledge.business, message.customer_name,
                         apologise=u.sentiment.get("label") == "negative"),
            intent=u.intent, confidence=u.confidence, top=u.top, escalate=entry is None, reason=reason,
            entities=u.entities, source="composer", passages=[entry.answer] if entry else [],
            sentiment=u.sentiment)
        logs.event(log, "reply", channel=message.channel, intent=u.intent, confidence=u.confidence,
                   escalate=reply.escalate, reason=reason, sentiment=u.sentiment.get("score"), entity_kinds=sorted({e.kind for e in u.entities}))
        return reply
