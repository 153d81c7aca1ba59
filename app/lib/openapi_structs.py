"""OpenAPI component schemas for msgspec structs that say everything the decoder enforces.

Litestar's own struct plugin documents each field's top-level constraints but loses two things
msgspec enforces: constraints on the items of a list (``list[Annotated[str, Meta(min_length=1)]]``
documents as plain strings) and ``forbid_unknown_fields`` (unknown keys are a 400, yet the schema
allows them). A client, or a fuzzer, reading the schema would send bodies the API rejects. This
plugin runs Litestar's and then adds what is missing, for every struct in one place.

It also writes two things more plainly than Litestar does: a ``oneOf`` of a single schema (what
an optional PATCH field with ``UNSET`` becomes) is that schema, and ``number | integer`` is a
number. And a string field marked with ``json_text(T)`` documents the JSON text it carries
(``contentMediaType``/``contentSchema``), as a Server-Sent Event's ``data:`` does.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin, OpenAPISchemaPluginProtocol
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["PreciseStructSchemaPlugin", "any_of", "json_text"]

_JSON_TEXT = "json_text"


def json_text(content: Any, description: str | None = None) -> msgspec.Meta:
    """Marks a ``str`` field that carries JSON text of type ``content``:
    ``Annotated[str, json_text(EventOut)]``."""
    return msgspec.Meta(description=description, extra={_JSON_TEXT: content})


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
            if not isinstance(prop, Schema):
                continue
            _constrain(prop, field.type)
            _simplify(prop)
            content = getattr(field.type, "extra", None) or {}
            if _JSON_TEXT in content:
                assert schema.properties is not None
                schema.properties[field.encode_name] = Schema(
                    type=OpenAPIType.STRING,
                    description=prop.description,
                    content_media_type="application/json",
                    content_schema=any_of(
                        schema_creator.for_field_definition(
                            FieldDefinition.from_annotation(content[_JSON_TEXT])
                        )
                    ),
                )
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


def any_of(schema: Schema | Any) -> Schema | Any:
    """A union as ``anyOf``: for kinds of event or frame the schemas cannot tell apart by a constant
    (a completion event may have any name), where ``oneOf`` would reject what matches two."""
    if isinstance(schema, Schema) and schema.one_of:
        schema.any_of, schema.one_of = schema.one_of, None
    return schema


def _simplify(schema: Schema) -> None:
    """``oneOf: [number, integer, …]`` without the integer; a ``oneOf`` of one schema as that schema."""
    options = list(schema.one_of or ())
    if any(isinstance(o, Schema) and o.type == OpenAPIType.NUMBER for o in options):
        options = [o for o in options if not (isinstance(o, Schema) and o.type == OpenAPIType.INTEGER)]
    if schema.one_of is not None:
        schema.one_of = options
    if len(options) == 1 and isinstance(only := options[0], Schema):
        schema.one_of = None
        for attribute in dataclasses.fields(Schema):
            value = getattr(only, attribute.name)
            if value is not None and getattr(schema, attribute.name) is None:
                setattr(schema, attribute.name, value)


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
