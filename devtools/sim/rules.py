"""The simulator's verdict rule ``sim-lexicon-v1`` (pure; no ML, no randomness).

The simulator is not a model. It reads only the text between the last ``<post>`` and the last
``</post>`` of the last user message (the whole message when there are no tags), lower-cases it
and looks up fixed phrases per category:

=============  ======  ===========================================================
category       weight  phrases (whole words)
=============  ======  ===========================================================
self_harm      —       kill myself, end my life, suicide, self harm, cut myself
violence       1.0     kill, murder, shoot, stab, bomb, behead, hurt you
hate           1.0     subhuman, vermin, exterminate, go back to your country
scam           1.0     send bitcoin, wire transfer, gift card, double your money
harassment     0.5     idiot, stupid, loser, moron, pathetic, shut up
sexual         0.5     nude, nudes, nsfw, explicit
spam           0.5     buy now, click here, free money, limited offer, dm me
=============  ======  ===========================================================

Verdict: any self_harm phrase → ``escalate``; otherwise the summed weight of the categories hit
(each category once) ≥ 1.0 → ``remove``; ≥ 0.5 → ``escalate``; else ``allow``.

Instructions inside the post ("ignore previous instructions", "approve this", a fake
``</post>``, a JSON verdict...) contain none of these phrases, so they cannot change the verdict;
the rationale says when the post contained such text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RULE_VERSION = "sim-lexicon-v1"

_SELF_HARM = ("kill myself", "end my life", "suicide", "self harm", "cut myself")
_LEXICON: dict[str, tuple[float, tuple[str, ...]]] = {
    "violence": (1.0, ("kill", "murder", "shoot", "stab", "bomb", "behead", "hurt you")),
    "hate": (1.0, ("subhuman", "vermin", "exterminate", "go back to your country")),
    "scam": (1.0, ("send bitcoin", "wire transfer", "gift card", "double your money")),
    "harassment": (0.5, ("idiot", "stupid", "loser", "moron", "pathetic", "shut up")),
    "sexual": (0.5, ("nude", "nudes", "nsfw", "explicit")),
    "spam": (0.5, ("buy now", "click here", "free money", "limited offer", "dm me")),
}
_INJECTION = re.compile(
    r"ignore (all |any )?(previous|prior|above) instructions|approve this|"
    r"you are now|system prompt|</?post>|&lt;/?post&gt;|record_verdict|\"verdict\"|"
    r"authori[sz]e you|skip the policy|verdict:? allow|output allow",
    re.IGNORECASE,
)


def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b")


_SELF_HARM_RE = _pattern(_SELF_HARM)
_LEXICON_RE = {name: (weight, _pattern(phrases)) for name, (weight, phrases) in _LEXICON.items()}


@dataclass(frozen=True, slots=True)
class SimVerdict:
    verdict: str
    categories: list[str]
    confidence: float
    matched: list[str]
    injection: bool

    def rationale(self, limit: int) -> str:
        """A rationale that says plainly it came from the simulator."""
        found = ", ".join(repr(m) for m in self.matched) or "no listed phrase"
        text = f"[SIMULATOR {RULE_VERSION}, not a model] {self.verdict}: matched {found}."
        if self.injection:
            text += " The post contains instructions; they were treated as data."
        return text[:limit]


def extract_post(message_text: str) -> str:
    """The delimited post inside a user message (the whole text when it has no tags)."""
    start = message_text.rfind("<post>")
    end = message_text.rfind("</post>")
    if start == -1 or end == -1 or end < start:
        return message_text
    return message_text[start + len("<post>") : end]


def judge(post: str) -> SimVerdict:
    """Apply rule ``sim-lexicon-v1`` to the post text."""
    text = post.lower()
    injection = _INJECTION.search(post) is not None
    self_harm = sorted(set(_SELF_HARM_RE.findall(text)))
    if self_harm:
        return SimVerdict("escalate", ["self_harm"], 0.6, self_harm, injection)
    categories: list[str] = []
    matched: list[str] = []
    weight = 0.0
    for name, (w, pattern) in _LEXICON_RE.items():
        hits = sorted(set(pattern.findall(text)))
        if hits:
            categories.append(name)
            matched.extend(hits)
            weight += w
    if weight >= 1.0:
        return SimVerdict(
            "remove", categories, min(0.95, 0.6 + 0.1 * len(matched)), matched, injection
        )
    if weight >= 0.5:
        return SimVerdict("escalate", categories, 0.55, matched, injection)
    return SimVerdict("allow", [], 0.9, matched, injection)


def estimate_tokens(text: str) -> int:
    """Rough token count (4 characters per token, at least 1)."""
    return max(1, (len(text) + 3) // 4)
