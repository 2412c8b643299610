"""A tool whose breaker is open is answered by a declared alternative, under the alternative's
own profile, schema, breaker and policy checks, audited first; with none that can take the call
the answer is what it was before fallbacks existed."""

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from keel_tool_gateway.adapters.resilience.runner import Resilience
from keel_tool_gateway.config import Settings
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.models import ApprovalView, Decision, RequestContext
from keel_tool_gateway.domain.registry import ProfileSettings, Tool, ToolRegistry
from keel_tool_gateway.domain.resilience.fallback import AUDIT_ACTION, FallbackEvent, Fallbacks
from keel_tool_gateway.domain.resilience.settings import ResilienceSettings
from keel_tool_gateway.testing import FlakyLedger, StaticApprovals, StaticPolicy
from keel_tool_gateway.testing.resilience import FakeTime, FlakyDependency

CTX = RequestContext(session_id="s1", agent_id="a1")
# One failure opens a breaker, and nothing is retried: the first call opens it.
SETTINGS = ResilienceSettings(
    retry_max_attempts=1, breaker_failure_threshold=1, breaker_reset_timeout_s=30
)
NOTICE = "flaky is unavailable (circuit open); answered by mirror"


@dataclass
class Audit:
    events: list[FallbackEvent] = field(default_factory=list)
    error: Exception | None = None

    async def __call__(self, event: FallbackEvent) -> None:
        if self.error is not None:
            raise self.error
        self.events.append(event)


@dataclass
class Gateway:
    service: ExecutionService
    resilience: Resilience
    policy: StaticPolicy
    ledger: FlakyLedger
    audit: Audit
    flaky: FlakyDependency

    async def open_breaker(self) -> None:
        """The first call fails and opens ``flaky``'s breaker (it has no fallback to run)."""
        opened = await self.service.execute(CTX, "flaky", "{}")
        assert opened.error == "flaky failed: backend unavailable"
        assert self.resilience.breakers()["flaky"].reopens_in() > 0


def make(
    *alternatives: Tool[Any],
    fallbacks: tuple[str, ...] = ("mirror",),
    configured: dict[str, list[str]] | None = None,
    policy: StaticPolicy | None = None,
    profiles: ProfileSettings | None = None,
    approvals: StaticApprovals | None = None,
    wired: bool = True,
) -> Gateway:
    flaky = FlakyDependency(always=True)
    registry = ToolRegistry(profiles=profiles)
    registry.register(replace(flaky.tool, fallbacks=fallbacks))
    for alt in alternatives:
        registry.register(alt)
    time = FakeTime()
    resilience = Resilience(SETTINGS, clock=time.clock, wall_clock=time.clock, sleep=time.sleep)
    policy, ledger, audit = policy or StaticPolicy("allow"), FlakyLedger(), Audit()
    service = ExecutionService(
        registry,
        policy,
        ledger,
        approvals=approvals,
        resilience=resilience,
        fallbacks=Fallbacks(configured, on_fallback=audit) if wired else None,
    )
    return Gateway(service, resilience, policy, ledger, audit, flaky)


async def _open_named(gw: Gateway, name: str) -> None:
    """Open ``name``'s breaker by one failure counted against it."""
    breaker = gw.resilience.breaker(name)
    with pytest.raises(RuntimeError), breaker.guard(lambda _: True):
        raise RuntimeError(f"{name} down")
    assert breaker.reopens_in() > 0


def mirror(name: str = "mirror") -> FlakyDependency:
    return FlakyDependency(name=name)


async def test_an_open_breaker_is_answered_by_the_alternative_and_the_model_is_told() -> None:
    alt = mirror()
    gw = make(alt.tool)
    await gw.open_breaker()
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert (result.status, result.output) == ("ok", f"{NOTICE}\nok 1")
    assert result.rule_id == "static-allow"
    assert (gw.flaky.calls, alt.calls) == (1, 1)
    # Policy decided the original, then, afresh, the alternative by its own name.
    assert [c.tool for c in gw.policy.calls] == ["flaky", "flaky", "mirror"]
    assert not gw.policy.calls[-1].approved
    # The ledger keeps it under the call's key, naming the tool that ran; a retry replays it.
    entry = gw.ledger.get("k1")
    assert entry is not None
    assert (entry.tool, entry.result.output) == ("mirror", f"{NOTICE}\nok 1")
    replay = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert (replay.output, replay.replayed, alt.calls) == (f"{NOTICE}\nok 1", True, 1)


async def test_the_fallback_is_audited_with_from_to_and_the_reason() -> None:
    gw = make(mirror().tool)
    await gw.open_breaker()
    await gw.service.execute(CTX, "flaky", "{}", "k1")
    [event] = gw.audit.events
    assert AUDIT_ACTION == "tool.fallback"
    assert (event.from_tool, event.to_tool, event.decision) == ("flaky", "mirror", "allow")
    assert event.reason.startswith("circuit open for flaky until ")
    assert event.reason.endswith("; flaky did not run")
    assert (event.idempotency_key, event.session_id) == ("k1", "s1")
    assert event.details()["from"] == "flaky"
    assert event.details()["to"] == "mirror"


async def test_an_alternative_that_cannot_be_audited_does_not_run() -> None:
    alt = mirror()
    gw = make(alt.tool)
    await gw.open_breaker()
    gw.audit.error = RuntimeError("audit down")
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.error.startswith("circuit open for flaky until ")
    assert alt.calls == 0


async def test_an_alternative_denied_by_policy_is_answered_denied() -> None:
    alt = mirror()
    gw = make(alt.tool, policy=StaticPolicy("allow", per_tool={"mirror": "deny"}))
    await gw.open_breaker()
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.status == "denied"
    assert result.error == (
        "flaky is unavailable (circuit open); its alternative mirror did not run: "
        "denied by policy rule static-deny: static deny"
    )
    assert alt.calls == 0
    assert [e.decision for e in gw.audit.events] == ["deny"]
    # Nothing ran: not remembered, so the original answers the key once it is back.
    assert gw.ledger.get("k1") is None


async def test_an_alternative_that_needs_approval_is_answered_needs_approval() -> None:
    alt = mirror()
    gw = make(alt.tool, policy=StaticPolicy("allow", per_tool={"mirror": "require_approval"}))
    await gw.open_breaker()
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.status == "needs_approval"
    assert result.error.startswith(
        "flaky is unavailable (circuit open); its alternative mirror did not run: needs approval"
    )
    assert alt.calls == 0
    assert gw.ledger.get("k1") is None


async def test_an_approval_of_the_original_does_not_carry_over() -> None:
    approved = ApprovalView(
        id="ap-1",
        status="approved",
        tool_name="flaky",
        idempotency_key="k1",
        arguments_json="{}",
    )
    decisions: dict[str, Decision] = {"flaky": "require_approval", "mirror": "require_approval"}
    alt = mirror()
    gw = make(
        alt.tool,
        policy=StaticPolicy("allow", per_tool=dict(decisions)),
        approvals=StaticApprovals([approved]),
    )
    await _open_named(gw, "flaky")
    result = await gw.service.execute(CTX, "flaky", "{}", "k1", approval_id="ap-1")
    assert result.status == "needs_approval"
    assert result.approval_outcome == "approved"  # the original's approval was verified...
    assert [c.approved for c in gw.policy.calls[-2:]] == [True, False]  # ...not the mirror's
    assert alt.calls == 0


async def test_without_an_alternative_the_refusal_is_unchanged() -> None:
    gw = make(fallbacks=())
    await gw.open_breaker()
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.error.startswith("circuit open for flaky until ")
    assert result.error.endswith("; flaky did not run")
    assert gw.audit.events == []


async def test_an_unregistered_alternative_is_skipped() -> None:
    gw = make(fallbacks=("nowhere",))
    await gw.open_breaker()
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.error.endswith("; flaky did not run")


async def test_an_alternative_whose_breaker_is_open_too_is_not_tried() -> None:
    alt = mirror()
    gw = make(alt.tool)
    await gw.open_breaker()
    await _open_named(gw, "mirror")
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.error.startswith("circuit open for flaky until ")
    assert result.error.endswith("; flaky did not run")
    assert alt.calls == 0
    # Skipped before any decision: no policy call, no audit record for it.
    assert [c.tool for c in gw.policy.calls] == ["flaky", "flaky"]
    assert gw.audit.events == []


async def test_the_first_alternative_that_can_take_the_call_answers() -> None:
    down, up = mirror("down"), mirror("up")
    gw = make(down.tool, up.tool, fallbacks=("down", "up"))
    await gw.open_breaker()
    await _open_named(gw, "down")
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.output == "flaky is unavailable (circuit open); answered by up\nok 1"
    assert (down.calls, up.calls) == (0, 1)


async def test_an_alternative_not_offered_to_the_profile_is_skipped() -> None:
    hidden, offered = mirror("hidden"), mirror("offered")
    profiles = ProfileSettings(profiles={"default": ["flaky", "offered"]})
    gw = make(hidden.tool, offered.tool, fallbacks=("hidden", "offered"), profiles=profiles)
    await gw.open_breaker()
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.output.startswith("flaky is unavailable (circuit open); answered by offered\n")
    assert (hidden.calls, offered.calls) == (0, 1)
    assert "hidden" not in [c.tool for c in gw.policy.calls]


class UrlInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str


async def test_an_alternative_whose_schema_refuses_the_arguments_is_skipped() -> None:
    strict = Tool("strict", "needs a url", UrlInput, lambda args: f"got {args.url}")
    gw = make(strict)
    await gw.open_breaker()
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.error.endswith("; flaky did not run")
    assert "strict" not in [c.tool for c in gw.policy.calls]


async def test_the_setting_replaces_the_tools_own_declaration() -> None:
    declared, configured = mirror("mirror"), mirror("configured")
    gw = make(declared.tool, configured.tool, configured={"flaky": ["configured"]})
    await gw.open_breaker()
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.output.startswith("flaky is unavailable (circuit open); answered by configured")
    assert (declared.calls, configured.calls) == (0, 1)


async def test_without_fallbacks_wired_a_declared_alternative_is_not_used() -> None:
    alt = mirror()
    gw = make(alt.tool, wired=False)
    await gw.open_breaker()
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert result.error.endswith("; flaky did not run")
    assert alt.calls == 0


def test_the_mapping_is_a_gateway_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KEEL_TOOL_GATEWAY_RESILIENCE__FALLBACKS", '{"http_fetch": ["http_fetch_mirror"]}'
    )
    assert Settings().resilience.fallbacks == {"http_fetch": ["http_fetch_mirror"]}
