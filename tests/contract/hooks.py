"""Schemathesis hooks for partnergate's contract test (loaded with SCHEMATHESIS_HOOKS).

They teach schemathesis what the OpenAPI document names but JSON Schema cannot compute,
and nothing else: no check is weakened here.
"""

import datetime
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
# report::MAX_PERIOD_DAYS: a report covers at most 12 years.
_MAX_PERIOD = datetime.timedelta(days=366 * 12)


def _date(value):
    if not isinstance(value, str) or len(value) != 10:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


# `before_call` runs before every request of every phase (examples, coverage, fuzzing,
# stateful); the `map_*` hooks reach only the generated phases. It changes only values the
# document calls valid into other valid values, so positive cases stay positive and negative
# cases negative.
@schemathesis.hook
def before_call(ctx, case, kwargs):
    # A valid Idempotency-Key is made unique per request: reusing one key for two different
    # bodies is answered 422 `idempotency_key_reused` by contract (and tested in
    # tests/integration), which schemathesis would otherwise count as a rejected valid request.
    headers = case.headers
    if headers and _KEY.match(str(headers.get("Idempotency-Key", ""))):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    # A data-subject request cannot be received in the future (422 `invalid_date`), which
    # JSON Schema's `format: date` cannot say: a valid date after today becomes today.
    body = case.body
    if isinstance(body, dict):
        day = _date(body.get("received_at"))
        if day is not None and day > datetime.date.today():
            body["received_at"] = datetime.date.today().isoformat()
    # A report period runs forwards and covers at most 12 years (400 `invalid_period`), which
    # two `format: date` parameters cannot say: valid dates are put in order and the span cut.
    query = case.query
    if isinstance(query, dict):
        start, end = _date(query.get("from")), _date(query.get("to"))
        if start is not None and end is not None:
            start, end = min(start, end), max(start, end)
            if end - start > _MAX_PERIOD:
                end = start + _MAX_PERIOD
            query["from"], query["to"] = start.isoformat(), end.isoformat()
