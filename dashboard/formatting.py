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
