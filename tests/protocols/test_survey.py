"""SURVEYOR/RESPONDENT: surveys, deadlines, stale answers, states."""
import time

import pytest

import nnofi
from protohelpers import OPTS, wait_pipes


def _answer(resp, tag):
    q = resp.recv()
    resp.send(tag + b":" + q)
    return q


def _collect(surveyor):
    """Every answer until the survey's deadline (then Timeout, once)."""
    got = []
    while True:
        try:
            got.append(surveyor.recv())
        except nnofi.Timeout:
            return got


def test_survey_time_default_is_1000():
    with nnofi.Surveyor() as s:
        assert s.survey_time == 1000
        s.survey_time = 250
        assert s.survey_time == 250
    with nnofi.Surveyor(survey_time=123) as s:
        assert s.survey_time == 123


def test_survey_with_several_respondents(url):
    n = 4
    with nnofi.Surveyor(survey_time=1000, **OPTS) as surveyor:
        ep = surveyor.bind(url)
        resps = [nnofi.Respondent(connect=ep.url, **OPTS) for _ in range(n)]
        try:
            wait_pipes(surveyor, n)
            for rnd in range(3):
                q = b"question %d" % rnd
                surveyor.send(q)
                for i, r in enumerate(resps):
                    assert _answer(r, b"r%d" % i) == q
                got = _collect(surveyor)
                assert sorted(got) == sorted(b"r%d:" % i + q for i in range(n))
        finally:
            for r in resps:
                r.close()


def test_respondent_connected_to_several_surveyors(new_url):
    """Each answer goes back to the surveyor that asked."""
    with nnofi.Surveyor(survey_time=1000, **OPTS) as s1, nnofi.Surveyor(
        survey_time=1000, **OPTS
    ) as s2, nnofi.Respondent(**OPTS) as resp:
        resp.connect(s1.bind(new_url()).url)
        resp.connect(s2.bind(new_url()).url)
        wait_pipes(s1, 1)
        wait_pipes(s2, 1)
        s1.send(b"from s1")
        s2.send(b"from s2")
        questions = {_answer(resp, b"a"), _answer(resp, b"a")}
        assert questions == {b"from s1", b"from s2"}
        assert s1.recv() == b"a:from s1"
        assert s2.recv() == b"a:from s2"
        with pytest.raises(nnofi.Timeout):
            s1.recv()
        with pytest.raises(nnofi.Timeout):
            s2.recv()


def test_survey_deadline_raises_timeout_once_then_bad_state(url):
    with nnofi.Surveyor(survey_time=300, **OPTS) as surveyor, nnofi.Respondent(**OPTS) as resp:
        resp.connect(surveyor.bind(url).url)
        wait_pipes(surveyor, 1)
        t0 = time.monotonic()
        surveyor.send(b"anyone?")
        assert resp.recv() == b"anyone?"  # received but never answered
        with pytest.raises(nnofi.Timeout):
            surveyor.recv()
        elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < 1.5, f"survey deadline of 300 ms hit after {elapsed:.3f}s"
        # the survey is over: no more Timeout, but BadState, at once
        t1 = time.monotonic()
        with pytest.raises(nnofi.BadState):
            surveyor.recv()
        with pytest.raises(nnofi.BadState):
            surveyor.recv(block=False)
        assert time.monotonic() - t1 < 0.5


def test_survey_deadline_counts_from_send(url):
    """recv called late still ends at the deadline set by send."""
    with nnofi.Surveyor(survey_time=400, **OPTS) as surveyor, nnofi.Respondent(**OPTS) as resp:
        resp.connect(surveyor.bind(url).url)
        wait_pipes(surveyor, 1)
        t0 = time.monotonic()
        surveyor.send(b"q")
        _answer(resp, b"r")
        time.sleep(0.2)
        assert surveyor.recv() == b"r:q"
        with pytest.raises(nnofi.Timeout):
            surveyor.recv()
        elapsed = time.monotonic() - t0
        assert 0.35 <= elapsed < 1.5, elapsed


def test_survey_without_respondents_times_out(url):
    with nnofi.Surveyor(survey_time=200, **OPTS) as surveyor:
        surveyor.bind(url)
        t0 = time.monotonic()
        surveyor.send(b"hello?")  # nobody there: does not block
        with pytest.raises(nnofi.Timeout):
            surveyor.recv()
        assert 0.15 <= time.monotonic() - t0 < 1.5


def test_new_survey_drops_stale_answers(url):
    with nnofi.Surveyor(survey_time=500, **OPTS) as surveyor, nnofi.Respondent(**OPTS) as resp:
        resp.connect(surveyor.bind(url).url)
        wait_pipes(surveyor, 1)
        surveyor.send(b"old")
        assert resp.recv() == b"old"
        surveyor.send(b"new")  # cancels the old survey
        resp.send(b"answer to old")  # stale when it arrives
        assert resp.recv() == b"new"
        resp.send(b"answer to new")
        assert surveyor.recv() == b"answer to new"
        with pytest.raises(nnofi.Timeout):
            surveyor.recv()


def test_answer_after_deadline_is_dropped(url):
    with nnofi.Surveyor(survey_time=200, **OPTS) as surveyor, nnofi.Respondent(**OPTS) as resp:
        resp.connect(surveyor.bind(url).url)
        wait_pipes(surveyor, 1)
        surveyor.send(b"q1")
        assert resp.recv() == b"q1"
        with pytest.raises(nnofi.Timeout):
            surveyor.recv()
        resp.send(b"late answer to q1")
        time.sleep(0.1)  # let it arrive: the next survey must not see it
        surveyor.send(b"q2")
        assert resp.recv() == b"q2"
        resp.send(b"answer to q2")
        assert _collect(surveyor) == [b"answer to q2"]


def test_surveyor_recv_before_send_is_bad_state(url):
    with nnofi.Surveyor(**OPTS) as surveyor:
        surveyor.bind(url)
        t0 = time.monotonic()
        with pytest.raises(nnofi.BadState):
            surveyor.recv()
        assert time.monotonic() - t0 < 0.5


def test_respondent_send_before_recv_is_bad_state(url):
    with nnofi.Surveyor(survey_time=1000, **OPTS) as surveyor, nnofi.Respondent(**OPTS) as resp:
        resp.connect(surveyor.bind(url).url)
        with pytest.raises(nnofi.BadState):
            resp.send(b"unasked")
        wait_pipes(surveyor, 1)
        surveyor.send(b"q")
        assert resp.recv() == b"q"
        resp.send(b"a")
        with pytest.raises(nnofi.BadState):  # one answer per survey
            resp.send(b"again")
        assert _collect(surveyor) == [b"a"]


def test_surveys_back_to_back(url):
    """Many short surveys in a row, each answered, none mixed up."""
    with nnofi.Surveyor(survey_time=1000, **OPTS) as surveyor, nnofi.Respondent(**OPTS) as resp:
        resp.connect(surveyor.bind(url).url)
        wait_pipes(surveyor, 1)
        for i in range(50):
            surveyor.send(b"%d" % i)
            assert resp.recv() == b"%d" % i
            resp.send(b"ans %d" % i)
            assert surveyor.recv() == b"ans %d" % i
