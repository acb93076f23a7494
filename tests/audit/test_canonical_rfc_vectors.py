"""canonical_bytes against RFC 8785's own published examples, not only against rfc8785.

test_canonical.py checks the fast path byte for byte against the rfc8785 package; these
vectors check both against the RFC itself, so a shared mistake cannot pass:
- section 3.2.2's example of primitive serialisation;
- section 3.2.3's example of property sorting by UTF-16 code units;
- Appendix B's number samples (IEEE 754 bit pattern → ECMAScript text, or an error).
"""

from __future__ import annotations

import json
import struct

import pytest
import rfc8785

from audit.services import canonical_bytes

# RFC 8785 section 3.2.2: input (as parsed JSON) and the canonical output.
PRIMITIVES_INPUT = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
    ' "literals": [null, true, false]}'
)
PRIMITIVES_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
).encode()

# RFC 8785 section 3.2.3: keys sort by their UTF-16 code units, so the emoji (a surrogate
# pair, D83D DE00) sorts before U+FB33, unlike in code-point order.
SORTING_INPUT = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\U0001f600": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis",
}
SORTING_ORDER = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]

# RFC 8785 Appendix B: IEEE 754 double (hex) → its canonical text; None where the value
# must be refused (NaN, Infinity).
NUMBER_SAMPLES = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("7fffffffffffffff", None),  # NaN
    ("7ff0000000000000", None),  # Infinity
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),  # below 1e-6: exponent form
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(bits))[0]


@pytest.mark.parametrize("writer", [canonical_bytes, rfc8785.dumps], ids=["fedgov", "rfc8785"])
def test_section_3_2_2_primitives(writer):
    assert writer(json.loads(PRIMITIVES_INPUT)) == PRIMITIVES_OUTPUT


@pytest.mark.parametrize("writer", [canonical_bytes, rfc8785.dumps], ids=["fedgov", "rfc8785"])
def test_section_3_2_3_sorting_by_utf16_code_units(writer):
    written = writer(SORTING_INPUT)
    assert list(json.loads(written)) == SORTING_ORDER
    # Only the control character is escaped; U+0080 and the rest stay raw UTF-8.
    assert written.startswith(b'{"\\r":"Carriage Return","1":"One","\xc2\x80":"Control"')


@pytest.mark.parametrize(("bits", "text"), NUMBER_SAMPLES)
@pytest.mark.parametrize("writer", [canonical_bytes, rfc8785.dumps], ids=["fedgov", "rfc8785"])
def test_appendix_b_numbers(writer, bits, text):
    number = _double(bits)
    if text is None:
        with pytest.raises(Exception):  # noqa: B017 — each writer's own refusal
            writer(number)
        with pytest.raises(Exception):  # noqa: B017
            writer({"inside": [number]})  # and not accepted inside a plain-looking tree
        return
    assert writer(number) == text.encode()
    # Inside a container, the fast path assembles the float itself: same text.
    assert writer({"n": [number, 1]}) == b'{"n":[' + text.encode() + b",1]}"
