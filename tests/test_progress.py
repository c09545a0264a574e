"""Progress lines: count, rate and ETA; throttled in logs, final line always."""

import io

from fvae_tf import progress as progress_lib


def test_log_lines_are_throttled_and_the_last_is_always_printed(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 10.0, 11.0])
    monkeypatch.setattr(progress_lib.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    line = progress_lib.Progress("aligning", 4, "img", stream=stream)  # start at t=0
    line.update(1)  # t=1: within 5 s of the start, not printed
    line.update(2, "1 failed")  # t=2: not printed
    line.update(3)  # t=10: printed, 0.3 img/s, 1 left -> ETA 3 s
    line.update(4)  # t=11: the last one is always printed
    lines = stream.getvalue().splitlines()
    assert lines == ["aligning 3/4, 0.3 img/s, ETA 3 s", "aligning 4/4, 0.4 img/s, ETA 0 s"]


def test_stage_progress_starts_a_line_per_stage(monkeypatch):
    monkeypatch.setattr(progress_lib.time, "monotonic", lambda: 0.0)
    stream = io.StringIO()
    stages = progress_lib.StageProgress(lambda stage: (f"writing {stage}", "pair"), stream)
    stages("train", 0, 2)  # not the last: throttled
    stages("train", 2, 2)
    stages("val", 1, 1)
    lines = [line.split(",")[0] for line in stream.getvalue().splitlines()]
    assert lines == ["writing train 2/2", "writing val 1/1"]
    assert stream.getvalue().count("pair/s") == 2
