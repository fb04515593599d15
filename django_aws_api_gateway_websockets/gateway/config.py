import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from .. import protocol

if TYPE_CHECKING:
    from ..models import ApiGateway


@dataclass(frozen=True)
class Route:
    """An additional route: its integration URL and whether responses go back to the sender."""

    integration_url: str
    two_way: bool = False


@dataclass
class GatewayConfig:
    """What the local gateway needs to know about the API it plays."""

    api_id: str
    target_base_endpoint: str  # e.g. http://127.0.0.1:8000/ws/ (ends with "/")
    stage: str = "local"
    secret: str = field(default="", repr=False)  # never in a repr, a log line or a traceback
    route_selection_expression: str = "$request.body.action"
    routes: dict[str, Route] = field(default_factory=dict)  # route key -> Route
    default_route_two_way: bool = False
    two_way: bool = False  # --two-way: every route relays Django's response
    idle_timeout: float = protocol.IDLE_TIMEOUT_SECONDS
    max_lifetime: float = protocol.MAX_CONNECTION_SECONDS
    integration_timeout: float = protocol.INTEGRATION_TIMEOUT_SECONDS
    max_payload: int = protocol.MAX_PAYLOAD_BYTES  # a client message, a @connections POST
    max_frame: int = protocol.MAX_FRAME_BYTES  # one client frame
    management_latency_ms: float = 0
    # The account-level throttle @connections calls share on AWS (429 LimitExceededException).
    # 0 turns it off.
    management_rate_limit: float = 10_000
    management_burst_limit: int = 5_000

    def __post_init__(self) -> None:
        if not self.target_base_endpoint.startswith(("http://", "https://")):
            raise ValueError(f"target_base_endpoint must be an http(s) URL, not {self.target_base_endpoint!r}")
        if not self.stage or "/" in self.stage:
            raise ValueError(f"stage must be a non-empty name without '/', not {self.stage!r}")
        if not self.target_base_endpoint.endswith("/"):
            self.target_base_endpoint += "/"

    @property
    def selection_key(self) -> str | None:
        return protocol.selection_key_from_expression(self.route_selection_expression)

    def integration_for(self, route_key: str) -> tuple[str, bool]:
        """``(url, two_way)`` of the integration behind a route key."""
        if route_key in self.routes:
            route = self.routes[route_key]
            return route.integration_url, self.two_way or route.two_way
        two_way = self.two_way or (route_key == "$default" and self.default_route_two_way)
        return protocol.integration_url(self.target_base_endpoint, route_key), two_way

    @classmethod
    def from_record(cls, record: "ApiGateway", **overrides: Any) -> Self:
        """Build from an ``ApiGateway`` row and its additional routes."""
        values: dict[str, Any] = dict(
            api_id=record.api_id,
            stage=record.stage_name,
            secret=record.integration_secret,
            target_base_endpoint=record.target_base_endpoint or "http://127.0.0.1:8000/ws/",
            route_selection_expression=record.route_selection_expression,
            routes={r.route_key: Route(r.integration_url, r.two_way) for r in record.additional_routes.all()},
            default_route_two_way=record.default_route_two_way,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def is_loopback_host(host: str | None) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: only this machine can reach it."""
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name: it may resolve to any interface
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)
