"""The code blocks of docs/browser-client.md (issue #25): the TypeScript ones - the typed client,
the React `useChannel` hook and a component using it - type-check as written (tsc, strict)
against the shipped websocket-client.d.ts and React's own types; the JavaScript ones parse.
tests/docs/test_code_blocks.py runs the tutorial's and the testing page's blocks; this page's
blocks need a browser and a React app, so they are checked, not run (the behaviour they rely on
is tests/development/client_channels.test.mjs and tests/browser/)."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import django_aws_api_gateway_websockets

from .test_code_blocks import blocks

ROOT = Path(__file__).resolve().parents[2]
# The installed package's copy (nox runs the tests against the wheel, without a source tree).
STATIC = Path(django_aws_api_gateway_websockets.__file__).parent / "static" / "django_aws_api_gateway_websockets"
DECLARATIONS = STATIC / "websocket-client.d.ts"
TSC = ROOT / "node_modules" / ".bin" / "tsc"
PAGE = "browser-client.md"


def typescript_blocks():
    return [block for block in blocks(PAGE) if block.lang in ("typescript", "tsx")]


def test_every_typescript_block_names_its_file():
    found = typescript_blocks()
    assert {"chat.ts", "useChannel.ts", "Room.tsx"} <= {block.body.split("\n", 1)[0][3:] for block in found}
    for block in found:
        assert block.body.startswith("// "), f"{PAGE}: a TypeScript block without its file name: {block.first_line!r}"


@pytest.mark.skipif(
    not (TSC.exists() and (ROOT / "node_modules/@types/react").exists() and (ROOT / "tsconfig.json").exists()),
    reason="npm ci has not run here",
)
def test_typescript_blocks_type_check_against_the_shipped_declarations_and_react(tmp_path):
    for block in typescript_blocks():
        name = block.body.split("\n", 1)[0][3:].strip()
        (tmp_path / name).write_text(block.body)
    shutil.copyfile(DECLARATIONS, tmp_path / "websocket-client.d.ts")  # "./websocket-client.js" resolves to it
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    config = json.loads((ROOT / "tsconfig.json").read_text().split("\n", 2)[2])  # without its two comment lines
    config["compilerOptions"].update({"jsx": "react-jsx", "types": ["react"]})
    config["include"] = ["*.ts", "*.tsx"]
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    done = subprocess.run([str(TSC), "--noEmit", "-p", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_javascript_blocks_parse(tmp_path):
    found = [block for block in blocks(PAGE) if block.lang == "javascript"]
    assert found
    for n, block in enumerate(found):
        script = tmp_path / f"block{n}.mjs"
        script.write_text(block.body)
        done = subprocess.run(["node", "--check", str(script)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{PAGE}: {block.first_line!r}\n{done.stderr}"
