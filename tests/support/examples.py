"""How many examples a property test draws: the count it states under the CI profile, a third of it (at least 20)
in the fast loop.

`scripts/test.sh` (what `.ci/run` runs) sets `HYPOTHESIS_PROFILE=ci`, so every CI run draws the full count each test
names. A developer's `pytest tests/unit` uses the `dev` profile: the same properties over fewer random inputs, which
still finds the shallow failures in seconds and keeps the unit tier under 30 s. A failure found either way is saved in
.hypothesis/ and replayed first on the next run. Only the explicit counts of the expensive properties go through
`examples()`; tests on hypothesis' default (100) draw the same under both profiles.
"""

from __future__ import annotations

import os

from hypothesis import settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
settings.register_profile("ci", print_blob=True)
settings.register_profile("dev")
settings.load_profile(PROFILE)


def examples(count: int) -> int:
    """`count` under the CI profile, else a third of it, at least 20 (and never more than `count`)."""
    return count if PROFILE == "ci" else min(count, max(20, count // 3))
