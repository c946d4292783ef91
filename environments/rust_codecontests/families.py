"""Parametrised problem families: where `small`'s held-out problems come from.

A family draws its parameters (divisors, thresholds, bases, letters, window widths, moduli) and one
of its phrasings from a random generator, and returns a `ProblemSpec` whose statement states those
parameters and whose answer depends on them. `prepare` draws the held-out problems, and their
tests, from a secret seed kept in the environment's cache (`heldout.secret_problems`), so the
code shipped here says what kinds of problems exist but not which ones are held out, what their
parameters are, or what their tests hold. The agent sees instances of every family drawn from a
public seed in its valid split.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .problems import ProblemSpec, arr, ints, word

LIST_IN = "The first line holds n (1 <= n <= 1000); the second line holds n integers a_i (|a_i| <= 10^9)."


@dataclass(frozen=True)
class Family:
    name: str
    make: Callable[[random.Random], ProblemSpec]


FAMILIES: list[Family] = []


def family(name: str):
    def wrap(make: Callable[[random.Random], ProblemSpec]) -> Callable[[random.Random], ProblemSpec]:
        FAMILIES.append(Family(name, make))
        return make
    return wrap


def list_gen(lo: int, hi: int, min_n: int = 1, large_n: int = 1000):
    def gen(r: random.Random, big: bool) -> str:
        n = r.randint(min_n, large_n if big else max(min_n, 8))
        return f"{n}\n{arr(r, n, lo, hi)}\n"
    return gen


def spec(family_name: str, r: random.Random, statement: str, input_format: str, output_format: str,
         gen, solve) -> ProblemSpec:
    return ProblemSpec(f"{family_name}_{r.randrange(16 ** 6):06x}", statement, input_format, output_format, gen, solve)


@family("sum_divisible")
def _(r):
    k = r.randint(2, 9)
    text = r.choice([f"Print the sum of those of n integers that are divisible by {k}.",
                     f"Add up every a_i that is a multiple of {k} and print the total (0 if there is none)."])
    return spec("sum_divisible", r, text, LIST_IN, "One integer.", list_gen(-10**9, 10**9),
                lambda s: str(sum(x for x in ints(s)[1:] if x % k == 0)))


@family("count_above")
def _(r):
    t = r.randint(-50, 50)
    text = r.choice([f"Count how many of n integers are strictly greater than {t}.",
                     f"How many values a_i exceed {t}? Print that count."])
    return spec("count_above", r, text, LIST_IN, "One integer.", list_gen(-100, 100),
                lambda s: str(sum(x > t for x in ints(s)[1:])))


@family("max_remainder")
def _(r):
    m = r.randint(3, 97)
    text = f"Print the largest remainder a_i mod {m} over n non-negative integers a_i."
    return spec("max_remainder", r, text,
                "The first line holds n (1 <= n <= 1000); the second line holds n integers 0 <= a_i <= 10^9.",
                "One integer.", list_gen(0, 10**9), lambda s: str(max(x % m for x in ints(s)[1:])))


@family("kth_smallest")
def _(r):
    k = r.randint(1, 4)
    ordinal = {1: "smallest", 2: "second smallest", 3: "third smallest", 4: "fourth smallest"}[k]
    text = f"Print the {ordinal} of n integers (counting equal values separately)."
    return spec("kth_smallest", r, text,
                f"The first line holds n ({k} <= n <= 1000); the second line holds n integers (|a_i| <= 10^9).",
                "One integer.", list_gen(-10**9, 10**9, min_n=k), lambda s: str(sorted(ints(s)[1:])[k - 1]))


@family("power_sum_mod")
def _(r):
    p, mod = r.randint(2, 4), r.choice([997, 10007, 65537, 1000003])
    text = f"Print the sum of a_i^{p} over n integers, modulo {mod} (a non-negative result)."
    return spec("power_sum_mod", r, text, LIST_IN, "One integer.", list_gen(-10**9, 10**9),
                lambda s: str(sum(pow(x, p, mod) for x in ints(s)[1:]) % mod))


@family("close_neighbours")
def _(r):
    d = r.randint(0, 9)
    text = (f"Count the positions i (1 <= i < n) where the neighbours a_i and a_(i+1) differ by at most {d} "
            f"(in absolute value).")
    return spec("close_neighbours", r, text, LIST_IN, "One integer.", list_gen(-20, 20),
                lambda s: (lambda a: str(sum(abs(a[i] - a[i + 1]) <= d for i in range(len(a) - 1))))(ints(s)[1:]))


@family("window_sum")
def _(r):
    w = r.randint(2, 6)
    text = f"Print the largest sum of {w} consecutive elements of a list of n integers."
    return spec("window_sum", r, text,
                f"The first line holds n ({w} <= n <= 1000); the second line holds n integers (|a_i| <= 10^9).",
                "One integer.", list_gen(-10**9, 10**9, min_n=w),
                lambda s: (lambda a: str(max(sum(a[i:i + w]) for i in range(len(a) - w + 1))))(ints(s)[1:]))


@family("multiples_up_to")
def _(r):
    a, b = r.sample(range(2, 30), 2)
    text = r.choice([f"Count the integers x with 1 <= x <= n that are divisible by {a} or by {b}.",
                     f"How many of 1, 2, ..., n are multiples of {a}, of {b}, or of both?"])

    def solve(s):
        n, g = int(s), a * b // __import__("math").gcd(a, b)
        return str(n // a + n // b - n // g)
    return spec("multiples_up_to", r, text, "One integer n (1 <= n <= 10^18).", "One integer.",
                lambda q, big: f"{q.randint(1, 10**18 if big else 100)}\n", solve)


@family("digit_sum_base")
def _(r):
    base = r.choice([2, 3, 5, 7, 8, 9, 11, 12, 16])

    def solve(s):
        n, total = int(s), 0
        while n:
            n, d = divmod(n, base)
            total += d
        return str(total)
    text = f"Write n in base {base} and print the sum of its digits (as decimal numbers)."
    return spec("digit_sum_base", r, text, "One integer n (0 <= n <= 10^18).", "One integer.",
                lambda q, big: f"{q.randint(0, 10**18 if big else 500)}\n", solve)


@family("recurrence")
def _(r):
    x0, x1, a, b = r.randint(0, 9), r.randint(0, 9), r.randint(1, 5), r.randint(1, 5)
    mod = r.choice([1000, 10007, 1000000007])

    def solve(s):
        u, v = x0, x1
        for _ in range(int(s)):
            u, v = v, (a * v + b * u) % mod
        return str(u % mod)
    text = (f"A sequence has f(0) = {x0}, f(1) = {x1} and f(i) = {a}*f(i-1) + {b}*f(i-2). "
            f"Print f(n) modulo {mod}.")
    return spec("recurrence", r, text, "One integer n (0 <= n <= 10^6).", "One integer.",
                lambda q, big: f"{q.randint(0, 10**6 if big else 20)}\n", solve)


@family("is_power")
def _(r):
    k = r.randint(2, 10)

    def gen(q, big):
        if q.random() < 0.5:
            return f"{k ** q.randint(0, 17 if big else 5)}\n"
        return f"{q.randint(1, 10**18 if big else 200)}\n"

    def solve(s):
        n = int(s)
        while n % k == 0:
            n //= k
        return "YES" if n == 1 else "NO"
    text = f"Decide whether n is a power of {k} (k^0 = 1 counts)."
    return spec("is_power", r, text, "One integer n (1 <= n <= 10^18).", "YES or NO.", gen, solve)


WORD_IN = "One line with a string s of 1 to 1000 lowercase English letters."


def word_gen(letters: str = "abcdefghijklmnopqrstuvwxyz"):
    return lambda q, big: word(q, q.randint(1, 1000 if big else 10), letters) + "\n"


@family("letter_count")
def _(r):
    c = r.choice("abcdefghijklmnopqrstuvwxyz")
    pool = "".join(sorted(set(c + "".join(r.sample("abcdefghijklmnopqrstuvwxyz", 3)))))
    text = r.choice([f"Count the occurrences of the letter '{c}' in s.", f"How many times does '{c}' appear in s?"])
    return spec("letter_count", r, text, WORD_IN, "One integer.", word_gen(pool), lambda s: str(s.strip().count(c)))


@family("shift_back")
def _(r):
    k = r.randint(1, 25)
    text = f"Move every letter of s back by {k} places in the alphabet, wrapping from a to z."
    return spec("shift_back", r, text, WORD_IN, "The shifted string.", word_gen(),
                lambda s: "".join(chr((ord(ch) - 97 - k) % 26 + 97) for ch in s.strip()))


@family("longest_run_of")
def _(r):
    c = r.choice("abc")
    text = f"Print the length of the longest block of consecutive '{c}' letters in s (0 if there is none)."

    def solve(s):
        best = run = 0
        for ch in s.strip():
            run = run + 1 if ch == c else 0
            best = max(best, run)
        return str(best)
    return spec("longest_run_of", r, text, WORD_IN, "One integer.", word_gen("abc"), solve)


@family("replace_every_kth")
def _(r):
    k, c = r.randint(2, 5), r.choice("xyz")
    text = f"Replace every {k}-th letter of s (positions {k}, {2 * k}, ... counted from 1) by '{c}'."
    return spec("replace_every_kth", r, text, WORD_IN, "The new string.", word_gen("abcdef"),
                lambda s: "".join(c if (i + 1) % k == 0 else ch for i, ch in enumerate(s.strip())))


@family("rows_above")
def _(r):
    t = r.randint(-20, 40)

    def gen(q, big):
        rows, cols = q.randint(1, 100 if big else 4), q.randint(1, 100 if big else 4)
        return f"{rows} {cols}\n" + "".join(arr(q, cols, -9, 20) + "\n" for _ in range(rows))

    def solve(s):
        rows, cols, *a = ints(s)
        return str(sum(sum(a[i * cols:(i + 1) * cols]) > t for i in range(rows)))
    text = f"Count the rows of an r x c matrix whose sum is greater than {t}."
    return spec("rows_above", r, text,
                "The first line holds r and c (1 <= r, c <= 100); each of the next r lines holds c integers.",
                "One integer.", gen, solve)


def draw(rng: random.Random, n: int) -> list[ProblemSpec]:
    """n problems, the families taken in turn (each round in a shuffled order), parameters from rng."""
    out: list[ProblemSpec] = []
    while len(out) < n:
        order = list(FAMILIES)
        rng.shuffle(order)
        out += [f.make(rng) for f in order[:n - len(out)]]
    names = [p.name for p in out]
    if len(set(names)) != len(names):  # a 24-bit name collision: draw the clashing one again
        return draw(rng, n)
    return out
