"""Old home of ``agent.promotion`` (comparing a trained version on the held-out set, then promoting
it), kept so that code written against it still imports; new code imports ``agent.promotion``."""
from agent.promotion import TOLERANCE, Comparison, Judge, compare, judge, promote  # noqa: F401
