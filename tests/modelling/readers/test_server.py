"""The reading page's server: saves every answer at once, resumes, and serves nothing outside the packet."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import modelling.readers.server as reading_server
from modelling.cli.readers import register
from modelling.readers.packets import PacketError
from modelling.readers.server import (
    ReadingServer,
    default_responses_path,
    feature_label,
    make_server,
    reading_url,
    start_server,
)
from modelling.readers.unblind import ResponsesError, read_responses
from modelling.stages.packet import make_packet
from tests.conftest import copy_bundle


@pytest.fixture(scope="module")
def made(tiny_explained, tmp_path_factory):
    root = tmp_path_factory.mktemp("reading")
    study = copy_bundle(tiny_explained, root / "bundle")
    # The key sits beside the packet, as a careless user might put it: it must still never be served.
    return make_packet(study, root / "packet", key_path=root / "reading_key.csv", per_model=3, rng=5)


def get(server: ReadingServer, path: str, *, method: str = "GET", body: bytes | None = None,
        headers: dict | None = None) -> tuple[int, bytes]:
    """Send `path` as is (no client-side normalisation of .. or %2e)."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def consistent(present: dict) -> dict:
    """An answer a reader can give: "No CHF features" exactly when no CHF feature is marked."""
    return {**present, reading_server.NO_CHF: not any(present.get(f) for f in reading_server.CHF_FEATURES)}


def post_answer(server: ReadingServer, blinded_id: str, present: dict, **headers) -> tuple[int, bytes]:
    body = json.dumps({"blinded_id": blinded_id, "present": present}).encode()
    return get(server, "/api/answer", method="POST", body=body,
               headers={"Content-Type": "application/json", **headers})


def state(server: ReadingServer) -> dict:
    with urllib.request.urlopen(server.url + "api/state", timeout=10) as response:
        return json.load(response)


@pytest.fixture
def server(made, tmp_path):
    running = start_server(made.packet.root, reader="A", round=1, responses_path=tmp_path / "A-1.csv")
    yield running
    running.stop()


def test_binds_loopback_and_serves_the_page(server):
    assert server.server_address[0] == "127.0.0.1"
    assert reading_url(server) == server.url == f"http://127.0.0.1:{server.server_address[1]}/"
    status, body = get(server, "/")
    assert status == 200
    page = body.decode()
    assert "<script>" in page and "http" not in page.split("<script>", 1)[1].replace("/api/", "")
    assert "cdn" not in page.lower()


def test_state_and_images(server, made):
    s = state(server)
    assert s["reader"] == "A" and s["round"] == 1 and s["position"] == 0
    assert s["order"] == list(made.packet.order("A", 1))
    assert [f["name"] for f in s["features"]] == list(made.packet.features)
    first = s["order"][0]
    for role in ("overlay", "original"):
        status, body = get(server, f"/img/{first}/{role}.png")
        assert status == 200 and body == made.packet.image_path(first, role).read_bytes()


def test_every_answer_is_saved_at_once_and_resumed(made, tmp_path):
    path = tmp_path / "A-1.csv"
    packet = made.packet
    order = packet.order("A", 1)
    with start_server(packet.root, reader="A", round=1, responses_path=path) as server:
        for i, blinded_id in enumerate(order[:2]):
            present = consistent({f: (j + i) % 2 == 0 for j, f in enumerate(packet.features)})
            status, body = post_answer(server, blinded_id, present)
            assert status == 200 and json.loads(body) == {"saved": True, "position": i + 1}
            saved = read_responses(path, packet)
            assert len(saved) == (i + 1) * len(packet.features)
        # changing one's mind rewrites the GVR's rows, it does not add any
        every_chf = consistent({f: True for f in packet.features})
        post_answer(server, order[0], every_chf)
        saved = read_responses(path, packet)
        assert len(saved) == 2 * len(packet.features)
        first = saved[saved["blinded_id"] == order[0]].set_index("feature")["present"].to_dict()
        assert first == every_chf
        assert list(path.parent.glob(".*.tmp")) == []
        assert state(server)["position"] == 2
    with start_server(packet.root, reader="A", round=1, responses_path=path) as server:
        s = state(server)
        assert s["position"] == 2
        assert s["answers"][order[0]] == every_chf
    assert path.read_text().splitlines()[0] == "reader,round,blinded_id,feature,present,answered_at"


BAD_PATHS = [
    "/../reading_key.csv",
    "/%2e%2e/reading_key.csv",
    "/%2E%2E/reading_key.csv",
    "/%252e%252e/reading_key.csv",
    "/img/../../reading_key.csv",
    "/img/%2e%2e/%2e%2e/reading_key.csv",
    "/img/..%2f..%2freading_key.csv",
    "/img/..%5c..%5creading_key.csv",
    "/reading_key.csv",
    "/key.csv",
    "//etc/passwd",
    "/etc/passwd",
    "/packet.json",
    "/order/A-round1.json",
    "/order/B-round1.json",
    "/responses/A-round1.csv",
    "/img/NOSUCH/overlay.png",
    "http://127.0.0.1/reading_key.csv",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_refuses_anything_outside_the_page(server, made, path):
    status, body = get(server, path)
    assert status in (403, 404), (path, status)
    assert b"gvr_id" not in body and b"mlp-" not in body


def test_bad_answers_are_refused(server, made):
    packet = made.packet
    every = {f: False for f in packet.features}
    cases = [
        post_answer(server, "NOSUCH", every),
        post_answer(server, packet.ids[0], {packet.features[0]: True}),
        post_answer(server, packet.ids[0], {**every, "septal_lines": True}),
        post_answer(server, packet.ids[0], {**every, packet.features[0]: "yes"}),
        get(server, "/api/answer", method="POST", body=b"not json", headers={"Content-Type": "application/json"}),
        get(server, "/api/answer", method="POST", body=b"[" * 60000, headers={"Content-Type": "application/json"}),
    ]
    assert [status for status, _ in cases] == [400] * 6
    assert post_answer(server, packet.ids[0], every, Origin="http://evil.example")[0] == 403
    assert get(server, "/api/other", method="POST", body=b"{}")[0] == 404
    assert not server.session.path.exists()


def test_refuses_wrong_reader_round_and_someone_elses_file(made, tmp_path):
    with pytest.raises(PacketError, match="reader must be one of"):
        make_server(made.packet.root, reader="C", round=1)
    with pytest.raises(PacketError, match="round must be an integer from 1 to 2"):
        make_server(made.packet.root, reader="A", round=3)
    path = tmp_path / "B.csv"
    with start_server(made.packet.root, reader="B", round=1, responses_path=path) as server:
        post_answer(server, made.packet.ids[0], consistent({f: True for f in made.packet.features}))
    with pytest.raises(ResponsesError, match="answers of reader B, round 1 in the file of reader A, round 1"):
        make_server(made.packet.root, reader="A", round=1, responses_path=path)


def test_default_responses_path_and_labels(made):
    assert default_responses_path(made.packet.root, "A", 2) == made.packet.root / "responses" / "A-round2.csv"
    assert feature_label("no_chf_features") == "No CHF features"
    assert feature_label("pleural_effusion") == "Pleural effusion"


def test_cli_serve_prints_the_url_and_stops_on_ctrl_c(made, tmp_path, monkeypatch):
    seen = {}

    def serve_once(self, poll_interval=0.5):
        def fetch():
            with urllib.request.urlopen(self.url + "api/state", timeout=10) as response:
                seen["state"] = json.load(response)

        client = threading.Thread(target=fetch)
        client.start()
        self.handle_request()  # one request, then the reader presses Ctrl-C
        client.join()
        raise KeyboardInterrupt

    monkeypatch.setattr(reading_server.ReadingServer, "serve_forever", serve_once)
    app = typer.Typer()
    register(app)
    responses = tmp_path / "r.csv"
    result = CliRunner().invoke(app, ["serve", str(made.packet.root), "--reader", "B", "--round", "2",
                                      "--responses", str(responses)])
    assert result.exit_code == 0, result.output
    assert "open http://127.0.0.1:" in result.output and "stopped" in result.output
    assert seen["state"]["reader"] == "B" and seen["state"]["round"] == 2
    bad = CliRunner().invoke(app, ["serve", str(made.packet.root), "--reader", "Z", "--round", "1"])
    assert bad.exit_code == 2 and "reader must be one of" in bad.output


def test_a_port_in_use_or_an_address_not_here_is_said_with_the_option_to_change(server, made, tmp_path, caplog):
    app = typer.Typer()
    register(app)
    port = server.server_address[1]
    taken = CliRunner().invoke(app, ["serve", str(made.packet.root), "--reader", "A", "--round", "1",
                                     "--port", str(port), "--responses", str(tmp_path / "b.csv")])
    assert taken.exit_code == 2
    assert f"port {port} on 127.0.0.1 is in use (another reading page?): give another --port" in taken.output
    assert "Errno" not in taken.output
    with caplog.at_level("WARNING"):
        elsewhere = CliRunner().invoke(app, ["serve", str(made.packet.root), "--reader", "A", "--round", "1",
                                             "--host", "192.0.2.1", "--responses", str(tmp_path / "c.csv")])
    assert elsewhere.exit_code == 2 and "--host 192.0.2.1: not an address of this machine" in elsewhere.output
    assert "others on the network can reach it" not in caplog.text  # no warning for an address it did not take


def test_serve_blocks_until_ctrl_c(made, tmp_path, monkeypatch):
    def interrupted(self, poll_interval=0.5):
        raise KeyboardInterrupt

    monkeypatch.setattr(reading_server.ReadingServer, "serve_forever", interrupted)
    reading_server.serve(made.packet.root, reader="A", round=2, responses_path=tmp_path / "x.csv")
    assert not Path(tmp_path / "x.csv").exists()


def test_no_chf_features_with_a_chf_feature_is_refused(server, made):
    packet = made.packet
    every = {f: False for f in packet.features}
    status, body = post_answer(server, packet.ids[1], {**every, "no_chf_features": True, "cardiomegaly": True})
    assert status == 400 and b"contradictory answer: No CHF features together with cardiomegaly" in body
    assert post_answer(server, packet.ids[1], {**every, "no_chf_features": True})[0] == 200


def test_with_fewer_features_offered_marking_none_is_an_answer(made, tiny_explained, tmp_path):
    """Without every CHF feature to choose from, the GVR may show one not asked about: nothing marked is
    saved, and the page is not told to ask for a mark."""
    study = copy_bundle(tiny_explained, tmp_path / "bundle")
    fewer = make_packet(study, tmp_path / "packet", key_path=tmp_path / "key.csv", per_model=2, rng=5,
                        features=("cardiomegaly", "no_chf_features")).packet
    with start_server(fewer.root, reader="A", round=1, responses_path=tmp_path / "A-1.csv") as running:
        assert state(running)["must_mark"] == ""
        status, _ = post_answer(running, fewer.order("A", 1)[0], {"cardiomegaly": False, "no_chf_features": False})
        assert status == 200 and state(running)["position"] == 1


def test_an_old_answer_that_marks_nothing_is_to_be_answered_again(made, tmp_path):
    """A responses file from before an answer had to mark something: resuming sends the reader back to the
    GVR whose stored answer marks nothing, which the unblinding would refuse."""
    packet = made.packet
    order = packet.order("A", 1)
    path = tmp_path / "A-1.csv"
    with start_server(packet.root, reader="A", round=1, responses_path=path) as running:
        for blinded_id in order[:2]:
            assert post_answer(running, blinded_id, consistent({f: False for f in packet.features}))[0] == 200
    frame = pd.read_csv(path, dtype=str)
    frame.loc[frame["blinded_id"] == order[0], "present"] = "false"
    frame.to_csv(path, index=False)
    with start_server(packet.root, reader="A", round=1, responses_path=path) as running:
        now = state(running)
        assert now["position"] == 0 and order[0] not in now["answers"] and order[1] in now["answers"]


def test_an_answer_that_marks_nothing_is_refused(server, made):
    """Every CHF feature and "No CHF features" are offered, so one of them is true: marking none is a slip
    (the reading page shows the refusal and stays on the GVR), not an answer."""
    packet = made.packet
    assert {"cardiomegaly", "pleural_effusion", "airspace_opacity", "no_chf_features"} <= set(packet.features)
    status, body = post_answer(server, packet.ids[2], {f: False for f in packet.features})
    assert status == 400 and b"no feature marked: mark what the GVR shows, or No CHF features" in body
    assert not server.session.path.exists()


def test_fifty_concurrent_answers_are_all_saved(made, tmp_path):
    """A burst of answers (a slow network delivering many clicks at once): none is reset or lost."""
    packet = made.packet
    order = packet.order("B", 2)
    path = tmp_path / "B-2.csv"
    every = {f: False for f in packet.features}
    results: list[int] = []
    with start_server(packet.root, reader="B", round=2, responses_path=path) as server:
        def send(k: int) -> None:
            try:
                status, _ = post_answer(server, order[k % len(order)], {**every, packet.features[k % 3]: True})
            except OSError as exc:  # a reset connection: what the backlog of 5 gave
                status = repr(exc)
            results.append(status)

        barrier = threading.Barrier(50)
        threads = [threading.Thread(target=lambda k=k: (barrier.wait(), send(k))) for k in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert results == [200] * 50
        assert state(server)["position"] == len(order) or len(state(server)["answers"]) == min(50, len(order))
    assert len(read_responses(path, packet)) == min(50, len(order)) * len(packet.features)


def test_the_page_explains_the_colours_and_retries_a_failed_save():
    page = reading_server.PAGE
    assert "orange: density removed" in page and "purple: density added" in page
    assert "rgb(255, 140, 0)" in page and "@ORANGE@" not in page
    assert "trying again" in page and "NOT saved" in page
    assert ReadingServer.request_queue_size >= 50
