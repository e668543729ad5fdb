"""Wires the triage graph: ingest → triage → enrich ⇄ tools → verdict → respond → approval → act → close.

Edges between nodes are declared by each node's `Command[Literal[...]]` return type; this module only wires.
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from soctriage.agents import nodes
from soctriage.agents.deps import Deps
from soctriage.agents.state import TriageState


def build_graph(checkpointer: BaseCheckpointSaver) -> CompiledStateGraph:
    graph = StateGraph(TriageState, context_schema=Deps)
    for node in (
        nodes.ingest,
        nodes.triage,
        nodes.enrich,
        nodes.verdict,
        nodes.respond,
        nodes.approval,
        nodes.act,
        nodes.close,
    ):
        graph.add_node(node.__name__, node)
    graph.add_edge(START, "ingest")
    graph.add_edge("close", END)
    return graph.compile(checkpointer=checkpointer)
