"""``keel plan …``: submit plans (from a file, or as a debate or a pipeline), follow them to
their result, and draw their timeline.

Two ways in, as for ``keel submit``: ``--via kafka`` (the default) publishes the plan on
``keel.plans`` as the operator's Kafka principal, the plan's ``tenant`` taken as written;
``--via grpc`` calls the agent loop's ``SubmitPlan`` at ``KEEL_CLI_AGENT_TARGET`` with the
CLI's token, so the plan is the token's tenant's (an operator token may name one with
``--tenant``), is checked before it is accepted, and is awaited with ``GetPlan``.
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path

from pydantic import ValidationError

from keel_agent_loop import PlanInvalid, check_plan, debate, pipeline
from keel_cli.config import CliSettings
from keel_cli.follow import SessionFollower
from keel_cli.timeline import Timeline, build_timeline, render_html, render_svg, render_text
from keel_cli.watch import answer_of, print_session
from keel_clients import AgentClient, CallOptions, open_channel
from keel_contracts.errors import ConfigError
from keel_contracts.events import Envelope
from keel_contracts.events.plans import PlanSpec, PlanSubmitted, Sampling, Stance
from keel_contracts.topics import PLANS, TASK_EVENTS
from keel_core.bus.producer import EventProducer
from keel_core.bus.reader import read_topic
from keel_core.settings import KafkaSettings
from keel_core.tracing import new_traceparent
from keel_core.yamlfile import load_yaml_model


class PlanFileError(ConfigError):
    """A plan file that cannot be read or is not a plan."""


def add_plan_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = sub.add_parser("plan", help="multi-agent plans")
    plan_sub = plan.add_subparsers(dest="plan_command", required=True)

    def follow_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--plan-id", default="", help="default: a new uuid")
        parser.add_argument("--no-wait", action="store_true", help="print the plan id and exit")
        parser.add_argument("--timeout", type=float, default=600.0)
        parser.add_argument(
            "--via",
            choices=["kafka", "grpc"],
            default="kafka",
            help="kafka: publish on keel.plans; grpc: the agent loop's SubmitPlan, as the token",
        )
        parser.add_argument(
            "--tenant", default="", help="--via grpc with an operator token: whose plan it is"
        )

    submit = plan_sub.add_parser("submit", help="run a plan file (YAML or JSON)")
    submit.add_argument("file", type=Path)
    follow_options(submit)

    debate_cmd = plan_sub.add_parser("debate", help="N agents answer, a judge decides")
    debate_cmd.add_argument("question")
    debate_cmd.add_argument(
        "--agents", type=int, default=3, help="debaters, each with a default stance"
    )
    debate_cmd.add_argument(
        "--stance",
        action="append",
        default=[],
        metavar="NAME[=PROMPT]",
        help="a debater's stance and its system prompt addition (repeat; replaces --agents)",
    )
    debate_cmd.add_argument("--temperature", type=float, default=None, help="debaters' sampling")
    debate_cmd.add_argument("--seed", type=int, default=None, help="debater i gets seed + i - 1")
    debate_cmd.add_argument(
        "--judge", default=None, help="the judge's instruction (default: cite the stances)"
    )
    follow_options(debate_cmd)

    pipe = plan_sub.add_parser("pipeline", help="stages in a chain, each fed the previous output")
    pipe.add_argument("stages", nargs="+")
    pipe.add_argument("--goal", default="")
    follow_options(pipe)

    timeline = plan_sub.add_parser("timeline", help="which agent ran when, and what it waited for")
    timeline.add_argument("plan_id")
    timeline.add_argument("--svg", type=Path, default=None)
    timeline.add_argument("--html", type=Path, default=None)
    timeline.add_argument("--width", type=int, default=60)


async def plan_command(settings: CliSettings, args: argparse.Namespace) -> int:
    if args.plan_command == "timeline":
        return await show_timeline(settings.kafka, args.plan_id, args.width, args.svg, args.html)
    try:
        spec = _spec_of(args)
    except PlanInvalid as exc:
        raise PlanFileError(f"invalid plan: {exc}") from exc
    if args.via == "grpc":
        return await run_plan_via_grpc(
            settings.agent_target, spec, args.plan_id, args.no_wait, args.timeout, args.tenant
        )
    return await run_plan(settings.kafka, spec, args.plan_id, args.no_wait, args.timeout)


def _spec_of(args: argparse.Namespace) -> PlanSpec:
    if args.plan_command == "submit":
        return check_plan(load_yaml_model(args.file, PlanSpec, PlanFileError, "plan file"))
    if args.plan_command == "debate":
        return debate(
            args.question,
            args.agents,
            args.judge or "",
            stances=[parse_stance(text) for text in args.stance],
            sampling=_sampling(args.temperature, args.seed),
        )
    return pipeline(args.goal, args.stages)


def parse_stance(text: str) -> Stance:
    """``strict=Reject anything uncertain.`` (or just ``strict``) as a stance."""
    name, _eq, prompt = text.partition("=")
    try:
        return Stance(name=name.strip(), prompt=prompt.strip())
    except ValidationError as exc:
        raise PlanInvalid(
            f"stance {name.strip()!r}: a name of letters, digits, - or _ (at most 40)"
        ) from exc


def _sampling(temperature: float | None, seed: int | None) -> Sampling | None:
    if temperature is None and seed is None:
        return None
    try:
        return Sampling(temperature=temperature or 0.0, seed=seed)
    except ValidationError as exc:
        raise PlanInvalid("--temperature must be between 0 and 2") from exc


async def publish_plan(settings: KafkaSettings, spec: PlanSpec, plan_id: str = "") -> str:
    """Publish ``PlanSubmitted`` on keel.plans (key = plan id); the plan id."""
    plan_id = plan_id or spec.plan_id or uuid.uuid4().hex
    submitted = PlanSubmitted(
        plan=spec.model_copy(update={"plan_id": plan_id}), submitted_by="keel-cli"
    )
    producer = EventProducer(settings, "cli")
    await producer.start()
    try:
        envelope = Envelope.wrap(
            submitted, source="keel-cli", session_id=plan_id, trace=new_traceparent()
        )
        await producer.publish(PLANS, envelope, key=plan_id)
    finally:
        await producer.stop()
    return plan_id


async def run_plan(
    settings: KafkaSettings, spec: PlanSpec, plan_id: str, no_wait: bool, timeout_s: float
) -> int:
    """Submit and, unless ``no_wait``, follow the plan's result on keel.results like a task."""
    if no_wait:
        print(await publish_plan(settings, spec, plan_id))
        return 0
    async with SessionFollower(settings, start="end") as follower:
        plan_id = await publish_plan(settings, spec, plan_id)
        print(f"plan {plan_id} ({len(spec.nodes)} nodes)")
        result = await print_session(follower, plan_id, timeout_s)
    answer = answer_of(result)
    if answer is None:
        return 1
    print(f"answer: {answer}")
    print(f"(timeline: keel plan timeline {plan_id})")
    return 0


async def run_plan_via_grpc(
    target: str,
    spec: PlanSpec,
    plan_id: str,
    no_wait: bool,
    timeout_s: float,
    tenant: str = "",
) -> int:
    """Submit over ``SubmitPlan`` and, unless ``no_wait``, wait for the answer with
    ``GetPlan`` (the plan runs on even if the wait ends first)."""
    async with open_channel(target) as channel:
        agent = AgentClient(channel, CallOptions(timeout_s=10.0))
        plan_id = await agent.submit_plan(spec.model_dump_json(), plan_id, tenant)
        if no_wait:
            print(plan_id)
            return 0
        print(f"plan {plan_id} ({len(spec.nodes)} nodes)")
        view = await agent.get_plan(plan_id, wait_s=timeout_s)
    if view.status == "completed":
        print(f"answer: {view.answer}")
        print(f"(timeline: keel plan timeline {plan_id})")
        return 0
    if view.status == "running":
        print(f"plan {plan_id} still running after {timeout_s:g} s")
    else:
        print(f"plan {plan_id} failed: {view.error}")
    return 1


async def read_plan_events(settings: KafkaSettings, plan_id: str) -> list[Envelope]:
    """Every event of the plan, its nested plans and their nodes' sessions, read from the start
    of keel.plans and keel.task-events up to their current end (no consumer group)."""
    found: list[Envelope] = []
    for topic in (PLANS, TASK_EVENTS):
        for record in await read_topic(settings, topic, "cli"):
            key = (record.key or b"").decode()
            if key != plan_id and not key.startswith(plan_id + "."):
                continue
            try:
                found.append(Envelope.from_bytes(record.value or b""))
            except ValueError:
                continue
    return found


async def show_timeline(
    settings: KafkaSettings, plan_id: str, width: int, svg: Path | None, html_out: Path | None
) -> int:
    timeline = build_timeline(plan_id, await read_plan_events(settings, plan_id))
    print(render_text(timeline, width))
    write_timeline(timeline, svg, html_out)
    return 0 if timeline.begin is not None else 1


def write_timeline(timeline: Timeline, svg: Path | None, html_out: Path | None) -> None:
    if svg is not None:
        svg.write_text(render_svg(timeline))
        print(f"wrote {svg}")
    if html_out is not None:
        html_out.write_text(render_html(timeline))
        print(f"wrote {html_out}")
