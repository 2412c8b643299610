import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from keel_core.testing import in_memory_audit
from keel_policy.adapters.reloader import PolicyReloader, load_holder
from keel_policy.errors import PolicyFileError
from keel_policy.metrics import PolicyMetrics

ALLOW_CLOCK = "rules:\n  - {id: allow-clock, tool: clock, decision: allow}\n"
DENY_CLOCK = "rules:\n  - {id: deny-clock, tool: clock, decision: deny}\n"
BROKEN = "rules:\n  - {id: x, tool: clock, decision: perhaps}\n"


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_changed_file_is_used_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(ALLOW_CLOCK)
    holder = load_holder(path)
    audit, published = in_memory_audit("policy")
    audit.start()
    registry = CollectorRegistry()
    reloader = PolicyReloader(path, holder, audit, PolicyMetrics(registry), interval_s=0)
    try:
        assert holder.engine.evaluate("clock", {}).decision == "allow"
        assert await reloader.check() == "unchanged"

        path.write_text(DENY_CLOCK)
        assert await reloader.check() == "reloaded"
        assert holder.engine.evaluate("clock", {}).rule_id == "deny-clock"

        path.write_text(BROKEN)
        assert await reloader.check() == "failed"
        assert holder.engine.evaluate("clock", {}).rule_id == "deny-clock"
        # The same broken contents are reported once, not on every poll.
        assert await reloader.check() == "unchanged"

        path.write_text(ALLOW_CLOCK)
        assert await reloader.check() == "reloaded"
        assert holder.engine.evaluate("clock", {}).rule_id == "allow-clock"
    finally:
        await audit.close()
    assert metric(registry, "keel_policy_reloads_total", outcome="ok") == 2
    assert metric(registry, "keel_policy_reloads_total", outcome="error") == 1
    assert metric(registry, "keel_policy_rules") == 1
    actions = [r.action for r in published.audit_records()]
    assert actions == ["policy.reloaded", "policy.reload_failed", "policy.reloaded"]
    failed = published.audit_records()[1]
    assert failed.details["error"].startswith(f"{path}:2: rules.0.decision")
    assert failed.details["kept_fingerprint"] == published.audit_records()[0].details["fingerprint"]


async def test_the_poller_reloads_on_its_own_and_stops_cleanly(tmp_path: Path) -> None:
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    (policy_dir / "default.yaml").write_text(ALLOW_CLOCK)
    holder = load_holder(policy_dir)
    audit, published = in_memory_audit("policy")
    audit.start()
    reloader = PolicyReloader(
        policy_dir, holder, audit, PolicyMetrics(CollectorRegistry()), interval_s=0.02
    )
    await reloader.start()
    try:
        (policy_dir / "acme.yaml").write_text(
            "name: acme\ntenant: acme\nrules: [{id: acme-deny, tool: clock, decision: deny}]\n"
        )
        for _ in range(200):
            if holder.engine.evaluate("clock", {}, tenant="acme").rule_id == "acme-deny":
                break
            await asyncio.sleep(0.01)
        assert holder.engine.evaluate("clock", {}, tenant="acme").rule_id == "acme-deny"
        assert holder.engine.evaluate("clock", {}).rule_id == "allow-clock"
    finally:
        await reloader.stop()
        await audit.close()
    loaded, reloaded = published.audit_records()[:2]
    assert (loaded.action, loaded.details["sets"]) == ("policy.loaded", ["default"])
    assert (reloaded.action, reloaded.details["sets"]) == ("policy.reloaded", ["acme", "default"])


async def test_a_deleted_file_keeps_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(ALLOW_CLOCK)
    holder = load_holder(path)
    audit, _ = in_memory_audit("policy")
    audit.start()
    reloader = PolicyReloader(path, holder, audit, PolicyMetrics(CollectorRegistry()), 0)
    try:
        path.unlink()
        assert await reloader.check() == "failed"
        assert holder.engine.evaluate("clock", {}).decision == "allow"
    finally:
        await audit.close()


def test_a_bad_file_at_start_up_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    with pytest.raises(PolicyFileError, match=":2: rules.0.decision"):
        load_holder(path)


LISTED = """
lists:
  contacts: {file: contacts.txt}
vars:
  domain: {file: domain.txt}
rules:
  - id: mail-contacts
    tool: send_email
    decision: allow
    when:
      - {path: to, in: $lists.contacts}
      - {path: to, endswith: $vars.domain}
"""


async def test_an_edited_list_file_reloads_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(LISTED)
    (tmp_path / "contacts.txt").write_text("# who may be mailed\nann@corp.example\n\n")
    (tmp_path / "domain.txt").write_text("@corp.example\n")
    holder = load_holder(path)
    audit, _ = in_memory_audit("policy")
    audit.start()
    reloader = PolicyReloader(path, holder, audit, PolicyMetrics(CollectorRegistry()), 0)
    try:
        assert holder.engine.evaluate("send_email", {"to": "ann@corp.example"}).decision == "allow"
        assert holder.engine.evaluate("send_email", {"to": "bo@corp.example"}).decision == "deny"
        (tmp_path / "contacts.txt").write_text("ann@corp.example\nbo@corp.example\n")
        assert await reloader.check() == "reloaded"
        assert holder.engine.evaluate("send_email", {"to": "bo@corp.example"}).decision == "allow"
        (tmp_path / "domain.txt").write_text("@other.example")
        assert await reloader.check() == "reloaded"
        assert holder.engine.evaluate("send_email", {"to": "bo@corp.example"}).decision == "deny"
        # A list file that disappears fails the reload and keeps the policy in force.
        (tmp_path / "contacts.txt").unlink()
        assert await reloader.check() == "failed"
        assert holder.engine.evaluate("send_email", {"to": "bo@other.example"}).decision == "deny"
    finally:
        await audit.close()


def test_unknown_list_is_a_clear_load_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(LISTED.replace("$lists.contacts", "$lists.contact"))
    (tmp_path / "contacts.txt").write_text("a\n")
    (tmp_path / "domain.txt").write_text("x")
    with pytest.raises(PolicyFileError) as caught:
        load_holder(path)
    assert str(caught.value) == (
        "set 'default' rule 'mail-contacts': unknown list $lists.contact (known: contacts)"
    )
