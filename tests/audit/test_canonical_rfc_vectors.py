"""canonical_bytes against RFC 8785's own published examples and its authors' test data,
not only against rfc8785.

test_canonical.py checks the fast path byte for byte against the rfc8785 package; these
vectors check both against the sources, so a shared mistake cannot pass. Every vector was
compared word for word with (December 2026):

- RFC 8785: the RFC Editor's text as rendered in ``rfc8785-rfcmarkup.html`` ("rfc8785-2.txt",
  31 May 2020), in the first author's repository cyberphone/ietf-json-canon at commit
  ef5ffbc152efbc33ba13672c42329f3a388bed6e; its XML source ``xmlv3/rfc8785.xml`` at
  e377ae152870288ef0a36938dcb5941df05e42ff has the same vectors. Used: section 3.2.2's
  input, section 3.2.3's canonical output and sorting sample, section 3.2.4's UTF-8 bytes,
  Appendix B's Table 1.
- cyberphone/json-canonicalization at commit 19d51d7fe467d4706a3ff08adf8a748f29fc21e0:
  ``testdata/input/*.json`` with ``testdata/output/*.json`` (the bytes of
  ``testdata/outhex/*.txt``), and ``testdata/README.md``'s ES6 number samples and the
  SHA-256 of the first lines of the number file that ``testdata/numgen.go`` generates.

What the check found: the Appendix B rows, the section 3.2.2 input and the sorting sample
matched. The canonical output matched too, but the RFC gives it in section 3.2.3 (and as
bytes in 3.2.4), not 3.2.2: section 3.2.2 shows ``JSON.stringify()`` output in insertion
order, which is not canonical; the citation is corrected here.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator

import pytest
import rfc8785

from audit.services import canonical_bytes

WRITERS = pytest.mark.parametrize(
    "writer", [canonical_bytes, rfc8785.dumps], ids=["fedgov", "rfc8785"]
)

# RFC 8785 section 3.2.2: the parsed input (the RFC wraps the "numbers" array over two
# lines for display; whitespace between tokens means nothing).
PRIMITIVES_INPUT = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
    ' "literals": [null, true, false]}'
)
# Section 3.2.3: "a properly canonicalized version", without its display line wrap.
PRIMITIVES_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
).encode()
# Section 3.2.4: the same, as the UTF-8 bytes the RFC lists in hexadecimal.
PRIMITIVES_BYTES = bytes.fromhex(
    "7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72"
    "75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a"
    "5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31"
    "65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37"
    "5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30"
    "30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d"
)

# Section 3.2.3: keys sort by their UTF-16 code units, so the emoji (a surrogate pair,
# D83D DE00) sorts before U+FB33, unlike in code-point order.
SORTING_INPUT = """{
  "\\u20ac": "Euro Sign",
  "\\r": "Carriage Return",
  "\\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\\ud83d\\ude00": "Emoji: Grinning Face",
  "\\u0080": "Control",
  "\\u00f6": "Latin Small Letter O With Diaeresis"
}"""
# "Expected argument order after sorting property strings":
SORTING_ORDER = [
    "Carriage Return",
    "One",
    "Control",
    "Latin Small Letter O With Diaeresis",
    "Euro Sign",
    "Emoji: Grinning Face",
    "Hebrew Letter Dalet With Dagesh",
]

# Appendix B, Table 1: IEEE 754 double (hex) → its JSON representation; None where the
# value is not permitted in JSON (NaN, Infinity) and must be refused.
NUMBER_SAMPLES = [
    ("0000000000000000", "0"),  # Zero
    ("8000000000000000", "0"),  # Minus zero
    ("0000000000000001", "5e-324"),  # Min pos number
    ("8000000000000001", "-5e-324"),  # Min neg number
    ("7fefffffffffffff", "1.7976931348623157e+308"),  # Max pos number
    ("ffefffffffffffff", "-1.7976931348623157e+308"),  # Max neg number
    ("4340000000000000", "9007199254740992"),  # Max pos int (1)
    ("c340000000000000", "-9007199254740992"),  # Max neg int (1)
    ("4430000000000000", "295147905179352830000"),  # ~2**68 (2)
    ("7fffffffffffffff", None),  # NaN (3)
    ("7ff0000000000000", None),  # Infinity (3)
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),  # Round to even (4)
]

# testdata/README.md, "Sample lines" of the ES6 number file ("hex-ieee,expected", the hex
# without leading zeros); the two not already in Appendix B come first.
README_NUMBER_SAMPLES = [
    ("4340000000000001", "9007199254740994"),
    ("4340000000000002", "9007199254740996"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("8000000000000000", "0"),
    ("0", "0"),
]

# testdata/input/<name>.json → testdata/output/<name>.json, both as the files hold them
# (non-ASCII written here as escapes: the outputs' bytes are those of outhex/<name>.txt).
TESTDATA = {
    "arrays": (
        '[\n  56,\n  {\n    "d": true,\n    "10": null,\n    "1": [ ]\n  }\n]\n',
        '[56,{"1":[],"10":null,"d":true}]',
    ),
    "french": (
        '{\n  "peach": "This sorting order",\n'
        '  "p\u00e9ch\u00e9": "is wrong according to French",\n'
        '  "p\u00eache": "but canonicalization MUST",\n'
        '  "sin":   "ignore locale"\n}\n',
        '{"peach":"This sorting order","p\u00e9ch\u00e9":"is wrong according to French",'
        '"p\u00eache":"but canonicalization MUST","sin":"ignore locale"}',
    ),
    "structures": (
        '{\n  "1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0},\n  "10": { },\n  "": "empty",\n'
        '  "a": { },\n  "111": [ {"e": "yes","E": "no" } ],\n  "A": { }\n}',
        '{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{"E":"no","e":"yes"}],'
        '"A":{},"a":{}}',
    ),
    # Unicode is not normalised: A and COMBINING RING ABOVE stay two code points.
    "unicode": (
        '{\n  "Unnormalized Unicode":"A\\u030a"\n}\n',
        '{"Unnormalized Unicode":"A\u030a"}',
    ),
    "values": (
        '{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n'
        '  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n'
        '  "literals": [null, true, false]\n}',
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    ),
    "weird": (
        '{\n  "\\u20ac": "Euro Sign",\n  "\\r": "Carriage Return",\n  "\\u000a": "Newline",\n'
        '  "1": "One",\n  "\\u0080": "Control\\u007f",\n  "\\ud83d\\ude02": "Smiley",\n'
        '  "\\u00f6": "Latin Small Letter O With Diaeresis",\n'
        '  "\\ufb33": "Hebrew Letter Dalet With Dagesh",\n'
        '  "</script>": "Browser Challenge"\n}\n',
        '{"\\n":"Newline","\\r":"Carriage Return","1":"One","</script>":"Browser Challenge",'
        '"\u0080":"Control\u007f","\u00f6":"Latin Small Letter O With Diaeresis",'
        '"\u20ac":"Euro Sign","\U0001f602":"Smiley","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    ),
}

# testdata/numgen.go's generator: these values, then the 2,000 consecutive doubles from the
# smallest normal one (0x0010000000000000) up, then doubles drawn from a SHA-256 chain
# (zero, NaN and infinities skipped). README.md records the SHA-256 and size of the file's
# first lines.
# Four to a line, as numgen.go lists them.
# fmt: off
NUMGEN_STATIC = [
    "0000000000000000", "8000000000000000", "0000000000000001", "8000000000000001",
    "c46696695dbd1cc3", "c43211ede4974a35", "c3fce97ca0f21056", "c3c7213080c1a6ac",
    "c39280f39a348556", "c35d9b1f5d20d557", "c327af4c4a80aaac", "c2f2f2a36ecd5556",
    "c2be51057e155558", "c28840d131aaaaac", "c253670dc1555557", "c21f0b4935555557",
    "c1e8d5d42aaaaaac", "c1b3de4355555556", "c17fca0555555556", "c1496e6aaaaaaaab",
    "c114585555555555", "c0e046aaaaaaaaab", "c0aa0aaaaaaaaaaa", "c074d55555555555",
    "c040aaaaaaaaaaab", "c00aaaaaaaaaaaab", "bfd5555555555555", "bfa1111111111111",
    "bf6b4e81b4e81b4f", "bf35d867c3ece2a5", "bf0179ec9cbd821e", "becbf647612f3696",
    "be965e9f80f29212", "be61e54c672874db", "be2ca213d840baf8", "bdf6e80fe033c8c6",
    "bdc2533fe68fd3d2", "bd8d51ffd74c861c", "bd5774ccac3d3817", "bd22c3d6f030f9ac",
    "bcee0624b3818f79", "bcb804ea293472c7", "bc833721ba905bd3", "bc4ebe9c5db3c61e",
    "bc18987d17c304e5", "bbe3ad30dfcf371d", "bbaf7b816618582f", "bb792f9ab81379bf",
    "bb442615600f9499", "bb101e77800c76e1", "bad9ca58cce0be35", "baa4a1e0a3e6fe90",
    "ba708180831f320d", "ba3a68cd9e985016", "446696695dbd1cc3", "443211ede4974a35",
    "43fce97ca0f21056", "43c7213080c1a6ac", "439280f39a348556", "435d9b1f5d20d557",
    "4327af4c4a80aaac", "42f2f2a36ecd5556", "42be51057e155558", "428840d131aaaaac",
    "4253670dc1555557", "421f0b4935555557", "41e8d5d42aaaaaac", "41b3de4355555556",
    "417fca0555555556", "41496e6aaaaaaaab", "4114585555555555", "40e046aaaaaaaaab",
    "40aa0aaaaaaaaaaa", "4074d55555555555", "4040aaaaaaaaaaab", "400aaaaaaaaaaaab",
    "3fd5555555555555", "3fa1111111111111", "3f6b4e81b4e81b4f", "3f35d867c3ece2a5",
    "3f0179ec9cbd821e", "3ecbf647612f3696", "3e965e9f80f29212", "3e61e54c672874db",
    "3e2ca213d840baf8", "3df6e80fe033c8c6", "3dc2533fe68fd3d2", "3d8d51ffd74c861c",
    "3d5774ccac3d3817", "3d22c3d6f030f9ac", "3cee0624b3818f79", "3cb804ea293472c7",
    "3c833721ba905bd3", "3c4ebe9c5db3c61e", "3c18987d17c304e5", "3be3ad30dfcf371d",
    "3baf7b816618582f", "3b792f9ab81379bf", "3b442615600f9499", "3b101e77800c76e1",
    "3ad9ca58cce0be35", "3aa4a1e0a3e6fe90", "3a708180831f320d", "3a3a68cd9e985016",
    "4024000000000000", "4014000000000000", "3fe0000000000000", "3fa999999999999a",
    "3f747ae147ae147b", "3f40624dd2f1a9fc", "3f0a36e2eb1c432d", "3ed4f8b588e368f1",
    "3ea0c6f7a0b5ed8d", "3e6ad7f29abcaf48", "3e35798ee2308c3a", "3ed539223589fa95",
    "3ed4ff26cd5a7781", "3ed4f95a762283ff", "3ed4f8c60703520c", "3ed4f8b72f19cd0d",
    "3ed4f8b5b31c0c8d", "3ed4f8b58d1c461a", "3ed4f8b5894f7f0e", "3ed4f8b588ee37f3",
    "3ed4f8b588e47da4", "3ed4f8b588e3849c", "3ed4f8b588e36bb5", "3ed4f8b588e36937",
    "3ed4f8b588e368f8", "3ed4f8b588e368f1", "3ff0000000000000", "bff0000000000000",
    "bfeffffffffffffa", "bfeffffffffffffb", "3feffffffffffffa", "3feffffffffffffb",
    "3feffffffffffffc", "3feffffffffffffe", "bfefffffffffffff", "bfefffffffffffff",
    "3fefffffffffffff", "3fefffffffffffff", "3fd3333333333332", "3fd3333333333333",
    "3fd3333333333334", "0010000000000000", "000ffffffffffffd", "000fffffffffffff",
    "7fefffffffffffff", "ffefffffffffffff", "4340000000000000", "c340000000000000",
    "4430000000000000", "44b52d02c7e14af5", "44b52d02c7e14af6", "44b52d02c7e14af7",
    "444b1ae4d6e2ef4e", "444b1ae4d6e2ef4f", "444b1ae4d6e2ef50", "3eb0c6f7a0b5ed8c",
    "3eb0c6f7a0b5ed8d", "41b3de4355555553", "41b3de4355555554", "41b3de4355555555",
    "41b3de4355555556", "41b3de4355555557", "becbf647612f3696", "43143ff3c1cb0959",
]
# fmt: on
NUMGEN_RECORDS = {
    1000: ("be18b62b6f69cdab33a7e0dae0d9cfa869fda80ddc712221570f9f40a5878687", 37967),
    10000: ("b9f7a8e75ef22a835685a52ccba7f7d6bdc99e34b010992cbc5864cd12be6892", 399022),
    100000: ("22776e6d4b49fa294a0d0f349268e5c28808fe7e0cb2bcbe28f63894e494d4c7", 4031728),
}


def _double(bits: str) -> float:
    return struct.unpack(">d", int(bits, 16).to_bytes(8, "big"))[0]


def _numgen() -> Iterator[int]:
    """The IEEE 754 bit patterns of numgen.go's sequence, in order."""
    for bits in NUMGEN_STATIC:
        yield int(bits, 16)
    for i in range(2000):
        yield 0x0010000000000000 + i
    block = bytes(32)
    while True:
        block = hashlib.sha256(block).digest()
        for start in range(0, 32, 8):
            u64 = int.from_bytes(block[start : start + 8], "little")
            value = struct.unpack("<d", block[start : start + 8])[0]
            if value != 0 and value == value and abs(value) != float("inf"):
                yield u64


@WRITERS
def test_section_3_2_2_input_canonicalises_to_sections_3_2_3_and_3_2_4(writer):
    written = writer(json.loads(PRIMITIVES_INPUT))
    assert written == PRIMITIVES_OUTPUT
    assert written == PRIMITIVES_BYTES


@WRITERS
def test_section_3_2_3_sorting_by_utf16_code_units(writer):
    written = writer(json.loads(SORTING_INPUT))
    assert list(json.loads(written).values()) == SORTING_ORDER
    # Only the control character is escaped; U+0080 and the rest stay raw UTF-8.
    assert written.startswith(b'{"\\r":"Carriage Return","1":"One","\xc2\x80":"Control"')


@pytest.mark.parametrize(("bits", "text"), NUMBER_SAMPLES + README_NUMBER_SAMPLES)
@WRITERS
def test_appendix_b_and_readme_numbers(writer, bits, text):
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


@pytest.mark.parametrize("name", sorted(TESTDATA))
@WRITERS
def test_testdata_input_gives_its_output(writer, name):
    given, expected = TESTDATA[name]
    assert writer(json.loads(given)) == expected.encode()


@WRITERS
def test_numgen_number_file_hashes_as_recorded(writer):
    """The first 100,000 lines of the ES6 number file, written by ``writer``, hash as
    testdata/README.md records at 1,000, 10,000 and 100,000 lines."""
    digest, size, seen = hashlib.sha256(), 0, {}
    for line, bits in enumerate(_numgen(), start=1):
        text = f"{bits:x},".encode() + writer(_double(f"{bits:016x}")) + b"\n"
        digest.update(text)
        size += len(text)
        if line in NUMGEN_RECORDS:
            seen[line] = (digest.hexdigest(), size)
            if len(seen) == len(NUMGEN_RECORDS):
                break
    assert seen == NUMGEN_RECORDS
