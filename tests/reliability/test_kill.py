"""Kill harness: every system, SIGKILLed at seeded random points and run again, ends as if never killed.

Three kills per system (15 in all), chained in one directory (each re-run is killed again until the
last), compared with one unbroken reference run; five seconds after each kill no process of the
killed command may remain.
"""

from __future__ import annotations

import pytest

from .kill_harness import JOBS, harness

KILLS = 3  # per system
SEED = 17


@pytest.mark.parametrize("system", list(JOBS))
def test_a_killed_command_run_again_ends_identical_and_leaves_no_orphan(system, tmp_path, capsys):
    job = JOBS[system]()
    tally = harness(job, tmp_path, kills=KILLS, seed=SEED, max_runs=3 * KILLS)
    with capsys.disabled():
        print(
            f"\nkill harness {job.system}: kills {tally.kills}, identical finals "
            f"{tally.identical}, different finals {len(tally.different)}, orphans "
            f"{len(tally.orphans)} (runs that ended before their kill: {tally.finished_first})"
        )
    assert tally.orphans == [], f"processes left after {tally.kills} kills: {tally.orphans}"
    assert tally.different == []
    assert tally.kills >= KILLS and tally.identical >= 1
