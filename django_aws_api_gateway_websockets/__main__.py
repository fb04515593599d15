"""``python -m django_aws_api_gateway_websockets``: which version is installed, and which extras work.

The docs' first command after ``pip install``: it tells a newcomer at once that pip installed what
the docs describe. The 4.x releases have no ``__main__``, so there Python answers ``No module named
django_aws_api_gateway_websockets.__main__``, which the docs explain (pip installed 4.x from PyPI).
"""

import importlib.util
import platform
import sys
from importlib import metadata

from . import __version__

DISTRIBUTION = "django-aws-api-gateway-websockets"
EXTRAS = {  # extra -> (what it gives, the modules it installs)
    "local": ("the local gateway (runwsgateway)", ("aiohttp", "websockets")),
    "testing": ("the ws_client and ws_capture pytest fixtures", ("pytest", "pytest_django")),
    "celery": ("Celery sends", ("celery",)),
}


def report() -> tuple[list[str], bool]:
    """The lines to print, and whether the installation is usable with these docs."""
    lines = [f"{DISTRIBUTION} {__version__} ({__file__.rsplit('/', 1)[0]})"]
    ok = True
    try:
        installed = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        installed = None  # imported from a checkout on sys.path, not installed
    if installed is not None and installed != __version__:
        # Another copy is installed than the one imported (e.g. 4.x from PyPI beside a checkout).
        lines.append(f"  note: pip lists {DISTRIBUTION} {installed}; this copy is imported first")
    try:
        import django
    except ImportError:
        lines.append("  Django: not installed")
        ok = False
    else:
        supported = django.VERSION[:2] >= (5, 2) and django.VERSION[0] < 7
        lines.append(f"  Django {django.get_version()}{'' if supported else ' (not supported: 5.2 to 6.x)'}")
        ok = ok and supported
    lines.append(f"  Python {platform.python_version()}")
    for extra, (gives, modules) in EXTRAS.items():
        missing = [name for name in modules if importlib.util.find_spec(name) is None]
        state = "installed" if not missing else f'missing {", ".join(missing)}: pip install "…[{extra}]"'
        lines.append(f"  [{extra}] {gives}: {state}")
    return lines, ok


def main() -> int:
    lines, ok = report()
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
