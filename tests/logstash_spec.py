"""Read the sample messages out of logstash-patterns-core's RSpec files (test support).

The specs (Apache-2.0, logstash-plugins/logstash-patterns-core, copied read-only under
``shared/data/formats/logstash-patterns``) give each sample as
``let(:message) { "..." }`` or ``let(:message) do "..." + "..." end``, sometimes as
``super() + '...'`` (the enclosing sample plus a suffix).  :func:`spec_messages`
returns them in file order, with the Ruby string escapes undone, and the line where
each is defined, so a test can say which sample failed.
"""

from __future__ import annotations

import re
from pathlib import Path

_LET = re.compile(r"let\(:message\)\s*(?:\{(?P<brace>.*?)\}|do\s*\n(?P<block>.*?)\n\s*end\b)",
                  re.S)
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'')


def _unescape(text: str, double: bool) -> str:
    if double:
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), text)
    return text.replace("\\'", "'").replace("\\\\", "\\")


def spec_messages(path: Path, *, stop_at: str | None = None) -> list[tuple[int, str]]:
    """``(line number, message)`` of every sample in ``path``, before ``stop_at`` if given."""
    text = path.read_text()
    if stop_at is not None and stop_at in text:
        text = text[:text.index(stop_at)]
    out: list[tuple[int, str]] = []
    previous = ""
    for m in _LET.finditer(text):
        body = m["brace"] if m["brace"] is not None else m["block"]
        parts = [_unescape(s[1], True) if s[1] is not None else _unescape(s[2], False)
                 for s in _STRING.finditer(body)]
        message = "".join(parts)
        if body.strip().startswith("super()"):
            message = previous + message
        line = text.count("\n", 0, m.start()) + 1
        out.append((line, message))
        previous = message
    return out
