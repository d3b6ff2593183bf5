"""Every JSON request body is bounded and typed before anything decodes it into Python objects.

``check_json_body`` is the app's ``before_request`` hook, so it sees every body (search,
``PUT``, the batch ``POST`` and any route added later) once Litestar has read it within
the size limit, and before the route's ``data`` is built:

* **Depth.** A decoder recurses once per nesting level: ~1,000 levels of ``[`` made
  msgspec raise ``RecursionError`` (a 500). A byte scan counts ``[``/``{`` depth outside
  strings (regular expressions in C, a Python step per bracket) and refuses more than
  ``MAX_JSON_DEPTH`` levels; our schemas need three.
* **Strict types.** Litestar converts a decoded body into the route's struct with
  msgspec's *loose* rules (``"5"`` becomes 5, ``"true"`` becomes True), while the API
  promises 400 for wrong types. The body is decoded once more, strictly, into the route's
  ``data`` struct; a mismatch is a 400 naming the field. (A valid body then converts to
  the same value under the loose rules, so the route sees what it saw before.)

Query strings are not touched: there every value is a string by nature.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

MAX_JSON_DEPTH = 32
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A JSON string (or one left unterminated at a line's end: NDJSON lines are separate
# documents and a raw newline cannot be inside a string), or one bracket.
_TOKENS = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"?|[\[\]{}]')
_OPEN = frozenset(b"[{")


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays/objects more than ``limit`` deep (brackets inside strings do not count)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _TOKENS.finditer(body):
        first = match.group()[0]
        if first in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif first != 0x22:  # a closing bracket; strings (0x22 '"') are skipped whole
            depth = max(0, depth - 1)
    return False


@functools.cache
def _strict_decoder(target: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(target, strict=True)


def _field_problem(exc: msgspec.ValidationError) -> dict[str, str]:
    message, _, where = str(exc).partition(" - at `$")
    key = where.rstrip("`").lstrip(".")
    return {"message": message, "key": key, "source": "body"} if key else {"message": message, "source": "body"}


async def check_json_body(request: Request[Any, Any, Any]) -> None:
    """The ``before_request`` hook: refuse too-deep or loosely typed JSON bodies with 400."""
    if request.method not in _BODY_METHODS:
        return None
    body = await request.body()
    if not body:
        return None
    if json_too_deep(body):
        raise ValidationException(
            detail=f"request body nests JSON arrays or objects more than {MAX_JSON_DEPTH} levels deep (the limit)"
        )
    field = request.route_handler.parsed_data_field
    if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, msgspec.Struct)):
        return None
    try:
        _strict_decoder(field.annotation).decode(body)
    except msgspec.ValidationError as exc:
        raise ValidationException(detail=str(exc), extra=[_field_problem(exc)]) from None
    except msgspec.DecodeError:
        return None  # not JSON at all: Litestar's own decoding reports it as it always did
    return None
