"""The browser client's TypeScript declarations (issue #25): websocket-client.d.ts ships next to
websocket-client.js, declares everything the module exports and every public member of its
classes, and type-checks the typed uses in tests/typing/ts/ (`make lint` runs the same tsc).

The module is imported by Node (it needs no DOM to load), so the comparison is with what the
JavaScript really exports, not with a list kept by hand."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import django_aws_api_gateway_websockets

ROOT = Path(__file__).resolve().parents[2]
# The installed package's copy (nox runs the tests against the wheel, without a source tree):
# the declarations are checked where a project gets them.
STATIC = Path(django_aws_api_gateway_websockets.__file__).parent / "static" / "django_aws_api_gateway_websockets"
CLIENT_JS = STATIC / "websocket-client.js"
CLIENT_DTS = STATIC / "websocket-client.d.ts"
TSC = ROOT / "node_modules" / ".bin" / "tsc"

# What Node finds in the module: its exports, and each exported class's public members.
SURFACE = """
const module = await import(process.argv[1]);
const surface = {};
for (const [name, value] of Object.entries(module)) {
  if (typeof value !== "function" || !/^class /.test(Function.prototype.toString.call(value))) {
    surface[name] = [];
    continue;
  }
  const members = new Set(Object.getOwnPropertyNames(value).filter((m) => !["length", "name", "prototype"].includes(m)));
  for (const m of Object.getOwnPropertyNames(value.prototype)) members.add(m);
  surface[name] = [...members].filter((m) => m !== "constructor" && !m.startsWith("_")).sort();
}
console.log(JSON.stringify(surface));
"""


def javascript_surface():
    done = subprocess.run(
        ["node", "--input-type=module", "-e", SURFACE, CLIENT_JS.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def declared_class_members(text, name):
    """The members a `declare class <name>` block names (methods, properties, getters)."""
    body = re.search(rf"^export declare class {name}\b.*?\{{\n(.*?)^\}}", text, re.M | re.S)
    assert body, f"{name} is not declared as a class"
    return set(re.findall(r"^  (?:static |readonly |get )*(\w+)\s*[<(:?]", body.group(1), re.M)) - {"constructor"}


needs_node = pytest.mark.skipif(not shutil.which("node"), reason="node is not installed (apt-get install npm)")


def test_declarations_ship_next_to_the_module_as_package_data():
    """Installed next to the module (the wheel's package data, pyproject's "static/**/*"): a
    bundler or tsc resolving `websocket-client.js` finds them."""
    assert CLIENT_JS.exists() and CLIENT_DTS.exists()
    assert "export declare class WebSocketClient" in CLIENT_DTS.read_text()


@needs_node
def test_every_export_and_public_member_of_the_client_is_declared():
    text = CLIENT_DTS.read_text()
    declared = set(re.findall(r"^export (?:declare )?(?:const|function|class) (\w+)", text, re.M))
    surface = javascript_surface()
    assert set(surface) == declared, "exported by websocket-client.js vs declared in websocket-client.d.ts"
    for name, members in surface.items():
        if members:
            missing = set(members) - declared_class_members(text, name)
            assert not missing, f"{name}: public members of the JavaScript not in the declarations: {sorted(missing)}"


@needs_node
def test_declared_client_members_exist_in_the_javascript():
    """A member declared but gone from the module (renamed, removed) fails too: each is looked
    up on a constructed client (instance fields, inherited EventTarget methods) or the class."""
    declared = sorted(declared_class_members(CLIENT_DTS.read_text(), "WebSocketClient"))
    script = """
    const { WebSocketClient } = await import(process.argv[1]);
    const client = new WebSocketClient({ url: "ws://127.0.0.1:9/", persistSeq: false });
    console.log(JSON.stringify(JSON.parse(process.argv[2]).filter((m) => !(m in client) && !(m in WebSocketClient))));
    """
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, CLIENT_JS.as_uri(), json.dumps(declared)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(declared) > 10
    assert json.loads(done.stdout) == [], "declared in websocket-client.d.ts but not in the JavaScript"


@pytest.mark.skipif(
    not (TSC.exists() and (ROOT / "tsconfig.json").exists()), reason="typescript is not installed here (npm ci)"
)
def test_typed_uses_type_check_and_the_mistakes_are_caught():
    """tests/typing/ts/ uses the client as a TypeScript project would; its `@ts-expect-error`
    lines must fail to type-check, so a declaration that grew too loose fails here too."""
    done = subprocess.run([str(TSC), "--noEmit", "-p", str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    usage = (ROOT / "tests" / "typing" / "ts" / "client-usage.ts").read_text()
    assert usage.count("@ts-expect-error") >= 5
