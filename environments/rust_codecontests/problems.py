"""The offline problem set (`small`), in the CodeContests record format, with tests generated here.

Each problem has a statement, a random input generator and a brute-force reference solution in
Python; the expected outputs of every test are the reference's outputs on generated inputs, so the
tests are exactly as correct as these short references.

* Visible (`visible_splits`, public seeds, the same on every machine): train = the 42 fixed problems
  below, with all their tests; valid = two instances of every family in `families.py`.
* Held out (`heldout`): instances of those families whose parameters, phrasing, names and tests are
  all drawn from a secret that `prepare` creates in the environment's cache. Nothing in this
  package reproduces them without that secret.
"""

from __future__ import annotations

import functools
import json
import random
import zlib
from collections import Counter, deque
from dataclasses import dataclass
from itertools import combinations
from typing import Callable

MOD = 1_000_000_007
N_PUBLIC, N_PRIVATE = 2, 8
PUBLIC_SEED = b"rebench-rust-visible"  # the valid split's family instances: public on purpose


@dataclass(frozen=True)
class ProblemSpec:
    name: str
    statement: str
    input_format: str
    output_format: str
    gen: Callable[[random.Random, bool], str]  # (rng, large) -> one input
    solve: Callable[[str], str]                 # input -> expected output


SPECS: list[ProblemSpec] = []


def problem(name: str, statement: str, input_format: str, output_format: str):
    def wrap(make: Callable[[], tuple[Callable, Callable]]) -> None:  # `make` returns (gen, solve)
        SPECS.append(ProblemSpec(name, statement, input_format, output_format, *make()))
    return wrap


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split()]


def arr(rng: random.Random, n: int, lo: int, hi: int) -> str:
    return " ".join(str(rng.randint(lo, hi)) for _ in range(n))


def word(rng: random.Random, n: int, letters: str = "abcdefghijklmnopqrstuvwxyz") -> str:
    return "".join(rng.choice(letters) for _ in range(n))


def n_and_list(lo: int, hi: int, small: int = 8, large: int = 1000):
    return lambda r, big: (lambda n: f"{n}\n{arr(r, n, lo, hi)}\n")(r.randint(1, large if big else small))


def lines(values) -> str:
    return "\n".join(str(v) for v in values)


# -- numbers ---------------------------------------------------------------------------------------

@problem("sum_of_two", "Print the sum of two integers a and b.",
         "One line with two integers a and b (-10^17 <= a, b <= 10^17).", "One integer: a + b.")
def _():
    return (lambda r, big: f"{r.randint(-10**17, 10**17) if big else r.randint(-99, 99)} "
                           f"{r.randint(-10**17, 10**17) if big else r.randint(-99, 99)}\n",
            lambda s: str(sum(ints(s))))


@problem("gcd_pair", "Print the greatest common divisor of two positive integers.",
         "One line with two integers a and b (1 <= a, b <= 10^12).", "One integer: gcd(a, b).")
def _():
    def gen(r, big):
        g = r.randint(1, 10**4 if big else 12)
        return f"{g * r.randint(1, 10**8 if big else 20)} {g * r.randint(1, 10**8 if big else 20)}\n"

    def solve(s):
        a, b = ints(s)
        while b:
            a, b = b, a % b
        return str(a)
    return gen, solve


@problem("lcm_pair", "Print the least common multiple of two positive integers.",
         "One line with two integers a and b (1 <= a, b <= 10^9).", "One integer: lcm(a, b).")
def _():
    def solve(s):
        a, b = ints(s)
        x, y = a, b
        while y:
            x, y = y, x % y
        return str(a // x * b)
    return (lambda r, big: f"{r.randint(1, 10**9 if big else 30)} {r.randint(1, 10**9 if big else 30)}\n", solve)


@problem("is_prime", "Decide whether n is a prime number.",
         "One integer n (1 <= n <= 10^12).", "YES if n is prime, NO otherwise.")
def _():
    def prime(n):
        return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))

    def gen(r, big):
        if big and r.random() < 0.5:
            return f"{r.choice([999999999989, 1000000007, 998244353, 999999000001, 10**12])}\n"
        return f"{r.randint(1, 10**6 if big else 50)}\n"
    return gen, lambda s: "YES" if prime(int(s)) else "NO"


@problem("count_primes", "Count the prime numbers that are less than or equal to n.",
         "One integer n (1 <= n <= 10^6).", "One integer: the number of primes p <= n.")
def _():
    def solve(s):
        n = int(s)
        sieve = bytearray([1]) * (n + 1)
        sieve[:2] = b"\x00\x00"[: n + 1]
        for i in range(2, int(n ** 0.5) + 1):
            if sieve[i]:
                sieve[i * i::i] = bytearray(len(range(i * i, n + 1, i)))
        return str(sum(sieve))
    return (lambda r, big: f"{r.randint(1, 10**6 if big else 40)}\n", solve)


@problem("factorial_mod", "Print n! modulo 1000000007.", "One integer n (0 <= n <= 10^6).",
         "One integer: n! mod 1000000007.")
def _():
    def solve(s):
        out = 1
        for i in range(2, int(s) + 1):
            out = out * i % MOD
        return str(out)
    return (lambda r, big: f"{r.randint(0, 10**6 if big else 12)}\n", solve)


@problem("fibonacci_mod", "F(0) = 0, F(1) = 1 and F(n) = F(n-1) + F(n-2). Print F(n) modulo 1000000007.",
         "One integer n (0 <= n <= 10^6).", "One integer: F(n) mod 1000000007.")
def _():
    def solve(s):
        a, b = 0, 1
        for _ in range(int(s)):
            a, b = b, (a + b) % MOD
        return str(a)
    return (lambda r, big: f"{r.randint(0, 10**6 if big else 30)}\n", solve)


@problem("digit_sum", "Print the sum of the decimal digits of n.", "One integer n (0 <= n <= 10^18).",
         "One integer: the digit sum of n.")
def _():
    return (lambda r, big: f"{r.randint(0, 10**18 if big else 999)}\n", lambda s: str(sum(map(int, s.strip()))))


@problem("digital_root", "Repeatedly replace n by the sum of its decimal digits until it has one digit; "
         "print that digit.", "One integer n (0 <= n <= 10^18).", "One digit: the digital root of n.")
def _():
    def solve(s):
        n = int(s)
        while n >= 10:
            n = sum(map(int, str(n)))
        return str(n)
    return (lambda r, big: f"{r.randint(0, 10**18 if big else 999)}\n", solve)


@problem("to_binary", "Print n in binary, without leading zeros.", "One integer n (0 <= n <= 10^18).",
         "The binary representation of n (\"0\" for n = 0).")
def _():
    return (lambda r, big: f"{r.randint(0, 10**18 if big else 40)}\n", lambda s: bin(int(s))[2:])


@problem("leap_year", "A year is a leap year if it is divisible by 4, except years divisible by 100 that are "
         "not divisible by 400. Decide whether year y is a leap year.", "One integer y (1 <= y <= 10^9).",
         "YES or NO.")
def _():
    def gen(r, big):
        return f"{r.choice([r.randint(1, 10**9), 400 * r.randint(1, 10**6), 100 * r.randint(1, 10**6)]) if big else r.randint(1890, 2030)}\n"

    def solve(s):
        y = int(s)
        return "YES" if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else "NO"
    return gen, solve


@problem("seconds_to_clock", "Convert a number of seconds into hours, minutes and seconds.",
         "One integer s (0 <= s <= 10^9).",
         "H:MM:SS where H is the number of whole hours (no leading zeros) and MM, SS have two digits.")
def _():
    def solve(s):
        t = int(s)
        return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"
    return (lambda r, big: f"{r.randint(0, 10**9 if big else 10**4)}\n", solve)


@problem("coin_count", "Coins have values 1, 5, 10 and 25. Print the smallest number of coins that add up to n.",
         "One integer n (0 <= n <= 10^12).", "One integer: the fewest coins.")
def _():
    def solve(s):
        n, count = int(s), 0
        for c in (25, 10, 5, 1):
            count += n // c
            n %= c
        return str(count)
    return (lambda r, big: f"{r.randint(0, 10**12 if big else 99)}\n", solve)


@problem("stair_ways", "You climb a staircase of n steps, 1 or 2 steps at a time. Print the number of different "
         "ways to reach the top, modulo 1000000007.", "One integer n (1 <= n <= 10^6).",
         "One integer: the number of ways mod 1000000007.")
def _():
    def solve(s):
        a, b = 1, 1
        for _ in range(int(s)):
            a, b = b, (a + b) % MOD
        return str(a)
    return (lambda r, big: f"{r.randint(1, 10**6 if big else 20)}\n", solve)


@problem("triangle_kind", "Given three side lengths, say what kind of triangle they make. A triangle is valid "
         "when each side is strictly shorter than the sum of the other two.",
         "One line with three integers a, b, c (1 <= a, b, c <= 10^9).",
         "One word: equilateral, isosceles, scalene, or invalid.")
def _():
    def gen(r, big):
        hi = 10**9 if big else 6
        a = r.randint(1, hi)
        return " ".join(str(x) for x in r.choice([(a, a, a), (a, a, r.randint(1, hi)),
                                                   (r.randint(1, hi), r.randint(1, hi), r.randint(1, hi))])) + "\n"

    def solve(s):
        a, b, c = sorted(ints(s))
        if a + b <= c:
            return "invalid"
        return "equilateral" if a == c else "isosceles" if a == b or b == c else "scalene"
    return gen, solve


# -- arrays ----------------------------------------------------------------------------------------

LIST_IN = "The first line holds n (1 <= n <= 1000); the second line holds n integers a_i (|a_i| <= 10^9)."


@problem("max_element", "Print the largest of n integers.", LIST_IN, "One integer: the maximum.")
def _():
    return n_and_list(-10**9, 10**9), lambda s: str(max(ints(s)[1:]))


@problem("range_width", "Print the difference between the largest and the smallest of n integers.", LIST_IN,
         "One integer: max - min.")
def _():
    return n_and_list(-10**9, 10**9), lambda s: (lambda a: str(max(a) - min(a)))(ints(s)[1:])


@problem("count_even", "Count how many of n integers are even.", LIST_IN, "One integer.")
def _():
    return n_and_list(-10**9, 10**9), lambda s: str(sum(x % 2 == 0 for x in ints(s)[1:]))


@problem("sort_numbers", "Print n integers in non-decreasing order.", LIST_IN,
         "One line with the n integers sorted, separated by spaces.")
def _():
    return n_and_list(-10**9, 10**9), lambda s: " ".join(map(str, sorted(ints(s)[1:])))


@problem("count_distinct", "Count the distinct values among n integers.", LIST_IN, "One integer.")
def _():
    return n_and_list(-5, 5, large=1000), lambda s: str(len(set(ints(s)[1:])))


@problem("second_largest", "Print the second largest distinct value among n integers, or -1000000001 if all "
         "values are equal.", LIST_IN, "One integer.")
def _():
    def solve(s):
        values = sorted(set(ints(s)[1:]))
        return str(values[-2] if len(values) > 1 else -1000000001)
    return n_and_list(-3, 3, small=4), solve


@problem("most_frequent", "Print the value that occurs most often among n integers; on a tie, the smallest such "
         "value.", LIST_IN, "One integer.")
def _():
    def solve(s):
        counts = Counter(ints(s)[1:])
        best = max(counts.values())
        return str(min(v for v, c in counts.items() if c == best))
    return n_and_list(-4, 4), solve


@problem("max_subarray", "Print the largest sum of a non-empty contiguous subarray of n integers.", LIST_IN,
         "One integer.")
def _():
    def solve(s):
        a = ints(s)[1:]
        return str(max(sum(a[i:j + 1]) for i in range(len(a)) for j in range(i, len(a))))
    return n_and_list(-10**9, 10**9, large=150), solve


@problem("longest_increasing_run", "Print the length of the longest contiguous run of strictly increasing "
         "values among n integers.", LIST_IN, "One integer.")
def _():
    def solve(s):
        a = ints(s)[1:]
        best = max(j - i + 1 for i in range(len(a)) for j in range(i, len(a))
                   if all(a[k] < a[k + 1] for k in range(i, j)))
        return str(best)
    return n_and_list(-5, 5, large=120), solve


@problem("pair_sum_count", "Count the pairs of positions i < j with a_i + a_j = k.",
         "The first line holds n and k (1 <= n <= 1000, |k| <= 10^9); the second holds n integers (|a_i| <= 10^9).",
         "One integer: the number of pairs.")
def _():
    def gen(r, big):
        n = r.randint(1, 300 if big else 8)
        return f"{n} {r.randint(-4, 4)}\n{arr(r, n, -3, 3)}\n"

    def solve(s):
        n, k, *a = ints(s)
        return str(sum(1 for i, j in combinations(range(n), 2) if a[i] + a[j] == k))
    return gen, solve


@problem("inversions", "Count the pairs of positions i < j with a_i > a_j.", LIST_IN, "One integer.")
def _():
    def solve(s):
        a = ints(s)[1:]
        return str(sum(1 for i, j in combinations(range(len(a)), 2) if a[i] > a[j]))
    return n_and_list(-10**9, 10**9, large=300), solve


@problem("range_sums", "Answer q queries: each asks for the sum a_l + ... + a_r (1-based, inclusive).",
         "The first line holds n and q (1 <= n, q <= 10^5); the second holds n integers (|a_i| <= 10^9); "
         "each of the next q lines holds l and r (1 <= l <= r <= n).", "q lines, one sum each.")
def _():
    def gen(r, big):
        n, q = r.randint(1, 2000 if big else 6), r.randint(1, 2000 if big else 4)
        qs = [sorted((r.randint(1, n), r.randint(1, n))) for _ in range(q)]
        return f"{n} {q}\n{arr(r, n, -10**9, 10**9)}\n" + "".join(f"{x} {y}\n" for x, y in qs)

    def solve(s):
        data = ints(s)
        n, q = data[:2]
        a = data[2:2 + n]
        rest = data[2 + n:]
        return lines(sum(a[rest[2 * i] - 1:rest[2 * i + 1]]) for i in range(q))
    return gen, solve


@problem("rotate_right", "Rotate a list of n integers to the right by k positions.",
         "The first line holds n and k (1 <= n <= 1000, 0 <= k <= 10^9); the second holds n integers.",
         "One line with the rotated list, separated by spaces.")
def _():
    def gen(r, big):
        n = r.randint(1, 1000 if big else 6)
        return f"{n} {r.randint(0, 10**9 if big else 10)}\n{arr(r, n, -99, 99)}\n"

    def solve(s):
        n, k, *a = ints(s)
        k %= n
        return " ".join(map(str, a[n - k:] + a[:n - k]))
    return gen, solve


@problem("knapsack", "Choose a subset of n items with total weight at most W and the largest total value; "
         "print that value.",
         "The first line holds n and W (1 <= n <= 15, 1 <= W <= 10^9); each of the next n lines holds the weight "
         "and value of an item (1 <= w, v <= 10^9).", "One integer: the best total value.")
def _():
    def gen(r, big):
        n = r.randint(1, 15 if big else 4)
        hi = 10**9 if big else 10
        return f"{n} {r.randint(1, hi * 3)}\n" + "".join(f"{r.randint(1, hi)} {r.randint(1, hi)}\n" for _ in range(n))

    def solve(s):
        n, cap, *rest = ints(s)
        items = [(rest[2 * i], rest[2 * i + 1]) for i in range(n)]
        best = 0
        for mask in range(1 << n):
            w = sum(items[i][0] for i in range(n) if mask >> i & 1)
            if w <= cap:
                best = max(best, sum(items[i][1] for i in range(n) if mask >> i & 1))
        return str(best)
    return gen, solve


@problem("transpose", "Print the transpose of an r x c matrix.",
         "The first line holds r and c (1 <= r, c <= 100); each of the next r lines holds c integers.",
         "c lines of r integers each, separated by spaces.")
def _():
    def gen(r, big):
        rows, cols = r.randint(1, 100 if big else 3), r.randint(1, 100 if big else 3)
        return f"{rows} {cols}\n" + "".join(arr(r, cols, -9, 99) + "\n" for _ in range(rows))

    def solve(s):
        rows, cols, *a = ints(s)
        return lines(" ".join(str(a[i * cols + j]) for i in range(rows)) for j in range(cols))
    return gen, solve


@problem("count_islands", "A grid has land '#' and water '.'. Count the islands: groups of land cells connected "
         "through shared sides.",
         "The first line holds r and c (1 <= r, c <= 100); each of the next r lines holds c characters '#' or '.'.",
         "One integer: the number of islands.")
def _():
    def gen(r, big):
        rows, cols = r.randint(1, 60 if big else 4), r.randint(1, 60 if big else 5)
        return f"{rows} {cols}\n" + "".join(word(r, cols, "#..") + "\n" for _ in range(rows))

    def solve(s):
        head, *grid = s.split()
        rows, cols = int(head), int(grid.pop(0))
        seen, count = set(), 0
        for i in range(rows):
            for j in range(cols):
                if grid[i][j] == "#" and (i, j) not in seen:
                    count += 1
                    todo = deque([(i, j)])
                    seen.add((i, j))
                    while todo:
                        x, y = todo.popleft()
                        for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                            if 0 <= nx < rows and 0 <= ny < cols and grid[nx][ny] == "#" and (nx, ny) not in seen:
                                seen.add((nx, ny))
                                todo.append((nx, ny))
        return str(count)
    return gen, solve


# -- strings ---------------------------------------------------------------------------------------

WORD_IN = "One line with a string s of 1 to 1000 lowercase English letters."


@problem("reverse_string", "Print the string s reversed.", WORD_IN, "The reversed string.")
def _():
    return (lambda r, big: word(r, r.randint(1, 1000 if big else 8)) + "\n", lambda s: s.strip()[::-1])


@problem("palindrome", "Decide whether s reads the same forwards and backwards.", WORD_IN, "YES or NO.")
def _():
    def gen(r, big):
        half = word(r, r.randint(1, 500 if big else 4), "ab")
        return r.choice([half + half[::-1], half + half[-2::-1] if len(half) > 1 else half, half]) + "\n"
    return gen, lambda s: "YES" if s.strip() == s.strip()[::-1] else "NO"


@problem("count_vowels", "Count the vowels (a, e, i, o, u) in s.", WORD_IN, "One integer.")
def _():
    return (lambda r, big: word(r, r.randint(1, 1000 if big else 10)) + "\n",
            lambda s: str(sum(c in "aeiou" for c in s)))


@problem("run_length", "Encode s by replacing each maximal run of one letter by the letter followed by the "
         "run's length (for example aaabcc becomes a3b1c2).", WORD_IN, "The encoded string.")
def _():
    def solve(s):
        s, out, i = s.strip(), [], 0
        while i < len(s):
            j = i
            while j < len(s) and s[j] == s[i]:
                j += 1
            out.append(f"{s[i]}{j - i}")
            i = j
        return "".join(out)
    return (lambda r, big: word(r, r.randint(1, 1000 if big else 8), "aab") + "\n", solve)


@problem("caesar_shift", "Shift every letter of s forward by k places in the alphabet, wrapping from z to a.",
         "The first line holds k (0 <= k <= 10^9); the second holds s (1 to 1000 lowercase letters).",
         "The shifted string.")
def _():
    def solve(s):
        k, text = s.split()
        return "".join(chr((ord(c) - 97 + int(k)) % 26 + 97) for c in text)
    return (lambda r, big: f"{r.randint(0, 10**9 if big else 30)}\n{word(r, r.randint(1, 1000 if big else 8))}\n",
            solve)


@problem("anagrams", "Decide whether two strings are anagrams (the same letters, counted with multiplicity).",
         "Two lines, each with a string of 1 to 1000 lowercase letters.", "YES or NO.")
def _():
    def gen(r, big):
        a = word(r, r.randint(1, 1000 if big else 6), "abc")
        b = list(a)
        r.shuffle(b)
        if r.random() < 0.4:
            b[r.randrange(len(b))] = r.choice("abcd")
        return f"{a}\n{''.join(b)}\n"

    def solve(s):
        a, b = s.split()
        return "YES" if sorted(a) == sorted(b) else "NO"
    return gen, solve


@problem("balanced_brackets", "Decide whether a string of the brackets ()[]{} is balanced: every opening bracket "
         "is closed by the matching bracket in the right order.",
         "One line with a string of 1 to 1000 characters from ()[]{}.", "YES or NO.")
def _():
    def gen(r, big):
        n = r.randint(1, 500 if big else 4)
        out, stack = [], []
        for _ in range(2 * n):
            if stack and r.random() < 0.5:
                out.append(")]}"["([{".index(stack.pop())])
            else:
                stack.append(r.choice("([{"))
                out.append(stack[-1])
        out += [")]}"["([{".index(c)] for c in reversed(stack)]
        if r.random() < 0.5:
            out[r.randrange(len(out))] = r.choice("()[]{}")
        return "".join(out) + "\n"

    def solve(s):
        stack = []
        for c in s.strip():
            if c in "([{":
                stack.append(c)
            elif not stack or "([{".index(stack.pop()) != ")]}".index(c):
                return "NO"
        return "NO" if stack else "YES"
    return gen, solve


@problem("word_count", "Count the words in a line; words are separated by one or more spaces.",
         "One line of at most 1000 characters: lowercase letters and spaces (at least one letter).",
         "One integer.")
def _():
    def gen(r, big):
        words = [word(r, r.randint(1, 8)) for _ in range(r.randint(1, 100 if big else 5))]
        return "".join(w + " " * r.randint(1, 3) for w in words).strip() + "\n"
    return gen, lambda s: str(len(s.split()))


@problem("capitalize_words", "Capitalise the first letter of every word of a line; words are separated by "
         "single spaces.", "One line of at most 1000 characters: lowercase words separated by single spaces.",
         "The line with every word capitalised.")
def _():
    def gen(r, big):
        return " ".join(word(r, r.randint(1, 8)) for _ in range(r.randint(1, 100 if big else 5))) + "\n"
    return gen, lambda s: " ".join(w[0].upper() + w[1:] for w in s.split())


@problem("common_prefix", "Print the longest common prefix of n strings, or - if it is empty.",
         "The first line holds n (1 <= n <= 100); each of the next n lines holds a string of 1 to 100 lowercase "
         "letters.", "The longest common prefix, or -.")
def _():
    def gen(r, big):
        stem = word(r, r.randint(0, 20 if big else 3), "ab")
        n = r.randint(1, 100 if big else 4)
        return f"{n}\n" + "".join(stem + word(r, r.randint(1 if not stem else 0, 5), "ab") + "\n" for _ in range(n))

    def solve(s):
        words = s.split()[1:]
        prefix = words[0]
        for w in words[1:]:
            while not w.startswith(prefix):
                prefix = prefix[:-1]
        return prefix or "-"
    return gen, solve


@problem("palindromic_substrings", "Count the non-empty substrings of s (by position) that are palindromes.",
         "One line with a string s of 1 to 200 lowercase letters.", "One integer.")
def _():
    def solve(s):
        s = s.strip()
        return str(sum(s[i:j] == s[i:j][::-1] for i in range(len(s)) for j in range(i + 1, len(s) + 1)))
    return (lambda r, big: word(r, r.randint(1, 200 if big else 6), "ab") + "\n", solve)


def _tests(spec: ProblemSpec, rng: random.Random) -> tuple[list[str], list[str]]:
    public = [spec.gen(rng, False) for _ in range(N_PUBLIC)]
    private = [spec.gen(rng, i % 2 == 1) for i in range(N_PRIVATE)]
    return public, private


def description(spec: ProblemSpec, example_in: str, example_out: str) -> str:
    return (f"{spec.statement}\n\nInput\n\n{spec.input_format}\n\nOutput\n\n{spec.output_format}\n\n"
            f"Example\n\nInput\n\n{example_in.rstrip()}\n\nOutput\n\n{example_out}\n")


def to_record(spec: ProblemSpec, rng: random.Random) -> dict:
    """A problem in the record format shared with the CodeContests loader, its tests drawn from rng."""
    public, private = _tests(spec, rng)
    public_out = [spec.solve(x) for x in public]
    return {"name": spec.name, "description": description(spec, public[0], public_out[0]),
            "public_tests": {"input": public, "output": public_out},
            "private_tests": {"input": private, "output": [spec.solve(x) for x in private]},
            "time_limit_s": 2.0, "memory_limit_mb": 256, "source": "rebench-offline"}


def visible_splits() -> dict[str, list[dict]]:
    """What the agent may see, all of it built from public seeds: train holds the fixed problems
    above, valid two instances of every held-out family (fresh copies each call)."""
    return {split: [json.loads(line) for line in lines] for split, lines in _visible().items()}


def heldout(secret: bytes, n: int) -> list[dict]:
    """The held-out test problems: n family instances and their tests, all drawn from `secret`."""
    from .families import draw

    specs = draw(random.Random(b"problems:" + secret), n)
    return [to_record(s, random.Random(b"tests:" + secret + s.name.encode())) for s in specs]


@functools.lru_cache(maxsize=1)
def _visible() -> dict[str, tuple[str, ...]]:
    from .families import FAMILIES, draw

    fixed = sorted(SPECS, key=lambda s: s.name)
    train = [to_record(s, random.Random(zlib.crc32(s.name.encode()))) for s in fixed]
    valid = [to_record(s, random.Random(PUBLIC_SEED + s.name.encode()))
             for s in draw(random.Random(PUBLIC_SEED), 2 * len(FAMILIES))]
    return {"train": tuple(json.dumps(r) for r in train), "valid": tuple(json.dumps(r) for r in valid)}
