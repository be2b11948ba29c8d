"""HTML to readable text for the email channel: scripts and styles dropped, blocks on their own lines,
quoted blocks as '> ' lines, with linear scans only."""
from __future__ import annotations

import html
import re

# Linear scans rather than the standard library's HTMLParser, which is quadratic on unclosed constructs
# ('<a ' repeated) and raises on some ('<![' repeated).
_QUOTED = "\x01"  # marks text that sat inside a <blockquote>
_HIDDEN = re.compile(r"<!--|<(script|style|title|template|noscript)\b", re.I)  # content never shown
_TAG = re.compile(r"<[^<>]*>")
_TAG_NAME = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9]{0,15})")
_BREAK = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "hr", "pre"}


def _visible(markup: str) -> str:
    """``markup`` without comments, scripts, styles, titles and templates (an unclosed one runs to the end)."""
    kept, pos = [], 0
    while match := _HIDDEN.search(markup, pos):
        kept.append(markup[pos:match.start()])
        if match.group(1) is None:
            end = markup.find("-->", match.end())
            pos = end + 3 if end >= 0 else -1
        else:
            close = re.compile(rf"</{match.group(1)}\s*>", re.I).search(markup, match.end())
            pos = close.end() if close else -1
        if pos < 0:
            return "".join(kept)
    return "".join(kept) + markup[pos:]


def html_to_text(markup: str) -> str:
    """Readable text from HTML: scripts and styles dropped, blocks on their own lines, quotes as '> '."""
    markup = _visible(markup)
    parts, quoting, pos = [], 0, 0
    for tag in [*_TAG.finditer(markup), None]:
        data = markup[pos:tag.start() if tag else len(markup)].replace("\n", " ")
        parts.append(_QUOTED + data if quoting and data.strip() else data)
        if tag is None:
            break
        pos = tag.end()
        name = _TAG_NAME.match(tag.group(0))
        if name and name.group(2).lower() in _BREAK:
            parts.append("\n")
            if name.group(2).lower() == "blockquote":
                quoting = max(0, quoting + (-1 if name.group(1) else 1))
    lines = []
    for line in html.unescape("".join(parts)).split("\n"):
        text = " ".join(line.replace(_QUOTED, " ").split())
        lines.append(f"> {text}" if _QUOTED in line and text else text)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
