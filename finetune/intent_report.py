"""What a trained intent model reports: figures on labelled and out-of-scope files, the per-intent report
and the confusion matrix."""
from __future__ import annotations

from pathlib import Path

from agent.encoder import SentenceEncoder
from agent.intent import IntentHead
from agent.labelled import read_examples
from finetune.calibration import escalated, evaluate
from finetune.intent_data import IGNORE, Drawn, Embedded, embed


def write_reports(out: Path, labels: list[str], truth: list[str], predicted: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import classification_report, confusion_matrix

    (out / "report.txt").write_text(
        classification_report(truth, predicted, labels=labels, zero_division=0, digits=3), encoding="utf-8")
    matrix = confusion_matrix(truth, predicted, labels=labels)
    fig, ax = plt.subplots(figsize=(14, 14))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=5)
    ax.set_yticks(range(len(labels)), labels, fontsize=5)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Intent confusion matrix (validation)")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=120)
    plt.close(fig)


def labelled_file(encoder, path: str, names: list[str]) -> Embedded:
    """A labelled file's texts, as the model reads them, embedded; intents the model lacks are left out."""
    index = {name: i for i, name in enumerate(names)}
    return embed(encoder, [Drawn.of(e.text, index[e.intent]) for e in read_examples(path) if e.intent in index])


def eval_metrics(head: IntentHead, encoder: SentenceEncoder, path: str) -> dict:
    """The model's figures on a labelled file it never saw (``--eval``)."""
    result = evaluate(head, labelled_file(encoder, path, head.labels), head.labels)
    result.pop("_predicted"), result.pop("_truth")
    return result


def out_of_scope_metrics(head: IntentHead, encoder: SentenceEncoder, path: str) -> dict:
    """The share of the out-of-scope queries in ``path`` (one a line) that the agent escalates."""
    queries = [q.strip() for q in Path(path).read_text(encoding="utf-8").splitlines() if q.strip()]
    data = embed(encoder, [Drawn.of(q, IGNORE) for q in queries])
    return {"file": Path(path).name, "queries": len(queries),
            "escalated": round(float(escalated(head, data).mean()), 4)}
