"""Token selection (``--llm-tokens 0,3-5``) and the alignment of golden and my tokens."""

from __future__ import annotations

import re

from ..dumps.base import Dump

_RANGE = re.compile(r"^(\d+)-(\d+)$")


def parse_tokens(text: str) -> frozenset[int | str]:
    """``0,3-5`` -> {0, 3, 4, 5}; non-numeric items (``warmup``) are kept as names."""
    tokens: set[int | str] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        found = _RANGE.match(item)
        if found:
            first, last = int(found.group(1)), int(found.group(2))
            if last < first:
                raise ValueError(f"token range {item!r} runs backwards")
            tokens.update(range(first, last + 1))
        elif item.isdigit():
            tokens.add(int(item))
        elif re.fullmatch(r"[A-Za-z_][\w.-]*", item):
            tokens.add(item)
        else:
            raise ValueError(f"cannot read token {item!r}; write ids and ranges such as 0,3-5")
    if not tokens:
        raise ValueError("no token given; write ids and ranges such as 0,3-5")
    return frozenset(tokens)


def align_tokens(
    golden: Dump, my: Dump, selected: frozenset[int | str] | None
) -> tuple[list[tuple[int | str, int | str]], str]:
    """(golden token, my token) pairs to compare, and a note when alignment needed a rule.

    Common tokens pair with themselves. Without common tokens, two dumps that each hold one
    pinned token (the user pointed at token folders) are compared across tokens; otherwise
    nothing pairs and the note says why.
    """
    golden_tokens = [t for t in golden.tokens() if selected is None or t in selected]
    my_tokens = [t for t in my.tokens() if selected is None or t in selected]
    common = [t for t in golden_tokens if t in set(my_tokens)]
    if common:
        return [(t, t) for t in common], ""
    if len(golden_tokens) == 1 and len(my_tokens) == 1:
        pinned = "pinned_token" in golden.info and "pinned_token" in my.info
        if pinned or (golden.kind == my.kind == "files"):
            return [(golden_tokens[0], my_tokens[0])], (
                f"comparing golden token {golden_tokens[0]} with my token {my_tokens[0]}"
            )
    return [], (
        f"golden tokens {golden_tokens} and my tokens {my_tokens} have none in common; "
        "point both paths at token folders to compare two different tokens"
    )


def describe_tokens(tokens: list[int | str]) -> str:
    """``[0, 1, 2, 5, "warmup"]`` -> ``0-2,5,warmup`` (runs of numbers as ranges); ``none`` when empty."""
    parts: list[str] = []
    numbers = sorted(t for t in tokens if isinstance(t, int))
    start = None
    for position, number in enumerate(numbers):
        if start is None:
            start = number
        if position + 1 == len(numbers) or numbers[position + 1] != number + 1:
            parts.append(str(start) if start == number else f"{start}-{number}")
            start = None
    parts += [str(t) for t in tokens if not isinstance(t, int)]
    return ",".join(parts) or "none"


def missing_tokens_problem(golden: Dump, my: Dump, selected: frozenset[int | str]) -> str | None:
    """Why a token selection cannot be right: tokens in neither dump (named with each dump's
    tokens); None when every selected token is in at least one dump."""
    golden_tokens, my_tokens = golden.tokens(), my.tokens()
    present = set(golden_tokens) | set(my_tokens)
    absent = [t for t in selected if t not in present]
    if not absent:
        return None
    absent.sort(key=lambda t: (isinstance(t, str), t if isinstance(t, int) else str(t)))
    return (
        f"token {describe_tokens(absent)} is in neither dump: golden has tokens "
        f"{describe_tokens(golden_tokens)}, my has tokens {describe_tokens(my_tokens)}"
    )
