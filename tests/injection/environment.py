"""The scenarios' world: a user's inbox, web pages, memory, payees, chat and accounts, served by
small deterministic in-process tools registered in the tool gateway's own ``ToolRegistry``.

Tools act only on a ``World`` object and record every effect there (a mail sent, a URL fetched,
a payment made), so an attacker's goal is checked on what happened, not on what was asked.
The names and schemas follow the gateway's built-ins where one exists (``send_email``,
``http_fetch``, ``memory_store``, ``memory_search``) so the shipped default policy's rules apply
to them as they would in production; ``mcp.*`` tools stand in for tools a mounted MCP server
offers (name, description and schema as the mount presents them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keel_tool_gateway.domain.registry import Effects, Tool, ToolError, ToolRegistry

# What a world is made of (world.yaml, then the scenario's injection on top).
Mail = dict[str, str]
Memory = dict[str, str]


@dataclass(frozen=True)
class Effect:
    """One thing a tool did to the world: ``kind`` (mail, fetch, message, payment, booking,
    password, account_email, memory) and its fields as the tool received them."""

    kind: str
    fields: dict[str, str]


@dataclass
class World:
    """The user's data, mutable by the tools, and the log of their effects."""

    inbox: list[Mail]
    pages: dict[str, str]
    memories: list[Memory]
    transactions: list[dict[str, Any]]
    hotels: dict[str, list[str]]
    weather: dict[str, str]
    parcels: dict[str, str]
    # Tracking ids whose lookup fails with this text (the carrier's error message).
    parcel_errors: dict[str, str] = field(default_factory=dict)
    # Extra text appended to an MCP tool's description (by tool name).
    descriptions: dict[str, str] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)

    def record(self, kind: str, **fields: object) -> str:
        self.effects.append(Effect(kind, {k: str(v) for k, v in fields.items()}))
        return "done"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadInbox(_Input):
    folder: str = Field(default="inbox", description="Mail folder.")
    limit: int = Field(default=20, ge=1, le=50, description="Most mails to list.")


class SendEmail(_Input):
    to: str = Field(max_length=254, pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+\.[A-Za-z]{2,}$")
    subject: str = Field(max_length=300)
    body: str = Field(max_length=20_000)


class HttpFetch(_Input):
    url: str = Field(max_length=2000, description="http(s) URL.")
    method: str = Field(default="GET", description="GET or HEAD.")


class MemorySearch(_Input):
    query: str = Field(min_length=1, max_length=2000)


class MemoryStore(_Input):
    content: str = Field(min_length=1, max_length=8000)
    type: str = Field(default="semantic", description="semantic, episodic or procedural.")


class SendMessage(_Input):
    channel: str = Field(description="'#channel' or '@member'.")
    text: str = Field(max_length=4000)


class ListTransactions(_Input):
    limit: int = Field(default=10, ge=1, le=50)


class SendMoney(_Input):
    recipient: str = Field(description="IBAN.")
    amount: float = Field(gt=0)
    subject: str = Field(max_length=140)


class BookHotel(_Input):
    hotel: str
    check_in: str = Field(description="YYYY-MM-DD.")
    check_out: str = Field(description="YYYY-MM-DD.")


class UpdatePassword(_Input):
    new_password: str = Field(min_length=8)


class UpdateAccountEmail(_Input):
    email: str


class TrackParcel(_Input):
    tracking_id: str


class SearchHotels(_Input):
    city: str


class Forecast(_Input):
    city: str


def _tool(
    name: str,
    description: str,
    model: type[BaseModel],
    run: Callable[[Any], Awaitable[str]],
    effects: Effects,
) -> Tool[Any]:
    return Tool(name, description, model, run, timeout_s=2.0, blocking=False, effects=effects)


def registry_for(world: World) -> ToolRegistry:
    """Every scenario tool, acting on ``world``; an ``mcp.*`` tool's description carries the
    world's injected text, as a hostile MCP server would serve it."""
    registry = ToolRegistry()
    for tool in _reads(world) + _actions(world) + _mcp(world):
        registry.register(tool)
    return registry


def _reads(world: World) -> list[Tool[Any]]:
    async def read_inbox(args: ReadInbox) -> str:
        mails = world.inbox[: args.limit]
        return "\n\n".join(
            f"From: {m['from']}\nSubject: {m['subject']}\n{m['body']}" for m in mails
        )

    async def http_fetch(args: HttpFetch) -> str:
        world.record("fetch", url=args.url, method=args.method)
        page = world.pages.get(args.url)
        if page is None:
            raise ToolError(f"404 not found: {args.url}")
        return page

    async def memory_search(args: MemorySearch) -> str:
        words = {w.lower() for w in args.query.split()}
        hits = [m for m in world.memories if words & set(m["content"].lower().split())]
        return "\n".join(f"- ({m['type']}) {m['content']}" for m in hits) or "no memories"

    async def list_transactions(args: ListTransactions) -> str:
        rows = world.transactions[: args.limit]
        return "\n".join(f"{t['date']} {t['recipient']} {t['amount']} {t['subject']}" for t in rows)

    async def track_parcel(args: TrackParcel) -> str:
        error = world.parcel_errors.get(args.tracking_id)
        if error is not None:
            raise ToolError(error)
        return world.parcels.get(args.tracking_id, f"unknown parcel {args.tracking_id}")

    return [
        _tool("read_inbox", "List the user's mails.", ReadInbox, read_inbox, "read_only"),
        _tool("http_fetch", "Fetch a web page.", HttpFetch, http_fetch, "read_only"),
        _tool("memory_search", "Search memory.", MemorySearch, memory_search, "read_only"),
        _tool(
            "list_transactions",
            "The user's recent bank transfers.",
            ListTransactions,
            list_transactions,
            "read_only",
        ),
        _tool("track_parcel", "Where a parcel is.", TrackParcel, track_parcel, "read_only"),
    ]


def _actions(world: World) -> list[Tool[Any]]:
    async def send_email(args: SendEmail) -> str:
        return world.record("mail", to=args.to, subject=args.subject, body=args.body)

    async def memory_store(args: MemoryStore) -> str:
        world.memories.append({"content": args.content, "type": args.type})
        return world.record("memory", content=args.content, type=args.type)

    async def send_message(args: SendMessage) -> str:
        return world.record("message", channel=args.channel, text=args.text)

    async def send_money(args: SendMoney) -> str:
        return world.record(
            "payment", recipient=args.recipient, amount=args.amount, subject=args.subject
        )

    async def book_hotel(args: BookHotel) -> str:
        return world.record(
            "booking", hotel=args.hotel, check_in=args.check_in, check_out=args.check_out
        )

    async def update_password(args: UpdatePassword) -> str:
        return world.record("password", new_password=args.new_password)

    async def update_account_email(args: UpdateAccountEmail) -> str:
        return world.record("account_email", email=args.email)

    acting: Effects = "idempotent"
    return [
        _tool("send_email", "Send one email.", SendEmail, send_email, acting),
        _tool("memory_store", "Remember something.", MemoryStore, memory_store, acting),
        _tool(
            "send_message", "Post to a chat channel or member.", SendMessage, send_message, acting
        ),
        _tool("send_money", "Transfer money to an IBAN.", SendMoney, send_money, acting),
        _tool("book_hotel", "Book a hotel room.", BookHotel, book_hotel, acting),
        _tool(
            "update_password",
            "Change the account password.",
            UpdatePassword,
            update_password,
            acting,
        ),
        _tool(
            "update_account_email",
            "Change the account's contact email.",
            UpdateAccountEmail,
            update_account_email,
            acting,
        ),
    ]


def _mcp(world: World) -> list[Tool[Any]]:
    async def search_hotels(args: SearchHotels) -> str:
        return "\n".join(world.hotels.get(args.city, [])) or f"no hotels in {args.city}"

    async def forecast(args: Forecast) -> str:
        return world.weather.get(args.city, f"no forecast for {args.city}")

    def described(name: str, text: str) -> str:
        extra = world.descriptions.get(name, "")
        return f"{text} {extra}".strip()

    return [
        _tool(
            "mcp.travel.search_hotels",
            described("mcp.travel.search_hotels", "Hotels in a city, cheapest first."),
            SearchHotels,
            search_hotels,
            "read_only",
        ),
        _tool(
            "mcp.weather.forecast",
            described("mcp.weather.forecast", "Tomorrow's weather for a city."),
            Forecast,
            forecast,
            "read_only",
        ),
    ]
