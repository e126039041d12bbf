"""Helpers users import from ``ipyparallel.util``: ``interactive``, timestamps
(``utc``, ``utcnow``, ``ensure_timezone``, ``compare_datetimes``, ``extract_dates``) and
controller URLs (``disambiguate_url``, ``split_url``, ``validate_url``, ...)."""

import re
import socket
from datetime import datetime, timezone

from .serialize import interactive

__all__ = [
    "InvalidURL", "compare_datetimes", "disambiguate_ip_address", "disambiguate_url",
    "ensure_timezone", "extract_dates", "interactive", "is_ip", "is_url",
    "select_random_ports", "split_url", "utc", "utcnow", "validate_url",
    "validate_url_container",
]

utc = timezone.utc

_TRANSPORTS = ("tcp", "ipc", "inproc", "pgm", "epgm")
_HOST = re.compile(r"^([\w]([\w\-]{0,61}[\w])?\.)*[\w]([\w\-]{0,61}[\w])?$")
_WILDCARDS = ("0.0.0.0", "*", "::", "")


class InvalidURL(ValueError, AssertionError):
    """A malformed ZeroMQ URL (an AssertionError too, as ipyparallel raised those)."""


# -- timestamps -------------------------------------------------------------------------
def utcnow():
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(utc)


def ensure_timezone(dt):
    """``dt`` itself when it has a timezone; a naive datetime is taken as local time and
    gets the local timezone (at that date)."""
    if not isinstance(dt, datetime):
        raise TypeError(f"ensure_timezone() needs a datetime, not {type(dt).__name__}")
    return dt if dt.tzinfo is not None else dt.astimezone()


def compare_datetimes(a, b):
    """``a - b`` (a timedelta) even when one of them is naive (taken as local time)."""
    if (a.tzinfo is None) != (b.tzinfo is None):
        a, b = ensure_timezone(a), ensure_timezone(b)
    return a - b


_ISO8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$")


def _parse_date(s):
    if not _ISO8601.match(s):
        return s
    text = s[:-1] + "+00:00" if s.endswith("Z") else s
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        return ensure_timezone(datetime.fromisoformat(text))
    except ValueError:
        return s


def extract_dates(obj):
    """A copy of decoded JSON with every ISO 8601 timestamp string turned into an aware
    datetime (naive ones as local time); other values unchanged."""
    if isinstance(obj, dict):
        return {k: extract_dates(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [extract_dates(v) for v in obj]
    if isinstance(obj, str):
        return _parse_date(obj)
    return obj


# -- URLs -------------------------------------------------------------------------------
def is_url(url):
    """Whether ``url`` is a ZeroMQ URL (``tcp://``, ``ipc://``, ...)."""
    if not isinstance(url, str) or "://" not in url:
        return False
    return url.split("://", 1)[0].lower() in _TRANSPORTS


def split_url(url):
    """``(transport, host, port)`` of ``tcp://host:port`` (port a string)."""
    if not isinstance(url, str) or url.count("://") != 1:
        raise InvalidURL(f"not a URL of the form transport://host:port: {url!r}")
    proto, addr = url.split("://")
    if addr.startswith("["):  # [ipv6]:port
        host, sep, port = addr[1:].partition("]:")
    else:
        host, sep, port = addr.rpartition(":")
    if not sep or not host or not port:
        raise InvalidURL(f"URL {url!r} lacks a host or a port (transport://host:port)")
    return proto, host, port


def validate_url(url):
    """True for a well-formed ZeroMQ URL; InvalidURL saying what is wrong otherwise (only
    ``tcp://`` addresses are checked beyond their transport)."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, not {type(url).__name__}")
    if url.count("://") != 1:
        raise InvalidURL(f"invalid URL {url!r}: expected transport://address")
    proto, addr = url.lower().split("://")
    if proto not in _TRANSPORTS:
        raise InvalidURL(f"invalid transport {proto!r} in {url!r}; one of "
                         + ", ".join(_TRANSPORTS))
    if proto == "tcp":
        _, host, port = split_url(url.lower())
        if not port.isdigit() or not 0 <= int(port) < 65536:
            raise InvalidURL(f"invalid port {port!r} in {url!r}")
        if host != "*" and not is_ip(host) and _HOST.match(host) is None:
            raise InvalidURL(f"invalid host {host!r} in {url!r}")
    return True


def validate_url_container(container):
    """``validate_url`` on every URL of a string, or a (nested) list or dict of them."""
    if isinstance(container, str):
        return validate_url(container)
    values = container.values() if isinstance(container, dict) else container
    for v in values:
        validate_url_container(v)
    return True


def is_ip(location):
    """Whether ``location`` is an IPv4 or IPv6 address (not a host name)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, location)
            return True
        except (OSError, TypeError, ValueError):
            pass
    return False


def _local_addresses():
    addrs = {"127.0.0.1", "::1", "localhost"}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addrs.add(info[4][0])
    except OSError:
        pass
    return addrs


def disambiguate_ip_address(ip, location=None):
    """A connectable address for a bound ``ip``: a wildcard (``0.0.0.0``, ``*``) becomes
    ``127.0.0.1`` when ``location`` (the host it was bound on) is this machine or not
    given, else ``location`` (resolved to an address when possible). Other addresses
    are returned as they are."""
    if ip not in _WILDCARDS:
        return ip
    if not location or location == socket.gethostname():
        return "127.0.0.1"
    addr = location
    if not is_ip(location):
        try:
            addr = socket.gethostbyname(location)
        except OSError:
            return location  # unknown here: let the connect say so
    return "127.0.0.1" if addr in _local_addresses() or addr.startswith("127.") else addr


def disambiguate_url(url, location=None):
    """``url`` with a wildcard host replaced by a connectable one (see
    ``disambiguate_ip_address``); non-tcp URLs are returned unchanged."""
    try:
        proto, ip, port = split_url(url)
    except InvalidURL:
        return url
    if proto.lower() != "tcp":
        return url
    host = disambiguate_ip_address(ip, location)
    if ":" in host:
        host = f"[{host}]"
    return f"{proto}://{host}:{port}"


def select_random_ports(n):
    """``n`` distinct free TCP ports on this machine (free now; another process may take
    one before it is bound)."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, not {n!r}")
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports
