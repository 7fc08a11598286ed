"""The operator lease: one holder at a time may command the testbed; anyone may observe.

``lease.acquire`` hands out a token that expires unless its holder renews it, so a crashed
client cannot hold the bench hostage. ``safety.abort`` never needs a lease. Tokens are hex so
an operator can paste one after ``labctl --lease`` (a URL-safe token may begin with ``-``,
which a command line takes for an option).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from labd.rpc import ErrorCode, RpcError


@dataclass
class Lease:
    holder: str
    token: str
    expires_at: float  # UNIX time, s


class LeaseTable:
    """Who holds the bench, until when."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lease: Lease | None = None

    @property
    def current(self) -> Lease | None:
        """The live lease, if any (an expired one is released here)."""
        if self._lease is not None and self._lease.expires_at <= self.clock():
            self._lease = None
        return self._lease

    def acquire(self, holder: str, ttl_s: float) -> Lease:
        """A new lease for ``holder``; refused while someone else holds one."""
        lease = self.current
        if lease is not None and lease.holder != holder:
            raise self._held(lease)
        self._lease = Lease(holder, secrets.token_hex(16), self.clock() + ttl_s)
        return self._lease

    def renew(self, token: str, ttl_s: float) -> Lease:
        lease = self.check(token)
        lease.expires_at = self.clock() + ttl_s
        return lease

    def release(self, token: str) -> None:
        self.check(token)
        self._lease = None

    def check(self, token: str | None) -> Lease:
        """The lease ``token`` names, if it is the live one; else a lease error."""
        lease = self.current
        if token is None or lease is None:
            held = f"; held now by {lease.holder!r}" if lease else ""
            raise RpcError(ErrorCode.LEASE_REQUIRED,
                           f"this method commands the bench: it needs a lease{held}",
                           {"holder": lease.holder if lease else None})
        if token != lease.token:
            raise self._held(lease)
        return lease

    def _held(self, lease: Lease) -> RpcError:
        left = lease.expires_at - self.clock()
        return RpcError(ErrorCode.LEASE_HELD,
                        f"lease held by {lease.holder!r} for another {left:.0f} s",
                        {"holder": lease.holder, "expires_at": lease.expires_at})
