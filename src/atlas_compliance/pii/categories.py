"""The PII and PHI categories: one table for the scanner, the upload, the API, the console and the docs.

Each category says what it is (``label``), whether it is protected health information (``group``
``PHI``) or other personal data (``PII``), how its values are masked by default, and what a matching
sampled value is called in a detection's reason.

>>> CATEGORY["ssn"].masking, CATEGORY["diagnosis_code"].group
('full', 'PHI')
>>> DEFAULT_MASKING["ip_address"], DEFAULT_MASKING["email"]
('hash', 'partial')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    """One kind of personal data."""

    id: str
    label: str
    group: str  # "PII" or "PHI" (health information, HIPAA)
    masking: str  # default masking strategy: full, partial, hash or redact
    matched: str  # what a matching sampled value is, for reasons: "valid email addresses"


# Identifiers that enable impersonation or fraud are hidden entirely (full). Facts about a person that
# even a partial mask would give away (a birth date's century and day, an age, a diagnosis) are
# redacted. IP addresses are hashed: analysts can still count and join distinct clients. The rest
# keeps a recognisable hint (partial).
CATEGORIES: tuple[Category, ...] = (
    Category("email", "Email", "PII", "partial", "valid email addresses"),
    Category("phone", "Phone", "PII", "partial", "phone numbers"),
    Category("ssn", "SSN", "PII", "full", "valid SSNs"),
    Category("national_id", "National or tax id", "PII", "full", "valid national or tax ids"),
    Category("credit_card", "Credit card", "PII", "full", "Luhn-valid card numbers"),
    Category("bank_account", "Bank account or IBAN", "PII", "full", "valid IBANs or bank account numbers"),
    Category("swift_bic", "SWIFT/BIC code", "PII", "partial", "valid SWIFT/BIC codes"),
    Category("name", "Name", "PII", "partial", "people's names"),
    Category("ip_address", "IP address", "PII", "hash", "IP addresses"),
    Category("date_of_birth", "Date of birth", "PII", "redact", "plausible birth dates"),
    Category("age", "Age or birth year", "PII", "redact", "plausible ages or birth years"),
    Category("gender", "Gender", "PII", "redact", "gender values"),
    Category("address", "Address", "PII", "partial", "street addresses or postal codes"),
    Category("passport", "Passport", "PII", "full", "passport numbers"),
    Category("driver_license", "Driver license", "PII", "full", "driver license numbers"),
    Category("vehicle_id", "Vehicle id (VIN)", "PII", "full", "valid vehicle identification numbers"),
    Category("medical_record_number", "Medical record number", "PHI", "full", "medical record numbers"),
    Category("health_plan_id", "Health plan id", "PHI", "full", "health plan member ids"),
    Category("diagnosis_code", "Diagnosis code (ICD-10)", "PHI", "redact", "ICD-10 diagnosis codes"),
    Category("medication", "Medication (NDC code or drug)", "PHI", "redact", "NDC drug codes"),
    Category("lab_result", "Lab result", "PHI", "redact", "LOINC lab test codes"),
    Category("other", "Other", "PII", "partial", "personal data"),
)

CATEGORY: dict[str, Category] = {c.id: c for c in CATEGORIES}
PII_CATEGORIES: tuple[str, ...] = tuple(c.id for c in CATEGORIES)
PHI_CATEGORIES: frozenset[str] = frozenset(c.id for c in CATEGORIES if c.group == "PHI")
DEFAULT_MASKING: dict[str, str] = {c.id: c.masking for c in CATEGORIES}
MASKING_STRATEGIES = ("full", "partial", "hash", "redact")
