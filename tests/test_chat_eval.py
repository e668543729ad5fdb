"""The ExCyTIn chat eval's pieces: Sentinel SecurityAlert rows become OCSF alerts the ingest layer accepts,
graph nodes map to alerts, and answers are matched after normalisation."""

from __future__ import annotations

from soctriage.agents.assistant_facts import alert_facts
from soctriage.evals.chat_suite import answer_matches as matches
from soctriage.evals.excytin_chat import EXCYTIN_DATA, INCIDENTS, load, to_alerts


def test_every_incident_alert_converts_to_an_ocsf_alert_with_its_entities() -> None:
    for incident in INCIDENTS:
        rows, questions, nodes = load(EXCYTIN_DATA, incident)
        alerts = to_alerts(rows, incident)
        assert len(alerts) == len(rows)
        assert all(a.source.format == "ocsf" and a.source.vendor_alert_id for a in alerts)
        ids = {a.source.vendor_alert_id for a in alerts}
        assert sum(nodes.get(q["start_alert"]) in ids for q in questions) >= 0.9 * len(questions)
    [discovery] = [a for a in to_alerts(load(EXCYTIN_DATA, 38)[0], 38) if "Window Discovery" in a.title]
    facts = alert_facts(discovery)
    assert "T1059.001" in discovery.techniques and discovery.device and discovery.device.hostname
    assert "7472" in facts["pid"] and "72.5.72.208" in facts["ip"]
    assert "12185914-91dd-4fb9-94f9-3252203b0426" in facts["field:aaduserid"]


def test_answers_match_after_normalisation() -> None:
    assert matches("vnevado-win11t", "The host is `VNEVADO-WIN11T`.")
    assert matches("Grace Chen@vnevado.alpineskihouse.co", "email grace  chen@vnevado.alpineskihouse.co")
    assert not matches("198.43.121.20", "ip 198.43.121.209")
    assert not matches("", "anything")
