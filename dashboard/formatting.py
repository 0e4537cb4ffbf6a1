"""Values as the pages write them: percentages, and text from elsewhere shown literally."""
from __future__ import annotations

import re

from core.numbers import percent

__all__ = ["literal", "percent"]   # percent: the one metric language of core.numbers, for the pages


def literal(text: str) -> str:
    """`text` as inline code: shown as typed, never read as Markdown (links, emphasis, Streamlit's :color[...]).
    The fence is one backtick longer than any run of backticks inside it (CommonMark's rule)."""
    text = re.sub(r"[\r\n]+", " ", str(text))  # a blank line would end the code span
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


# An underscore between letters or digits never emphasises (CommonMark), so class_a stays as typed.
MARKUP = re.compile(r"([\\`*\[\]()<>!#|~:$&]|(?<![^\W_])_|_(?![^\W_]))")


def plain(text: str) -> str:
    """`text` (a class name, a finding naming classes) inside prose: every character Markdown or Streamlit would
    read as markup (emphasis, links and images, HTML, :color[...], $math$) escaped with a backslash, line breaks
    and other control characters made spaces, so it shows exactly as written, in the surrounding style."""
    return MARKUP.sub(r"\\\1", re.sub(r"[\x00-\x1f\x7f]+", " ", str(text)))
