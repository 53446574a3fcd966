"""Value validators: does one sampled value look like a given kind of personal data?

Maintained libraries decide where they exist: ``python-stdnum`` (IBAN, BIC and the national and
tax ids of many countries, with their check digits) and ``phonenumbers`` (Google's numbering plans).
The rest are written here, each with its check digit or structure where the format has one (Luhn
for cards, ISO 3779 for North American VINs, the LOINC check digit, the SSA's SSN rules).

Every function takes the stripped text of one value and answers a short name of what it found
(``"IBAN"``, ``"Indian Aadhaar number"``) or None; pure, no I/O.

>>> email("ann@example.com"), ssn("123-45-6789"), ssn("666-45-6789")
('email address', 'SSN', None)
>>> national_id("ABCPE1234F"), bank_account("GB82 WEST 1234 5698 7654 32")
('Indian PAN', 'IBAN')
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date

import phonenumbers
from stdnum import bic as _bic
from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.br import cpf as _cpf
from stdnum.ca import sin as _sin
from stdnum.es import dni as _dni
from stdnum.es import nie as _nie
from stdnum.exceptions import ValidationError
from stdnum.fr import nir as _nir
from stdnum.gb import nhs as _nhs
from stdnum.in_ import aadhaar as _aadhaar
from stdnum.in_ import pan as _pan
from stdnum.it import codicefiscale as _codicefiscale
from stdnum.mx import curp as _curp
from stdnum.nl import bsn as _bsn
from stdnum.pl import pesel as _pesel
from stdnum.us import rtn as _rtn

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
                    re.ASCII)
_SSN = re.compile(r"(\d{3})([- ])(\d{2})\2(\d{4})", re.ASCII)
_SSN_PLAIN = re.compile(r"(\d{3})(\d{2})(\d{4})", re.ASCII)
_CARD = re.compile(r"\d(?:[ -]?\d){12,18}", re.ASCII)
_PHONE_CHARS = re.compile(r"\+?[\d(][\d ().-]{5,22}\d(?:\s*(?:x|ext\.?)\s*\d{1,5})?", re.ASCII | re.IGNORECASE)
_GROUPED_AMOUNT = re.compile(r"\d{1,3}(?:[.,]\d{3})+(?:[.,]\d{1,2})?", re.ASCII)
_DECIMAL = re.compile(r"-?\d+\.\d+", re.ASCII)


def email(v: str) -> str | None:
    """A plain ``local@domain.tld`` address (no display names, no quoted local parts)."""
    if len(v) <= 254 and _EMAIL.fullmatch(v) and len(v.split("@", 1)[0]) <= 64:
        return "email address"
    return None


def ssn_parts_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: area not 000, 666 or 900–999; group not 00; serial not 0000."""
    return area != "000" and area != "666" and area[0] != "9" and group != "00" and serial != "0000"


def ssn(v: str, *, plain_ok: bool = False) -> str | None:
    """``ddd-dd-dddd`` (or with spaces) with valid parts; nine bare digits only when ``plain_ok``."""
    m = _SSN.fullmatch(v)
    if m:
        return "SSN" if ssn_parts_valid(m.group(1), m.group(3), m.group(4)) else None
    m = _SSN_PLAIN.fullmatch(v) if plain_ok else None
    return "SSN" if m and ssn_parts_valid(*m.groups()) else None


def credit_card(v: str) -> str | None:
    """13–19 digits (single spaces or dashes allowed) of a card brand (first digit 2–6), Luhn-valid,
    and not one digit repeated."""
    if not _CARD.fullmatch(v):
        return None
    digits = v.replace(" ", "").replace("-", "")
    if digits[0] in "23456" and len(set(digits)) > 1 and _luhn.is_valid(digits):
        return "card number"
    return None


def ip_address(v: str) -> str | None:
    """An IPv4 or IPv6 address (compressed forms, zone ids and an ``/prefix`` as ``inet`` prints it)."""
    if ":" not in v and v.count(".") != 3:
        return None
    try:
        iface = ipaddress.ip_interface(v)
    except ValueError:
        return None
    return "IPv6 address" if iface.version == 6 else "IPv4 address"


def phone(v: str, *, plain_ok: bool = False) -> str | None:
    """A phone number as people write one: a ``+`` and country code, or separators or parentheses,
    of a length some numbering plan allows (``phonenumbers``; national numbers read as US ones).
    Bare digit strings count only when ``plain_ok`` (a phone-like column name). SSNs, card numbers,
    IPs, dates, decimals and thousands-grouped amounts are not phones.

    >>> phone("(555) 201-1000"), phone("+44 20 7946 0958"), phone("5552011000"), phone("6622-2350-9284")
    ('phone number', 'phone number', None, None)
    """
    bare = v.isascii() and v.isdigit()
    if bare and not plain_ok:
        return None
    if not bare and not _PHONE_CHARS.fullmatch(v):
        return None
    if ssn(v) or credit_card(v) or ip_address(v) or parse_date(v) or _GROUPED_AMOUNT.fullmatch(v) \
            or _DECIMAL.fullmatch(v):
        return None
    digits = sum(ch.isdigit() for ch in v)
    if digits == 7 and re.fullmatch(r"\d{3}[-.]\d{4}", v):
        return "phone number"  # a local number: 555-1234
    if not 10 <= digits <= 15:
        return None
    try:
        number = phonenumbers.parse(v, None if v.startswith("+") else "US")
    except phonenumbers.NumberParseException:
        return None
    return "phone number" if phonenumbers.is_possible_number(number) else None


# --- dates, ages and birth years -----------------------------------------------------------------

_ISO_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ]00:00(?::00(?:\.0+)?)?(?:Z|[+-]00(?::?00)?)?)?",
                       re.ASCII)
_DMY_OR_MDY = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})(?: 0?0:00(?::00)?)?", re.ASCII)


def parse_date(v: str) -> date | None:
    """A calendar date: ``YYYY-MM-DD`` (``/`` or ``.`` too), or day and month either way round before a
    four-digit year (``4/21/1958`` US style, ``21.04.1958``, ``25-06-2010``), optionally at midnight
    (how birth dates stored as timestamps print). A time of day makes it an event, not a date.

    >>> parse_date("1958-04-21"), parse_date("4/21/1958"), parse_date("21.04.1958"), parse_date("2/30/1958")
    (datetime.date(1958, 4, 21), datetime.date(1958, 4, 21), datetime.date(1958, 4, 21), None)
    """
    m = _ISO_DATE.fullmatch(v)
    if m:
        return _date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    m = _DMY_OR_MDY.fullmatch(v)
    if not m:
        return None
    a, b, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
    # US order first for "/" (4/21/1958); day first for "." and "-" (21.04.1958, 25-06-2010).
    first, second = ((a, b), (b, a)) if m.group(2) == "/" else ((b, a), (a, b))
    return _date(year, *first) or _date(year, *second)


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def past_date(v: str, today: date) -> str | None:
    """A date since 1900 that is not in the future: the shape of any date of birth."""
    d = parse_date(v)
    return "date" if d is not None and 1900 <= d.year and d <= today else None


_AGE_RANGE = re.compile(r"(\d{1,3})\s*(?:-|–|to)\s*(\d{1,3})(?:\s*(?:years?|yrs?))?|(\d{1,3})\s*(?:\+|and (?:older|over|"
                        r"above)|or (?:older|more))|(?:under|over) (\d{1,3})", re.IGNORECASE)


def age(v: str, today: date) -> str | None:
    """An age (0–120, whole or half years: ``42``, ``42.0``, ``21.5``), an age range (``25 to 39``,
    ``65+``) or a birth year (1900 up to this year). Checked only under an age-like column name."""
    text = v.strip()
    if re.fullmatch(r"\d{1,3}(?:\.[05]0*)?", text):
        return "age" if float(text) <= 120 else None
    if re.fullmatch(r"(19|20)\d\d(?:\.0+)?", text):
        return "birth year" if 1900 <= int(float(text)) <= today.year else None
    m = _AGE_RANGE.fullmatch(text)
    if m:
        numbers = [int(g) for g in m.groups() if g]
        return "age range" if all(n <= 120 for n in numbers) else None
    return None


GENDER_WORDS = frozenset({
    "male", "female", "man", "woman", "men", "women", "boy", "girl", "non-binary", "nonbinary", "non binary",
    "agender", "bigender", "genderfluid", "genderqueer", "polygender", "transgender", "intersex",
    "two-spirit", "trans man", "trans woman", "masculine", "feminine",
})
GENDER_CODES = frozenset({"m", "f", "x", "u", "o", "nb", "w"})


def gender(v: str, *, codes_ok: bool = False) -> str | None:
    """A gender word (``Female``, ``non-binary``); single-letter codes (``M``, ``F``) only when
    ``codes_ok`` (a gender-like column name)."""
    text = v.strip().lower()
    if text in GENDER_WORDS:
        return "gender"
    return "gender code" if codes_ok and text in GENDER_CODES else None


# --- identity documents, vehicles, banks -----------------------------------------------------------

_PASSPORT = re.compile(r"[A-Z]{0,2}\d{6,9}[A-Z]?|[A-Z0-9]{6,9}", re.ASCII)
_LICENSE = re.compile(r"[A-Z0-9](?:[ -]?[A-Z0-9]){3,17}", re.ASCII)
_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}", re.ASCII)
_VIN_VALUES = {**{str(d): d for d in range(10)}, **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
               **dict(zip("JKLMN", range(1, 6), strict=True)), "P": 7, "R": 9,
               **dict(zip("STUVWXYZ", range(2, 10), strict=True))}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def passport(v: str) -> str | None:
    """A passport number's shape: 6–9 letters and digits with at least 6 digits, or up to two letters,
    6–9 digits and an optional letter (checked only under a passport-like column name)."""
    text = v.upper()
    if _PASSPORT.fullmatch(text) and sum(ch.isdigit() for ch in text) >= 5:
        return "passport number"
    return None


def driver_license(v: str) -> str | None:
    """A driver license number's shape, US states' formats included (``D123-456-789``,
    ``F255-921-50-094-0``, ``WDLABCD456DG``, ``12 345 678``): 4–18 letters and digits with single
    spaces or dashes, at least 3 of them digits (checked only under a licence-like column name)."""
    text = v.upper()
    if _LICENSE.fullmatch(text) and sum(ch.isdigit() for ch in text) >= 3:
        return "driver license number"
    return None


def vehicle_id(v: str) -> str | None:
    """A 17-character VIN (no I, O or Q) with letters and digits; North American ones (first
    character 1–5) must carry the ISO 3779 check digit in position 9.

    >>> vehicle_id("1M8GDM9AXKP042788"), vehicle_id("1M8GDM9A1KP042788"), vehicle_id("JM1CW2CL3C0111837")
    ('VIN', None, 'VIN')
    """
    text = v.upper()
    if not _VIN.fullmatch(text) or text.isdigit() or text.isalpha():
        return None
    if text[0] in "12345":
        total = sum(_VIN_VALUES[ch] * w for ch, w in zip(text, _VIN_WEIGHTS, strict=True)) % 11
        if text[8] != ("X" if total == 10 else str(total)):
            return None
    return "VIN"


def bank_account(v: str, *, plain_ok: bool = False) -> str | None:
    """An IBAN (ISO 13616: country, length and mod-97 check, via ``python-stdnum``); under a bank-like
    column name (``plain_ok``) also a US routing number (ABA check digit) or a plain 6–17 digit account
    number."""
    if len(v) >= 15 and v[:2].isalpha() and _iban.is_valid(v):
        return "IBAN"
    if plain_ok:
        digits = v.replace(" ", "").replace("-", "")
        if digits.isdigit():
            if len(digits) == 9 and _rtn.is_valid(digits):
                return "routing number"
            if 6 <= len(digits) <= 17 and len(set(digits)) > 1:
                return "bank account number"
    return None


def swift_bic(v: str) -> str | None:
    """A SWIFT/BIC code (ISO 9362, via ``python-stdnum``: bank, a real country, location, branch)."""
    text = v.strip()
    if len(text) in (8, 11) and text.isupper() and _bic.is_valid(text):
        return "SWIFT/BIC code"
    return None


# National and tax ids, via python-stdnum. Formats with letters or a fixed grouping are specific enough
# to count anywhere; bare digit strings pass some checksum by chance (a mod-11 one in one case of 11),
# so they count only under an id-like column name (``plain_ok``).
_SPECIFIC_IDS = (
    ("Indian PAN", _pan, re.compile(r"[A-Z]{5}\d{4}[A-Z]")),
    ("Spanish DNI/NIF", _dni, re.compile(r"\d{8}-?[A-Z]")),
    ("Spanish NIE", _nie, re.compile(r"[XYZ]-?\d{7}-?[A-Z]")),
    ("Italian codice fiscale", _codicefiscale, re.compile(r"[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]")),
    ("Mexican CURP", _curp, re.compile(r"[A-Z]{4}\d{6}[HM][A-Z]{5}[A-Z0-9]\d")),
    ("Indian Aadhaar number", _aadhaar, re.compile(r"\d{4}[ -]\d{4}[ -]\d{4}")),
    ("UK NHS number", _nhs, re.compile(r"\d{3}[ -]\d{3}[ -]\d{4}")),
    ("Brazilian CPF", _cpf, re.compile(r"\d{3}\.\d{3}\.\d{3}-\d{2}")),
    ("Canadian SIN", _sin, re.compile(r"\d{3}[ -]\d{3}[ -]\d{3}")),
    ("French NIR", _nir, re.compile(r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}")),
)
_PLAIN_IDS = (("Indian Aadhaar number", _aadhaar, 12), ("UK NHS number", _nhs, 10), ("Brazilian CPF", _cpf, 11),
              ("Canadian SIN", _sin, 9), ("Dutch BSN", _bsn, 9), ("Polish PESEL", _pesel, 11))
_NINO = re.compile(r"(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]")


def national_id(v: str, *, plain_ok: bool = False) -> str | None:
    """A national or tax id of a country other than the US, with its check digit where it has one:
    Indian PAN and Aadhaar, Spanish DNI/NIF and NIE, UK NHS number and National Insurance number,
    Italian codice fiscale, Mexican CURP, Brazilian CPF, Canadian SIN, French NIR; as bare digits
    (``plain_ok`` only) also Dutch BSN and Polish PESEL."""
    text = v.strip().upper()
    if _NINO.fullmatch(text):
        return "UK National Insurance number"
    for kind, module, shape in _SPECIFIC_IDS:
        if shape.fullmatch(text) and _valid(module, text):
            return kind
    if plain_ok and text.isdigit():
        for kind, module, length in _PLAIN_IDS:
            if len(text) == length and _valid(module, text):
                return kind
    return None


def _valid(module, text: str) -> bool:
    try:
        return bool(module.is_valid(text))
    except (ValidationError, ValueError, KeyError, IndexError):
        return False


# --- health information (PHI) ------------------------------------------------------------------------

_MRN = re.compile(r"[A-Z]{0,4}[-# ]?\d{4,12}(?:-\d{1,4})?", re.ASCII)
# ICD-10(-CM): a letter (not U, used for special purposes), two digits or a digit and A/B, then after a
# dot up to four more characters. Letters in the third and later places are rare, so they are kept tight.
_ICD10 = re.compile(r"[A-TV-Z]\d[0-9AB](?:\.?[0-9A-TV-Z]{1,4})?", re.ASCII)
_NDC = re.compile(r"\d{4}-\d{4}-\d{2}|\d{5}-\d{3}-\d{2}|\d{5}-\d{4}-\d{1,2}", re.ASCII)
_LOINC = re.compile(r"(\d{1,7})-(\d)", re.ASCII)
# Medicare Beneficiary Identifier (CMS): 11 characters, letters never S, L, O, I, B or Z.
_MBI = re.compile(r"[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?"
                  r"[AC-HJKMNP-RT-Y]{2}\d{2}", re.ASCII)
_MEMBER_ID = re.compile(r"[A-Z]{0,4}[- ]?\d{6,12}(?:[- ]?\d{1,3})?", re.ASCII)


def medical_record_number(v: str) -> str | None:
    """A medical record number's shape (``MRN100042``, ``00123456``, ``HOSP-0042137``): up to four
    letters and 4–12 digits (checked only under an MRN-like column name)."""
    return "medical record number" if _MRN.fullmatch(v.strip().upper()) else None


_ICD10_DOTTED = re.compile(r"[A-TV-Z]\d[0-9AB]\.[0-9A-TV-Z]{1,4}", re.ASCII)


def diagnosis_code(v: str, *, short_ok: bool = False) -> str | None:
    """An ICD-10 code with its dot (``E11.9``, ``S72.001A``); codes without one (``I10``, ``E119``),
    which product and room codes resemble, only when ``short_ok`` (a diagnosis-like column name)."""
    text = v.strip().upper()
    if _ICD10_DOTTED.fullmatch(text) or (short_ok and _ICD10.fullmatch(text)):
        return "ICD-10 code"
    return None


def ndc_code(v: str) -> str | None:
    """A National Drug Code in one of its hyphenated 10- or 11-digit layouts (4-4-2, 5-3-2, 5-4-1, 5-4-2)."""
    return "NDC code" if _NDC.fullmatch(v.strip()) else None


def loinc_code(v: str) -> str | None:
    """A LOINC lab test code (``4548-4``) whose check digit is right (LOINC's mod 10, Luhn's).

    >>> loinc_code("4548-4"), loinc_code("4548-5")
    ('LOINC code', None)
    """
    m = _LOINC.fullmatch(v.strip())
    return "LOINC code" if m and _luhn.is_valid(m.group(1) + m.group(2)) else None


def health_plan_id(v: str, *, plain_ok: bool = False) -> str | None:
    """A Medicare Beneficiary Identifier (its fixed letter and digit places); under a member-id-like
    column name (``plain_ok``) also a plan's member id: up to four letters and 6–12 digits."""
    text = v.strip().upper()
    if _MBI.fullmatch(text):
        return "Medicare Beneficiary Identifier"
    if plain_ok and _MEMBER_ID.fullmatch(text):
        return "health plan member id"
    return None
