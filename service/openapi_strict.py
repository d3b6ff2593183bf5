"""OpenAPI for msgspec structs that says what the decoder enforces: unknown fields are rejected.

Litestar's own struct plugin leaves ``additionalProperties`` out, so the schema allowed
what the service answers with 400 (``forbid_unknown_fields=True`` on every request struct).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import Schema
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """``StructSchemaPlugin`` plus ``additionalProperties: false`` for structs that forbid unknown fields."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            schema.additional_properties = False  # the registered component itself
        return schema
