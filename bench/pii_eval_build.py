"""Rebuild ``bench/pii_eval/columns.jsonl``: labeled columns from three public projects' test data.

Sources (each Apache-2.0; their test files are CSV/XLSX/Avro/JSON samples, some from public datasets):

- ``acryldata/datahub-classify``: ``datahub-classify/tests/datasets/*`` with the project's own labels
  (``tests/expected_output/expected_infotypes_IDEAL.json``), mapped to Atlas categories;
- ``tokern/piicatcher``: ``tests/samples/sample-data.csv`` with the labels of its tests;
- ``capitalone/DataProfiler``: ``dataprofiler/tests/data/csv/*``, the Avro user sample and the JSON
  honeypot events, labeled here.

Every column gets an Atlas label (a category or ``none``), by what its values are; ``LABELS`` below
lists every positive, with the source's own label where it had one. Values: up to 30 non-empty ones
per column from the first 300 rows (free text cut at 1,500 characters). Real people's values are replaced by same-shape pseudonyms
(``pseudonymize``): names by names of the same column with first and last names shuffled across
rows, emails, phones, numbers and ids by random characters of the same classes that keep the value's
validity (a Luhn-valid card stays Luhn-valid, an invalid one stays invalid), addresses by a random
house number and another row's street; emails and long digit runs inside free text likewise. Columns
of long correspondence (the FOIA e-mail bodies) are left out.

About a third of the tables (by a hash of their name) are the held-out part: never looked at while
the rules were written, reported separately by ``bench.pii_eval``.

The data set itself is not committed (it is data of other projects): it is rebuilt from checkouts of
the three repositories, at the commits the figures in ``RESULTS.md`` were made with —
``acryldata/datahub-classify`` 233a4dc58e4c22961993fc868ec2349a0e0595cf, ``tokern/piicatcher``
e1eab89843886e4b3c7cd01183fca6240d164745, ``capitalone/DataProfiler``
9919af4552fbd6140a8d48683bdb928a0b1ab455 — and needs ``fastavro`` and ``cramjam`` (for the Avro
sample) in the environment that runs it::

    python -m bench.pii_eval_build --datahub DIR --piicatcher DIR --dataprofiler DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

from atlas_compliance.pii import validators
from atlas_compliance.pii.value_rules import street_address

OUT = Path(__file__).resolve().parent / "pii_eval" / "columns.jsonl"
ROWS, VALUES, MAX_CHARS = 300, 30, 1_500
csv.field_size_limit(10**8)

# (source, table) -> {column: Atlas label}; every other column is labeled "none".
LABELS: dict[tuple[str, str], dict[str, str]] = {
    ("datahub-classify", "1-MB-Test"): {"First and Last Name": "name", "SSN": "ssn", "Credit Card Number": "credit_card"},
    ("datahub-classify", "2018-seattle-business-districts"): {
        "Primary Contact-First Name": "name", "Last Name": "name", "Address": "address", "Second Address": "address",
        "Zip": "address", "E-mail": "email"},
    ("datahub-classify", "Age2_address1_credit_card3"): {
        "Person": "name", "Current Age": "age", "Retirement Age": "age", "Birth Year": "age", "gender": "gender",
        "Address": "address", "Zipcode": "address"},
    ("datahub-classify", "Airbnb_Open_Data"): {"host name": "name"},
    ("datahub-classify", "Bachelor_Degree_Majors"): {"Sex": "gender", "Age Group": "age"},
    ("datahub-classify", "Book1.xlsx-credit-card-number"): {"credit card": "credit_card"},
    ("datahub-classify", "Book1.xlsx-us-social-security-22-cvs"): {"SSN": "ssn"},
    ("datahub-classify", "CardBase"): {"Card_Number": "credit_card"},
    ("datahub-classify", "CrabAgePrediction"): {"Sex": "gender", "Age": "age"},
    ("datahub-classify", "Credit_Card2"): {"Card Number": "credit_card", "CVV": "credit_card"},
    ("datahub-classify", "Customer_Segmentation"): {
        "first_name": "name", "last_name": "name", "gender": "gender", "email": "email", "phone": "phone",
        "street_address": "address", "street_name": "address", "ip_address": "ip_address"},
    ("datahub-classify", "Emails"): {"MetadataFrom": "name", "ExtractedFrom": "email"},
    ("datahub-classify", "Persons"): {"Name": "name"},
    ("datahub-classify", "Salary_Data"): {"Age": "age"},
    ("datahub-classify", "UCI_Credit_Card"): {"SEX": "gender", "AGE": "age"},
    ("datahub-classify", "US_Driving_License"): {c: "driver_license" for c in (
        "License Number Alabama", "Driver License Georgia", "DL No Michigan", "Driving lic Washington",
        "DL num Illinois", "DL_lic_Florida", "Driver_lic_Montana", "lic_num_New Hampshire", "dl_number_Ohio")},
    ("datahub-classify", "application_record"): {"CODE_GENDER": "gender", "DAYS_BIRTH": "age"},
    ("datahub-classify", "drug-use-by-age"): {"age": "age"},
    ("datahub-classify", "iban"): {"IBAN_Number": "bank_account"},
    ("datahub-classify", "ipv6_random_generated"): {"ipv6": "ip_address", "srcaddr": "ip_address"},
    ("datahub-classify", "list_of_real_usa_addresses"): {"address": "address", "zip": "address"},
    ("datahub-classify", "random_ibans"): {"Random_IBAN": "bank_account"},
    ("datahub-classify", "sample-data"): {
        "SSN": "ssn", "gender": "gender", "birthdate": "date_of_birth", "maiden name": "name", "last name": "name",
        "first name": "name", "address": "address", "zip": "address", "phone": "phone", "email": "email",
        "CCN": "credit_card", "cc_cvc": "credit_card", "Full_Name": "name"},
    ("datahub-classify", "test"): {"Name": "name", "Age": "age", "SSN": "ssn"},
    ("datahub-classify", "train"): {"Name": "name", "Age": "age", "SSN": "ssn"},
    **{("datahub-classify", f"vehicles_{i}"): {"VIN": "vehicle_id"} for i in range(1, 6)},
    ("piicatcher", "sample-data"): {
        "id": "ssn", "gender": "gender", "birthdate": "date_of_birth", "maiden_name": "name", "lname": "name",
        "fname": "name", "address": "address", "zip": "address", "phone": "phone", "email": "email",
        "cc_number": "credit_card", "cc_cvc": "credit_card"},
    ("dataprofiler", "SchoolDataSmall"): {"ZIP": "address"},
    ("dataprofiler", "aws_honeypot_marx_geo"): {"src": "ip_address", "srcip": "ip_address", "postalcode": "address"},
    ("dataprofiler", "names-col"): {"NAMES": "name"},
    ("dataprofiler", "zomato"): {"Address": "address"},
    ("dataprofiler", "userdata1"): {"first_name": "name", "last_name": "name", "email": "email", "gender": "gender",
                                    "ip_address": "ip_address", "cc": "credit_card", "birthdate": "date_of_birth"},
    ("dataprofiler", "honeypot"): {"payload": "ip_address"},
}
# Columns whose labels depend on what their free text holds: labeled by a plain count below.
TEXT_COLUMNS = {("datahub-classify", f"vehicles_{i}", "description") for i in range(1, 6)}
LEFT_OUT = {("datahub-classify", "Emails", "RawText"), ("datahub-classify", "Emails", "ExtractedBodyText"),
            ("datahub-classify", "Emails", "MetadataPdfLink")}
DATAHUB_FILES = ("1-MB-Test.xlsx", "2018-seattle-business-districts.csv", "Age2_address1_credit_card3.csv",
                 "Airbnb_Open_Data.csv", "Aliases.csv", "Bachelor_Degree_Majors.csv",
                 "Book1.xlsx-credit-card-number.csv", "Book1.xlsx-us-social-security-22-cvs.csv", "CardBase.csv",
                 "CrabAgePrediction.csv", "Credit_Card2.csv", "Customer_Segmentation.csv", "Emails.csv",
                 "Persons.csv", "Salary_Data.csv", "UCI_Credit_Card.csv", "US_Driving_License.xlsx",
                 "application_record.csv", "catalog.csv", "drug-use-by-age.csv", "iban.csv",
                 "ipv6_random_generated.csv", "list_of_real_usa_addresses.csv", "random_ibans.csv", "sample-data.csv",
                 "test.csv", "train.csv", "vehicles_1.csv", "vehicles_2.csv", "vehicles_3.csv", "vehicles_4.csv",
                 "vehicles_5.csv")
DATAPROFILER_FILES = ("SchoolDataSmall.csv", "aws_honeypot_marx_geo.csv", "blogposts.csv", "ds_salaries.csv",
                      "flight_delays.csv", "diamonds.csv", "iris.csv", "names-col.txt", "zomato.csv",
                      "wisconsin_cancer_train.csv", "sparse-columns-test.csv", "graph_data_csv_identify.csv")


# --- reading ---------------------------------------------------------------------------------------

def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = []
        for i, row in enumerate(csv.reader(fh)):
            rows.append(row)
            if i > ROWS:
                break
    return rows


def read_xlsx(path: Path) -> list[list[str]]:
    """The first sheet of an .xlsx file (shared and inline strings, numbers as written)."""
    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    book = zipfile.ZipFile(path)
    shared = []
    if "xl/sharedStrings.xml" in book.namelist():
        for item in ElementTree.fromstring(book.read("xl/sharedStrings.xml")).findall(f"{ns}si"):
            shared.append("".join(t.text or "" for t in item.iter(f"{ns}t")))
    sheet = sorted(n for n in book.namelist() if n.startswith("xl/worksheets/sheet"))[0]
    rows = []
    for row in ElementTree.fromstring(book.read(sheet)).iter(f"{ns}row"):
        cells = {}
        for cell in row.findall(f"{ns}c"):
            column = re.match(r"[A-Z]+", cell.get("r", "A")).group()
            value = cell.find(f"{ns}v")
            kind = cell.get("t")
            if kind == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{ns}t"))
            elif value is None:
                text = ""
            else:
                text = shared[int(value.text)] if kind == "s" else (value.text or "")
            cells[column] = text
        rows.append(cells)
    columns = sorted({c for r in rows for c in r}, key=lambda c: (len(c), c))
    return [[r.get(c, "") for c in columns] for r in rows[:ROWS + 1]]


def read_avro(path: Path) -> list[list[str]]:
    import fastavro  # only needed to rebuild the data set

    with path.open("rb") as fh:
        records = [r for _, r in zip(range(ROWS), fastavro.reader(fh), strict=False)]
    header = list(records[0])
    return [header] + [["" if r[h] is None else str(r[h]) for h in header] for r in records]


def read_json_lines(path: Path) -> list[list[str]]:
    records = [json.loads(line) for line in path.read_text().splitlines()[:ROWS] if line.strip()]
    header = list(records[0])
    return [header] + [[json.dumps(r.get(h)) if isinstance(r.get(h), dict | list) else str(r.get(h, ""))
                        for h in header] for r in records]


def columns_of(rows: list[list[str]]) -> dict[str, list[str]]:
    header, body = rows[0], rows[1:]
    out: dict[str, list[str]] = {}
    for i, name in enumerate(header):
        if not name.strip() or name.startswith("Unnamed:"):
            continue
        values = [r[i].strip() for r in body if i < len(r) and r[i].strip()]
        out[name.strip()] = [v if len(v) <= MAX_CHARS or v[:1] in "{[" else v[:MAX_CHARS] for v in values[:VALUES]]
    return out


# --- pseudonyms ------------------------------------------------------------------------------------

def same_classes(value: str, rng: random.Random) -> str:
    """Each digit and letter replaced by a random one of its class (case kept); the rest kept. A number
    written with a ``.0`` (a ZIP code read as a float) keeps it."""
    if re.fullmatch(r"\d+\.0", value):
        return same_classes(value[:-2], rng) + ".0"
    out = []
    for ch in value:
        if ch.isdigit():
            out.append(str(rng.randint(0, 9)))
        elif ch.isascii() and ch.isalpha():
            letter = chr(rng.randint(0, 25) + ord("a"))
            out.append(letter.upper() if ch.isupper() else letter)
        else:
            out.append(ch)
    return "".join(out)


def random_ip(value: str, rng: random.Random) -> str:
    """A random address of the same version, written the same way (IPv6 groups keep their lengths)."""
    if ":" in value:
        return ":".join("".join(rng.choice("0123456789abcdef") for _ in group) for group in value.split(":"))
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def keep_validity(value: str, check: Callable[[str], object], rng: random.Random) -> str:
    """A same-shape pseudonym that the validator judges like the original (valid stays valid)."""
    wanted = bool(check(value))
    candidate = value
    for _ in range(500):
        candidate = same_classes(value, rng)
        if bool(check(candidate)) == wanted:
            return candidate
    return candidate


_EMAIL_IN_TEXT = re.compile(r"([A-Za-z0-9._%+'-]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_IPV4_IN_TEXT = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_DIGIT_RUN = re.compile(r"\d[\d ()./-]{5,}\d")


def scrub_text(text: str, rng: random.Random) -> str:
    """Emails, IPv4 addresses and digit runs of 7 or more inside text get same-shape pseudonyms."""
    text = _EMAIL_IN_TEXT.sub(lambda m: same_classes(m.group(1), rng) + "@" + m.group(2), text)
    text = _IPV4_IN_TEXT.sub(lambda m: ".".join(str(rng.randint(1, 254)) for _ in range(4))
                             if validators.ip_address(m.group()) else m.group(), text)
    return _DIGIT_RUN.sub(lambda m: same_classes(m.group(), rng) if sum(c.isdigit() for c in m.group()) >= 7
                          and not _IPV4_IN_TEXT.search(m.group()) else m.group(), text)


def shuffle_names(values: list[str], rng: random.Random) -> list[str]:
    """First and last words shuffled across the column's rows (``Last, First`` kept as such)."""
    split = [v.replace("\xa0", " ").split() for v in values]
    firsts = [w[0] for w in split if w]
    lasts = [w[-1] for w in split if len(w) > 1]
    rng.shuffle(firsts)
    rng.shuffle(lasts)
    out = []
    for words in split:
        if not words:
            out.append("")
            continue
        words = list(words)
        words[0] = firsts.pop() if firsts else words[0]
        if len(words) > 1 and lasts:
            words[-1] = lasts.pop()
        out.append(" ".join(words))
    return out


def pseudonymize(label: str, values: list[str], rng: random.Random) -> list[str]:
    if label == "name":
        return [scrub_text(v, rng) for v in shuffle_names(values, rng)]
    if label in ("gender", "age", "none", "diagnosis_code", "medication", "lab_result"):
        return [scrub_text(v, rng) for v in values]
    checks: dict[str, Callable[[str], object]] = {
        "email": validators.email, "ssn": validators.ssn, "credit_card": validators.credit_card,
        "phone": validators.phone, "bank_account": validators.bank_account, "vehicle_id": validators.vehicle_id,
        "swift_bic": validators.swift_bic, "national_id": validators.national_id, "ip_address": validators.ip_address,
        "date_of_birth": validators.parse_date, "address": street_address,
    }
    check = checks.get(label)
    out = []
    for v in values:
        if label == "email" and "@" in v and " " not in v:
            local, _, domain = v.partition("@")
            out.append(same_classes(local, rng) + "@" + domain)
        elif label == "address" and street_address(v):
            number, _, street = v.partition(" ")
            out.append(same_classes(number, rng) + " " + street)
        elif label == "ip_address" and validators.ip_address(v):
            out.append(random_ip(v, rng))
        elif check is not None and len(v) <= 64:
            out.append(keep_validity(v, check, rng))
        else:
            out.append(scrub_text(same_classes(v, rng) if len(v) <= 64 else v, rng))
    if label == "address":  # streets of other rows: no real address survives whole
        streets = [o.partition(" ")[2] for o in out if street_address(o)]
        rng.shuffle(streets)
        out = [o.partition(" ")[0] + " " + streets.pop() if street_address(o) and streets else o for o in out]
    return out


# --- labels of free text, split ------------------------------------------------------------------------

_PHONE_IN_TEXT = re.compile(r"\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b")


def text_label(values: list[str]) -> str:
    """A free-text column holds phone numbers when at least 20% of its values contain one."""
    share = sum(1 for v in values if _PHONE_IN_TEXT.search(v)) / max(1, len(values))
    return "phone" if share >= 0.2 else "none"


def held_out(source: str, table: str) -> bool:
    return zlib.crc32(f"{source}/{table}".encode()) % 10 < 3


def build(datahub: Path, piicatcher: Path, dataprofiler: Path) -> list[dict]:
    tables: list[tuple[str, str, dict[str, list[str]]]] = []
    for name in DATAHUB_FILES:
        path = datahub / "datahub-classify" / "tests" / "datasets" / name
        rows = read_xlsx(path) if name.endswith(".xlsx") else read_csv(path)
        tables.append(("datahub-classify", name.rsplit(".", 1)[0] if name.endswith((".csv", ".xlsx")) else name,
                       columns_of(rows)))
    tables.append(("piicatcher", "sample-data", columns_of(read_csv(piicatcher / "tests" / "samples" /
                                                                    "sample-data.csv"))))
    data = dataprofiler / "dataprofiler" / "tests" / "data"
    for name in DATAPROFILER_FILES:
        tables.append(("dataprofiler", name.rsplit(".", 1)[0], columns_of(read_csv(data / "csv" / name))))
    tables.append(("dataprofiler", "userdata1", columns_of(read_avro(data / "avro" / "userdata1.avro"))))
    tables.append(("dataprofiler", "honeypot", columns_of(read_json_lines(data / "json" / "honeypot"))))
    rng = random.Random(20261204)
    out = []
    for source, table, columns in tables:
        labels = LABELS.get((source, table), {})
        for column, values in columns.items():
            if (source, table, column) in LEFT_OUT:
                continue
            label = text_label(values) if (source, table, column) in TEXT_COLUMNS else labels.get(column, "none")
            out.append({"source": source, "table": table, "column": column, "label": label,
                        "split": "heldout" if held_out(source, table) else "dev",
                        "values": pseudonymize(label, values, rng)})
    missing = {(s, t, c) for (s, t), cols in LABELS.items() for c in cols} - {
        (r["source"], r["table"], r["column"]) for r in out}
    if missing:
        raise SystemExit(f"labeled columns not found in the sources: {sorted(missing)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datahub", type=Path, required=True, help="checkout of acryldata/datahub-classify")
    parser.add_argument("--piicatcher", type=Path, required=True, help="checkout of tokern/piicatcher")
    parser.add_argument("--dataprofiler", type=Path, required=True, help="checkout of capitalone/DataProfiler")
    args = parser.parse_args()
    rows = build(args.datahub, args.piicatcher, args.dataprofiler)
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    positives = sum(1 for r in rows if r["label"] != "none")
    print(f"{len(rows)} columns ({positives} with personal data) from "
          f"{len({(r['source'], r['table']) for r in rows})} tables -> {OUT}")


if __name__ == "__main__":
    main()
