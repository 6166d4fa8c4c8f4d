"""One pagination convention for every list API: a page carries `next_cursor`, an opaque string
the client sends back as `cursor` for the next page (absent or null on the last page).

Inside, a cursor is the last row's id, encoded so that clients do not build or do arithmetic on
it. Plain decimal ids (the cursors of earlier releases) are still accepted.
"""

from __future__ import annotations

import base64
import binascii

from app.core.errors import InvalidInput

_PREFIX = "k1:"
_MAX_ID = 2**63 - 1


def encode_cursor(last_id: int) -> str:
    raw = f"{_PREFIX}{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The id a cursor stands for (None: the first page); InvalidInput for anything else."""
    if cursor is None or not cursor.strip():
        return None
    text = cursor.strip()
    if not text.isdigit():
        try:
            decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = ""
        if not decoded.startswith(_PREFIX) or not decoded[len(_PREFIX) :].isdigit():
            raise InvalidInput(
                f"'{cursor[:40]}' is not a page cursor: send back the next_cursor of a list."
            )
        text = decoded[len(_PREFIX) :]
    if len(text) > 19 or int(text) > _MAX_ID:
        raise InvalidInput("That page cursor is out of range: send back the next_cursor of a list.")
    return int(text)
