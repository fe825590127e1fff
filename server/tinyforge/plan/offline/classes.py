"""What the model tells apart: class names listed in the request, or how many there are.

Lists come in many shapes ("cats and dogs", "'up', 'down' or 'left'", "yes/no keywords",
"tell cats from dogs", "is the door open or closed?"): every shape found is a candidate, and
the most explicit one wins (quoted names first, a list opening the request last).
"""

from __future__ import annotations

import bisect
import re

from tinyforge.plan.offline.lexicon import lexicon
from tinyforge.plan.offline.text import IGNORECASE, NUM, NUMBER_WORDS, rx, to_int

_LEX = lexicon()

_TOKEN = re.compile(
    r"'[^'\n]{1,40}'|\"[^\"\n]{1,40}\"|`[^`\n]{1,40}`|‘[^’\n]{1,40}’|“[^”\n]{1,40}”"
    r"|[^\W_][\w'\-]*|[,/&;:.()!?]|\S"
)
_LIST_SEPARATOR_WORDS = _LEX.words("classes.list_separators")
LIST_STOP = _LEX.words("classes.list_stop")
_GENERIC_NOUNS = _LEX.words("classes.generic_nouns")
_LIST_CUE = rx(
    r"\b(?:into|as|between|among|classes|labels|categories|types|kinds|words|keywords|commands"
    r"|(?:class|label|category)\s+names|either|namely)\b\s*(?:(?::|=|are|is|of|being)\s*)?"
)
_VERB_CUE = rx(
    r"\b(?:classify|classifies|classifying|recogni[sz]e|recogni[sz]es|recogni[sz]ing|detect"
    r"|detects|detecting|distinguish|distinguishes|identify|identifies|tell\s+apart|tell"
    r"|differentiate|discriminate|sort|separate|spot|hear|spotting|categori[sz]e"
    r"|predict|predicts|predicting)\b"
    r"(?:\s+(?:between|among|the\s+difference\s+between))?\s*"
)
_COUNT_NOUNS = _LEX.alternation("classes.count_nouns")
_COUNT = rx(
    rf"(?<![\w.\-])({NUM})\s+(?:different\s+|distinct\s+|separate\s+|possible\s+|unique\s+)?"
    rf"(?:(?:kinds|types|sorts|classes)\s+of\s+)?"
    r"(?:(?!(?:seconds?|samples?|hz|ms|axis|axes|kb|mb|bytes?|pixels?|px|features?|frames?"
    r"|windows?|per|of|in|on|from|with|and|or)\b)[a-z][\w\-]*\s+){0,2}?"
    rf"(?:{_COUNT_NOUNS})\b"
)
_SLASH_LIST = rx(r"(?<![\w/\\.])([^\W\d_][\w'\-]*(?:\s*/\s*[^\W\d_][\w'\-]*)+)(?![\w/\\])")
_SLASH_CUE_AFTER = rx(
    r"^\s*(?:keywords?|words?|commands?|classes|labels|categories|states|classification"
    r"|detection|spotting|voice|spoken)\b"
)
_SLASH_CUE_BEFORE = rx(
    r"(?:\binto|\bas|\bbetween|\bclassify|\bdetect|\brecogni[sz]e|\bspot|\bhear|\bwords?"
    r"|\bkeywords?|\bcommands?|\bclasses|\blabels|:)\s*(?:the\s+)?$"
)


def _unquote(token: str) -> str | None:
    if len(token) >= 2 and token[0] in "'\"`‘“" and token[-1] in "'\"`’”":
        return token[1:-1].strip()
    return None


_WORD = re.compile(r"[^\W_][\w'\-]*")
_VERB_WORDS = _LEX.words("classes.verbs")
_MAX_CLASSES = 100
_VERB_BEFORE_PLACE = _LEX.words("classes.verbs_before_place")
_LIST_LEAD_IN = _LEX.words("classes.list_lead_in")


_FROM_PAIR = rx(
    r"\b(?:tell|distinguish|separate|differentiate|discriminate)\s+(?:the\s+)?"
    r"([^\W\d_][\w'\-]*(?:\s+[^\W\d_][\w'\-]*)?)\s+from\s+(?:the\s+)?"
    r"([^\W\d_][\w'\-]*(?:\s+[^\W\d_][\w'\-]*)?)\b"
)
_IS_PAIR = rx(
    r"\b(?:is|are|looks?|seems?)\s+(?:either\s+)?([^\W\d_][\w'\-]*)\s+or\s+"
    r"(?!not\b)([^\W\d_][\w'\-]*)\b"
    # "is the parking spot free or taken?": a short subject, the pair ending the clause.
    r"|\b(?:is|are)\s+(?:the|my|a|an|this|that|our)\s+(?:[^\W\d_][\w'\-]*\s+){1,3}?"
    r"([^\W\d_][\w'\-]*)\s+or\s+(?!not\b)([^\W\d_][\w'\-]*)(?=\s*(?:[?.,;:!]|$))"
)

_PAIR_STOP = _LEX.words("classes.pair_stop")


def _until_stop(words: list[str]) -> list[str]:
    kept: list[str] = []
    for word in words:
        if word.lower() in LIST_STOP:
            break
        kept.append(word)
    return kept


def _parse_list(
    tokens: list[re.Match[str]], i: int, text: str, numbers: bool = False
) -> list[str] | None:
    """Class names starting at tokens[i]: "a, b and c", "'x' or 'y'", "a/b", "a vs b".

    `numbers`: number words are names here ("the spoken words one, two and three").
    """
    generic = _GENERIC_NOUNS - set(NUMBER_WORDS) if numbers else _GENERIC_NOUNS
    items: list[str] = []
    current: list[str] = []
    expect_item = True
    conjunction = False  # an and/or/vs was seen: the next comma after an item ends the list
    last_end = tokens[i].start() if i < len(tokens) else 0
    while i < len(tokens):
        tok = tokens[i]
        raw = tok.group()
        lower = raw.lower()
        if "\n" in text[last_end : tok.start()]:
            break
        quoted = _unquote(raw)
        if len(items) > _MAX_CLASSES:
            return None  # not a class list; also keeps huge inputs linear
        if quoted is not None:
            if not expect_item or current or not quoted:
                break
            items.append(quoted)
            expect_item = False
        elif raw in {",", "/", "&"} or lower in _LIST_SEPARATOR_WORDS:
            if raw == "," and conjunction and not expect_item:
                break  # "brewing or idle, clips in ./coffee": the "or" item ended the list
            conjunction = conjunction or raw == "&" or lower in _LIST_SEPARATOR_WORDS
            if current:
                items.append(" ".join(current))
                current = []
            if not items:
                break
            expect_item = True
        elif lower in {"the", "a", "an"} and expect_item and not current and items:
            pass  # "the apple, the pear and the plum"
        elif (
            lower in _VERB_BEFORE_PLACE
            and i + 1 < len(tokens)
            and (tokens[i + 1].group().lower() in {"on", "in", "at", "with", "inside"})
        ):
            break  # "running on a Pico" ends the list; "walking, running" does not
        elif _WORD.fullmatch(raw) and lower not in LIST_STOP:
            if not expect_item and not current:
                break
            current.append(raw)
            if len(current) > 3:
                return None
            expect_item = False
        else:
            break
        last_end = tok.end()
        i += 1
    if current:
        items.append(" ".join(current))
    cleaned: list[str] = []
    for item in items:
        words = item.split()
        # "dog images" names the class "dog"; a bare "images" is not a class at all.
        while len(words) > 1 and words[-1].lower() in generic:
            words.pop()
        name = " ".join(words).strip(" '\"`.,")
        if not name or (len(words) == 1 and name.lower() in generic):
            return None
        cleaned.append(name)
    # "ripe vs unripe tomatoes": one-word classes and a last one carrying the shared plural
    # noun of them all.
    last = cleaned[-1].split() if cleaned else []
    if (
        len(cleaned) >= 2
        and len(last) == 2
        and all(len(c.split()) == 1 and not c.lower().endswith("s") for c in cleaned[:-1])
        and last[1].lower().endswith("s")
        and not last[0].lower().endswith("s")
    ):
        cleaned[-1] = last[0]
    deduped: list[str] = []
    seen: set[str] = set()
    for name in cleaned:
        if name.lower() not in seen:
            seen.add(name.lower())
            deduped.append(name)
    return deduped if len(deduped) >= 2 else None


def find_classes(text: str) -> list[str] | None:
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return None

    starts = [t.start() for t in tokens]

    def index_at(pos: int) -> int | None:
        n = bisect.bisect_left(starts, pos)
        return n if n < len(tokens) else None

    def skip_lead_in(n: int) -> int:
        while n < len(tokens) and tokens[n].group().lower() in _LIST_LEAD_IN:
            following = tokens[n + 1].group().lower() if n + 1 < len(tokens) else ""
            if tokens[n].group().lower() == "one" and following in {",", "and", "or", "/"}:
                break  # "the words one, two and three": "one" is the first name, not "one of"
            n += 1
        return n

    candidates: list[tuple[int, int, list[str]]] = []  # (priority, position, names)

    # 0: a run of quoted names anywhere: 'up', 'down', 'left' or 'right'.
    for n, tok in enumerate(tokens):
        if _unquote(tok.group()) is None or (n > 0 and _unquote(tokens[n - 1].group()) is not None):
            continue
        names = _parse_list(tokens, n, text)
        quoted = 0
        for t in tokens[n:]:
            if _unquote(t.group()) is not None:
                quoted += 1
            elif t.group() not in {",", "/", "&"} and (
                t.group().lower() not in _LIST_SEPARATOR_WORDS
            ):
                break
        if names and quoted >= 2:
            candidates.append((0, tok.start(), names))
    # 1: a parenthesised list: (apple, banana, orange).
    for n, tok in enumerate(tokens):
        if tok.group() == "(":
            names = _parse_list(tokens, skip_lead_in(n + 1), text)
            if names:
                candidates.append((1, tok.start(), names))
    # 2: after an explicit cue: into a/b, as 'x' or 'y', classes: a, b, the words yes and no.
    for m in _LIST_CUE.finditer(text):
        at = index_at(m.end())
        if at is not None:
            spoken = re.match(r"(?:key)?words|commands", m.group(), IGNORECASE) is not None
            names = _parse_list(tokens, skip_lead_in(at), text, numbers=spoken)
            if names:
                candidates.append((2, m.start(), names))
    # 2: tell cats from dogs; 3: the door is open or closed.
    for pattern, priority in ((_FROM_PAIR, 2), (_IS_PAIR, 3)):
        for m in pattern.finditer(text):
            found = [g for g in m.groups() if g]
            # A second word that is not part of the name ends it: "dogs in ./pets".
            pair = [
                " ".join(w for w in _until_stop(g.split()) if w.lower() not in _GENERIC_NOUNS)
                or g.split()[0]
                for g in found[:2]
            ]
            if (
                all(w.lower() not in _GENERIC_NOUNS | _PAIR_STOP for w in pair)
                and pair[0].lower() != pair[1].lower()
            ):
                candidates.append((priority, m.start(), pair))
    for n, tok in enumerate(tokens):
        if tok.group() == ":":
            names = _parse_list(tokens, skip_lead_in(n + 1), text)
            if names:
                candidates.append((2, tok.start(), names))
    # 2: a/b/c next to a cue: yes/no keywords, into empty/occupied.
    for m in _SLASH_LIST.finditer(text):
        before = text[max(0, m.start() - 40) : m.start()]
        after = text[m.end() : m.end() + 30]
        if _SLASH_CUE_AFTER.search(after) or _SLASH_CUE_BEFORE.search(before):
            parts = [p.strip() for p in m.group(1).split("/")]
            names = [p for p in parts if p and p.lower() not in _GENERIC_NOUNS]
            if len(names) == len(parts) and len({p.lower() for p in names}) == len(names):
                candidates.append((2, m.start(), names))
    # 2: cat vs dog, cats versus dogs.
    for n, tok in enumerate(tokens):
        if tok.group().lower() in {"vs", "vs.", "versus"} and n > 0:
            start = n - 1
            while (
                start > 0
                and n - start < 3
                and _WORD.fullmatch(tokens[start - 1].group())
                and tokens[start - 1].group().lower() not in LIST_STOP | _VERB_WORDS
            ):
                start -= 1
            names = _parse_list(tokens, start, text)
            if names:
                candidates.append((2, tokens[start].start(), names))
    # 4: a list opening the request ("cats and dogs from data/pets") or any longer comma list.
    names = _parse_list(tokens, skip_lead_in(0), text)
    if names:
        candidates.append((4, 0, names))
    for n, tok in enumerate(tokens[:400]):
        if (n and tokens[n - 1].group() in {",", "/"}) or not _WORD.fullmatch(tok.group()):
            continue
        names = _parse_list(tokens, n, text)
        if names and len(names) >= 3:
            candidates.append((4, tok.start(), names))
    # 3: straight after a verb: recognise cats and dogs.
    for m in _VERB_CUE.finditer(text):
        at = index_at(m.end())
        if at is not None:
            names = _parse_list(tokens, skip_lead_in(at), text)
            if names:
                candidates.append((3, m.start(), names))
    if not candidates:
        return None
    candidates.sort(key=lambda c: (c[0], c[1]))
    return candidates[0][2]


def find_class_count(text: str) -> int | None:
    for m in _COUNT.finditer(text):
        number = to_int(m.group(1))
        if number is not None and 2 <= number <= 1000:
            return number
    return None
