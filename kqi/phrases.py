"""The Chinese of the sentences kqi writes (evidence, review notes, recommended actions, the
follow-up's control basis), given where each sentence is built.

A sentence is built in English from literal fragments and figures (``"busy-hour PRB utilisation "``,
``85.3``, ``"%, threshold "``, ``80``, ``"%"``); the CSVs keep it so (the data contract's
English). Each fragment is written as :func:`phrase` ``(english, chinese)`` where the sentence
is built: that returns the English and records the pair, the one definition of its words. The
workbook in Chinese (``[output] language = "zh"``) shows :func:`in_words` of the sentence: every
recorded fragment in Chinese, the figures between them unchanged.

A fragment has one Chinese: recording another for the same English is an error at import.
A fragment is replaced only where its ends are word boundaries (:func:`_bounded`).
"""

from __future__ import annotations

import importlib
import re

__all__ = ["PHRASES", "in_words", "phrase"]

#: English fragment -> Chinese
PHRASES: dict[str, str] = {}

#: the modules that build sentences: each records its fragments when imported, so all are
#: imported before the first sentence is put in words (whatever the caller has imported)
SENTENCE_MODULES = ("kqi.causes", "kqi.diagnosis", "kqi.excel", "kqi.followup", "kqi.judged",
                    "kqi.workorders")

#: the compiled fragments: (how many were recorded then, the pattern)
_PATTERN: list[tuple[int, re.Pattern[str] | None]] = [(-1, None)]


def phrase(en: str, zh: str) -> str:
    """Record ``zh`` as the Chinese of the sentence fragment ``en``; returns ``en``."""
    have = PHRASES.setdefault(en, zh)
    if have != zh:
        raise ValueError(f"phrase {en!r} has two Chinese words: {have!r} and {zh!r}")
    return en


def _bounded(en: str) -> str:
    """The pattern of a fragment, matched only as whole words at its ends: a fragment that starts
    (ends) with a letter or digit does not match after (before) one, so ``" x"`` leaves a cell named
    ``Block x2`` alone and a cause code is not replaced inside a longer name."""
    head = r"(?<!\w)" if re.match(r"\w", en) else ""
    tail = r"(?!\w)" if re.search(r"\w$", en) else ""
    return f"{head}{re.escape(en)}{tail}"


def _compiled() -> re.Pattern[str] | None:
    if _PATTERN[0][0] < 0:  # the first sentence: every module's fragments recorded
        for name in SENTENCE_MODULES:
            importlib.import_module(name)
    if _PATTERN[0][0] != len(PHRASES):  # recompiled when a module records more fragments
        alts = [_bounded(en) for en in sorted(PHRASES, key=lambda s: (-len(s), s))]
        _PATTERN[0] = (len(PHRASES), re.compile("|".join(alts)) if alts else None)
    return _PATTERN[0][1]


def in_words(text: str, language: str = "en") -> str:
    """``text`` with every recorded fragment in ``language`` (``en``: unchanged); longer
    fragments first, figures and anything not recorded as written."""
    if language != "zh" or not text:
        return text
    pattern = _compiled()
    return text if pattern is None else pattern.sub(lambda m: PHRASES[m.group(0)], text)
