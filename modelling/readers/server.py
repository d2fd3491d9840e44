"""The reading page: one reader scores a packet's GVRs in a browser, one round at a time.

A standard-library HTTP server (no external files, no CDN) serves a small page that shows one GVR
at a time, its overlay beside the original, a checkbox per feature, previous/next buttons and the
progress ("12 of 100"). Every change is saved at once: the page posts the GVR's full set of answers
and the server rewrites the reader's responses CSV (``reader, round, blinded_id, feature, present,
answered_at``; one row per GVR and feature, the newest answer) through a temporary file and a
rename. Reopening the page, or restarting the server on the same file, resumes at the first GVR of
the reader's order that has no answers.

Only these paths are served; everything else is 403 (a path that tries to leave: ``..``, encoded
``%2e%2e``, backslashes, absolute) or 404::

    GET  /                              the page
    GET  /api/state                     reader, round, features, order, answers, resume position
    GET  /img/<blinded_id>/overlay.png  the packet's PNGs, by blinded id only
    GET  /img/<blinded_id>/original.png
    POST /api/answer                    {"blinded_id": ..., "present": {feature: bool, ...}}

The key is never inside the packet (:func:`modelling.stages.packet.make_packet` refuses that) and no
route reads an arbitrary file, so it cannot be served.

Examples
--------
Run in a background thread (as the tests do)::

    server = start_server("packet", reader="A", round=1)
    print(server.url)          # http://127.0.0.1:PORT/
    ...
    server.stop()

or block until Ctrl-C with :func:`serve`.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import logging
import threading
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from data_schema import Problem
from data_schema.io import atomic_write_text
from modelling.explain.colours import ORANGE, PURPLE
from modelling.readers.answers import (  # noqa: F401 - the page's names
    CHF_FEATURES,
    NO_CHF,
    contradictory,
    feature_label,
    unanswered,
)
from modelling.readers.packets import IMAGE_ROLES, Packet, load_packet
from modelling.readers.unblind import RESPONSE_COLUMNS, ResponsesError, read_responses

log = logging.getLogger(__name__)

RESPONSES_DIR = "responses"
_MAX_BODY = 64 * 1024


def default_responses_path(packet_dir: str | Path, reader: str, round: int) -> Path:
    """``<packet>/responses/<reader>-round<k>.csv``: where a reader's answers go by default."""
    return Path(packet_dir) / RESPONSES_DIR / f"{reader}-round{round}.csv"


class ReadingSession:
    """One reader's answers for one round, kept in memory and saved on every change.

    Parameters
    ----------
    packet : Packet
        The packet read.
    reader, round
        Who reads, and which round.
    responses_path : path-like
        The CSV to resume from (if it exists) and to save to.

    Raises
    ------
    PacketError
        For a reader or round the packet does not have.
    modelling.readers.unblind.ResponsesError
        When an existing responses file is broken or belongs to another reader or round.
    """

    def __init__(self, packet: Packet, *, reader: str, round: int, responses_path: str | Path):
        packet.check_reader_round(reader, round)
        self.packet = packet
        self.reader = reader
        self.round = int(round)
        self.order = packet.order(reader, round)
        self.path = Path(responses_path)
        self._lock = threading.Lock()
        # (blinded_id, feature) -> (present, answered_at text)
        self._answers: dict[tuple[str, str], tuple[bool, str]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        table = read_responses(self.path, self.packet, allow_empty=True)
        other = table[(table["reader"] != self.reader) | (table["round"] != self.round)]
        if not other.empty:
            rec = other.iloc[0]
            raise ResponsesError([Problem(str(self.path), int(rec["row"]), "reader", rec["reader"],
                                          f"answers of reader {rec['reader']}, round {rec['round']} in the file of "
                                          f"reader {self.reader}, round {self.round}; give another --responses path")])
        table = table.sort_values("answered_at", kind="stable")
        for rec in table.itertuples(index=False):
            self._answers[(rec.blinded_id, rec.feature)] = (bool(rec.present),
                                                             rec.answered_at.isoformat(timespec="microseconds"))

    def answered(self, blinded_id: str) -> bool:
        """Whether every feature of `blinded_id` has an answer, and together they make one the server takes
        (a responses file written before an answer had to mark something may hold one it would refuse)."""
        if not all((blinded_id, f) in self._answers for f in self.packet.features):
            return False
        present = {f: self._answers[(blinded_id, f)][0] for f in self.packet.features}
        return not (contradictory(present) or unanswered(present, self.packet.features))

    def position(self) -> int:
        """0-based index in the order of the first GVR without answers (len(order) when all are done)."""
        for i, blinded_id in enumerate(self.order):
            if not self.answered(blinded_id):
                return i
        return len(self.order)

    def state(self) -> dict:
        with self._lock:
            answers = {}
            for (blinded_id, feature), (present, _) in self._answers.items():
                answers.setdefault(blinded_id, {})[feature] = present
            answers = {b: a for b, a in answers.items() if self.answered(b)}  # the rest is to be answered again
            return {
                "reader": self.reader,
                "round": self.round,
                "features": [{"name": f, "label": feature_label(f)} for f in self.packet.features],
                "order": list(self.order),
                "answers": answers,
                "position": self.position(),
                "chf_features": [f for f in CHF_FEATURES if f in self.packet.features],
                "no_chf_feature": NO_CHF,
                # an answer must mark something (answers.unanswered): the page says so before saving
                "must_mark": unanswered({}, self.packet.features),
            }

    def answer(self, blinded_id: str, present: dict) -> None:
        """Record the answers for every feature of `blinded_id` and save the file atomically.

        Raises
        ------
        ValueError
            For an id not in the packet, a missing or unknown feature, a value that is not a bool, or an
            answer :mod:`modelling.readers.answers` refuses (contradictory, or nothing marked).
        """
        if blinded_id not in self.order:
            raise ValueError(f"unknown blinded id {blinded_id!r}")
        if not isinstance(present, dict) or set(present) != set(self.packet.features):
            raise ValueError(f"present must give every feature of the packet: {list(self.packet.features)}")
        if not all(isinstance(v, bool) for v in present.values()):
            raise ValueError("present values must be true or false")
        why = contradictory(present) or unanswered(present, self.packet.features)
        if why:
            raise ValueError(why)
        with self._lock:
            now = datetime.now().isoformat(timespec="microseconds")
            for feature in self.packet.features:
                self._answers[(blinded_id, feature)] = (present[feature], now)
            self._save()

    def _save(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(RESPONSE_COLUMNS)
        rank = {b: i for i, b in enumerate(self.order)}
        features = {f: i for i, f in enumerate(self.packet.features)}
        for (blinded_id, feature), (present, when) in sorted(
                self._answers.items(), key=lambda item: (rank[item[0][0]], features[item[0][1]])):
            writer.writerow([self.reader, self.round, blinded_id, feature, "true" if present else "false", when])
        atomic_write_text(self.path, buffer.getvalue())


def _leaves(path: str) -> bool:
    """Whether a request path tries to leave the served tree (after percent-decoding, twice)."""
    for text in (path, unquote(path), unquote(unquote(path))):
        if "\\" in text or "\x00" in text or text.startswith("//"):
            return True
        if ".." in text.split("/"):
            return True
    return False


def _handler(session: ReadingSession):
    packet = session.packet

    class Handler(BaseHTTPRequestHandler):
        server_version = "GVRReading/1"
        sys_version = ""

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy",
                             "default-src 'none'; img-src 'self'; script-src 'unsafe-inline'; "
                             "style-src 'unsafe-inline'; connect-src 'self'")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, value) -> None:
            self._send(status, json.dumps(value).encode("utf-8"), "application/json")

        def _error(self, status: int, message: str) -> None:
            self._send(status, message.encode("utf-8"), "text/plain; charset=utf-8")

        def _route(self) -> str | None:
            raw = self.path
            if not raw.startswith("/"):
                self._error(HTTPStatus.FORBIDDEN, "forbidden: absolute or malformed path")
                return None
            path = raw.split("?", 1)[0].split("#", 1)[0]
            if _leaves(path):
                self._error(HTTPStatus.FORBIDDEN, "forbidden: path outside the packet")
                return None
            return unquote(path)

        def do_HEAD(self):  # noqa: N802 - http.server's naming
            self.do_GET()

        def do_GET(self):  # noqa: N802
            path = self._route()
            if path is None:
                return
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, PAGE.encode("utf-8"), "text/html; charset=utf-8")
                return
            if path == "/api/state":
                self._json(HTTPStatus.OK, session.state())
                return
            parts = path.split("/")
            if len(parts) == 4 and parts[1] == "img" and parts[3].endswith(".png"):
                blinded_id, role = parts[2], parts[3][:-4]
                if blinded_id in packet.ids and role in IMAGE_ROLES:
                    try:
                        body = packet.image_path(blinded_id, role).read_bytes()
                    except OSError:
                        self._error(HTTPStatus.NOT_FOUND, "image missing from the packet")
                        return
                    self._send(HTTPStatus.OK, body, "image/png")
                    return
            self._error(HTTPStatus.NOT_FOUND, "not found")

        def do_POST(self):  # noqa: N802
            path = self._route()
            if path is None:
                return
            if path != "/api/answer":
                self._error(HTTPStatus.NOT_FOUND, "not found")
                return
            origin = self.headers.get("Origin")
            if origin and origin != f"http://{self.headers.get('Host', '')}":
                self._error(HTTPStatus.FORBIDDEN, "forbidden: answers come from the reading page only")
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 < length <= _MAX_BODY:
                self._error(HTTPStatus.BAD_REQUEST, "a JSON body of at most 64 KiB is needed")
                return
            try:
                body = json.loads(self.rfile.read(length))
                session.answer(body["blinded_id"], body["present"])
            except RecursionError:  # 64 KiB of nested brackets
                self._error(HTTPStatus.BAD_REQUEST, "bad answer: nested too deeply")
                return
            except (ValueError, KeyError, TypeError) as exc:
                self._error(HTTPStatus.BAD_REQUEST, f"bad answer: {exc}")
                return
            except OSError as exc:
                log.error("could not save %s: %s", session.path, exc)
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not save the answer: {exc}")
                return
            self._json(HTTPStatus.OK, {"saved": True, "position": session.position()})

    return Handler


class ReadingServer(ThreadingHTTPServer):
    """The reading page's HTTP server; :meth:`start` runs it in a background thread."""

    daemon_threads = True
    # listen() backlog: a burst of answers (a slow network delivering several clicks at once) queues
    # instead of being reset, as it was with socketserver's default of 5.
    request_queue_size = 128

    def __init__(self, session: ReadingSession, host: str, port: int):
        self.session = session
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _handler(session))

    @property
    def url(self) -> str:
        """The page's address, e.g. ``http://127.0.0.1:8765/``."""
        host, port = self.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/"

    def start(self) -> "ReadingServer":
        """Serve in a daemon thread and return at once."""
        self._thread = threading.Thread(target=self.serve_forever, name="reading-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (if started with :meth:`start`) and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ListenError(OSError):
    """The reading page cannot listen where asked (a port in use, an address this machine does not have);
    the message names the option to change."""


def make_server(packet_dir: str | Path, *, reader: str, round: int, responses_path: str | Path | None = None,
                host: str = "127.0.0.1", port: int = 0) -> ReadingServer:
    """Bind the reading page's server (not yet serving); see :func:`serve` for the parameters."""
    packet = load_packet(packet_dir)
    if responses_path is None:
        responses_path = default_responses_path(packet.root, reader, round)
    session = ReadingSession(packet, reader=reader, round=round, responses_path=responses_path)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    try:
        server = ReadingServer(session, host, port)
    except OSError as exc:
        raise ListenError(_bind_error(exc, host, port)) from None
    if not loopback:  # said once it listens: not for an address it could not take
        log.warning("the reading page listens on %s: others on the network can reach it", host)
    return server


def _bind_error(exc: OSError, host: str, port: int) -> str:
    """What a failed bind means, with the option to change (the bare "[Errno 98] Address already in use").

    Examples
    --------
    >>> import errno
    >>> _bind_error(OSError(errno.EADDRINUSE, "Address already in use"), "127.0.0.1", 8123)
    'port 8123 on 127.0.0.1 is in use (another reading page?): give another --port, or --port 0 for a free one'
    """
    import errno
    import socket

    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is in use (another reading page?): give another --port, or --port 0 for a "
                "free one")
    if exc.errno == errno.EACCES:
        return f"port {port} needs administrator rights on this machine: give a port above 1023, or --port 0"
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return (f"--host {host}: not an address of this machine ({exc.strerror or exc}); the default, 127.0.0.1, "
                "serves this machine only")
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"


def start_server(packet_dir: str | Path, *, reader: str, round: int, responses_path: str | Path | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> ReadingServer:
    """:func:`make_server`, then serve in a background thread; call ``.stop()`` when done."""
    return make_server(packet_dir, reader=reader, round=round, responses_path=responses_path,
                       host=host, port=port).start()


def reading_url(server: ReadingServer) -> str:
    """The address of a server's reading page."""
    return server.url


def serve(packet_dir: str | Path, *, reader: str, round: int, responses_path: str | Path | None = None,
          host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve the reading page until Ctrl-C.

    Parameters
    ----------
    packet_dir : path-like
        The reading packet (:func:`modelling.stages.packet.make_packet`).
    reader : str
        Reader id (one of the packet's).
    round : int
        Reading round (1 to the packet's rounds).
    responses_path : path-like, optional
        The reader's responses CSV (default ``<packet>/responses/<reader>-round<k>.csv``); an
        existing file is resumed.
    host : str
        Address to listen on; the loopback address by default (others cannot reach the page).
    port : int
        Port; 0 picks a free one (the URL is logged).

    Raises
    ------
    PacketError
        For a directory that is not a packet, or a reader or round it does not have.
    modelling.readers.unblind.ResponsesError
        When an existing responses file is broken or belongs to another reader or round.
    """
    server = make_server(packet_dir, reader=reader, round=round, responses_path=responses_path,
                         host=host, port=port)
    log.info("reading page for reader %s, round %d: %s", reader, round, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


#: The reading page: one HTML file with its script and style, the legend in the overlay's own colours.
PAGE = (Path(__file__).with_name("page.html").read_text("utf-8")
        .replace("@ORANGE@", ", ".join(map(str, ORANGE))).replace("@PURPLE@", ", ".join(map(str, PURPLE))))
