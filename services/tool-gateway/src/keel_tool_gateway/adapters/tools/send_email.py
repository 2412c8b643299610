"""Send an email, by writing it to the outbox: the gateway never talks to a mail server.

The default policy requires approval for ``send_*``, so this runs only through a verified
approval. The message id is derived from the idempotency key: a replay returns the stored
result, and a sender reading the outbox can drop a duplicate by id.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from keel_contracts.canonical import sha256_hex
from keel_tool_gateway.domain.call_context import current_call
from keel_tool_gateway.domain.outbox import OutboundMessage
from keel_tool_gateway.domain.ports import OutboxPort
from keel_tool_gateway.domain.registry import Tool

# One address, no display name: enough to refuse lists, spaces and header tricks.
EMAIL_PATTERN = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"


class SendEmailInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(max_length=254, pattern=EMAIL_PATTERN, description="One email address.")
    subject: str = Field(
        max_length=200, pattern=r"^[^\r\n]*$", description="Subject line, one line of text."
    )
    body: str = Field(max_length=20_000, description="Plain-text body.")


def message_id_for(idempotency_key: str) -> str:
    if not idempotency_key:
        return uuid.uuid4().hex[:16]
    return sha256_hex(f"outbox:{idempotency_key}")[:16]


def make_send_email(outbox: OutboxPort) -> Tool[SendEmailInput]:
    async def run(args: SendEmailInput) -> str:
        call = current_call()
        message = OutboundMessage(
            message_id=message_id_for(call.idempotency_key),
            to=args.to,
            subject=args.subject,
            body=args.body,
            idempotency_key=call.idempotency_key,
            approval_id=call.approval_id,
        )
        await outbox.send(message, session_id=call.session_id, trace=call.traceparent)
        return f"queued message {message.message_id} to {args.to}"

    return Tool(
        name="send_email",
        description="Queue an email to one address (needs a person's approval).",
        input_model=SendEmailInput,
        run=run,
        # The message id is derived from the idempotency key: a sender drops a repeat by id.
        effects="idempotent",
    )
