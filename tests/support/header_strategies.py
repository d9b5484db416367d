"""Hypothesis strategies for header bytes as mail systems get them wrong: byte soup around the pieces
header parsing looks for, and RFC 2047 encoded words with bogus charsets and broken payloads."""

from __future__ import annotations

import base64
import string

from hypothesis import strategies as st


def q_encoded(raw: bytes) -> str:
    """RFC 2047's Q encoding as allowed in a phrase: letters, digits and !*+-/ as they are."""
    keep = string.ascii_letters + string.digits + "!*+-/"
    return "".join("_" if byte == 32 else chr(byte) if chr(byte) in keep else f"={byte:02X}" for byte in raw)


words = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=10)
charsets = st.one_of(st.sampled_from(["utf-8", "UTF-8", "iso-8859-1", "gb2312", "shift_jis", "utf-16", "utf-8*en",
                                      "x-unknown", "unicode-1-1-utf-7", ""]),
                     st.text(alphabet=string.ascii_letters + string.digits + "-_*.'!%&+=/é\udcff", max_size=12))
encoded_words = st.builds(
    lambda charset, encoding, payload: f"=?{charset}?{encoding}?{payload}?=",
    charsets,
    st.sampled_from(["b", "B", "q", "Q", "x", ""]),
    st.one_of(
        st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode()),
        st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode().rstrip("=")[:-1]),
        st.binary(max_size=40).map(q_encoded),
        st.text(alphabet=string.ascii_letters + string.digits + "=_+/?", max_size=30),
    ),
)
header_bytes = st.lists(
    st.one_of(
        st.binary(max_size=200),
        encoded_words.map(lambda word: word.encode("utf-8", "surrogateescape")),
        st.sampled_from([b"From: ", b"To: ", b"Cc: ", b"Date: ", b"Received: ", b"Subject: ", b"\r\n", b"\n", b"\r",
                         b"\r\n\t", b" ", b",", b";", b":", b"<", b">", b"@", b'"', b"(", b")", b"\\", b"=?", b"?=",
                         b"=?utf-8?b?", b"=?x-unknown?q?", b"\x00", b"\xff", b"From a@x Thu Jan  1 00:00:00 2026\n"]),
    ),
    max_size=60,
).map(b"".join)

_LINE_TEXT = st.text(alphabet=string.printable.replace("\r", "").replace("\n", "").replace("\x0b", "").replace("\x0c", "")
                     + "\udce9\udcff", max_size=30)
header_lines = st.one_of(
    st.builds(lambda name, blank, value: f"{name}:{blank}{value}",
              st.sampled_from(["From", "To", "Subject", "X-Odd.Name!", "from", "Bad Name", "", " Indented"]),
              st.sampled_from(["", " ", "\t", " \t "]), _LINE_TEXT),
    st.builds(lambda blank, text: blank + text, st.sampled_from([" ", "\t", "  \t"]), _LINE_TEXT),
    _LINE_TEXT,
    st.just(""),
)
line_breaks = st.sampled_from(["\r\n", "\n", "\r"])


@st.composite
def header_sections(draw: st.DrawFn) -> bytes:
    """Header lines as mailers write them and break them: fields, continuations, lines that are
    neither, blank lines; ended by one line break throughout, or each by its own."""
    lines = draw(st.lists(header_lines, max_size=12))
    if draw(st.booleans()):
        breaks = [draw(line_breaks)] * len(lines)
    else:
        breaks = draw(st.lists(line_breaks, min_size=len(lines), max_size=len(lines)))
    text = "".join(line + line_break for line, line_break in zip(lines, breaks, strict=True))
    if lines and draw(st.booleans()):
        text = text.removesuffix(breaks[-1])
    return text.encode("ascii", "surrogateescape")
