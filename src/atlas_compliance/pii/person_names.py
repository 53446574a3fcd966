"""Is this value a person's name? A recogniser built on the name lists that ship inside the ``Faker``
package (first and last names of the locales below, maintained by its authors; nothing is downloaded
at run time), with common words, places, colours and calendar words taken out.

A value is a person's name when it is one to four words of letters (apostrophes, hyphens and dots
allowed; titles like ``Dr.`` and suffixes like ``Jr.`` are skipped) and either

- it has two to four words, the first (or, in ``Last, First``, the one after the comma) a known
  first name, the last not a place word (``Street``, ``Texas``), and not both of them common words
  (``Maria Garcia``, ``Garcia, Maria``, ``aaron maashoh``); or
- it is one word that is a known first or last name (``Maria``) — columns of single words are
  only read this way under a column name that speaks of names (see ``value_rules``).

>>> is_person_name("Hazel Robinson"), is_person_name("Garcia, Maria"), is_person_name("Private room")
(True, True, False)
>>> is_person_name("Maria", single_ok=True), is_person_name("Texas", single_ok=True)
(True, False)
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache

# Locales whose lists are in Latin script (what a name column of a Latin-script database holds).
LOCALES = ("en_US", "en_GB", "en_CA", "en_AU", "en_IE", "en_IN", "en_NZ", "en_PH", "es_ES", "es_MX", "es_CO",
           "fr_FR", "de_DE", "it_IT", "pt_BR", "pt_PT", "nl_NL", "pl_PL", "sv_SE", "da_DK", "no_NO", "fi_FI",
           "cs_CZ", "hu_HU", "ro_RO", "tr_TR", "id_ID", "vi_VN", "sw", "yo_NG", "zu_ZA", "ga_IE", "hr_HR")

_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "rev", "hon", "honorable", "fr",
                     "sr", "jr", "ii", "iii", "iv", "md", "phd", "dds", "esq", "mba", "rn", "dvm"})
# Words that name lists contain but that usually mean something else in a column of data.
_COMMON = frozenset("""
male female unknown none null true false yes no total other all any average mean median min max sum count
january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday spring summer autumn winter fall
north south east west central city state county street road lane avenue drive park river lake hill
gold silver bronze platinum premium standard basic classic plus pro free paid open closed pending active
good bad fair poor excellent ideal very new used private public entire shared
red blue green black white brown grey gray orange yellow pink purple violet rose
""".split())
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’.-](?=[^\W\d_]))*\.?")


def _names(provider: type, attribute: str) -> list[str]:
    value = provider.__dict__.get(attribute)
    if value is None:
        for base in provider.__mro__[1:]:
            value = base.__dict__.get(attribute)
            if value is not None:
                break
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return []


@lru_cache(maxsize=1)
def name_lists() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """(first names, last names, common words, place words), all lowercase; built once."""
    first: set[str] = set()
    last: set[str] = set()
    for locale in LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:  # a locale a future Faker release drops: the others still count
            continue
        for attribute in ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary"):
            first.update(n.lower() for n in _names(provider, attribute))
        last.update(n.lower() for n in _names(provider, "last_names"))
    stop = set(_COMMON)
    places: set[str] = set()
    try:
        lorem = importlib.import_module("faker.providers.lorem.en_US").Provider
        stop.update(w.lower() for w in _names(lorem, "word_list"))
        address = importlib.import_module("faker.providers.address.en_US").Provider
        for attribute in ("countries", "states"):
            stop.update(w.lower() for w in _names(address, attribute))
        for attribute in ("street_suffixes", "city_suffixes"):
            places.update(w.lower() for w in _names(address, attribute))
        colors = importlib.import_module("faker.providers.color.en_US").Provider
        stop.update(w.lower() for w in _names(colors, "all_colors"))
    except ImportError:
        pass
    return frozenset(first), frozenset(last), frozenset(stop | places), frozenset(places)


def name_words(value: str) -> list[str] | None:
    """The lowercase words of a value that could be a name, in ``First Last`` order (``Last, First``
    turned round), titles and suffixes dropped; None when the value has anything but letters, spaces,
    a comma, apostrophes, hyphens and dots, or more than four words."""
    text = value.strip()
    if not text or len(text) > 60 or text.count(",") > 1 or any(ch.isdigit() or ch in "@/_#&()[]{}:;|+=*!?\"" for ch in text):
        return None
    letters = re.sub(r"[\s,'’.-]", "", text).lower()
    if re.sub(r"['’.-]", "", "".join(_WORD.findall(text))).lower() != letters:
        return None  # characters that are not part of words (symbols, other scripts mixed in)
    before, _, after = text.partition(",")
    words = [w.lower().rstrip(".") for part in (after, before) for w in _WORD.findall(part)]
    words = [w for w in words if w not in _TITLES]
    return words if 1 <= len(words) <= 4 else None


def is_person_name(value: str, *, single_ok: bool = False) -> bool:
    """Whether ``value`` reads as a person's name (see the module's rules)."""
    words = name_words(value)
    if not words:
        return False
    first, last, stop, places = name_lists()
    if len(words) == 1:
        word = words[0]
        return single_ok and len(word) > 1 and word not in stop and (word in first or word in last)
    head, tail = words[0], words[-1]
    if head not in first or len(head) < 2 or tail in places or (head in stop and tail in stop):
        return False
    return tail in last or tail in first or tail not in stop
