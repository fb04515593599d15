"""The docs' diagrams, drawn as SVG by this script: no build step or network, nothing fetched by
the docs site. Run it after editing a diagram (tests/docs/test_diagrams.py checks that the
committed SVGs are its output):

    python docs/img/diagrams.py

Each diagram is lanes (the parties, left to right) and steps, top to bottom: an arrow between
two lanes with its label, or a note on a lane. The pages keep a text version of each under it.
"""

from html import escape
from pathlib import Path

HERE = Path(__file__).resolve().parent
LANE_WIDTH, MARGIN, HEAD, STEP, NOTE_LINE = 170, 16, 58, 46, 17
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
INK, MUTED, LINE, ACCENT, NOTE_FILL, HEAD_FILL = "#1d2330", "#5b6472", "#c9ced6", "#2f6fed", "#fff7e0", "#eef3ff"


def arrow(frm, to, label, dashed=False):
    return ("arrow", frm, to, label, dashed)


def note(lane, *lines):
    return ("note", lane, lines)


def render(title, lanes, steps):
    width = MARGIN * 2 + LANE_WIDTH * len(lanes)
    x = {name: MARGIN + LANE_WIDTH * i + LANE_WIDTH // 2 for i, (name, _sub) in enumerate(lanes)}
    body, y = [], HEAD + 30
    for step in steps:
        if step[0] == "arrow":
            _, frm, to, label, dashed = step
            y += 15 * label.count("\n")  # room above the arrow for its label's extra lines
            x1, x2 = x[frm], x[to]
            tip = -7 if x2 > x1 else 7
            dash = ' stroke-dasharray="5 4"' if dashed else ""
            body.append(f'<line x1="{x1}" y1="{y}" x2="{x2 + tip}" y2="{y}" stroke="{ACCENT}" stroke-width="2"{dash}/>')
            body.append(
                f'<path d="M{x2} {y} l{tip} -5 v10 z" fill="{ACCENT}"/>'  # the arrowhead
            )
            for n, text in enumerate(reversed(label.split("\n"))):
                body.append(
                    f'<text x="{(x1 + x2) / 2}" y="{y - 7 - n * 15}" text-anchor="middle" font-size="13">{escape(text)}</text>'
                )
            y += STEP
        else:
            _, lane, lines = step
            height = 10 + NOTE_LINE * len(lines)
            left = x[lane] - LANE_WIDTH // 2 + 6
            body.append(
                f'<rect x="{left}" y="{y - 18}" width="{LANE_WIDTH - 12}" height="{height}" rx="6" fill="{NOTE_FILL}" stroke="#e0c36b"/>'
            )
            for n, text in enumerate(lines):
                body.append(f'<text x="{left + 8}" y="{y - 1 + n * NOTE_LINE}" font-size="12.5">{escape(text)}</text>')
            y += height + 18
    height = y
    head = []
    for name, sub in lanes:
        cx = x[name]
        head.append(f'<line x1="{cx}" y1="{HEAD}" x2="{cx}" y2="{height - 8}" stroke="{LINE}" stroke-width="2"/>')
        head.append(
            f'<rect x="{cx - LANE_WIDTH // 2 + 6}" y="8" width="{LANE_WIDTH - 12}" height="{HEAD - 8}" rx="8" '
            f'fill="{HEAD_FILL}" stroke="{ACCENT}"/>'
        )
        head.append(
            f'<text x="{cx}" y="30" text-anchor="middle" font-size="14" font-weight="600">{escape(name)}</text>'
        )
        head.append(f'<text x="{cx}" y="47" text-anchor="middle" font-size="11.5" fill="{MUTED}">{escape(sub)}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" font-family="{FONT}" fill="{INK}">\n'
        f"<title>{escape(title)}</title>\n" + "\n".join(head + body) + "\n</svg>\n"
    )


BROWSER = ("Browser", "websocket-client.js")
GATEWAY = ("API Gateway", "holds the sockets")
DJANGO = ("Django", "any number of instances")
DATABASE = ("Database", "one row a connection")

DIAGRAMS = {
    "overview.svg": (
        "Overview: API Gateway holds the sockets, Django answers its HTTPS calls and sends through it",
        [BROWSER, GATEWAY, DJANGO, DATABASE],
        [
            arrow("Browser", "API Gateway", "wss://ws.example.com"),
            arrow("API Gateway", "Django", "HTTPS POST /ws/<route>\n$connect, messages, $disconnect"),
            arrow("Django", "Database", "WebSocketSession rows"),
            note("Django", "any process sends:", "a view, a task, a shell"),
            arrow("Django", "API Gateway", "POST @connections/{id}\n(Management API)"),
            arrow("API Gateway", "Browser", "the frame, on the socket"),
            note("API Gateway", "locally: runwsgateway", "ws://127.0.0.1:8001"),
        ],
    ),
    "connect.svg": (
        "The $connect path: a single-use token, then API Gateway's POST to Django, checked in order",
        [BROWSER, GATEWAY, ("Django", "WebSocketView"), DATABASE],
        [
            arrow("Browser", "Django", "POST /api/ws-token/ (session, CSRF)"),
            arrow("Django", "Browser", '{"token": …} (401 if not logged in)', dashed=True),
            arrow("Browser", "API Gateway", "wss://…?ws_token=…&channel=…"),
            arrow("API Gateway", "Django", "POST <target>connect\nX-Gateway-Secret, connectionId"),
            note(
                "Django",
                "1 secret → 403",
                "2 rate limit → 429",
                "3 Origin → 403",
                "4 ws_token → 401",
                "5 channel → 400 / 403",
            ),
            arrow("Django", "Database", "spend token, insert row\n(one transaction)"),
            arrow("Django", "API Gateway", "200 (a 4xx refuses)", dashed=True),
            arrow("API Gateway", "Browser", "socket open", dashed=True),
        ],
    ),
    "message.svg": (
        "The message path: each frame is a POST to the route's view, which runs one handler",
        [BROWSER, GATEWAY, ("Django", "WebSocketView"), DATABASE],
        [
            arrow("Browser", "API Gateway", '{"handler": "send_chat"}'),
            arrow("API Gateway", "Django", "POST <target>default\n(or a route's URL)"),
            arrow("Django", "Database", "its row: one SELECT"),
            note(
                "Django",
                "secret → 403",
                "gone → 410",
                "not JSON → 400 / 413",
                "handler allowed, perms",
                "then one transaction:",
            ),
            arrow("Django", "Database", "the handler's writes,\nrequest_count + 1"),
            arrow("Django", "API Gateway", "200 (relayed on a\ntwo-way route only)", dashed=True),
        ],
    ),
    "send.svg": (
        "The send path: any Django process posts each connection's frame to the Management API",
        [("Your code", "view, task, shell"), ("sending", "send_to_sessions"), GATEWAY, BROWSER],
        [
            arrow("Your code", "sending", "send_message / send_to_channel"),
            note("sending", "encode once (≤ 128 KB)", "rows → endpoints"),
            arrow("sending", "API Gateway", "POST @connections/{id}\nconcurrent, pooled, SigV4"),
            arrow("API Gateway", "Browser", "the frame"),
            arrow("API Gateway", "sending", "200 delivered / 410 gone", dashed=True),
            note("sending", "retry 429/503 if not", "applied; gone rows", "marked disconnected"),
            arrow("sending", "Your code", "SendResult", dashed=True),
        ],
    ),
}


def build():
    return {name: render(*spec) for name, spec in DIAGRAMS.items()}


if __name__ == "__main__":
    for name, svg in build().items():
        (HERE / name).write_text(svg)
        print("wrote", HERE / name)
