"""Prometheus metrics of both daemons (docs/metrics.md): conkerd's /metrics behind the API's
auth, the broker's --metrics-listen endpoint; both parse as the Prometheus text format (with the
reference parser, python3-prometheus-client), and their counters move when a task runs: task
events and statuses, step durations, pulled bytes, attestation outcomes, broker releases,
refusals by reason and verification-cache results."""

import requests
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.broker import free_port
from test_seed_story import Seed, needs


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    needs()
    s = Seed(tmp_path_factory.mktemp("metrics"))
    try:
        yield s
    finally:
        s.close()


def parse(text: str) -> dict:
    """{(name, frozenset(labels)): value} for every sample; the parser raises on bad syntax."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(m: dict, name: str, **labels) -> float:
    return m.get((name, frozenset(labels.items())), 0.0)


def scrape_conkerd(seed) -> dict:
    r = seed.d.api("GET", "/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def scrape_broker(port: int) -> dict:
    r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return parse(r.text)


def test_conkerd_metrics_need_the_token(seed):
    r = seed.d.api("GET", "/metrics", token=None)
    assert r.status_code == 401
    assert r.json()["code"] == 401
    r = seed.d.api("POST", "/metrics")
    assert r.status_code == 405


def test_counters_move_when_a_task_runs(seed):
    mport = free_port()
    b = seed.seed_broker(seed.secret_file("m.json"), extra=["--metrics-listen", f"127.0.0.1:{mport}"])
    before = scrape_conkerd(seed)
    b_before = scrape_broker(mport)
    assert sample(b_before, "conker_broker_releases_total", secret="default") == 0

    tid, t, _ = seed.run(b.pinned)
    assert t["Status"] == "Running", t["Events"]
    after = scrape_conkerd(seed)
    for ev in ("Pulling", "Pulled", "Attesting", "Attested", "Creating", "Created", "Starting", "Running"):
        assert sample(after, "conker_task_events_total", type=ev) == sample(before, "conker_task_events_total",
                                                                             type=ev) + 1, ev
    assert sample(after, "conker_tasks", status="Running") >= 1
    for step in ("pull", "attest", "create", "start"):
        assert sample(after, "conker_task_step_duration_seconds_count", step=step) == \
            sample(before, "conker_task_step_duration_seconds_count", step=step) + 1, step
        assert sample(after, "conker_task_step_duration_seconds_sum", step=step) > \
            sample(before, "conker_task_step_duration_seconds_sum", step=step)
    assert sample(after, "conker_attestations_total", outcome="released", reason="") == \
        sample(before, "conker_attestations_total", outcome="released", reason="") + 1
    b_after = scrape_broker(mport)
    assert sample(b_after, "conker_broker_releases_total", secret="default") == 1
    assert sample(b_after, "conker_broker_verification_cache_total", result="miss") >= 1
    # The simulator's collateral is issued when the TD is made, seconds ago: present, not negative.
    assert ("conker_broker_collateral_age_seconds", frozenset()) in b_after
    assert sample(b_after, "conker_broker_collateral_age_seconds") >= 0
    seed.delete(tid)

    # A refusal: counted by reason on both sides, and the task's Failed event is counted too.
    bad = seed.seed_broker(seed.secret_file("m2.json"), rtmr1="00" * 48,
                           extra=["--metrics-listen", f"127.0.0.1:{free_port()}"])
    mport2 = int(bad.cmd[bad.cmd.index("--metrics-listen") + 1].rsplit(":", 1)[1])
    tid, t, _ = seed.run(bad.pinned, statuses=("Failed",))
    final = scrape_conkerd(seed)
    assert sample(final, "conker_task_events_total", type="Failed") == \
        sample(after, "conker_task_events_total", type="Failed") + 1
    assert sample(final, "conker_attestations_total", outcome="refused", reason="rtmr1_mismatch") == \
        sample(after, "conker_attestations_total", outcome="refused", reason="rtmr1_mismatch") + 1
    assert sample(scrape_broker(mport2), "conker_broker_refusals_total", reason="rtmr1_mismatch") == 1
    seed.delete(tid)


def test_pulled_bytes_count_transfers(seed):
    """Bytes are counted as they arrive from the registry; the image is pulled at least once by
    the module (the seed task), so the counter is positive."""
    m = scrape_conkerd(seed)
    assert sample(m, "conker_image_pulled_bytes_total") > 0


def test_broker_metrics_listener_serves_only_metrics(seed):
    mport = free_port()
    seed.seed_broker(seed.secret_file("m3.json"), extra=["--metrics-listen", f"127.0.0.1:{mport}"])
    assert requests.get(f"http://127.0.0.1:{mport}/", timeout=10).status_code == 404
    assert requests.get(f"http://127.0.0.1:{mport}/metrics", timeout=10).text.startswith("# HELP ")
