"""OpenAPI component schemas for msgspec structs that say everything the decoder enforces.

Litestar's own struct plugin documents each field's top-level constraints but loses two things
msgspec enforces: constraints on the items of a list (``list[Annotated[str, Meta(min_length=1)]]``
documents as plain strings) and ``forbid_unknown_fields`` (unknown keys are a 400, yet the schema
allows them). A client, or a fuzzer, reading the schema would send bodies the API rejects. This
plugin runs Litestar's and then adds what is missing, for every struct in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin, OpenAPISchemaPluginProtocol

if TYPE_CHECKING:
    from collections.abc import Iterable

    from litestar.typing import FieldDefinition

__all__ = ["PreciseStructSchemaPlugin"]

_KIND: dict[type, OpenAPIType] = {
    msgspec.inspect.StrType: OpenAPIType.STRING,
    msgspec.inspect.IntType: OpenAPIType.INTEGER,
    msgspec.inspect.FloatType: OpenAPIType.NUMBER,
    msgspec.inspect.ListType: OpenAPIType.ARRAY,
}
# msgspec constraint -> Schema attribute, per kind of value.
_NUMBER_BOUNDS = (
    ("ge", "minimum"),
    ("le", "maximum"),
    ("gt", "exclusive_minimum"),
    ("lt", "exclusive_maximum"),
)
_BOUNDS = {
    msgspec.inspect.StrType: (
        ("min_length", "min_length"),
        ("max_length", "max_length"),
        ("pattern", "pattern"),
    ),
    msgspec.inspect.IntType: _NUMBER_BOUNDS,
    msgspec.inspect.FloatType: _NUMBER_BOUNDS,
    msgspec.inspect.ListType: (("min_length", "min_items"), ("max_length", "max_items")),
}


class PreciseStructSchemaPlugin(OpenAPISchemaPlugin):
    """Takes every struct before Litestar's plugin does, has that plugin build the schema, and
    completes it.

    Litestar exports no struct plugin to subclass, so this one finds it among the plugins the
    schema creator consults (the protocol hands the creator to every plugin; its class is not
    public, hence ``Any``): the first other plugin that takes the struct, as Litestar would pick
    it without this one.
    """

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return not field_definition.is_union and field_definition.is_subclass_of(msgspec.Struct)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        litestar_plugin = _next_plugin(field_definition, schema_creator.plugins)
        schema = litestar_plugin.to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if not isinstance(info, msgspec.inspect.StructType):
            return schema
        if info.forbid_unknown_fields:
            schema.additional_properties = False
        for field in info.fields:
            prop = (schema.properties or {}).get(field.encode_name)
            if isinstance(prop, Schema):
                _constrain(prop, field.type)
        return schema


def _next_plugin(
    field_definition: FieldDefinition, plugins: Iterable[OpenAPISchemaPluginProtocol]
) -> OpenAPISchemaPluginProtocol:
    """The plugin Litestar would have picked for the field, were ``PreciseStructSchemaPlugin`` absent."""
    for plugin in plugins:
        if isinstance(plugin, PreciseStructSchemaPlugin):
            continue
        supported = (
            plugin.is_plugin_supported_field(field_definition)
            if isinstance(plugin, OpenAPISchemaPlugin)
            else plugin.is_plugin_supported_type(field_definition.annotation)
        )
        if supported:
            return plugin
    raise LookupError(f"no other OpenAPI schema plugin documents {field_definition.annotation!r}")


def _constrain(schema: Schema, info: Any) -> None:
    """Add the bounds of ``info`` (and of its list items, and union members) that ``schema`` lacks."""
    if isinstance(info, msgspec.inspect.UnionType) or schema.one_of or schema.any_of:
        # msgspec drops UNSET from a union that Litestar still documents as a ``oneOf``.
        members = [t for t in getattr(info, "types", (info,)) if type(t) in _KIND]
        for option in schema.one_of or schema.any_of or ():
            if not isinstance(option, Schema):
                continue
            for member in members:
                if option.type == _KIND[type(member)]:
                    _constrain(option, member)
        if not (schema.one_of or schema.any_of) and len(members) == 1:
            _constrain(schema, members[0])
        return
    for source, target in _BOUNDS.get(type(info), ()):
        value = getattr(info, source)
        if value is not None and getattr(schema, target) is None:
            setattr(schema, target, value)
    if isinstance(info, msgspec.inspect.ListType) and isinstance(schema.items, Schema):
        _constrain(schema.items, info.item_type)
