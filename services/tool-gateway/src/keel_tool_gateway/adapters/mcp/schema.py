"""Input models for MCP tools, built from the JSON schema each tool declares.

The gateway validates every call with a tool's pydantic input model before running it. An MCP
tool's contract is a JSON schema, so its model accepts any object and checks it against that
schema with ``jsonschema`` (the validator the schema's ``$schema`` names, Draft 2020-12 by
default); a violation is a pydantic ``ValidationError`` like any other tool's, and the call
never reaches the server.
"""

from __future__ import annotations

from typing import Any, ClassVar

import jsonschema
from pydantic import BaseModel, ConfigDict, create_model, model_validator
from pydantic_core import PydanticCustomError


class JsonSchemaInput(BaseModel):
    """Any JSON object that satisfies ``validator``'s schema; ``arguments()`` gives it back."""

    model_config = ConfigDict(extra="allow")

    validator: ClassVar[jsonschema.protocols.Validator]

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        problems = [
            f"{_where(error)}: {error.message}" if error.absolute_path else error.message
            for error in sorted(cls.validator.iter_errors(data), key=lambda e: list(e.path))
        ]
        if problems:
            raise PydanticCustomError(
                "json_schema", "{problems}", {"problems": "; ".join(problems)}
            )
        return data

    def arguments(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


def input_model_for(model_name: str, schema: dict[str, Any]) -> type[JsonSchemaInput]:
    """A model class for ``schema``; raises ``jsonschema.SchemaError`` if it is not valid."""
    schema = dict(schema) or {"type": "object"}
    validator_class = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)
    validator_class.check_schema(schema)
    model = create_model(model_name, __base__=JsonSchemaInput)
    model.validator = validator_class(schema)
    return model


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path)
