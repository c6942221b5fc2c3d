import time

import pytest

from labkit.control import REQUEST, PauseControl, request_pause
from labkit.errors import Paused
from labkit.pause_relay import relay_pause


def test_an_outer_request_reaches_the_run_in_flight(tmp_path):
    outer, run = tmp_path / "sweep", tmp_path / "sweep" / "run"
    pause = PauseControl(run, "train", min_interval_s=0)
    with pytest.raises(Paused), relay_pause(outer, run, interval_s=0.01):
        request_pause(outer, "stop the sweep")
        deadline = time.monotonic() + 5
        while not pause.requested():
            # the run keeps stepping until the relayed request shows up at its own safe point
            assert time.monotonic() < deadline, "the relay never copied the request"
            time.sleep(0.01)
        pause.acknowledge(3, run / "state.pt")
        raise Paused("paused at step 3")
    # the run took the copy; the sweep's own request waits for the sweep to acknowledge it
    assert (outer / REQUEST).exists() and not (run / REQUEST).exists()
    assert (run / "control" / "pause_ack_train.json").is_file()


def test_a_copy_no_phase_took_is_removed_when_the_run_ends(tmp_path):
    outer, run = tmp_path / "sweep", tmp_path / "sweep" / "run"
    with relay_pause(outer, run, interval_s=0.01) as fired:
        request_pause(outer)
        assert fired.wait(5)
        assert (run / REQUEST).exists()
    assert not (run / REQUEST).exists()


def test_nothing_is_relayed_without_a_request(tmp_path):
    outer, run = tmp_path / "sweep", tmp_path / "sweep" / "run"
    with relay_pause(outer, run, interval_s=0.01) as fired:
        time.sleep(0.05)
    assert not fired.is_set() and not (run / REQUEST).exists()
