"""alerts/queries.py: the search query and the runbook link of an alert, on plain data."""

from __future__ import annotations

import pytest

from alerts.queries import AlertText, alert_query, alertname_words, normalise_url, runbook_url, url_slugs, url_variants


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("KubePodCrashLooping", "Kube Pod Crash Looping"),
        ("TLSCertificateExpiringSoon", "TLS Certificate Expiring Soon"),
        ("APILatencySLOBurnRateHigh", "API Latency SLO Burn Rate High"),
        ("etcdMembersDown", "etcd Members Down"),
        ("node_disk_full", "node disk full"),
        ("WebFrontend5xxErrorRateHigh", "Web Frontend5xx Error Rate High"),
        ("", ""),
    ],
)
def test_alertname_words_split_camel_case_and_acronyms(name, words):
    assert alertname_words(name) == words


def test_query_has_the_name_as_written_and_split_then_the_annotations_then_useful_labels():
    alert = AlertText(
        alertname="KubePodCrashLooping",
        annotations={
            "summary": "Pod is crash looping.",
            "description": "Pod payments/api-7f9 (api) is in waiting state (reason: CrashLoopBackOff).",
            "runbook_url": "https://runbooks.example.com/kubepodcrashlooping",
        },
        labels={
            "alertname": "KubePodCrashLooping",
            "job": "kube-state-metrics",
            "service": "payments",
            "severity": "warning",
            "namespace": "payments",
            "instance": "10.0.3.7:8080",
            "pod": "api-5d8f7c9b6d-x7k2p",
        },
    )
    assert alert_query(alert, max_chars=4000) == (
        "KubePodCrashLooping (Kube Pod Crash Looping)\n"
        "Pod is crash looping.\n"
        "Pod payments/api-7f9 (api) is in waiting state (reason: CrashLoopBackOff).\n"
        "payments kube-state-metrics"
    )


@pytest.mark.parametrize("value", ["10.0.3.7", "worker-3:9100", "12345", "a3f9c2e1b4d5e6f7", "api-5d8f7c9b6d-x7k2p"])
def test_instance_label_values_are_left_out(value):
    alert = AlertText(alertname="X", labels={"service": value, "job": "node"})
    assert alert_query(alert, max_chars=4000) == "X\nnode"


def test_message_annotation_is_used_and_repeats_are_dropped():
    alert = AlertText(annotations={"message": "Disk full", "summary": "Disk full", "description": 7})
    assert alert_query(alert, max_chars=4000) == "Disk full"


def test_an_alert_without_text_has_an_empty_query():
    assert alert_query(AlertText(), max_chars=4000) == ""


def test_query_is_bounded_at_a_word_and_keeps_the_name():
    alert = AlertText(alertname="NodeDiskAlmostFull", annotations={"description": "word " * 2000})
    query = alert_query(alert, max_chars=300)
    assert len(query) <= 300
    assert query.startswith("NodeDiskAlmostFull (Node Disk Almost Full)\n")
    assert query.endswith("word")


@pytest.mark.parametrize(
    ("annotations", "labels", "expected"),
    [
        ({"runbook_url": "https://r.example/a"}, {}, "https://r.example/a"),
        ({"runbookURL": " https://r.example/b "}, {}, "https://r.example/b"),
        ({"runbook": "http://r.example/c"}, {}, "http://r.example/c"),
        ({"runbook_url": "see the wiki"}, {"runbook_url": "https://r.example/d"}, "https://r.example/d"),
        ({"runbook_url": "javascript:alert(1)"}, {}, ""),
        ({}, {}, ""),
    ],
)
def test_runbook_url_conventions(annotations, labels, expected):
    assert runbook_url(annotations, labels) == expected


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTPS://Runbooks.Example.com/runbooks/Node/X/", "https://runbooks.example.com/runbooks/Node/X"),
        ("https://runbooks.example.com:443/x#section", "https://runbooks.example.com/x"),
        ("http://runbooks.example.com:8080/x?alert=1", "http://runbooks.example.com:8080/x?alert=1"),
        ("ftp://runbooks.example.com/x", ""),
        ("https://[::1/x", ""),
        ("not a url", ""),
    ],
)
def test_normalise_url(url, normal):
    assert normalise_url(url) == normal


def test_url_variants_cover_the_trailing_slash():
    assert url_variants("https://R.example/A/#x") == ["https://r.example/a/#x", "https://r.example/a", "https://r.example/a/"]
    assert url_variants("mailto:a@b") == []


def test_url_slugs_longest_first_without_page_suffix():
    url = "https://github.com/prometheus-operator/runbooks/blob/main/content/runbooks/alertmanager/AlertmanagerClusterCrashlooping.md"
    assert url_slugs(url) == [
        "runbooks/alertmanager/alertmanagerclustercrashlooping",
        "alertmanager/alertmanagerclustercrashlooping",
        "alertmanagerclustercrashlooping",
    ]
    assert url_slugs("https://runbooks.example.com/") == []
    assert url_slugs("https://runbooks.example.com/x/") == ["x"]
