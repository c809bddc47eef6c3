"""PII redaction: e-mail addresses, phone numbers, IBANs and Italian codici fiscali -> placeholders.

Patterns are deliberately conservative where a false positive would damage ordinary text (phone numbers
need a leading + or 0 or a separator pattern; a codice fiscale must match the exact 16-character layout
and its check character; an IBAN must pass its mod-97 check), so verse numbers, years and dates survive.
"""

from __future__ import annotations

import re

__all__ = ["redact_pii", "PII_KINDS", "is_valid_iban", "is_valid_codice_fiscale"]

PII_KINDS = ("email", "iban", "codice_fiscale", "phone")
"""Kinds in the order they are redacted (IBAN before phone: an IBAN holds long digit runs)."""

PLACEHOLDERS = {kind: f"<{kind.upper()}>" for kind in PII_KINDS}

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# IBAN: country code, two check digits, 11-30 alphanumerics, optionally grouped by spaces in fours.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# Codice fiscale: 6 letters (surname, name), 2 digits (year), month letter, 2 digits (day), a letter and
# 3 digits (birthplace), check letter. Omocodia replaces digits with LMNPQRSTUV: allowed in digit places.
_D = "[0-9LMNPQRSTUV]"
_CODICE_FISCALE = re.compile(rf"\b[A-Z]{{6}}{_D}{{2}}[ABCDEHLMPRST]{_D}{{2}}[A-Z]{_D}{{3}}[A-Z]\b",
                             re.IGNORECASE)
# Phone: international (+39 ...) or a national number starting with 0 or 3 (Italian landline/mobile) of
# 8-13 digits with optional separators (not inside a hyphenated code such as an ISBN), or a
# North-American (555) 123-4567 shape.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}"
    r"|\(\d{3}\) ?\d{3}[ .-]\d{4}"
    r"|(?<![\w-])0\d{1,3}[ ./-]?\d{5,8}(?![\w-])"
    r"|(?<![\w-])3\d{2}[ .-]?\d{6,7}(?![\w-]))"
)

_CF_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]


def is_valid_iban(candidate: str) -> bool:
    """ISO 13616 mod-97 check: move the first four characters to the end, letters -> 10..35."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def is_valid_codice_fiscale(candidate: str) -> bool:
    """The 16th character is a checksum of the first 15 (odd positions weighted by a fixed table)."""
    code = candidate.upper()
    total = 0
    for i, c in enumerate(code[:15]):
        value = int(c) if c.isdigit() else ord(c) - ord("A")
        total += _CF_ODD[value] if i % 2 == 0 else value
    return chr(ord("A") + total % 26) == code[15]


def redact_pii(text: str) -> tuple[str, dict[str, int]]:
    """Replace PII with placeholders like <EMAIL>; returns the new text and counts per kind."""
    counts = dict.fromkeys(PII_KINDS, 0)

    def substitute(kind: str, pattern: re.Pattern, valid=None) -> None:
        nonlocal text

        def replace(match: re.Match) -> str:
            if valid is not None and not valid(match.group(0)):
                return match.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        text = pattern.sub(replace, text)

    if "@" in text:  # the address pattern's only literal: most documents skip its scan
        substitute("email", _EMAIL)
    substitute("iban", _IBAN, is_valid_iban)
    substitute("codice_fiscale", _CODICE_FISCALE, is_valid_codice_fiscale)
    substitute("phone", _PHONE)
    return text, counts
