"""waiting.until_settled: the one "until it stops falling" watch (a VM run's order watches, a clean start's settle)."""


def test_until_settled_ends_once_the_value_stops_falling():
    from reclaimlab.waiting import until_settled
    values = iter([100, 90, 80, 80, 80, 80, 80, 80, 80, 80, 80, 80])
    last, settled, watched = until_settled(lambda: next(values, 80), quiet_s=0.05, limit_s=5.0, slack=1, poll_s=0.01)
    assert last == 80 and settled and watched < 1.0


def test_until_settled_stops_at_its_limit_while_still_falling_and_on_a_gone_process():
    from reclaimlab.waiting import until_settled
    falling = iter(range(10_000, 0, -10))
    last, settled, watched = until_settled(lambda: next(falling), quiet_s=0.5, limit_s=0.1, slack=1, poll_s=0.01)
    assert not settled and 0.1 <= watched < 0.5 and last < 10_000
    gone = iter([100, None])
    assert until_settled(lambda: next(gone), quiet_s=1, limit_s=1, slack=1, poll_s=0.01)[:2] == (None, False)
