"""Who may do what on Keel's Kafka topics: one declaration per principal, turned into broker ACLs.

The one table: the local broker launcher applies it (``python -m keel_contracts.acl`` prints
the rules it feeds to the broker), docs/security.md shows it and the tests attack it. Each
service connects as its own SCRAM principal (its service name); ``operator`` is the CLI; the
``admin`` super user creates topics and sets up the rest. Under the KRaft
``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false`` anything not allowed here
is refused.

What a declaration grants, and why:
- ``reads``: READ on the topic (a follower, table or group consumer).
- ``consumes``: topics read by a consumer group; WRITE on their dead-letter topic, since a
  record the consumer cannot handle goes there (with its reason).
- ``writes``: WRITE on the topic.
- ``dead_letters``: WRITE on the dead-letter topic of a topic it only reads (a refused record).
- ``groups``: READ on consumer groups whose id starts with the prefix (a test or a replica set
  may add a suffix; another service's prefix never matches).
- every service WRITEs ``keel.audit`` and nothing more there: no READ, and nobody but the admin
  holds DELETE or ALTER_CONFIGS on any topic, so the audit trail cannot be cut short. It also
  WRITEs and READs ``keel.audit.heads``: its signed chain heads, and at start its own latest
  one, to link its new run to the last (a head is signed by its identity: writing another's
  is caught by ``keel audit verify``).
- every principal may DESCRIBE every catalog topic: start-up checks that the topics exist
  (names and partitions only; no data).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from keel_contracts.topics import (
    APPROVAL_DECISIONS,
    APPROVAL_INTENTS,
    APPROVAL_REQUESTS,
    AUDIT,
    AUDIT_HEADS,
    CHECKPOINTS,
    CONTROL,
    LLM_BUDGET,
    OUTBOX,
    PLANS,
    POLICY_LISTS,
    POLICY_STATE,
    RATELIMIT_SPEND,
    RESULTS,
    SESSIONS,
    SUBTASKS,
    TASK_EVENTS,
    TASKS,
    TOOL_RESULTS,
    all_specs,
    dlq_of,
)

ADMIN = "admin"
OPERATOR = "operator"


@dataclass(frozen=True)
class Access:
    """What one principal needs on the bus: topics it reads and writes, group id prefixes."""

    reads: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    # Topics read (not consumed) whose refused records it dead-letters.
    dead_letters: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    audits: bool = True


@dataclass(frozen=True, order=True)
class Rule:
    """One ALLOW entry: ``principal`` may ``operation`` the ``resource`` named ``name``
    (``pattern`` LITERAL: that name; PREFIXED: every name starting with it)."""

    principal: str
    operation: str
    resource: str
    pattern: str
    name: str

    def line(self) -> str:
        who = f"User:{self.principal}"
        return f"acl {who} {self.operation} {self.resource} {self.pattern} {self.name}"


_EVERY_TOPIC = tuple(s.name for s in all_specs())

# The per-service declaration. Keep it to what the code does: a new topic a service reads or
# writes is added here, or the broker refuses it.
ACCESS: dict[str, Access] = {
    "agent-loop": Access(
        # SESSIONS and TASK_EVENTS: any replica answers Get / StreamEvents (ADR 0013).
        reads=(CONTROL, CHECKPOINTS, TOOL_RESULTS, RATELIMIT_SPEND, SESSIONS, TASK_EVENTS),
        consumes=(TASKS, SUBTASKS, APPROVAL_DECISIONS, PLANS),
        # TASKS and CONTROL: the front door (Submit, Cancel); SUBTASKS and PLANS: plans.
        # RATELIMIT_SPEND (every service): rate limits shared across replicas (ADR 0012).
        writes=(
            *(TASK_EVENTS, RESULTS, CHECKPOINTS, APPROVAL_REQUESTS),
            *(SUBTASKS, PLANS, TASKS, CONTROL, RATELIMIT_SPEND, SESSIONS),
        ),
        groups=("keel-agent-loop",),
    ),
    "approval": Access(
        # Every replica follows requests and intents live (ADR 0014).
        reads=(APPROVAL_DECISIONS, APPROVAL_INTENTS, APPROVAL_REQUESTS, RATELIMIT_SPEND),
        consumes=(APPROVAL_REQUESTS,),
        writes=(APPROVAL_DECISIONS, APPROVAL_INTENTS, RATELIMIT_SPEND),
        # Its start-up rebuild dead-letters a decision it refuses (forged, unsigned).
        dead_letters=(APPROVAL_DECISIONS,),
        groups=("keel-approval",),
    ),
    # POLICY_LISTS: a tool may add to a named list (e.g. a payee once a person approved it).
    "tool-gateway": Access(
        reads=(TOOL_RESULTS, RATELIMIT_SPEND),
        writes=(TOOL_RESULTS, OUTBOX, POLICY_LISTS, RATELIMIT_SPEND),
    ),
    # LLM_BUDGET: budgets shared by every replica (ADR 0015).
    "llm-gateway": Access(
        reads=(RATELIMIT_SPEND, LLM_BUDGET), writes=(RATELIMIT_SPEND, LLM_BUDGET)
    ),
    "memory": Access(reads=(RATELIMIT_SPEND,), writes=(RATELIMIT_SPEND,)),
    # Lists for ``topic: true`` lists; its own reservations for state conditions.
    "policy": Access(
        reads=(POLICY_LISTS, POLICY_STATE, RATELIMIT_SPEND), writes=(POLICY_STATE, RATELIMIT_SPEND)
    ),
    # The CLI: reads everything (watch, audit verify, dlq list), submits tasks and plans,
    # cancels, and replays dead letters to their source topic -- except decisions, which only
    # the approval service writes (a dead-lettered decision is replayed by the admin).
    OPERATOR: Access(
        reads=_EVERY_TOPIC,
        writes=(TASKS, PLANS, SUBTASKS, APPROVAL_REQUESTS, CONTROL, POLICY_LISTS),
        audits=False,
    ),
}

SERVICES: tuple[str, ...] = tuple(name for name in ACCESS if name != OPERATOR)
PRINCIPALS: tuple[str, ...] = (ADMIN, *ACCESS)


def rules() -> list[Rule]:
    """Every ALLOW rule, sorted: the broker's ACLs, derived from ``ACCESS`` and the catalog."""
    out: set[Rule] = set()
    for principal, access in ACCESS.items():
        for topic in _EVERY_TOPIC:
            out.add(Rule(principal, "DESCRIBE", "TOPIC", "LITERAL", topic))
        for topic in access.reads + access.consumes:
            out.add(Rule(principal, "READ", "TOPIC", "LITERAL", topic))
        for topic in access.consumes + access.dead_letters:
            out.add(Rule(principal, "WRITE", "TOPIC", "LITERAL", dlq_of(topic)))
        for topic in access.writes:
            out.add(Rule(principal, "WRITE", "TOPIC", "LITERAL", topic))
        if access.audits:
            out.add(Rule(principal, "WRITE", "TOPIC", "LITERAL", AUDIT))
            out.add(Rule(principal, "WRITE", "TOPIC", "LITERAL", AUDIT_HEADS))
            out.add(Rule(principal, "READ", "TOPIC", "LITERAL", AUDIT_HEADS))
        for prefix in access.groups:
            out.add(Rule(principal, "READ", "GROUP", "PREFIXED", prefix))
            out.add(Rule(principal, "DESCRIBE", "GROUP", "PREFIXED", prefix))
    return sorted(out)


def writers(topic: str) -> set[str]:
    """The principals (besides the admin) allowed to write ``topic``."""
    return {r.principal for r in rules() if r.operation == "WRITE" and r.name == topic}


def main() -> None:
    """Print the table for the launcher: ``user <principal>`` for each SCRAM principal, then
    ``acl User:<principal> <OPERATION> <TYPE> <PATTERN> <name>`` for each rule."""
    lines = [f"user {name}" for name in PRINCIPALS] + [rule.line() for rule in rules()]
    sys.stdout.write("".join(line + "\n" for line in lines))


if __name__ == "__main__":
    main()
