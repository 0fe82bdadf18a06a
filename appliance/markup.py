"""Text from users (template names, labels, host names, kernel function names) made safe
for the markups we write: XML and SVG, HTML, and Markdown for pull-request comments.

XML 1.0 has no way to write most control characters, even escaped: a name holding
U+0001 or ESC made `gate --junit` and `history --svg` write files that parsers reject.
They are dropped (a tab and a newline stay where the markup allows them); `<`, `&`, `>`
and quotes are escaped. Markdown has no escaping that every renderer honours for raw
HTML, so user text there is also stripped of what starts markup (`<`, `|`, brackets,
backticks, a leading `#`)."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

# what XML 1.0 cannot carry at all (its Char production), and the C1 controls besides
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_MARKDOWN = re.compile(r"[<>|\[\]`*\\]")


def clean(value: object) -> str:
    """VALUE as text without the characters XML cannot carry."""
    return _NOT_XML.sub("", str(value))


def xml(value: object) -> str:
    """VALUE for XML or SVG element text or a double-quoted attribute."""
    return escape(clean(value), {'"': "&quot;"})


def markdown(value: object) -> str:
    """VALUE as inert Markdown inline text: one line, no markup of its own."""
    text = " ".join(clean(value).split())
    return _MARKDOWN.sub("", text).lstrip("#").strip()
