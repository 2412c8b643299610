"""The scheduler of one plan: a pure state machine, no Kafka.

Nodes go pending → running → succeeded | failed, or pending → cancelled when something they
depend on (directly or not) failed; a cancelled plan (``cancel``) marks every node that has not
ended cancelled, running ones included (the handler asks their sessions to stop). Ready nodes
(every dependency succeeded) are dispatched in plan order, at most ``max_parallel`` running at
once. The plan is finished when every node is:
succeeded if all nodes succeeded, failed otherwise. Its output is the output of its sink nodes
(those nothing depends on), joined by blank lines.

The whole state is a pydantic model, so the handler checkpoints it as JSON after every event
and a restarted orchestrator continues from there. Every transition is idempotent: a node that
is not running ignores a second "finished".
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from keel_agent_loop.plans.validation import check_plan, render_goal
from keel_contracts.events.plans import (
    NodeStatus,
    PlanSpec,
    PlanStatus,
    Sampling,
    Stance,
    node_session_id,
)

FINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class NodeRun(BaseModel):
    status: NodeStatus = "pending"
    session_id: str = ""
    goal: str = ""
    output: str = ""
    error: str = ""


class Stop(BaseModel):
    """A running node to stop when its plan is cancelled: a session, or a nested plan."""

    model_config = ConfigDict(frozen=True)

    node_id: str
    session_id: str
    kind: str


class Dispatch(BaseModel):
    """A node to start: an agent session on ``keel.subtasks`` or a child plan."""

    model_config = ConfigDict(frozen=True)

    node_id: str
    session_id: str
    goal: str
    kind: str
    agent_profile: str
    max_iterations: int
    plan: PlanSpec | None = None
    stance: Stance | None = None
    sampling: Sampling | None = None


class PlanState(BaseModel):
    spec: PlanSpec
    parent_plan_id: str = ""
    parent_node_id: str = ""
    parent_session_id: str = ""
    status: PlanStatus = "running"
    nodes: dict[str, NodeRun] = Field(default_factory=dict)
    output: str = ""
    error: str = ""

    @classmethod
    def start(
        cls,
        spec: PlanSpec,
        *,
        parent_plan_id: str = "",
        parent_node_id: str = "",
        parent_session_id: str = "",
    ) -> PlanState:
        """A new plan with every node pending; raises ``PlanInvalid`` for a bad graph."""
        if not spec.plan_id:
            raise ValueError("a plan needs an id before it starts")
        check_plan(spec)
        return cls(
            spec=spec,
            parent_plan_id=parent_plan_id,
            parent_node_id=parent_node_id,
            parent_session_id=parent_session_id,
            nodes={n.id: NodeRun() for n in spec.nodes},
        )

    @property
    def plan_id(self) -> str:
        return self.spec.plan_id

    @property
    def finished(self) -> bool:
        return self.status != "running"

    def statuses(self) -> dict[str, NodeStatus]:
        return {node_id: run.status for node_id, run in self.nodes.items()}

    def ready(self) -> list[str]:
        """Pending nodes whose dependencies all succeeded, in plan order."""
        return [
            n.id
            for n in self.spec.nodes
            if self.nodes[n.id].status == "pending"
            and all(self.nodes[d].status == "succeeded" for d in n.depends_on)
        ]

    def dispatch_ready(self) -> list[Dispatch]:
        """Mark as many ready nodes running as the parallelism limit allows; what to start."""
        if self.finished:
            return []
        running = sum(1 for run in self.nodes.values() if run.status == "running")
        slots = max(self.spec.max_parallel - running, 0)
        outputs = {k: v.output for k, v in self.nodes.items() if v.status == "succeeded"}
        started: list[Dispatch] = []
        for node_id in self.ready()[:slots]:
            node = self.spec.node(node_id)
            run = self.nodes[node_id]
            run.status = "running"
            run.session_id = node_session_id(self.plan_id, node_id)
            run.goal = render_goal(node.goal, self.spec.goal, outputs)
            started.append(
                Dispatch(
                    node_id=node_id,
                    session_id=run.session_id,
                    goal=run.goal,
                    kind=node.kind,
                    agent_profile=node.agent_profile,
                    max_iterations=node.max_iterations,
                    plan=node.plan,
                    stance=node.stance,
                    sampling=node.sampling,
                )
            )
        return started

    def node_finished(
        self, node_id: str, succeeded: bool, output: str = "", error: str = ""
    ) -> bool:
        """Record a node's outcome; False (and no change) unless the node was running."""
        run = self.nodes.get(node_id)
        if self.finished or run is None or run.status != "running":
            return False
        run.status = "succeeded" if succeeded else "failed"
        run.output = output
        run.error = error
        if not succeeded:
            for dependent in self.dependents_of(node_id):
                if self.nodes[dependent].status == "pending":
                    self.nodes[dependent].status = "cancelled"
        self._settle()
        return True

    def cancel(self, reason: str) -> list[Stop]:
        """End a running plan as failed with ``cancelled: <reason>``: no pending node starts,
        and the running ones, returned, are to be stopped (their late results are ignored,
        since the plan has finished). A finished plan is left alone (empty list)."""
        if self.finished:
            return []
        stops = [
            Stop(node_id=n.id, session_id=self.nodes[n.id].session_id, kind=n.kind)
            for n in self.spec.nodes
            if self.nodes[n.id].status == "running"
        ]
        for run in self.nodes.values():
            if run.status not in FINAL:
                run.status = "cancelled"
        self.status = "failed"
        self.error = f"cancelled: {reason or 'cancelled by request'}"
        return stops

    def dependents_of(self, node_id: str) -> list[str]:
        """Every node that depends on ``node_id``, directly or through others, in plan order."""
        found: set[str] = set()
        frontier = [node_id]
        while frontier:
            current = frontier.pop()
            for n in self.spec.nodes:
                if current in n.depends_on and n.id not in found:
                    found.add(n.id)
                    frontier.append(n.id)
        return [n.id for n in self.spec.nodes if n.id in found]

    def sinks(self) -> list[str]:
        depended = {d for n in self.spec.nodes for d in n.depends_on}
        return [n.id for n in self.spec.nodes if n.id not in depended]

    def _settle(self) -> None:
        if any(run.status not in FINAL for run in self.nodes.values()):
            return
        self.output = "\n\n".join(
            self.nodes[s].output for s in self.sinks() if self.nodes[s].status == "succeeded"
        )
        if all(run.status == "succeeded" for run in self.nodes.values()):
            self.status = "succeeded"
            return
        self.status = "failed"
        failed = [
            f"node {k} failed: {v.error or 'no reason given'}"
            for k, v in self.nodes.items()
            if v.status == "failed"
        ]
        cancelled = [k for k, v in self.nodes.items() if v.status == "cancelled"]
        if cancelled:
            failed.append(f"cancelled: {', '.join(cancelled)}")
        self.error = "; ".join(failed)
