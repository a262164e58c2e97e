"""Tables of hostile and broken inputs, shared by the hardening tests (tests/test_hardening*.py).

Every generator is deterministic: a case's index picks its digits, so a leak found in an output
names the case that leaked.
"""

from __future__ import annotations

import re
import unicodedata

_FULL = str.maketrans("0123456789+-()", "０１２３４５６７８９＋－（）")


def _cn(k: int) -> tuple[str, str, str]:
    """Groups of a mainland mobile number unique to case ``k``: 139 / 7kkk / 5kkk shaped."""
    return "139", f"7{k % 1000:03d}", f"5{(k * 7) % 1000:03d}"


#: how people type a mainland mobile number (a, b, c are its 3-4-4 groups)
CN_FORMS: tuple[str, ...] = (
    "{a}{b}{c}", "{a} {b} {c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "{a}-{b}{c}", "{a} {b}{c}",
    "{a}{b} {c}", "({a}){b}{c}", "+86 {a} {b} {c}", "+86-{a}-{b}-{c}", "+86{a}{b}{c}",
    "+86 {a}{b}{c}", "86{a}{b}{c}", "86 {a}{b}{c}", "86-{a}-{b}-{c}", "0086 {a} {b} {c}",
    "0086{a}{b}{c}", "(+86) {a}-{b}-{c}", "(86){a}{b}{c}", "+86 ({a}) {b}-{c}", "tel:{a}{b}{c}",
    "电话{a}{b}{c}谢谢", "手机：{a}-{b}-{c}。", "{a}\u00a0{b}\u00a0{c}", "FW:{fa}{fb}{fc}",
    "FW:{fa}－{fb}－{fc}", "FW:＋８６ {fa} {fb} {fc}", "{a} - {b} - {c}", "{a}/{b}/{c}",
)

#: international and landline numbers (k = case index, 4 digits)
OTHER_FORMS: tuple[str, ...] = (
    "+44 7700 9{k3}", "+44 (0)20 7946 {k4}", "0044 20 7946 {k4}", "+1 (415) 555-{k4}",
    "+1-415-555-{k4}", "+1.415.555.{k4}", "+49 30 1234{k4}", "+852 9123 {k4}", "+81 90-1234-{k4}",
    "+33 6 12 34 {k2} {k2}", "010-6234{k4}", "(010) 6234 {k4}", "0755-8{k3}1234", "021 6234 {k4}",
    "+86 10 6234 {k4}", "+86 (21) 6234-{k4}", "00 44 7700 9{k3}",
)


def phone_cases() -> list[tuple[str, str]]:
    """(typed form, its digits as dialled) for every form, each with its own number."""
    out: list[tuple[str, str]] = []
    for k, form in enumerate(CN_FORMS):
        a, b, c = _cn(k)
        fa, fb, fc = (g.translate(_FULL) for g in (a, b, c))
        out.append((form.format(a=a, b=b, c=c, fa=fa, fb=fb, fc=fc), a + b + c))
    for k, form in enumerate(OTHER_FORMS, start=len(CN_FORMS)):
        text = form.format(k4=f"{4000 + k:04d}", k3=f"{400 + k:03d}", k2=f"{40 + k % 60:02d}")
        digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", text))
        out.append((text, digits))
    return out


def significant(digits: str) -> str:
    """The part of a dialled number that identifies the subscriber (country/trunk prefix off)."""
    d = digits
    for prefix in ("0086", "86", "0044", "44", "001", "1", "0049", "49", "00852", "852", "0081",
                   "81", "0033", "33"):
        if d.startswith(prefix) and len(d) - len(prefix) >= 8:
            d = d[len(prefix):]
            break
    return d.lstrip("0")[-8:]


def leaks(text: str, digits: str) -> bool:
    """Whether ``text`` carries the number ``digits`` in any typed form (separators ignored)."""
    flat = re.sub(r"[\s\-.()（）+＋/\u00a0\u3000:：]", "", unicodedata.normalize("NFKC", text))
    return significant(digits) in flat


#: text that holds digits but no personal number: must come out unchanged
NOT_PHONES: tuple[str, ...] = (
    "460-00-870362-3", "460123-1", "4926720", "268435455", "46000268435455", "ECGI 460001926720011",
    "2026-11-03 20:39:42", "2026-11-03T20:39:42+08:00", "20261103203942", "2026.11.03_20.39.42",
    "2026/11/03 20:39", "1762200000", "1762200000123", "1762200000.123", "C20261103000061",
    "104.060230,30.666965", "(30.666965, 104.06023)", "121.473700 31.230400", "131.12345678",
    "139.12345678,35.12345678", "tests 1234 good 1100", "12345678", "rsrp -110.5 dBm, sinr 13.2",
    "prb 87.5% users 139", "10.12.134.56", "alarm 13812 at site 137760", "N=1380 p=0.0123",
    "ta 1390 m, isd 573.9 m", "cell 460-00-139712-2 video 0.93", "0.13912345678",
)

#: names that try to break an output's format
HOSTILE_NAMES: tuple[str, ...] = (
    "ZTE\x00", "Hua\x01wei", "Nok\x1bia[31m", "Eric\x0bsson", "Ven\x1fdor", "Del\x7f",
    "Line\nbreak", "Quoted\n# Heading\n<script>alert(1)</script>", "CR\rLF", "Tab\tbed",
    "# heading", "<script>alert(1)</script>", "| pipe | table |", "`code`", "[x](javascript:alert(1))",
    "=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2+3", "=HYPERLINK(\"http://x\")", "\t=1",
    "\u202eevil\u202c", "History", ":*?/\\[]", "'quoted'", "a" * 200, "**bold**", "&amp;<b>",
)

#: negative numbers written as text: the formula guard must leave them alone
NEGATIVE_NUMBERS: tuple[str, ...] = ("-1", "-0.5", "-110.25", "-1e3", "-1.5E-3", "+5", "+0.25")
#: text that a spreadsheet would run: the guard must neutralise it
FORMULAS: tuple[str, ...] = ("=1+1", "-1+1", "+A1", "@SUM(A1)", "-cmd|' /C calc'!A0", "=HYPERLINK(1)",
                             "\t=1", "\r=1", "+1-2", "-", "+", "=")
