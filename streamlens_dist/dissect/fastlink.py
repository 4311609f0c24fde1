"""Where the fast paths find the network layer of a whole chunk's frames (link.FAST_HEADERS),
shared by the numpy ladder (columnar._fast) and its suspect scan (malformed_scan.py); the
compiled ladder does the same per frame (_kernels.c link_header)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import link

if TYPE_CHECKING:
    from ..capture.columns import RecordColumns
    from .columnar import _Chunk

TPIDS = np.array(sorted(link.VLAN_TPIDS), dtype=np.int64)
FAST_VLAN_TAGS = 2  # the fast path walks at most two tags; more go per frame
_UNREAD = -99
_VERSION_TYPE = {4: link.ETH_IP4, 6: link.ETH_IP6}


def _headers(linktype: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hlen = np.zeros(len(linktype), np.int64)
    how = np.full(len(linktype), _UNREAD, np.int64)
    for lt, (n, h) in link.FAST_HEADERS.items():
        on = linktype == lt
        hlen[on], how[on] = n, h
    return hlen, how


def _by_version(v: np.ndarray) -> np.ndarray:
    """The ethertype that announces IP version v (-1 for any other value)."""
    return np.where(v == 4, link.ETH_IP4, np.where(v == 6, link.ETH_IP6, -1))


def _family_version(fam: np.ndarray) -> np.ndarray:
    v = np.zeros(len(fam), np.int64)
    for f, version in link.NULL_FAMILIES.items():
        v[fam == f] = version
    return v


def network_layer(c: _Chunk, cols: RecordColumns, rows: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, protocol type, network layer offset, whether only IP is decoded there, where
    the frame ends) of the timed frames among `rows` (default: all) whose link layer the
    fast path reads and whose link header (with at most FAST_VLAN_TAGS tags) is whole. The
    protocol type is an ethertype (IP behind a raw, NULL or LOOP header as the ethertype of
    its version; -1 where that header names no IP version)."""
    if rows is None:
        rows = np.arange(len(cols))
    hlen, how = _headers(cols.linktype[rows])
    need = np.where(how == link.BY_NIBBLE, 1, hlen)  # the version nibble is read
    ok = ~cols.untimed[rows] & (how != _UNREAD) & (cols.caplen[rows] >= need)
    rows, hlen, how = rows[ok], hlen[ok], how[ok]
    base = cols.offset[rows]
    end = base + cols.caplen[rows]
    l3 = base + hlen
    et = np.full(len(rows), -1, np.int64)
    typed = how >= 0
    et[typed] = c.be16(base[typed] + how[typed])
    nib = how == link.BY_NIBBLE
    et[nib] = _by_version(c.u8(l3[nib]) >> 4)
    et[how == link.ONLY_IP4] = link.ETH_IP4
    et[how == link.ONLY_IP6] = link.ETH_IP6
    fam = np.flatnonzero((how == link.BY_FAMILY_NULL) | (how == link.BY_FAMILY_LOOP))
    if len(fam):
        b = base[fam]
        big = (c.be16(b) << 16) | c.be16(b + 2)
        v = _family_version(big)
        null = how[fam] == link.BY_FAMILY_NULL
        little = _family_version(c.le32(b))
        v = np.where(null & (little > 0), little, v)  # NULL: little-endian first
        et[fam] = _by_version(v)
    ok = np.ones(len(rows), dtype=bool)
    for _ in range(FAST_VLAN_TAGS):
        tag = typed & np.isin(et, TPIDS)
        ok &= ~(tag & (end < l3 + 4))
        step = tag & ok
        if step.any():
            et = np.where(step, c.be16(np.where(step, l3 + 2, 0)), et)
            l3 = np.where(step, l3 + 4, l3)
    ok &= ~(typed & np.isin(et, TPIDS))
    ip_only = cols.linktype[rows] != link.ETHERNET
    return rows[ok], et[ok], l3[ok], ip_only[ok], end[ok]
