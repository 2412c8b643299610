"""The peer of Keel's durable step: LangGraph 1.2 with its SQLite checkpointer, in-process.

The workload is Keel's e2e bench (bench/e2e_overhead.py) rebuilt the way a LangGraph user
would write it: a ReAct-style graph (an ``agent`` node calling a chat model, a ``ToolNode``
running what it asked for, ``tools_condition`` between them) whose scripted chat model asks for
a no-op tool K times, then answers. No model time, no tool time: what is measured is the
framework's own cost per step, checkpointing included. Every super-step is checkpointed to a
SQLite file on disk (``SqliteSaver``, the library's defaults) with ``durability="sync"``: the
checkpoint is written before the next step starts, the closest LangGraph has to Keel awaiting
an acknowledged write before it goes on.

Measured, as Keel's bench does: per-step latency with one session at a time (the time between
successive tool results, one full think-act-observe step each); steps/s with ``--concurrency``
sessions at once (one thread each on one compiled graph and one checkpointer, as a threaded
LangGraph server would run them); CPU per step from this process's own times. A step is one
model call (K+1 per session), as Keel's ``TaskCompleted.iterations`` counts them.

Two halves in one file: ``ensure_venv`` and ``run`` are called by bench/side_by_side.py from
Keel's .venv (standard library only); the rest runs with the LangGraph venv's python
(``python bench/peer_langgraph.py --steps 10 ...``) and prints one JSON object. LangGraph is
never installed into .venv: its own virtualenv under ~/.cache/keel/bench-langgraph is built on
first use from bench/requirements-langgraph.txt, and rebuilt when that file changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-langgraph.txt"
VENV = Path.home() / ".cache" / "keel" / "bench-langgraph"


def ensure_venv() -> Path:
    """The python of LangGraph's own virtualenv, built once per requirements file (minutes)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    print(f"• installing {REQUIREMENTS.name} into {VENV} (first run)", flush=True)
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest + "\n")
    return python


def run(steps: int, sessions: int, concurrency: int, timeout_s: float = 900) -> dict[str, Any]:
    """Run this file with the LangGraph venv's python; its JSON result."""
    python = ensure_venv()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["LANGSMITH_TRACING"] = "false"  # no tracing to a service that is not there
    command = [str(python), str(Path(__file__).resolve())]
    command += ["--steps", str(steps), "--sessions", str(sessions)]
    command += ["--concurrency", str(concurrency)]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"peer_langgraph.py failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- below: runs inside the LangGraph venv ---------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds() -> float:
    """user + system time of this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_graph(steps: int, db_path: Path) -> Any:
    """The ReAct graph over a scripted model, compiled with a SQLite checkpointer."""
    import sqlite3
    from collections.abc import Sequence

    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    @tool
    def noop() -> str:
        """Do nothing and say so."""
        return "ok"

    class ScriptedModel(BaseChatModel):
        """Asks for ``noop`` until the history holds ``steps`` tool results, then answers:
        Keel's scripted provider for the goal ``bench: run K no-op steps``, stateless so every
        session (and every thread) can share one instance."""

        steps: int

        @property
        def _llm_type(self) -> str:
            return "scripted"

        def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
            return self  # the script knows its one tool

        def _generate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **_: Any
        ) -> ChatResult:
            done = sum(isinstance(m, ToolMessage) for m in messages)
            if done < self.steps:
                call = {"name": "noop", "args": {}, "id": f"call-{done}", "type": "tool_call"}
                message = AIMessage(content="", tool_calls=[call])
            else:
                message = AIMessage(content=f"ran {done} no-op steps")
            return ChatResult(generations=[ChatGeneration(message=message)])

    model = ScriptedModel(steps=steps)

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([noop]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    connection = sqlite3.connect(str(db_path), check_same_thread=False)
    saver = SqliteSaver(connection)
    saver.setup()
    return graph.compile(checkpointer=saver)


def run_session(graph: Any, thread_id: str, steps: int) -> tuple[list[float], int]:
    """One session to its answer: the times of its tool results and its model calls."""
    tool_results: list[float] = []
    model_calls = 0
    config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 2 * steps + 10}
    goal = {"messages": [("user", f"bench: run {steps} no-op steps")]}
    for update in graph.stream(goal, config, stream_mode="updates", durability="sync"):
        if "tools" in update:
            tool_results.append(time.perf_counter())
        elif "agent" in update:
            model_calls += 1
    if len(tool_results) != steps:
        raise RuntimeError(f"{thread_id}: {len(tool_results)} tool results, wanted {steps}")
    return tool_results, model_calls


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    work = Path(tempfile.mkdtemp(prefix="keel-bench-langgraph-"))
    try:
        graph = build_graph(args.steps, work / "checkpoints.db")
        for index in range(3):  # warm-up, as Keel's bench does
            run_session(graph, f"warm-{index}", args.steps)
        latencies: list[float] = []
        cpu_before = cpu_seconds()
        sequential_steps = 0
        for index in range(args.sessions):
            times, calls = run_session(graph, f"seq-{index}", args.steps)
            latencies += [b - a for a, b in zip(times, times[1:], strict=False)]
            sequential_steps += calls
        sequential_cpu = cpu_seconds() - cpu_before

        calls_by_session: list[int] = []
        errors: list[BaseException] = []
        gate = threading.Barrier(args.concurrency + 1)

        def one(index: int) -> None:
            gate.wait()
            try:
                calls_by_session.append(run_session(graph, f"conc-{index}", args.steps)[1])
            except BaseException as error:  # noqa: BLE001 - reported below, the run fails
                errors.append(error)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.concurrency)]
        for thread in threads:
            thread.start()
        cpu_before = cpu_seconds()
        started = time.perf_counter()
        gate.wait()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        concurrent_cpu = cpu_seconds() - cpu_before
        if errors:
            raise errors[0]
        concurrent_steps = sum(calls_by_session)
        db_bytes = (work / "checkpoints.db").stat().st_size
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "versions": {
            name: version(name)
            for name in ("langgraph", "langgraph-checkpoint-sqlite", "langchain-core")
        },
        "step_p50_ms": statistics.median(latencies) * 1000,
        "step_p99_ms": percentile(latencies, 0.99) * 1000,
        "steps_measured": len(latencies),
        "sequential_cpu_ms_per_step": sequential_cpu / sequential_steps * 1000,
        "concurrent_sessions": args.concurrency,
        "concurrent_steps": concurrent_steps,
        "concurrent_wall_s": wall,
        "steps_per_second": concurrent_steps / wall,
        "cpu_ms_per_step": concurrent_cpu / concurrent_steps * 1000,
        "checkpoint_db_bytes": db_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="sequential sessions")
    parser.add_argument("--steps", type=int, default=10, help="tool steps per session")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(measure(args)))


if __name__ == "__main__":
    main()
