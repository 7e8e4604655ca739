"""Schemathesis hooks for partnergate's contract test (loaded with SCHEMATHESIS_HOOKS).

They teach schemathesis what the OpenAPI document names but JSON Schema cannot compute,
and nothing else: no check is weakened here.
"""

import datetime
import random
import re
import uuid

import schemathesis
from hypothesis import strategies as st


def _insz(draw_digits: str, after_2000: bool) -> str:
    base = int(("2" if after_2000 else "") + draw_digits)
    return draw_digits + f"{97 - base % 97:02d}"


@st.composite
def insz_numbers(draw):
    """Valid national numbers: birth dates before and after 2000, unknown dates (month or
    day 00) and bis numbers (month + 20 or + 40); the last two digits are the mod-97 check."""
    year = draw(st.integers(0, 99))
    month = draw(st.sampled_from([0, *range(1, 13)]))
    month += draw(st.sampled_from([0, 0, 20, 40]))
    day = draw(st.integers(0, 31))
    serial = draw(st.integers(1, 998))
    digits = f"{year:02d}{month:02d}{day:02d}{serial:03d}"
    return _insz(digits, draw(st.booleans()))


# `format: insz` in the document: 11 digits whose check the gateway verifies.
schemathesis.openapi.format("insz", insz_numbers())

_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")


@schemathesis.hook
def map_headers(ctx, headers):
    # A valid Idempotency-Key is made unique per test case: reusing one key for two different
    # bodies is answered 422 `idempotency_key_reused` by contract (and tested in
    # tests/integration), which schemathesis would otherwise count as a rejected valid request.
    if headers and _KEY.match(str(headers.get("Idempotency-Key", ""))):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers


@schemathesis.hook
def map_body(ctx, body):
    # A data-subject request cannot be received in the future (422 `invalid_date`), which
    # JSON Schema's `format: date` cannot say: a valid date after today becomes today.
    if isinstance(body, dict) and isinstance(body.get("received_at"), str):
        try:
            day = datetime.date.fromisoformat(body["received_at"])
        except ValueError:
            return body
        if day > datetime.date.today() and len(body["received_at"]) == 10:
            body["received_at"] = datetime.date.today().isoformat()
    return body
