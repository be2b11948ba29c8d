"""Old home of ``agent.labelled`` (reading labelled examples), kept so that code written against it
still imports; new code imports ``agent.labelled``."""
from agent.labelled import Example, label_of, read_examples, rows  # noqa: F401
