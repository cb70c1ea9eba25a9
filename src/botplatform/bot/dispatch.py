"""One inbound message to a conversation's bot: answer the node its run waits on (on the
version the run started with), or start the flow a trigger names. Shared by the channel path
and the simulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from botplatform.bot.engine import Engine, Inbound, State
from botplatform.bot.flow import Flow
from botplatform.bot.triggers import Candidate, Hit, Intents, select

PinnedFlow = Callable[[str | None], Awaitable[Flow | None]]
EngineFor = Callable[[Flow], Engine]


async def start(state: State, hit: Hit, inbound: Inbound, engine_for: EngineFor) -> None:
    state.bot_id, state.version_id = hit.candidate.bot_id, hit.candidate.version_id
    await engine_for(hit.candidate.flow).start(state, hit.node_id, inbound)


async def dispatch(
    state: State,
    inbound: Inbound,
    candidates: list[Candidate],
    intents: Intents,
    pinned: PinnedFlow,
    engine_for: EngineFor,
) -> bool:
    """True when a bot took the message (a run answered, started, or is busy waiting);
    False when nothing matched, so the channel's plain auto-reply may answer."""
    if state.status == "handoff":
        return True
    if state.status == "running":
        flow = await pinned(state.version_id)
        if flow is not None and state.node_id in flow.nodes:
            hit = await select(candidates, inbound, intents, interrupting_only=True)
            if hit is not None:
                await start(state, hit, inbound, engine_for)
            elif state.waiting == "input":
                await engine_for(flow).answer(state, inbound)
            else:  # a delay or an outside call is under way: noted, the run goes on later
                state.last_input = inbound.said or state.last_input
            return True
        state.status, state.waiting, state.node_id = "idle", None, None  # its version is gone
    hit = await select(candidates, inbound, intents)
    if hit is None:
        return False
    await start(state, hit, inbound, engine_for)
    return True
