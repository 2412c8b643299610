"""The ACL table (keel_contracts.acl) keeps the promises of docs/security.md "Kafka"."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from keel_contracts import acl
from keel_contracts.topics import (
    APPROVAL_DECISIONS,
    AUDIT,
    CATALOG,
    TOOL_RESULTS,
    all_specs,
    dlq_of,
)


def test_only_the_approval_service_writes_decisions() -> None:
    assert acl.writers(APPROVAL_DECISIONS) == {"approval"}


def test_only_the_tool_gateway_writes_the_ledger() -> None:
    assert acl.writers(TOOL_RESULTS) == {"tool-gateway"}


def test_every_service_appends_to_the_audit_and_nobody_reads_deletes_or_alters_it() -> None:
    assert acl.writers(AUDIT) == set(acl.SERVICES)
    on_audit = {(r.principal, r.operation) for r in acl.rules() if r.name == AUDIT}
    assert {op for _, op in on_audit} == {"WRITE", "DESCRIBE", "READ"}
    assert {p for p, op in on_audit if op == "READ"} == {acl.OPERATOR}


def test_no_principal_may_delete_alter_or_create_anything() -> None:
    """Only the admin (a super user, not in the table) deletes records or topics, alters
    configs or ACLs, or creates topics."""
    assert {r.operation for r in acl.rules()} == {"READ", "WRITE", "DESCRIBE"}
    assert all(r.principal != acl.ADMIN for r in acl.rules())


def test_each_consumer_may_dead_letter_what_it_consumes_and_nothing_else() -> None:
    for principal, access in acl.ACCESS.items():
        dlq_writes = {
            r.name
            for r in acl.rules()
            if r.principal == principal and r.operation == "WRITE" and r.name.endswith(".dlq")
        }
        refused = access.consumes + access.dead_letters
        assert dlq_writes == {dlq_of(topic) for topic in refused}, principal
        assert all(topic in {s.name for s in CATALOG if s.has_dlq} for topic in access.consumes)


def test_consumer_groups_are_granted_by_prefix_to_their_service_only() -> None:
    groups = [r for r in acl.rules() if r.resource == "GROUP"]
    assert {(r.principal, r.name) for r in groups} == {
        ("agent-loop", "keel-agent-loop"),
        ("approval", "keel-approval"),
    }
    assert {r.pattern for r in groups} == {"PREFIXED"}


def test_every_rule_names_a_catalog_topic() -> None:
    names = {s.name for s in all_specs()}
    assert {r.name for r in acl.rules() if r.resource == "TOPIC"} <= names


def test_the_launcher_gets_every_principal_and_rule() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        acl.main()
    lines = out.getvalue().splitlines()
    assert [line for line in lines if line.startswith("user ")] == [
        f"user {p}" for p in acl.PRINCIPALS
    ]
    assert [line for line in lines if line.startswith("acl ")] == [r.line() for r in acl.rules()]
    assert "acl User:approval WRITE TOPIC LITERAL keel.approval.decisions" in lines
