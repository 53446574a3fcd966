"""Default masking strategies: one table (``rules.DEFAULT_MASKING``) for the scanner, the upload and the docs."""

from __future__ import annotations

import pytest

from atlas_compliance.pii import rules

URL = "/api/v1/admin/compliance/classifications"

# What docs/pii.md promises, written out: identifiers that enable fraud are hidden entirely, birth
# dates redacted, IP addresses hashed. A change here is a change of the documented behaviour.
DOCUMENTED = {
    "ssn": "full", "credit_card": "full", "passport": "full", "driver_license": "full",
    "date_of_birth": "redact", "ip_address": "hash",
    "email": "partial", "phone": "partial", "name": "partial", "address": "partial", "other": "partial",
}


def test_the_table_covers_every_category_with_a_known_strategy():
    assert set(rules.DEFAULT_MASKING) == set(rules.PII_CATEGORIES)
    assert set(rules.DEFAULT_MASKING.values()) <= set(rules.MASKING_STRATEGIES)
    for category, strategy in DOCUMENTED.items():
        assert rules.DEFAULT_MASKING[category] == strategy, category


@pytest.mark.parametrize("category", sorted(rules.DEFAULT_MASKING))
def test_an_upload_without_a_strategy_gets_its_category_default(client, org, category):
    admin = org.add_user("admin")
    detection = {"tableName": "uploads", "columnName": f"col_{category}", "category": category}
    assert client.post(URL, json={"detections": [detection]}, headers=admin.headers).status_code == 200
    rows = client.get(URL, params={"category": category}, headers=admin.headers).json()["classifications"]
    assert [(r["columnName"], r["maskingStrategy"]) for r in rows] == [
        (f"col_{category}", rules.DEFAULT_MASKING[category])]


def test_an_upload_with_a_strategy_keeps_it(client, org):
    admin = org.add_user("admin")
    detection = {"tableName": "uploads", "columnName": "ssn", "category": "ssn", "maskingStrategy": "hash"}
    assert client.post(URL, json={"detections": [detection]}, headers=admin.headers).status_code == 200
    assert client.get(URL, headers=admin.headers).json()["classifications"][0]["maskingStrategy"] == "hash"


def test_the_api_accepts_exactly_the_categories_of_the_table():
    from typing import get_args

    from atlas_compliance.pii.categories import PII_CATEGORIES
    from atlas_compliance.pii.schemas import Category

    assert get_args(Category) == PII_CATEGORIES
