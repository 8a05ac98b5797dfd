"""The release of an episode's platform handles, source by source: what is left, and what became of each.

An episode holds handles of one or more platforms (`Drain.refs`, each a `Ref` with its source). The release
step hands each source's releaser that source's handles, one source after the other, and journals each
source's result with its handles (`Ref.released_at`, `Ref.release_error`) before the next one's, so a
controller restarted between two platforms' releases repeats none that the journal says are done. One source's
temporary failure is retried on its own; its refusal settles its handles only. The episode is released once
every handle is settled (the last source's result is journaled with that final step, in one write).

Deadlines: the episode keeps the earliest `not_after` of every event merged into it, whatever its platform, and
its timers (reset, release deadline) follow it, so every handle's first release is made before the earliest
deadline, before its own. Each handle also keeps its own platform's deadline (`Ref.not_after`): a source's
failing release is retried until that source's own deadline, not the episode's, so a platform whose deadline
is later is not given up at another's (found by the simulation: seed 1670, a GCP release answering 503 over
the agent notice's earlier deadline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from controller.core.models import Drain, Ref


def joined(refs: Sequence[Ref], source: str, handle: str, not_after: float) -> tuple[Ref, ...]:
    """`refs` with `source`'s `handle` added (deadline `not_after`), or, when it is there, its deadline tightened
    to `not_after` if that is earlier (a platform that shortened its deadline for the same handle)."""
    if not any(ref.source == source and ref.handle == handle for ref in refs):
        return (*refs, Ref(source, handle, not_after))

    def tightened(ref: Ref) -> Ref:
        if ref.source != source or ref.handle != handle or ref.settled:
            return ref
        own = not_after if ref.not_after is None else min(ref.not_after, not_after)
        return replace(ref, not_after=own)

    return tuple(tightened(ref) for ref in refs)


def settle(
    refs: Sequence[Ref], source: str, handles: Sequence[str], *, at: float, error: str | None = None
) -> tuple[Ref, ...]:
    """`refs` with `source`'s `handles` released at `at` (or, with `error`, given up for that reason)."""
    done = set(handles)

    def settled(ref: Ref) -> Ref:
        if ref.source != source or ref.handle not in done or ref.settled:
            return ref
        return replace(ref, release_error=error) if error is not None else replace(ref, released_at=at)

    return tuple(settled(ref) for ref in refs)


def listed(drain: Drain) -> str:
    """The episode's handles as a journal line shows them: `h1, h2`, another source's as `source:handle`."""
    return ", ".join(ref.describe(source=drain.source) for ref in drain.refs)


def given_up(refs: Sequence[Ref]) -> str | None:
    """Why handles were given up (None: none was); per source, `gcp: ...; local: ...`, when several hold."""
    several = len({ref.source for ref in refs}) > 1
    reasons = dict.fromkeys(f"{ref.source}: {ref.release_error}" if several else ref.release_error
                            for ref in refs if ref.release_error)
    return "; ".join(str(reason) for reason in reasons) or None
