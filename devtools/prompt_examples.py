"""Write the frontier prompt's worked examples (``pipeline/frontier/examples_v1.py``).

Run from the project root: ``python -m devtools.prompt_examples [--data ../shared/data]``.

Each example is a post drawn from the labeled data in ``../shared/data`` (never copied into
the project as a dataset: only the short texts picked below go into the generated module), with
the verdict, categories, confidence and rationale written here by hand against the policy. The
picks are short, clear and non-gratuitous; they cover every policy section with remove, allow
and hard cases (hyperbole, reporting, reclaimed or self-directed language, label disagreement).
Rationales quote no slur. Texts are normalised (HTML entities decoded, ``@user`` mentions and
links collapsed, whitespace squeezed) but otherwise kept as written; the prompt escapes and
delimits them exactly like a live post (:func:`pipeline.frontier.prompt.delimited`).
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "pipeline" / "frontier" / "examples_v1.py"


@dataclass(frozen=True, slots=True)
class Pick:
    source: str  # dataset folder
    key: str  # row key in that dataset (see _load)
    verdict: str
    categories: tuple[str, ...]
    confidence: float
    rationale: str


V, H, HA, SH, SX, SP, SC = ("violence", "hate", "harassment", "self_harm", "sexual", "spam", "scam")

# fmt: off
PICKS: tuple[Pick, ...] = (
    # 1. Violence
    Pick("jigsaw_samples", "003217c3eb469ba9", "remove", (V, HA), 0.85,
         "Section 1: a death threat aimed at an identifiable editor, not a figure of speech."),
    Pick("convabuse", "3191.0", "remove", (V,), 0.8,
         "Section 1: a direct threat to kill the person addressed; anger does not excuse it."),
    Pick("convabuse", "4013.0", "remove", (V,), 0.85,
         "Section 1: a threat to shoot a named real person."),
    Pick("olid", "81844", "allow", (), 0.95,
         "Section 1 does not apply: 'shoot outs' is football vocabulary, no threat."),
    Pick("olid", "67045", "allow", (), 0.9,
         "Affectionate hyperbole ('I'd kill for you'); no one is threatened (section 1)."),
    Pick("youtube_spam", "z13ogjwqvuazsh0v123evnzipxyjx5fcv", "allow", (), 0.9,
         "Commentary on a video's realism; describes an animal attack, endorses no violence."),
    Pick("davidson", "12377", "allow", (), 0.85,
         "Section 1: news reporting of an attack that does not endorse it."),
    Pick("convabuse", "2659.0", "escalate", (V, H), 0.5,
         "Shock trolling that glorifies harm and invokes Hitler; intent and audience are unclear "
         "without context (sections 1, 2, 7)."),
    # 2. Hate
    Pick("hateval", "train:5548", "remove", (H,), 0.85,
         "Section 2: calls to expel people by race and origin, cast as destroying Europe."),
    Pick("hateval", "train:2472", "remove", (H,), 0.8,
         "Section 2: attacks women as a group as unbalanced and crazy."),
    Pick("hateval", "train:8211", "allow", (), 0.9,
         "Section 2: a headline about immigration politics; criticism of a government is allowed."),
    Pick("hateval", "train:648", "allow", (), 0.95,
         "Supportive advocacy for refugees; no policy section applies."),
    Pick("hateval", "train:2270", "allow", (), 0.6,
         "Hard case: an opinion on immigration enforcement, not an attack on people for who they "
         "are (section 2 allows criticism of policies)."),
    Pick("hateval", "train:3288", "allow", (), 0.7,
         "Hard case: a woman joking about how women were treated historically; self-directed "
         "irony, not an attack (section 2)."),
    Pick("hateval", "val:9616", "escalate", (H,), 0.5,
         "'Invasion' may refer to migrants, which would be dehumanising (section 2), but the post "
         "alone does not say; context decides (section 7)."),
    Pick("hateval", "train:8235", "allow", (), 0.95,
         "An appeal to host refugees; no policy section applies."),
    Pick("olid", "97822", "allow", (), 0.85,
         "Section 1: debate about gun laws that mentions shooting; no threat, no endorsement."),
    Pick("olid", "84102", "allow", (), 0.6,
         "Hard case: political criticism of voters and a party; section 2 protects attributes, not"
         " political affiliation, and no person is targeted."),
    # 3. Harassment
    Pick("jigsaw_samples", "00686325bcc16080", "remove", (HA,), 0.8,
         "Section 3: severe degradation of an identifiable person ('people like you' should not "
         "exist)."),
    Pick("convabuse", "229.0", "remove", (HA,), 0.75,
         "Section 3: a string of insults aimed at the person addressed."),
    Pick("hateval", "val:9094", "remove", (HA,), 0.75,
         "Section 3: gendered, dehumanising degradation of an identifiable public figure."),
    Pick("olid", "33627", "allow", (), 0.65,
         "Section 3: a single mild insult of a politician in a heated but legitimate political "
         "exchange."),
    Pick("jigsaw_samples", "0036621e4c7e10b5", "allow", (), 0.6,
         "Section 3: rude but mild, one insult in an editing dispute; not severe or repeated."),
    Pick("olid", "98824", "allow", (), 0.85,
         "Section 3: a mild figure of speech about someone's judgement, not degradation."),
    Pick("convabuse", "61.0", "allow", (), 0.95,
         "Calls someone rude while offering friendship; no policy section applies."),
    Pick("youtube_spam", "z12xe1uw2sv3i1dm322nhrcazuitt3cjv04", "allow", (), 0.85,
         "Harsh criticism of music and its fans in general; no person targeted (section 3)."),
    # 4. Self-harm
    Pick("convabuse", "747.0", "escalate", (SH,), 0.9,
         "Section 4: a person states a plan to end their life tonight; a human reaches out now."),
    Pick("convabuse", "3421.0", "allow", (), 0.7,
         "Section 4: grief about a relative's death; nothing encourages self-harm. If the author "
         "seemed at risk, escalate."),
    Pick("davidson", "24398", "allow", (), 0.8,
         "Playground hyperbole ('tryna kill myself lol'); no crisis and no encouragement (section "
         "4)."),
    Pick("davidson", "19255", "allow", (), 0.8,
         "Shares a suicide prevention hotline, jokingly; resources are allowed (section 4)."),
    # 5. Sexual
    Pick("convabuse", "730.0", "remove", (SX, HA), 0.7,
         "Sections 3 and 5: an unsolicited sexual proposition aimed at the person addressed."),
    Pick("convabuse", "3543.0", "remove", (SX, HA), 0.75,
         "Sections 3 and 5: sexualised harassment of the person addressed."),
    Pick("sms_spam", "line4477", "remove", (SX, SP), 0.9,
         "Sections 5 and 6: an explicit adult service advertised with a premium-rate number."),
    Pick("olid", "49125", "allow", (), 0.6,
         "Hard case: a flirtatious compliment, not explicit and not degrading (sections 3, 5); "
         "repeated unwanted advances would change this."),
    Pick("sms_spam", "line12", "allow", (), 0.8,
         "Sadness in a personal message with no intent or plan to self-harm (section 4)."),
    Pick("olid", "25510", "allow", (), 0.95,
         "Support for someone going through a hard time; 'hang in there' is encouragement."),
    # 6. Spam and scams
    Pick("youtube_spam", "z12ox3a5vviky5ctq22nz1ewpo24wxyis04", "remove", (SP,), 0.85,
         "Section 6: a repetitive self-promotion request unrelated to the conversation."),
    Pick("youtube_spam", "LneaDw26bFuk1aaBCiVITRxuEwAmzBtVcQi3QZSFkYY", "remove", (SP,), 0.8,
         "Section 6: channel promotion posted as a comment, unrelated to the thread."),
    Pick("sms_spam", "line3426", "remove", (SP,), 0.85,
         "Section 6: unsolicited commercial offer."),
    Pick("youtube_spam", "z12yfvzzpt2tizxvb22yj334vzmrh13gc04", "allow", (), 0.85,
         "A link to the official song under discussion; relevant, not spam (section 6)."),
    Pick("youtube_spam", "z12qvnw51y31ulrx304cjbkq1yzqzdkiytg0k", "escalate", (SC,), 0.5,
         "Hard case: a fundraising request may be genuine or a scam (section 6); a human should "
         "check the link and the account."),
    Pick("youtube_spam", "z13fehihaneyzh3wp04cfxrwkyfkwvgoex00k", "allow", (), 0.95,
         "An on-topic compliment; short and enthusiastic is not spam (section 6)."),
    Pick("sms_spam", "line1600", "remove", (SC,), 0.9,
         "Section 6: a fake prize that lures people into calling a premium-rate number."),
    Pick("sms_spam", "line4890", "remove", (SC,), 0.9,
         "Section 6: a fake award tied to a premium-rate call."),
    Pick("sms_spam", "line1198", "remove", (SC,), 0.65,
         "Section 6: a fake voicemail notice pointing to a premium-rate number."),
    Pick("sms_spam", "line3362", "remove", (SC,), 0.55,
         "Hard case: reads like a personal message, but from an unknown sender pushing a premium-"
         "rate personal number (section 6)."),
)
# fmt: on

_USER = re.compile(r"(?:@user\b\s*)+", re.IGNORECASE)
_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Decode entities, collapse mentions and links, drop BOMs, squeeze whitespace."""
    text = html.unescape(html.unescape(text)).replace("\ufeff", "")
    text = re.sub(r"<br\s*/?>", " ", text)
    text = _LINK.sub("URL", text)
    text = _USER.sub("@user ", text)
    text = re.sub(r"@\w+", "@user", text)
    return _SPACE.sub(" ", text).strip()


def _load(data: Path, source: str) -> dict[str, str]:
    """Texts of one dataset by row key."""
    folder = data / source
    if source == "olid":
        with (folder / "olid-training-v1.0.tsv").open(encoding="utf-8") as f:
            rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(rows)
            return {r[0]: r[1] for r in rows}
    if source == "hateval":
        with (folder / "hateval_train_val.csv").open(encoding="utf-8") as f:
            return {f"{r['split']}:{i}": r["text"] for i, r in enumerate(csv.DictReader(f))}
    if source == "jigsaw_samples":
        with (folder / "hurelyyu_train_sample.csv").open(encoding="utf-8") as f:
            return {r["id"]: r["comment_text"] for r in csv.DictReader(f)}
    if source == "davidson":
        with (folder / "labeled_data.csv").open(encoding="utf-8") as f:
            return {r[""]: r["tweet"] for r in csv.DictReader(f)}
    if source == "sms_spam":
        lines = (folder / "SMSSpamCollection").read_text(encoding="utf-8").splitlines()
        return {f"line{n}": line.split("\t", 1)[1] for n, line in enumerate(lines, 1) if n > 1}
    jsonl = {"convabuse": ("convabuse_splits.jsonl", "example_id"),
             "youtube_spam": ("youtube_spam_collection.jsonl", "comment_id")}  # fmt: skip
    name, key = jsonl[source]
    with (folder / name).open(encoding="utf-8") as f:
        return {str(o[key]): o["text"] for o in map(json.loads, f)}


def build(data: Path) -> list[dict[str, object]]:
    """The examples, in order, with their normalised texts."""
    cache: dict[str, dict[str, str]] = {}
    out: list[dict[str, object]] = []
    for pick in PICKS:
        rows = cache.setdefault(pick.source, _load(data, pick.source))
        out.append(
            {
                "source": f"{pick.source}:{pick.key}",
                "text": normalise(rows[pick.key]),
                "verdict": pick.verdict,
                "categories": list(pick.categories),
                "confidence": pick.confidence,
                "rationale": pick.rationale,
            }
        )
    return out


def render(examples: list[dict[str, object]]) -> str:
    """The generated module's source."""
    lines = [
        '"""Worked examples of the frontier policy prompt (GENERATED; do not edit).',
        "",
        "Written by ``python -m devtools.prompt_examples`` from picks in that script: short posts",
        "from the labeled data in ../shared/data (source dataset and row key given per example),",
        "with hand-written verdicts and rationales. The prompt escapes and delimits each text like",
        "a live post.",
        '"""',
        "",
        "# ruff: noqa: E501",
        "# fmt: off",
        "EXAMPLES: tuple[dict[str, object], ...] = (",
    ]
    lines += [f"    {json.dumps(e, ensure_ascii=True)}," for e in examples]
    lines.append(")")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.write_text(render(build(args.data)), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
