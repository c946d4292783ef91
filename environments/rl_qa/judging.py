"""The pairwise judge's prompt and how its answers are read: shared by the scorer and the agent's
evaluation helper (copied into the workspace as `solution/judging.py`). Standard library only.

Each pair is asked in both orders (x as A, then y as A) to cancel the judge's position bias. A
verdict is "A", "B" or None (unreadable). For one pair, x's win is the mean over the two orders
of 1 (x preferred), 0 (y preferred) or 0.5 (unreadable); the judge agrees with itself on a pair
when both orders prefer the same response.

Two rules keep a response from gaming a weak judge (both also apply to the agent's helper):
* the judge's own markers ("Instruction:", "Response A:", the question) are struck from responses
  before they are shown, so a response cannot pose as the prompt or as the other response;
* a response that parrots the instruction (most of it is the instruction's words, in order) loses
  its pair without a judge call, unless both responses do (then the judge decides).
"""

import difflib
import re

SYSTEM = "You are a careful judge of how well a response follows an instruction."
TEMPLATE = ("Instruction:\n{instruction}\n\n"
            "Response A:\n{a}\n\n"
            "Response B:\n{b}\n\n"
            "Which response follows the instruction better and is more helpful? "
            "Answer with a single letter: A or B.")
MAX_TOKENS = 3
_VERDICT = re.compile(r"\b([AB])\b")


_MARKERS = re.compile(r"(?i)\b(?:instruction|response\s*[ab12])\s*:|which response follows the instruction"
                      r"|answer with a single letter")
_WORDS = re.compile(r"[a-z0-9]+")


def sanitize(text):
    """The response as the judge sees it: the judge's own markers struck out."""
    return _MARKERS.sub("[...]", text or "")


def parrots(instruction, response):
    """Whether `response` mostly repeats `instruction`: at least 60% of the instruction's words
    appear in it in order, and they make up at least half of the response."""
    ins, res = _WORDS.findall(instruction.lower()), _WORDS.findall((response or "").lower())
    if len(ins) < 3 or not res:
        return False
    matched = sum(b.size for b in difflib.SequenceMatcher(None, ins, res, autojunk=False).get_matching_blocks())
    return matched >= 0.6 * len(ins) and matched >= 0.5 * len(res)


def forced_win(instruction, x, y):
    """x's win decided without the judge (identical responses tie; a parrot loses), or None."""
    if x.strip() == y.strip():
        return 0.5
    px, py = parrots(instruction, x), parrots(instruction, y)
    return None if px == py else (0.0 if px else 1.0)


def messages(instruction, a, b):
    a, b = sanitize(a), sanitize(b)
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": TEMPLATE.format(instruction=instruction, a=a or "(empty)", b=b or "(empty)")}]


def parse_verdict(text):
    """'A', 'B' or None: the first standalone A or B in the judge's reply."""
    match = _VERDICT.search((text or "").strip().upper().replace("*", " "))
    return match.group(1) if match else None


def combine(first, second):
    """x's win from the verdicts with x as A (`first`) and x as B (`second`), and whether the
    two orders agree (None when either verdict is unreadable)."""
    def vote(verdict, x_letter):
        return 0.5 if verdict is None else (1.0 if verdict == x_letter else 0.0)

    win = (vote(first, "A") + vote(second, "B")) / 2
    agree = None if first is None or second is None else (first == "A") == (second == "B")
    return win, agree
